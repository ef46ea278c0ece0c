//! `pusher-local capture …`: a client of any Pusher-compatible server that keeps the events
//! of the channels it subscribes to; Ctrl-C writes them as a fixture.

use anyhow::Context;

use crate::cli::{CaptureArgs, Cli};
use crate::recorder::{capture, remote};
use crate::shutdown;

use super::{current_thread_runtime, local_addrs, local_config, terminal, warn_insecure};

/// `pusher-local capture …`: a client of any Pusher-compatible server; Ctrl-C writes the file.
pub fn run(cli: &Cli, args: &CaptureArgs) -> anyhow::Result<()> {
    let config = local_config(cli)?;
    let app = &config.apps[0];
    let local = local_addrs(&config).1.to_string();
    let url = remote::resolve(args.url.as_deref(), args.cluster.as_deref(), &local, remote::Side::WebSocket)?;
    let trust = config.tls.client_trust();
    warn_insecure(&trust, &url);
    let options = capture::Options {
        url,
        trust,
        key: args.key.clone().unwrap_or_else(|| app.key.clone()),
        // The secret that goes with the key pusher-local would use; a given --key needs its own.
        secret: args.secret.clone().or_else(|| args.key.is_none().then(|| app.secret.expose().to_owned())),
        channels: args.channels.clone(),
        user_id: args.user_id.clone().unwrap_or_else(|| "pusher-local-capture".into()),
    };
    // Hidden when stdout is not a terminal; lines go above it through `suspend` (which prints
    // when hidden too, unlike `println`).
    let spinner = terminal::capture_spinner();
    let captured = current_thread_runtime()?.block_on(async {
        let signal = shutdown::signal().context("installing signal handlers")?;
        let notify = |n: capture::Notice| {
            let line = match n {
                capture::Notice::Connected(socket) => format!("connected to {} as socket {socket}", options.url),
                capture::Notice::Subscribed(channel) => format!("subscribed to {channel}"),
                capture::Notice::Event { count, channel, event } => {
                    spinner.set_position(count as u64);
                    format!("#{count} {event} on {channel}")
                }
                capture::Notice::Closed(reason) => format!("the server closed the connection ({reason})"),
                capture::Notice::Problem(problem) => {
                    spinner.suspend(|| eprintln!("pusher-local: {problem} (events so far are kept)"));
                    return;
                }
            };
            spinner.suspend(|| println!("{line}"));
        };
        anyhow::Ok(capture::run(&options, signal, notify).await?)
    });
    spinner.finish_and_clear();
    let mut fixture = captured?;
    fixture.name = args.output.file_stem().map(|s| s.to_string_lossy().into_owned());
    fixture.save(&args.output)?;
    println!("wrote {} events to {}", fixture.events.len(), args.output.display());
    Ok(())
}
