//! `run`: builds the shared state and serves the routes (WebSocket, HTTP API, control API) on the given listeners until the
//! shutdown token fires, then drains: stop accepting → 1001 going away to every socket → wait up to the
//! grace period → finish the recording (everything queued is committed) → close the broker.
//!
//! `main` and the tests share this code path; the listeners and the shutdown handle are
//! parameters (tests bind port 0).
//!
//! - [`error`]: what can stop the server at start-up.

pub mod error;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use warp::filters::BoxedFilter;
use warp::path::FullPath;
use warp::reply::Response;
use warp::Filter;

use crate::accept;
use crate::broker;
use crate::config::{Config, Listen};
use crate::control;
use crate::printer::{Line, Printer, RecorderLine};
use crate::recorder::replay::Plan;
use crate::recorder::replays::Job;
use crate::recorder::slot::{Slot, StartError};
use crate::recorder::watch::{Change, Fixtures, WatchGuard};
use crate::recorder::Fixture;
use crate::registry::ChannelRegistry;
use crate::rest;
use crate::shutdown::Shutdown;
use crate::state::AppState;
use crate::tls::ServerTls;
use crate::ws;
use crate::xhr;

pub use error::{Error, Result};

/// Bound listeners.
#[derive(Debug)]
pub enum Listeners {
    /// WebSocket and HTTP API on one port.
    Combined(TcpListener),
    /// Separate ports (Slanger's `-a` / `-w`).
    Split {
        /// HTTP API.
        api: TcpListener,
        /// WebSockets.
        websocket: TcpListener,
    },
}

impl Listeners {
    /// Binds what `config.listen` asks for.
    ///
    /// # Errors
    /// [`Error::Bind`] naming the address; for an address in use, also the process holding it
    /// when that can be told, and the flag to pass with a port that is free now.
    pub async fn bind(listen: &Listen) -> Result<Listeners> {
        /// The flag that sets this listener, with a free port near the one in use.
        fn instead(flag: &str, addr: SocketAddr) -> String {
            let free = (1..=20u16)
                .filter_map(|step| addr.port().checked_add(step))
                .find(|&port| std::net::TcpListener::bind(SocketAddr::new(addr.ip(), port)).is_ok());
            match (flag, free) {
                ("--port", Some(port)) => format!("--port {port}"),
                (flag, Some(port)) => format!("{flag} {}", SocketAddr::new(addr.ip(), port)),
                ("--port", None) => "--port (0 picks a free one)".to_owned(),
                (flag, None) => format!("{flag} (port 0 picks a free one)"),
            }
        }
        async fn one(addr: SocketAddr, flag: &str) -> Result<TcpListener> {
            TcpListener::bind(addr).await.map_err(|error| {
                let in_use = error.kind() == std::io::ErrorKind::AddrInUse;
                Error::Bind {
                    addr,
                    error,
                    owner: if in_use { crate::port_owner::of(addr) } else { None },
                    instead: in_use.then(|| instead(flag, addr)),
                }
            })
        }
        Ok(match listen {
            Listen::Combined(addr) => Listeners::Combined(one(*addr, "--port").await?),
            Listen::Split { api, websocket } => Listeners::Split {
                api: one(*api, "--api-host").await?,
                websocket: one(*websocket, "--websocket-host").await?,
            },
        })
    }

    /// `(api, websocket)` addresses actually bound (they are equal when combined).
    pub fn local_addrs(&self) -> (SocketAddr, SocketAddr) {
        // A listener that was bound successfully always has a local address.
        let addr = |l: &TcpListener| l.local_addr().expect("bound listener has an address");
        match self {
            Listeners::Combined(l) => (addr(l), addr(l)),
            Listeners::Split { api, websocket } => (addr(api), addr(websocket)),
        }
    }
}

fn fixture_line(change: Change) -> Line {
    Line::Recorder(match change {
        Change::Loaded { name, file, events } => RecorderLine::FixtureLoaded { name, file, events },
        Change::Invalid { name, error, kept } => RecorderLine::FixtureInvalid { name, error, kept },
        Change::Removed { name } => RecorderLine::FixtureRemoved { name },
    })
}

/// The recording slot, started with `--record NAME`: opens the database on the recorder's
/// thread. The line that says so is returned, for after the banner.
async fn start_recorder(config: &Config, printer: &Printer, listening: &str) -> Result<(Slot, Vec<Line>)> {
    let holder = format!("pid {}, listening on {listening}", std::process::id());
    let slot = Slot::new(config.db.clone(), holder, printer.clone());
    let Some(name) = &config.record else { return Ok((slot, Vec::new())) };
    slot.start(name.clone()).await.map_err(|e| match e {
        StartError::Store(e) => Error::Record(e),
        StartError::Running(_) => unreachable!("a new slot has no recording"),
    })?;
    let line = Line::Recorder(RecorderLine::Recording { name: name.clone(), db: config.db.clone() });
    Ok((slot, vec![line]))
}

