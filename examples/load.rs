//! End-to-end load against a running Pusher-compatible server: subscribers on one channel over
//! WebSockets, events triggered through the signed HTTP API, and what arrived when.
//!
//! ```text
//! cargo run --release --example load -- --url http://127.0.0.1:6001 --subscribers 1000 --events 1000
//! cargo run --release --example load -- --subscribers 1000 --events 1000 --rate 100 --pid "$(pgrep -n pusher-local)"
//! cargo run --release --example load -- --url https://127.0.0.1:6001 --ca-file ~/.local/share/pusher-local/ca.pem
//! cargo run --release --example load -- --subscribers 1000 --events 20000 --rate 2000 --payload 512 --stalled 10 --pid PID --json
//! ```
//!
//! An `https://` URL loads the server over TLS (`wss://` subscribers, `https://` triggers),
//! trusting the system's roots and `--ca-file`.
//!
//! Prints deliveries per second, end-to-end latency (p50/p99/max, from just before the HTTP
//! request to the frame's arrival, one clock), losses and duplicates, trigger requests per second
//! and, with `--pid` (a server on this machine), the server's memory per connection (RSS growth
//! while the subscribers connected, divided by their number), its RSS peak (sampled every 100 ms
//! for the whole run) and its VmHWM at the end. Works against pusher-local, real Pusher's protocol
//! peers, or anything that speaks the protocol. Bounded: a fixed number of events, and every
//! phase has a deadline (`--timeout`). Opening thousands of sockets needs `ulimit -n` raised in
//! the shell that runs it. `--json` prints one JSON object with every number instead of the text.
//!
//! **Stalled consumers** (`--stalled N`): N more sockets, each with a small receive buffer
//! (`--stall-rcvbuf`, default 4096 bytes, set before connecting), subscribe to the same channel
//! and then stop reading. Once the healthy subscribers have everything, the tool asks the
//! server's control API (`GET /pusher-local/connections`) which of the stalled sockets it still
//! holds, then each stalled socket reads what it can for at most `--drain-secs` (all of them
//! together) and reports how its connection ended: a close frame (4100 is the slow-consumer
//! code), the stream ending without a close frame (EOF or reset), or still open.
//!
//! How many events it takes to overflow a stalled socket: pusher-local queues
//! `outbox_capacity` frames per socket (4096 by default) once the socket stops taking them, and
//! the socket takes what the kernel buffers hold first: the server's send buffer (loopback
//! autotuning, up to `net.ipv4.tcp_wmem`'s maximum, 4 MiB by default) plus the client's small
//! receive buffer, ≈ 3.1 MB in the smoke runs. An event frame is about the payload plus 130
//! bytes: with `--payload 512` a stalled socket read 4,842 events back from the kernel, so it
//! overflows after ≈ 4,842 + 4,096 ≈ 9,000 events (≤ ≈ 10,600 with a 4 MiB send buffer); with
//! `--payload 100` the kernel alone holds ≈ 18,000. Fanning that many events out to 1000
//! healthy subscribers within a short run would saturate the server (its fan-out to 1000 is
//! ≈ 0.5 M deliveries/s on a quiet 2-core machine) and the latency would measure the backlog.
//! Hence `--stall-fill N`: N filler events (`--stall-fill-payload`, 4 KiB) at
//! `--stall-fill-rate` on a second channel only the stalled sockets join, published alongside
//! the measured events; the stalled sockets still receive every measured event as well. 6,000
//! fillers at 1000/s overflow them within the first few seconds. Use the same filler in a run
//! without stalled sockets (it then reaches nobody) to compare like with like.
//!
//! What a stalled client sees: the close frame queues behind the bytes it is not reading. In
//! the smoke runs a stalled socket that resumed reading got the kernel's frames and then either
//! the 4100 close frame or, in a run where the server had already dropped the socket (its
//! closing handshake is bounded: 2 s), the stream's end without a close frame (a reset). The
//! line "still held by the server" tells them apart from the server's side.

