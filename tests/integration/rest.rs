//! The HTTP API: signatures as every SDK computes them, each endpoint's body, status codes and
//! error texts.

use serde_json::{json, Value};

use crate::support::*;

fn parse(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[tokio::test]
async fn trigger_delivers_data_verbatim_to_every_listed_channel() {
    let server = TestServer::start().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    a.subscribe_public("one").await;
    b.subscribe_public("two").await;
    let api = server.api();
    let (status, body) =
        api.post("/apps/1/events", &json!({"name": "e", "channels": ["one", "two"], "data": "{\"a\": 1}"})).await;
    assert_eq!((status, body.as_str()), (200, "{}"));
    assert_eq!(a.recv().await, json!({"event": "e", "channel": "one", "data": "{\"a\": 1}"}));
    assert_eq!(b.recv().await, json!({"event": "e", "channel": "two", "data": "{\"a\": 1}"}));

    // PHP sends a single `channel`; non-string data is relayed as its JSON text.
    let (status, _) = api.post("/apps/1/events", &json!({"name": "p", "channel": "one", "data": {"x": 1}})).await;
    assert_eq!(status, 200);
    assert_eq!(a.recv().await, json!({"event": "p", "channel": "one", "data": "{\"x\":1}"}));
}

#[tokio::test]
async fn socket_id_excludes_that_connection_only() {
    let server = TestServer::start().await;
    let mut sender = server.client().await;
    let mut other = server.client().await;
    sender.subscribe_public("room").await;
    other.subscribe_public("room").await;
    let body = json!({"name": "e", "channels": ["room"], "data": "1", "socket_id": sender.socket_id});
    assert_eq!(server.api().post("/apps/1/events", &body).await.0, 200);
    other.expect("e").await;
    sender.assert_alive().await;
}

#[tokio::test]
async fn trigger_with_info_returns_counts_per_channel() {
    let server = TestServer::start().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    a.subscribe_signed("presence-i", Some(r#"{"user_id":"u"}"#)).await;
    b.subscribe_signed("presence-i", Some(r#"{"user_id":"u"}"#)).await;
    let body =
        json!({"name": "e", "channels": ["presence-i", "empty"], "data": "1", "info": "user_count,subscription_count"});
    let (status, text) = server.api().post("/apps/1/events", &body).await;
    assert_eq!(status, 200);
    assert_eq!(
        parse(&text),
        json!({"channels": {"presence-i": {"user_count": 1, "subscription_count": 2}, "empty": {"subscription_count": 0}}})
    );
}

#[tokio::test]
async fn batch_events_publishes_each_and_answers_info_index_aligned() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.subscribe_public("b1").await;
    let api = server.api();
    let batch = json!({"batch": [
        {"name": "x", "channel": "b1", "data": "1"},
        {"name": "y", "channel": "b1", "data": "2", "info": "subscription_count"},
    ]});
    let (status, text) = api.post("/apps/1/batch_events", &batch).await;
    assert_eq!(status, 200);
    assert_eq!(parse(&text), json!({"batch": [{}, {"subscription_count": 1}]}));
    assert_eq!(c.expect("x").await["data"], "1");
    assert_eq!(c.expect("y").await["data"], "2");

    let too_many: Vec<Value> = (0..11).map(|i| json!({"name": "z", "channel": "b1", "data": i.to_string()})).collect();
    let (status, text) = api.post("/apps/1/batch_events", &json!({"batch": too_many})).await;
    assert_eq!(status, 400);
    assert!(text.contains("limit is 10"), "{text}");
    // A rejected batch publishes nothing.
    c.assert_alive().await;
}

#[tokio::test]
async fn signature_problems_get_the_documented_statuses_and_texts() {
    let server = TestServer::start().await;
    let body = json!({"name": "e", "channels": ["c"], "data": "1"});

    let (status, text) = server.api().with_secret("wrong").post("/apps/1/events", &body).await;
    assert_eq!(status, 401);
    assert!(text.starts_with("Invalid signature: you should have sent HmacSHA256Hex(\"POST\\n/apps/1/events\\nauth_key=app-key&auth_timestamp="), "{text}");
    assert!(!text.contains(SECRET), "the secret is never revealed");

    let (status, text) = server.api().with_key("nobody").post("/apps/1/events", &body).await;
    assert_eq!((status, text.as_str()), (400, "Unknown auth_key"));

    let (status, text) = server.api().post("/apps/999/events", &body).await;
    assert_eq!(status, 404, "{text}");

    // Expired timestamp.
    let api = server.api();
    let bytes = body.to_string();
    let query = pusher_local::auth::request::sign_query(
        KEY,
        SECRET,
        "POST",
        "/apps/1/events",
        bytes.as_bytes(),
        now() - 700,
        &[],
    );
    let response =
        api.http.post(format!("{}/apps/1/events?{query}", api.base)).body(bytes.clone()).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.text().await.unwrap().starts_with("Timestamp expired: Given timestamp ("));

    // Body changed after signing.
    let query =
        pusher_local::auth::request::sign_query(KEY, SECRET, "POST", "/apps/1/events", bytes.as_bytes(), now(), &[]);
    let response =
        api.http.post(format!("{}/apps/1/events?{query}", api.base)).body(format!("{bytes} ")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.text().await.unwrap().contains("body_md5"));

    // Unsigned.
    let response = api.http.post(format!("{}/apps/1/events", api.base)).body(bytes).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.text().await.unwrap(), "Missing parameter: auth_key");
}

#[tokio::test]
async fn ruby_and_php_percent_encoded_queries_and_python_body_md5_on_get_verify() {
    let server = TestServer::start().await;
    let api = server.api();
    let url =
        api.signed_url("GET", "/apps/1/channels", b"", &[("filter_by_prefix", "presence-"), ("info", "user_count")]);
    let encoded = url.replace("user_count", "user%5Fcount").replace(',', "%2C");
    let response = api.http.get(encoded).send().await.unwrap();
    assert_eq!(response.status(), 200);

    // Python: body_md5 of the empty body on a GET.
    let query =
        format!("auth_key={KEY}&auth_timestamp={}&auth_version=1.0&body_md5=d41d8cd98f00b204e9800998ecf8427e", now());
    let sig = pusher_local::auth::sign(SECRET, &format!("GET\n/apps/1/channels\n{query}"));
    let response =
        api.http.get(format!("{}/apps/1/channels?{query}&auth_signature={sig}", api.base)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), r#"{"channels":{}}"#);
}

#[tokio::test]
async fn channel_queries_answer_occupied_channels_counts_and_users() {
    let server = TestServer::start().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    a.subscribe_public("public-1").await;
    a.subscribe_signed("presence-q", Some(r#"{"user_id":"1"}"#)).await;
    b.subscribe_signed("presence-q", Some(r#"{"user_id":"2"}"#)).await;
    a.expect("pusher_internal:member_added").await;
    let api = server.api();

    let (status, text) = api.get("/apps/1/channels", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(parse(&text), json!({"channels": {"presence-q": {}, "public-1": {}}}));

    let (_, text) = api.get("/apps/1/channels", &[("filter_by_prefix", "presence-"), ("info", "user_count")]).await;
    assert_eq!(parse(&text), json!({"channels": {"presence-q": {"user_count": 2}}}));

    let (status, text) = api.get("/apps/1/channels", &[("info", "user_count")]).await;
    assert_eq!(status, 400);
    assert!(text.contains("filter_by_prefix"), "{text}");

    let (_, text) = api.get("/apps/1/channels/presence-q", &[("info", "user_count,subscription_count")]).await;
    assert_eq!(parse(&text), json!({"occupied": true, "user_count": 2, "subscription_count": 2}));
    let (_, text) = api.get("/apps/1/channels/public-1", &[("info", "subscription_count")]).await;
    assert_eq!(parse(&text), json!({"occupied": true, "subscription_count": 1}));
    let (_, text) = api.get("/apps/1/channels/nobody-here", &[]).await;
    assert_eq!(parse(&text), json!({"occupied": false}));
    let (status, _) = api.get("/apps/1/channels/public-1", &[("info", "user_count")]).await;
    assert_eq!(status, 400);

    let (status, text) = api.get("/apps/1/channels/presence-q/users", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(parse(&text), json!({"users": [{"id": "1"}, {"id": "2"}]}));
    let (status, _) = api.get("/apps/1/channels/public-1/users", &[]).await;
    assert_eq!(status, 400);
    let (status, text) = api.get("/apps/1/channels/presence-q/users", &[("info", "x")]).await;
    assert_eq!((status, text.as_str()), (400, "The following query string parameters are extraneous: info"));
}

/// One row per malformed trigger: body, expected status, fragment of the error text.
#[tokio::test]
async fn malformed_triggers_are_refused_with_precise_statuses() {
    let server = TestServer::start().await;
    let mut listener = server.client().await;
    listener.subscribe_public("c").await;
    let api = server.api();
    let many: Vec<String> = (0..101).map(|i| format!("c{i}")).collect();
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"not json".to_vec(), 400, "Invalid JSON"),
        (json!({"channels": ["c"], "data": "1"}).to_string().into_bytes(), 400, "name"),
        (json!({"name": "e", "channels": ["c"]}).to_string().into_bytes(), 400, "data"),
        (json!({"name": "e", "data": "1"}).to_string().into_bytes(), 400, "channels"),
        (json!({"name": "e", "channels": many, "data": "1"}).to_string().into_bytes(), 400, "limit is 100"),
        (
            json!({"name": "e", "channels": ["bad name"], "data": "1"}).to_string().into_bytes(),
            400,
            "Invalid channel name",
        ),
        (
            json!({"name": "e", "channels": ["c"], "data": "1", "socket_id": "abc"}).to_string().into_bytes(),
            400,
            "socket_id",
        ),
        (
            json!({"name": "x".repeat(201), "channels": ["c"], "data": "1"}).to_string().into_bytes(),
            400,
            "Event name too long",
        ),
        (
            json!({"name": "e", "channels": ["c"], "data": "x".repeat(10 * 1024 + 1)}).to_string().into_bytes(),
            413,
            "Payload too large",
        ),
        (
            json!({"name": "e", "channels": ["private-encrypted-a", "b"], "data": "1"}).to_string().into_bytes(),
            400,
            "encrypted",
        ),
        (
            json!({"name": "e", "channels": ["c"], "data": "1", "info": "nonsense"}).to_string().into_bytes(),
            400,
            "info",
        ),
    ];
    for (body, status, fragment) in cases {
        let (got, text) = api.post_raw("/apps/1/events", &body).await;
        assert_eq!(got, status, "{text}");
        assert!(text.contains(fragment), "expected {fragment:?} in {text:?}");
    }
    // Nothing was published, and the server still works.
    listener.assert_alive().await;
    assert_eq!(api.trigger("c", "ok", "1").await.0, 200);
    listener.expect("ok").await;
}

#[tokio::test]
async fn python_sdk_unprefixed_terminate_path_works() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.signin(r#"{"id":"py"}"#).await;
    let (status, body) = server.api().post("/users/py/terminate_connections", &json!({})).await;
    assert_eq!((status, body.as_str()), (200, "{}"));
    assert_eq!(c.expect_close().await, Some(4009));
}

#[tokio::test]
async fn deprecated_channel_events_endpoint_answers_202() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.subscribe_public("legacy").await;
    let api = server.api();
    let body = b"{\"old\":true}";
    let url = api.signed_url("POST", "/apps/1/channels/legacy/events", body, &[("name", "old-event")]);
    let response = api.http.post(url).body(body.to_vec()).send().await.unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(c.recv().await, json!({"event": "old-event", "channel": "legacy", "data": "{\"old\":true}"}));
}

#[tokio::test]
async fn keep_alive_serves_many_requests_on_one_connection_and_unknown_routes_are_404() {
    let server = TestServer::start().await;
    let api = server.api();
    for _ in 0..5 {
        assert_eq!(api.trigger("c", "e", "1").await.0, 200);
    }
    let response = api.http.get(format!("{}/nope", api.base)).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert!(response.text().await.unwrap().contains("/apps/{app_id}/"));
}

#[tokio::test]
async fn slanger_style_split_listeners_serve_api_and_websocket_separately() {
    let mut config = config();
    config.listen = pusher_local::config::Listen::Split {
        api: "127.0.0.1:0".parse().unwrap(),
        websocket: "127.0.0.1:0".parse().unwrap(),
    };
    // Both port 0: bind gives two different ports.
    let server = TestServer::with(config).await;
    assert_ne!(server.addr, server.api_addr);
    let mut c = server.client().await;
    c.subscribe_public("split").await;
    assert_eq!(server.api().trigger("split", "e", "1").await.0, 200);
    c.expect("e").await;
}

/// Event names are not restricted: Laravel broadcasts class names such as `App\Events\X`, and
/// any name up to 200 characters goes through as sent, on `events` and `batch_events`.
#[tokio::test]
async fn event_names_are_relayed_as_sent_whatever_their_characters() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.subscribe_public("names").await;
    let api = server.api();
    for name in [r"App\Events\OrderShipped", "order.shipped", "with space", "ünïcödé", "pusher:custom"] {
        assert_eq!(api.trigger("names", name, "{}").await.0, 200, "{name}");
        assert_eq!(c.recv().await["event"], name);
        let batch = json!({"batch": [{"name": name, "channel": "names", "data": "{}"}]});
        assert_eq!(api.post("/apps/1/batch_events", &batch).await.0, 200, "{name}");
        assert_eq!(c.recv().await["event"], name);
    }
}

#[tokio::test]
async fn batch_events_replace_a_cache_channels_cached_event() {
    let server = TestServer::start().await;
    let api = server.api();
    let batch = json!({"batch": [
        {"name": "first", "channel": "cache-b", "data": "1"},
        {"name": "second", "channel": "cache-b", "data": "2"},
    ]});
    assert_eq!(api.post("/apps/1/batch_events", &batch).await.0, 200);
    let mut c = server.client().await;
    c.subscribe_public("cache-b").await;
    assert_eq!(c.recv().await, json!({"event": "second", "channel": "cache-b", "data": "2"}));
}

/// One row per query of a channel nobody is subscribed to: `occupied:false` and the
/// requested counts as zeros.
#[tokio::test]
async fn an_unoccupied_channel_answers_occupied_false_and_zero_counts() {
    let server = TestServer::start().await;
    let api = server.api();
    let cases = [
        ("/apps/1/channels/empty", "", json!({"occupied": false})),
        ("/apps/1/channels/empty", "subscription_count", json!({"occupied": false, "subscription_count": 0})),
        (
            "/apps/1/channels/presence-empty",
            "user_count,subscription_count",
            json!({"occupied": false, "user_count": 0, "subscription_count": 0}),
        ),
        ("/apps/1/channels/cache-empty", "cache", json!({"occupied": false, "cache": null})),
    ];
    for (path, info, expected) in cases {
        let params: Vec<(&str, &str)> = if info.is_empty() { vec![] } else { vec![("info", info)] };
        let (status, text) = api.get(path, &params).await;
        assert_eq!(status, 200, "{path}?info={info}: {text}");
        assert_eq!(parse(&text), expected, "{path}?info={info}");
    }
    let (status, text) = api.get("/apps/1/channels/presence-empty/users", &[]).await;
    assert_eq!((status, parse(&text)), (200, json!({"users": []})));
}

#[tokio::test]
async fn a_key_used_on_another_apps_path_is_refused_with_401() {
    let mut config = config();
    config.apps.push(pusher_local::apps::App::new("2", "second-key", "second-secret"));
    let server = TestServer::with(config).await;
    let api = server.api().with_key("second-key").with_secret("second-secret");
    let (status, text) = api.post("/apps/1/events", &json!({"name": "e", "channels": ["c"], "data": "1"})).await;
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("does not belong to app"), "{text}");
    let (status, _) = api.post("/apps/2/events", &json!({"name": "e", "channels": ["c"], "data": "1"})).await;
    assert_eq!(status, 200);
}

/// One raw HTTP/1.1 exchange: writes `requests`, reads until the server closes (or `until`
/// responses have arrived), returns what was read.
async fn exchange(addr: std::net::SocketAddr, requests: &str, until: Option<usize>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(requests.as_bytes()).await.unwrap();
    let mut read = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if until.is_some_and(|n| String::from_utf8_lossy(&read).matches("HTTP/1.1 ").count() >= n) {
            return String::from_utf8(read).unwrap();
        }
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read(&mut buf))
            .await
            .expect("the server answers in time")
            .unwrap();
        if n == 0 {
            return String::from_utf8(read).unwrap();
        }
        read.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn http_keep_alive_serves_several_requests_on_one_connection_and_close_is_honoured() {
    let server = TestServer::start().await;
    let url = server.api().signed_url("GET", "/apps/1/channels", b"", &[]);
    let target = url.split_once(&server.api_addr.to_string()).unwrap().1.to_owned();
    let get = |connection: &str| format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: {connection}\r\n\r\n");

    // Two pipelined requests on a kept-alive connection: both answered, the connection stays.
    let two = exchange(server.api_addr, &(get("keep-alive") + &get("keep-alive")), Some(2)).await;
    assert_eq!(two.matches("HTTP/1.1 200 OK").count(), 2, "{two}");

    // `Connection: close`: one answer, then the server closes (the read sees the end).
    let one = exchange(server.api_addr, &get("close"), None).await;
    assert_eq!(one.matches("HTTP/1.1 200 OK").count(), 1, "{one}");
    assert!(one.ends_with(r#"{"channels":{}}"#), "{one}");
    server.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_does_not_hold_up_shutdown() {
    let server = TestServer::start().await;
    let url = server.api().signed_url("GET", "/apps/1/channels", b"", &[]);
    let target = url.split_once(&server.api_addr.to_string()).unwrap().1.to_owned();
    let addr = server.api_addr;
    // Answered, then left open and idle.
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        tcp.write_all(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
        let mut buf = [0u8; 4096];
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    }
    // `stop` fails the test if the server takes more than 10 s to drain.
    server.stop().await;
    drop(tcp);
}
