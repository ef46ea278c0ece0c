//! The command line: `Cli` (clap derive), and [`Cli::layer`], the settings layer the flags
//! (with the `PUSHER_LOCAL_*` variables clap reads for them) give `Config::resolve`, the last and
//! strongest of its layers (defaults < `.env` < `--config` file < environment < flags). Every
//! field is optional with no default here; defaults live in `Config::default()` so that the
//! `.env`, file and environment layers can sit between them and flags. This module sits above
//! `config`: it makes a `config::Layer`, and `config` never sees `Cli`.
//!
//! Slanger's spellings (`-k/--app_key`, `-s/--secret`, `-a/--api_host`, `-w/--websocket_host`,
//! `-v/--verbose`, `-r/--redis_url`/`--redis_address`) are accepted so a Slanger command line
//! works unchanged. Slanger's TLS flags (`-p`, `-c`) have no meaning here, so no short flag
//! reuses those letters for something else.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::{Layer, Source};
use crate::printer::style::ColorChoice;

/// A local stand-in for Pusher Channels: the WebSocket protocol (v7) and the signed HTTP API on
/// one port, with no configuration needed.
#[derive(Debug, Clone, Default, Parser)]
#[command(name = "pusher-local", version, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    /// Address to listen on [default: 127.0.0.1]
    #[arg(long, env = "PUSHER_LOCAL_HOST", value_name = "IP")]
    pub host: Option<String>,

    /// Port for both the WebSocket endpoint and the HTTP API (0 picks a free one) [default: 6001]
    #[arg(long, env = "PUSHER_LOCAL_PORT")]
    pub port: Option<u16>,

    /// App id of the default app [default: 1; also PUSHER_APP_ID, PUSHER_URL, .env]
    #[arg(long = "app-id", alias = "app_id", value_name = "ID")]
    pub app_id: Option<String>,

    /// App key of the default app [default: app-key; also PUSHER_APP_KEY, PUSHER_URL, .env]
    #[arg(long = "key", alias = "app_key", alias = "app-key", short = 'k', value_name = "KEY")]
    pub key: Option<String>,

    /// App secret of the default app [default: app-secret; also PUSHER_APP_SECRET, PUSHER_URL, .env]
    #[arg(long, alias = "app-secret", short = 's', value_name = "SECRET")]
    pub secret: Option<String>,

    /// TOML file with settings and several apps (see README)
    #[arg(long, env = "PUSHER_LOCAL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Ignore --config, PUSHER_LOCAL_CONFIG and .env: built-in defaults, environment and flags only
    #[arg(long, env = "PUSHER_LOCAL_NO_CONFIG", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_config: bool,

    /// Serve the HTTP API on its own listener (Slanger's -a)
    #[arg(long = "api-host", alias = "api_host", short = 'a', env = "PUSHER_LOCAL_API_HOST", value_name = "HOST:PORT")]
    pub api_host: Option<String>,

    /// Serve WebSockets on their own listener (Slanger's -w)
    #[arg(
        long = "websocket-host",
        alias = "websocket_host",
        short = 'w',
        env = "PUSHER_LOCAL_WEBSOCKET_HOST",
        value_name = "HOST:PORT"
    )]
    pub websocket_host: Option<String>,

    /// Redis URL: run as one node of the cluster of every node on this Redis and prefix (also $REDIS_URL)
    #[arg(long = "redis-url", aliases = ["redis_url", "redis_address"], short = 'r', env = "PUSHER_LOCAL_REDIS_URL", value_name = "URL")]
    pub redis_url: Option<String>,

    /// Key and channel prefix on Redis: nodes with the same URL and prefix form one cluster
    #[arg(long = "redis-prefix", alias = "redis_prefix", env = "PUSHER_LOCAL_REDIS_PREFIX", value_name = "PREFIX")]
    pub redis_prefix: Option<String>,

    /// Print every frame and API call (-vv adds debug diagnostics on stderr)
    #[arg(long, short = 'v', action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Print only errors
    #[arg(long, short = 'q', conflicts_with = "verbose")]
    pub quiet: bool,

    /// Colour the output
    #[arg(long, value_enum, env = "PUSHER_LOCAL_COLOR", value_name = "WHEN")]
    pub color: Option<ColorChoice>,

    /// Show only matching lines: channel=GLOB, event=GLOB, socket=GLOB or app=GLOB (repeatable; same key = any, different keys = all)
    #[arg(long, value_name = "KEY=GLOB")]
    pub filter: Vec<String>,

    /// Print payloads whole and pretty-printed instead of cut to the terminal width
    #[arg(long)]
    pub full: bool,

    /// Log line format
    #[arg(long, value_enum, env = "PUSHER_LOCAL_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<crate::printer::Format>,

    /// Also write the log to this file (appended, no colour; -q keeps it off the terminal)
    #[arg(long, env = "PUSHER_LOCAL_LOG_FILE", value_name = "PATH")]
    pub log_file: Option<PathBuf>,

    /// Events kept per app for GET /pusher-local/events and the waits (0 keeps none)
    #[arg(long, env = "PUSHER_LOCAL_HISTORY", value_name = "N")]
    pub history: Option<usize>,

    /// Once the server accepts connections, write a JSON object (url, ws_url, ports, host, app_id, key, secret, pid) to this file; removed when it stops
    #[arg(long = "ready-file", env = "PUSHER_LOCAL_READY_FILE", value_name = "PATH")]
    pub ready_file: Option<PathBuf>,

    /// Once the server accepts connections, print the --ready-file JSON as the first line on stdout
    #[arg(long = "print-ready", env = "PUSHER_LOCAL_PRINT_READY", value_parser = clap::builder::BoolishValueParser::new())]
    pub print_ready: bool,

    /// Serve POST /pusher-local/auth and /pusher-local/user-auth, which sign any channel or user with the first app's secret, for front-end work with no backend (anyone on this machine can then authorize any channel)
    #[arg(long = "dev-auth", env = "PUSHER_LOCAL_DEV_AUTH", value_parser = clap::builder::BoolishValueParser::new())]
    pub dev_auth: bool,

    /// The token the debug console and the control API (/pusher-local/…) ask for; without it one is made up and printed when the HTTP API listens beyond loopback (--host 0.0.0.0), and none is needed on loopback
    #[arg(long = "control-token", env = "PUSHER_LOCAL_CONTROL_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub control_token: Option<String>,

    /// The user id --dev-auth signs for (a request's user_id parameter or X-Pusher-Local-User header overrides it) [default: dev-user]
    #[arg(long = "dev-user", env = "PUSHER_LOCAL_DEV_USER", value_name = "ID")]
    pub dev_user: Option<String>,

    /// That user's user_info, as JSON [default: {"name": ID}]
    #[arg(long = "dev-user-info", env = "PUSHER_LOCAL_DEV_USER_INFO", value_name = "JSON", value_parser = parse_json)]
    pub dev_user_info: Option<serde_json::Value>,

    /// Threads serving sockets and HTTP [default: half the cores, at least 1]
    #[arg(long, env = "PUSHER_LOCAL_WORKERS", value_name = "N")]
    pub workers: Option<usize>,

    /// Seconds of client silence before the server pings it (sent to clients as activity_timeout) [default: 120]
    #[arg(long, env = "PUSHER_LOCAL_ACTIVITY_TIMEOUT", value_name = "SECS")]
    pub activity_timeout: Option<u64>,

    /// Seconds to wait for a pong before closing with 4201 [default: 30]
    #[arg(long, env = "PUSHER_LOCAL_PONG_TIMEOUT", value_name = "SECS")]
    pub pong_timeout: Option<u64>,

    /// POST the default app's webhooks to this http:// or https:// URL (repeatable; comma-separated in the variable)
    #[arg(long, env = "PUSHER_LOCAL_WEBHOOK_URL", value_name = "URL", value_delimiter = ',')]
    pub webhook: Vec<String>,

    /// Seconds a failing webhook keeps being retried, with exponential backoff [default: 300]
    #[arg(long, env = "PUSHER_LOCAL_WEBHOOK_RETRY_FOR", value_name = "SECS")]
    pub webhook_retry_for: Option<u64>,

    /// Record every published event into the database, as NAME [default: rec-DATE-TIME]; write --record=NAME before a subcommand
    #[arg(long, value_name = "NAME", num_args = 0..=1)]
    pub record: Option<Option<String>>,

    /// The recordings database (SQLite) [default: ./pusher-local.db]
    #[arg(long, env = "PUSHER_LOCAL_DB", value_name = "PATH")]
    pub db: Option<PathBuf>,

    /// The fixtures folder, watched for new and edited fixtures [default: ./fixtures]
    #[arg(long, env = "PUSHER_LOCAL_FIXTURES", value_name = "DIR")]
    pub fixtures: Option<PathBuf>,

    /// Replay this fixture (name in the fixtures folder, or a file) once the server is up (repeatable)
    #[arg(long, value_name = "FIXTURE")]
    pub replay: Vec<String>,

    /// Serve this certificate chain (PEM, e.g. from mkcert, Valet or Herd) for wss:// and https:// instead of the generated one
    #[arg(long = "tls-cert", env = "PUSHER_LOCAL_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert
    #[arg(long = "tls-key", env = "PUSHER_LOCAL_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Where the local certificate authority is kept [default: the user's data folder, e.g. ~/.local/share/pusher-local]
    #[arg(long = "tls-dir", env = "PUSHER_LOCAL_TLS_DIR", value_name = "DIR")]
    pub tls_dir: Option<PathBuf>,

    /// Another name for the generated certificate besides localhost, 127.0.0.1, ::1 and --host (repeatable)
    #[arg(long = "tls-name", value_name = "NAME")]
    pub tls_names: Vec<String>,

    /// Refuse plain ws:// (4000) and http:// API calls (403) for every app, as hosted Pusher does for TLS-only apps
    #[arg(long = "tls-only", env = "PUSHER_LOCAL_TLS_ONLY", value_parser = clap::builder::BoolishValueParser::new())]
    pub tls_only: bool,

    /// Also trust this CA bundle (PEM) for outgoing TLS: capture, replay, webhooks, rediss:// (repeatable)
    #[arg(long = "ca-file", env = "PUSHER_LOCAL_CA_FILE", value_name = "FILE")]
    pub ca_files: Vec<PathBuf>,

    /// Accept any certificate on outgoing TLS connections (unsafe: for a server you know)
    #[arg(long)]
    pub insecure: bool,

    /// A tool command instead of running the server
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Tool commands instead of running the server. Each takes, after its name, only the flags it
/// uses (see [`Cli::lift_subcommand_flags`]).
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Inspect and resend the webhooks a running server kept in its outbox
    Webhooks {
        /// What to do
        #[command(subcommand)]
        action: WebhooksAction,
        /// The running server [default: http://HOST:PORT from --host, --port and the same settings as the server]
        #[arg(long, global = true, value_name = "URL")]
        url: Option<String>,
        /// Print the JSON the control API returns
        #[arg(long, global = true)]
        json: bool,
        /// Where the local server listens
        #[command(flatten)]
        server: ServerFlags,
        /// Settings files
        #[command(flatten)]
        settings: SettingsFlags,
        /// Outgoing TLS
        #[command(flatten)]
        trust: TrustFlags,
    },
    /// List, show, delete and export recordings (made with --record)
    Recordings {
        /// What to do
        #[command(subcommand)]
        action: RecordingsAction,
        /// The database and the fixtures folder
        #[command(flatten)]
        store: StoreFlags,
        /// Settings files
        #[command(flatten)]
        settings: SettingsFlags,
    },
    /// Publish a fixture or recording into a server through its signed HTTP API, with the original timing
    Replay(ReplayArgs),
    /// Connect to a Pusher-compatible server as a client and write what arrives as a fixture (Ctrl-C ends)
    Capture(CaptureArgs),
    /// Make the local certificate authority if needed, and print where it is, how to trust it, and its PEM
    Tls {
        /// Where the CA is kept
        #[command(flatten)]
        tls: TlsDirFlags,
        /// Settings files
        #[command(flatten)]
        settings: SettingsFlags,
    },
    /// Print a shell completion script on stdout (install.sh installs them)
    #[command(
        after_help = "For example: pusher-local completions bash > ~/.local/share/bash-completion/completions/pusher-local"
    )]
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) on stdout: pusher-local man | man -l -
    Man,
}

