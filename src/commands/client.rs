//! The `pusher-local webhooks list | show ID | resend ID` side of the control API: plain
//! HTTP calls to a running server, and the text they print. Rendering works on the JSON the
//! API returns, so what the command shows is exactly what any other client would see.

use std::fmt::Write as _;

use serde_json::{json, Value};

/// A control API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No answer (server not running, wrong port…).
    #[error("cannot reach pusher-local at {base}: {reason} (is it running? pass --url http://HOST:PORT)")]
    Unreachable {
        /// The base URL.
        base: String,
        /// Why.
        reason: String,
    },
    /// The TLS configuration could not be made (an unreadable `--ca-file`).
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// An answer other than 2xx.
    #[error("{status}: {message}")]
    Refused {
        /// The status.
        status: u16,
        /// The `error` text of the answer.
        message: String,
    },
}

/// A client for one server, `base` like `http://127.0.0.1:6001`.
#[derive(Debug, Clone)]
pub struct ControlClient {
    base: String,
    http: reqwest::Client,
}

impl ControlClient {
    /// A client for `base` (`http://…` or `https://…`, checked against `trust`), sending
    /// `token` (`--control-token`) when the server asks for one.
    ///
    /// # Errors
    /// [`ControlError::Tls`] when `trust` names an unreadable CA file.
    pub fn new(
        base: impl Into<String>,
        trust: &crate::tls::ClientTrust,
        token: Option<&str>,
    ) -> Result<Self, ControlError> {
        let base = base.into().trim_end_matches('/').to_owned();
        let mut builder = reqwest::Client::builder();
        if let Some(Ok(value)) = token.map(|t| reqwest::header::HeaderValue::from_str(&format!("Bearer {t}"))) {
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(reqwest::header::AUTHORIZATION, value);
            builder = builder.default_headers(headers);
        }
        if base.starts_with("https:") {
            builder = builder.use_preconfigured_tls((*trust.config()?).clone());
        }
        Ok(Self { base, http: builder.build().unwrap_or_else(|_| reqwest::Client::new()) })
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> Result<Value, ControlError> {
        let unreachable = |e: reqwest::Error| ControlError::Unreachable {
            base: self.base.clone(),
            reason: crate::tls::client::reason(&e.without_url()),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.map_err(unreachable)?;
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            let message = body["error"].as_str().unwrap_or("unexpected answer").to_owned();
            Err(ControlError::Refused { status, message })
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}/webhooks{path}", self.base, crate::control::PREFIX)
    }

    fn control_url(&self, path: &str) -> String {
        format!("{}/{}/{path}", self.base, crate::control::PREFIX)
    }

    /// `GET /pusher-local/fixtures`.
    ///
    /// # Errors
    /// [`ControlError`].
    pub async fn fixtures(&self) -> Result<Value, ControlError> {
        self.call(self.http.get(self.control_url("fixtures"))).await
    }

    /// `GET /pusher-local/replays`.
    ///
    /// # Errors
    /// [`ControlError`].
    pub async fn replays(&self) -> Result<Value, ControlError> {
        self.call(self.http.get(self.control_url("replays"))).await
    }

    /// `POST /pusher-local/replays` with `request` (see `control::ReplayRequest`).
    ///
    /// # Errors
    /// [`ControlError`].
    pub async fn start_replay(&self, request: &Value) -> Result<Value, ControlError> {
        self.call(self.http.post(self.control_url("replays")).json(request)).await
    }

    /// `DELETE /pusher-local/replays/{id}`.
    ///
    /// # Errors
    /// [`ControlError`].
    pub async fn stop_replay(&self, id: u64) -> Result<Value, ControlError> {
        self.call(self.http.delete(self.control_url(&format!("replays/{id}")))).await
    }

    /// `GET /pusher-local/webhooks`.
    ///
    /// # Errors
    /// [`ControlError`].
    pub async fn list(&self) -> Result<Value, ControlError> {
        self.call(self.http.get(self.url(""))).await
    }

    /// `GET /pusher-local/webhooks/{id}`.
    ///
    /// # Errors
    /// [`ControlError`].
    pub async fn show(&self, id: u64) -> Result<Value, ControlError> {
        self.call(self.http.get(self.url(&format!("/{id}")))).await
    }

    /// `POST /pusher-local/webhooks/{id}/resend`.
    ///
    /// # Errors
    /// [`ControlError`].
    pub async fn resend(&self, id: u64, to: Option<&str>) -> Result<Value, ControlError> {
        let body = match to {
            Some(url) => json!({ "url": url }),
            None => json!({}),
        };
        self.call(self.http.post(self.url(&format!("/{id}/resend"))).json(&body)).await
    }
}

fn time(ms: &Value) -> String {
    ms.as_i64()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.with_timezone(&chrono::Local).format("%H:%M:%S%.3f").to_string())
        .unwrap_or_else(|| "?".into())
}

