//! Capture: connect to any Pusher-compatible WebSocket endpoint as a client, subscribe to
//! channels (signing private and presence subscriptions when given the secret), and keep every
//! event that arrives with its time, as a [`Fixture`]. Offsets count from the first event.
//! Protocol events (`pusher:*`, `pusher_internal:*`) are answered or skipped, not kept.

use std::future::Future;
use std::ops::ControlFlow;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

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
    check_channels(options)?;
    let ws = connect(&url, &options.trust).await?;
    let mut capture = Capture {
        options,
        url,
        ws,
        fixture: Fixture {
            name: None,
            description: Some(format!(
                "captured from {} on {}",
                options.url,
                chrono::Local::now().format("%Y-%m-%d at %H:%M:%S")
            )),
            events: Vec::new(),
        },
        first: None,
        pending: Vec::new(),
        connected: false,
    };
    tokio::pin!(stop);
    loop {
        let message = tokio::select! {
            () = &mut stop => break,
            m = capture.ws.next() => m,
        };
        if capture.on_message(message, &mut notify).await?.is_break() {
            break;
        }
    }
    let _ = capture.ws.close(None).await;
    Ok(capture.fixture)
}

/// Every channel is valid, and the private and presence ones can be signed.
fn check_channels(options: &Options) -> Result<(), CaptureError> {
    for name in &options.channels {
        let channel = ChannelName::parse(name, usize::MAX)
            .map_err(|e| CaptureError::Channel { name: name.clone(), reason: e.to_string() })?;
        if matches!(channel.kind(), ChannelKind::Private | ChannelKind::PrivateEncrypted | ChannelKind::Presence)
            && options.secret.is_none()
        {
            return Err(CaptureError::NeedsSecret(name.clone()));
        }
    }
    Ok(())
}

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the WebSocket (over TLS for `wss://`, checked against `trust`).
async fn connect(url: &str, trust: &crate::tls::ClientTrust) -> Result<Socket, CaptureError> {
    let connector = match url.starts_with("wss:") {
        true => Some(tokio_tungstenite::Connector::Rustls(trust.config()?)),
        false => None,
    };
    let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(url, None, false, connector).await.map_err(|e| {
        let reason = crate::tls::client::explain(&e).unwrap_or_else(|| e.to_string());
        CaptureError::Connect { url: url.to_owned(), reason }
    })?;
    Ok(ws)
}

/// A capture under way: the connection, what was kept, and the subscriptions not yet answered.
struct Capture<'o> {
    options: &'o Options,
    /// The endpoint, for errors.
    url: String,
    ws: Socket,
    fixture: Fixture,
    /// When the first event arrived (offsets count from it).
    first: Option<Instant>,
    /// Channels subscribed to and not yet answered.
    pending: Vec<String>,
    /// `connection_established` has arrived.
    connected: bool,
}

impl Capture<'_> {
    /// Handles what the socket gave; `Break` ends the capture (the server closed it).
    async fn on_message(
        &mut self,
        message: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
        notify: &mut impl FnMut(Notice),
    ) -> Result<ControlFlow<()>, CaptureError> {
        let text = match message {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(frame))) => {
                let reason = frame.map(|f| format!("{} {}", u16::from(f.code), f.reason)).unwrap_or_default();
                if !self.connected {
                    return Err(self.refused(format!("closed with {reason}")));
                }
                notify(Notice::Closed(reason));
                return Ok(ControlFlow::Break(()));
            }
            Some(Ok(_)) => return Ok(ControlFlow::Continue(())),
            Some(Err(_)) | None => {
                notify(Notice::Closed("connection lost".into()));
                return Ok(ControlFlow::Break(()));
            }
        };
        if let Ok(frame) = serde_json::from_str::<Incoming<'_>>(&text) {
            self.on_frame(frame, notify).await?;
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Answers a protocol frame, or keeps an event.
    async fn on_frame(&mut self, frame: Incoming<'_>, notify: &mut impl FnMut(Notice)) -> Result<(), CaptureError> {
        match frame.event.as_str() {
            "pusher:connection_established" => self.on_connected(frame.data, notify).await,
            "pusher:ping" => {
                let _ = self.ws.send(Message::text(json!({"event": "pusher:pong", "data": {}}).to_string())).await;
            }
            "pusher:error" if !self.connected => return Err(self.refused(data_text(frame.data))),
            // Servers answer a refused subscription with pusher:error (no channel named):
            // while any subscription is pending, that is the one that failed.
            "pusher:error" if !self.pending.is_empty() => {
                let channel = self.pending.join(", ");
                self.subscription_failed(channel, frame.data, notify)?;
                // The capture goes on for the other channels.
                self.pending.clear();
            }
            "pusher_internal:subscription_succeeded" => {
                if let Some(channel) = frame.channel {
                    self.pending.retain(|c| *c != channel);
                    notify(Notice::Subscribed(channel));
                }
            }
            "pusher:subscription_error" => {
                let channel = frame.channel.unwrap_or_default();
                self.pending.retain(|c| *c != channel);
                self.subscription_failed(channel, frame.data, notify)?;
            }
            name if name.starts_with("pusher:") || name.starts_with("pusher_internal:") => {}
            name => {
                if let Some(channel) = frame.channel {
                    self.keep(channel, name, frame.data, frame.user_id, notify);
                }
            }
        }
        Ok(())
    }

    /// `connection_established`: subscribes to every channel.
    async fn on_connected(&mut self, data: Option<&RawValue>, notify: &mut impl FnMut(Notice)) {
        let data: serde_json::Value = serde_json::from_str(&data_text(data)).unwrap_or_default();
        let socket_id = data["socket_id"].as_str().unwrap_or_default().to_owned();
        self.connected = true;
        notify(Notice::Connected(socket_id.clone()));
        for name in &self.options.channels {
            let frame = subscribe_frame(self.options, &socket_id, name);
            let _ = self.ws.send(Message::text(frame.to_string())).await;
            self.pending.push(name.clone());
        }
    }

    /// A refused subscription: an error before any event is captured; after, a
    /// [`Notice::Problem`] (events already captured are kept).
    fn subscription_failed(
        &self,
        channel: String,
        data: Option<&RawValue>,
        notify: &mut impl FnMut(Notice),
    ) -> Result<(), CaptureError> {
        let error = CaptureError::Subscription { channel, message: data_text(data) };
        if self.fixture.events.is_empty() {
            return Err(error);
        }
        notify(Notice::Problem(error.to_string()));
        Ok(())
    }

    /// Keeps an event, with its offset from the first one.
    fn keep(
        &mut self,
        channel: String,
        name: &str,
        data: Option<&RawValue>,
        user_id: Option<String>,
        notify: &mut impl FnMut(Notice),
    ) {
        let now = Instant::now();
        let start = *self.first.get_or_insert(now);
        let mut event = FixtureEvent::new(now - start, &channel, name, &data_text(data));
        event.user_id = user_id;
        event.time_ms = Some(chrono::Utc::now().timestamp_millis());
        self.fixture.events.push(event);
        notify(Notice::Event { count: self.fixture.events.len(), channel, event: name.to_owned() });
    }

    fn refused(&self, message: String) -> CaptureError {
        CaptureError::Refused { url: self.url.clone(), message }
    }
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
