//! Protocol behaviour over a real socket: handshake, subscriptions, presence, cache, client
//! events, signin, keepalive, bad input and shutdown.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

#[tokio::test]
async fn handshake_sends_connection_established_with_double_encoded_data() {
    let server = TestServer::start().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url(KEY)).await.unwrap();
    let Some(Ok(Message::Text(text))) = futures_util::StreamExt::next(&mut ws).await else { panic!("no frame") };
    let frame: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(frame["event"], "pusher:connection_established");
    let data: Value = serde_json::from_str(frame["data"].as_str().expect("data is a JSON string")).unwrap();
    let socket_id = data["socket_id"].as_str().expect("socket_id is a string");
    let (a, b) = socket_id.split_once('.').unwrap();
    assert!(a.bytes().all(|c| c.is_ascii_digit()) && b.bytes().all(|c| c.is_ascii_digit()), "{socket_id}");
    assert_eq!(data["activity_timeout"], 120);
    server.stop().await;
}

#[tokio::test]
async fn socket_ids_are_unique() {
    let server = TestServer::start().await;
    let a = server.client().await;
    let b = server.client().await;
    assert_ne!(a.socket_id, b.socket_id);
}

#[tokio::test]
async fn handshake_errors_send_a_numeric_pusher_error_then_close_with_the_code() {
    let server = TestServer::start().await;
    let cases = [
        (format!("ws://{}/app/no-such-key?protocol=7", server.addr), 4001),
        (format!("ws://{}/app/{KEY}?protocol=3", server.addr), 4007),
        (format!("ws://{}/app/{KEY}?protocol=99", server.addr), 4007),
        // A WebSocket on any path but `…/app/{key}`: 4005, so pusher-js stops instead of retrying.
        (format!("ws://{}/app/?protocol=7", server.addr), 4005),
        (format!("ws://{}/app/{KEY}/extra?protocol=7", server.addr), 4005),
        (format!("ws://{}/pusher?protocol=7", server.addr), 4005),
        (format!("ws://{}/apps/1/events", server.addr), 4005),
    ];
    for (url, code) in cases {
        let (ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        let mut client = Client { ws, socket_id: String::new() };
        let error = client.expect_error().await;
        assert_eq!(error["code"], code, "{url}");
        assert_eq!(client.expect_close().await, Some(code), "{url}");
    }
}

#[tokio::test]
async fn missing_protocol_is_accepted_as_seven() {
    let server = TestServer::start().await;
    Client::connect(&format!("ws://{}/app/{KEY}", server.addr)).await;
}

#[tokio::test]
async fn pusher_ping_gets_pusher_pong_and_java_style_ping_without_data_too() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.assert_alive().await;
    c.send_text(r#"{"event": "pusher:ping"}"#).await;
    assert_eq!(c.recv().await, json!({"event": "pusher:pong", "data": "{}"}));
}

#[tokio::test]
async fn public_subscribe_succeeds_with_empty_object_data_and_duplicate_is_an_error() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.send(json!({"event": "pusher:subscribe", "data": {"auth": "", "channel": "my-channel"}})).await;
    assert_eq!(
        c.recv().await,
        json!({"event": "pusher_internal:subscription_succeeded", "channel": "my-channel", "data": "{}"})
    );
    c.send(json!({"event": "pusher:subscribe", "data": {"auth": "", "channel": "my-channel"}})).await;
    let error = c.expect_error().await;
    assert_eq!(error, json!({"code": null, "message": "Existing subscription to channel my-channel"}));
    c.assert_alive().await;
}

#[tokio::test]
async fn private_subscription_auth_is_checked_exactly_as_the_sdks_sign_it() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    assert_eq!(c.subscribe_signed("private-ok", None).await, json!({}));

    // Wrong secret.
    let bad = format!("{KEY}:{}", pusher_local::auth::sign("wrong", &format!("{}:private-a", c.socket_id)));
    c.send(json!({"event": "pusher:subscribe", "data": {"auth": bad, "channel": "private-a"}})).await;
    let msg = c.expect_error().await["message"].as_str().unwrap().to_owned();
    assert!(
        msg.starts_with(&format!(
            "Invalid signature: Expected HMAC SHA256 hex digest of {}:private-a, but got ",
            c.socket_id
        )),
        "{msg}"
    );

    // Key of another app.
    c.send(json!({"event": "pusher:subscribe", "data": {"auth": "other-key:abc", "channel": "private-a"}})).await;
    assert_eq!(c.expect_error().await["message"], "Invalid key in subscription auth data: 'other-key'");

    // No auth at all.
    c.send(json!({"event": "pusher:subscribe", "data": {"auth": "", "channel": "private-a"}})).await;
    assert!(c.expect_error().await["message"].as_str().unwrap().contains("requires an auth signature"));

    // channel_data on a private channel is part of the signature.
    let auth = channel_auth(&c.socket_id, "private-b", Some(""));
    c.send(json!({"event": "pusher:subscribe", "data": {"auth": auth, "channel": "private-b", "channel_data": ""}}))
        .await;
    c.expect("pusher_internal:subscription_succeeded").await;

    // A signature for another socket does not work.
    let stolen = channel_auth("1.1", "private-c", None);
    c.send(json!({"event": "pusher:subscribe", "data": {"auth": stolen, "channel": "private-c"}})).await;
    c.expect_error().await;
    c.assert_alive().await;
}