fn label(record: &Value) -> String {
    let events = record["events"].as_array().map(Vec::as_slice).unwrap_or_default();
    match events {
        [one] => {
            let mut text =
                format!("{} {}", one["name"].as_str().unwrap_or("?"), one["channel"].as_str().unwrap_or("?"));
            if let Some(event) = one["event"].as_str() {
                let _ = write!(text, " {event}");
            }
            if let Some(user) = one["user_id"].as_str() {
                let _ = write!(text, " user {user}");
            }
            text
        }
        many => format!("{} events", many.len()),
    }
}

fn delivery_summary(delivery: &Value) -> String {
    let attempts = delivery["attempts"].as_array().map(Vec::as_slice).unwrap_or_default();
    let last = attempts.last().map(|a| match (a["status"].as_u64(), a["error"].as_str()) {
        (Some(status), _) => status.to_string(),
        (None, Some(error)) => error.to_owned(),
        (None, None) => "?".into(),
    });
    let mut text = delivery["state"].as_str().unwrap_or("?").to_owned();
    if let Some(last) = last {
        let _ = write!(text, " ({last}, {} attempt{})", attempts.len(), if attempts.len() == 1 { "" } else { "s" });
    }
    let _ = write!(text, " → {}", delivery["url"].as_str().unwrap_or("?"));
    text
}

/// One line per record: id, time, app, what, and where each delivery stands.
pub fn render_list(list: &Value) -> String {
    let records = list["webhooks"].as_array().map(Vec::as_slice).unwrap_or_default();
    if records.is_empty() {
        return "no webhooks kept yet\n".into();
    }
    let mut out = String::new();
    for record in records {
        let deliveries = record["deliveries"].as_array().map(Vec::as_slice).unwrap_or_default();
        let status = if deliveries.is_empty() {
            "not sent (no webhook URL)".to_owned()
        } else {
            deliveries.iter().map(delivery_summary).collect::<Vec<_>>().join("; ")
        };
        let _ = writeln!(
            out,
            "#{:<5} {}  app {:<6} {:<48} {status}",
            record["id"],
            time(&record["time_ms"]),
            record["app_id"].as_str().unwrap_or("?"),
            label(record),
        );
    }
    out
}

/// A record in full: headers, body and every attempt.
pub fn render_record(record: &Value) -> String {
    let mut out = String::new();
    let _ =
        writeln!(out, "webhook #{}  app {}  {}", record["id"], record["app_id"].as_str().unwrap_or("?"), label(record));
    let _ = writeln!(out, "time_ms {} ({})", record["time_ms"], time(&record["time_ms"]));
    let _ = writeln!(out, "POST headers:");
    if let Some(headers) = record["headers"].as_object() {
        for (name, value) in headers {
            let _ = writeln!(out, "  {name}: {}", value.as_str().unwrap_or_default());
        }
    }
    let _ = writeln!(out, "body:\n  {}", record["body"].as_str().unwrap_or_default());
    let deliveries = record["deliveries"].as_array().map(Vec::as_slice).unwrap_or_default();
    if deliveries.is_empty() {
        let _ = writeln!(out, "not sent: the app has no webhook URL (resend it with --to URL)");
    }
    for delivery in deliveries {
        let _ = writeln!(out, "{}", delivery_summary(delivery));
        for a in delivery["attempts"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let outcome = match (a["status"].as_u64(), a["error"].as_str()) {
                (Some(status), _) => format!("HTTP {status}"),
                (None, Some(error)) => error.to_owned(),
                (None, None) => "?".into(),
            };
            let _ = writeln!(
                out,
                "  attempt {} at {}: {outcome} in {}ms",
                a["attempt"],
                time(&a["at_ms"]),
                a["elapsed_ms"]
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Value {
        json!({
            "id": 3, "app_id": "1", "time_ms": 1_700_000_000_000u64,
            "events": [{"name": "member_added", "channel": "presence-x", "user_id": "u1"}],
            "body": "{\"time_ms\":1700000000000,\"events\":[]}",
            "headers": {"Content-Type": "application/json", "X-Pusher-Key": "k", "X-Pusher-Signature": "abc"},
            "deliveries": [{"url": "http://127.0.0.1:1/h", "state": "retrying", "attempts": [
                {"attempt": 1, "at_ms": 1_700_000_000_000u64, "elapsed_ms": 2, "status": 500, "error": null}
            ]}]
        })
    }

    #[test]
    fn list_line_names_the_event_and_the_delivery() {
        let text = render_list(&json!({ "webhooks": [record()] }));
        assert!(text.starts_with("#3 "), "{text}");
        assert!(text.contains("member_added presence-x user u1"), "{text}");
        assert!(text.contains("retrying (500, 1 attempt) → http://127.0.0.1:1/h"), "{text}");
        assert_eq!(render_list(&json!({ "webhooks": [] })), "no webhooks kept yet\n");
    }

    #[test]
    fn record_shows_headers_body_and_attempts() {
        let text = render_record(&record());
        assert!(text.contains("X-Pusher-Signature: abc"), "{text}");
        assert!(text.contains("attempt 1 at "), "{text}");
        assert!(text.contains("HTTP 500 in 2ms"), "{text}");
    }
}
