//! `--log-format json`: one JSON object per line with the same fields as the text line, for jq
//! and tools. `data` is the decoded payload (a JSON value when it is JSON, else a string).

use std::time::Duration;

use chrono::{DateTime, Local};
use serde_json::{json, Map, Value};

use super::line::{Line, View};
use crate::auth::diagnose::{Diagnosis, Subject};

/// Renders one line as a JSON object.
pub fn render(line: &Line, view: &View, now: DateTime<Local>) -> String {
    let mut fields = Fields(Map::new());
    fields.0.insert("time".into(), json!(now.to_rfc3339_opts(chrono::SecondsFormat::Millis, false)));
    fields.0.insert("kind".into(), json!(line.kind().name()));
    fields.put("socket", json!(view.socket));
    fields.put("app", json!(view.app));
    fields.put("event", json!(view.event));
    fields.put("channel", json!(view.channel));
    // A JSON payload goes in as its own text (minified), not re-encoded: its keys keep the
    // order the app sent them in, and nothing is parsed.
    let mut raw = None;
    if let Some(payload) = &view.payload {
        match view.payload_is_json {
            true => raw = Some(minified(payload)),
            false => fields.put("data", json!(payload)),
        }
        fields.put("bytes", json!(view.bytes));
    }
    fields.line(line);
    let mut out = Value::Object(fields.0).to_string();
    if let Some(raw) = raw {
        // `out` is an object with at least `time` and `kind`: `{…}` becomes `{…,"data":RAW}`.
        out.pop();
        out.push_str(",\"data\":");
        out.push_str(&raw);
        out.push('}');
    }
    out
}

/// `json` (valid JSON) without the whitespace between its tokens, so a line stays one line.
fn minified(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    out
}

/// The object being built; a null value leaves its key out.
struct Fields(Map<String, Value>);

impl Fields {
    fn put(&mut self, key: &str, value: Value) {
        if !value.is_null() {
            self.0.insert(key.into(), value);
        }
    }

    /// The fields of one kind of line.
    fn line(&mut self, line: &Line) {
        match line {
            Line::Text(text) => self.put("message", json!(text)),
            Line::Connected { remote, .. } => self.put("remote", json!(remote.map(|r| r.to_string()))),
            Line::Disconnected { code, reason, .. } => {
                self.put("code", json!(code));
                self.put("reason", json!(reason));
            }
            Line::Refused { key, code, reason, remote } => {
                self.put("key", json!(key));
                self.put("code", json!(code));
                self.put("reason", json!(reason));
                self.put("remote", json!(remote.map(|r| r.to_string())));
            }
            Line::Api { method, path, status, elapsed, reason } => {
                self.put("reason", json!(reason));
                self.put("method", json!(method));
                self.put("path", json!(path));
                self.put("status", json!(status));
                self.put("duration_ms", duration_ms(*elapsed));
            }
            Line::Published { source, delivered, hint, .. } => {
                self.put("source", json!(source.label()));
                self.put("delivered", json!(delivered));
                self.put("hint", json!(hint));
            }
            Line::ClientError { message, .. } | Line::Error(message) => self.put("message", json!(message)),
            Line::Cluster { message, problem } => {
                self.put("message", json!(message));
                self.put("error", json!(problem));
            }
            Line::Recorder(r) => {
                self.put("message", json!(r.message()));
                self.put("error", json!(r.is_error()));
            }
            Line::Signature(d) => self.signature(d),
            Line::FanOut { sockets, .. } => self.put("sockets", json!(sockets)),
            Line::Webhook { label, url, result, ok, attempt, elapsed, next, .. } => {
                self.put("label", json!(label));
                self.put("url", json!(url));
                self.put("result", json!(result));
                self.put("ok", json!(ok));
                self.put("attempt", json!(attempt));
                self.put("duration_ms", duration_ms(*elapsed));
                self.put("next", json!(next.trim_start_matches(", ")));
            }
            Line::FrameIn { .. } | Line::FrameOut { .. } => {}
        }
    }

    fn signature(&mut self, d: &Diagnosis) {
        match &d.subject {
            Subject::Request { method, path } => {
                self.put("method", json!(method));
                self.put("path", json!(path));
            }
            Subject::Channel { .. } => self.put("subject", json!("channel")),
            Subject::Signin { .. } => self.put("subject", json!("signin")),
        }
        self.put("expected_string", json!(d.expected_string));
        self.put("received", json!(d.received));
        self.put("expected", json!(d.expected));
        self.put("body_md5", json!(d.body_md5));
        self.put("skew_secs", json!(d.skew_secs));
        self.put("cause", json!(d.cause.to_string()));
    }
}

/// Milliseconds, to the microsecond.
fn duration_ms(elapsed: Duration) -> Value {
    json!((elapsed.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0)
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
    fn a_json_payload_keeps_its_key_order_and_becomes_one_line() {
        let data = "{\\\"zebra\\\": 1,\\n  \\\"apple\\\": {\\\"s\\\": \\\"a \\\\\\\" b\\\\n\\\"}, \\\"mid\\\": [1, 2]}";
        let frame = format!(r#"{{"event":"e","channel":"c","data":"{data}"}}"#);
        let line = Line::FrameOut { socket: SocketId::new(1, 2), app: AppId::new("1"), frame: Frame::from(frame) };
        let text = render(&line, &line.view(), Local::now());
        assert!(!text.contains('\n'), "{text}");
        assert!(text.ends_with(r#","data":{"zebra":1,"apple":{"s":"a \" b\n"},"mid":[1,2]}}"#), "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["data"]["apple"]["s"], "a \" b\n");
        assert_eq!(minified("[ \"x y\" ,\t{ } ]"), r#"["x y",{}]"#);
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
