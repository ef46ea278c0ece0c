//! `ClientMessage`: what a client may send, parsed from one text frame.
//!
//! Clients send `data` as an object (pusher-js), as a JSON-encoded string (some libraries), or
//! not at all (the Java ping); all three are accepted. Channel names stay strings here: their
//! validation needs the app's limits and happens in the session.

use serde::Deserialize;
use serde_json::value::RawValue;

/// One message from a client.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    /// `pusher:subscribe`.
    Subscribe(Subscribe),
    /// `pusher:unsubscribe`.
    Unsubscribe {
        /// The channel to leave.
        channel: String,
    },
    /// `pusher:ping`.
    Ping,
    /// `pusher:pong` (answer to our ping).
    Pong,
    /// `pusher:signin`.
    Signin {
        /// `"<key>:<hex>"`.
        auth: String,
        /// The signed JSON text, byte for byte.
        user_data: String,
    },
    /// A `client-*` event.
    ClientEvent {
        /// The event name (starts with `client-`).
        event: String,
        /// The target channel.
        channel: String,
        /// The payload as the JSON text to relay in a string `data` field.
        data: String,
    },
}

/// The `data` of `pusher:subscribe`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Subscribe {
    /// The channel name.
    pub channel: String,
    /// `"<key>:<hex>"`, or `""`/absent for public channels.
    #[serde(default)]
    pub auth: Option<String>,
    /// Presence member data, the exact signed text.
    #[serde(default)]
    pub channel_data: Option<String>,
}

/// Why a frame could not be understood. Each is answered with a `pusher:error`, code null.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Not JSON, or not an object.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// No `event` field.
    #[error("message has no \"event\" field")]
    MissingEvent,
    /// A `pusher:` event clients may not send.
    #[error("unsupported event {0:?}: clients may send pusher:subscribe, pusher:unsubscribe, pusher:ping, pusher:pong, pusher:signin and client-* events")]
    UnsupportedEvent(String),
    /// A required field is missing or has the wrong type.
    #[error("{event} needs {field}")]
    MissingField {
        /// The event.
        event: &'static str,
        /// What is missing, e.g. `data.channel (a string)`.
        field: &'static str,
    },
}

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(borrow, default)]
    event: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

/// `data` as an object, or as a string that holds the object's JSON.
fn data_as<T: for<'de> Deserialize<'de>>(data: Option<&RawValue>) -> Option<T> {
    let raw = data?.get();
    if raw.starts_with('"') {
        let inner: String = serde_json::from_str(raw).ok()?;
        serde_json::from_str(&inner).ok()
    } else {
        serde_json::from_str(raw).ok()
    }
}

