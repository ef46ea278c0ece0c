//! Webhooks (issue 6): each kind fires when it should and not otherwise, the exact wire form
//! (header case, content type, body, signature), retries against a failing endpoint, the
//! outbox and control API, the `webhooks` subcommands, and that a slow endpoint does not slow
//! fan-out.
//!
//! The endpoint is a tiny raw HTTP/1.1 receiver on 127.0.0.1:0 in this process, so the header
//! names can be checked as they were on the wire. "Not sent" is proved by ordering, not by
//! sleeping: a later marker webhook (with the same leave delay) is awaited first, and the
//! outbox, which keeps records in creation order, must not hold the cancelled one.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use pusher_local::config::Config;
use pusher_local::webhook::Target;

use crate::support::{self, TestServer, KEY, SECRET, WAIT};

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Request {
    request_line: String,
    /// Header lines exactly as sent (name case kept).
    headers: Vec<(String, String)>,
    body: String,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("the body is JSON")
    }

    fn events(&self) -> Vec<Value> {
        self.json()["events"].as_array().unwrap().clone()
    }
}

#[derive(Default)]
struct Script {
    /// Statuses to answer, in order; 200 once they run out.
    statuses: VecDeque<u16>,
    /// Every answer waits this long first (a slow endpoint).
    delay: Duration,
}

/// A webhook endpoint on 127.0.0.1:0 (also used by the broker suite).
pub struct Receiver {
    addr: SocketAddr,
    rx: mpsc::UnboundedReceiver<Request>,
    script: Arc<Mutex<Script>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let script = Arc::new(Mutex::new(Script::default()));
        let s = script.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (tx, script) = (tx.clone(), s.clone());
                tokio::spawn(async move {
                    let mut stream = BufReader::new(stream);
                    let mut request_line = String::new();
                    if stream.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut headers = Vec::new();
                    loop {
                        let mut line = String::new();
                        stream.read_line(&mut line).await.unwrap();
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        let (name, value) = line.split_once(':').unwrap();
                        headers.push((name.to_owned(), value.trim().to_owned()));
                    }
                    let len: usize = headers
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                        .map_or(0, |(_, v)| v.parse().unwrap());
                    let mut body = vec![0; len];
                    stream.read_exact(&mut body).await.unwrap();
                    let (status, delay) = {
                        let mut script = script.lock().unwrap();
                        (script.statuses.pop_front().unwrap_or(200), script.delay)
                    };
                    let request = Request {
                        request_line: request_line.trim_end().to_owned(),
                        headers,
                        body: String::from_utf8(body).unwrap(),
                    };
                    let _ = tx.send(request);
                    tokio::time::sleep(delay).await;
                    let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                    let _ = stream.get_mut().write_all(answer.as_bytes()).await;
                });
            }
        });
        Receiver { addr, rx, script }
    }

    pub fn url(&self) -> String {
        format!("http://{}/pusher/webhook", self.addr)
    }

    fn answer(&self, statuses: &[u16]) {
        self.script.lock().unwrap().statuses.extend(statuses);
    }

    async fn next(&mut self) -> Request {
        tokio::time::timeout(WAIT, self.rx.recv()).await.expect("a webhook within the wait").unwrap()
    }

    /// The next webhook's single event.
    pub async fn next_event(&mut self) -> Value {
        let request = self.next().await;
        let events = request.events();
        assert_eq!(events.len(), 1, "one event per POST: {}", request.body);
        events[0].clone()
    }

    /// Skips webhooks until one whose event matches.
    async fn until(&mut self, name: &str, channel: &str) -> Value {
        loop {
            let event = self.next_event().await;
            if event["name"] == name && event["channel"] == channel {
                return event;
            }
        }
    }
}

const LEAVE_DELAY: Duration = Duration::from_millis(200);

pub fn config(urls: &[String]) -> Config {
    let mut config = support::config();
    config.apps[0].webhooks = urls.iter().map(Target::new).collect();
    config.webhooks.leave_delay = LEAVE_DELAY;
    config.webhooks.first_retry = Duration::from_millis(20);
    config.webhooks.retry_for = Duration::from_secs(2);
    config.webhooks.timeout = Duration::from_secs(2);
    config
}

