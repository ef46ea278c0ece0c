//! `pusher-local` with no command: resolve the settings, start tracing and the runtime, bind,
//! prepare TLS, build the printer's sinks (terminal, `--log-file`), and serve until Ctrl-C or
//! SIGTERM; the banner is printed once every start-up check has passed.

use std::io::IsTerminal;

use anyhow::Context;

use crate::banner;
use crate::cli::Cli;
use crate::config::{Config, ProcessEnv};
use crate::printer::{style, Line, Printer, Sink, TextOptions, Verbosity};
use crate::server::{self, Listeners};
use crate::shutdown::{self, Shutdown};

/// Serves with the settings `cli` resolves to.
///
/// # Errors
/// A setting, a port, TLS, Redis, the recording or `--replay` that stops the start.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let cwd = std::env::current_dir().context("reading the working directory")?;
    let config = Config::resolve(cli.layer(), &ProcessEnv, &cwd)?;
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
        let listeners = Listeners::bind(&config.listen).await?;
        let color =
            style::should_color(config.color, std::io::stdout().is_terminal(), std::env::var_os("NO_COLOR").as_deref());
        let sinks = sinks(&config, color)?;
        let printer = Printer::spawn(sinks, config.filter.clone(), color);
        let (api, websocket) = listeners.local_addrs();
        let tls = server::prepare_tls(&config).await?;
        // Printed once every start-up check has passed (Redis, the recording, --replay).
        let startup = banner::startup(&config, api, websocket, tls.identity(), color);
        let ready_printer = printer.clone();
        let ready: server::Ready = Box::new(move || {
            for text in startup {
                ready_printer.line(Line::Text(text));
            }
        });
        let stop = Shutdown::new();
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
        anyhow::Ok(())
    })
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
