//! Soak: hold a target number of live WebSocket connections with churn for a while, publish
//! events at a steady rate meanwhile, and watch the server's memory and file descriptors.
//!
//! ```text
//! cargo run --release --example soak -- --url http://127.0.0.1:6001 --pid "$(pgrep -n pusher-local)"
//! cargo run --release --example soak -- --connections 1000 --minutes 1 --pid PID --csv soak.csv
//! ```
//! (`bench/soak.sh` starts a fresh server and runs this against it.)
//!
//! `--connections C` tasks each loop: connect → subscribe to one of `--channels K` channels
//! (every `--presence-every`-th one is a `presence-` channel, authorized with a signature made
//! here: key + ":" + HMAC-SHA256(secret, "socket_id:channel:channel_data")) → stay a random
//! `--stay-min`..`--stay-max` seconds reading (and answering pings) → unsubscribe and close. A
//! publisher triggers `--rate` events per second, in all, on random channels over the signed HTTP
//! API. After `--minutes` of churn every task keeps (or makes) one connection and holds it for
//! `--hold-secs` without churn; then everything closes, and after `--settle-secs` a last sample.
//!
//! Every `--sample-secs` (and at each phase change) one CSV row goes to `--csv` and stdout:
//! `t_s,live_clients,server_connections,rss_mb,fds,events_sent,errors,phase`: live connections
//! counted here, `pusher_local_connections` from `GET /pusher-local/metrics` (empty if the
//! server has no such endpoint), the server's VmRSS and open fds (`/proc/PID`, with `--pid`),
//! events accepted so far, and errors so far (failed connects and subscriptions, sockets the
//! server closed, refused triggers).
//!
//! Verdict: the RSS and fds of the sample at the end of the churn against the first churn sample
//! after `--warmup-secs` with at least 90% of the target live (within `--tolerance`, 5%), and the
//! fds after closing everything against the sample taken before connecting (within 20). RSS after
//! closing is reported, not judged (an allocator may keep freed pages). Exits 1 when the
//! verdict fails, 3 when the run overstays its own deadline (churn + hold + settle + 90 s).
//!
//! Ports: a client socket is closed with `SO_LINGER` 0 (after the WebSocket closing handshake),
//! so neither side keeps it in TIME_WAIT: churning ~1,000 connections a second on loopback
//! would otherwise run out of the ~28k ephemeral ports within a minute. Needs `ulimit -n` above
//! `--connections` in this shell and the server's.

#![warn(clippy::too_many_lines)]

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use pusher_local::auth::channel::{auth_value, subscription_string};
use pusher_local::auth::request::sign_query;
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::Message;

/// Hold connections with churn and watch the server's memory and file descriptors.
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
    /// Live connections to hold
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Minutes of churn (at most 120)
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Channels to spread the connections over
    #[arg(long, default_value_t = 200)]
    channels: usize,
    /// Every Nth channel is a presence channel (0: none); at most 100 members each by default
    #[arg(long, default_value_t = 10)]
    presence_every: usize,
    /// Events per second, in all
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Shortest stay of a connection, in seconds
    #[arg(long, default_value_t = 1)]
    stay_min: u64,
    /// Longest stay of a connection, in seconds
    #[arg(long, default_value_t = 20)]
    stay_max: u64,
    /// Seconds to hold the connections without churn after the churn
    #[arg(long, default_value_t = 30)]
    hold_secs: u64,
    /// Seconds to wait after closing everything before the last sample
    #[arg(long, default_value_t = 10)]
    settle_secs: u64,
    /// Seconds between samples
    #[arg(long, default_value_t = 10)]
    sample_secs: u64,
    /// Seconds of churn before the sample the end is compared with (default: a third of the
    /// churn, at most 60)
    #[arg(long)]
    warmup_secs: Option<u64>,
    /// Largest relative change of RSS and fds that passes
    #[arg(long, default_value_t = 0.05)]
    tolerance: f64,
    /// Seconds a connect plus subscribe may take
    #[arg(long, default_value_t = 5)]
    connect_timeout: u64,
    /// Handshakes in flight at once
    #[arg(long, default_value_t = 200)]
    handshakes: usize,
    /// The server's process id, for its VmRSS and open fds (Linux /proc)
    #[arg(long)]
    pid: Option<u32>,
    /// Where the CSV goes
    #[arg(long, default_value = "soak.csv")]
    csv: std::path::PathBuf,
}