#[tokio::test]
async fn encrypted_channels_subscribe_with_private_auth_and_relay_payloads_untouched() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.subscribe_signed("private-encrypted-x", None).await;
    let payload = r#"{"nonce":"bm9uY2Vub25jZW5vbmNlbm9uY2Vub25j","ciphertext":"Y2lwaGVy"}"#;
    assert_eq!(server.api().trigger("private-encrypted-x", "secret", payload).await.0, 200);
    let frame = c.expect("secret").await;
    assert_eq!(frame["data"], payload);
}

#[tokio::test]
async fn presence_roster_counts_distinct_users_and_member_events_fire_on_first_and_last_socket() {
    let server = TestServer::start().await;
    let alice = r#"{"user_id":"alice","user_info":{"name":"Alice"}}"#;
    let bob = r#"{"user_id": "bob"}"#;
    let mut a1 = server.client().await;
    let roster = a1.subscribe_signed("presence-room", Some(alice)).await;
    assert_eq!(roster, json!({"presence": {"ids": ["alice"], "hash": {"alice": {"name": "Alice"}}, "count": 1}}));

    let mut b = server.client().await;
    let roster = b.subscribe_signed("presence-room", Some(bob)).await;
    assert_eq!(roster["presence"]["count"], 2);
    let added = a1.expect("pusher_internal:member_added").await;
    assert_eq!(data_of(&added), json!({"user_id": "bob"}));

    // Alice's second tab: roster still has two users, nobody hears member_added.
    let mut a2 = server.client().await;
    let roster = a2.subscribe_signed("presence-room", Some(alice)).await;
    assert_eq!(roster["presence"]["count"], 2);
    let mut ids: Vec<String> = serde_json::from_value(roster["presence"]["ids"].clone()).unwrap();
    ids.sort();
    assert_eq!(ids, ["alice", "bob"]);
    b.assert_alive().await; // no member_added queued before the pong

    // Alice's first tab leaves: still present through the second, no member_removed.
    a1.send(json!({"event": "pusher:unsubscribe", "data": {"channel": "presence-room"}})).await;
    a1.assert_alive().await;
    b.assert_alive().await;

    // Her last tab disconnects: member_removed to the others.
    drop(a2);
    let removed = b.expect("pusher_internal:member_removed").await;
    assert_eq!(removed["channel"], "presence-room");
    assert_eq!(data_of(&removed), json!({"user_id": "alice"}));
}

