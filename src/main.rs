//! The `pusher-local` binary: parse flags, resolve the config, bind, prepare TLS, serve (the
//! banner is printed once the start-up checks pass) until Ctrl-C or SIGTERM; or run one of the
//! tool commands (`webhooks`, `recordings`, `replay`, `capture`, `tls`, `completions`, `man`).

use std::io::{IsTerminal, Write as _};
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser};

use pusher_local::banner;
use pusher_local::cli::{CaptureArgs, Cli, Command, RecordingsAction, ReplayArgs, WebhooksAction};
use pusher_local::config::ProcessEnv;
use pusher_local::control::client::{render_list, render_record, ControlClient};
use pusher_local::printer::recorder as printer_recorder;
use pusher_local::printer::{style, Line, Printer, Sink, TextOptions, Verbosity};
use pusher_local::recorder::{self, capture, remote, replay, Fixture, Store};
use pusher_local::{shutdown, Config, Listeners, Shutdown};

fn main() -> ExitCode {
    let cli = Cli::parse().lift_subcommand_flags();
    let tool = match cli.command.clone() {
        None => None,
        Some(Command::Webhooks { action, url, json, .. }) => Some(webhooks(&cli, action, url, json)),
        Some(Command::Recordings { action, .. }) => Some(recordings(&cli, action)),
        Some(Command::Replay(args)) => Some(replay(&cli, args)),
        Some(Command::Capture(args)) => Some(capture(&cli, args)),
        Some(Command::Tls { .. }) => Some(tls(&cli)),
        Some(Command::Completions { shell }) => Some(completions(shell)),
        Some(Command::Man) => Some(man()),
    };
    if let Some(result) = tool {
        return match result {
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
    let config = Config::resolve(cli.layer(), &ProcessEnv, &cwd)?;
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
    let workers = config.workers.unwrap_or_else(|| {
        pusher_local::config::default_workers(std::env::var("TOKIO_WORKER_THREADS").ok().as_deref())
    });
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
        let printer = Printer::spawn(sinks, config.filter.clone(), color);
        let (api, websocket) = listeners.local_addrs();
        let tls = pusher_local::server::prepare_tls(&config).await?;
        // Printed once every start-up check has passed (Redis, the recording, --replay).
        let startup = banner::startup(&config, api, websocket, tls.identity(), color);
        let ready_printer = printer.clone();
        let ready: pusher_local::server::Ready = Box::new(move || {
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
        let served = tokio::spawn(pusher_local::serve(listeners, config, tls, printer.clone(), stop, ready)).await;
        printer.flush();
        served.context("the server task failed")??;
        anyhow::Ok(())
    })
}

/// The settings the server would use here (flags, variables, `.env`, file).
fn local_config(cli: &Cli) -> anyhow::Result<Config> {
    let cwd = std::env::current_dir().context("reading the working directory")?;
    Ok(Config::resolve(cli.layer(), &ProcessEnv, &cwd)?)
}

/// `(HTTP API address, WebSocket address)` of the local server, loopback when it binds all.
fn local_addrs(config: &Config) -> (std::net::SocketAddr, std::net::SocketAddr) {
    let (mut api, mut ws) = config.listen.addrs();
    for addr in [&mut api, &mut ws] {
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
    }
    (api, ws)
}

fn current_thread_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")
}

/// `pusher-local recordings …`: works on the database file directly (a running recorder may
/// keep writing; SQLite's WAL lets both work).
fn recordings(cli: &Cli, action: RecordingsAction) -> anyhow::Result<()> {
    let config = local_config(cli)?;
    let store = match (Store::open_existing(&config.db), &action) {
        (Ok(store), RecordingsAction::List) => return list_recordings(Some(&store)),
        // No database yet is no error for a listing: it says so.
        (Err(recorder::StoreError::Missing(db)), RecordingsAction::List) => {
            println!("no recordings in {} yet (record with pusher-local --record NAME)", db.display());
            return list_recordings(None);
        }
        (opened, _) => opened?,
    };
    match action {
        RecordingsAction::List => unreachable!("listed above"),
        RecordingsAction::Show { name } => {
            let (summary, events) = store.read(&name)?;
            print!("{}", printer_recorder::recording(&summary, &events));
        }
        RecordingsAction::Delete { name } => {
            store.delete(&name)?;
            println!("deleted recording {name:?} from {}", config.db.display());
        }
        RecordingsAction::Export { name, output } => {
            let (summary, events) = store.read(&name)?;
            let fixture = recorder::fixture_of(&summary, events);
            let path = output.unwrap_or_else(|| config.fixtures.join(format!("{name}.json")));
            fixture.save(&path)?;
            println!("exported {} events of {name:?} to {}", fixture.events.len(), path.display());
        }
    }
    Ok(())
}

/// The recordings of `store` (none without a database), then the built-in fixtures.
fn list_recordings(store: Option<&Store>) -> anyhow::Result<()> {
    if let Some(store) = store {
        print!("{}", printer_recorder::recordings(&store.list()?));
    }
    let built_in: Vec<&str> = recorder::fixture::BUILT_IN.iter().map(|(name, _)| *name).collect();
    println!("built-in fixtures, replayed by name: {}", built_in.join(", "));
    Ok(())
}

/// A fixture file, a fixture of the folder, a recording, or a built-in fixture, in that order.
fn find_fixture(config: &Config, what: &str) -> anyhow::Result<(String, Fixture)> {
    let path = std::path::Path::new(what);
    if path.is_file() {
        return Ok((what.to_owned(), Fixture::load(path)?));
    }
    let in_folder = config.fixtures.join(format!("{what}.json"));
    if in_folder.is_file() {
        return Ok((what.to_owned(), Fixture::load(&in_folder)?));
    }
    match Store::open_existing(&config.db).and_then(|store| store.read(what)) {
        Ok((summary, events)) => Ok((what.to_owned(), recorder::fixture_of(&summary, events))),
        Err(recorder::StoreError::Missing(_) | recorder::StoreError::NotFound(_)) => {
            match recorder::fixture::built_in(what) {
                Some(fixture) => Ok((what.to_owned(), fixture)),
                None => anyhow::bail!(
                    "{what:?} is not a fixture file, not a fixture in {}, and not a recording in {}",
                    config.fixtures.display(),
                    config.db.display()
                ),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// `pusher-local replay …`: publishes through the signed HTTP API, with the original timing.
fn replay(cli: &Cli, args: ReplayArgs) -> anyhow::Result<()> {
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
        let bar = printer_recorder::replay_bar(total);
        let draw = |p: replay::Progress| {
            // At max speed the schedule says nothing of the time left: the measured rate does.
            let left = if plan.speed == replay::Speed::Max { bar.eta() } else { p.remaining };
            bar.set_position(p.sent as u64);
            bar.set_message(printer_recorder::replay_message(left, p.passes, chrono::Local::now()));
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

/// `pusher-local capture …`: a client of any Pusher-compatible server; Ctrl-C writes the file.
fn capture(cli: &Cli, args: CaptureArgs) -> anyhow::Result<()> {
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
    let spinner = printer_recorder::capture_spinner();
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

/// `--insecure` on a command that connects out: said loudly, once, before connecting.
fn warn_insecure(trust: &pusher_local::tls::ClientTrust, url: &str) {
    if trust.insecure && (url.starts_with("https:") || url.starts_with("wss:")) {
        eprintln!(
            "pusher-local: --insecure: the certificate of {url} is NOT checked; anyone on the way can read and change this traffic"
        );
    }
}

/// `pusher-local tls`: the local CA (made if missing), how to trust it, and its PEM.
fn tls(cli: &Cli) -> anyhow::Result<()> {
    let config = local_config(cli)?;
    let hosts = pusher_local::server::listen_ips(&config);
    let tls = pusher_local::tls::ServerTls::prepare(&config.tls, &hosts)?;
    let color =
        style::should_color(config.color, std::io::stdout().is_terminal(), std::env::var_os("NO_COLOR").as_deref());
    print!("{}", banner::tls_block(tls.identity(), color));
    if let pusher_local::tls::server::Identity::Generated { ca, .. } = tls.identity() {
        let pem = std::fs::read_to_string(ca).with_context(|| format!("reading {}", ca.display()))?;
        print!("\n{pem}");
    }
    Ok(())
}

/// `pusher-local completions SHELL`: the completion script for that shell, on stdout.
fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
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
fn man() -> anyhow::Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page).context("making the manual page")?;
    let mut out = std::io::stdout().lock();
    out.write_all(&page).and_then(|()| out.flush()).context("writing the manual page")
}

/// `pusher-local webhooks …`: calls the control API of a running server. Without `--url` the
/// server's address comes from the same settings the server reads (flags, variables, file).
fn webhooks(cli: &Cli, action: WebhooksAction, url: Option<String>, json: bool) -> anyhow::Result<()> {
    let config = local_config(cli)?;
    let base = match url {
        Some(url) => url,
        None => format!("http://{}", local_addrs(&config).0),
    };
    let trust = config.tls.client_trust();
    warn_insecure(&trust, &base);
    let client = ControlClient::new(base, &trust)?;
    current_thread_runtime()?.block_on(async {
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
