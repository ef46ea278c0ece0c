//! What each fuzz target does with its input, shared by the targets (`fuzz/fuzz_targets/*`,
//! built by cargo-fuzz on nightly) and by `tests/fuzz_corpus.rs`, which runs every file of the
//! corpus (`fuzz/corpus/<target>/`) and of the regressions (`fuzz/regressions/<target>/`)
//! through the same functions on stable, in the normal test suite.
//!
//! Everything runs in-process against one real server state (the embedded broker, a printer at
//! `-v` writing to nowhere, so every frame is also rendered): the WebSocket target speaks to
//! `ws::connection::run` over an in-memory pipe, the HTTP targets call the server's own routes.
//! Time is paused (tokio's test clock), so timers cost nothing. A panic anywhere, in the
//! harness's task or in a server task it spawned, is a crash.

#![allow(dead_code)] // each target uses one entry point

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pusher_local::apps::App;
use pusher_local::printer::{Filter, Format, Printer, Sink, TextOptions, Verbosity};
use pusher_local::recorder::watch::Fixtures;
use pusher_local::state::AppState;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use warp::filters::BoxedFilter;
use warp::reply::Response;

/// `PUSHER_LOCAL_FUZZ_DEBUG=1`: print what each input got back (to see what an input does).
fn debug(what: impl std::fmt::Display) {
    static ON: OnceLock<bool> = OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("PUSHER_LOCAL_FUZZ_DEBUG").is_some()) {
        eprintln!("{what}");
    }
}

/// The app every request is for.
pub const APP_ID: &str = "1";
/// Its key.
pub const KEY: &str = "fuzz-key";
/// Its secret.
pub const SECRET: &str = "fuzz-secret";

/// One server state and its routes, on a current-thread runtime with a paused clock.
pub struct Server {
    runtime: tokio::runtime::Runtime,
    state: AppState,
    app: Arc<App>,
    api: BoxedFilter<(Response,)>,
    websocket: BoxedFilter<(Response,)>,
}

/// The process's server, made on first use.
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(Server::new)
}

impl Server {
    fn new() -> Server {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
        let mut app = App::new(APP_ID, KEY, SECRET);
        app.client_events = true;
        let config = pusher_local::Config {
            apps: vec![app],
            fixtures: std::env::temp_dir().join("pusher-local-fuzz-no-fixtures"),
            ..Default::default()
        };
        let text = TextOptions { color: false, full: true, width: Some(120), show_app: true };
        let sink = Sink { out: Box::new(std::io::sink()), format: Format::Text, text, verbosity: Verbosity::Verbose };
        let printer = Printer::spawn(vec![sink], Filter::default(), false);
        let state = runtime.block_on(async {
            let registry = pusher_local::registry::ChannelRegistry::new();
            let (broker, _notices) = pusher_local::broker::connect(None, registry.clone()).await.unwrap();
            let fixtures = Fixtures::new(config.fixtures.clone());
            let shutdown = pusher_local::Shutdown::new();
            let db = std::env::temp_dir().join(format!("pusher-local-fuzz-{}.db", std::process::id()));
            let slot = pusher_local::recorder::slot::Slot::new(db, "fuzz".into(), printer.clone());
            AppState::new(Arc::new(config), registry, broker, printer, shutdown, slot, fixtures)
        });
        let app = state.apps().find_by_key(KEY).unwrap().clone();
        let (api, websocket) = {
            let _entered = runtime.enter();
            pusher_local::server::routes(&state)
        };
        Server { runtime, state, app, api, websocket }
    }

    /// Runs `work` to completion, then lets the tasks it started settle; a panic in any of
    /// them is re-raised here.
    fn run<F: std::future::Future<Output = ()>>(&self, work: F) {
        self.runtime.block_on(async {
            work.await;
            // Let closing sessions clean up (virtual time: free).
            tokio::time::sleep(Duration::from_millis(50)).await;
        });
    }
}

/// Awaits a spawned task and re-raises its panic.
async fn joined(task: tokio::task::JoinHandle<()>) {
    if let Err(error) = task.await {
        if error.is_panic() {
            std::panic::resume_unwind(error.into_panic());
        }
    }
}

/// `websocket`: the first byte picks the mode. Even: the rest is raw bytes on the wire after the
/// handshake (frames, masks, lengths, control frames all up to the input). Odd: the rest is
/// text messages, one per line, sent by a well-behaved client, where `"auth":"?"` and
/// `"auth":"?"` in a signin are replaced by the right signature for this socket, so subscriptions
/// and signins get past the signature to the channel_data and user_data checks.
pub fn websocket(input: &[u8]) {
    let Some((&mode, rest)) = input.split_first() else { return };
    let server = server();
    server.run(async {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let config = pusher_local::ws::websocket_config(&server.state);
        let ws = WebSocketStream::from_raw_socket(server_io, Role::Server, Some(config)).await;
        let session = pusher_local::ws::connection::run(server.state.clone(), ws, server.app.clone(), None, None);
        let task = tokio::spawn(session);
        if mode % 2 == 0 {
            let mut client_io = client_io;
            let _ = client_io.write_all(rest).await;
            let _ = client_io.shutdown().await;
            drain_raw(client_io).await;
        } else {
            let client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
            converse(client, rest).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), joined(task)).await;
    });
}

