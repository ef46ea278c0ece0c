//! The `pusher-local` binary: parse flags, resolve the config, bind, print the banner, serve
//! until Ctrl-C or SIGTERM.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use pusher_local::cli::{Cli, ColorChoice};
use pusher_local::config::ProcessEnv;
use pusher_local::printer::{banner, Line, Printer, Verbosity};
use pusher_local::{shutdown, Config, Listeners, Shutdown};

fn use_color(choice: ColorChoice) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let signal = shutdown::signal().context("installing signal handlers")?;
        let listeners = Listeners::bind(&config.listen).await?;
        let color = use_color(config.color);
        let verbosity = match (config.quiet, config.verbose) {
            (true, _) => Verbosity::Quiet,
            (false, 0) => Verbosity::Normal,
            (false, _) => Verbosity::Verbose,
        };
        let printer = Printer::spawn(Box::new(std::io::stdout()), verbosity, color);
        let (api, websocket) = listeners.local_addrs();
        if !config.quiet {
            printer.line(Line::Text(banner::render(&config, api, websocket, color)));
        }
        let stop = Shutdown::new();
        let trigger = stop.clone();
        tokio::spawn(async move {
            signal.await;
            trigger.cancel();
        });
        pusher_local::run(listeners, config, printer, stop).await;
        anyhow::Ok(())
    })
}
