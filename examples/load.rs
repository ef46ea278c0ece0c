//! End-to-end load against a running Pusher-compatible server: subscribers on one channel over
//! WebSockets, events triggered through the signed HTTP API, and what arrived when.
//!
//! ```text
//! cargo run --release --example load -- --url http://127.0.0.1:6001 --subscribers 1000 --events 1000
//! cargo run --release --example load -- --subscribers 1000 --events 1000 --rate 100 --pid "$(pgrep -n pusher-local)"
//! cargo run --release --example load -- --url https://127.0.0.1:6001 --ca-file ~/.local/share/pusher-local/ca.pem
//! ```
//!
//! An `https://` URL loads the server over TLS (`wss://` subscribers, `https://` triggers),
//! trusting the system's roots and `--ca-file`.
//!
//! Prints deliveries per second, end-to-end latency (p50/p99/max, from just before the HTTP
//! request to the frame's arrival, one clock), losses and duplicates, trigger requests per second
//! and, with `--pid` (a server on this machine), the server's memory per connection (RSS growth
//! while the subscribers connected, divided by their number). Works against pusher-local, real
//! Pusher's protocol peers, or anything that speaks the protocol. Bounded: a fixed number of
//! events, and every phase has a deadline (`--timeout`). Opening thousands of sockets needs
//! `ulimit -n` raised in the shell that runs it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use pusher_local::auth::request::sign_query;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
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
    /// The server's process id, to report its memory per connection (Linux /proc)
    #[arg(long)]
    pid: Option<u32>,
    /// Seconds any phase may take
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// A CA (PEM) to trust for an https:// URL, e.g. pusher-local's ca.pem
    #[arg(long)]
    ca_file: Option<std::path::PathBuf>,
}

/// What TLS connections trust: the system's roots and `--ca-file`.
fn trust(args: &Args) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let trust =
        pusher_local::tls::ClientTrust { ca_files: args.ca_file.iter().cloned().collect(), ..Default::default() };
    Ok(trust.config()?)
}

const CHANNEL: &str = "load-test";
const EVENT: &str = "load-event";

fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
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

async fn publish(
    args: Arc<Args>,
    next: Arc<AtomicUsize>,
    accepted: Arc<AtomicU64>,
    start: Instant,
) -> anyhow::Result<()> {
    let client = match args.url.starts_with("https:") {
        true => {
            reqwest::Client::builder().use_preconfigured_tls(rustls::ClientConfig::clone(&*trust(&args)?)).build()?
        }
        false => reqwest::Client::new(),
    };
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    let limit = Duration::from_secs(args.timeout);
    let host = args.url.trim_end_matches('/').replacen("http", "ws", 1);
    let ws_url = format!("{host}/app/{}?protocol=7&client=load-example&version=1", args.key);
    let tls = if args.url.starts_with("https:") { Some(trust(&args)?) } else { None };
    let rss_before = args.pid.and_then(rss_bytes);

    // Connect and subscribe, 100 handshakes at a time.
    let ready = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(100));
    let connect_start = Instant::now();
    let mut subscribers = Vec::with_capacity(args.subscribers);
    for _ in 0..args.subscribers {
        let permit = gate.clone().acquire_owned().await?;
        subscribers.push(tokio::spawn(subscriber(ws_url.clone(), tls.clone(), args.events, ready.clone(), permit)));
    }
    deadline("subscribing", limit, async {
        while ready.load(Ordering::SeqCst) < args.subscribers {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await?;
    let connect_time = connect_start.elapsed();
    let rss_connected = args.pid.and_then(rss_bytes);

    // Trigger.
    let next = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let first_send_us = now_micros();
    let start = Instant::now();
    let publishers: Vec<_> = (0..args.concurrency.max(1))
        .map(|_| tokio::spawn(publish(args.clone(), next.clone(), accepted.clone(), start)))
        .collect();
    for publisher in publishers {
        deadline("triggering", limit, publisher).await???;
    }
    let trigger_time = start.elapsed();

    // Collect.
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let mut failures = 0;
    let collect = async {
        for task in subscribers {
            match task.await {
                Ok(Ok(s)) => seen.lock().unwrap_or_else(|p| p.into_inner()).push(s),
                _ => failures += 1,
            }
        }
    };
    let timed_out = tokio::time::timeout(limit, collect).await.is_err();
    let seen = std::mem::take(&mut *seen.lock().unwrap_or_else(|p| p.into_inner()));

    let mut latencies: Vec<u64> = seen.iter().flat_map(|s| s.latencies_us.iter().copied()).collect();
    latencies.sort_unstable();
    let unique = latencies.len();
    let duplicates: usize = seen.iter().map(|s| s.duplicates).sum();
    let last = seen.iter().map(|s| s.last_receive_us).max().unwrap_or(first_send_us);
    let span = Duration::from_micros(last.saturating_sub(first_send_us)).as_secs_f64();
    let expected = args.subscribers * accepted.load(Ordering::SeqCst) as usize;

    println!("target              {} (app {})", args.url, args.app_id);
    println!("subscribers         {} connected and subscribed in {:.2}s", args.subscribers, connect_time.as_secs_f64());
    println!(
        "events              {} accepted, {:.0} trigger req/s ({} publishers{})",
        accepted.load(Ordering::SeqCst),
        args.events as f64 / trigger_time.as_secs_f64(),
        args.concurrency,
        args.rate.map(|r| format!(", paced at {r}/s")).unwrap_or_default()
    );
    println!("deliveries          {unique} of {expected} ({:.0}/s)", unique as f64 / span.max(1e-9));
    println!(
        "latency ms          p50 {:.2} / p99 {:.2} / max {:.2}",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0)
    );
    println!(
        "lost / duplicates   {} / {duplicates}{}",
        expected.saturating_sub(unique),
        if failures > 0 || timed_out {
            format!(" ({failures} subscribers failed, timed out: {timed_out})")
        } else {
            String::new()
        }
    );
    if let (Some(before), Some(connected)) = (rss_before, rss_connected) {
        println!(
            "server memory       {:.1} MB -> {:.1} MB, {:.0} bytes per connection",
            before as f64 / 1e6,
            connected as f64 / 1e6,
            connected.saturating_sub(before) as f64 / args.subscribers.max(1) as f64
        );
    }
    if unique < expected || duplicates > 0 {
        std::process::exit(1);
    }
    Ok(())
}