/// `--host` and `--port` after a subcommand: where the local server listens, as given to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "The local server")]
pub struct ServerFlags {
    /// The address the local server listens on [default: 127.0.0.1; also $PUSHER_LOCAL_HOST]
    #[arg(long, value_name = "IP", global = true)]
    pub host: Option<String>,
    /// The port the local server listens on [default: 6001; also $PUSHER_LOCAL_PORT]
    #[arg(long, value_name = "PORT", global = true)]
    pub port: Option<u16>,
}

/// `--config` and `--no-config` after a subcommand: the files read as the server reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Settings")]
pub struct SettingsFlags {
    /// TOML file with settings, read as the server reads it [also $PUSHER_LOCAL_CONFIG]
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Ignore --config, PUSHER_LOCAL_CONFIG and .env
    #[arg(long = "no-config", global = true)]
    pub no_config: bool,
}

/// `--db` and `--fixtures` after a subcommand.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Recordings and fixtures")]
pub struct StoreFlags {
    /// The recordings database (SQLite) [default: ./pusher-local.db; also $PUSHER_LOCAL_DB]
    #[arg(long, value_name = "PATH", global = true)]
    pub db: Option<PathBuf>,
    /// The fixtures folder [default: ./fixtures; also $PUSHER_LOCAL_FIXTURES]
    #[arg(long, value_name = "DIR", global = true)]
    pub fixtures: Option<PathBuf>,
}

