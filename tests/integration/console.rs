//! The debug console's server side (issue 12): the page is served from the binary, the stream
//! carries every log line as a JSON record (frames too, while a page listens, whatever the
//! terminal shows), and the event creator publishes through the same checks as the HTTP API.
//! The page itself is driven in Chromium by `tests/sdk/console.test.js`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{Captured, TestServer};

/// Reads Server-Sent Events from `/pusher-local/stream`: `(event, data)` pairs.
struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    async fn open(server: &TestServer) -> Stream {
        let url = format!("http://{}/pusher-local/stream", server.api_addr);
        let response = tokio::time::timeout(Duration::from_secs(5), reqwest::get(url)).await.unwrap().unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Stream { response, buffer: String::new() }
    }

    /// The next event, within five seconds.
    async fn next(&mut self) -> (String, Value) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(name) = line.strip_prefix("event:") {
                        event = name.trim().to_owned();
                    } else if let Some(text) = line.strip_prefix("data:") {
                        data.push_str(text.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return (event, serde_json::from_str(&data).unwrap());
            }
            let chunk =
                tokio::time::timeout(Duration::from_secs(5), self.response.chunk()).await.unwrap().unwrap().unwrap();
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Skips records until one of `kind` matching `want`.
    async fn until(&mut self, kind: &str, want: impl Fn(&Value) -> bool) -> Value {
        loop {
            let (event, data) = self.next().await;
            if event == "record" && data["kind"] == kind && want(&data) {
                return data;
            }
        }
    }
}

