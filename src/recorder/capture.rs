//! Capture: connect to any Pusher-compatible WebSocket endpoint as a client, subscribe to
//! channels (signing private and presence subscriptions when given the secret), and keep every
//! event that arrives with its time, as a [`Fixture`]. Offsets count from the first event.
//! Protocol events (`pusher:*`, `pusher_internal:*`) are answered or skipped, not kept.

use std::future::Future;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::fixture::{Fixture, FixtureEvent};
use crate::auth::channel::{auth_value, subscription_string};
use crate::protocol::{ChannelKind, ChannelName};

/// Where and what to capture.
#[derive(Debug, Clone)]
pub struct Options {
    /// `ws://HOST:PORT` or `wss://…` (the `/app/KEY` path is added), or a full `ws://…/app/KEY?…`
    /// URL ([`super::remote::resolve`] makes one of the other forms).
    pub url: String,
    /// The app key.
    pub key: String,
    /// The app secret, to sign private and presence subscriptions.
    pub secret: Option<String>,
    /// Channels to subscribe to.
    pub channels: Vec<String>,
    /// The user id to join presence channels as.
    pub user_id: String,
    /// What a `wss://` server's certificate is checked against.
    pub trust: crate::tls::ClientTrust,
}

/// Capture could not start or went wrong.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The URL is not ws:// or wss://.
    #[error("{0:?} is not a ws:// or wss:// URL (for example ws://127.0.0.1:6001)")]
    Url(String),
    /// The TLS configuration could not be made (an unreadable `--ca-file`).
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The connection failed.
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// The URL.
        url: String,
        /// Why (tungstenite's text, which already includes its cause).
        reason: String,
    },
    /// The server said no before `connection_established`.
    #[error("{url} refused the connection: {message}")]
    Refused {
        /// The URL.
        url: String,
        /// What it sent.
        message: String,
    },
    /// A private or presence channel without `--secret`.
    #[error("{0} needs a signature: pass --secret SECRET")]
    NeedsSecret(String),
    /// A bad channel name.
    #[error("invalid channel {name:?}: {reason}")]
    Channel {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// A subscription was refused.
    #[error("subscription to {channel} refused: {message}")]
    Subscription {
        /// The channel.
        channel: String,
        /// The server's reason.
        message: String,
    },
}

/// Connection progress, for the terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Connected, with this socket id.
    Connected(String),
    /// Subscribed to a channel.
    Subscribed(String),
    /// An event was kept.
    Event {
        /// Events kept so far.
        count: usize,
        /// Its channel.
        channel: String,
        /// Its name.
        event: String,
    },
    /// The server closed the connection (capture ends, events kept).
    Closed(String),
    /// Something failed after events were captured (they are kept; the capture goes on).
    Problem(String),
}

#[derive(Deserialize)]
struct Incoming<'a> {
    event: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(default)]
    user_id: Option<String>,
}

/// `data` of a frame: a JSON string's contents, or the raw JSON of anything else.
fn data_text(raw: Option<&RawValue>) -> String {
    match raw {
        None => String::new(),
        Some(raw) if raw.get().starts_with('"') => serde_json::from_str::<String>(raw.get()).unwrap_or_default(),
        Some(raw) => raw.get().to_owned(),
    }
}

fn endpoint(url: &str, key: &str) -> Result<String, CaptureError> {
    let parsed = url::Url::parse(url).map_err(|_| CaptureError::Url(url.to_owned()))?;
    if !matches!(parsed.scheme(), "ws" | "wss") {
        return Err(CaptureError::Url(url.to_owned()));
    }
    if parsed.path().contains("/app/") {
        return Ok(url.to_owned());
    }
    let base = url.trim_end_matches('/');
    Ok(format!("{base}/app/{key}?protocol=7&client=pusher-local-capture&version={}", env!("CARGO_PKG_VERSION")))
}

