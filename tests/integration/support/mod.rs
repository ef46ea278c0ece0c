//! Test support: an in-process server on port 0, a raw WebSocket client that speaks Pusher
//! frames, and a signed HTTP client that signs exactly as the official SDKs do.

#![allow(dead_code)] // each test module uses a different subset

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use pusher_local::apps::App;
use pusher_local::auth;
use pusher_local::config::{Config, Listen};
use pusher_local::printer::Printer;
use pusher_local::{Listeners, Shutdown};

pub mod redis;

pub const APP_ID: &str = "1";
pub const KEY: &str = "app-key";
pub const SECRET: &str = "app-secret";
/// Every wait in the tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(5);

/// A config with the default test app, listening on 127.0.0.1:0, with no fixtures folder.
/// subscription_count frames are off here (tests that want them turn them on) so frame
/// sequences stay short.
pub fn config() -> Config {
    let mut app = App::new(APP_ID, KEY, SECRET);
    app.subscription_count = false;
    Config {
        listen: Listen::Combined("127.0.0.1:0".parse().unwrap()),
        apps: vec![app],
        // Not the repository's ./fixtures: tests that want fixtures bring a temp folder.
        fixtures: std::env::temp_dir().join("pusher-local-tests-without-fixtures"),
        // Not the user's data folder: one local CA shared by the test servers (made on first use
        // under a file lock).
        tls: pusher_local::tls::Settings { dir: tls_dir(), ..Default::default() },
        ..Config::default()
    }
}

/// The TLS folder of the test servers.
pub fn tls_dir() -> std::path::PathBuf {
    std::env::temp_dir().join("pusher-local-tests-tls")
}

/// A server running in this process.
pub struct TestServer {
    pub addr: SocketAddr,
    pub api_addr: SocketAddr,
    pub shutdown: Shutdown,
    task: tokio::task::JoinHandle<pusher_local::Result<()>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::with(config()).await
    }

    pub async fn with(config: Config) -> TestServer {
        Self::with_printer(config, Printer::silent()).await
    }

    pub async fn with_printer(config: Config, printer: Printer) -> TestServer {
        let listeners = Listeners::bind(&config.listen).await.expect("bind");
        let (api_addr, addr) = listeners.local_addrs();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(pusher_local::run(listeners, config, printer, shutdown.clone()));
        TestServer { addr, api_addr, shutdown, task }
    }

    /// Waits (bounded) until the server answers its health check: start-up, the Redis
    /// connection included, is over. `with` returns as soon as the task is spawned.
    pub async fn ready(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (status, text) = self.api().get("/pusher-local/health", &[]).await;
            if status == 200 {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "not serving within 10 s: {status} {text}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Fires the shutdown and waits for the server to finish draining.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops in time")
            .unwrap()
            .expect("server ran");
    }

    pub fn ws_url(&self, key: &str) -> String {
        format!("ws://{}/app/{key}?protocol=7&client=js&version=8.6.0&flash=false", self.addr)
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.ws_url(KEY)).await
    }

    pub fn wss_url(&self, key: &str) -> String {
        format!("wss://{}/app/{key}?protocol=7&client=js&version=8.6.0&flash=false", self.addr)
    }

    /// A client over wss://, trusting the test servers' local CA.
    pub async fn tls_client(&self) -> Client {
        Client::connect_tls(&self.wss_url(KEY), trust()).await
    }

    /// The HTTP API over https://, trusting the test servers' local CA.
    pub fn api_tls(&self) -> Api {
        Api {
            base: format!("https://{}", self.api_addr),
            http: reqwest::Client::builder().use_preconfigured_tls((*trust()).clone()).build().unwrap(),
            ..self.api()
        }
    }

    pub fn api(&self) -> Api {
        Api {
            base: format!("http://{}", self.api_addr),
            http: reqwest::Client::new(),
            key: KEY.into(),
            secret: SECRET.into(),
        }
    }
}

