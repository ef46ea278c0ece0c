//! `pusher-local replay …`: publishes a fixture through any server's signed HTTP API, with
//! its original timing (or faster, looped, a part, channels renamed), with a progress bar.

use anyhow::Context;

use crate::cli::{Cli, ReplayArgs};
use crate::recorder::{remote, replay};
use crate::shutdown;

use super::recordings::find_fixture;
use super::{current_thread_runtime, local_addrs, local_config, terminal, warn_insecure};

/// `pusher-local replay …`: publishes through the signed HTTP API, with the original timing.
pub fn run(cli: &Cli, args: &ReplayArgs) -> anyhow::Result<()> {
    let config = local_config(cli)?;
    let (name, fixture) = find_fixture(&config, &args.fixture)?;
    let app = &config.apps[0];
    let local = local_addrs(&config).0.to_string();
    let url = remote::resolve(args.url.as_deref(), args.cluster.as_deref(), &local, remote::Side::Api)?;
    let trust = config.tls.client_trust();
    warn_insecure(&trust, &url);
    let app_id = args.app_id.clone().unwrap_or_else(|| app.id.to_string());
    let key = args.key.clone().unwrap_or_else(|| app.key.clone());
    if args.secret.is_none() && key != app.key {
        anyhow::bail!("--key {key} needs its --secret (the secret pusher-local knows goes with key {})", app.key);
    }
    let secret = args.secret.clone().unwrap_or_else(|| app.secret.expose().to_owned());
    let plan = replay::Plan {
        speed: args.speed.unwrap_or_default(),
        looped: args.looped,
        channel_map: args.channel_map.clone(),
        from: args.from,
        to: args.to,
    };
    let publisher = replay::HttpPublisher::new(&url, &app_id, &key, &secret, &trust)?;
    let total = replay::schedule(&fixture, &plan).len();
    println!("replaying {name} ({total} events, speed {}) into {url} (app {app_id})", plan.speed);
    current_thread_runtime()?.block_on(async {
        let stop = tokio_util::sync::CancellationToken::new();
        let signal = shutdown::signal().context("installing signal handlers")?;
        let trigger = stop.clone();
        tokio::spawn(async move {
            signal.await;
            trigger.cancel();
        });
        // Hidden (draws nothing) when stdout is not a terminal.
        let bar = terminal::replay_bar(total);
        let draw = |p: replay::Progress| {
            // At max speed the schedule says nothing of the time left: the measured rate does.
            let left = if plan.speed == replay::Speed::Max { bar.eta() } else { p.remaining };
            bar.set_position(p.sent as u64);
            bar.set_message(terminal::replay_message(left, p.passes, chrono::Local::now()));
        };
        let outcome = replay::run(&fixture, &plan, &publisher, &stop, draw).await;
        bar.abandon();
        let outcome = outcome?;
        let how = if outcome.stopped { "stopped after" } else { "sent" };
        let passes = match outcome.passes {
            _ if !plan.looped => String::new(),
            1 => " (1 whole pass)".to_owned(),
            n => format!(" ({n} whole passes)"),
        };
        println!("{how} {} events of {name}{passes}", outcome.sent);
        anyhow::Ok(())
    })
}
