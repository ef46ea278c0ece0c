//! `pusher-local` with no command: resolve the settings, start tracing and the runtime, bind,
//! prepare TLS, build the printer's sinks (terminal, `--log-file`), and serve until Ctrl-C or
//! SIGTERM; the banner is printed once every start-up check has passed, with `--ready-file` and
//! `--print-ready`'s JSON (see [`ReadyInfo`]) just before it.

use std::io::{IsTerminal, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;

use crate::banner;
use crate::cli::Cli;
use crate::config::{Config, Listen, ProcessEnv};
use crate::printer::{style, Line, Printer, Sink, TextOptions, Verbosity};
use crate::server::{self, Listeners};
use crate::shutdown::{self, Shutdown};

/// Serves with the settings `cli` resolves to.
///
/// # Errors
/// A setting, a port, TLS, Redis, the recording or `--replay` that stops the start.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let cwd = std::env::current_dir().context("reading the working directory")?;
    let mut config = Config::resolve(cli.layer(), &ProcessEnv, &cwd)?;
    start_tracing(config.verbose);
    let workers = config
        .workers
        .unwrap_or_else(|| crate::config::default_workers(std::env::var("TOKIO_WORKER_THREADS").ok().as_deref()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let signal = shutdown::signal().context("installing signal handlers")?;
        // Before binding: a folder that takes no file stops the start. Dropped (the file removed)
        // when this block ends, after the drain.
        let ready_file = config.ready_file.as_deref().map(ReadyFile::prepare).transpose()?.map(Arc::new);
        let listeners = Listeners::bind(&config.listen).await?;
        let (api, websocket) = listeners.local_addrs();
        // `--port 0` (or `-a`/`-w` with port 0): from here on the settings say the port bound.
        config.listen = if api == websocket { Listen::Combined(api) } else { Listen::Split { api, websocket } };
        let color =
            style::should_color(config.color, std::io::stdout().is_terminal(), std::env::var_os("NO_COLOR").as_deref());
        let sinks = sinks(&config, color)?;
        let printer = Printer::spawn(sinks, config.filter.clone(), color);
        let tls = server::prepare_tls(&config).await?;
        let stop = Shutdown::new();
        // Printed once every start-up check has passed (Redis, the recording, --replay).
        let announce = Announce {
            info: ReadyInfo::new(&config, api, websocket, std::process::id()),
            file: ready_file.clone(),
            print: config.print_ready,
            banner: banner::startup(&config, api, websocket, tls.identity(), color),
            printer: printer.clone(),
            stop: stop.clone(),
        };
        let ready: server::Ready = Box::new(move || announce.ready());
        let trigger = stop.clone();
        tokio::spawn(async move {
            signal.await;
            trigger.cancel();
        });
        // On a worker thread, not this one: the accept loop then spawns each connection onto the
        // worker that accepted it, instead of a third busy thread waking the two workers.
        let served = tokio::spawn(server::serve(listeners, config, tls, printer.clone(), stop, ready)).await;
        printer.flush();
        served.context("the server task failed")??;
        if let Some(failed) = ready_file.as_ref().and_then(|file| file.failed.lock().ok()?.take()) {
            return Err(failed);
        }
        anyhow::Ok(())
    })
}

/// What `--ready-file` and `--print-ready` say once the server accepts connections: where to
/// reach it (the ports bound, so `--port 0` shows the one picked) and the first app.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReadyInfo {
    /// `http://HOST:PORT` of the HTTP API.
    pub url: String,
    /// `ws://HOST:PORT` of the WebSocket endpoint.
    pub ws_url: String,
    /// The HTTP API's port.
    pub http_port: u16,
    /// The WebSocket endpoint's port (the same unless `-a`/`-w` split the listeners).
    pub ws_port: u16,
    /// The host to dial (the HTTP API's; loopback when every interface is bound).
    pub host: String,
    /// The first app's id.
    pub app_id: String,
    /// The first app's key.
    pub key: String,
    /// The first app's secret.
    pub secret: String,
    /// This process.
    pub pid: u32,
    /// The control token, when the server asks for one (`--control-token`, or listening
    /// beyond loopback).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_token: Option<String>,
}

impl ReadyInfo {
    /// For the bound `(api, websocket)` addresses.
    pub fn new(config: &Config, api: SocketAddr, websocket: SocketAddr, pid: u32) -> ReadyInfo {
        /// A wildcard bind is reached on loopback of the same family.
        fn dial(addr: SocketAddr) -> SocketAddr {
            match addr.ip() {
                IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port()),
                IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port()),
                _ => addr,
            }
        }
        let (api, websocket) = (dial(api), dial(websocket));
        let app = &config.apps[0];
        ReadyInfo {
            url: format!("http://{api}"),
            ws_url: format!("ws://{websocket}"),
            http_port: api.port(),
            ws_port: websocket.port(),
            host: api.ip().to_string(),
            app_id: app.id.to_string(),
            key: app.key.clone(),
            secret: app.secret.expose().to_owned(),
            pid,
            control_token: config.control_token.as_ref().map(|t| t.token.expose().to_owned()),
        }
    }

    /// One line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("strings and numbers serialize")
    }
}

/// `--ready-file PATH`: written atomically (a temp file beside it, then renamed) once the server
/// accepts connections; removed when this is dropped, after the server stopped.
struct ReadyFile {
    path: PathBuf,
    tmp: PathBuf,
    written: AtomicBool,
    /// Why writing it failed (the server then stops, and the start counts as failed).
    failed: Mutex<Option<anyhow::Error>>,
}

