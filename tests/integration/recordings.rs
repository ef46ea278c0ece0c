//! Recording from the console (issue 12) through its control endpoints: a recording started
//! and stopped while the server runs, listed, and exported as a fixture the server can replay
//! at once; a `--record` recording stopped the same way. The page's side is driven in
//! Chromium by `tests/sdk/console.test.js`.

use serde_json::{json, Value};

use pusher_local::recorder::{Fixture, Store};

use crate::support::{config, TestServer};

/// A control call from outside the page (no Origin, as curl): `(status, JSON answer)`.
async fn call(server: &TestServer, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("http://{}/pusher-local/{path}", server.api_addr);
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = tokio::time::timeout(crate::support::WAIT, request.send()).await.unwrap().unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn get(server: &TestServer, path: &str) -> Value {
    let (status, answer) = call(server, reqwest::Method::GET, path, None).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

#[tokio::test]
async fn a_recording_started_and_stopped_from_the_control_api_is_listed_and_exports_as_a_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.db = dir.path().join("rec.db");
    cfg.fixtures = dir.path().join("fixtures");
    let server = TestServer::with(cfg).await;
    use reqwest::Method as M;

    // No database yet: an empty list, not an error; nothing to stop.
    let listed = get(&server, "recordings").await;
    assert_eq!((listed["recording"].clone(), listed["recordings"].clone()), (Value::Null, json!([])));
    assert!(listed["db"].as_str().unwrap().ends_with("rec.db"), "{listed}");
    let (status, answer) = call(&server, M::DELETE, "recording", None).await;
    assert_eq!((status, answer["error"].as_str()), (404, Some("no recording is running")));

    let (status, answer) = call(&server, M::POST, "recording", Some(json!({"name": "checkout"}))).await;
    assert_eq!((status, &answer["name"]), (201, &json!("checkout")), "{answer}");
    let (status, answer) = call(&server, M::POST, "recording", Some(json!({}))).await;
    assert_eq!(status, 409);
    assert!(answer["error"].as_str().unwrap().contains("\"checkout\" is running"), "{answer}");

    let api = server.api();
    for n in 1..=3 {
        assert_eq!(api.trigger("orders", "placed", &format!("{{\"n\":{n}}}")).await.0, 200);
    }
    // A reset between tests leaves the recording running.
    assert_eq!(call(&server, M::POST, "reset", Some(json!({}))).await.0, 200);
    let listed = get(&server, "recordings").await;
    assert_eq!(listed["recording"]["name"], "checkout");
    assert_eq!(listed["recording"]["events"], 3, "acknowledged triggers are committed: {listed}");
    assert_eq!(listed["recordings"][0]["running"], true);

    let (status, answer) = call(&server, M::DELETE, "recording", None).await;
    assert_eq!((status, answer), (200, json!({"name": "checkout", "events": 3})));
    let listed = get(&server, "recordings").await;
    assert_eq!(listed["recording"], Value::Null);
    let summary = &listed["recordings"][0];
    assert_eq!(
        (&summary["name"], &summary["events"], &summary["running"]),
        (&json!("checkout"), &json!(3), &json!(false))
    );
    assert!(summary["ended_at_ms"].as_i64() >= summary["started_at_ms"].as_i64(), "{summary}");
    // Published after the stop: not recorded.
    assert_eq!(api.trigger("orders", "late", "{}").await.0, 200);

    // Names: taken (the store's message), not a file name.
    let (status, answer) = call(&server, M::POST, "recording", Some(json!({"name": "checkout"}))).await;
    assert_eq!(status, 409);
    assert!(answer["error"].as_str().unwrap().contains("already exists"), "{answer}");
    let (status, answer) = call(&server, M::POST, "recording", Some(json!({"name": "../up"}))).await;
    assert_eq!(status, 400, "{answer}");

    // Export: bad names, unknown recording, then the fixture, then a second export refused.
    for bad in ["../evil", "a/b", ".."] {
        let (status, answer) =
            call(&server, M::POST, "recordings/checkout/export", Some(json!({"fixture": bad}))).await;
        assert_eq!(status, 400, "{bad}: {answer}");
    }
    assert_eq!(call(&server, M::POST, "recordings/nope/export", None).await.0, 404);
    let (status, answer) = call(&server, M::POST, "recordings/checkout/export", None).await;
    assert_eq!((status, &answer["fixture"], &answer["events"]), (201, &json!("checkout"), &json!(3)), "{answer}");
    let file = dir.path().join("fixtures/checkout.json");
    assert_eq!(answer["file"].as_str(), file.to_str());
    let fixture = Fixture::load(&file).unwrap();
    let data: Vec<&str> = fixture.events.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(data, ["{\"n\":1}", "{\"n\":2}", "{\"n\":3}"]);
    let fixtures = get(&server, "fixtures").await;
    let listed = fixtures["fixtures"].as_array().unwrap().iter().find(|f| f["name"] == "checkout").cloned();
    assert_eq!(listed.map(|f| f["events"].clone()), Some(json!(3)), "{fixtures}");
    let (status, answer) = call(&server, M::POST, "recordings/checkout/export", Some(json!({}))).await;
    assert_eq!(status, 409);
    assert!(answer["error"].as_str().unwrap().contains("overwrite"), "{answer}");
    let again = json!({"fixture": "checkout.json", "overwrite": true});
    assert_eq!(call(&server, M::POST, "recordings/checkout/export", Some(again)).await.0, 201);

    // The exported fixture replays at once.
    let mut client = server.client().await;
    client.subscribe_public("orders").await;
    let replay = json!({"fixture": "checkout", "speed": "max"});
    assert_eq!(call(&server, M::POST, "replays", Some(replay)).await.0, 202);
    assert_eq!(client.expect("placed").await["data"], "{\"n\":1}");

    // A new recording, default name.
    let (status, answer) = call(&server, M::POST, "recording", None).await;
    assert_eq!(status, 201, "{answer}");
    assert!(answer["name"].as_str().unwrap().starts_with("rec-"), "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn a_record_flag_recording_stops_from_the_control_api_and_the_next_one_ends_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.record = Some("boot".into());
    cfg.db = dir.path().join("rec.db");
    cfg.fixtures = dir.path().join("fixtures");
    let server = TestServer::with(cfg).await;
    use reqwest::Method as M;
    assert_eq!(get(&server, "recordings").await["recording"]["name"], "boot");
    assert_eq!(server.api().trigger("a", "e", "1").await.0, 200);
    let (status, answer) = call(&server, M::DELETE, "recording", None).await;
    assert_eq!((status, answer), (200, json!({"name": "boot", "events": 1})));

    let (status, _) = call(&server, M::POST, "recording", Some(json!({"name": "after"}))).await;
    assert_eq!(status, 201);
    assert_eq!(server.api().trigger("a", "e", "2").await.0, 200);
    server.stop().await;

    let store = Store::open_existing(&dir.path().join("rec.db")).unwrap();
    let (summary, events) = store.read("after").unwrap();
    assert!(summary.ended_at_ms.is_some(), "the drain ends the recording started from the console");
    assert_eq!(events.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(), ["2"]);
}