/// Captures until `stop` resolves or the server closes; returns everything kept.
///
/// # Errors
/// [`CaptureError`] when the connection or a subscription fails before any event is captured;
/// later failures are reported as [`Notice::Problem`] and what was captured is kept.
pub async fn run(
    options: &Options,
    stop: impl Future<Output = ()>,
    mut notify: impl FnMut(Notice),
) -> Result<Fixture, CaptureError> {
    let url = endpoint(&options.url, &options.key)?;
    for name in &options.channels {
        let channel = ChannelName::parse(name, usize::MAX)
            .map_err(|e| CaptureError::Channel { name: name.clone(), reason: e.to_string() })?;
        if matches!(channel.kind(), ChannelKind::Private | ChannelKind::PrivateEncrypted | ChannelKind::Presence)
            && options.secret.is_none()
        {
            return Err(CaptureError::NeedsSecret(name.clone()));
        }
    }
    let connector = match url.starts_with("wss:") {
        true => Some(tokio_tungstenite::Connector::Rustls(options.trust.config()?)),
        false => None,
    };
    let (mut ws, _) =
        tokio_tungstenite::connect_async_tls_with_config(&url, None, false, connector).await.map_err(|e| {
            let reason = crate::tls::client::explain(&e).unwrap_or_else(|| e.to_string());
            CaptureError::Connect { url: url.clone(), reason }
        })?;

    let mut fixture = Fixture {
        name: None,
        description: Some(format!(
            "captured from {} on {}",
            options.url,
            chrono::Local::now().format("%Y-%m-%d at %H:%M:%S")
        )),
        events: Vec::new(),
    };
    let mut first: Option<Instant> = None;
    let mut pending: Vec<String> = Vec::new();
    let mut connected = false;
    tokio::pin!(stop);
    loop {
        let message = tokio::select! {
            () = &mut stop => break,
            m = ws.next() => m,
        };
        let text = match message {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(frame))) => {
                let reason = frame.map(|f| format!("{} {}", u16::from(f.code), f.reason)).unwrap_or_default();
                if !connected {
                    return Err(CaptureError::Refused { url, message: format!("closed with {reason}") });
                }
                notify(Notice::Closed(reason));
                break;
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => {
                notify(Notice::Closed("connection lost".into()));
                break;
            }
        };
        let Ok(frame) = serde_json::from_str::<Incoming<'_>>(&text) else { continue };
        match frame.event.as_str() {
            "pusher:connection_established" => {
                let data: serde_json::Value = serde_json::from_str(&data_text(frame.data)).unwrap_or_default();
                let socket_id = data["socket_id"].as_str().unwrap_or_default().to_owned();
                connected = true;
                notify(Notice::Connected(socket_id.clone()));
                for name in &options.channels {
                    let frame = subscribe_frame(options, &socket_id, name);
                    let _ = ws.send(Message::text(frame.to_string())).await;
                    pending.push(name.clone());
                }
            }
            "pusher:ping" => {
                let _ = ws.send(Message::text(json!({"event": "pusher:pong", "data": {}}).to_string())).await;
            }
            "pusher:error" if !connected => {
                return Err(CaptureError::Refused { url, message: data_text(frame.data) });
            }
            // Servers answer a refused subscription with pusher:error (no channel named):
            // while any subscription is pending, that is the one that failed.
            "pusher:error" if !pending.is_empty() => {
                let error = CaptureError::Subscription { channel: pending.join(", "), message: data_text(frame.data) };
                if fixture.events.is_empty() {
                    return Err(error);
                }
                // Events already captured are kept; the capture goes on for the other channels.
                notify(Notice::Problem(error.to_string()));
                pending.clear();
            }
            "pusher_internal:subscription_succeeded" => {
                if let Some(channel) = frame.channel {
                    pending.retain(|c| *c != channel);
                    notify(Notice::Subscribed(channel));
                }
            }
            "pusher:subscription_error" => {
                let channel = frame.channel.unwrap_or_default();
                pending.retain(|c| *c != channel);
                let error = CaptureError::Subscription { channel, message: data_text(frame.data) };
                if fixture.events.is_empty() {
                    return Err(error);
                }
                notify(Notice::Problem(error.to_string()));
            }
            name if name.starts_with("pusher:") || name.starts_with("pusher_internal:") => {}
            name => {
                let Some(channel) = frame.channel else { continue };
                let now = Instant::now();
                let start = *first.get_or_insert(now);
                let mut event = FixtureEvent::new(now - start, &channel, name, &data_text(frame.data));
                event.user_id = frame.user_id;
                event.time_ms = Some(chrono::Utc::now().timestamp_millis());
                fixture.events.push(event);
                notify(Notice::Event { count: fixture.events.len(), channel, event: name.to_owned() });
            }
        }
    }
    let _ = ws.close(None).await;
    Ok(fixture)
}

fn subscribe_frame(options: &Options, socket_id: &str, name: &str) -> serde_json::Value {
    let kind = ChannelName::parse(name, usize::MAX).map(|c| c.kind()).unwrap_or(ChannelKind::Public);
    let secret = options.secret.as_deref().unwrap_or_default();
    match kind {
        ChannelKind::Presence => {
            let channel_data =
                json!({ "user_id": options.user_id, "user_info": { "name": "pusher-local capture" } }).to_string();
            let auth = auth_value(&options.key, secret, &subscription_string(socket_id, name, Some(&channel_data)));
            json!({"event": "pusher:subscribe", "data": {"channel": name, "auth": auth, "channel_data": channel_data}})
        }
        ChannelKind::Private | ChannelKind::PrivateEncrypted => {
            let auth = auth_value(&options.key, secret, &subscription_string(socket_id, name, None));
            json!({"event": "pusher:subscribe", "data": {"channel": name, "auth": auth}})
        }
        ChannelKind::Public | ChannelKind::ServerToUser => {
            json!({"event": "pusher:subscribe", "data": {"channel": name, "auth": ""}})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_adds_the_app_path_unless_given() {
        assert!(endpoint("ws://127.0.0.1:6001", "k").unwrap().starts_with("ws://127.0.0.1:6001/app/k?protocol=7"));
        assert_eq!(endpoint("wss://h/app/k?protocol=7", "x").unwrap(), "wss://h/app/k?protocol=7");
        assert!(matches!(endpoint("http://h", "k"), Err(CaptureError::Url(_))));
    }

    #[test]
    fn data_strings_are_unwrapped_and_other_json_kept_raw() {
        let raw: &RawValue = serde_json::from_str(r#""{\"a\":1}""#).unwrap();
        assert_eq!(data_text(Some(raw)), r#"{"a":1}"#);
        let raw: &RawValue = serde_json::from_str(r#"{"b": 2}"#).unwrap();
        assert_eq!(data_text(Some(raw)), r#"{"b": 2}"#);
    }
}