/// A printer whose text lines (no colour) land in a buffer the test can read.
#[derive(Clone, Default)]
pub struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    pub fn printer(&self) -> Printer {
        use pusher_local::printer::{Filter, Format, Sink, TextOptions, Verbosity};
        let text = TextOptions { color: false, full: false, width: None, show_app: false };
        let sink = Sink { out: Box::new(self.clone()), format: Format::Text, text, verbosity: Verbosity::Normal };
        Printer::spawn(vec![sink], Filter::default(), false)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Waits (bounded) until the output contains `needle`.
    pub async fn until(&self, needle: &str, within: Duration) {
        let deadline = std::time::Instant::now() + within;
        while !self.text().contains(needle) {
            assert!(std::time::Instant::now() < deadline, "no {needle:?} within {within:?} in:\n{}", self.text());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A raw Pusher client.
pub struct Client {
    pub ws: Ws,
    pub socket_id: String,
}

/// How a read ended when a frame was expected.
#[derive(Debug, PartialEq)]
pub enum Next {
    Frame(Value),
    Closed(Option<u16>, String),
}

/// What the test clients trust: the system's roots and the test servers' local CA.
pub fn trust() -> std::sync::Arc<rustls::ClientConfig> {
    pusher_local::tls::ClientTrust { tls_dir: Some(tls_dir()), ..Default::default() }.config().unwrap()
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect in time")
            .expect("connect");
        Self::established(ws).await
    }

    pub async fn connect_tls(url: &str, trust: std::sync::Arc<rustls::ClientConfig>) -> Client {
        let connector = tokio_tungstenite::Connector::Rustls(trust);
        let connect = tokio_tungstenite::connect_async_tls_with_config(url, None, false, Some(connector));
        let (ws, _) = tokio::time::timeout(WAIT, connect).await.expect("connect in time").expect("connect");
        Self::established(ws).await
    }

    async fn established(ws: Ws) -> Client {
        let mut client = Client { ws, socket_id: String::new() };
        let hello = client.recv().await;
        assert_eq!(hello["event"], "pusher:connection_established", "{hello}");
        let data: Value = serde_json::from_str(hello["data"].as_str().expect("data is a string")).unwrap();
        client.socket_id = data["socket_id"].as_str().unwrap().to_owned();
        client
    }

    pub async fn send(&mut self, frame: Value) {
        self.ws.send(Message::text(frame.to_string())).await.unwrap();
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text.to_owned())).await.unwrap();
    }

    /// The next text frame or the close, skipping WebSocket pings/pongs.
    pub async fn next(&mut self) -> Next {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next()).await.expect("a frame within the wait");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    return Next::Frame(serde_json::from_str(&t).expect("server frames are JSON"))
                }
                Some(Ok(Message::Close(f))) => {
                    return Next::Closed(
                        f.as_ref().map(|f| u16::from(f.code)),
                        f.map(|f| f.reason.to_string()).unwrap_or_default(),
                    )
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(other)) => panic!("unexpected message {other:?}"),
                Some(Err(_)) | None => return Next::Closed(None, String::new()),
            }
        }
    }

    pub async fn recv(&mut self) -> Value {
        match self.next().await {
            Next::Frame(v) => v,
            closed => panic!("expected a frame, got {closed:?}"),
        }
    }

    /// Expects the connection to close; returns the close code.
    pub async fn expect_close(&mut self) -> Option<u16> {
        loop {
            match self.next().await {
                Next::Closed(code, _) => return code,
                Next::Frame(_) => continue,
            }
        }
    }

    /// The next frame must be `event`; returns it.
    pub async fn expect(&mut self, event: &str) -> Value {
        let frame = self.recv().await;
        assert_eq!(frame["event"], event, "expected {event}, got {frame}");
        frame
    }

    /// The next frame must be a `pusher:error`; returns its data.
    pub async fn expect_error(&mut self) -> Value {
        self.expect("pusher:error").await["data"].clone()
    }

    /// Sends a ping and expects the pong: proves the connection still works and that nothing
    /// else was queued before it.
    pub async fn assert_alive(&mut self) {
        self.send(json!({"event": "pusher:ping", "data": {}})).await;
        let frame = self.recv().await;
        assert_eq!(frame, json!({"event": "pusher:pong", "data": "{}"}));
    }

    pub async fn subscribe_public(&mut self, channel: &str) {
        self.send(json!({"event": "pusher:subscribe", "data": {"auth": "", "channel": channel}})).await;
        let ok = self.expect("pusher_internal:subscription_succeeded").await;
        assert_eq!(ok["channel"], channel);
    }

    /// Subscribes with a correct signature; returns the succeeded frame's decoded data.
    pub async fn subscribe_signed(&mut self, channel: &str, channel_data: Option<&str>) -> Value {
        let auth = channel_auth(&self.socket_id, channel, channel_data);
        let mut data = json!({"auth": auth, "channel": channel});
        if let Some(cd) = channel_data {
            data["channel_data"] = json!(cd);
        }
        self.send(json!({"event": "pusher:subscribe", "data": data})).await;
        let ok = self.expect("pusher_internal:subscription_succeeded").await;
        serde_json::from_str(ok["data"].as_str().unwrap()).unwrap()
    }

    pub async fn signin(&mut self, user_data: &str) -> Value {
        let auth = format!("{KEY}:{}", auth::sign(SECRET, &auth::channel::signin_string(&self.socket_id, user_data)));
        self.send(json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}})).await;
        self.expect("pusher:signin_success").await
    }
}

/// What an app's auth endpoint would return for this subscription.
pub fn channel_auth(socket_id: &str, channel: &str, channel_data: Option<&str>) -> String {
    auth::channel::auth_value(KEY, SECRET, &auth::channel::subscription_string(socket_id, channel, channel_data))
}

/// Decodes a frame's string `data`.
pub fn data_of(frame: &Value) -> Value {
    serde_json::from_str(frame["data"].as_str().expect("string data")).expect("JSON inside data")
}

/// A signed HTTP API client, signing like pusher-http-node.
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
    pub key: String,
    pub secret: String,
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

impl Api {
    pub fn with_secret(mut self, secret: &str) -> Api {
        self.secret = secret.into();
        self
    }

    pub fn with_key(mut self, key: &str) -> Api {
        self.key = key.into();
        self
    }

    pub fn signed_url(&self, method: &str, path: &str, body: &[u8], params: &[(&str, &str)]) -> String {
        let query = auth::request::sign_query(&self.key, &self.secret, method, path, body, now(), params);
        format!("{}{path}?{query}", self.base)
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, String) {
        self.post_raw(path, body.to_string().as_bytes()).await
    }

    pub async fn post_raw(&self, path: &str, body: &[u8]) -> (u16, String) {
        let url = self.signed_url("POST", path, body, &[]);
        let response =
            self.http.post(url).header("content-type", "application/json").body(body.to_vec()).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    pub async fn get(&self, path: &str, params: &[(&str, &str)]) -> (u16, String) {
        let url = self.signed_url("GET", path, b"", params);
        let response = self.http.get(url).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    pub async fn trigger(&self, channel: &str, event: &str, data: &str) -> (u16, String) {
        self.post("/apps/1/events", &json!({"name": event, "channels": [channel], "data": data})).await
    }
}
