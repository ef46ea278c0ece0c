//! `pusher-local tls` (the local CA and how to trust it), `completions SHELL` and `man`.

use std::io::{IsTerminal, Write as _};

use anyhow::Context;
use clap::CommandFactory;

use crate::banner;
use crate::cli::Cli;
use crate::printer::style;

use super::local_config;

/// `pusher-local tls`: the local CA (made if missing), how to trust it, and its PEM.
pub fn run(cli: &Cli) -> anyhow::Result<()> {
    let config = local_config(cli)?;
    let hosts = crate::server::listen_ips(&config);
    let tls = crate::tls::ServerTls::prepare(&config.tls, &hosts)?;
    let color =
        style::should_color(config.color, std::io::stdout().is_terminal(), std::env::var_os("NO_COLOR").as_deref());
    print!("{}", banner::tls_block(tls.identity(), color));
    if let crate::tls::server::Identity::Generated { ca, .. } = tls.identity() {
        let pem = std::fs::read_to_string(ca).with_context(|| format!("reading {}", ca.display()))?;
        print!("\n{pem}");
    }
    Ok(())
}

/// `pusher-local completions SHELL`: the completion script for that shell, on stdout.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "pusher-local", &mut script);
    if shell == clap_complete::Shell::Bash {
        // clap_complete's bash script spells the state of a hyphenated binary's subcommands two
        // ways (`pusher__local__subcmd__replay` where it walks the words,
        // `pusher__subcmd__local__subcmd__replay` in the arms), so nothing after a subcommand
        // would complete (clap-rs/clap#6421). One spelling for both.
        script = String::from_utf8_lossy(&script).replace("pusher__subcmd__local", "pusher__local").into_bytes();
    }
    let mut out = std::io::stdout().lock();
    out.write_all(&script).and_then(|()| out.flush()).context("writing the completion script")
}

/// `pusher-local man`: the manual page (roff), on stdout.
pub fn man() -> anyhow::Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page).context("making the manual page")?;
    let mut out = std::io::stdout().lock();
    out.write_all(&page).and_then(|()| out.flush()).context("writing the manual page")
}
