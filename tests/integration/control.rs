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