#[tokio::test]
async fn presence_user_ids_dedupe_on_their_string_form_ids_are_strings_member_frames_keep_the_type() {
    let server = TestServer::start().await;
    let mut a = server.client().await;
    a.subscribe_signed("presence-n", Some(r#"{"user_id":10}"#)).await;
    let mut b = server.client().await;
    let roster = b.subscribe_signed("presence-n", Some(r#"{"user_id":"10"}"#)).await;
    assert_eq!(roster["presence"]["count"], 1);
    // `ids` are strings (older Java clients iterate them as strings); member frames keep the type.
    assert_eq!(roster["presence"]["ids"], json!(["10"]));
    assert_eq!(roster["presence"]["hash"], json!({"10": null}));
    a.assert_alive().await;
    let mut c = server.client().await;
    c.subscribe_signed("presence-n", Some(r#"{"user_id":7}"#)).await;
    assert_eq!(data_of(&a.expect("pusher_internal:member_added").await), json!({"user_id": 7}));
    drop(c);
    assert_eq!(data_of(&a.expect("pusher_internal:member_removed").await), json!({"user_id": 7}));
}

#[tokio::test]
async fn presence_subscription_errors_are_reported_and_harmless() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    for channel_data in
        [None, Some("not json"), Some(r#"{"user_info":{}}"#), Some(r#"{"user_id":""}"#), Some(r#"{"user_id":true}"#)]
    {
        let auth = channel_auth(&c.socket_id, "presence-x", channel_data);
        let mut data = json!({"auth": auth, "channel": "presence-x"});
        if let Some(cd) = channel_data {
            data["channel_data"] = json!(cd);
        }
        c.send(json!({"event": "pusher:subscribe", "data": data})).await;
        let error = c.expect_error().await;
        assert!(error["message"].as_str().unwrap().contains("presence"), "{channel_data:?}: {error}");
    }
    let big = format!(r#"{{"user_id":"u","user_info":{{"bio":"{}"}}}}"#, "x".repeat(1100));
    let auth = channel_auth(&c.socket_id, "presence-x", Some(&big));
    c.send(json!({"event": "pusher:subscribe", "data": {"auth": auth, "channel": "presence-x", "channel_data": big}}))
        .await;
    assert!(c.expect_error().await["message"].as_str().unwrap().contains("user_info"));
    c.assert_alive().await;
}

#[tokio::test]
async fn presence_channel_is_limited_to_its_member_count() {
    let mut config = config();
    config.apps[0].limits.max_presence_members = 2;
    let server = TestServer::with(config).await;
    let mut clients = Vec::new();
    for user in ["a", "b"] {
        let mut c = server.client().await;
        c.subscribe_signed("presence-full", Some(&format!(r#"{{"user_id":"{user}"}}"#))).await;
        clients.push(c);
    }
    let mut c = server.client().await;
    let data = r#"{"user_id":"c"}"#;
    let auth = channel_auth(&c.socket_id, "presence-full", Some(data));
    c.send(
        json!({"event": "pusher:subscribe", "data": {"auth": auth, "channel": "presence-full", "channel_data": data}}),
    )
    .await;
    assert!(c.expect_error().await["message"].as_str().unwrap().contains("full"));
    // Another socket of a present user still gets in.
    let mut a2 = server.client().await;
    a2.subscribe_signed("presence-full", Some(r#"{"user_id":"a"}"#)).await;
}

#[tokio::test]
async fn cache_channel_sends_cache_miss_then_replays_the_last_event_to_new_subscribers() {
    let server = TestServer::start().await;
    let mut first = server.client().await;
    first.subscribe_public("cache-ticker").await;
    assert_eq!(first.recv().await, json!({"event": "pusher:cache_miss", "channel": "cache-ticker", "data": "{}"}));

    let api = server.api();
    api.trigger("cache-ticker", "price", r#"{"v":1}"#).await;
    api.trigger("cache-ticker", "price", r#"{"v":2}"#).await;
    first.expect("price").await;
    first.expect("price").await;

    let mut late = server.client().await;
    late.subscribe_public("cache-ticker").await;
    assert_eq!(late.recv().await, json!({"event": "price", "channel": "cache-ticker", "data": r#"{"v":2}"#}));

    let (status, body) = api.get("/apps/1/channels/cache-ticker", &[("info", "cache")]).await;
    assert_eq!(status, 200);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["cache"]["data"], r#"{"v":2}"#);
    assert!(body["cache"]["ttl"].as_u64().unwrap() > 1700);
}

#[tokio::test]
async fn client_events_reach_other_subscribers_never_the_sender_with_user_id_on_presence() {
    let server = TestServer::start().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    a.subscribe_signed("private-chat", None).await;
    b.subscribe_signed("private-chat", None).await;
    a.send(json!({"event": "client-typing", "channel": "private-chat", "data": {"typing": true}})).await;
    assert_eq!(
        b.recv().await,
        json!({"event": "client-typing", "channel": "private-chat", "data": r#"{"typing":true}"#})
    );
    a.assert_alive().await; // not echoed

    let mut p = server.client().await;
    let mut q = server.client().await;
    p.subscribe_signed("presence-chat", Some(r#"{"user_id":"p"}"#)).await;
    q.subscribe_signed("presence-chat", Some(r#"{"user_id":"q"}"#)).await;
    p.expect("pusher_internal:member_added").await;
    p.send(json!({"event": "client-hi", "channel": "presence-chat", "data": "hello"})).await;
    assert_eq!(
        q.recv().await,
        json!({"event": "client-hi", "channel": "presence-chat", "data": "hello", "user_id": "p"})
    );
}

#[tokio::test]
async fn client_event_rules_public_unsubscribed_disabled_and_oversized() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.subscribe_public("public-chat").await;
    c.send(json!({"event": "client-x", "channel": "public-chat", "data": {}})).await;
    assert!(c.expect_error().await["message"].as_str().unwrap().contains("only supported on private and presence"));
    c.send(json!({"event": "client-x", "channel": "private-elsewhere", "data": {}})).await;
    assert_eq!(
        c.expect_error().await["message"],
        "Cannot broadcast client event (connection not subscribed to channel private-elsewhere)"
    );
    c.subscribe_signed("private-big", None).await;
    c.send(json!({"event": "client-x", "channel": "private-big", "data": "x".repeat(10 * 1024 + 1)})).await;
    assert!(c.expect_error().await["message"].as_str().unwrap().contains("over the limit"));
    c.assert_alive().await;

    let mut config = config();
    config.apps[0].client_events = false;
    let server = TestServer::with(config).await;
    let mut c = server.client().await;
    c.subscribe_signed("private-x", None).await;
    c.send(json!({"event": "client-x", "channel": "private-x", "data": {}})).await;
    assert_eq!(
        c.expect_error().await["message"],
        "To send client events, you must enable this feature in the Settings page of your dashboard."
    );
}

#[tokio::test]
async fn more_than_ten_client_events_a_second_get_4301_and_the_socket_stays_open() {
    let server = TestServer::start().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    a.subscribe_signed("private-rate", None).await;
    b.subscribe_signed("private-rate", None).await;
    for i in 0..11 {
        a.send(json!({"event": "client-n", "channel": "private-rate", "data": {"i": i}})).await;
    }
    let error = a.expect_error().await;
    assert_eq!(error["code"], 4301);
    for i in 0..10 {
        assert_eq!(data_of(&b.recv().await), json!({"i": i}));
    }
    b.assert_alive().await; // the 11th was dropped
    a.assert_alive().await;
}

#[tokio::test]
async fn signin_success_echoes_user_data_and_unlocks_the_server_to_user_channel() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.send(json!({"event": "pusher:subscribe", "data": {"auth": "", "channel": "#server-to-user-u1"}})).await;
    assert!(c.expect_error().await["message"].as_str().unwrap().contains("sign in"));

    let user_data = r#"{"id":"u1","user_info":{"name":"U"}}"#;
    let ok = c.signin(user_data).await;
    assert_eq!(data_of(&ok), json!({"user_data": user_data}));
    c.subscribe_public("#server-to-user-u1").await;
    let (status, _) = server.api().trigger("#server-to-user-u1", "note", "hi").await;
    assert_eq!(status, 200);
    assert_eq!(c.recv().await, json!({"event": "note", "channel": "#server-to-user-u1", "data": "hi"}));

    // Bad signin signature: error, socket stays.
    let mut d = server.client().await;
    d.send(json!({"event": "pusher:signin", "data": {"auth": format!("{KEY}:00"), "user_data": user_data}})).await;
    assert!(d.expect_error().await["message"].as_str().unwrap().starts_with("Invalid signature"));
    d.assert_alive().await;
}

#[tokio::test]
async fn watchlist_reports_current_state_then_online_and_offline_changes() {
    let server = TestServer::start().await;
    let mut watcher = server.client().await;
    watcher.signin(r#"{"id":"w","watchlist":["friend"]}"#).await;
    let initial = watcher.expect("pusher_internal:watchlist_events").await;
    assert_eq!(data_of(&initial), json!({"events": [{"name": "offline", "user_ids": ["friend"]}]}));

    let mut friend = server.client().await;
    friend.signin(r#"{"id":"friend"}"#).await;
    let online = watcher.expect("pusher_internal:watchlist_events").await;
    assert_eq!(data_of(&online), json!({"events": [{"name": "online", "user_ids": ["friend"]}]}));
    drop(friend);
    let offline = watcher.expect("pusher_internal:watchlist_events").await;
    assert_eq!(data_of(&offline), json!({"events": [{"name": "offline", "user_ids": ["friend"]}]}));
}

#[tokio::test]
async fn terminate_connections_closes_every_socket_of_the_user_with_4009() {
    let server = TestServer::start().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    let mut other = server.client().await;
    a.signin(r#"{"id":"target"}"#).await;
    b.signin(r#"{"id":"target"}"#).await;
    other.signin(r#"{"id":"bystander"}"#).await;
    let (status, body) = server.api().post("/apps/1/users/target/terminate_connections", &json!({})).await;
    assert_eq!((status, body.as_str()), (200, "{}"));
    assert_eq!(a.expect_close().await, Some(4009));
    assert_eq!(b.expect_close().await, Some(4009));
    other.assert_alive().await;
}

#[tokio::test]
async fn subscription_count_is_announced_on_subscribe_and_unsubscribe() {
    let mut config = config();
    config.apps[0].subscription_count = true;
    let server = TestServer::with(config).await;
    let mut a = server.client().await;
    a.subscribe_public("counted").await;
    let count = a.expect("pusher_internal:subscription_count").await;
    assert_eq!(data_of(&count), json!({"subscription_count": 1}));
    let mut b = server.client().await;
    b.subscribe_public("counted").await;
    assert_eq!(data_of(&b.expect("pusher_internal:subscription_count").await), json!({"subscription_count": 2}));
    assert_eq!(data_of(&a.expect("pusher_internal:subscription_count").await), json!({"subscription_count": 2}));
    drop(b);
    assert_eq!(data_of(&a.expect("pusher_internal:subscription_count").await), json!({"subscription_count": 1}));
}

/// One row per kind of bad input: what is sent, and a fragment of the `pusher:error` message.
#[tokio::test]
async fn bad_input_gets_a_precise_error_and_harms_nothing_else() {
    let server = TestServer::start().await;
    let mut bystander = server.client().await;
    bystander.subscribe_public("bystander").await;
    let long_channel = "a".repeat(165);
    let cases: Vec<(Message, &str)> = vec![
        (Message::text("not json"), "invalid JSON"),
        (Message::text("[1,2]"), "invalid JSON"),
        (Message::text("{}"), "no \"event\""),
        (Message::text(r#"{"event":"pusher:bogus","data":{}}"#), "unsupported event"),
        (Message::text(r#"{"event":"my-event","data":{}}"#), "unsupported event"),
        (Message::text(r#"{"event":"pusher:subscribe","data":{}}"#), "needs data.channel"),
        (Message::text(r#"{"event":"pusher:subscribe"}"#), "needs data.channel"),
        (Message::text(r#"{"event":"pusher:subscribe","data":{"channel":"bad name!"}}"#), "Invalid channel name"),
        (Message::text(r##"{"event":"pusher:subscribe","data":{"channel":"#secret"}}"##), "Invalid channel name"),
        (
            Message::text(format!(r#"{{"event":"pusher:subscribe","data":{{"channel":"{long_channel}"}}}}"#)),
            "limit is 164",
        ),
        (Message::text(r#"{"event":"client-x","data":{}}"#), "needs channel"),
        (Message::binary(vec![1u8, 2, 3]), "binary frames"),
        (Message::text(format!(r#"{{"event":"pusher:ping","data":"{}"}}"#, "x".repeat(300 * 1024))), "over the limit"),
    ];
    let mut c = server.client().await;
    for (message, fragment) in cases {
        c.ws.send(message).await.unwrap();
        let error = c.expect_error().await;
        let text = error["message"].as_str().unwrap();
        assert!(text.contains(fragment), "expected {fragment:?} in {text:?}");
        assert_eq!(error["code"], Value::Null);
        c.assert_alive().await;
    }
    // Nothing reached anyone else.
    bystander.assert_alive().await;
    let (status, _) = server.api().trigger("bystander", "still-works", "{}").await;
    assert_eq!(status, 200);
    bystander.expect("still-works").await;
}

#[tokio::test]
async fn invalid_utf8_closes_only_that_socket_with_1007() {
    use tokio_tungstenite::tungstenite::protocol::frame::{coding::Data, coding::OpCode, Frame};
    let server = TestServer::start().await;
    let mut bystander = server.client().await;
    let mut c = server.client().await;
    let frame = Frame::message(vec![0xff, 0xfe, 0xfd], OpCode::Data(Data::Text), true);
    c.ws.send(Message::Frame(frame)).await.unwrap();
    assert_eq!(c.expect_close().await, Some(1007));
    bystander.assert_alive().await;
}

#[tokio::test]
async fn idle_clients_are_pinged_and_closed_with_4201_when_they_do_not_answer() {
    let mut config = config();
    config.activity_timeout = Duration::from_secs(1);
    config.pong_timeout = Duration::from_secs(1);
    let server = TestServer::with(config).await;
    let mut answering = server.client().await;
    let mut silent = server.client().await;
    // The one that answers stays connected across several activity periods...
    for _ in 0..3 {
        answering.expect("pusher:ping").await;
        answering.send(json!({"event": "pusher:pong", "data": {}})).await;
    }
    answering.assert_alive().await;
    // ...while the silent one (its frames waited in its buffer) was pinged, then closed.
    assert_eq!(silent.recv().await, json!({"event": "pusher:ping", "data": "{}"}));
    assert_eq!(silent.expect_close().await, Some(4201));
}

/// Any inbound frame counts as activity: a client that talks more often than the activity
/// timeout is never pinged (the timer re-arms from the last frame heard).
#[tokio::test]
async fn a_client_that_keeps_talking_is_not_pinged() {
    let mut config = config();
    config.activity_timeout = Duration::from_secs(1);
    let server = TestServer::with(config).await;
    let mut chatty = server.client().await;
    // 2.4 s of frames every 400 ms: more than two activity periods.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        chatty.send(json!({"event": "pusher:ping", "data": {}})).await;
        assert_eq!(chatty.recv().await, json!({"event": "pusher:pong", "data": "{}"}));
    }
    // Silent from here: the ping comes one activity timeout after the last frame.
    let quiet = std::time::Instant::now();
    assert_eq!(chatty.recv().await, json!({"event": "pusher:ping", "data": "{}"}));
    let waited = quiet.elapsed();
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(3), "{waited:?}");
}

/// The Java and Swift clients never answer `pusher:ping`, but their WebSocket libraries answer a
/// protocol Ping (as tungstenite does here when it reads): that keeps them connected.
#[tokio::test]
async fn an_idle_client_that_only_answers_websocket_pings_stays_connected() {
    let mut config = config();
    config.activity_timeout = Duration::from_secs(1);
    config.pong_timeout = Duration::from_secs(1);
    let server = TestServer::with(config).await;
    let mut java_like = server.client().await;
    // Each read lets tungstenite send the Pong for the Ping that came with the pusher:ping;
    // without it, the second read would be the 4201 close.
    for _ in 0..3 {
        java_like.expect("pusher:ping").await;
    }
    java_like.assert_alive().await;
}

#[tokio::test]
async fn shutdown_closes_every_socket_with_1001_going_away() {
    let server = TestServer::start().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    a.subscribe_public("x").await;
    server.shutdown.cancel();
    for c in [&mut a, &mut b] {
        // No pusher:error: the close says it (pusher-js then retries 1 s later, not at once).
        assert_eq!(c.next().await, Next::Closed(Some(1001), "pusher-local is shutting down".into()));
    }
    server.stop().await;
}

#[tokio::test]
async fn a_socket_that_does_not_read_is_closed_with_4100_and_others_get_everything() {
    let mut config = config();
    config.outbox_capacity = 16;
    let server = TestServer::with(config).await;
    let mut reader = server.client().await;
    let mut stalled = server.client().await;
    reader.subscribe_public("firehose").await;
    stalled.subscribe_public("firehose").await;
    let api = server.api();
    let data = "x".repeat(10_000);
    // The reader reports its progress so publishing never runs ahead of it by more than a batch.
    let (progress_tx, mut progress) = tokio::sync::mpsc::unbounded_channel();
    let reading = tokio::spawn(async move {
        let mut got = 0usize;
        loop {
            let frame = reader.recv().await;
            if frame["event"] == "end" {
                return (reader, got);
            }
            got += 1;
            let _ = progress_tx.send(got);
        }
    });
    let mut published = 0;
    // Bounded: the stalled socket's kernel buffers hold a few MB, then its outbox fills.
    while published < 6000 {
        let batch: Vec<Value> = (0..10).map(|_| json!({"name": "bulk", "channel": "firehose", "data": data})).collect();
        assert_eq!(api.post("/apps/1/batch_events", &json!({"batch": batch})).await.0, 200);
        published += 10;
        while tokio::time::timeout(WAIT, progress.recv()).await.unwrap().unwrap() < published {}
        let (_, body) = api.get("/apps/1/channels/firehose", &[("info", "subscription_count")]).await;
        if serde_json::from_str::<Value>(&body).unwrap()["subscription_count"] == 1 {
            break;
        }
    }
    drop(progress);
    assert!(published < 6000, "the stalled socket was never dropped");
    // Its buffers are full, so the 4100 close frame reaches it only if it starts reading in
    // time; either way the connection ends after the frames it had buffered.
    let code = stalled.expect_close().await;
    assert!(matches!(code, Some(4100) | None), "{code:?}");
    api.trigger("firehose", "end", "{}").await;
    let (mut reader, got) = reading.await.unwrap();
    assert_eq!(got, published, "the reading subscriber got every event");
    reader.assert_alive().await;
}

#[tokio::test]
async fn connection_quota_refuses_with_4004() {
    let mut config = config();
    config.apps[0].limits.max_connections = Some(1);
    let server = TestServer::with(config).await;
    let _first = server.client().await;
    let (ws, _) = tokio_tungstenite::connect_async(server.ws_url(KEY)).await.unwrap();
    let mut second = Client { ws, socket_id: String::new() };
    assert_eq!(second.expect_error().await["code"], 4004);
    assert_eq!(second.expect_close().await, Some(4004));
}

#[tokio::test]
async fn apps_are_picked_by_key() {
    let mut config = config();
    let mut second = pusher_local::apps::App::new("2", "second-key", "second-secret");
    second.subscription_count = false;
    config.apps.push(second);
    let server = TestServer::with(config).await;
    let mut one = server.client().await;
    let mut two = Client::connect(&server.ws_url("second-key")).await;
    one.subscribe_public("shared-name").await;
    two.subscribe_public("shared-name").await;
    server.api().trigger("shared-name", "only-app-1", "{}").await;
    one.expect("only-app-1").await;
    two.assert_alive().await;
}

#[tokio::test]
async fn websocket_protocol_pings_are_answered_with_pongs() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.ws.send(Message::Ping(b"hi".to_vec().into())).await.unwrap();
    let reply = tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut c.ws)).await.unwrap();
    assert!(matches!(reply, Some(Ok(Message::Pong(ref p))) if p.as_ref() == b"hi"), "{reply:?}");
}

#[tokio::test]
async fn authorized_connections_close_unauthorized_sockets_with_4009_and_keep_signed_in_ones() {
    let mut config = config();
    config.apps[0].authorized_connections_timeout = Some(1);
    let server = TestServer::with(config).await;
    let mut idle = server.client().await;
    let mut public_only = server.client().await;
    let mut private = server.client().await;
    let mut signed_in = server.client().await;
    public_only.subscribe_public("news").await;
    private.subscribe_signed("private-a", None).await;
    signed_in.signin(r#"{"id":"u"}"#).await;
    for c in [&mut idle, &mut public_only] {
        let error = c.expect_error().await;
        assert_eq!(error, json!({"code": 4009, "message": "Connection not authorized within timeout"}));
        assert_eq!(c.expect_close().await, Some(4009));
    }
    private.assert_alive().await;
    signed_in.assert_alive().await;
}

#[tokio::test]
async fn a_ws_path_prefix_before_app_key_is_accepted() {
    let server = TestServer::start().await;
    let mut c = Client::connect(&format!("ws://{}/sockets/app/{KEY}?protocol=7", server.addr)).await;
    c.assert_alive().await;
}

/// One row per offer: the `Sec-WebSocket-Protocol` the client sends, and what must come back
/// (Swift offers `pusher-channels-protocol-7`; nothing may be sent that was not offered).
#[tokio::test]
async fn the_swift_subprotocol_is_echoed_only_when_offered() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let server = TestServer::start().await;
    let cases: [(Option<&str>, Option<&str>); 3] = [
        (Some("pusher-channels-protocol-7"), Some("pusher-channels-protocol-7")),
        (Some("other, pusher-channels-protocol-7"), Some("pusher-channels-protocol-7")),
        (None, None),
    ];
    for (offered, expected) in cases {
        let mut request = server.ws_url(KEY).into_client_request().unwrap();
        if let Some(offered) = offered {
            request.headers_mut().insert("Sec-WebSocket-Protocol", offered.parse().unwrap());
        }
        let (ws, response) =
            tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request)).await.unwrap().unwrap();
        let echoed = response.headers().get("sec-websocket-protocol").map(|v| v.to_str().unwrap());
        assert_eq!(echoed, expected, "offered {offered:?}");
        let mut c = Client { ws, socket_id: String::new() };
        c.expect("pusher:connection_established").await;
    }
}

/// The Swift client subscribes to public channels with `{"channel": …}` only (no `auth`) and puts
/// `channel` first in private and presence subscribes.
#[tokio::test]
async fn swift_style_subscribe_frames_are_accepted() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.send_text(r#"{"event":"pusher:subscribe","data":{"channel":"swift-public"}}"#).await;
    assert_eq!(c.expect("pusher_internal:subscription_succeeded").await["channel"], "swift-public");
    let channel_data = r#"{"user_id":"swift"}"#;
    let auth = channel_auth(&c.socket_id, "presence-swift", Some(channel_data));
    let data = json!(channel_data).to_string();
    c.send_text(&format!(
        r#"{{"event":"pusher:subscribe","data":{{"channel":"presence-swift","auth":"{auth}","channel_data":{data}}}}}"#
    ))
    .await;
    assert_eq!(c.expect("pusher_internal:subscription_succeeded").await["channel"], "presence-swift");
}

#[tokio::test]
async fn protocol_versions_four_to_seven_connect() {
    let server = TestServer::start().await;
    for version in 4..=7 {
        let mut c = Client::connect(&format!("ws://{}/app/{KEY}?protocol={version}", server.addr)).await;
        c.assert_alive().await;
    }
}

#[tokio::test]
async fn a_signed_in_user_joins_presence_without_channel_data_as_its_signin_identity() {
    let server = TestServer::start().await;
    let mut other = server.client().await;
    other.subscribe_signed("presence-signed", Some(r#"{"user_id":"o"}"#)).await;

    let mut c = server.client().await;
    c.signin(r#"{"id":"s1","user_info":{"name":"Signed"}}"#).await;
    // pusher-js sends no channel_data when the auth response has none: the signature covers
    // socket_id:channel only.
    let roster = c.subscribe_signed("presence-signed", None).await;
    assert_eq!(roster["presence"]["count"], 2);
    assert_eq!(roster["presence"]["hash"]["s1"], json!({"name": "Signed"}));
    let added = other.expect("pusher_internal:member_added").await;
    assert_eq!(data_of(&added), json!({"user_id": "s1", "user_info": {"name": "Signed"}}));

    // Client events on that channel carry the signin id.
    c.send(json!({"event": "client-hi", "channel": "presence-signed", "data": {}})).await;
    assert_eq!(other.expect("client-hi").await["user_id"], "s1");
}

#[tokio::test]
async fn signin_as_a_second_user_is_refused_and_the_first_stays() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.signin(r#"{"id":"first"}"#).await;
    let auth_for = |user_data: &str| {
        format!(
            "{KEY}:{}",
            pusher_local::auth::sign(SECRET, &pusher_local::auth::channel::signin_string(&c.socket_id, user_data))
        )
    };
    let second = r#"{"id":"second"}"#;
    let auth = auth_for(second);
    c.send(json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": second}})).await;
    let error = c.expect_error().await;
    assert_eq!(error, json!({"code": null, "message": "Connection is already signed in as user first"}));
    // Signing in again as the same user is accepted.
    c.signin(r#"{"id":"first"}"#).await;
    let (status, _) = server.api().post("/apps/1/users/second/terminate_connections", &json!({})).await;
    assert_eq!(status, 200);
    c.assert_alive().await; // not known as "second"
    server.api().post("/apps/1/users/first/terminate_connections", &json!({})).await;
    assert_eq!(c.expect_close().await, Some(4009));
}

#[tokio::test]
async fn a_watchlist_over_100_ids_keeps_the_first_100_and_gets_4302() {
    let server = TestServer::start().await;
    let ids: Vec<String> = (0..101).map(|i| format!("w{i}")).collect();
    let user_data = json!({"id": "watcher", "watchlist": ids}).to_string();
    let mut c = server.client().await;
    c.signin(&user_data).await;
    let status = data_of(&c.expect("pusher_internal:watchlist_events").await);
    let offline: Vec<String> = serde_json::from_value(status["events"][0]["user_ids"].clone()).unwrap();
    assert_eq!(status["events"][0]["name"], "offline");
    assert_eq!(offline, ids[..100]);
    let error = c.expect_error().await;
    assert_eq!(
        error,
        json!({"code": 4302, "message": "Watchlist limit exceeded. Only the first 100 user IDs are accepted."})
    );
    c.assert_alive().await;

    // The 101st is not watched: its signin tells the watcher nothing.
    let mut w100 = server.client().await;
    w100.signin(r#"{"id":"w100"}"#).await;
    c.assert_alive().await;
    let mut w99 = server.client().await;
    w99.signin(r#"{"id":"w99"}"#).await;
    let online = data_of(&c.expect("pusher_internal:watchlist_events").await);
    assert_eq!(online, json!({"events": [{"name": "online", "user_ids": ["w99"]}]}));
}

#[tokio::test]
async fn unsubscribe_gets_no_reply_and_an_unknown_channel_is_ignored() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.subscribe_public("leaving").await;
    for channel in ["leaving", "never-joined", "private-never-joined", "leaving"] {
        c.send(json!({"event": "pusher:unsubscribe", "data": {"channel": channel}})).await;
        c.assert_alive().await; // nothing queued before the pong
    }
    assert_eq!(server.api().trigger("leaving", "after", "{}").await.0, 200);
    c.assert_alive().await; // no longer delivered
    c.subscribe_public("leaving").await; // and it can be joined again
}

#[tokio::test]
async fn client_events_on_a_cache_channel_are_relayed_but_never_cached() {
    let server = TestServer::start().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    for c in [&mut a, &mut b] {
        c.subscribe_signed("private-cache-room", None).await;
        c.expect("pusher:cache_miss").await;
    }
    a.send(json!({"event": "client-typing", "channel": "private-cache-room", "data": {"t": 1}})).await;
    assert_eq!(data_of(&b.expect("client-typing").await), json!({"t": 1}));

    let mut late = server.client().await;
    late.subscribe_signed("private-cache-room", None).await;
    assert_eq!(late.recv().await, json!({"event": "pusher:cache_miss", "channel": "private-cache-room", "data": "{}"}));
    let (status, body) = server.api().get("/apps/1/channels/private-cache-room", &[("info", "cache")]).await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), json!({"occupied": true, "cache": null}));
}

#[tokio::test]
async fn a_users_second_socket_with_other_user_info_keeps_the_first_info() {
    let server = TestServer::start().await;
    let mut first = server.client().await;
    first.subscribe_signed("presence-info", Some(r#"{"user_id":"u","user_info":{"v":1}}"#)).await;
    let mut second = server.client().await;
    let roster = second.subscribe_signed("presence-info", Some(r#"{"user_id":"u","user_info":{"v":2}}"#)).await;
    assert_eq!(roster["presence"], json!({"ids": ["u"], "hash": {"u": {"v": 1}}, "count": 1}));
    let mut third = server.client().await;
    let roster = third.subscribe_signed("presence-info", Some(r#"{"user_id":"t"}"#)).await;
    assert_eq!(roster["presence"]["hash"]["u"], json!({"v": 1}));
}

/// A client frame in the same write as the handshake (hyper has read it with the request) is
/// handled before anything the socket sends later.
#[tokio::test]
async fn a_frame_sent_right_behind_the_handshake_is_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::protocol::Role;

    let server = TestServer::start().await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let handshake = format!(
        "GET /app/{KEY}?protocol=7 HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        server.addr
    );
    // A masked text frame, as a client must send it.
    let payload = br#"{"event":"pusher:subscribe","data":{"channel":"early"}}"#;
    let mask = [1u8, 2, 3, 4];
    let mut bytes = handshake.into_bytes();
    bytes.extend([0x81, 0x80 | payload.len() as u8]);
    bytes.extend(mask);
    bytes.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    tcp.write_all(&bytes).await.unwrap();

    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut byte)).await.unwrap().unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(tcp, Role::Client, None).await;
    async fn next<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
        ws: &mut tokio_tungstenite::WebSocketStream<S>,
    ) -> Value {
        let frame = tokio::time::timeout(Duration::from_secs(5), futures_util::StreamExt::next(ws));
        let Some(Ok(Message::Text(text))) = frame.await.unwrap() else { panic!("no frame") };
        serde_json::from_str(&text).unwrap()
    }
    assert_eq!(next(&mut ws).await["event"], "pusher:connection_established");
    let succeeded = next(&mut ws).await;
    assert_eq!(
        (succeeded["event"].as_str(), succeeded["channel"].as_str()),
        (Some("pusher_internal:subscription_succeeded"), Some("early"))
    );
    server.stop().await;
}

#[tokio::test]
async fn a_refused_subscription_signature_is_diagnosed_once_with_a_hint_about_sockets() {
    let captured = crate::support::Captured::default();
    let server = TestServer::with_printer(crate::support::config(), captured.printer()).await;
    let mut client = server.client().await;
    let bad = format!("{KEY}:{}", "0".repeat(64));
    client.send(json!({"event": "pusher:subscribe", "data": {"channel": "private-a", "auth": bad}})).await;
    let error = client.expect_error().await;
    assert!(error["message"].as_str().unwrap().contains("Invalid signature"), "{error}");
    client.assert_alive().await;
    captured.until("subscription auth refused for private-a", WAIT).await;
    let log = captured.text();
    assert_eq!(log.matches("private-a").count(), 2, "the headline and the string to sign, once: {log}");
    assert!(!log.contains("Invalid signature: Expected"), "no second report of the same refusal: {log}");
    assert!(log.contains("socket_id") && !log.contains("a proxy"), "a socket's hint: {log}");
    server.stop().await;
}

/// Hostile JSON (issue 16's table): each input gets its answer (an error naming the problem,
/// or the reply the frame asks for when what is odd sits in a field the server ignores), the
/// socket stays, and a bystander keeps receiving. Nothing recurses on the stack: nesting deeper
/// than the parser's limit is refused or skipped.
#[tokio::test]
async fn hostile_json_is_answered_and_harms_nothing_else() {
    let server = TestServer::start().await;
    let mut bystander = server.client().await;
    bystander.subscribe_public("bystander").await;
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let error = |fragment: &'static str| ("pusher:error", fragment);
    let cases: Vec<(String, (&str, &str))> = vec![
        // 5000 levels: refused at the top, skipped where the server reads nothing.
        (deep.clone(), error("invalid JSON: expected an object")),
        (format!(r#"{{"event":"pusher:ping","data":{deep}}}"#), ("pusher:pong", "")),
        (
            format!(r#"{{"event":"pusher:subscribe","data":{{"channel":"deep","x":{deep}}}}}"#),
            ("pusher_internal:subscription_succeeded", ""),
        ),
        // Numbers beyond f64 where nothing is read; a duplicate key is a refusal.
        (r#"{"event":"pusher:ping","data":1e999999}"#.to_owned(), ("pusher:pong", "")),
        (
            r#"{"event":"pusher:subscribe","data":{"channel":"n","n":1234567890123456789012e300}}"#.to_owned(),
            ("pusher_internal:subscription_succeeded", ""),
        ),
        (
            r#"{"event":"pusher:subscribe","event":"pusher:ping","data":{"channel":"dup"}}"#.to_owned(),
            error("invalid JSON: duplicate field `event` at line 1 column 35"),
        ),
        // NUL: escaped in a channel name, raw in a string, alone.
        (r#"{"event":"pusher:subscribe","data":{"channel":"a\u0000b"}}"#.to_owned(), error("contains '\\0'")),
        ("{\"event\":\"pusher:subscribe\",\"data\":{\"channel\":\"a\u{0}b\"}}".to_owned(), error("control character")),
        ("\u{0}".to_owned(), error("invalid JSON: expected value")),
    ];
    let mut c = server.client().await;
    for (text, (event, fragment)) in cases {
        c.send_text(&text).await;
        let next = futures_util::StreamExt::next(&mut c.ws);
        let answer = tokio::time::timeout(Duration::from_secs(5), next).await.unwrap().unwrap().unwrap();
        let frame: Value = serde_json::from_str(answer.to_text().unwrap()).unwrap();
        let shown = &text[..text.len().min(60)];
        assert_eq!(frame["event"], event, "{shown}: {frame}");
        let message = frame["data"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(fragment), "{shown}: expected {fragment:?} in {message:?}");
    }
    c.assert_alive().await;
    bystander.assert_alive().await;
    let (status, _) = server.api().trigger("bystander", "still-works", "{}").await;
    assert_eq!(status, 200);
    bystander.expect("still-works").await;
}