/// `--ca-file` and `--insecure` after a subcommand: what outgoing TLS trusts.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
#[command(next_help_heading = "Outgoing TLS")]
pub struct TrustFlags {
    /// Also trust this CA bundle (PEM) (repeatable) [also $PUSHER_LOCAL_CA_FILE]
    #[arg(long = "ca-file", value_name = "FILE", global = true)]
    pub ca_files: Vec<PathBuf>,
    /// Accept any certificate (unsafe: for a server you know)
    #[arg(long, global = true)]
    pub insecure: bool,
}

/// `--tls-dir` after `tls`.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct TlsDirFlags {
    /// Where the local certificate authority is kept [default: the user's data folder, e.g. ~/.local/share/pusher-local; also $PUSHER_LOCAL_TLS_DIR]
    #[arg(long = "tls-dir", value_name = "DIR", global = true)]
    pub tls_dir: Option<PathBuf>,
}

impl Cli {
    /// Moves the flags given after a subcommand (`replay demo --port 6002`) into the fields the
    /// settings are resolved from, where they win over the same flag before the subcommand and
    /// over its environment variable (only the top-level flags read the environment).
    #[must_use]
    pub fn lift_subcommand_flags(mut self) -> Cli {
        let (server, settings, store, trust, tls) = match &self.command {
            None | Some(Command::Completions { .. } | Command::Man) => return self,
            Some(Command::Webhooks { server, settings, trust, .. }) => {
                (Some(server), Some(settings), None, Some(trust), None)
            }
            Some(Command::Recordings { store, settings, .. }) => (None, Some(settings), Some(store), None, None),
            Some(Command::Replay(args)) => {
                (Some(&args.server), Some(&args.settings), Some(&args.store), Some(&args.trust), None)
            }
            Some(Command::Capture(args)) => (Some(&args.server), Some(&args.settings), None, Some(&args.trust), None),
            Some(Command::Tls { tls, settings }) => (None, Some(settings), None, None, Some(tls)),
        };
        let (server, settings, store, trust, tls) =
            (server.cloned(), settings.cloned(), store.cloned(), trust.cloned(), tls.cloned());
        if let Some(server) = server {
            self.host = server.host.or(self.host);
            self.port = server.port.or(self.port);
        }
        if let Some(settings) = settings {
            self.config = settings.config.or(self.config);
            self.no_config |= settings.no_config;
        }
        if let Some(store) = store {
            self.db = store.db.or(self.db);
            self.fixtures = store.fixtures.or(self.fixtures);
        }
        if let Some(trust) = trust {
            if !trust.ca_files.is_empty() {
                self.ca_files = trust.ca_files;
            }
            self.insecure |= trust.insecure;
        }
        if let Some(tls) = tls {
            self.tls_dir = tls.tls_dir.or(self.tls_dir);
        }
        self
    }