#![warn(clippy::too_many_lines)]

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use pusher_local::auth::request::sign_query;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// Load a Pusher-compatible server and report deliveries/s, latency and memory per connection.
#[derive(Debug, Parser)]
struct Args {
    /// The server's HTTP base URL (WebSockets use the same host and port)
    #[arg(long, default_value = "http://127.0.0.1:6001")]
    url: String,
    /// App id
    #[arg(long, default_value = "1")]
    app_id: String,
    /// App key
    #[arg(long, default_value = "app-key")]
    key: String,
    /// App secret
    #[arg(long, default_value = "app-secret")]
    secret: String,
    /// WebSocket subscribers on the channel
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Events to trigger
    #[arg(long, default_value_t = 1000)]
    events: usize,
    /// Bytes of event data (at least the few the sequence number and timestamp need)
    #[arg(long, default_value_t = 100)]
    payload: usize,
    /// Concurrent HTTP publishers
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Events per second in all (default: as fast as the publishers go)
    #[arg(long)]
    rate: Option<f64>,
    /// The server's process id, to report its memory per connection and RSS peak (Linux /proc)
    #[arg(long)]
    pid: Option<u32>,
    /// Seconds any phase may take
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// A CA (PEM) to trust for an https:// URL, e.g. pusher-local's ca.pem
    #[arg(long)]
    ca_file: Option<std::path::PathBuf>,
    /// Extra subscribers that stop reading once subscribed (slow consumers)
    #[arg(long, default_value_t = 0)]
    stalled: usize,
    /// SO_RCVBUF of a stalled socket, in bytes (the kernel doubles it)
    #[arg(long, default_value_t = 4096)]
    stall_rcvbuf: u32,
    /// Filler events for the stalled sockets: published on a second channel only they join
    /// (so they overflow without the healthy subscribers paying for it); 0: none
    #[arg(long, default_value_t = 0)]
    stall_fill: usize,
    /// Bytes of each filler event's data
    #[arg(long, default_value_t = 4096)]
    stall_fill_payload: usize,
    /// Filler events per second (they start with the measured events)
    #[arg(long, default_value_t = 1000.0)]
    stall_fill_rate: f64,
    /// Seconds the stalled sockets may read, all together, once the healthy ones are done
    #[arg(long, default_value_t = 10)]
    drain_secs: u64,
    /// Print one JSON object with every number instead of the text report
    #[arg(long)]
    json: bool,
}

/// What TLS connections trust: the system's roots and `--ca-file`.
fn trust(args: &Args) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let trust =
        pusher_local::tls::ClientTrust { ca_files: args.ca_file.iter().cloned().collect(), ..Default::default() };
    Ok(trust.config()?)
}

/// An HTTP client for the trigger API and the control API.
fn http_client(args: &Args) -> anyhow::Result<reqwest::Client> {
    Ok(match args.url.starts_with("https:") {
        true => {
            reqwest::Client::builder().use_preconfigured_tls(rustls::ClientConfig::clone(&*trust(args)?)).build()?
        }
        false => reqwest::Client::new(),
    })
}

const CHANNEL: &str = "load-test";
const EVENT: &str = "load-event";
/// The channel only stalled sockets join, and its event.
const FILL_CHANNEL: &str = "load-stall-fill";
const FILL_EVENT: &str = "load-fill";

fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// A `kB` line of /proc/PID/status (`VmRSS`, `VmHWM`), in bytes.
fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn rss_bytes(pid: u32) -> Option<u64> {
    status_bytes(pid, "VmRSS:")
}