/// Where the run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Churn,
    Hold,
    Close,
}

/// Counters every task adds to.
#[derive(Default)]
struct Counters {
    live: AtomicUsize,
    events_sent: AtomicU64,
    connect_errors: AtomicU64,
    subscribe_errors: AtomicU64,
    dropped: AtomicU64,
    publish_errors: AtomicU64,
    sessions: AtomicU64,
}

impl Counters {
    fn errors(&self) -> u64 {
        [&self.connect_errors, &self.subscribe_errors, &self.dropped, &self.publish_errors]
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }
}

/// What every worker shares.
struct Shared {
    args: Args,
    addr: SocketAddr,
    ws_url: String,
    counters: Counters,
    gate: Semaphore,
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The channel a session joins: `presence-soak-N` or `soak-N`.
fn channel_name(args: &Args) -> String {
    let n = rand::random_range(0..args.channels.max(1));
    match args.presence_every > 0 && n % args.presence_every == 0 {
        true => format!("presence-soak-{n}"),
        false => format!("soak-{n}"),
    }
}

/// Connects with `SO_LINGER` 0 and waits for `pusher:connection_established`; the socket id.
async fn connect(shared: &Shared) -> anyhow::Result<(Ws, String)> {
    let socket = match shared.addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_zero_linger()?;
    let stream = socket.connect(shared.addr).await?;
    let (mut ws, _) = tokio_tungstenite::client_async(shared.ws_url.as_str(), stream).await?;
    while let Some(message) = ws.next().await {
        let Message::Text(text) = message? else { continue };
        let frame: serde_json::Value = serde_json::from_str(&text)?;
        if frame["event"] == "pusher:connection_established" {
            let data: serde_json::Value = serde_json::from_str(frame["data"].as_str().unwrap_or("{}"))?;
            return Ok((ws, data["socket_id"].as_str().unwrap_or_default().to_owned()));
        }
    }
    anyhow::bail!("closed before pusher:connection_established")
}

/// Subscribes to one channel (signing presence subscriptions) and waits for the success.
async fn subscribe(shared: &Shared, ws: &mut Ws, socket_id: &str, worker: usize) -> anyhow::Result<String> {
    let args = &shared.args;
    let channel = channel_name(args);
    let mut data = serde_json::json!({ "channel": channel });
    if channel.starts_with("presence-") {
        let channel_data = serde_json::json!({"user_id": format!("u{worker}"), "user_info": {}}).to_string();
        let signed = subscription_string(socket_id, &channel, Some(&channel_data));
        data["auth"] = auth_value(&args.key, &args.secret, &signed).into();
        data["channel_data"] = channel_data.into();
    }
    let subscribe = serde_json::json!({"event": "pusher:subscribe", "data": data});
    ws.send(Message::Text(subscribe.to_string().into())).await?;
    while let Some(message) = ws.next().await {
        let Message::Text(text) = message? else { continue };
        let frame: serde_json::Value = serde_json::from_str(&text)?;
        match frame["event"].as_str() {
            Some("pusher_internal:subscription_succeeded") => return Ok(channel),
            Some("pusher:subscription_error" | "pusher:error") => anyhow::bail!("subscription refused: {text}"),
            _ => {}
        }
    }
    anyhow::bail!("closed before subscription_succeeded")
}

/// Stays connected, reading and answering pings, until its time is up during the churn or the
/// run closes. `Ok(false)`: the server ended the connection first.
async fn stay(ws: &mut Ws, shared: &Shared, phase: &mut watch::Receiver<Phase>) -> anyhow::Result<bool> {
    let args = &shared.args;
    let stay = Duration::from_secs(rand::random_range(args.stay_min..=args.stay_max.max(args.stay_min)));
    let leave_at = tokio::time::Instant::now() + stay;
    loop {
        let churning = *phase.borrow() == Phase::Churn;
        if *phase.borrow() == Phase::Close {
            return Ok(true);
        }
        tokio::select! {
            message = ws.next() => match message {
                Some(Ok(Message::Text(text))) if text.contains("\"pusher:ping\"") => {
                    ws.send(Message::Text(r#"{"event":"pusher:pong","data":{}}"#.into())).await?;
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Ok(false),
                Some(Ok(_)) => {}
            },
            () = tokio::time::sleep_until(leave_at), if churning => return Ok(true),
            changed = phase.changed() => if changed.is_err() { return Ok(true) },
        }
    }
}

/// Unsubscribes and closes: our close frame, the server's, then the socket (an abortive close,
/// see the module doc). Bounded by two seconds.
async fn leave(mut ws: Ws, channel: &str) {
    let unsubscribe = serde_json::json!({"event": "pusher:unsubscribe", "data": {"channel": channel}});
    let goodbye = async {
        ws.send(Message::Text(unsubscribe.to_string().into())).await?;
        ws.close(None).await?;
        while ws.next().await.is_some() {}
        anyhow::Ok(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), goodbye).await;
}

/// One connection from connect to close.
async fn session(shared: &Shared, worker: usize, phase: &mut watch::Receiver<Phase>) {
    let counters = &shared.counters;
    let limit = Duration::from_secs(shared.args.connect_timeout);
    let opened = {
        let Ok(_permit) = shared.gate.acquire().await else { return };
        match tokio::time::timeout(limit, connect(shared)).await {
            Ok(Ok((mut ws, socket_id))) => {
                match tokio::time::timeout(limit, subscribe(shared, &mut ws, &socket_id, worker)).await {
                    Ok(Ok(channel)) => Some((ws, channel)),
                    _ => {
                        counters.subscribe_errors.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                }
            }
            _ => {
                counters.connect_errors.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    };
    let Some((mut ws, channel)) = opened else {
        tokio::time::sleep(Duration::from_millis(200)).await;
        return;
    };
    counters.live.fetch_add(1, Ordering::Relaxed);
    counters.sessions.fetch_add(1, Ordering::Relaxed);
    let ours = stay(&mut ws, shared, phase).await.unwrap_or(false);
    counters.live.fetch_sub(1, Ordering::Relaxed);
    if !ours {
        counters.dropped.fetch_add(1, Ordering::Relaxed);
    }
    leave(ws, &channel).await;
}

/// Connects again and again until the run closes.
async fn worker(shared: Arc<Shared>, id: usize, mut phase: watch::Receiver<Phase>) {
    while *phase.borrow() != Phase::Close {
        session(&shared, id, &mut phase).await;
    }
}

/// Triggers `--rate` events a second on random channels until the run closes.
async fn publisher(shared: Arc<Shared>, phase: watch::Receiver<Phase>) {
    let client = reqwest::Client::new();
    let path = format!("/apps/{}/events", shared.args.app_id);
    let in_flight = Arc::new(Semaphore::new(32));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / shared.args.rate.max(0.1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while *phase.borrow() != Phase::Close {
        tick.tick().await;
        let Ok(permit) = in_flight.clone().acquire_owned().await else { return };
        let body =
            serde_json::json!({"name": "soak-event", "channel": channel_name(&shared.args), "data": "{\"n\":1}"})
                .to_string();
        let args = &shared.args;
        let query = sign_query(&args.key, &args.secret, "POST", &path, body.as_bytes(), now_secs(), &[]);
        let request = client
            .post(format!("{}{path}?{query}", args.url.trim_end_matches('/')))
            .header("content-type", "application/json")
            .body(body)
            .timeout(Duration::from_secs(5));
        let shared = shared.clone();
        tokio::spawn(async move {
            let ok = matches!(request.send().await, Ok(r) if r.status().is_success());
            let counter = if ok { &shared.counters.events_sent } else { &shared.counters.publish_errors };
            counter.fetch_add(1, Ordering::Relaxed);
            drop(permit);
        });
    }
}

/// One CSV row.
#[derive(Debug, Clone)]
struct Sample {
    t_s: f64,
    live: usize,
    server_connections: Option<u64>,
    rss_mb: Option<f64>,
    fds: Option<usize>,
    events_sent: u64,
    errors: u64,
    phase: &'static str,
}

impl Sample {
    fn csv(&self) -> String {
        let opt = |v: Option<String>| v.unwrap_or_default();
        format!(
            "{:.1},{},{},{},{},{},{},{}",
            self.t_s,
            self.live,
            opt(self.server_connections.map(|n| n.to_string())),
            opt(self.rss_mb.map(|r| format!("{r:.1}"))),
            opt(self.fds.map(|n| n.to_string())),
            self.events_sent,
            self.errors,
            self.phase
        )
    }
}

const CSV_HEADER: &str = "t_s,live_clients,server_connections,rss_mb,fds,events_sent,errors,phase";

/// The sum of `pusher_local_connections` in the server's metrics.
async fn server_connections(client: &reqwest::Client, url: &str) -> Option<u64> {
    let text = client.get(format!("{}/pusher-local/metrics", url.trim_end_matches('/'))).send().await.ok()?;
    let text = text.error_for_status().ok()?.text().await.ok()?;
    let lines = text.lines().filter(|l| l.starts_with("pusher_local_connections{"));
    lines.map(|l| l.rsplit(' ').next().and_then(|n| n.parse::<u64>().ok())).sum()
}

fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
}

fn fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// Takes samples and writes them to the CSV and stdout.
struct Sampler {
    shared: Arc<Shared>,
    client: reqwest::Client,
    start: Instant,
    file: std::fs::File,
    samples: Vec<Sample>,
}

impl Sampler {
    async fn take(&mut self, phase: &'static str) -> anyhow::Result<()> {
        let counters = &self.shared.counters;
        let pid = self.shared.args.pid;
        let metrics =
            tokio::time::timeout(Duration::from_secs(5), server_connections(&self.client, &self.shared.args.url));
        let sample = Sample {
            t_s: self.start.elapsed().as_secs_f64(),
            live: counters.live.load(Ordering::Relaxed),
            server_connections: metrics.await.ok().flatten(),
            rss_mb: pid.and_then(rss_mb),
            fds: pid.and_then(fds),
            events_sent: counters.events_sent.load(Ordering::Relaxed),
            errors: counters.errors(),
            phase,
        };
        writeln!(self.file, "{}", sample.csv())?;
        self.file.flush()?;
        println!("{}", sample.csv());
        self.samples.push(sample);
        Ok(())
    }

    /// Samples every `--sample-secs` until `until`, labelled `phase`.
    async fn every(&mut self, until: Instant, phase: &'static str) -> anyhow::Result<()> {
        let period = Duration::from_secs(self.shared.args.sample_secs.max(1));
        let mut next = Instant::now() + period;
        while next < until {
            tokio::time::sleep_until(next.into()).await;
            self.take(phase).await?;
            next += period;
        }
        tokio::time::sleep_until(until.into()).await;
        Ok(())
    }
}

/// Whether `now` is within `tolerance` of `then`, and the relative change.
fn within(then: f64, now: f64, tolerance: f64) -> (bool, f64) {
    let change = if then > 0.0 { (now - then) / then } else { 0.0 };
    (change.abs() <= tolerance, change)
}

/// Prints the verdict; whether it passed.
fn verdict(args: &Args, samples: &[Sample]) -> bool {
    let target = args.connections as f64 * 0.9;
    let warmup = warmup_secs(args);
    let warm = samples.iter().find(|s| s.phase == "churn" && s.t_s >= warmup as f64 && s.live as f64 >= target);
    let end = samples.iter().rfind(|s| s.phase == "churn-end");
    let (idle, closed) = (samples.iter().find(|s| s.phase == "idle"), samples.iter().rfind(|s| s.phase == "closed"));
    let (Some(warm), Some(end)) = (warm, end) else {
        println!("verdict: INCONCLUSIVE (no churn sample after {warmup} s with ≥ 90% of the target live)");
        return false;
    };
    let mut pass = true;
    if let (Some(a), Some(b)) = (warm.rss_mb, end.rss_mb) {
        let (ok, change) = within(a, b, args.tolerance);
        pass &= ok;
        println!(
            "RSS   {a:.1} MB at {:.0} s ({} live) -> {b:.1} MB at the end of the churn ({} live): {:+.1}% {}",
            warm.t_s,
            warm.live,
            end.live,
            change * 100.0,
            if ok { "ok" } else { "FAIL" }
        );
    }
    if let (Some(a), Some(b)) = (warm.fds, end.fds) {
        let (ok, change) = within(a as f64, b as f64, args.tolerance);
        pass &= ok;
        println!(
            "fds   {a} at {:.0} s -> {b} at the end of the churn: {:+.1}% {}",
            warm.t_s,
            change * 100.0,
            if ok { "ok" } else { "FAIL" }
        );
    }
    if let (Some(idle), Some(closed)) = (idle, closed) {
        if let (Some(a), Some(b)) = (idle.fds, closed.fds) {
            let ok = b <= a + 20;
            pass &= ok;
            println!("fds   {a} before connecting -> {b} after closing everything {}", if ok { "ok" } else { "FAIL" });
        }
        if let (Some(a), Some(b), Some(w)) = (idle.rss_mb, closed.rss_mb, warm.rss_mb) {
            println!(
                "RSS   {a:.1} MB before connecting, {w:.1} MB warm, {b:.1} MB after closing everything (not judged)"
            );
        }
    }
    println!("verdict: {}", if pass { "PASS" } else { "FAIL" });
    pass
}

fn warmup_secs(args: &Args) -> u64 {
    args.warmup_secs.unwrap_or(((args.minutes * 60.0 / 3.0) as u64).min(60))
}

/// The server's address and what every worker shares.
async fn shared(args: Args) -> anyhow::Result<Arc<Shared>> {
    let url = url::Url::parse(&args.url)?;
    anyhow::ensure!(url.scheme() == "http", "soak speaks plain http:// and ws:// only");
    let host = url.host_str().ok_or_else(|| anyhow::anyhow!("{} has no host", args.url))?;
    let port = url.port_or_known_default().unwrap_or(80);
    let addr =
        tokio::net::lookup_host((host, port)).await?.next().ok_or_else(|| anyhow::anyhow!("{host} did not resolve"))?;
    let ws_url = format!("ws://{host}:{port}/app/{}?protocol=7&client=soak-example&version=1", args.key);
    let gate = Semaphore::new(args.handshakes.max(1));
    Ok(Arc::new(Shared { args, addr, ws_url, counters: Counters::default(), gate }))
}

/// Ends the process if the run overstays `budget` (a stuck phase must not keep it alive).
fn watchdog(budget: Duration) {
    tokio::spawn(async move {
        tokio::time::sleep(budget).await;
        eprintln!("soak: still running after {budget:?}, giving up");
        std::process::exit(3);
    });
}

fn print_totals(counters: &Counters) {
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    println!(
        "totals: {} sessions, {} events sent; errors: {} connect, {} subscribe, {} closed by the server, {} triggers",
        get(&counters.sessions),
        get(&counters.events_sent),
        get(&counters.connect_errors),
        get(&counters.subscribe_errors),
        get(&counters.dropped),
        get(&counters.publish_errors)
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.minutes > 0.0 && args.minutes <= 120.0, "--minutes between 0 and 120");
    let churn = Duration::from_secs_f64(args.minutes * 60.0);
    let (hold, settle) = (Duration::from_secs(args.hold_secs), Duration::from_secs(args.settle_secs));
    watchdog(churn + hold + settle + Duration::from_secs(90));
    let shared = shared(args).await?;
    let mut file = std::fs::File::create(&shared.args.csv)?;
    writeln!(file, "{CSV_HEADER}")?;
    println!("{CSV_HEADER}");
    let start = Instant::now();
    let mut sampler =
        Sampler { shared: shared.clone(), client: reqwest::Client::new(), start, file, samples: Vec::new() };
    sampler.take("idle").await?;

    let (phase, phase_rx) = watch::channel(Phase::Churn);
    let workers: Vec<_> =
        (0..shared.args.connections).map(|id| tokio::spawn(worker(shared.clone(), id, phase_rx.clone()))).collect();
    let publisher = tokio::spawn(publisher(shared.clone(), phase_rx));
    sampler.every(start + churn, "churn").await?;
    sampler.take("churn-end").await?;
    phase.send_replace(Phase::Hold);
    sampler.every(Instant::now() + hold, "hold").await?;
    sampler.take("hold-end").await?;
    phase.send_replace(Phase::Close);
    let closing = Instant::now() + Duration::from_secs(30);
    for worker in workers {
        let _ = tokio::time::timeout_at(closing.into(), worker).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), publisher).await;
    tokio::time::sleep(settle).await;
    sampler.take("closed").await?;

    print_totals(&shared.counters);
    let pass = verdict(&shared.args, &sampler.samples);
    std::process::exit(if pass { 0 } else { 1 });
}