    /// The flags' settings layer for `Config::resolve`; it also says which files are read.
    /// Relative paths stay relative: they are relative to the working directory.
    pub fn layer(&self) -> Layer {
        let flag = |value: &Option<String>, name| value.clone().map(|v| (v, Source::Flag(name)));
        let secs = |value: Option<u64>| value.map(Duration::from_secs);
        Layer {
            config_file: self.config.clone(),
            no_config: self.no_config,
            app_id: flag(&self.app_id, "--app-id"),
            key: flag(&self.key, "--key"),
            secret: flag(&self.secret, "--secret"),
            apps: Vec::new(),
            webhooks: self.webhook.clone(),
            tls_only: self.tls_only.then_some(true),
            host: self.host.clone(),
            port: self.port,
            api_host: self.api_host.clone(),
            websocket_host: self.websocket_host.clone(),
            workers: self.workers,
            activity_timeout: secs(self.activity_timeout),
            pong_timeout: secs(self.pong_timeout),
            outbox_capacity: None,
            max_message_bytes: None,
            max_body_bytes: None,
            webhook_retry_for: secs(self.webhook_retry_for),
            redis_url: self.redis_url.clone().map(|url| (url, "--redis-url / PUSHER_LOCAL_REDIS_URL")),
            redis_prefix: self.redis_prefix.clone(),
            verbose: (self.verbose > 0).then_some(self.verbose),
            quiet: self.quiet.then_some(true),
            color: self.color,
            filter: self.filter.clone(),
            full: self.full.then_some(true),
            log_format: self.log_format,
            log_file: self.log_file.clone(),
            ready_file: self.ready_file.clone(),
            history: self.history,
            print_ready: self.print_ready.then_some(true),
            dev_auth: self.dev_auth.then_some(true),
            dev_user: self.dev_user.clone(),
            dev_user_info: self.dev_user_info.clone(),
            control_token: self.control_token.clone(),
            record: self.record.clone().map(|name| name.unwrap_or_else(crate::recorder::default_name)),
            db: self.db.clone(),
            fixtures: self.fixtures.clone(),
            replay: self.replay.clone(),
            tls_dir: self.tls_dir.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            tls_names: self.tls_names.clone(),
            ca_files: self.ca_files.clone(),
            insecure: self.insecure.then_some(true),
        }
    }
}