/// Samples the server's RSS every 100 ms until stopped, keeping the peak.
struct RssSampler {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let (peak, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
        let (p, s) = (peak.clone(), stop.clone());
        tokio::spawn(async move {
            while !s.load(Ordering::SeqCst) {
                let Some(rss) = rss_bytes(pid) else { return };
                p.fetch_max(rss, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        RssSampler { peak, stop }
    }

    /// Stops sampling; the peak seen (one last sample included).
    fn finish(&self, pid: u32) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(rss) = rss_bytes(pid) {
            self.peak.fetch_max(rss, Ordering::SeqCst);
        }
        self.peak.load(Ordering::SeqCst)
    }
}

/// What one subscriber saw.
#[derive(Default)]
struct Seen {
    latencies_us: Vec<u64>,
    duplicates: usize,
    last_receive_us: u64,
}

/// One subscriber: connects, subscribes (then gives back its handshake permit), and collects
/// the events until it has all of them or the socket closes.
async fn subscriber(
    ws_url: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    events: usize,
    ready: Arc<AtomicUsize>,
    permit: OwnedSemaphorePermit,
) -> anyhow::Result<Seen> {
    let mut permit = Some(permit);
    let connector = tls.map(tokio_tungstenite::Connector::Rustls);
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(ws_url.as_str(), None, false, connector).await?;
    let mut subscribed = false;
    let mut got = vec![false; events];
    let mut seen = Seen::default();
    while let Some(message) = ws.next().await {
        let Message::Text(text) = message? else { continue };
        let frame: serde_json::Value = serde_json::from_str(&text)?;
        match frame["event"].as_str() {
            Some("pusher:connection_established") => {
                let subscribe = serde_json::json!({"event": "pusher:subscribe", "data": {"channel": CHANNEL}});
                ws.send(Message::Text(subscribe.to_string().into())).await?;
            }
            Some("pusher_internal:subscription_succeeded") if !subscribed => {
                subscribed = true;
                ready.fetch_add(1, Ordering::SeqCst);
                drop(permit.take());
            }
            Some("pusher:ping") => ws.send(Message::Text(r#"{"event":"pusher:pong","data":{}}"#.into())).await?,
            Some(EVENT) => {
                let at = now_micros();
                // `data` is a JSON string (an object is accepted too).
                let data: serde_json::Value = match &frame["data"] {
                    serde_json::Value::String(s) => serde_json::from_str(s)?,
                    other => other.clone(),
                };
                let (Some(seq), Some(ts)) = (data["seq"].as_u64(), data["ts"].as_u64()) else { continue };
                let Some(slot) = got.get_mut(seq as usize) else { continue };
                if std::mem::replace(slot, true) {
                    seen.duplicates += 1;
                    continue;
                }
                seen.latencies_us.push(at.saturating_sub(ts));
                seen.last_receive_us = at;
                if seen.latencies_us.len() == events {
                    break;
                }
            }
            _ => {}
        }
    }
    let _ = ws.close(None).await;
    Ok(seen)
}

/// How a stalled socket's connection ended, seen from the client once it read again.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ending {
    /// A close frame with this code (1005 when it carried none).
    Close(u16),
    /// The stream ended without a close frame: EOF, a reset, or a frame cut short.
    NoCloseFrame(String),
    /// Still open when the drain time ran out.
    StillOpen,
}

/// What one stalled socket saw.
#[derive(Debug)]
struct Stall {
    /// Events read once it resumed reading.
    events: usize,
    ending: Ending,
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket over a TCP socket whose receive buffer is `rcvbuf` bytes.
async fn small_buffer_socket(ws_url: &str, tls: Option<Arc<rustls::ClientConfig>>, rcvbuf: u32) -> anyhow::Result<Ws> {
    let url = url::Url::parse(ws_url)?;
    let host = url.host_str().ok_or_else(|| anyhow::anyhow!("{ws_url} has no host"))?;
    let port = url.port_or_known_default().unwrap_or(80);
    let addr =
        tokio::net::lookup_host((host, port)).await?.next().ok_or_else(|| anyhow::anyhow!("{host} did not resolve"))?;
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_recv_buffer_size(rcvbuf)?;
    let stream = socket.connect(addr).await?;
    let connector = tls.map(tokio_tungstenite::Connector::Rustls);
    let (ws, _) = tokio_tungstenite::client_async_tls_with_config(ws_url, stream, None, connector).await?;
    Ok(ws)
}

/// Subscribes to the load channel and the filler channel; the socket id.
async fn subscribe_only(ws: &mut Ws) -> anyhow::Result<String> {
    let mut socket_id = String::new();
    let mut subscribed = 0;
    while let Some(message) = ws.next().await {
        let Message::Text(text) = message? else { continue };
        let frame: serde_json::Value = serde_json::from_str(&text)?;
        match frame["event"].as_str() {
            Some("pusher:connection_established") => {
                let data: serde_json::Value = serde_json::from_str(frame["data"].as_str().unwrap_or("{}"))?;
                socket_id = data["socket_id"].as_str().unwrap_or_default().to_owned();
                for channel in [CHANNEL, FILL_CHANNEL] {
                    let subscribe = serde_json::json!({"event": "pusher:subscribe", "data": {"channel": channel}});
                    ws.send(Message::Text(subscribe.to_string().into())).await?;
                }
            }
            Some("pusher_internal:subscription_succeeded") => {
                subscribed += 1;
                if subscribed == 2 {
                    return Ok(socket_id);
                }
            }
            _ => {}
        }
    }
    anyhow::bail!("closed before subscribing")
}

/// A stalled subscriber: subscribes, stops reading until `drain` holds a deadline, then reads
/// until the stream ends or the deadline passes.
async fn stalled(
    ws_url: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    rcvbuf: u32,
    ready: Arc<AtomicUsize>,
    ids: Arc<Mutex<Vec<String>>>,
    mut drain: watch::Receiver<Option<Instant>>,
) -> anyhow::Result<Stall> {
    let mut ws = small_buffer_socket(&ws_url, tls, rcvbuf).await?;
    let socket_id = subscribe_only(&mut ws).await?;
    ids.lock().unwrap_or_else(|p| p.into_inner()).push(socket_id);
    ready.fetch_add(1, Ordering::SeqCst);
    let until = drain.wait_for(Option::is_some).await?.unwrap_or_else(Instant::now);
    let mut events = 0;
    let ending = loop {
        match tokio::time::timeout_at(until.into(), ws.next()).await {
            Err(_) => break Ending::StillOpen,
            Ok(None) => break Ending::NoCloseFrame("end of stream".into()),
            Ok(Some(Err(error))) => break Ending::NoCloseFrame(error.to_string()),
            Ok(Some(Ok(Message::Close(frame)))) => break Ending::Close(frame.map_or(1005, |f| u16::from(f.code))),
            Ok(Some(Ok(Message::Text(text)))) => {
                events += usize::from(text.contains(EVENT) || text.contains(FILL_EVENT));
            }
            Ok(Some(Ok(_))) => {}
        }
    };
    drop(ws);
    Ok(Stall { events, ending })
}

/// Publishes `--stall-fill` filler events on the channel only the stalled sockets join, paced
/// at `--stall-fill-rate`.
async fn fill(args: Arc<Args>, start: Instant) -> anyhow::Result<()> {
    let client = http_client(&args)?;
    let path = format!("/apps/{}/events", args.app_id);
    let data = "f".repeat(args.stall_fill_payload);
    for n in 0..args.stall_fill {
        tokio::time::sleep_until((start + Duration::from_secs_f64(n as f64 / args.stall_fill_rate.max(1.0))).into())
            .await;
        let body = serde_json::json!({"name": FILL_EVENT, "channel": FILL_CHANNEL, "data": data}).to_string();
        let query = sign_query(&args.key, &args.secret, "POST", &path, body.as_bytes(), now_micros() / 1_000_000, &[]);
        let url = format!("{}{path}?{query}", args.url.trim_end_matches('/'));
        let response = client.post(url).header("content-type", "application/json").body(body).send().await?;
        anyhow::ensure!(response.status().is_success(), "filler refused: {}", response.status());
    }
    Ok(())
}

async fn publish(
    args: Arc<Args>,
    next: Arc<AtomicUsize>,
    accepted: Arc<AtomicU64>,
    start: Instant,
) -> anyhow::Result<()> {
    let client = http_client(&args)?;
    let path = format!("/apps/{}/events", args.app_id);
    let pad_len = args.payload.saturating_sub(40);
    let pad = "x".repeat(pad_len);
    loop {
        let seq = next.fetch_add(1, Ordering::SeqCst);
        if seq >= args.events {
            return Ok(());
        }
        if let Some(rate) = args.rate {
            let due = start + Duration::from_secs_f64(seq as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let data = serde_json::json!({"seq": seq, "ts": now_micros(), "pad": pad}).to_string();
        let body = serde_json::json!({"name": EVENT, "channel": CHANNEL, "data": data}).to_string();
        let timestamp = now_micros() / 1_000_000;
        let query = sign_query(&args.key, &args.secret, "POST", &path, body.as_bytes(), timestamp, &[]);
        let response = client
            .post(format!("{}{path}?{query}", args.url.trim_end_matches('/')))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        if response.status().is_success() {
            accepted.fetch_add(1, Ordering::SeqCst);
        } else {
            anyhow::bail!("trigger refused: {} {}", response.status(), response.text().await.unwrap_or_default());
        }
    }
}

/// How many of `socket_ids` the server still lists in `GET /pusher-local/connections`
/// (`None`: the control API did not answer, e.g. another server).
async fn still_registered(args: &Args, socket_ids: &[String]) -> Option<usize> {
    let url = format!("{}/pusher-local/connections?app_id={}", args.url.trim_end_matches('/'), args.app_id);
    let response = http_client(args).ok()?.get(url).timeout(Duration::from_secs(10)).send().await.ok()?;
    let body: serde_json::Value = response.error_for_status().ok()?.json().await.ok()?;
    let listed: std::collections::HashSet<&str> =
        body["connections"].as_array()?.iter().filter_map(|c| c["socket_id"].as_str()).collect();
    Some(socket_ids.iter().filter(|id| listed.contains(id.as_str())).count())
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index] as f64 / 1000.0
}

async fn deadline<T>(what: &str, limit: Duration, future: impl std::future::Future<Output = T>) -> anyhow::Result<T> {
    tokio::time::timeout(limit, future).await.map_err(|_| anyhow::anyhow!("{what} did not finish within {limit:?}"))
}

/// The sockets once connected and subscribed.
struct Connected {
    subscribers: Vec<JoinHandle<anyhow::Result<Seen>>>,
    stalled: Vec<JoinHandle<anyhow::Result<Stall>>>,
    stalled_ids: Arc<Mutex<Vec<String>>>,
    drain: watch::Sender<Option<Instant>>,
    time: Duration,
}

/// Connects and subscribes the healthy subscribers and the stalled ones, 100 handshakes at a
/// time.
async fn connect(args: &Args, ws_url: &str, tls: Option<Arc<rustls::ClientConfig>>) -> anyhow::Result<Connected> {
    let ready = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(100));
    let start = Instant::now();
    let mut subscribers = Vec::with_capacity(args.subscribers);
    for _ in 0..args.subscribers {
        let permit = gate.clone().acquire_owned().await?;
        subscribers.push(tokio::spawn(subscriber(ws_url.to_owned(), tls.clone(), args.events, ready.clone(), permit)));
    }
    let (drain, drain_rx) = watch::channel(None);
    let stalled_ids: Arc<Mutex<Vec<String>>> = Arc::default();
    let stalled: Vec<_> = (0..args.stalled)
        .map(|_| {
            let (url, tls, ready, rx) = (ws_url.to_owned(), tls.clone(), ready.clone(), drain_rx.clone());
            tokio::spawn(stalled(url, tls, args.stall_rcvbuf, ready, stalled_ids.clone(), rx))
        })
        .collect();
    let all = args.subscribers + args.stalled;
    deadline("subscribing", Duration::from_secs(args.timeout), async {
        while ready.load(Ordering::SeqCst) < all {
            if stalled.iter().any(JoinHandle::is_finished) {
                anyhow::bail!("a stalled subscriber failed before subscribing");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    })
    .await??;
    Ok(Connected { subscribers, stalled, stalled_ids, drain, time: start.elapsed() })
}

/// What the publishers did.
struct Triggered {
    accepted: u64,
    time: Duration,
    first_send_us: u64,
}

async fn trigger(args: &Arc<Args>) -> anyhow::Result<Triggered> {
    let next = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let first_send_us = now_micros();
    let start = Instant::now();
    let mut publishers: Vec<_> = (0..args.concurrency.max(1))
        .map(|_| tokio::spawn(publish(args.clone(), next.clone(), accepted.clone(), start)))
        .collect();
    if args.stall_fill > 0 {
        publishers.push(tokio::spawn(fill(args.clone(), start)));
    }
    for publisher in publishers {
        deadline("triggering", Duration::from_secs(args.timeout), publisher).await???;
    }
    Ok(Triggered { accepted: accepted.load(Ordering::SeqCst), time: start.elapsed(), first_send_us })
}

/// What the healthy subscribers saw, how many failed, and whether collecting timed out.
async fn collect(subscribers: Vec<JoinHandle<anyhow::Result<Seen>>>, limit: Duration) -> (Vec<Seen>, usize, bool) {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let mut failures = 0;
    let gather = async {
        for task in subscribers {
            match task.await {
                Ok(Ok(s)) => seen.lock().unwrap_or_else(|p| p.into_inner()).push(s),
                _ => failures += 1,
            }
        }
    };
    let timed_out = tokio::time::timeout(limit, gather).await.is_err();
    let seen = std::mem::take(&mut *seen.lock().unwrap_or_else(|p| p.into_inner()));
    (seen, failures, timed_out)
}

/// The stalled sockets' outcome.
#[derive(Debug, Default, serde::Serialize)]
struct StallSummary {
    clients: usize,
    /// Still listed by the server when the healthy subscribers were done (None: unknown).
    server_still_listed: Option<usize>,
    close_4100: usize,
    close_other: usize,
    no_close_frame: usize,
    still_open: usize,
    failed: usize,
    events_min: usize,
    events_max: usize,
    endings: Vec<String>,
}

/// Asks the server which stalled sockets it still holds, lets them drain, and sums up.
async fn finish_stalled(args: &Args, connected: Connected) -> StallSummary {
    let mut summary = StallSummary { clients: args.stalled, ..StallSummary::default() };
    if args.stalled == 0 {
        return summary;
    }
    let ids = connected.stalled_ids.lock().unwrap_or_else(|p| p.into_inner()).clone();
    summary.server_still_listed = still_registered(args, &ids).await;
    let until = Instant::now() + Duration::from_secs(args.drain_secs);
    let _ = connected.drain.send(Some(until));
    let mut stalls = Vec::new();
    for task in connected.stalled {
        match tokio::time::timeout_at((until + Duration::from_secs(5)).into(), task).await {
            Ok(Ok(Ok(stall))) => stalls.push(stall),
            _ => summary.failed += 1,
        }
    }
    summary.events_min = stalls.iter().map(|s| s.events).min().unwrap_or(0);
    summary.events_max = stalls.iter().map(|s| s.events).max().unwrap_or(0);
    for stall in &stalls {
        match &stall.ending {
            Ending::Close(4100) => summary.close_4100 += 1,
            Ending::Close(_) => summary.close_other += 1,
            Ending::NoCloseFrame(_) => summary.no_close_frame += 1,
            Ending::StillOpen => summary.still_open += 1,
        }
        summary.endings.push(match &stall.ending {
            Ending::Close(code) => format!("close {code}"),
            Ending::NoCloseFrame(why) => format!("no close frame: {why}"),
            Ending::StillOpen => "still open".into(),
        });
    }
    summary.endings.sort();
    summary.endings.dedup();
    summary
}

/// Every number of one run.
#[derive(Debug, serde::Serialize)]
struct Report {
    target: String,
    subscribers: usize,
    connect_s: f64,
    events: usize,
    accepted: u64,
    trigger_req_per_s: f64,
    rate: Option<f64>,
    payload: usize,
    deliveries: usize,
    expected: usize,
    deliveries_per_s: f64,
    latency_ms_p50: f64,
    latency_ms_p99: f64,
    latency_ms_max: f64,
    lost: usize,
    duplicates: usize,
    failed_subscribers: usize,
    timed_out: bool,
    rss_before_mb: Option<f64>,
    rss_connected_mb: Option<f64>,
    bytes_per_connection: Option<f64>,
    rss_peak_mb: Option<f64>,
    vm_hwm_mb: Option<f64>,
    stalled: StallSummary,
}

impl Report {
    fn print_text(&self) {
        println!("target              {}", self.target);
        println!("subscribers         {} connected and subscribed in {:.2}s", self.subscribers, self.connect_s);
        println!(
            "events              {} accepted, {:.0} trigger req/s{}",
            self.accepted,
            self.trigger_req_per_s,
            self.rate.map(|r| format!(" (paced at {r}/s)")).unwrap_or_default()
        );
        println!("deliveries          {} of {} ({:.0}/s)", self.deliveries, self.expected, self.deliveries_per_s);
        println!(
            "latency ms          p50 {:.2} / p99 {:.2} / max {:.2}",
            self.latency_ms_p50, self.latency_ms_p99, self.latency_ms_max
        );
        let trouble = match self.failed_subscribers > 0 || self.timed_out {
            true => format!(" ({} subscribers failed, timed out: {})", self.failed_subscribers, self.timed_out),
            false => String::new(),
        };
        println!("lost / duplicates   {} / {}{trouble}", self.lost, self.duplicates);
        if let (Some(before), Some(connected), Some(per)) =
            (self.rss_before_mb, self.rss_connected_mb, self.bytes_per_connection)
        {
            println!("server memory       {before:.1} MB -> {connected:.1} MB, {per:.0} bytes per connection");
        }
        if let (Some(peak), Some(hwm)) = (self.rss_peak_mb, self.vm_hwm_mb) {
            println!("server RSS peak: {peak:.1} MB (sampled every 100 ms), VmHWM at the end: {hwm:.1} MB");
        }
        let s = &self.stalled;
        if s.clients > 0 {
            println!(
                "stalled: {} clients, closed by the server with 4100: {}, other: {}, ended without a close frame: {}, still open: {}, failed: {}",
                s.clients, s.close_4100, s.close_other, s.no_close_frame, s.still_open, s.failed
            );
            let listed = s.server_still_listed.map_or("unknown".into(), |n| n.to_string());
            println!(
                "stalled detail      still held by the server after the healthy ones were done: {listed}; events read on resuming: {}..{}; endings: {}",
                s.events_min,
                s.events_max,
                s.endings.join(" | ")
            );
        }
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// Latency, losses and memory from what the subscribers saw.
fn report(args: &Args, connected_s: f64, triggered: &Triggered, seen: &[Seen], memory: [Option<u64>; 4]) -> Report {
    let mut latencies: Vec<u64> = seen.iter().flat_map(|s| s.latencies_us.iter().copied()).collect();
    latencies.sort_unstable();
    let deliveries = latencies.len();
    let last = seen.iter().map(|s| s.last_receive_us).max().unwrap_or(triggered.first_send_us);
    let span = Duration::from_micros(last.saturating_sub(triggered.first_send_us)).as_secs_f64();
    let expected = args.subscribers * triggered.accepted as usize;
    let [before, connected, peak, hwm] = memory;
    Report {
        target: format!("{} (app {})", args.url, args.app_id),
        subscribers: args.subscribers,
        connect_s: connected_s,
        events: args.events,
        accepted: triggered.accepted,
        trigger_req_per_s: args.events as f64 / triggered.time.as_secs_f64(),
        rate: args.rate,
        payload: args.payload,
        deliveries,
        expected,
        deliveries_per_s: deliveries as f64 / span.max(1e-9),
        latency_ms_p50: percentile(&latencies, 0.50),
        latency_ms_p99: percentile(&latencies, 0.99),
        latency_ms_max: percentile(&latencies, 1.0),
        lost: expected.saturating_sub(deliveries),
        duplicates: seen.iter().map(|s| s.duplicates).sum(),
        failed_subscribers: 0,
        timed_out: false,
        rss_before_mb: before.map(mb),
        rss_connected_mb: connected.map(mb),
        bytes_per_connection: before
            .zip(connected)
            .map(|(b, c)| c.saturating_sub(b) as f64 / args.subscribers.max(1) as f64),
        rss_peak_mb: peak.map(mb),
        vm_hwm_mb: hwm.map(mb),
        stalled: StallSummary::default(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    let limit = Duration::from_secs(args.timeout);
    let host = args.url.trim_end_matches('/').replacen("http", "ws", 1);
    let ws_url = format!("{host}/app/{}?protocol=7&client=load-example&version=1", args.key);
    let tls = if args.url.starts_with("https:") { Some(trust(&args)?) } else { None };
    let rss_before = args.pid.and_then(rss_bytes);
    let sampler = args.pid.map(RssSampler::start);

    let mut connected = connect(&args, &ws_url, tls).await?;
    let rss_connected = args.pid.and_then(rss_bytes);
    let triggered = trigger(&args).await?;
    let subscribers = std::mem::take(&mut connected.subscribers);
    let (seen, failures, timed_out) = collect(subscribers, limit).await;
    let connect_s = connected.time.as_secs_f64();
    let stalled = finish_stalled(&args, connected).await;

    let peak = args.pid.zip(sampler.as_ref()).map(|(pid, s)| s.finish(pid));
    let hwm = args.pid.and_then(|pid| status_bytes(pid, "VmHWM:"));
    let mut report = report(&args, connect_s, &triggered, &seen, [rss_before, rss_connected, peak, hwm]);
    (report.failed_subscribers, report.timed_out, report.stalled) = (failures, timed_out, stalled);
    match args.json {
        true => println!("{}", serde_json::to_string(&report)?),
        false => report.print_text(),
    }
    if report.lost > 0 || report.duplicates > 0 {
        std::process::exit(1);
    }
    Ok(())
}
