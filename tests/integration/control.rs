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