/// `pusher-local recordings …`.
#[derive(Debug, Clone, Subcommand)]
pub enum RecordingsAction {
    /// One line per recording: name, start, events, length
    List,
    /// Every event of a recording, in order
    Show {
        /// The recording's name
        name: String,
    },
    /// Delete a recording and its events
    Delete {
        /// The recording's name
        name: String,
    },
    /// Write a recording as a fixture file
    Export {
        /// The recording's name
        name: String,
        /// The fixture file [default: FIXTURES/NAME.json]
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

/// `pusher-local replay …`: where to publish and how.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// A fixture file, a fixture name in the fixtures folder, or a recording name
    pub fixture: String,
    /// The server: http(s)://HOST:PORT or ws(s)://HOST:PORT, the same forms as capture [default: the local server: http://HOST:PORT from --host, --port and the same settings as the server]
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Hosted Pusher's cluster (eu, us2, ap1…): https://api-CLUSTER.pusher.com
    #[arg(long, value_name = "CLUSTER", conflicts_with = "url")]
    pub cluster: Option<String>,
    /// App id [default: the one pusher-local would use: --app-id, PUSHER_APP_ID, .env…]
    #[arg(long = "app-id", value_name = "ID")]
    pub app_id: Option<String>,
    /// App key [default: as the server]
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// App secret [default: as the server]
    #[arg(long, value_name = "SECRET")]
    pub secret: Option<String>,
    /// 2 = twice as fast, 0.5 = half speed, max = no waiting [default: 1]
    #[arg(long, value_name = "FACTOR|max")]
    pub speed: Option<crate::recorder::replay::Speed>,
    /// Start again after the last event, until Ctrl-C
    #[arg(long = "loop")]
    pub looped: bool,
    /// Publish events of channel OLD on NEW (repeatable)
    #[arg(long = "channel-map", value_name = "OLD=NEW")]
    pub channel_map: Vec<crate::recorder::replay::ChannelMap>,
    /// Start this long after the first event (90s, 1m30s, 1500ms, or seconds): earlier events are skipped, and the replay starts there at once
    #[arg(long, value_name = "OFFSET", value_parser = crate::recorder::replay::parse_offset)]
    pub from: Option<std::time::Duration>,
    /// Skip events more than this long after the first event
    #[arg(long, value_name = "OFFSET", value_parser = crate::recorder::replay::parse_offset)]
    pub to: Option<std::time::Duration>,
    /// Where the local server listens
    #[command(flatten)]
    pub server: ServerFlags,
    /// The database and the fixtures folder
    #[command(flatten)]
    pub store: StoreFlags,
    /// Settings files
    #[command(flatten)]
    pub settings: SettingsFlags,
    /// Outgoing TLS
    #[command(flatten)]
    pub trust: TrustFlags,
}

/// `pusher-local capture …`.
#[derive(Debug, Clone, clap::Args)]
pub struct CaptureArgs {
    /// The server: ws(s)://HOST:PORT or http(s)://HOST:PORT (or a full ws://…/app/KEY URL) [default: the local server: ws://HOST:PORT from --host, --port and the same settings as the server]
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Hosted Pusher's cluster (eu, us2, ap1…): wss://ws-CLUSTER.pusher.com
    #[arg(long, value_name = "CLUSTER", conflicts_with = "url")]
    pub cluster: Option<String>,
    /// App key [default: as the server]
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// App secret, to sign private and presence subscriptions [default: as the server, unless --key is given]
    #[arg(long, value_name = "SECRET")]
    pub secret: Option<String>,
    /// A channel to subscribe to (repeatable)
    #[arg(long = "channel", value_name = "NAME", required = true)]
    pub channels: Vec<String>,
    /// The fixture file to write
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: PathBuf,
    /// The user id presence channels are joined as [default: pusher-local-capture]
    #[arg(long = "user-id", value_name = "ID")]
    pub user_id: Option<String>,
    /// Where the local server listens
    #[command(flatten)]
    pub server: ServerFlags,
    /// Settings files
    #[command(flatten)]
    pub settings: SettingsFlags,
    /// Outgoing TLS
    #[command(flatten)]
    pub trust: TrustFlags,
}

/// `pusher-local webhooks …`.
#[derive(Debug, Clone, Subcommand)]
pub enum WebhooksAction {
    /// One line per kept webhook, oldest first
    List,
    /// One webhook in full: body, headers, every attempt
    Show {
        /// The webhook's id (from `list`)
        id: u64,
    },
    /// Send a webhook again, unchanged (same body, time_ms and signature)
    Resend {
        /// The webhook's id (from `list`)
        id: u64,
        /// Send to this URL instead of the ones it went to
        #[arg(long, value_name = "URL")]
        to: Option<String>,
    },
}

/// `--dev-user-info`: a JSON value.
fn parse_json(text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn slanger_command_line_parses() {
        let cli = Cli::try_parse_from([
            "pusher-local",
            "-k",
            "KEY",
            "-s",
            "SECRET",
            "-a",
            "0.0.0.0:4567",
            "-w",
            "0.0.0.0:8080",
            "-v",
        ])
        .unwrap();
        assert_eq!(cli.key.as_deref(), Some("KEY"));
        assert_eq!(cli.secret.as_deref(), Some("SECRET"));
        assert_eq!(cli.api_host.as_deref(), Some("0.0.0.0:4567"));
        assert_eq!(cli.websocket_host.as_deref(), Some("0.0.0.0:8080"));
        assert_eq!(cli.verbose, 1);
        let cli = Cli::try_parse_from(["pusher-local", "--app_key", "K", "--api_host", "127.0.0.1:1"]).unwrap();
        assert_eq!(cli.key.as_deref(), Some("K"));
    }

    #[test]
    fn webhooks_subcommand_parses_and_flat_flags_still_work() {
        let cli = Cli::try_parse_from(["pusher-local", "--port", "7000"]).unwrap();
        assert!(cli.command.is_none());
        let cli =
            Cli::try_parse_from(["pusher-local", "webhooks", "resend", "7", "--to", "http://127.0.0.1:1/h"]).unwrap();
        match cli.command {
            Some(Command::Webhooks {
                action: WebhooksAction::Resend { id: 7, to: Some(to) },
                url: None,
                json: false,
                ..
            }) => {
                assert_eq!(to, "http://127.0.0.1:1/h")
            }
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from(["pusher-local", "--webhook", "http://a/1", "--webhook", "http://b/2"]).unwrap();
        assert_eq!(cli.webhook, ["http://a/1", "http://b/2"]);
    }

    #[test]
    fn record_flag_with_and_without_a_name_and_the_recorder_subcommands() {
        assert_eq!(Cli::try_parse_from(["pusher-local"]).unwrap().record, None);
        assert_eq!(Cli::try_parse_from(["pusher-local", "--record"]).unwrap().record, Some(None));
        let cli = Cli::try_parse_from(["pusher-local", "--record", "demo", "--db", "x.db"]).unwrap();
        assert_eq!(cli.record, Some(Some("demo".into())));
        assert_eq!(cli.db.as_deref(), Some(std::path::Path::new("x.db")));
        let cli = Cli::try_parse_from([
            "pusher-local",
            "replay",
            "stock_ticker",
            "--speed",
            "max",
            "--loop",
            "--channel-map",
            "a=b",
            "--from",
            "10s",
        ])
        .unwrap();
        match cli.command {
            Some(Command::Replay(args)) => {
                assert_eq!(args.fixture, "stock_ticker");
                assert_eq!(args.speed, Some(crate::recorder::replay::Speed::Max));
                assert!(args.looped);
                assert_eq!(args.from, Some(std::time::Duration::from_secs(10)));
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["pusher-local", "replay", "x", "--speed", "fast"]).is_err());
        let cli =
            Cli::try_parse_from(["pusher-local", "recordings", "export", "demo", "-o", "fixtures/demo.json"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Recordings { action: RecordingsAction::Export { .. }, .. })));
        assert!(Cli::try_parse_from(["pusher-local", "capture", "-o", "f.json"]).is_err(), "a channel is required");
    }

    #[test]
    fn the_flags_layer_says_only_what_was_given_and_names_each_flag() {
        let layer = Cli::try_parse_from(["pusher-local"]).unwrap().layer();
        assert!(layer.app_id.is_none() && layer.port.is_none() && layer.verbose.is_none() && layer.quiet.is_none());
        assert!(layer.insecure.is_none() && layer.tls_only.is_none() && layer.record.is_none() && !layer.no_config);
        let layer = Cli::try_parse_from(["pusher-local", "--key", "k", "-vv", "--tls-only", "--activity-timeout", "9"])
            .unwrap()
            .layer();
        assert_eq!(layer.key, Some(("k".into(), Source::Flag("--key"))));
        assert_eq!((layer.verbose, layer.tls_only), (Some(2), Some(true)));
        assert_eq!(layer.activity_timeout, Some(Duration::from_secs(9)));
        let layer = Cli::try_parse_from(["pusher-local", "--record", "-r", "redis://h"]).unwrap().layer();
        assert!(layer.record.is_some_and(|name| name.starts_with("rec-")));
        assert_eq!(layer.redis_url, Some(("redis://h".into(), "--redis-url / PUSHER_LOCAL_REDIS_URL")));
        let layer = Cli::try_parse_from(["pusher-local", "--port", "0", "--ready-file", "r.json", "--print-ready"])
            .unwrap()
            .layer();
        assert_eq!((layer.port, layer.ready_file, layer.print_ready), (Some(0), Some("r.json".into()), Some(true)));
    }

    #[test]
    fn dev_auth_flags() {
        let layer = Cli::try_parse_from([
            "pusher-local",
            "--dev-auth",
            "--dev-user",
            "ada",
            "--dev-user-info",
            r#"{"name":"Ada"}"#,
        ])
        .unwrap()
        .layer();
        assert_eq!(layer.dev_auth, Some(true));
        assert_eq!(layer.dev_user.as_deref(), Some("ada"));
        assert_eq!(layer.dev_user_info, Some(serde_json::json!({"name": "Ada"})));
        assert!(Cli::try_parse_from(["pusher-local", "--dev-user-info", "{nope"]).is_err());
        assert_eq!(Cli::try_parse_from(["pusher-local"]).unwrap().layer().dev_auth, None);
    }

    fn lifted(args: &[&str]) -> Cli {
        let mut all = vec!["pusher-local"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap_or_else(|e| panic!("{args:?}: {e}")).lift_subcommand_flags()
    }

    #[test]
    fn flags_that_find_the_server_work_after_every_subcommand_and_win_over_those_before() {
        let cli = lifted(&["replay", "demo", "--speed", "2", "--port", "16010"]);
        assert_eq!(cli.port, Some(16010));
        assert!(matches!(cli.command, Some(Command::Replay(ref a)) if a.fixture == "demo"));
        assert_eq!(lifted(&["--port", "1", "replay", "x"]).port, Some(1), "before the subcommand still works");
        assert_eq!(lifted(&["--port", "1", "replay", "x", "--port", "2"]).port, Some(2), "after wins");
        let cli = lifted(&["webhooks", "list", "--port", "5", "--host", "127.0.0.2", "--insecure", "--no-config"]);
        assert_eq!(
            (cli.port, cli.host.as_deref(), cli.insecure, cli.no_config),
            (Some(5), Some("127.0.0.2"), true, true)
        );
        assert_eq!(lifted(&["webhooks", "--port", "5", "resend", "3"]).port, Some(5));
        let cli = lifted(&["capture", "--channel", "c", "-o", "f.json", "--port", "7", "--ca-file", "a.pem"]);
        assert_eq!((cli.port, cli.ca_files.as_slice()), (Some(7), [PathBuf::from("a.pem")].as_slice()));
        let cli = lifted(&["recordings", "list", "--db", "x.db", "--fixtures", "f", "--config", "c.toml"]);
        assert_eq!((cli.db, cli.fixtures, cli.config), (Some("x.db".into()), Some("f".into()), Some("c.toml".into())));
        assert_eq!(lifted(&["recordings", "--db", "x.db", "list"]).db, Some("x.db".into()));
        assert_eq!(lifted(&["--db", "x.db", "recordings", "list"]).db, Some("x.db".into()));
        assert_eq!(lifted(&["tls", "--tls-dir", "d"]).tls_dir, Some("d".into()));
        assert_eq!(lifted(&["--tls-dir", "d", "tls"]).tls_dir, Some("d".into()));
        let cli = lifted(&["--record=demo", "replay", "x", "--port", "3"]);
        assert_eq!((cli.record, cli.port), (Some(Some("demo".into())), Some(3)));
        // Flags that mean nothing to a subcommand are refused after it.
        for args in [
            &["recordings", "list", "--port", "5"][..],
            &["webhooks", "list", "--fixtures", "f"],
            &["tls", "--port", "5"],
            &["replay", "x", "--record=y"],
        ] {
            assert!(Cli::try_parse_from([&["pusher-local"][..], args].concat()).is_err(), "{args:?}");
        }
        assert!(matches!(
            lifted(&["completions", "bash"]).command,
            Some(Command::Completions { shell: clap_complete::Shell::Bash })
        ));
    }

    /// One subcommand (`path` from the top) as `pusher-local PATH --help` describes it: its help
    /// text, and the long flags listed there.
    fn help_of(path: &[&str]) -> (String, Vec<String>) {
        let mut command = Cli::command();
        command.build();
        let mut sub = &mut command;
        for name in path {
            sub = sub.find_subcommand_mut(name).unwrap_or_else(|| panic!("no subcommand {name}"));
        }
        let mut flags: Vec<String> = sub
            .get_arguments()
            .filter(|a| !a.is_hide_set())
            .filter_map(|a| a.get_long())
            .filter(|long| *long != "help")
            .map(|long| format!("--{long}"))
            .collect();
        flags.sort();
        (sub.render_long_help().to_string(), flags)
    }

    #[test]
    fn each_subcommand_help_lists_only_the_flags_it_uses() {
        let server = ["--host", "--port"];
        let settings = ["--config", "--no-config"];
        let store = ["--db", "--fixtures"];
        let trust = ["--ca-file", "--insecure"];
        let webhooks = [&["--url", "--json"][..], &server, &settings, &trust].concat();
        let replay_own = ["--url", "--cluster", "--app-id", "--key", "--secret", "--speed", "--loop", "--channel-map"];
        let replay = [&replay_own[..], &["--from", "--to"], &server, &store, &settings, &trust].concat();
        let capture_own = ["--url", "--cluster", "--key", "--secret", "--channel", "--output", "--user-id"];
        let capture = [&capture_own[..], &server, &settings, &trust].concat();
        for (path, expected) in [
            (&["webhooks"][..], webhooks.clone()),
            (&["webhooks", "list"], webhooks.clone()),
            (&["webhooks", "resend"], [&webhooks[..], &["--to"]].concat()),
            (&["recordings"], [&store[..], &settings].concat()),
            (&["recordings", "export"], [&store[..], &settings, &["--output"]].concat()),
            (&["replay"], replay),
            (&["capture"], capture),
            (&["tls"], [&["--tls-dir"][..], &settings].concat()),
            (&["completions"], vec![]),
            (&["man"], vec![]),
        ] {
            let (help, flags) = help_of(path);
            let mut expected: Vec<String> = expected.iter().map(|f| (*f).to_owned()).collect();
            expected.sort();
            assert_eq!(flags, expected, "{path:?} --help:\n{help}");
            for flag in &expected {
                assert!(help.contains(flag.as_str()), "{flag} missing from {path:?} --help:\n{help}");
            }
        }
        let (webhooks_help, _) = help_of(&["webhooks"]);
        assert!(!webhooks_help.contains("fixtures") && !webhooks_help.contains("--record"), "{webhooks_help}");
        let (replay_help, _) = help_of(&["replay"]);
        assert!(replay_help.contains("after the first event"), "--from/--to say where they count from: {replay_help}");
        let (completions_help, _) = help_of(&["completions"]);
        for shell in ["bash", "zsh", "fish", "powershell"] {
            assert!(completions_help.contains(shell), "{completions_help}");
        }
    }
}