async fn control(server: &TestServer, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("http://{}/pusher-local/webhooks{path}", server.api_addr);
    let http = reqwest::Client::new();
    let request = match method {
        "GET" => http.get(url),
        "DELETE" => http.delete(url),
        _ => http.post(url).json(&body.unwrap_or(json!({}))),
    };
    let response = tokio::time::timeout(WAIT, request.send()).await.unwrap().unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// `name channel [user]` of every event in the outbox, in creation order.
async fn outbox_events(server: &TestServer) -> Vec<String> {
    let (status, list) = control(server, "GET", "", None).await;
    assert_eq!(status, 200);
    let mut names = Vec::new();
    for record in list["webhooks"].as_array().unwrap() {
        for e in record["events"].as_array().unwrap() {
            let mut text = format!("{} {}", e["name"].as_str().unwrap(), e["channel"].as_str().unwrap());
            if let Some(user) = e["user_id"].as_str() {
                text.push_str(&format!(" {user}"));
            }
            names.push(text);
        }
    }
    names
}

/// Polls the control API (an HTTP API has nothing to await) until record `id`'s first
/// delivery reaches `state`; bounded by the wait.
async fn wait_for_state(server: &TestServer, id: u64, state: &str) -> Value {
    let poll = async {
        loop {
            let (_, record) = control(server, "GET", &format!("/{id}"), None).await;
            if record["deliveries"][0]["state"] == state {
                return record;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, poll).await.unwrap_or_else(|_| panic!("webhook {id} never became {state}"))
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

#[tokio::test]
async fn occupied_and_vacated_arrive_signed_one_event_per_post_with_exact_headers() {
    let mut hook = Receiver::start().await;
    let server = TestServer::with(config(&[hook.url()])).await;
    let mut c = server.client().await;
    c.subscribe_public("my-channel").await;

    let request = hook.next().await;
    assert_eq!(request.request_line, "POST /pusher/webhook HTTP/1.1");
    assert_eq!(request.header("Content-Type"), Some("application/json"), "{:?}", request.headers);
    assert_eq!(request.header("X-Pusher-Key"), Some(KEY), "{:?}", request.headers);
    let signature = request.header("X-Pusher-Signature").expect("X-Pusher-Signature, in that case");
    assert!(pusher_local::auth::verify(SECRET, &request.body, signature), "signature over the raw body");
    let body = request.json();
    assert_eq!(body["events"], json!([{"name": "channel_occupied", "channel": "my-channel"}]));
    let time_ms = body["time_ms"].as_u64().expect("time_ms is an integer");
    assert!(time_ms.abs_diff(unix_ms()) < 5_000, "time_ms is wall-clock ms: {time_ms}");
    assert!(request.body.starts_with(r#"{"time_ms":"#), "{}", request.body);

    let left = Instant::now();
    c.send(json!({"event": "pusher:unsubscribe", "data": {"channel": "my-channel"}})).await;
    assert_eq!(hook.next_event().await, json!({"name": "channel_vacated", "channel": "my-channel"}));
    assert!(left.elapsed() >= LEAVE_DELAY, "vacated waits the leave delay");
    server.stop().await;
}

#[tokio::test]
async fn a_quick_resubscribe_cancels_vacated_and_sends_no_second_occupied() {
    let mut hook = Receiver::start().await;
    let server = TestServer::with(config(&[hook.url()])).await;
    let mut c = server.client().await;
    c.subscribe_public("page").await;
    c.subscribe_public("marker").await;
    hook.until("channel_occupied", "marker").await;

    // A page reload: leave and come back within the leave delay.
    c.send(json!({"event": "pusher:unsubscribe", "data": {"channel": "page"}})).await;
    c.subscribe_public("page").await;
    // The marker's vacated is scheduled later with the same delay, so it fires after the
    // cancelled one would have.
    c.send(json!({"event": "pusher:unsubscribe", "data": {"channel": "marker"}})).await;
    hook.until("channel_vacated", "marker").await;
    assert_eq!(
        outbox_events(&server).await,
        ["channel_occupied page", "channel_occupied marker", "channel_vacated marker"]
    );
    server.stop().await;
}

#[tokio::test]
async fn member_webhooks_follow_a_users_first_and_last_socket() {
    let mut hook = Receiver::start().await;
    let server = TestServer::with(config(&[hook.url()])).await;
    let room = "presence-room";
    let alice = r#"{"user_id":"alice"}"#;
    let mut alice1 = server.client().await;
    let mut alice2 = server.client().await;
    let mut bob = server.client().await;
    alice1.subscribe_signed(room, Some(alice)).await;
    assert_eq!(hook.until("member_added", room).await["user_id"], "alice");
    alice2.subscribe_signed(room, Some(alice)).await; // alice's second socket: no webhook
    bob.subscribe_signed(room, Some(r#"{"user_id":"bob"}"#)).await;
    assert_eq!(hook.until("member_added", room).await["user_id"], "bob");

    // alice1 leaves while alice2 stays: no member_removed. bob leaves: member_removed (later).
    alice1.send(json!({"event": "pusher:unsubscribe", "data": {"channel": room}})).await;
    bob.send(json!({"event": "pusher:unsubscribe", "data": {"channel": room}})).await;
    let removed = hook.until("member_removed", room).await;
    assert_eq!(removed, json!({"name": "member_removed", "channel": room, "user_id": "bob"}));

    // alice's last socket leaves and rejoins at once: neither removed nor added is sent.
    alice2.expect("pusher_internal:member_added").await; // bob came
    alice2.expect("pusher_internal:member_removed").await; // and went
    alice2.send(json!({"event": "pusher:unsubscribe", "data": {"channel": room}})).await;
    alice2.subscribe_signed(room, Some(alice)).await;
    let mut marker = server.client().await;
    marker.subscribe_public("marker").await;
    marker.send(json!({"event": "pusher:unsubscribe", "data": {"channel": "marker"}})).await;
    hook.until("channel_vacated", "marker").await;
    assert_eq!(
        outbox_events(&server).await,
        [
            "channel_occupied presence-room",
            "member_added presence-room alice",
            "member_added presence-room bob",
            "member_removed presence-room bob",
            "channel_occupied marker",
            "channel_vacated marker",
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn client_events_carry_event_data_socket_id_and_presence_user_id() {
    let mut hook = Receiver::start().await;
    let server = TestServer::with(config(&[hook.url()])).await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    a.subscribe_signed("private-chat", None).await;
    b.subscribe_signed("private-chat", None).await;
    a.send(json!({"event": "client-typing", "channel": "private-chat", "data": {"on": true}})).await;
    b.expect("client-typing").await;
    let event = hook.until("client_event", "private-chat").await;
    assert_eq!(
        event,
        json!({"name": "client_event", "channel": "private-chat", "event": "client-typing",
               "data": "{\"on\":true}", "socket_id": a.socket_id})
    );

    a.subscribe_signed("presence-x", Some(r#"{"user_id":"u1"}"#)).await;
    a.send(json!({"event": "client-hi", "channel": "presence-x", "data": {}})).await;
    let event = hook.until("client_event", "presence-x").await;
    assert_eq!(event["user_id"], "u1");
    assert_eq!(event["socket_id"], a.socket_id.as_str());
    server.stop().await;
}

#[tokio::test]
async fn cache_miss_fires_once_per_channel_within_its_window_and_event_type_filters_apply() {
    let mut all = Receiver::start().await;
    let mut only_misses = Receiver::start().await;
    let mut config = config(&[all.url()]);
    config.apps[0]
        .webhooks
        .push(Target { url: only_misses.url(), event_types: Some(vec![pusher_local::webhook::Kind::CacheMiss]) });
    let server = TestServer::with(config).await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    a.subscribe_public("cache-x").await;
    a.expect("pusher:cache_miss").await;
    b.subscribe_public("cache-x").await;
    b.expect("pusher:cache_miss").await;
    assert_eq!(only_misses.next_event().await, json!({"name": "cache_miss", "channel": "cache-x"}));
    all.until("cache_miss", "cache-x").await;
    b.subscribe_public("marker").await;
    all.until("channel_occupied", "marker").await;
    assert_eq!(
        outbox_events(&server).await,
        ["channel_occupied cache-x", "cache_miss cache-x", "channel_occupied marker"]
    );
    server.stop().await;
}

#[tokio::test]
async fn a_failing_endpoint_is_retried_and_the_outbox_keeps_every_attempt() {
    let mut hook = Receiver::start().await;
    hook.answer(&[500, 503]);
    let server = TestServer::with(config(&[hook.url()])).await;
    let mut c = server.client().await;
    c.subscribe_public("flaky").await;
    let bodies: Vec<String> = [hook.next().await, hook.next().await, hook.next().await].map(|r| r.body).into();
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "retries resend the same body: {bodies:?}");

    // The third attempt got a 200; wait until the outbox says so.
    let record = wait_for_state(&server, 1, "delivered").await;
    let statuses: Vec<u64> =
        record["deliveries"][0]["attempts"].as_array().unwrap().iter().map(|a| a["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [500, 503, 200]);
    let numbers: Vec<u64> = record["deliveries"][0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3]);
    assert_eq!(record["headers"]["X-Pusher-Key"], KEY);
    assert!(!record.to_string().contains(SECRET), "no secret in the control API");
    server.stop().await;
}

#[tokio::test]
async fn a_down_endpoint_gives_up_after_the_retry_window_and_resend_delivers_it() {
    // A port with nothing listening: bind, note the port, close.
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let mut config = config(&[format!("http://{dead}/hook")]);
    config.webhooks.retry_for = Duration::from_millis(300);
    let server = TestServer::with(config).await;
    let mut c = server.client().await;
    c.subscribe_public("lost").await;
    let record = wait_for_state(&server, 1, "failed").await;
    let attempts = record["deliveries"][0]["attempts"].as_array().unwrap();
    assert!(attempts.len() >= 2, "retried: {record}");
    assert!(attempts.iter().all(|a| a["status"].is_null() && a["error"].is_string()), "{record}");

    let mut hook = Receiver::start().await;
    let (status, answer) = control(&server, "POST", "/1/resend", Some(json!({"url": hook.url()}))).await;
    assert_eq!(status, 202, "{answer}");
    let resent = hook.next().await;
    assert_eq!(resent.body, record["body"].as_str().unwrap(), "resent unchanged");
    assert_eq!(resent.header("X-Pusher-Signature"), record["headers"]["X-Pusher-Signature"].as_str());
    server.stop().await;
}

#[tokio::test]
async fn without_a_url_webhooks_are_kept_and_the_control_api_answers_errors_as_json() {
    let server = TestServer::with(config(&[])).await;
    let mut c = server.client().await;
    c.subscribe_public("quiet").await;
    c.assert_alive().await;
    assert_eq!(outbox_events(&server).await, ["channel_occupied quiet"]);
    // Client events are the exception: kept only when a URL receives them.
    let mut d = server.client().await;
    c.subscribe_signed("private-talk", None).await;
    d.subscribe_signed("private-talk", None).await;
    c.send(json!({"event": "client-hi", "channel": "private-talk", "data": {}})).await;
    d.expect("client-hi").await;
    assert_eq!(outbox_events(&server).await, ["channel_occupied quiet", "channel_occupied private-talk"]);
    let (_, record) = control(&server, "GET", "/1", None).await;
    assert_eq!(record["deliveries"], json!([]));
    let (status, answer) = control(&server, "POST", "/1/resend", None).await;
    assert_eq!(status, 400);
    assert!(answer["error"].as_str().unwrap().contains("no URL"), "{answer}");
    assert_eq!(control(&server, "GET", "/99", None).await.0, 404);
    assert_eq!(control(&server, "DELETE", "", None).await.0, 200);
    assert_eq!(outbox_events(&server).await, Vec::<String>::new());
    server.stop().await;
}

#[tokio::test]
async fn a_slow_endpoint_does_not_delay_fan_out() {
    let mut hook = Receiver::start().await;
    hook.script.lock().unwrap().delay = Duration::from_secs(30);
    let server = TestServer::with(config(&[hook.url()])).await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    a.subscribe_signed("private-fast", None).await;
    b.subscribe_signed("private-fast", None).await;
    hook.next().await; // channel_occupied is now stuck in the slow endpoint
    let api = server.api();
    // Eight rounds: client events are limited to 10 per second per socket.
    for i in 0..8 {
        let started = Instant::now();
        let (status, _) = api.trigger("private-fast", "tick", &i.to_string()).await;
        assert_eq!(status, 200);
        a.expect("tick").await;
        b.send(json!({"event": "client-tock", "channel": "private-fast", "data": {}})).await;
        a.expect("client-tock").await;
        assert!(started.elapsed() < Duration::from_millis(500), "round {i} took {:?}", started.elapsed());
    }
    server.stop().await;
}

#[tokio::test]
async fn the_webhooks_subcommands_list_show_and_resend_through_the_control_api() {
    let server = TestServer::with(config(&[])).await;
    let mut c = server.client().await;
    c.subscribe_public("cli-channel").await;
    c.assert_alive().await;
    let base = format!("http://{}", server.api_addr);
    let run = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_pusher-local"));
        cmd.args(["--no-config", "webhooks"]).args(args).args(["--url", &base]).kill_on_drop(true);
        async move {
            let out = tokio::time::timeout(WAIT, cmd.output()).await.expect("the command finishes").unwrap();
            (out.status.code(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
        }
    };
    let (code, out, _) = run(&["list"]).await;
    assert_eq!(code, Some(0));
    assert!(
        out.contains("#1") && out.contains("channel_occupied cli-channel") && out.contains("no webhook URL"),
        "{out}"
    );
    let (code, out, _) = run(&["show", "1"]).await;
    assert_eq!(code, Some(0));
    assert!(out.contains("X-Pusher-Signature: ") && out.contains(r#""events":[{"name":"channel_occupied""#), "{out}");
    let (code, _, err) = run(&["resend", "1"]).await;
    assert_eq!(code, Some(1));
    assert!(err.contains("no URL"), "{err}");
    let mut hook = Receiver::start().await;
    let (code, out, err) = run(&["resend", "1", "--to", &hook.url()]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("queued again"), "{out}");
    assert_eq!(hook.next_event().await["name"], "channel_occupied");
    server.stop().await;
}

#[tokio::test]
async fn subscription_count_goes_only_to_endpoints_that_name_it() {
    let mut counts = Receiver::start().await;
    let mut everything = Receiver::start().await;
    let mut config = config(&[everything.url()]);
    config.apps[0].subscription_count = true;
    config.apps[0]
        .webhooks
        .push(Target { url: counts.url(), event_types: Some(vec![pusher_local::webhook::Kind::SubscriptionCount]) });
    let server = TestServer::with(config).await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    a.subscribe_public("counted").await;
    a.expect("pusher_internal:subscription_count").await;
    b.subscribe_public("counted").await;
    b.expect("pusher_internal:subscription_count").await;
    a.expect("pusher_internal:subscription_count").await;
    assert_eq!(
        counts.next_event().await,
        json!({"name": "subscription_count", "channel": "counted", "subscription_count": 1})
    );
    assert_eq!(
        counts.next_event().await,
        json!({"name": "subscription_count", "channel": "counted", "subscription_count": 2})
    );
    // The endpoint without a filter got occupied, and no subscription_count before the marker.
    assert_eq!(everything.next_event().await, json!({"name": "channel_occupied", "channel": "counted"}));
    a.subscribe_public("marker").await;
    assert_eq!(everything.next_event().await, json!({"name": "channel_occupied", "channel": "marker"}));
    server.stop().await;
}

#[tokio::test]
async fn another_web_origin_a_rebound_host_or_a_simple_body_cannot_drive_the_control_api() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let url = format!("http://{}/pusher-local/replays", server.api_addr);
    let own = format!("http://{}", server.api_addr);
    let body = r#"{"fixture":"notifications","speed":"max"}"#;
    let send = |origin: Option<&str>, content_type: &str, host: Option<&str>| {
        let mut request = http.post(&url).header("content-type", content_type).body(body);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        if let Some(host) = host {
            request = request.header("host", host);
        }
        request.send()
    };
    // What a page on another site can send without a preflight: refused, nothing started.
    let cross = send(Some("https://evil.example"), "text/plain", None).await.unwrap();
    assert_eq!(cross.status(), 403);
    assert!(cross.text().await.unwrap().contains("another web origin"));
    let form = send(None, "application/x-www-form-urlencoded", None).await.unwrap();
    assert_eq!(form.status(), 415);
    assert!(form.text().await.unwrap().contains("application/json"));
    // DNS rebinding: the attacker's name resolving to 127.0.0.1.
    let rebound = send(None, "application/json", Some("evil.example")).await.unwrap();
    assert_eq!(rebound.status(), 403);
    let list: Value = http.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["replays"], json!([]), "nothing was started");
    // The server's own origin, and tools that send no Origin, pass.
    assert_eq!(send(Some(&own), "application/json", None).await.unwrap().status(), 202);
    assert_eq!(send(None, "application/json; charset=utf-8", None).await.unwrap().status(), 202);
    // The Pusher endpoints stay open to any origin.
    let (status, _) = server.api().trigger("c", "e", "{}").await;
    assert_eq!(status, 200);
    server.stop().await;
}
