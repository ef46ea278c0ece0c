//! The `pusher-local` binary: parse flags, resolve the config, bind, print the banner, serve
//! until Ctrl-C or SIGTERM.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use pusher_local::cli::{Cli, Command, WebhooksAction};
use pusher_local::config::Listen;
use pusher_local::config::ProcessEnv;
use pusher_local::control::client::{render_list, render_record, ControlClient};
use pusher_local::printer::{banner, style, Line, Printer, Sink, TextOptions, Verbosity};
use pusher_local::{shutdown, Config, Listeners, Shutdown};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Webhooks { action, url, json }) = cli.command.clone() {
        return match webhooks(&cli, action, url, json) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("pusher-local: {error:#}");
                ExitCode::from(1)
            }
        };
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("pusher-local: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let cwd = std::env::current_dir().context("reading the working directory")?;
    let config = Config::resolve(&cli, &ProcessEnv, &cwd)?;
    let level = match config.verbose {
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
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(async move {
        let signal = shutdown::signal().context("installing signal handlers")?;
        let listeners = Listeners::bind(&config.listen).await?;
        let color =
            style::should_color(config.color, std::io::stdout().is_terminal(), std::env::var_os("NO_COLOR").as_deref());
        let verbosity = match (config.quiet, config.verbose) {
            (true, _) => Verbosity::Quiet,
            (false, 0) => Verbosity::Normal,
            (false, _) => Verbosity::Verbose,
        };
        let mut sinks = vec![Sink {
            out: Box::new(std::io::stdout()),
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
                out: Box::new(std::io::LineWriter::new(file)),
                format: config.log_format,
                text: TextOptions { color: false, full: config.full, width: None, show_app: config.apps.len() > 1 },
                verbosity: if config.verbose > 0 { Verbosity::Verbose } else { Verbosity::Normal },
            });
        }
        let printer = Printer::spawn(sinks, config.filter.clone(), color);
        let (api, websocket) = listeners.local_addrs();
        if !config.quiet && config.log_format == pusher_local::printer::Format::Text {
            printer.line(Line::Text(banner::render(&config, api, websocket, color)));
        } else if !config.quiet {
            printer.line(Line::Text(format!("pusher-local {} listening on {websocket}", env!("CARGO_PKG_VERSION"))));
        }
        if !config.quiet {
            for app in config.apps.iter().filter(|a| !a.webhooks.is_empty()) {
                for target in &app.webhooks {
                    let kinds = match &target.event_types {
                        Some(kinds) => kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", "),
                        None => "every kind".into(),
                    };
                    printer.line(Line::Text(format!("webhooks of app {} → {} ({kinds})", app.id, target.url)));
                }
            }
        }
        let stop = Shutdown::new();
        let trigger = stop.clone();
        tokio::spawn(async move {
            signal.await;
            trigger.cancel();
        });
        let served = pusher_local::run(listeners, config, printer.clone(), stop).await;
        printer.flush();
        served?;
        anyhow::Ok(())
    })
}

/// `pusher-local webhooks …`: calls the control API of a running server. Without `--url` the
/// server's address comes from the same settings the server reads (flags, variables, file).
fn webhooks(cli: &Cli, action: WebhooksAction, url: Option<String>, json: bool) -> anyhow::Result<()> {
    let base = match url {
        Some(url) => url,
        None => {
            let cwd = std::env::current_dir().context("reading the working directory")?;
            let config = Config::resolve(cli, &ProcessEnv, &cwd)?;
            let mut addr = match config.listen {
                Listen::Combined(addr) | Listen::Split { api: addr, .. } => addr,
            };
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{addr}")
        }
    };
    let client = ControlClient::new(base);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(async {
        let (answer, text) = match action {
            WebhooksAction::List => {
                let list = client.list().await?;
                let text = render_list(&list);
                (list, text)
            }
            WebhooksAction::Show { id } => {
                let record = client.show(id).await?;
                let text = render_record(&record);
                (record, text)
            }
            WebhooksAction::Resend { id, to } => {
                let answer = client.resend(id, to.as_deref()).await?;
                let urls: Vec<&str> =
                    answer["urls"].as_array().into_iter().flatten().filter_map(|u| u.as_str()).collect();
                let text = format!(
                    "webhook #{id} queued again for {} (see `pusher-local webhooks show {id}` for the outcome)\n",
                    urls.join(", ")
                );
                (answer, text)
            }
        };
        if json {
            println!("{}", serde_json::to_string_pretty(&answer)?);
        } else {
            print!("{text}");
        }
        anyhow::Ok(())
    })
}
