//! Server → client frames, encoded once into shareable [`Frame`] bytes.
//!
//! Pusher double-encodes `data`: on every server frame it is a JSON *string* holding JSON
//! (protocol.md §2.1), except `pusher:error`, whose `data` is an object as real Pusher sends it.
//! Every frame carries `data` (Java and Swift need it).

use serde::Serialize;
use serde_json::value::RawValue;

use super::socket_id::SocketId;

/// An encoded text frame. Cloning shares the bytes, so one encoding serves every subscriber;
/// it is tungstenite's UTF-8 byte type so the WebSocket layer sends it without re-validating.
pub type Frame = tokio_tungstenite::tungstenite::Utf8Bytes;

#[derive(Serialize)]
struct Out<'a, D: Serialize> {
    event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    data: D,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
}

fn encode<D: Serialize>(event: &str, channel: Option<&str>, data: D, user_id: Option<&str>) -> Frame {
    // Serialising plain structs of strings and numbers into a String cannot fail.
    let text = serde_json::to_string(&Out { event, channel, data, user_id }).expect("frames are plain JSON");
    Frame::from(text)
}

fn json<T: Serialize>(value: &T) -> String {
    // Same: maps, strings and numbers only.
    serde_json::to_string(value).expect("plain JSON")
}

/// `pusher:connection_established`.
pub fn connection_established(socket_id: SocketId, activity_timeout_secs: u64) -> Frame {
    #[derive(Serialize)]
    struct Data {
        socket_id: String,
        activity_timeout: u64,
    }
    let data = json(&Data { socket_id: socket_id.to_string(), activity_timeout: activity_timeout_secs });
    encode("pusher:connection_established", None, data, None)
}

/// `pusher:error` with `data` as an object; `code` is null for subscription-level errors.
pub fn error(code: Option<u16>, message: &str) -> Frame {
    #[derive(Serialize)]
    struct Data<'a> {
        code: Option<u16>,
        message: &'a str,
    }
    encode("pusher:error", None, Data { code, message }, None)
}

/// `pusher_internal:subscription_succeeded` for a non-presence channel (`data:"{}"`).
pub fn subscription_succeeded(channel: &str) -> Frame {
    encode("pusher_internal:subscription_succeeded", Some(channel), "{}", None)
}

/// One presence member as the client sent it: the `user_id` JSON (string or number) and info.
#[derive(Debug, Clone)]
pub struct MemberRef<'a> {
    /// The `user_id` JSON value as received.
    pub user_id: &'a RawValue,
    /// The user id as text (the key of `hash`).
    pub key: &'a str,
    /// `user_info` as received, if any.
    pub user_info: Option<&'a RawValue>,
}

/// `pusher_internal:subscription_succeeded` for a presence channel: `ids` (as strings), `hash`,
/// `count`.
pub fn presence_subscription_succeeded<'a>(
    channel: &str,
    members: impl ExactSizeIterator<Item = MemberRef<'a>> + Clone,
) -> Frame {
    #[derive(Serialize)]
    struct Presence<'a, I: Serialize, H: Serialize> {
        presence: Inner<'a, I, H>,
    }
    #[derive(Serialize)]
    struct Inner<'a, I: Serialize, H: Serialize> {
        ids: I,
        hash: H,
        count: usize,
        #[serde(skip)]
        _p: std::marker::PhantomData<&'a ()>,
    }
    let count = members.len();
    // `ids` are strings whatever JSON type `user_id` had: pusher-websocket-java before its typed
    // messages iterates them as `List<String>` (a number throws ClassCastException); pusher-js
    // and Swift read `hash`, whose keys are strings anyway.
    let ids: Vec<&str> = members.clone().map(|m| m.key).collect();
    let null = RawValue::NULL;
    let hash: std::collections::BTreeMap<&str, &RawValue> =
        members.map(|m| (m.key, m.user_info.unwrap_or(null))).collect();
    let data = json(&Presence { presence: Inner { ids, hash, count, _p: std::marker::PhantomData } });
    encode("pusher_internal:subscription_succeeded", Some(channel), data, None)
}

/// `pusher_internal:member_added`.
pub fn member_added(channel: &str, member: &MemberRef<'_>) -> Frame {
    #[derive(Serialize)]
    struct Data<'a> {
        user_id: &'a RawValue,
        #[serde(skip_serializing_if = "Option::is_none")]
        user_info: Option<&'a RawValue>,
    }
    let data = json(&Data { user_id: member.user_id, user_info: member.user_info });
    encode("pusher_internal:member_added", Some(channel), data, None)
}

/// `pusher_internal:member_removed`.
pub fn member_removed(channel: &str, user_id: &RawValue) -> Frame {
    #[derive(Serialize)]
    struct Data<'a> {
        user_id: &'a RawValue,
    }
    encode("pusher_internal:member_removed", Some(channel), json(&Data { user_id }), None)
}

/// A channel event; `data` is relayed exactly as published. `user_id` only for presence
/// client events.
pub fn event(channel: &str, event: &str, data: &str, user_id: Option<&str>) -> Frame {
    encode(event, Some(channel), data, user_id)
}

/// `pusher:pong`, the answer to a client's `pusher:ping`.
pub fn pong() -> Frame {
    encode("pusher:pong", None, "{}", None)
}

/// `pusher:ping`, sent to a client that has been silent for the activity timeout.
pub fn ping() -> Frame {
    encode("pusher:ping", None, "{}", None)
}

/// `pusher:cache_miss` on a cache channel with no cached event.
pub fn cache_miss(channel: &str) -> Frame {
    encode("pusher:cache_miss", Some(channel), "{}", None)
}