#[tokio::test]
async fn the_page_is_served_from_the_binary() {
    let server = TestServer::start().await;
    for (path, kind) in [
        ("console", "text/html; charset=utf-8"),
        ("console/console.js", "application/javascript; charset=utf-8"),
        ("console/console.css", "text/css; charset=utf-8"),
    ] {
        let response = reqwest::get(format!("http://{}/pusher-local/{path}", server.api_addr)).await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        assert_eq!(response.headers()["content-type"], kind, "{path}");
        let body = response.text().await.unwrap().replace(' ', "");
        // Nothing loaded from elsewhere: no remote script, stylesheet, font, image or fetch.
        for load in [
            "src=\"http",
            "href=\"http",
            "url(http",
            "url('http",
            "@import",
            "fetch('http",
            "fetch(\"http",
            "from'http",
        ] {
            assert!(!body.contains(load), "{path} loads from the network ({load})");
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn the_stream_carries_frames_publishes_with_hints_and_signature_diagnoses() {
    let log = Captured::default();
    let server = TestServer::with_printer(crate::support::config(), log.printer()).await;
    let mut stream = Stream::open(&server).await;
    let (event, hello) = stream.next().await;
    assert_eq!(event, "hello");
    assert_eq!(hello["apps"][0]["id"], "1");

    // Frames while a page listens, though the terminal (normal verbosity) shows none.
    let mut client = server.client().await;
    client.subscribe_public("orders").await;
    let frame = stream.until("frame_in", |r| r["event"] == "pusher:subscribe").await;
    assert!(frame["socket"].is_string());

    // A publish that reached nobody says why, in the stream and on the terminal line.
    assert_eq!(server.api().trigger("private-orders", "e", "{}").await.0, 200);
    let published = stream.until("publish", |r| r["channel"] == "private-orders").await;
    assert_eq!(published["delivered"], 0);
    let hint = published["hint"].as_str().unwrap();
    assert!(hint.contains("orders is occupied: the same name with another channel type"), "{published}");

    // The event creator goes through the HTTP API's checks and publish.
    let url = format!("http://{}/pusher-local/publish", server.api_addr);
    let body = json!({ "channels": ["orders"], "event": "made-here", "data": "{\"n\":1}" });
    let answer: Value = reqwest::Client::new().post(&url).json(&body).send().await.unwrap().json().await.unwrap();
    assert_eq!(answer, json!({ "channels": { "orders": 1 } }));
    assert_eq!(client.expect("made-here").await["data"], "{\"n\":1}");
    let made = stream.until("publish", |r| r["event"] == "made-here").await;
    assert_eq!((made["source"].as_str(), made["delivered"].as_u64()), (Some("console"), Some(1)));
    let refused = reqwest::Client::new()
        .post(&url)
        .json(&json!({ "channels": ["bad channel!"], "event": "e", "data": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 400);

    // A bad signature's diagnosis, in full.
    let (status, _) = server.api().with_secret("wrong").trigger("a", "e", "1").await;
    assert_eq!(status, 401);
    let diagnosis = stream.until("signature", |_| true).await;
    assert!(diagnosis["expected_string"].as_str().unwrap().starts_with("POST\n/apps/1/events\n"), "{diagnosis}");
    assert!(!log.text().contains("pusher:subscribe"), "the terminal stays at its own verbosity");
    drop(stream);
    server.stop().await;
}

/// A raw request to `server`'s HTTP port: `(status, headers, body)`; redirects are not followed.
async fn raw(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut request = client.request(method, format!("http://{}{path}", server.api_addr));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = tokio::time::timeout(Duration::from_secs(5), request.send()).await.unwrap().unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, headers, response.text().await.unwrap())
}

#[tokio::test]
async fn with_a_control_token_the_console_and_the_control_api_ask_for_it_and_pusher_does_not() {
    use reqwest::Method;
    let mut config = crate::support::config();
    config.control_token =
        Some(pusher_local::config::ControlToken { token: pusher_local::apps::Secret::new("s3cret"), generated: false });
    let server = TestServer::with(config).await;
    let (status, headers, page) = raw(&server, Method::GET, "/pusher-local/console", &[]).await;
    assert_eq!(status, 401);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"), "{headers:?}");
    assert!(page.contains("a control token is needed"), "{page}");
    assert_eq!(raw(&server, Method::GET, "/pusher-local/", &[]).await.0, 401, "the console's other address too");
    let (status, _, _) = raw(&server, Method::GET, "/pusher-local/console?token=wrong", &[]).await;
    assert_eq!(status, 401);

    // The link from the banner: a cookie, and the token leaves the address bar.
    let (status, headers, _) = raw(&server, Method::GET, "/pusher-local/console?token=s3cret", &[]).await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/pusher-local/console");
    let cookie = headers["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let (status, _, page) = raw(&server, Method::GET, "/pusher-local/console", &[("cookie", &cookie)]).await;
    assert_eq!(status, 200);
    assert!(page.contains("<title>"), "the console page");
    assert_eq!(raw(&server, Method::GET, "/pusher-local/apps", &[("cookie", &cookie)]).await.0, 200);

    // Scripts: a header; every endpoint asks, reading ones too (the apps show their secrets).
    let (status, headers, body) = raw(&server, Method::GET, "/pusher-local/apps", &[]).await;
    assert_eq!((status, headers["www-authenticate"].to_str().unwrap()), (401, "Bearer realm=\"pusher-local\""));
    assert!(serde_json::from_str::<Value>(&body).unwrap()["error"].as_str().unwrap().contains("Authorization: Bearer"));
    let bearer = [("authorization", "Bearer s3cret"), ("content-type", "application/json")];
    assert_eq!(raw(&server, Method::POST, "/pusher-local/reset", &bearer).await.0, 200);
    assert_eq!(raw(&server, Method::POST, "/pusher-local/reset", &[("x-pusher-local-token", "s3cret")]).await.0, 200);
    assert_eq!(raw(&server, Method::POST, "/pusher-local/reset", &[("x-pusher-local-token", "s3cre")]).await.0, 401);
    // The guard still comes first: the token does not let another origin in.
    let foreign = [("authorization", "Bearer s3cret"), ("origin", "http://evil.example")];
    assert_eq!(raw(&server, Method::POST, "/pusher-local/reset", &foreign).await.0, 403);

    // Open without it: the health check, the API's description; and Pusher itself.
    assert_eq!(raw(&server, Method::GET, "/pusher-local/health", &[]).await.0, 200);
    assert_eq!(raw(&server, Method::GET, "/pusher-local/openapi.json", &[]).await.0, 200);
    let mut client = server.client().await;
    client.subscribe_public("open").await;
    assert_eq!(server.api().trigger("open", "still", "1").await.0, 200);
    assert_eq!(client.expect("still").await["data"], "1");
    server.stop().await;
}

#[tokio::test]
async fn on_loopback_with_no_token_the_console_is_open_and_its_short_address_redirects() {
    let server = TestServer::with(crate::support::config()).await;
    for path in ["/pusher-local", "/pusher-local/"] {
        let (status, headers, _) = raw(&server, reqwest::Method::GET, path, &[]).await;
        assert_eq!((status, headers["location"].to_str().unwrap()), (303, "/pusher-local/console"), "{path}");
    }
    assert_eq!(raw(&server, reqwest::Method::GET, "/pusher-local/console", &[]).await.0, 200);
    assert_eq!(raw(&server, reqwest::Method::GET, "/pusher-local/apps", &[]).await.0, 200);
    server.stop().await;
}
