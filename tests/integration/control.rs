//! pusher-local's test-suite controls under `/pusher-local/` (issue 13): health first. Webhook
//! and replay controls are tested with their features (`webhook.rs`, `recorder.rs`); Redis
//! going away and the health check saying so is in `broker.rs`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{Client, TestServer, KEY};

async fn health(server: &TestServer) -> (u16, Value) {
    let url = format!("http://{}/pusher-local/health", server.api_addr);
    let response = tokio::time::timeout(Duration::from_secs(5), reqwest::get(url)).await.unwrap().unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn health_is_200_serving_once_the_server_accepts() {
    let server = TestServer::start().await;
    assert_eq!(health(&server).await, (200, json!({ "status": "serving" })));
    server.stop().await;
}

async fn post(server: &TestServer, path: &str, body: Value) -> (u16, Value) {
    let url = format!("http://{}/pusher-local/{path}", server.api_addr);
    let request = reqwest::Client::new().post(url).json(&body).send();
    let response = tokio::time::timeout(Duration::from_secs(5), request).await.unwrap().unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn reset_closes_every_socket_with_4200_and_forgets_cached_events() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    client.subscribe_public("cache-prices").await;
    client.expect("pusher:cache_miss").await;
    assert_eq!(server.api().trigger("cache-prices", "price", "1").await.0, 200);
    client.expect("price").await;

    let (status, answer) = post(&server, "reset", json!({})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["closed"], 1);
    assert_eq!(answer["cache_cleared"], 1);
    assert_eq!(client.expect_close().await, Some(4200));

    // The next test starts clean: no cached event is replayed to a new subscriber.
    let mut fresh = server.client().await;
    fresh.subscribe_public("cache-prices").await;
    fresh.expect("pusher:cache_miss").await;
    server.stop().await;
}

#[tokio::test]
async fn disconnect_closes_the_chosen_sockets_with_the_chosen_code() {
    let server = TestServer::start().await;
    let mut news = server.client().await;
    news.subscribe_public("news").await;
    let mut other = server.client().await;
    other.subscribe_public("other").await;

    let (status, answer) = post(&server, "disconnect", json!({ "channel": "news", "code": 4100 })).await;
    assert_eq!((status, answer), (200, json!({ "closed": 1 })));
    assert_eq!(news.expect_close().await, Some(4100));
    // The bystander keeps receiving.
    assert_eq!(server.api().trigger("other", "still", "1").await.0, 200);
    assert_eq!(other.expect("still").await["data"], "1");

    let socket = other.socket_id.clone();
    let (status, _) = post(&server, "disconnect", json!({ "socket_id": socket, "code": 4001 })).await;
    assert_eq!(status, 200);
    assert_eq!(other.expect_close().await, Some(4001));
    server.stop().await;
}

#[tokio::test]
async fn a_control_request_it_cannot_act_on_is_a_400_or_404_that_says_why() {
    let server = TestServer::start().await;
    let cases = [
        ("disconnect", json!({ "code": 3000 }), 400, "4000–4999"),
        ("disconnect", json!({ "socket": "1.2" }), 400, "unknown field"),
        ("disconnect", json!({ "socket_id": "x" }), 400, "not a socket id"),
        ("disconnect", json!({ "channel": "a", "user_id": "u" }), 400, "not several"),
        ("reset", json!({ "app_id": "nope" }), 404, "no app"),
    ];
    for (path, body, want, says) in cases {
        let (status, answer) = post(&server, path, body.clone()).await;
        assert_eq!(status, want, "{path} {body}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(says), "{path} {body}: {answer}");
    }
    server.stop().await;
}

/// A form post as pusher-js sends it, from `origin` when given.
async fn dev_post(server: &TestServer, path: &str, form: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("http://{}/pusher-local/{path}", server.api_addr))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_owned());
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    tokio::time::timeout(Duration::from_secs(5), request.send()).await.unwrap().unwrap()
}

