//! pusher-local's test-suite controls under `/pusher-local/` (issue 13): health first. Webhook
//! and replay controls are tested with their features (`webhook.rs`, `recorder.rs`); Redis
//! going away and the health check saying so is in `broker.rs`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::TestServer;

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
        "/pusher-local/openapi.json",
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
