//! `--log-format json`: one JSON object per line with the same fields as the text line, for jq
//! and tools. `data` is the decoded payload (a JSON value when it is JSON, else a string).

use chrono::{DateTime, Local};
use serde_json::{json, Map, Value};

use super::line::{Line, View};
use crate::auth::diagnose::Subject;

/// Renders one line as a JSON object.
pub fn render(line: &Line, view: &View, now: DateTime<Local>) -> String {
    let mut obj = Map::new();
    obj.insert("time".into(), json!(now.to_rfc3339_opts(chrono::SecondsFormat::Millis, false)));
    obj.insert("kind".into(), json!(line.kind().name()));
    let mut put = |key: &str, value: Value| {
        if !value.is_null() {
            obj.insert(key.into(), value);
        }
    };
    put("socket", json!(view.socket));
    put("app", json!(view.app));
    put("event", json!(view.event));
    put("channel", json!(view.channel));
    if let Some(payload) = &view.payload {
        let data = if view.payload_is_json {
            serde_json::from_str(payload).unwrap_or_else(|_| json!(payload))
        } else {
            json!(payload)
        };
        put("data", data);
        put("bytes", json!(view.bytes));
    }
    match line {
        Line::Text(text) => put("message", json!(text)),
        Line::Connected { remote, .. } => put("remote", json!(remote.map(|r| r.to_string()))),
        Line::Disconnected { code, reason, .. } => {
            put("code", json!(code));
            put("reason", json!(reason));
        }
        Line::Refused { key, code, reason, remote } => {
            put("key", json!(key));
            put("code", json!(code));
            put("reason", json!(reason));
            put("remote", json!(remote.map(|r| r.to_string())));
        }
        Line::Api { method, path, status, elapsed, reason } => {
            put("reason", json!(reason));
            put("method", json!(method));
            put("path", json!(path));
            put("status", json!(status));
            put("duration_ms", json!((elapsed.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0));
        }
        Line::Published { source, delivered, .. } => {
            put("source", json!(source.label()));
            put("delivered", json!(delivered));
        }
        Line::ClientError { message, .. } | Line::Error(message) => put("message", json!(message)),
        Line::Cluster { message, problem } => {
            put("message", json!(message));
            put("error", json!(problem));
        }
        Line::Recorder(r) => {
            put("message", json!(r.message()));
            put("error", json!(r.is_error()));
        }
        Line::Signature(d) => {
            match &d.subject {
                Subject::Request { method, path } => {
                    put("method", json!(method));
                    put("path", json!(path));
                }
                Subject::Channel { .. } => put("subject", json!("channel")),
                Subject::Signin { .. } => put("subject", json!("signin")),
            }
            put("expected_string", json!(d.expected_string));
            put("received", json!(d.received));
            put("expected", json!(d.expected));
            put("body_md5", json!(d.body_md5));
            put("skew_secs", json!(d.skew_secs));
            put("cause", json!(d.cause.to_string()));
        }
        Line::FanOut { sockets, .. } => put("sockets", json!(sockets)),
        Line::Webhook { label, url, result, ok, attempt, elapsed, next, .. } => {
            put("label", json!(label));
            put("url", json!(url));
            put("result", json!(result));
            put("ok", json!(ok));
            put("attempt", json!(attempt));
            put("duration_ms", json!((elapsed.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0));
            put("next", json!(next.trim_start_matches(", ")));
        }
        Line::FrameIn { .. } | Line::FrameOut { .. } => {}
    }
    Value::Object(obj).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::AppId;
    use crate::protocol::{Frame, SocketId};
    use chrono::TimeZone;

    #[test]
    fn frames_become_objects_with_the_same_fields_as_text() {
        let line = Line::FrameOut {
            socket: SocketId::new(1, 2),
            app: AppId::new("1"),
            frame: Frame::from(r#"{"event":"e","channel":"c","data":"{\"a\":1}"}"#.to_owned()),
        };
        let now = Local.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let v: Value = serde_json::from_str(&render(&line, &line.view(), now)).unwrap();
        assert_eq!(v["kind"], "frame_out");
        assert_eq!(v["socket"], "1.2");
        assert_eq!(v["app"], "1");
        assert_eq!(v["event"], "e");
        assert_eq!(v["channel"], "c");
        assert_eq!(v["data"], json!({"a": 1}));
        assert!(v["time"].as_str().unwrap().starts_with("2026-01-02T03:04:05.000"));
    }

    #[test]
    fn api_lines_carry_status_and_duration() {
        let line = Line::Api {
            method: "GET".into(),
            path: "/apps/1/channels".into(),
            status: 401,
            elapsed: std::time::Duration::from_micros(1234),
            reason: Some("Missing parameter: auth_key".into()),
        };
        let v: Value = serde_json::from_str(&render(&line, &line.view(), Local::now())).unwrap();
        assert_eq!(
            (v["status"].as_u64(), v["duration_ms"].as_f64(), v["app"].as_str()),
            (Some(401), Some(1.234), Some("1"))
        );
    }
}