impl ClientMessage {
    /// Parses one text frame.
    ///
    /// # Errors
    /// [`ProtocolError`] describing what is wrong, for the `pusher:error` reply.
    pub fn parse(text: &str) -> Result<Self, ProtocolError> {
        let frame: Frame<'_> = serde_json::from_str(text).map_err(|e| {
            // Not an object (a data error) gets the example; a key given twice is named.
            let duplicate = e.is_data() && e.to_string().starts_with("duplicate field");
            ProtocolError::InvalidJson(if e.is_data() && !duplicate {
                "expected an object such as {\"event\":\"pusher:ping\",\"data\":{}}".into()
            } else {
                e.to_string()
            })
        })?;
        let event = frame.event.ok_or(ProtocolError::MissingEvent)?;
        match &*event {
            "pusher:subscribe" => data_as::<Subscribe>(frame.data)
                .map(ClientMessage::Subscribe)
                .ok_or(ProtocolError::MissingField { event: "pusher:subscribe", field: "data.channel (a string)" }),
            "pusher:unsubscribe" => {
                #[derive(Deserialize)]
                struct Unsubscribe {
                    channel: String,
                }
                data_as::<Unsubscribe>(frame.data).map(|u| ClientMessage::Unsubscribe { channel: u.channel }).ok_or(
                    ProtocolError::MissingField { event: "pusher:unsubscribe", field: "data.channel (a string)" },
                )
            }
            "pusher:ping" => Ok(ClientMessage::Ping),
            "pusher:pong" => Ok(ClientMessage::Pong),
            "pusher:signin" => {
                #[derive(Deserialize)]
                struct Signin {
                    auth: String,
                    user_data: String,
                }
                data_as::<Signin>(frame.data)
                    .map(|s| ClientMessage::Signin { auth: s.auth, user_data: s.user_data })
                    .ok_or(ProtocolError::MissingField {
                        event: "pusher:signin",
                        field: "data.auth and data.user_data (strings)",
                    })
            }
            name if name.starts_with("client-") => {
                let channel = frame
                    .channel
                    .ok_or(ProtocolError::MissingField { event: "a client event", field: "channel (a string)" })?;
                let data = match frame.data {
                    None => "{}".to_owned(),
                    Some(raw) if raw.get().starts_with('"') => {
                        serde_json::from_str(raw.get()).map_err(|e| ProtocolError::InvalidJson(e.to_string()))?
                    }
                    Some(raw) => raw.get().to_owned(),
                };
                Ok(ClientMessage::ClientEvent { event: name.to_owned(), channel, data })
            }
            other => Err(ProtocolError::UnsupportedEvent(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pusher_js_public_subscribe_with_empty_auth() {
        let m =
            ClientMessage::parse(r#"{"event":"pusher:subscribe","data":{"auth":"","channel":"my-channel"}}"#).unwrap();
        assert_eq!(
            m,
            ClientMessage::Subscribe(Subscribe {
                channel: "my-channel".into(),
                auth: Some(String::new()),
                channel_data: None
            })
        );
    }

    #[test]
    fn presence_subscribe_keeps_channel_data_verbatim() {
        let m = ClientMessage::parse(r#"{"event":"pusher:subscribe","data":{"auth":"k:s","channel_data":"{\"user_id\": \"10\"}","channel":"presence-x"}}"#).unwrap();
        let ClientMessage::Subscribe(s) = m else { panic!("{m:?}") };
        assert_eq!(s.channel_data.as_deref(), Some(r#"{"user_id": "10"}"#));
    }

    #[test]
    fn data_may_be_a_json_string() {
        let m = ClientMessage::parse(r#"{"event":"pusher:subscribe","data":"{\"channel\":\"a\"}"}"#).unwrap();
        assert!(matches!(m, ClientMessage::Subscribe(s) if s.channel == "a"));
    }

    #[test]
    fn java_ping_without_data() {
        assert_eq!(ClientMessage::parse(r#"{"event": "pusher:ping"}"#), Ok(ClientMessage::Ping));
    }

    #[test]
    fn client_event_object_data_is_relayed_as_json_text() {
        let m = ClientMessage::parse(r#"{"event":"client-typing","data":{"typing":true},"channel":"private-chat"}"#)
            .unwrap();
        assert_eq!(
            m,
            ClientMessage::ClientEvent {
                event: "client-typing".into(),
                channel: "private-chat".into(),
                data: r#"{"typing":true}"#.into()
            }
        );
    }

    #[test]
    fn client_event_string_data_is_relayed_as_is() {
        let m = ClientMessage::parse(r#"{"event":"client-a","data":"hi","channel":"private-c"}"#).unwrap();
        assert!(matches!(m, ClientMessage::ClientEvent { data, .. } if data == "hi"));
    }

    #[test]
    fn bad_frames_are_described() {
        assert!(matches!(ClientMessage::parse("nope"), Err(ProtocolError::InvalidJson(_))));
        assert!(matches!(ClientMessage::parse("[1]"), Err(ProtocolError::InvalidJson(_))));
        assert_eq!(ClientMessage::parse("{}"), Err(ProtocolError::MissingEvent));
        assert_eq!(
            ClientMessage::parse(r#"{"event":"pusher:foo"}"#),
            Err(ProtocolError::UnsupportedEvent("pusher:foo".into()))
        );
        assert!(matches!(
            ClientMessage::parse(r#"{"event":"pusher:subscribe","data":{}}"#),
            Err(ProtocolError::MissingField { .. })
        ));
        assert!(matches!(
            ClientMessage::parse(r#"{"event":"client-x","data":{}}"#),
            Err(ProtocolError::MissingField { .. })
        ));
    }
}