/// Reads what the server sends until it closes (bounded in virtual time).
async fn drain_raw(mut io: tokio::io::DuplexStream) {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 16 * 1024];
    let until = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Ok(n)) = tokio::time::timeout_at(until, io.read(&mut buf)).await {
        if n == 0 {
            break;
        }
    }
}

/// A client that reads `connection_established`, sends each line of `script` (signing where
/// asked), then a ping, and reads until the pong or the close.
async fn converse(mut client: WebSocketStream<tokio::io::DuplexStream>, script: &[u8]) {
    let Ok(Some(Ok(Message::Text(hello)))) = tokio::time::timeout(Duration::from_secs(1), client.next()).await else {
        return;
    };
    let socket_id = serde_json::from_str::<Value>(&hello)
        .ok()
        .and_then(|v| v["data"].as_str().and_then(|d| serde_json::from_str::<Value>(d).ok()))
        .and_then(|d| d["socket_id"].as_str().map(str::to_owned))
        .unwrap_or_default();
    for line in script.split(|&b| b == b'\n') {
        let text = String::from_utf8_lossy(line);
        if client.send(Message::text(signed(&text, &socket_id))).await.is_err() {
            return;
        }
    }
    let _ = client.send(Message::text(r#"{"event":"pusher:ping","data":{}}"#)).await;
    let until = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(until, client.next()).await {
        debug(format_args!("websocket < {message}"));
        if message.to_text().is_ok_and(|t| t.contains("pusher:pong")) {
            break;
        }
    }
    let _ = client.close(None).await;
}

/// `text` with `"auth":"?"` replaced by the signature the server expects for `socket_id`.
fn signed(text: &str, socket_id: &str) -> String {
    let Ok(mut message) = serde_json::from_str::<Value>(text) else { return text.to_owned() };
    let Some(data) = message.get_mut("data").and_then(Value::as_object_mut) else { return text.to_owned() };
    if data.get("auth").and_then(Value::as_str) != Some("?") {
        return text.to_owned();
    }
    let signed = match (data.get("channel").and_then(Value::as_str), data.get("user_data").and_then(Value::as_str)) {
        (Some(channel), _) => {
            let channel_data = data.get("channel_data").and_then(Value::as_str);
            pusher_local::auth::channel::subscription_string(socket_id, channel, channel_data)
        }
        (None, Some(user_data)) => pusher_local::auth::channel::signin_string(socket_id, user_data),
        (None, None) => return text.to_owned(),
    };
    let auth = pusher_local::auth::channel::auth_value(KEY, SECRET, &signed);
    data.insert("auth".into(), Value::String(auth));
    message.to_string()
}

/// `rest`: the first byte picks the method (GET, POST, DELETE, PUT) and, with bit 2 set, the
/// harness signs the request as the SDKs do (so it reaches the handlers); the rest is the path
/// with its query on the first line, the body after.
pub fn rest(input: &[u8]) {
    let Some((&flags, rest)) = input.split_first() else { return };
    let (target, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let target = String::from_utf8_lossy(target).into_owned();
    let method = ["GET", "POST", "DELETE", "PUT"][usize::from(flags & 3)];
    let target = if flags & 4 != 0 { sign_request(method, &target, body) } else { target };
    // A request line that is not a URI is refused before any route: nothing to drive. Faults
    // (an injected 500 is their point) and recordings (files in the working directory) would
    // outlive the input and make the next one behave differently: left out.
    if !target.starts_with('/') || target.parse::<warp::http::Uri>().is_err() || stateful(&target) {
        return;
    }
    let server = server();
    server.run(async {
        let response = warp::test::request()
            .method(method)
            .path(&target)
            .header("host", "127.0.0.1:6001")
            .header("content-type", if flags & 8 != 0 { "text/plain" } else { "application/json" })
            .body(body)
            .reply(&server.api)
            .await;
        let status = response.status().as_u16();
        debug(format_args!("rest {method} {target} → {status} {}", String::from_utf8_lossy(response.body())));
        assert!(status < 500 || status == 503, "{method} {target}: {status} {:?}", response.body());
    });
}

/// Control paths whose effects outlive one input.
fn stateful(target: &str) -> bool {
    let path = target.split('?').next().unwrap_or_default().to_ascii_lowercase();
    let path = percent_encoding::percent_decode_str(&path).decode_utf8_lossy().into_owned();
    ["faults", "recording"].iter().any(|word| path.contains(word))
}

/// `target` (`/path?query`) with `auth_key`, `auth_timestamp`, `auth_version`, `body_md5` (for
/// a body) and `auth_signature` added, signed as the server SDKs sign.
fn sign_request(method: &str, target: &str, body: &[u8]) -> String {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .filter(|(k, _)| !matches!(k.as_str(), "auth_signature" | "auth_key" | "auth_timestamp" | "auth_version"))
        .collect();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    params.push(("auth_key".into(), KEY.into()));
    params.push(("auth_timestamp".into(), now.to_string()));
    params.push(("auth_version".into(), "1.0".into()));
    if !body.is_empty() {
        params.retain(|(k, _)| k != "body_md5");
        params.push(("body_md5".into(), pusher_local::auth::request::body_md5(body)));
    }
    params.sort();
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{}={v}", k.to_lowercase())).collect();
    let query = query.join("&");
    let signature = pusher_local::auth::sign(SECRET, &format!("{method}\n{path}\n{query}"));
    let encoded: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter())
        .append_pair("auth_signature", &signature)
        .finish();
    format!("{path}?{encoded}")
}

/// `xhr`: opens an `xhr` (long-polling) session, sends the input as one `xhr_send` body, then
/// polls once for what the session answered.
pub fn xhr(input: &[u8]) {
    static SESSIONS: AtomicU64 = AtomicU64::new(0);
    let server = server();
    let session = SESSIONS.fetch_add(1, Ordering::Relaxed);
    let base = format!("/app/{KEY}/123/fuzz{session}");
    server.run(async {
        let open =
            warp::test::request().method("POST").path(&format!("{base}/xhr?protocol=7")).reply(&server.websocket);
        let opened = tokio::time::timeout(Duration::from_secs(5), open).await.expect("xhr open answers");
        assert_eq!(opened.status(), 200, "{:?}", opened.body());
        let send =
            warp::test::request().method("POST").path(&format!("{base}/xhr_send")).body(input).reply(&server.websocket);
        let sent = tokio::time::timeout(Duration::from_secs(5), send).await.expect("xhr_send answers");
        assert!(sent.status().as_u16() < 500, "xhr_send: {} {:?}", sent.status(), sent.body());
        let poll = warp::test::request().method("POST").path(&format!("{base}/xhr")).reply(&server.websocket);
        if let Ok(answer) = tokio::time::timeout(Duration::from_secs(60), poll).await {
            debug(format_args!("xhr < {}", String::from_utf8_lossy(answer.body())));
        }
    });
}

/// `protocol`: the parsers of what a client sends, on their own: a frame into a protocol
/// message, a channel name, a socket id, a signed request's query and its string to sign.
pub fn protocol(input: &[u8]) {
    let text = String::from_utf8_lossy(input);
    let _ = pusher_local::protocol::client::ClientMessage::parse(&text);
    let _ = pusher_local::protocol::channel::ChannelName::parse(&text, 200);
    let _ = pusher_local::protocol::SocketId::parse(&text);
    let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let (path, query) = first.split_once('?').unwrap_or((first, ""));
    if let Ok(request) = pusher_local::auth::request::SignedRequest::parse("POST", path, query) {
        let message = request.string_to_sign_undecoded();
        let _ = pusher_local::auth::verify(SECRET, &message, request.signature());
        let _ = request.string_to_sign_as("GET", rest);
    }
}

/// `fixture`: a fixture file's text.
pub fn fixture(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else { return };
    if let Ok(fixture) = pusher_local::recorder::Fixture::parse(text) {
        // What parses saves and parses again to the same events.
        let again = pusher_local::recorder::Fixture::parse(&fixture.to_json()).expect("a saved fixture parses");
        assert_eq!(again.events.len(), fixture.events.len());
    }
}

/// `config`: the first byte picks the TOML config file or `.env`; the rest is the file, read
/// through the same layering as at start-up.
pub fn config(input: &[u8]) {
    let Some((&which, rest)) = input.split_first() else { return };
    let dir = config_dir();
    let (name, flags): (&str, &[&str]) = if which % 2 == 0 {
        ("fuzz.toml", &["pusher-local", "--config", "fuzz.toml"])
    } else {
        (".env", &["pusher-local"])
    };
    let _ = std::fs::remove_file(dir.join("fuzz.toml"));
    let _ = std::fs::remove_file(dir.join(".env"));
    std::fs::write(dir.join(name), rest).unwrap();
    let Ok(cli) = <pusher_local::cli::Cli as clap::Parser>::try_parse_from(flags) else { return };
    let env = |_: &str| None::<String>;
    let _ = pusher_local::Config::resolve(cli.layer(), &env, dir);
}

/// A folder of this process's own for the config target's files.
fn config_dir() -> &'static std::path::Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("pusher-local-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}
