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