/// `pusher_internal:subscription_count`.
pub fn subscription_count(channel: &str, count: usize) -> Frame {
    #[derive(Serialize)]
    struct Data {
        subscription_count: usize,
    }
    encode("pusher_internal:subscription_count", Some(channel), json(&Data { subscription_count: count }), None)
}

/// `pusher:signin_success`, echoing `user_data` as the same string.
pub fn signin_success(user_data: &str) -> Frame {
    #[derive(Serialize)]
    struct Data<'a> {
        user_data: &'a str,
    }
    encode("pusher:signin_success", None, json(&Data { user_data }), None)
}

/// `pusher_internal:watchlist_events` with `online`/`offline` groups (empty groups omitted).
pub fn watchlist_events(online: &[&str], offline: &[&str]) -> Frame {
    #[derive(Serialize)]
    struct Group<'a> {
        name: &'static str,
        user_ids: &'a [&'a str],
    }
    #[derive(Serialize)]
    struct Data<'a> {
        events: Vec<Group<'a>>,
    }
    let mut events = Vec::new();
    if !online.is_empty() {
        events.push(Group { name: "online", user_ids: online });
    }
    if !offline.is_empty() {
        events.push(Group { name: "offline", user_ids: offline });
    }
    encode("pusher_internal:watchlist_events", None, json(&Data { events }), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    #[test]
    fn connection_established_double_encodes_data() {
        let f = connection_established(SocketId::new(264774, 13368624), 120);
        assert_eq!(
            f.as_str(),
            r#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"264774.13368624\",\"activity_timeout\":120}"}"#
        );
    }

    #[test]
    fn error_data_is_an_object_with_numeric_or_null_code() {
        assert_eq!(
            error(Some(4001), "Application does not exist").as_str(),
            r#"{"event":"pusher:error","data":{"code":4001,"message":"Application does not exist"}}"#
        );
        assert_eq!(error(None, "x").as_str(), r#"{"event":"pusher:error","data":{"code":null,"message":"x"}}"#);
    }

    #[test]
    fn subscription_succeeded_carries_empty_object_string() {
        assert_eq!(
            subscription_succeeded("my-channel").as_str(),
            r#"{"event":"pusher_internal:subscription_succeeded","channel":"my-channel","data":"{}"}"#
        );
    }

    #[test]
    fn presence_roster_has_ids_hash_and_count() {
        let (a, b, info) = (raw("\"1\""), raw("2"), raw(r#"{"name":"A"}"#));
        let members = [
            MemberRef { user_id: &a, key: "1", user_info: Some(&info) },
            MemberRef { user_id: &b, key: "2", user_info: None },
        ];
        let f = presence_subscription_succeeded("presence-x", members.iter().cloned());
        assert_eq!(
            f.as_str(),
            r#"{"event":"pusher_internal:subscription_succeeded","channel":"presence-x","data":"{\"presence\":{\"ids\":[\"1\",\"2\"],\"hash\":{\"1\":{\"name\":\"A\"},\"2\":null},\"count\":2}}"}"#
        );
    }

    #[test]
    fn member_frames_match_the_protocol() {
        let (id, info) = (raw("\"3\""), raw(r#"{"name":"C"}"#));
        let m = MemberRef { user_id: &id, key: "3", user_info: Some(&info) };
        assert_eq!(
            member_added("presence-example", &m).as_str(),
            r#"{"event":"pusher_internal:member_added","channel":"presence-example","data":"{\"user_id\":\"3\",\"user_info\":{\"name\":\"C\"}}"}"#
        );
        assert_eq!(
            member_removed("presence-example", &id).as_str(),
            r#"{"event":"pusher_internal:member_removed","channel":"presence-example","data":"{\"user_id\":\"3\"}"}"#
        );
    }

    #[test]
    fn events_relay_data_verbatim_and_user_id_at_top_level() {
        assert_eq!(
            event("my-channel", "my-event", r#"{"message":"hello"}"#, None).as_str(),
            r#"{"event":"my-event","channel":"my-channel","data":"{\"message\":\"hello\"}"}"#
        );
        assert_eq!(
            event("presence-c", "client-x", "{}", Some("3")).as_str(),
            r#"{"event":"client-x","channel":"presence-c","data":"{}","user_id":"3"}"#
        );
    }

    #[test]
    fn signin_success_echoes_user_data_as_a_string() {
        assert_eq!(
            signin_success(r#"{"id":"12345"}"#).as_str(),
            r#"{"event":"pusher:signin_success","data":"{\"user_data\":\"{\\\"id\\\":\\\"12345\\\"}\"}"}"#
        );
    }

    #[test]
    fn watchlist_events_group_online_and_offline() {
        assert_eq!(
            watchlist_events(&["2", "3"], &["4"]).as_str(),
            r#"{"event":"pusher_internal:watchlist_events","data":"{\"events\":[{\"name\":\"online\",\"user_ids\":[\"2\",\"3\"]},{\"name\":\"offline\",\"user_ids\":[\"4\"]}]}"}"#
        );
    }

    #[test]
    fn small_frames() {
        assert_eq!(pong().as_str(), r#"{"event":"pusher:pong","data":"{}"}"#);
        assert_eq!(cache_miss("cache-x").as_str(), r#"{"event":"pusher:cache_miss","channel":"cache-x","data":"{}"}"#);
        assert_eq!(
            subscription_count("c", 3).as_str(),
            r#"{"event":"pusher_internal:subscription_count","channel":"c","data":"{\"subscription_count\":3}"}"#
        );
    }
}
