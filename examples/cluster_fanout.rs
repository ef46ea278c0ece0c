//! Cross-node fan-out against single-node fan-out, in one run.
//!
//! ```text
//! cargo run --release --example cluster_fanout [SUBSCRIBERS] [EVENTS]
//! ```
//!
//! Starts its own `redis-server` on a random 127.0.0.1 port (needs the binary), then measures two
//! set-ups with the same load: one node on the embedded broker (publisher and subscribers on
//! it), and two nodes on Redis (events published through node A's HTTP API, every subscriber on
//! node B, so each event crosses Redis). Each event carries its send time; subscribers record
//! the delay to receipt. Prints deliveries per second and p50/p99 latency for both. Bounded:
//! a fixed number of events, every wait has a deadline, and the servers and Redis are stopped.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use pusher_local::apps::App;
use pusher_local::auth::request::sign_query;
use pusher_local::config::{Config, Listen};
use pusher_local::printer::Printer;
use pusher_local::{Listeners, Shutdown};
use tokio_tungstenite::tungstenite::Message;

const KEY: &str = "bench-key";
const SECRET: &str = "bench-secret";
/// Concurrent HTTP publishers.
const PUBLISHERS: usize = 4;
/// Longest any phase may take.
const DEADLINE: Duration = Duration::from_secs(60);
/// Events of the paced runs, and their spacing.
const PACED: usize = 300;
const PACE: Duration = Duration::from_millis(2);

fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn config(redis: Option<(&str, &str)>) -> Config {
    let mut app = App::new("1", KEY, SECRET);
    app.subscription_count = false;
    let mut config =
        Config { listen: Listen::Combined("127.0.0.1:0".parse().unwrap()), apps: vec![app], ..Config::default() };
    config.outbox_capacity = 1 << 16;
    if let Some((url, prefix)) = redis {
        config.redis_url = Some(url.to_owned());
        config.redis_prefix = prefix.to_owned();
    }
    config
}

struct Node {
    addr: SocketAddr,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<pusher_local::Result<()>>,
}

async fn node(config: Config) -> Node {
    let listeners = Listeners::bind(&config.listen).await.expect("bind 127.0.0.1:0");
    let (_, addr) = listeners.local_addrs();
    let shutdown = Shutdown::new();
    let task = tokio::spawn(pusher_local::run(listeners, config, Printer::silent(), shutdown.clone()));
    Node { addr, shutdown, task }
}

impl Node {
    async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

struct Redis(Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis() -> (Redis, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            eprintln!("cluster_fanout needs redis-server on PATH (apt-get install redis-server): {e}");
            std::process::exit(2)
        });
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (Redis(child), format!("redis://127.0.0.1:{port}"))
}

/// Subscribes `n` sockets to `channel` on `addr`; each returns the latencies it saw.
async fn subscribers(
    addr: SocketAddr,
    channel: &str,
    n: usize,
    events: usize,
) -> Vec<tokio::task::JoinHandle<Vec<Duration>>> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let url = format!("ws://{addr}/app/{KEY}?protocol=7");
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.expect("connect");
        let _established = ws.next().await;
        let subscribe = serde_json::json!({"event": "pusher:subscribe", "data": {"channel": channel}});
        futures_util::SinkExt::send(&mut ws, Message::text(subscribe.to_string())).await.unwrap();
        loop {
            let Some(Ok(Message::Text(text))) = ws.next().await else { panic!("subscribe failed") };
            if text.contains("subscription_succeeded") {
                break;
            }
        }
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::with_capacity(events);
            let until = tokio::time::Instant::now() + DEADLINE;
            while seen.len() < events {
                let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout_at(until, ws.next()).await else { break };
                let now = start().elapsed();
                let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
                if frame["event"] == "tick" {
                    let sent: u64 = frame["data"].as_str().and_then(|d| d.parse().ok()).unwrap_or(0);
                    seen.push(now.saturating_sub(Duration::from_nanos(sent)));
                }
            }
            seen
        }));
    }
    tasks
}

