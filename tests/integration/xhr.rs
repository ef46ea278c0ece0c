//! pusher-js's HTTP fallback transports over raw HTTP: the line framing (`o`, `a[…]`, `h`,
//! `c[…]`), a session shared by a stream and its sends, long polling, bad input, and 1001 on
//! shutdown. The pusher-js side is in `tests/sdk/fallback.test.js`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{TestServer, KEY};

const WAIT: Duration = Duration::from_secs(5);

fn base(server: &TestServer, key: &str, session: &str) -> String {
    format!("http://{}/pusher/app/{key}/123/{session}", server.addr)
}

/// Reads a streaming response line by line.
struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    async fn open(url: &str) -> Stream {
        let response = reqwest::Client::new()
            .post(format!("{url}/xhr_streaming?protocol=7&client=js&version=8.6.0&t=1&n=1"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["access-control-allow-origin"], "*");
        Stream { response, buffer: String::new() }
    }

    async fn line(&mut self) -> String {
        loop {
            if let Some(i) = self.buffer.find('\n') {
                let line = self.buffer[..i].to_owned();
                self.buffer.drain(..=i);
                return line;
            }
            let chunk = tokio::time::timeout(WAIT, self.response.chunk()).await.expect("a line in time").unwrap();
            let chunk = chunk.expect("the stream is still open");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The frames of the next `a[…]` line, parsed.
    async fn frames(&mut self) -> Vec<Value> {
        let line = self.line().await;
        let list = line.strip_prefix('a').unwrap_or_else(|| panic!("an a[…] line, got {line:?}"));
        let texts: Vec<String> = serde_json::from_str(list).unwrap();
        texts.iter().map(|t| serde_json::from_str(t).unwrap()).collect()
    }
}

async fn send(url: &str, body: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("{url}/xhr_send?t=2&n=2"))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn frame(value: Value) -> String {
    json!([value.to_string()]).to_string()
}

#[tokio::test]
async fn a_stream_opens_a_session_that_sends_and_receives_like_a_websocket() {
    let server = TestServer::start().await;
    let url = base(&server, KEY, "stream01");
    let mut stream = Stream::open(&url).await;
    assert_eq!(stream.line().await, "o");
    let established = stream.frames().await;
    assert_eq!(established[0]["event"], "pusher:connection_established");
    let data: Value = serde_json::from_str(established[0]["data"].as_str().unwrap()).unwrap();
    assert!(data["socket_id"].as_str().unwrap().contains('.'));

    let subscribe = json!({"event": "pusher:subscribe", "data": {"auth": "", "channel": "news"}});
    assert_eq!(send(&url, &frame(subscribe)).await.0, 204);
    let frames = stream.frames().await;
    assert_eq!(frames[0]["event"], "pusher_internal:subscription_succeeded");
    assert_eq!(frames[0]["channel"], "news");

    let (status, _) = server.api().trigger("news", "headline", r#"{"title":"hé \"x\""}"#).await;
    assert_eq!(status, 200);
    let mut events = stream.frames().await;
    while events.iter().all(|f| f["event"] != "headline") {
        events = stream.frames().await;
    }
    let headline = events.iter().find(|f| f["event"] == "headline").unwrap();
    assert_eq!(headline["data"], r#"{"title":"hé \"x\""}"#, "data relayed verbatim");

    // Bad frames get the same pusher:error as on a WebSocket, and the session goes on.
    assert_eq!(send(&url, &json!(["not json"]).to_string()).await.0, 204);
    let error = stream.frames().await;
    assert_eq!(error[0]["event"], "pusher:error");
    assert_eq!(send(&url, "[]").await.0, 204, "an empty array is pusher-js's heartbeat");
    assert_eq!(send(&url, &frame(json!({"event": "pusher:ping", "data": {}}))).await.0, 204);
    assert_eq!(stream.frames().await[0]["event"], "pusher:pong");

    // Shutdown closes the session with 1001 going away (c[1001,…]), as a WebSocket.
    server.shutdown.cancel();
    let close = stream.line().await;
    assert!(close.starts_with("c[1001,"), "{close}");
}

#[tokio::test]
async fn long_polls_answer_once_each_open_first_then_frames() {
    let server = TestServer::start().await;
    let url = base(&server, KEY, "polling1");
    let http = reqwest::Client::new();
    let poll = || async {
        let response = http.post(format!("{url}/xhr?protocol=7")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        tokio::time::timeout(WAIT, response.text()).await.expect("a poll is answered in time").unwrap()
    };
    assert_eq!(poll().await, "o\n");
    let second = poll().await;
    assert!(second.starts_with("a[") && second.contains("pusher:connection_established"), "{second}");

    // A poll held open is answered by the frame that arrives.
    let held = tokio::spawn({
        let (http, url) = (http.clone(), url.clone());
        async move { http.post(format!("{url}/xhr?protocol=7")).send().await.unwrap().text().await.unwrap() }
    });
    let subscribe = json!({"event": "pusher:subscribe", "data": {"auth": "", "channel": "polled"}});
    assert_eq!(send(&url, &frame(subscribe)).await.0, 204);
    let answer = tokio::time::timeout(WAIT, held).await.unwrap().unwrap();
    assert!(answer.contains("subscription_succeeded"), "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn bad_requests_get_clear_statuses_and_unknown_keys_a_4001_close() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();

    // Unknown app key: opened, told why, closed (as a WebSocket handshake is refused).
    let poll = |url: String| {
        let http = http.clone();
        async move { http.post(url).send().await.unwrap().text().await.unwrap() }
    };
    let refused = poll(format!("{}/xhr?protocol=7", base(&server, "no-such-key", "refused1"))).await;
    let lines: Vec<&str> = refused.lines().collect();
    assert_eq!(lines[0], "o");
    assert!(lines[1].contains("pusher:error") && lines[1].contains("4001"), "{refused}");
    assert!(lines[2].starts_with("c[4001,"), "{refused}");

    // An unsupported protocol version: 4007.
    let old = poll(format!("{}/xhr?protocol=3", base(&server, KEY, "refused2"))).await;
    assert!(old.contains("c[4007,"), "{old}");

    // Sends to a session that does not exist, or that are not a JSON array of strings.
    let (status, body) = send(&base(&server, KEY, "nosuchss"), "[]").await;
    assert_eq!(status, 404, "{body}");
    let url = base(&server, KEY, "badsend1");
    let mut stream = Stream::open(&url).await;
    assert_eq!(stream.line().await, "o");
    for bad in ["{", r#"{"event":"pusher:ping"}"#, "[1,2]"] {
        let (status, body) = send(&url, bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains("JSON"), "{body}");
    }
    // A preflight is answered for any origin.
    let preflight = http
        .request(reqwest::Method::OPTIONS, format!("{url}/xhr_send"))
        .header("origin", "http://localhost:3000")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert_eq!(preflight.headers()["access-control-allow-origin"], "http://localhost:3000");
    assert!(preflight.headers()["access-control-allow-methods"].to_str().unwrap().contains("POST"));
    // The session survived all of it.
    assert_eq!(stream.frames().await[0]["event"], "pusher:connection_established");
    assert_eq!(send(&url, &frame(json!({"event": "pusher:ping", "data": {}}))).await.0, 204);
    assert_eq!(stream.frames().await[0]["event"], "pusher:pong");
    drop(stream);
    server.stop().await;
}
