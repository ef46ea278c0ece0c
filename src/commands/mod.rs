//! The subcommands: `pusher-local` itself (serve) and its tools, each in its own file. They
//! read the same layered settings as the server (flags, variables, `.env`, file), print for a
//! person (or JSON where asked), and answer `anyhow` errors that `main` prints; the binary's
//! exit codes are main's.
//!
//! - [`serve`]: the server: tracing, the runtime, the printer's sinks, the banner, serve.
//! - [`webhooks`]: `webhooks list | show | resend`, through [`client`], the control API's
//!   HTTP client.
//! - [`recordings`]: `recordings list | show | delete | export`, on the database file.
//! - [`replay`], [`capture`]: a fixture into any server's HTTP API; any server's events into a
//!   fixture.
//! - [`tls`]: `tls`, `completions`, `man`.
//! - [`terminal`]: what these commands print: recording lists, the replay progress bar, the
//!   capture spinner.

pub mod capture;
pub mod client;
pub mod recordings;
pub mod replay;
pub mod serve;
pub mod terminal;
pub mod tls;
pub mod webhooks;

use anyhow::Context;

use crate::cli::{Cli, Command};
use crate::config::{Config, ProcessEnv};

/// Runs the tool `command` names; `None` for no command (serve, see [`serve::run`]).
pub fn run(cli: &Cli) -> Option<anyhow::Result<()>> {
    Some(match cli.command.clone()? {
        Command::Webhooks { action, url, json, .. } => webhooks::run(cli, action, url, json),
        Command::Recordings { action, .. } => recordings::run(cli, action),
        Command::Replay(args) => replay::run(cli, &args),
        Command::Capture(args) => capture::run(cli, &args),
        Command::Tls { .. } => tls::run(cli),
        Command::Completions { shell } => tls::completions(shell),
        Command::Man => tls::man(),
    })
}

/// The settings the server would use here (flags, variables, `.env`, file).
pub fn local_config(cli: &Cli) -> anyhow::Result<Config> {
    let cwd = std::env::current_dir().context("reading the working directory")?;
    Ok(Config::resolve(cli.layer(), &ProcessEnv, &cwd)?)
}

/// `(HTTP API address, WebSocket address)` of the local server, loopback when it binds all.
pub fn local_addrs(config: &Config) -> (std::net::SocketAddr, std::net::SocketAddr) {
    let (mut api, mut ws) = config.listen.addrs();
    for addr in [&mut api, &mut ws] {
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
    }
    (api, ws)
}

/// A one-thread runtime for a command's network calls.
pub fn current_thread_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")
}

/// `--insecure` on a command that connects out: said loudly, once, before connecting.
pub fn warn_insecure(trust: &crate::tls::ClientTrust, url: &str) {
    if trust.insecure && (url.starts_with("https:") || url.starts_with("wss:")) {
        eprintln!(
            "pusher-local: --insecure: the certificate of {url} is NOT checked; anyone on the way can read and change this traffic"
        );
    }
}