fn dev_config() -> pusher_local::config::Config {
    pusher_local::config::Config { dev_auth: true, ..crate::support::config() }
}

#[tokio::test]
async fn dev_auth_signs_presence_channels_and_users_for_local_pages() {
    use crate::support::{KEY, SECRET};
    use pusher_local::auth::channel::{check, signin_string, subscription_string};
    let server = TestServer::with(dev_config()).await;
    let local = [("origin", "http://localhost:3000"), ("x-pusher-local-user", "ada")];
    let response = dev_post(&server, "auth", "socket_id=1.2&channel_name=presence-room", &local).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["access-control-allow-origin"], "http://localhost:3000");
    let body: Value = response.json().await.unwrap();
    let data = body["channel_data"].as_str().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(data).unwrap(),
        json!({ "user_id": "ada", "user_info": { "name": "ada" } })
    );
    let signed = subscription_string("1.2", "presence-room", Some(data));
    assert_eq!(check(body["auth"].as_str().unwrap(), KEY, SECRET, signed), Ok(()));

    let response = dev_post(&server, "user-auth", "socket_id=1.2", &[]).await;
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    let data = body["user_data"].as_str().unwrap();
    assert_eq!(serde_json::from_str::<Value>(data).unwrap()["id"], "dev-user");
    assert_eq!(check(body["auth"].as_str().unwrap(), KEY, SECRET, signin_string("1.2", data)), Ok(()));

    let preflight = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("http://{}/pusher-local/auth", server.api_addr))
        .header("origin", "http://127.0.0.1:5173")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status().as_u16(), 204);
    assert_eq!(preflight.headers()["access-control-allow-origin"], "http://127.0.0.1:5173");
    assert!(preflight.headers()["access-control-allow-headers"].to_str().unwrap().contains("X-Pusher-Local-User"));
    server.stop().await;
}

#[tokio::test]
async fn dev_auth_refuses_foreign_pages_and_is_off_by_default() {
    let server = TestServer::with(dev_config()).await;
    let evil = [("origin", "http://evil.example")];
    let response = dev_post(&server, "auth", "socket_id=1.2&channel_name=private-a", &evil).await;
    assert_eq!(response.status().as_u16(), 403);
    assert!(response.headers().get("access-control-allow-origin").is_none());
    let encrypted = dev_post(&server, "auth", "socket_id=1.2&channel_name=private-encrypted-a", &[]).await;
    assert_eq!(encrypted.status().as_u16(), 400);
    // The rest of the control API still refuses a local page's form post.
    let local = [("origin", "http://localhost:3000")];
    let replays = dev_post(&server, "replays", "fixture=x", &local).await;
    assert_eq!(replays.status().as_u16(), 403);
    server.stop().await;

    let server = TestServer::start().await;
    let response = dev_post(&server, "auth", "socket_id=1.2&channel_name=private-a", &[]).await;
    assert_eq!(response.status().as_u16(), 404);
    assert!(response.text().await.unwrap().contains("--dev-auth"));
    server.stop().await;
}

