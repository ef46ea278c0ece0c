//! What a webhook says: the event kinds of protocol.md §8.2, one `events[]` item
//! ([`WebhookEvent`]), the exact body `{"time_ms":…,"events":[…]}` and its signature.
//!
//! Pure: serde and HMAC only, no IO.

use std::sync::Arc;

use serde::Serialize;

pub use crate::apps::WebhookKind as Kind;

/// One item of `events[]`. Fields a kind does not carry are left out of the JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookEvent {
    /// The kind.
    pub name: Kind,
    /// The channel.
    pub channel: Arc<str>,
    /// member_added / member_removed, and client_event on presence channels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Arc<str>>,
    /// client_event: the event name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<Arc<str>>,
    /// client_event: the data, as the string the client sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Arc<str>>,
    /// client_event: the sender's socket id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_id: Option<String>,
    /// subscription_count: the number of connections subscribed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_count: Option<usize>,
}

impl WebhookEvent {
    /// An event with only `name` and `channel`.
    pub fn new(name: Kind, channel: impl Into<Arc<str>>) -> Self {
        Self {
            name,
            channel: channel.into(),
            user_id: None,
            event: None,
            data: None,
            socket_id: None,
            subscription_count: None,
        }
    }

    /// The same with a `user_id`.
    pub fn with_user(mut self, user_id: Arc<str>) -> Self {
        self.user_id = Some(user_id);
        self
    }

    /// `kind channel` (plus the user or client event), for log lines.
    pub fn label(&self) -> String {
        let mut label = format!("{} {}", self.name.as_str(), self.channel);
        if let Some(event) = &self.event {
            label.push(' ');
            label.push_str(event);
        }
        if let Some(user) = &self.user_id {
            label.push_str(" user ");
            label.push_str(user);
        }
        label
    }
}

#[derive(Serialize)]
struct Body<'a> {
    time_ms: u64,
    events: &'a [WebhookEvent],
}

/// The exact body bytes: `{"time_ms":…,"events":[…]}`.
pub fn body(time_ms: u64, events: &[WebhookEvent]) -> String {
    // Serialising plain strings and integers cannot fail.
    serde_json::to_string(&Body { time_ms, events }).expect("webhook body encodes")
}

/// `X-Pusher-Signature`: hex HMAC-SHA256 of the raw body with the app secret.
pub fn signature(secret: &str, body: &str) -> String {
    crate::auth::sign(secret, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_count_item_carries_an_integer() {
        let mut e = WebhookEvent::new(Kind::SubscriptionCount, "my-channel");
        e.subscription_count = Some(3);
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"name":"subscription_count","channel":"my-channel","subscription_count":3}"#
        );
    }

    #[test]
    fn body_and_signature_match_the_documented_example() {
        // protocol.md §8.1: this exact body with secret 7ad3773142a6692b25b8.
        let events = [WebhookEvent::new(Kind::ChannelOccupied, "test_channel")];
        let body = body(1327078148132, &events);
        assert_eq!(
            body,
            r#"{"time_ms":1327078148132,"events":[{"name":"channel_occupied","channel":"test_channel"}]}"#
        );
        assert_eq!(
            signature("7ad3773142a6692b25b8", &body),
            "709fdb84c03664445f7698120b0edf0acc1ab1c8c6e93a0368c61841d6b998aa"
        );
    }

    #[test]
    fn client_event_carries_its_fields_and_kinds_parse_from_toml_names() {
        let e = WebhookEvent {
            name: Kind::ClientEvent,
            channel: "presence-x".into(),
            user_id: Some("u1".into()),
            event: Some("client-foo".into()),
            data: Some(r#"{"a":1}"#.into()),
            socket_id: Some("123.456".into()),
            subscription_count: None,
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"name":"client_event","channel":"presence-x","user_id":"u1","event":"client-foo","data":"{\"a\":1}","socket_id":"123.456"}"#
        );
        let kinds: Vec<Kind> = serde_json::from_str(r#"["member_removed","cache_miss"]"#).unwrap();
        assert_eq!(kinds, [Kind::MemberRemoved, Kind::CacheMiss]);
    }
}