impl ReadyFile {
    /// Creates the temp file now, so that a folder that takes no file stops the start.
    fn prepare(path: &Path) -> anyhow::Result<ReadyFile> {
        let name = path.file_name().with_context(|| format!("--ready-file {} names no file", path.display()))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{}.tmp", std::process::id()));
        let tmp = path.with_file_name(tmp_name);
        std::fs::File::create(&tmp)
            .with_context(|| format!("cannot write the ready file beside {}", path.display()))?;
        Ok(ReadyFile { path: path.to_owned(), tmp, written: AtomicBool::new(false), failed: Mutex::new(None) })
    }

    fn write(&self, json: &str) -> std::io::Result<()> {
        std::fs::write(&self.tmp, format!("{json}\n"))?;
        std::fs::rename(&self.tmp, &self.path)?;
        self.written.store(true, Ordering::SeqCst);
        Ok(())
    }
}

impl Drop for ReadyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.tmp);
        if self.written.load(Ordering::SeqCst) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// What happens at the ready moment, in order: the ready file, the `--print-ready` line, then
/// the banner.
struct Announce {
    info: ReadyInfo,
    file: Option<Arc<ReadyFile>>,
    print: bool,
    banner: Vec<String>,
    printer: Printer,
    stop: Shutdown,
}

impl Announce {
    fn ready(self) {
        let json = self.info.to_json();
        if let Some(file) = &self.file {
            if let Err(e) = file.write(&json) {
                // Said by `main` once the server has stopped.
                let error =
                    anyhow::Error::new(e).context(format!("cannot write the ready file {}", file.path.display()));
                if let Ok(mut failed) = file.failed.lock() {
                    *failed = Some(error);
                }
                self.stop.cancel();
                return;
            }
        }
        if self.print {
            // Straight to stdout, before the banner reaches the printer's thread.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{json}").and_then(|()| out.flush());
        }
        for text in self.banner {
            self.printer.line(Line::Text(text));
        }
    }
}

/// `tracing` on stderr for pusher-local's own diagnostics (`-vv` debug, `-vvv` trace;
/// `RUST_LOG` wins).
fn start_tracing(verbose: u8) {
    let level = match verbose {
        0 | 1 => "warn",
        2 => "debug",
        _ => "trace",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("pusher_local={level}"))),
        )
        .init();
}

/// Where the traffic log goes: the terminal (coloured, fitted to its width), and with
/// `--log-file` a file too (plain, verbose when `-v`).
fn sinks(config: &Config, color: bool) -> anyhow::Result<Vec<Sink>> {
    let verbosity = match (config.quiet, config.verbose) {
        (true, _) => Verbosity::Quiet,
        (false, 0) => Verbosity::Normal,
        (false, _) => Verbosity::Verbose,
    };
    let mut sinks = vec![Sink {
        // Buffered: the printer thread flushes after each batch of lines, one write each.
        out: Box::new(std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout())),
        format: config.log_format,
        text: TextOptions {
            color,
            full: config.full,
            width: terminal_size::terminal_size()
                .map(|(w, _)| usize::from(w.0))
                .filter(|_| std::io::stdout().is_terminal()),
            show_app: config.apps.len() > 1,
        },
        verbosity,
    }];
    if let Some(path) = &config.log_file {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening the log file {}", path.display()))?;
        sinks.push(Sink {
            out: Box::new(std::io::BufWriter::with_capacity(64 * 1024, file)),
            format: config.log_format,
            text: TextOptions { color: false, full: config.full, width: None, show_app: config.apps.len() > 1 },
            verbosity: if config.verbose > 0 { Verbosity::Verbose } else { Verbosity::Normal },
        });
    }
    Ok(sinks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ready_json_names_the_bound_ports_a_host_to_dial_and_the_first_app() {
        let mut config = Config::default();
        config.apps[0].key = "k".into();
        let info = ReadyInfo::new(&config, "0.0.0.0:4100".parse().unwrap(), "0.0.0.0:4100".parse().unwrap(), 7);
        let json: serde_json::Value = serde_json::from_str(&info.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "url": "http://127.0.0.1:4100", "ws_url": "ws://127.0.0.1:4100", "http_port": 4100, "ws_port": 4100,
                "host": "127.0.0.1", "app_id": "1", "key": "k", "secret": "app-secret", "pid": 7,
            })
        );
        assert!(!info.to_json().contains('\n'), "one line");
        config.control_token =
            Some(crate::config::ControlToken { token: crate::apps::Secret::new("t0k"), generated: false });
        let info = ReadyInfo::new(&config, "127.0.0.1:4100".parse().unwrap(), "127.0.0.1:4100".parse().unwrap(), 7);
        assert_eq!(serde_json::from_str::<serde_json::Value>(&info.to_json()).unwrap()["control_token"], "t0k");
        let split = ReadyInfo::new(&config, "[::]:4001".parse().unwrap(), "127.0.0.2:4002".parse().unwrap(), 7);
        assert_eq!((split.url.as_str(), split.ws_url.as_str()), ("http://[::1]:4001", "ws://127.0.0.2:4002"));
        assert_eq!((split.http_port, split.ws_port, split.host.as_str()), (4001, 4002, "::1"));
    }

    #[test]
    fn the_ready_file_appears_whole_and_goes_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ready.json");
        let file = ReadyFile::prepare(&path).unwrap();
        assert!(!path.exists(), "not before the ready moment");
        file.write("{}").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "the temp file was renamed");
        drop(file);
        assert!(!path.exists());
        assert!(ReadyFile::prepare(&dir.path().join("missing/ready.json")).is_err());
    }
}