#[tokio::test]
async fn the_openapi_document_is_served_and_lists_every_control_path() {
    let server = TestServer::start().await;
    let url = format!("http://{}/pusher-local/openapi.json", server.api_addr);
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let document: Value = response.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    let paths = document["paths"].as_object().unwrap();
    // Every route under the prefix, as src/control mounts them.
    for path in [
        "/pusher-local/health",
        "/pusher-local/reset",
        "/pusher-local/disconnect",
        "/pusher-local/auth",
        "/pusher-local/user-auth",
        "/pusher-local/webhooks",
        "/pusher-local/webhooks/{id}",
        "/pusher-local/webhooks/{id}/resend",
        "/pusher-local/fixtures",
        "/pusher-local/replays",
        "/pusher-local/replays/{id}",
        "/pusher-local/recordings",
        "/pusher-local/recording",
        "/pusher-local/recordings/{name}/export",
        "/pusher-local/openapi.json",
        "/pusher-local/apps",
        "/pusher-local/connections",
        "/pusher-local/channels",
        "/pusher-local/events",
        "/pusher-local/metrics",
        "/pusher-local/wait/subscribers",
        "/pusher-local/wait/member",
        "/pusher-local/wait/event",
        "/pusher-local/wait/client-event",
        "/pusher-local/wait/webhook",
        "/pusher-local/faults",
        "/pusher-local/faults/{id}",
        "/pusher-local/console",
        "/pusher-local/stream",
        "/pusher-local/publish",
    ] {
        assert!(paths.contains_key(path), "{path} is missing from openapi.json");
    }
    // And nothing it lists is missing from the server: each path answers something other
    // than the not-a-route answer an unknown path gets (ids filled in).
    let unknown = format!("http://{}/pusher-local/no-such-thing", server.api_addr);
    assert!(reqwest::get(unknown).await.unwrap().text().await.unwrap().contains("the HTTP API lives under"));
    for path in paths.keys() {
        let url = format!("http://{}{}", server.api_addr, path.replace("{id}", "1"));
        let text = reqwest::get(url).await.unwrap().text().await.unwrap();
        assert!(!text.contains("the HTTP API lives under"), "{path} is not served: {text}");
    }
    server.stop().await;
}