/// Publishes `events` events on `channel` through `addr`'s HTTP API: `PUBLISHERS` at a time as
/// fast as they are answered, or (`pace`) one at a time, `pace` apart.
async fn publish(addr: SocketAddr, channel: &str, events: usize, pace: Option<Duration>) {
    let publishers = if pace.is_some() { 1 } else { PUBLISHERS };
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for p in 0..publishers {
        let (http, channel) = (http.clone(), channel.to_owned());
        tasks.push(tokio::spawn(async move {
            for _ in (p..events).step_by(publishers) {
                if let Some(pace) = pace {
                    tokio::time::sleep(pace).await;
                }
                let sent = start().elapsed().as_nanos().to_string();
                let body = serde_json::json!({"name": "tick", "channels": [channel], "data": sent}).to_string();
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
                let path = "/apps/1/events";
                let query = sign_query(KEY, SECRET, "POST", path, body.as_bytes(), now, &[]);
                let response = http
                    .post(format!("http://{addr}{path}?{query}"))
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .expect("publish");
                assert!(response.status().is_success(), "publish: {}", response.status());
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

struct Outcome {
    deliveries: usize,
    expected: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

async fn measure(
    publish_on: SocketAddr,
    subscribe_on: SocketAddr,
    n: usize,
    events: usize,
    pace: Option<Duration>,
) -> Outcome {
    let channel = format!("bench-{}", rand::random::<u32>());
    let tasks = subscribers(subscribe_on, &channel, n, events).await;
    let began = Instant::now();
    publish(publish_on, &channel, events, pace).await;
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let elapsed = began.elapsed();
    all.sort();
    let at = |q: f64| all.get(((all.len() as f64 - 1.0) * q) as usize).copied().unwrap_or_default();
    Outcome { deliveries: all.len(), expected: n * events, elapsed, p50: at(0.5), p99: at(0.99) }
}

fn report(label: &str, o: &Outcome) {
    println!(
        "{label:<34} {:>9} of {:>9} deliveries in {:>6.2?}  {:>10.0} deliveries/s  p50 {:>8.2?}  p99 {:>8.2?}",
        o.deliveries,
        o.expected,
        o.elapsed,
        o.deliveries as f64 / o.elapsed.as_secs_f64(),
        o.p50,
        o.p99
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let events: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    start();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        println!("{n} subscribers on one channel, {events} events published over the HTTP API");
        let single = node(config(None)).await;
        // A short warm-up per set-up (connections, allocator, scripts), not counted.
        measure(single.addr, single.addr, n.min(10), 100, None).await;
        let burst = measure(single.addr, single.addr, n, events, None).await;
        let paced = measure(single.addr, single.addr, n, PACED, Some(PACE)).await;
        single.stop().await;

        let (redis, url) = redis();
        let prefix = format!("bench-{}", rand::random::<u32>());
        let a = node(config(Some((&url, &prefix)))).await;
        let b = node(config(Some((&url, &prefix)))).await;
        measure(a.addr, b.addr, n.min(10), 100, None).await;
        let cross_burst = measure(a.addr, b.addr, n, events, None).await;
        let cross_paced = measure(a.addr, b.addr, n, PACED, Some(PACE)).await;
        let same_burst = measure(b.addr, b.addr, n, events, None).await;
        println!("burst ({PUBLISHERS} publishers, as fast as answered):");
        report("  single node, embedded broker", &burst);
        report("  Redis broker, A -> Redis -> B", &cross_burst);
        report("  Redis broker, publish on B itself", &same_burst);
        println!("paced ({PACED} events, one every {PACE:?}: latency without queueing):");
        report("  single node, embedded broker", &paced);
        report("  Redis broker, A -> Redis -> B", &cross_paced);
        a.stop().await;
        b.stop().await;
        drop(redis);
    });
}