/// Loads the fixtures folder and watches it when it exists; returns what it found as lines to
/// print after the banner (later changes print as they come).
async fn open_fixtures(
    config: &Config,
    printer: &Printer,
    shutdown: &Shutdown,
) -> Result<(Fixtures, Option<WatchGuard>, Vec<Line>)> {
    let fixtures = Fixtures::new(config.fixtures.clone());
    let scan = fixtures.clone();
    let changes = tokio::task::spawn_blocking(move || scan.scan()).await.unwrap_or_default();
    let lines = changes.into_iter().map(fixture_line).collect();
    if !fixtures.dir().is_dir() {
        return Ok((fixtures, None, lines));
    }
    let mut updates = fixtures.subscribe();
    let guard = fixtures.watch()?;
    let (printer, token) = (printer.clone(), shutdown.token().clone());
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = token.cancelled() => return,
                change = updates.recv() => match change {
                    Ok(change) => printer.line(fixture_line(change)),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    Ok((fixtures, Some(guard), lines))
}

/// `--replay NAME|FILE`: a fixture of the folder, else a file; found (or refused) before the
/// banner, started after it.
async fn startup_fixture(fixtures: &Fixtures, name: &str) -> Result<(String, Arc<Fixture>)> {
    Ok(match fixtures.get(name) {
        Some(fixture) => (name.to_owned(), fixture),
        None => {
            let path = std::path::PathBuf::from(name);
            if !path.is_file() {
                return Err(Error::UnknownFixture { name: name.to_owned(), dir: fixtures.dir().display().to_string() });
            }
            let loaded = tokio::task::spawn_blocking(move || Fixture::load(&path))
                .await
                .unwrap_or_else(|e| {
                    Err(crate::recorder::FixtureError::Read { path: name.into(), source: std::io::Error::other(e) })
                })
                .map_err(Error::Fixture)?;
            (name.to_owned(), Arc::new(loaded))
        }
    })
}

/// The addresses the listeners were asked for (the generated certificate names them).
pub fn listen_ips(config: &Config) -> Vec<std::net::IpAddr> {
    let (api, websocket) = config.listen.addrs();
    vec![api.ip(), websocket.ip()]
}

/// Prepares the server's TLS identity (off the async threads: it reads, and may write, the
/// TLS folder under a file lock).
///
/// # Errors
/// [`Error::Tls`]: unreadable `--tls-cert`/`--tls-key`, a TLS folder that cannot be written.
pub async fn prepare_tls(config: &Config) -> Result<ServerTls> {
    let (settings, hosts) = (config.tls.clone(), listen_ips(config));
    tokio::task::spawn_blocking(move || ServerTls::prepare(&settings, &hosts))
        .await
        .map_err(|e| {
            Error::Tls(crate::tls::TlsError::File { path: "TLS folder".into(), source: std::io::Error::other(e) })
        })?
        .map_err(Error::Tls)
}

/// Serves until `shutdown` is cancelled, then drains; prepares TLS first (see [`serve`]).
///
/// # Errors
/// As [`prepare_tls`] and [`serve`].
pub async fn run(listeners: Listeners, config: Config, printer: Printer, shutdown: Shutdown) -> Result<()> {
    let tls = prepare_tls(&config).await?;
    serve(listeners, config, tls, printer, shutdown, Box::new(|| {})).await
}

/// Called once every start-up check has passed, before anything is served: where the banner
/// is printed, so that it never says "listening" for a server that then exits.
pub type Ready = Box<dyn FnOnce() + Send>;

/// Serves until `shutdown` is cancelled, then drains.
///
/// # Errors
/// Before serving (and before `ready`): Redis when `--redis-url` is set, the recordings
/// database (`--record`), the fixtures folder, a `--replay` fixture. Once serving, it runs
/// until shutdown.
///
/// [`Error::Broker`] when `--redis-url` names a Redis that does not answer; nothing is served
/// then (never a silent fallback to a single node).
pub async fn serve(
    listeners: Listeners,
    config: Config,
    tls: ServerTls,
    printer: Printer,
    shutdown: Shutdown,
    ready: Ready,
) -> Result<()> {
    let registry = ChannelRegistry::with_faults(crate::faults::Faults::new());
    let shown = config.redis_url_shown().unwrap_or_default();
    let cluster = config.redis_url.as_deref().map(|url| broker::Cluster {
        url,
        shown: &shown,
        prefix: &config.redis_prefix,
        tls: &config.tls,
    });
    let (broker, mut notices) = broker::connect(cluster, registry.clone()).await?;
    let listening = match listeners.local_addrs() {
        (api, websocket) if api == websocket => api.to_string(),
        (api, websocket) => format!("{websocket} and {api}"),
    };
    let (recording, mut lines) = start_recorder(&config, &printer, &listening).await?;
    let (fixtures, _watch, found) = open_fixtures(&config, &printer, &shutdown).await?;
    lines.extend(found);
    let mut replays = Vec::new();
    for name in &config.replay {
        replays.push(startup_fixture(&fixtures, name).await?);
    }
    // Every check passed: the banner, then what the checks found.
    ready();
    for line in lines {
        printer.line(line);
    }
    let state = AppState::new(
        Arc::new(config),
        registry.clone(),
        broker.clone(),
        printer.clone(),
        shutdown.clone(),
        recording,
        fixtures,
    );
    // What the cluster reports (Redis lost or back, a node gone): until `broker.close()` drops
    // the sender.
    let cluster = state.clone();
    let notice_task = tokio::spawn(async move {
        while let Some(notice) = notices.recv().await {
            cluster.on_notice(notice).await;
        }
    });
    for (label, fixture) in replays {
        let app_id = state.config().apps[0].id.clone();
        state.start_replay(Job { name: label, fixture, plan: Plan::default(), app_id });
    }
    // Shutdown reaches sockets through their outboxes: no connection polls the shared token.
    let token = shutdown.token().clone();
    tokio::spawn(async move {
        token.cancelled().await;
        registry.close_all(crate::protocol::codes::WS_GOING_AWAY, crate::session::SHUTDOWN_REASON);
    });
    accept_until_shutdown(listeners, &state, &tls).await;

    // Connection tasks saw the token and are sending 1001; give them the grace period.
    let tracker = shutdown.tracker();
    tracker.close();
    if tokio::time::timeout(state.config().shutdown_grace, tracker.wait()).await.is_err() {
        printer.line(Line::Error(format!("{} connections did not close in time", tracker.len())));
    }
    state.replays().stop_all();
    // Whichever recording runs now (`--record`'s, or one started from the console) is
    // committed in full and ended; the slot prints how.
    let _ended = state.recording().stop().await;
    broker.close().await;
    // The broker dropped its sender: the loop ends after the last notice.
    let _ = tokio::time::timeout(state.config().shutdown_grace, notice_task).await;
    printer.line(Line::Text("pusher-local stopped".into()));
    Ok(())
}

/// The Pusher HTTP API and pusher-local's own control API (`/pusher-local/…`) beside it, with
/// one log line per call and the reason of a refusal.
fn api_routes(state: &AppState) -> BoxedFilter<(Response,)> {
    let log_printer = state.printer().clone();
    warp::any()
        .map(std::time::Instant::now)
        .and(warp::method())
        .and(warp::path::full())
        .and(
            control::routes(state.clone())
                .or(rest::routes(state.clone()))
                .unify()
                .recover(rest::reply::recover)
                .unify(),
        )
        .map(move |start: std::time::Instant, method: warp::http::Method, path: FullPath, response: Response| {
            log_printer.line(Line::Api {
                method: method.to_string(),
                path: path.as_str().to_owned(),
                status: response.status().as_u16(),
                elapsed: start.elapsed(),
                reason: response.extensions().get::<rest::reply::Reason>().map(|r| r.0.clone()),
            });
            response
        })
        .boxed()
}

/// Every route of `state`: `(HTTP API and control API, WebSocket and its HTTP fallbacks)`. The
/// listeners serve them; in-process drivers (the fuzz targets in `fuzz/`) call them directly.
pub fn routes(state: &AppState) -> (BoxedFilter<(Response,)>, BoxedFilter<(Response,)>) {
    // pusher-js's HTTP fallback transports sit with the WebSocket endpoint (client traffic,
    // logged as frames rather than as API calls).
    (api_routes(state), ws::route(state.clone()).or(xhr::route(state.clone())).unify().boxed())
}

/// Serves the routes on the listeners, plain or TLS on each, until the shutdown token fires.
async fn accept_until_shutdown(listeners: Listeners, state: &AppState, tls: &ServerTls) {
    let (api, websocket) = routes(state);
    let stop = state.shutdown().token().clone();
    let tls_printer = state.printer().clone();
    let identity = tls.clone();
    let tls = Some(accept::Tls {
        acceptor: tls.acceptor().clone(),
        failed: Arc::new(move |addr, error| {
            tls_printer.line(Line::Error(format!("TLS from {addr} failed: {}", identity.explain_failure(error))));
        }),
    });
    match listeners {
        Listeners::Combined(listener) => {
            let routes = websocket.or(api).unify().boxed();
            accept::serve(listener, routes, stop, tls).await;
        }
        Listeners::Split { api: api_listener, websocket: ws_listener } => {
            let ws_routes = websocket.recover(rest::reply::recover).unify().boxed();
            tokio::join!(
                accept::serve(api_listener, api, stop.clone(), tls.clone()),
                accept::serve(ws_listener, ws_routes, stop, tls),
            );
        }
    }
}