async fn get(server: &TestServer, path: &str) -> (u16, Value) {
    let url = format!("http://{}/pusher-local/{path}", server.api_addr);
    let response = tokio::time::timeout(Duration::from_secs(5), reqwest::get(url)).await.unwrap().unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// A POST that may wait: bounded well above the waits' own timeouts.
async fn wait(server: &TestServer, what: &str, body: Value) -> (u16, Value) {
    let url = format!("http://{}/pusher-local/wait/{what}", server.api_addr);
    let request = reqwest::Client::new().post(url).json(&body).send();
    let response = tokio::time::timeout(Duration::from_secs(15), request).await.unwrap().unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn the_history_keeps_what_was_published_and_a_wait_finds_it_before_or_after() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    client.subscribe_public("orders").await;
    assert_eq!(server.api().trigger("orders", "created", r#"{"id":1,"user":{"name":"ada"}}"#).await.0, 200);
    client.expect("created").await;

    // Already true: answered at once, from the history.
    let (status, found) =
        wait(&server, "event", json!({ "channel": "ord*", "data": { "user": { "name": "ada" } } })).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["event"]["event"], "created");
    assert_eq!(found["event"]["source"], "api");
    assert_eq!(found["event"]["delivered"], 1);
    let seq = found["event"]["seq"].as_u64().unwrap();

    // Not yet true: the wait answers when the event comes.
    let later = tokio::spawn({
        let api = server.api();
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            api.trigger("orders", "shipped", r#"{"id":1}"#).await
        }
    });
    let (status, found) = wait(&server, "event", json!({ "event": "ship*", "since": seq, "timeout_ms": 5000 })).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["event"]["data"], r#"{"id":1}"#);
    assert_eq!(later.await.unwrap().0, 200);

    let (status, listed) = get(&server, "events?channel=orders&event=created").await;
    assert_eq!(status, 200);
    assert_eq!(listed["events"].as_array().unwrap().len(), 1);
    let (_, since) = get(&server, &format!("events?since={seq}")).await;
    assert_eq!(since["events"][0]["event"], "shipped");

    // A wait that times out says what it saw instead.
    let (status, timed_out) = wait(&server, "event", json!({ "event": "cancelled", "timeout_ms": 200 })).await;
    assert_eq!(status, 408);
    assert!(timed_out["error"].as_str().unwrap().contains("cancelled"), "{timed_out}");
    assert_eq!(timed_out["seen"]["events"].as_array().unwrap().len(), 2);

    // Reset forgets the history.
    let (_, reset) = post(&server, "reset", json!({})).await;
    assert_eq!(reset["history_cleared"], 2);
    assert!(get(&server, "events").await.1["events"].as_array().unwrap().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn waits_for_subscribers_members_and_client_events() {
    let server = TestServer::start().await;
    let pending = tokio::spawn({
        let addr = server.api_addr;
        async move {
            let url = format!("http://{addr}/pusher-local/wait/subscribers");
            let body = json!({ "channel": "presence-room", "count": 2 });
            reqwest::Client::new().post(url).json(&body).send().await.unwrap().json::<Value>().await.unwrap()
        }
    });
    let mut ada = server.client().await;
    ada.subscribe_signed("presence-room", Some(r#"{"user_id":"ada","user_info":{"name":"Ada"}}"#)).await;
    let mut bob = server.client().await;
    bob.subscribe_signed("presence-room", Some(r#"{"user_id":"bob"}"#)).await;
    let answered = tokio::time::timeout(Duration::from_secs(5), pending).await.unwrap().unwrap();
    assert_eq!(answered, json!({ "channel": "presence-room", "subscription_count": 2 }));

    let (status, member) = wait(&server, "member", json!({ "channel": "presence-room", "user_id": "ada" })).await;
    assert_eq!(status, 200, "{member}");
    assert_eq!(member["members"], json!(["ada", "bob"]));

    // The channel view has the roster with user_info; the connection view has the channels.
    let (_, channels) = get(&server, "channels").await;
    let room = &channels["channels"][0];
    assert_eq!((room["name"].as_str(), room["type"].as_str()), (Some("presence-room"), Some("presence")));
    assert_eq!(room["members"][0], json!({ "user_id": "ada", "user_info": { "name": "Ada" } }));
    let (_, connections) = get(&server, "connections?channel=presence-room").await;
    let list = connections["connections"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["transport"], "ws");
    assert_eq!(list[0]["channels"], json!(["presence-room"]));
    assert!(list[0]["frames_in"].as_u64().unwrap() >= 1 && list[0]["frames_out"].as_u64().unwrap() >= 2);

    // A client event, excluded from its sender, kept and waited for.
    ada.send(json!({ "event": "client-typing", "channel": "presence-room", "data": { "on": true } })).await;
    bob.expect("client-typing").await;
    let (status, found) = wait(&server, "client-event", json!({ "event": "client-typing" })).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["event"]["socket_id"], ada.socket_id.as_str());
    assert_eq!(found["event"]["user_id"], "ada");

    drop(bob);
    let (status, gone) =
        wait(&server, "member", json!({ "channel": "presence-room", "user_id": "bob", "present": false })).await;
    assert_eq!(status, 200, "{gone}");
    let (status, seen) =
        wait(&server, "subscribers", json!({ "channel": "presence-room", "count": 5, "timeout_ms": 150 })).await;
    assert_eq!((status, &seen["seen"]), (408, &json!({ "subscription_count": 1 })));
    server.stop().await;
}

#[tokio::test]
async fn a_webhook_wait_answers_once_the_webhook_is_in_the_outbox() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    client.subscribe_public("news").await;
    let (status, found) = wait(&server, "webhook", json!({ "kind": "channel_occupied", "channel": "news" })).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["webhook"]["events"][0]["name"], "channel_occupied");
    let (status, none) = wait(&server, "webhook", json!({ "kind": "member_added", "timeout_ms": 100 })).await;
    assert_eq!(status, 408);
    assert_eq!(none["seen"]["webhooks"].as_array().unwrap().len(), 1);
    server.stop().await;
}

async fn fault(server: &TestServer, body: Value) -> Value {
    let (status, answer) = post(server, "faults", body).await;
    assert_eq!(status, 201, "{answer}");
    answer["fault"].clone()
}

#[tokio::test]
async fn http_faults_answer_the_next_calls_and_a_skewed_clock_expires_signatures() {
    let server = TestServer::start().await;
    fault(&server, json!({ "kind": "http_status", "status": 503, "count": 2 })).await;
    assert_eq!(server.api().trigger("a", "e", "1").await.0, 503);
    assert_eq!(server.api().trigger("a", "e", "1").await.0, 503);
    assert_eq!(server.api().trigger("a", "e", "1").await.0, 200);
    assert!(get(&server, "faults").await.1["faults"].as_array().unwrap().is_empty(), "used up");

    let skew = fault(&server, json!({ "kind": "clock_skew", "seconds": -700 })).await;
    let (status, body) = server.api().trigger("a", "e", "1").await;
    assert_eq!(status, 401, "{body}");
    let url = format!("http://{}/pusher-local/faults/{}", server.api_addr, skew["id"]);
    assert_eq!(reqwest::Client::new().delete(url).send().await.unwrap().status().as_u16(), 200);
    assert_eq!(server.api().trigger("a", "e", "1").await.0, 200);

    let (_, metrics) = {
        let url = format!("http://{}/pusher-local/metrics", server.api_addr);
        let response = reqwest::get(url).await.unwrap();
        let kind = response.headers()["content-type"].to_str().unwrap().to_owned();
        (kind, response.text().await.unwrap())
    };
    assert!(metrics.contains("pusher_local_api_calls_total{app_id=\"1\",status=\"503\"} 2"), "{metrics}");
    assert!(metrics.contains("pusher_local_api_calls_total{app_id=\"1\",status=\"401\"} 1"), "{metrics}");
    assert!(metrics.contains("pusher_local_events_published_total{app_id=\"1\",source=\"api\"} 2"), "{metrics}");

    let (status, refused) = post(&server, "faults", json!({ "kind": "node_down" })).await;
    assert_eq!(status, 400, "no Redis: {refused}");
    let (status, _) = post(&server, "faults", json!({ "kind": "weather" })).await;
    assert_eq!(status, 400);
    server.stop().await;
}

#[tokio::test]
async fn delivery_and_connection_faults_are_obeyed_until_reset() {
    let server = TestServer::start().await;
    let mut slow = server.client().await;
    slow.subscribe_public("slow-lane").await;
    let mut lost = server.client().await;
    lost.subscribe_public("lossy").await;
    fault(&server, json!({ "kind": "latency", "channel": "slow-*", "ms": 300 })).await;
    fault(&server, json!({ "kind": "drop", "channel": "lossy", "fraction": 1.0 })).await;
    fault(&server, json!({ "kind": "refuse_connections", "code": 4003 })).await;

    let started = std::time::Instant::now();
    assert_eq!(server.api().trigger("slow-lane", "late", "1").await.0, 200);
    slow.expect("late").await;
    assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());

    assert_eq!(server.api().trigger("lossy", "gone", "1").await.0, 200);
    lost.assert_alive().await; // the ping's pong comes; the event never did

    let (ws, _) = tokio_tungstenite::connect_async(server.ws_url(KEY)).await.unwrap();
    let mut refused = Client { ws, socket_id: String::new() };
    assert_eq!(refused.expect_error().await["code"], 4003);
    assert_eq!(refused.expect_close().await, Some(4003));

    let (_, listed) = get(&server, "faults").await;
    assert_eq!(listed["faults"].as_array().unwrap().len(), 3);
    let (_, reset) = post(&server, "reset", json!({})).await;
    assert_eq!(reset["faults_cleared"], 3);
    let mut fresh = server.client().await;
    fresh.subscribe_public("lossy").await;
    assert_eq!(server.api().trigger("lossy", "back", "1").await.0, 200);
    fresh.expect("back").await;
    server.stop().await;
}

#[tokio::test]
async fn apps_are_listed_with_their_counts() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    client.subscribe_public("a").await;
    let (status, apps) = get(&server, "apps").await;
    assert_eq!(status, 200);
    let app = &apps["apps"][0];
    assert_eq!(
        (app["id"].as_str(), app["connections"].as_u64(), app["channels"].as_u64()),
        (Some("1"), Some(1), Some(1))
    );
    assert_eq!(get(&server, "connections?app_id=nope").await.0, 404);
    server.stop().await;
}
