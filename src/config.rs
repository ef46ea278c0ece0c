//! `Config`: every setting, resolved once from its layers and then immutable.
//!
//! A [`Layer`] is what one source says, `None` (or an empty list) where it says nothing.
//! [`Config::resolve`] applies four of them onto `Config::default()`, once each, later wins:
//!
//! 1. `.env` in the working directory: the default app's credentials (`PUSHER_APP_*`, as Laravel
//!    and Rails keep them);
//! 2. `--config FILE` ([`FileConfig`], TOML): settings and apps, its paths relative to the file;
//! 3. the environment (`PUSHER_URL`, `PUSHER_APP_*`, `REDIS_URL`);
//! 4. the flags, made by the command line (`Cli::layer`, with the `PUSHER_LOCAL_*` variables
//!    clap reads for them), which also say which files are read (`--config`, `--no-config`).
//!
//! This module knows nothing of the command line: the flags arrive as a `Layer`. Where to listen,
//! the Redis URL and the filter are checked once the last layer has spoken, so a bad value that
//! a later layer replaces is no error. For the default app's id, key and secret the layer each
//! value came from is kept, so the banner can say. The app's own `PUSHER_HOST`, `PUSHER_PORT`
//! and `PUSHER_SCHEME` ([`AppEndpoint`]) are not a layer: they are where the app will send, and
//! give the port only when no layer asks for one.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::apps::{App, AppId, Apps, Limits, Secret};
use crate::printer::filter::FilterError;
use crate::printer::style::ColorChoice;
use crate::printer::{Filter, Format};

/// Where a credential came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Built into pusher-local.
    Default,
    /// A `.env` file, and the variable in it.
    DotEnv(PathBuf, &'static str),
    /// The `--config` file.
    ConfigFile(PathBuf),
    /// An environment variable.
    Env(&'static str),
    /// A command-line flag.
    Flag(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("built-in default"),
            Source::DotEnv(path, var) => write!(f, "{var} in {}", path.display()),
            Source::ConfigFile(path) => write!(f, "{}", path.display()),
            Source::Env(var) => write!(f, "${var}"),
            Source::Flag(flag) => write!(f, "{flag}"),
        }
    }
}

/// Where the default app's credentials came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialSources {
    /// The app id's source.
    pub id: Source,
    /// The key's source.
    pub key: Source,
    /// The secret's source.
    pub secret: Source,
}

/// The listeners to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// WebSocket and HTTP API on one address.
    Combined(SocketAddr),
    /// Separate listeners (Slanger's `-a` / `-w`).
    Split {
        /// The HTTP API.
        api: SocketAddr,
        /// WebSockets.
        websocket: SocketAddr,
    },
}

impl Listen {
    /// `(HTTP API, WebSocket)` addresses (the same one when combined).
    pub fn addrs(&self) -> (SocketAddr, SocketAddr) {
        match *self {
            Listen::Combined(addr) => (addr, addr),
            Listen::Split { api, websocket } => (api, websocket),
        }
    }
}

/// The token the console and the control API ask for ([`Config::control_token`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlToken {
    /// The token.
    pub token: Secret,
    /// Made up at start-up (the server listens beyond loopback and none was given).
    pub generated: bool,
}

impl ControlToken {
    /// 128 random bits, in hex.
    pub fn generate() -> Self {
        let bytes: [u8; 16] = rand::random();
        let token = bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        Self { token: Secret::new(token), generated: true }
    }
}

/// The resolved settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen.
    pub listen: Listen,
    /// The apps; the first is the default app shown in the banner.
    pub apps: Vec<App>,
    /// Where the default app's credentials came from.
    pub sources: CredentialSources,
    /// Threads serving sockets and HTTP; `None`: [`default_workers`].
    pub workers: Option<usize>,
    /// Client silence before the server pings (and the `activity_timeout` sent to clients).
    pub activity_timeout: Duration,
    /// How long to wait for a pong before closing with 4201.
    pub pong_timeout: Duration,
    /// Frames that may wait for one socket before it is closed with 4100.
    pub outbox_capacity: usize,
    /// Events kept per app for the control API's history and waits (0: none).
    pub history: usize,
    /// Largest WebSocket message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Largest HTTP API request body, in bytes.
    pub max_body_bytes: u64,
    /// Allowed clock difference for signed HTTP requests.
    pub signature_window: Duration,
    /// How long shutdown waits for sockets to close.
    pub shutdown_grace: Duration,
    /// `-v` count.
    pub verbose: u8,
    /// `-q`.
    pub quiet: bool,
    /// Colour choice.
    pub color: ColorChoice,
    /// Which log lines to show.
    pub filter: Filter,
    /// Payloads whole and pretty-printed.
    pub full: bool,
    /// Text or JSON lines.
    pub log_format: Format,
    /// A file that gets the log too.
    pub log_file: Option<PathBuf>,
    /// `--ready-file`: where the ready JSON is written once the server accepts connections
    /// (removed when it stops).
    pub ready_file: Option<PathBuf>,
    /// `--print-ready`: the ready JSON as the first line on stdout.
    pub print_ready: bool,
    /// `--dev-auth`: serve `POST /pusher-local/auth` and `/pusher-local/user-auth`, signing for
    /// any channel and user with the first app's secret (front-end work with no backend).
    pub dev_auth: bool,
    /// `--dev-user`: the user `--dev-auth` signs for when a request names none.
    pub dev_user: String,
    /// `--control-token`, or one made up at start-up when the HTTP API listens beyond loopback:
    /// then the console and the control API (`/pusher-local/…`) answer only with it.
    pub control_token: Option<ControlToken>,
    /// `--dev-user-info`: that user's `user_info` (none: `{"name": <user id>}`).
    pub dev_user_info: Option<serde_json::Value>,
    /// Webhook delivery timing and sizes (the URLs are per app).
    pub webhooks: crate::webhook::Settings,
    /// `--record`: the recording's name (none = not recording).
    pub record: Option<String>,
    /// The recordings database.
    pub db: PathBuf,
    /// The fixtures folder.
    pub fixtures: PathBuf,
    /// Fixtures to replay at start-up.
    pub replay: Vec<String>,
    /// Redis for several nodes as one; `None` runs the embedded single-node broker.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key and channel: nodes on one Redis with one prefix are a cluster.
    pub redis_prefix: String,
    /// The server certificate (generated by the local CA, or the user's files) and what
    /// outgoing connections trust.
    pub tls: crate::tls::Settings,
    /// Where the app's own settings say Pusher is (`PUSHER_HOST`, `PUSHER_PORT`, `PUSHER_SCHEME`).
    pub app_endpoint: AppEndpoint,
    /// Set when the port was taken from the app's `PUSHER_PORT` (no port was asked for).
    pub port_source: Option<Source>,
}

/// Where the app's `.env` (or environment) says its Pusher server is, with where each value
/// came from. pusher-local listens where the app expects when no port was asked for, and warns
/// when the app would send elsewhere ([`Config::endpoint_warnings`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppEndpoint {
    /// `PUSHER_HOST`.
    pub host: Option<(String, Source)>,
    /// `PUSHER_PORT`.
    pub port: Option<(String, Source)>,
    /// `PUSHER_SCHEME`.
    pub scheme: Option<(String, Source)>,
}

impl AppEndpoint {
    /// Reads `PUSHER_HOST`, `PUSHER_PORT` and `PUSHER_SCHEME` from `.env` in `cwd` (unless
    /// `no_config`), then from the environment, which wins. A `.env` that does not parse is
    /// reported by the credentials layer; here it is skipped.
    fn read(cwd: &Path, env: &impl Environment, no_config: bool) -> AppEndpoint {
        const VARS: [&str; 3] = ["PUSHER_HOST", "PUSHER_PORT", "PUSHER_SCHEME"];
        let mut found: [Option<(String, Source)>; 3] = Default::default();
        let dotenv = cwd.join(".env");
        if !no_config && dotenv.is_file() {
            for (key, value) in dotenvy::from_path_iter(&dotenv).into_iter().flatten().flatten() {
                if let Some(i) = VARS.iter().position(|v| *v == key).filter(|_| !value.is_empty()) {
                    found[i] = Some((value, Source::DotEnv(dotenv.clone(), VARS[i])));
                }
            }
        }
        for (i, var) in VARS.iter().enumerate() {
            if let Some(value) = env.var(var) {
                found[i] = Some((value, Source::Env(var)));
            }
        }
        let [host, port, scheme] = found;
        AppEndpoint { host, port, scheme }
    }
}

/// `*.pusher.com` and `*.pusherapp.com`: hosted Pusher.
fn is_real_pusher(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    ["pusher.com", "pusherapp.com"].iter().any(|d| host == *d || host.ends_with(&format!(".{d}")))
}

/// The user `--dev-auth` signs for when neither `--dev-user` nor the request names one.
pub const DEFAULT_DEV_USER: &str = "dev-user";
/// The default recordings database, relative to the working directory.
pub const DEFAULT_DB: &str = "pusher-local.db";
/// The default fixtures folder, relative to the working directory.
pub const DEFAULT_FIXTURES: &str = "fixtures";

/// The default Redis key prefix.
pub const DEFAULT_REDIS_PREFIX: &str = "pusher-local";

/// The default app id: numeric, because the Python SDK requires that.
pub const DEFAULT_APP_ID: &str = "1";
/// The default app key.
pub const DEFAULT_APP_KEY: &str = "app-key";
/// The default app secret.
pub const DEFAULT_APP_SECRET: &str = "app-secret";
/// The default port (what Laravel WebSockets and soketi use, so existing setups match).
pub const DEFAULT_PORT: u16 = 6001;

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: Listen::Combined(SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT))),
            apps: vec![App::new(DEFAULT_APP_ID, DEFAULT_APP_KEY, DEFAULT_APP_SECRET)],
            sources: CredentialSources { id: Source::Default, key: Source::Default, secret: Source::Default },
            workers: None,
            activity_timeout: Duration::from_secs(120),
            pong_timeout: Duration::from_secs(30),
            outbox_capacity: 4096,
            history: crate::history::DEFAULT_CAPACITY,
            max_message_bytes: 256 * 1024,
            max_body_bytes: 1024 * 1024,
            signature_window: Duration::from_secs(600),
            shutdown_grace: Duration::from_secs(3),
            verbose: 0,
            quiet: false,
            color: ColorChoice::Auto,
            filter: Filter::default(),
            full: false,
            log_format: Format::Text,
            log_file: None,
            ready_file: None,
            print_ready: false,
            dev_auth: false,
            dev_user: DEFAULT_DEV_USER.into(),
            control_token: None,
            dev_user_info: None,
            webhooks: crate::webhook::Settings::default(),
            record: None,
            db: PathBuf::from(DEFAULT_DB),
            fixtures: PathBuf::from(DEFAULT_FIXTURES),
            replay: Vec::new(),
            redis_url: None,
            redis_prefix: DEFAULT_REDIS_PREFIX.to_owned(),
            tls: crate::tls::Settings::default(),
            app_endpoint: AppEndpoint::default(),
            port_source: None,
        }
    }
}

/// The TOML file (`--config`). Unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Listen address.
    pub host: Option<String>,
    /// Listen port.
    pub port: Option<u16>,
    /// Threads serving sockets and HTTP.
    pub workers: Option<usize>,
    /// Seconds.
    pub activity_timeout: Option<u64>,
    /// Seconds.
    pub pong_timeout: Option<u64>,
    /// Frames.
    pub outbox_capacity: Option<usize>,
    /// Events kept per app.
    pub history: Option<usize>,
    /// Bytes.
    pub max_message_bytes: Option<usize>,
    /// Bytes.
    pub max_body_bytes: Option<u64>,
    /// Seconds a failing webhook keeps being retried.
    pub webhook_retry_for: Option<u64>,
    /// The recordings database.
    pub db: Option<PathBuf>,
    /// The fixtures folder.
    pub fixtures: Option<PathBuf>,
    /// The folder of the local CA.
    pub tls_dir: Option<PathBuf>,
    /// A certificate chain (PEM) to serve instead of the generated one.
    pub tls_cert: Option<PathBuf>,
    /// Its private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Extra names for the generated certificate.
    #[serde(default)]
    pub tls_names: Vec<String>,
    /// The token the console and the control API ask for.
    pub control_token: Option<String>,
    /// Apps; when given they replace the default app.
    #[serde(default)]
    pub apps: Vec<App>,
}

/// What one source says: `.env`, the `--config` file, the environment or the flags. `None`, or
/// an empty list, says nothing; [`Config::resolve`] applies the layers in order, later wins.
/// Relative paths are relative to the working directory (the file's layer has already made its
/// own relative to the file).
#[derive(Debug, Clone, Default)]
pub struct Layer {
    /// `--config`: the TOML file to read. Only the flags say which files are read.
    pub config_file: Option<PathBuf>,
    /// `--no-config`: read neither the config file nor `.env`.
    pub no_config: bool,
    /// The default app's id, and where it came from.
    pub app_id: Option<(String, Source)>,
    /// The default app's key, and where it came from.
    pub key: Option<(String, Source)>,
    /// The default app's secret, and where it came from.
    pub secret: Option<(String, Source)>,
    /// Apps; when given they replace the apps so far (the first is the default app).
    pub apps: Vec<App>,
    /// The default app's webhook URLs; when given they replace its URLs so far.
    pub webhooks: Vec<String>,
    /// Whether every app refuses plain `ws://` and `http://`.
    pub tls_only: Option<bool>,
    /// Listen address: an IP, or `localhost`.
    pub host: Option<String>,
    /// Listen port.
    pub port: Option<u16>,
    /// The HTTP API's own listener, `HOST:PORT`.
    pub api_host: Option<String>,
    /// The WebSockets' own listener, `HOST:PORT`.
    pub websocket_host: Option<String>,
    /// Threads serving sockets and HTTP.
    pub workers: Option<usize>,
    /// Client silence before the server pings.
    pub activity_timeout: Option<Duration>,
    /// How long to wait for a pong.
    pub pong_timeout: Option<Duration>,
    /// Frames that may wait for one socket.
    pub outbox_capacity: Option<usize>,
    /// Events kept per app.
    pub history: Option<usize>,
    /// Largest WebSocket message, in bytes.
    pub max_message_bytes: Option<usize>,
    /// Largest HTTP API request body, in bytes.
    pub max_body_bytes: Option<u64>,
    /// How long a failing webhook keeps being retried.
    pub webhook_retry_for: Option<Duration>,
    /// The Redis URL, and the setting it came from (for the error message).
    pub redis_url: Option<(String, &'static str)>,
    /// The Redis key and channel prefix.
    pub redis_prefix: Option<String>,
    /// `-v` count.
    pub verbose: Option<u8>,
    /// Only errors.
    pub quiet: Option<bool>,
    /// Colour choice.
    pub color: Option<ColorChoice>,
    /// `KEY=GLOB` rules of which log lines to show; added to the ones so far.
    pub filter: Vec<String>,
    /// Payloads whole and pretty-printed.
    pub full: Option<bool>,
    /// Text or JSON lines.
    pub log_format: Option<Format>,
    /// A file that gets the log too.
    pub log_file: Option<PathBuf>,
    /// Where the ready JSON is written.
    pub ready_file: Option<PathBuf>,
    /// The ready JSON on stdout.
    pub print_ready: Option<bool>,
    /// Serve the dev auth endpoints.
    pub dev_auth: Option<bool>,
    /// The dev auth user id.
    pub dev_user: Option<String>,
    /// The dev auth user's `user_info`.
    pub dev_user_info: Option<serde_json::Value>,
    /// The token the console and the control API ask for.
    pub control_token: Option<String>,
    /// Record, under this name.
    pub record: Option<String>,
    /// The recordings database.
    pub db: Option<PathBuf>,
    /// The fixtures folder.
    pub fixtures: Option<PathBuf>,
    /// Fixtures to replay at start-up; added to the ones so far.
    pub replay: Vec<String>,
    /// The folder of the local CA.
    pub tls_dir: Option<PathBuf>,
    /// A certificate chain (PEM) to serve instead of the generated one; given with `tls_key`,
    /// the pair replaces the pair so far.
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Extra names for the generated certificate; added to the ones so far.
    pub tls_names: Vec<String>,
    /// CA bundles (PEM) outgoing connections also trust; added to the ones so far.
    pub ca_files: Vec<PathBuf>,
    /// Whether outgoing connections accept any certificate.
    pub insecure: Option<bool>,
}

/// A setting could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The named config file could not be read.
    #[error("cannot read config file {path}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid.
    #[error("invalid config file {path}: {message}")]
    ParseFile {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// `.env` could not be parsed.
    #[error("cannot parse {path}: {message}")]
    DotEnv {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// `PUSHER_URL` is not `http://KEY:SECRET@HOST/apps/ID`.
    #[error("PUSHER_URL={url:?} is not of the form http://KEY:SECRET@HOST/apps/ID: {reason}")]
    PusherUrl {
        /// The value.
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// An address flag is not `HOST:PORT` / an IP.
    #[error("{setting}={value:?} is not a valid {expected}")]
    Address {
        /// The flag or key.
        setting: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// Some value is out of range.
    #[error("{setting} {problem}")]
    Invalid {
        /// The flag or key.
        setting: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// Two apps clash.
    #[error(transparent)]
    Apps(#[from] crate::apps::AppsError),
    /// A `--filter` is not `KEY=GLOB`.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// The Redis URL does not parse.
    #[error("{setting}={value:?} is not a Redis URL (redis://HOST:PORT/DB): {reason}")]
    RedisUrl {
        /// The flag or variable it came from.
        setting: &'static str,
        /// Its value.
        value: String,
        /// The parser's reason.
        reason: String,
    },
}

/// `url` with its password (if any) replaced by `***`.
pub fn redact_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // A URL with a password has a host, so setting one is accepted.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Reads environment variables; injectable so tests are hermetic.
pub trait Environment {
    /// The variable's value, if set and non-empty.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy)]
pub struct ProcessEnv;

impl Environment for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl<F: Fn(&str) -> Option<String>> Environment for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// Credentials for the default app from one layer.
#[derive(Debug, Default)]
struct Credentials {
    id: Option<(String, Source)>,
    key: Option<(String, Source)>,
    secret: Option<(String, Source)>,
}

impl Credentials {
    fn overlay(&mut self, other: Credentials) {
        if other.id.is_some() {
            self.id = other.id;
        }
        if other.key.is_some() {
            self.key = other.key;
        }
        if other.secret.is_some() {
            self.secret = other.secret;
        }
    }

    /// A layer saying only these credentials.
    fn into_layer(self) -> Layer {
        Layer { app_id: self.id, key: self.key, secret: self.secret, ..Layer::default() }
    }
}

/// `http://KEY:SECRET@HOST/apps/ID` → credentials.
fn parse_pusher_url(value: &str, source: impl Fn() -> Source) -> Result<Credentials, ConfigError> {
    let bad = |reason| ConfigError::PusherUrl { url: value.to_owned(), reason };
    let url = url::Url::parse(value).map_err(|_| bad("not a URL"))?;
    let key = url.username();
    let secret = url.password().ok_or_else(|| bad("no KEY:SECRET before the host"))?;
    let id = url
        .path()
        .strip_prefix("/apps/")
        .map(|id| id.trim_end_matches('/'))
        .filter(|id| !id.is_empty() && !id.contains('/'))
        .ok_or_else(|| bad("the path must be /apps/ID"))?;
    if key.is_empty() {
        return Err(bad("no KEY before the secret"));
    }
    let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
    Ok(Credentials {
        id: Some((decode(id), source())),
        key: Some((decode(key), source())),
        secret: Some((decode(secret), source())),
    })
}

/// The app variables Laravel (`PUSHER_APP_*`) and Rails (`PUSHER_KEY`...) apps use.
const ID_VARS: [&str; 1] = ["PUSHER_APP_ID"];
const KEY_VARS: [&str; 2] = ["PUSHER_APP_KEY", "PUSHER_KEY"];
const SECRET_VARS: [&str; 2] = ["PUSHER_APP_SECRET", "PUSHER_SECRET"];

fn credentials_from(
    get: impl Fn(&str) -> Option<String>,
    source: impl Fn(&'static str) -> Source,
) -> Result<Credentials, ConfigError> {
    let mut creds = match get("PUSHER_URL") {
        Some(url) => parse_pusher_url(&url, || source("PUSHER_URL"))?,
        None => Credentials::default(),
    };
    let pick = |vars: &[&'static str]| vars.iter().find_map(|v| get(v).map(|value| (value, source(v))));
    creds.overlay(Credentials { id: pick(&ID_VARS), key: pick(&KEY_VARS), secret: pick(&SECRET_VARS) });
    Ok(creds)
}

fn dotenv_credentials(path: &Path) -> Result<Credentials, ConfigError> {
    let iter = match dotenvy::from_path_iter(path) {
        Ok(iter) => iter,
        Err(_) => return Ok(Credentials::default()),
    };
    /// dotenvy's error where a person looks: `line 3, column 12: unexpected 'd' (quote a value
    /// that has spaces) in the value of KEY` (never the value itself: it may be a secret).
    /// dotenvy gives the text it was parsing (a whole line, or only the value after `NAME=`)
    /// and an index into it, so the line and column come from finding that text in the file.
    fn located(text: &str, fragment: &str, index: usize) -> Option<String> {
        let starts_here = |at: usize| {
            let before = text[text[..at].rfind('\n').map_or(0, |n| n + 1)..at].trim();
            before.is_empty() || before.ends_with('=')
        };
        let start = text.match_indices(fragment).map(|(at, _)| at).find(|&at| starts_here(at))?;
        // An unclosed quote is reported where it opens (dotenvy points at the end).
        let mut open: Option<(usize, char)> = None;
        let mut escaped = false;
        for (at, c) in fragment.char_indices() {
            match open {
                Some(_) if escaped => escaped = false,
                Some((_, '"')) if c == '\\' => escaped = true,
                Some((_, quote)) if c == quote => open = None,
                Some(_) => {}
                None if c == '"' || c == '\'' => open = Some((at, c)),
                None => {}
            }
        }
        let at = start
            + open.map_or_else(|| fragment.char_indices().nth(index).map_or(fragment.len(), |(at, _)| at), |o| o.0);
        let line_start = text[..at].rfind('\n').map_or(0, |n| n + 1);
        let line = text[line_start..].lines().next().unwrap_or_default();
        // The variable whose value it is in, when it is after the `=`.
        let name = line.split_once('=').filter(|(name, _)| line_start + name.len() < at).map(|(name, _)| {
            let name = name.trim();
            name.strip_prefix("export ").unwrap_or(name).trim().to_owned()
        });
        let what = match (open, text[at..].chars().next()) {
            (Some(_), _) => "unclosed quote".to_owned(),
            (None, Some(c)) if c != '\n' && c != '\r' => {
                let spaced = name.is_some() && text[line_start..at].ends_with([' ', '\t']);
                format!("unexpected {c:?}{}", if spaced { " (quote a value that has spaces)" } else { "" })
            }
            (None, _) => "unexpected end of line".to_owned(),
        };
        let (number, column) = (text[..at].matches('\n').count() + 1, text[line_start..at].chars().count() + 1);
        let whose = name.map(|name| format!(" in the value of {name}")).unwrap_or_default();
        Some(format!("line {number}, column {column}: {what}{whose}"))
    }
    let mut vars = std::collections::HashMap::new();
    for item in iter {
        let (k, v) = item.map_err(|e| {
            let message = match &e {
                dotenvy::Error::LineParse(fragment, index) => std::fs::read_to_string(path)
                    .ok()
                    .and_then(|text| located(&text, fragment, *index))
                    .unwrap_or_else(|| e.to_string()),
                _ => e.to_string(),
            };
            ConfigError::DotEnv { path: path.to_owned(), message }
        })?;
        vars.insert(k, v);
    }
    credentials_from(
        |name| vars.get(name).filter(|v| !v.is_empty()).cloned(),
        |var| Source::DotEnv(path.to_owned(), var),
    )
}

fn socket_addr(setting: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.to_socket_addrs().ok().and_then(|mut addrs| addrs.next()).ok_or_else(|| ConfigError::Address {
        setting,
        value: value.to_owned(),
        expected: "HOST:PORT address",
    })
}

/// The environment's layer: the default app's credentials (`PUSHER_URL`, then `PUSHER_APP_*`),
/// and `REDIS_URL`, where hosting platforms and docker-compose files put it.
fn env_layer(env: &impl Environment) -> Result<Layer, ConfigError> {
    let credentials = credentials_from(|name| env.var(name), Source::Env)?;
    Ok(Layer { redis_url: env.var("REDIS_URL").map(|url| (url, "REDIS_URL")), ..credentials.into_layer() })
}

impl FileConfig {
    /// Reads the file at `path` (relative to `cwd`) as a layer.
    fn read_layer(path: &Path, cwd: &Path) -> Result<Layer, ConfigError> {
        let path = if path.is_absolute() { path.to_owned() } else { cwd.join(path) };
        let text =
            std::fs::read_to_string(&path).map_err(|source| ConfigError::ReadFile { path: path.clone(), source })?;
        let file: FileConfig =
            toml::from_str(&text).map_err(|e| ConfigError::ParseFile { path: path.clone(), message: e.to_string() })?;
        Ok(file.into_layer(&path, cwd))
    }

    /// The file read from `path` as a layer: its relative paths relative to the file, and its
    /// first app, if any, the default app.
    fn into_layer(self, path: &Path, cwd: &Path) -> Layer {
        let beside = |p: PathBuf| if p.is_absolute() { p } else { path.parent().unwrap_or(cwd).join(p) };
        let first = self.apps.first();
        let from_file = |value: String| (value, Source::ConfigFile(path.to_owned()));
        let (app_id, key, secret) = (
            first.map(|app| from_file(app.id.to_string())),
            first.map(|app| from_file(app.key.clone())),
            first.map(|app| from_file(app.secret.expose().to_owned())),
        );
        let secs = |v: Option<u64>| v.map(Duration::from_secs);
        Layer {
            app_id,
            key,
            secret,
            apps: self.apps,
            host: self.host,
            port: self.port,
            workers: self.workers,
            activity_timeout: secs(self.activity_timeout),
            pong_timeout: secs(self.pong_timeout),
            outbox_capacity: self.outbox_capacity,
            history: self.history,
            max_message_bytes: self.max_message_bytes,
            max_body_bytes: self.max_body_bytes,
            webhook_retry_for: secs(self.webhook_retry_for),
            db: self.db.map(beside),
            fixtures: self.fixtures.map(beside),
            tls_dir: self.tls_dir.map(beside),
            tls_cert: self.tls_cert.map(beside),
            tls_key: self.tls_key.map(beside),
            tls_names: self.tls_names,
            control_token: self.control_token,
            ..Layer::default()
        }
    }
}

/// `slot = value` when the layer says something.
fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

/// The settings while the layers are applied: the `Config` so far, and what is checked only once
/// the last layer has spoken (so a bad value that a later layer replaces is no error).
struct Draft<'a> {
    /// Relative paths of the layers are relative to this.
    cwd: &'a Path,
    config: Config,
    host: Option<String>,
    port: Option<u16>,
    api_host: Option<String>,
    websocket_host: Option<String>,
    redis_url: Option<(String, &'static str)>,
    filter: Vec<String>,
    control_token: Option<String>,
}

impl<'a> Draft<'a> {
    /// The defaults, their paths in `cwd`.
    fn new(cwd: &'a Path) -> Self {
        let mut config = Config::default();
        config.db = cwd.join(&config.db);
        config.fixtures = cwd.join(&config.fixtures);
        Draft {
            cwd,
            config,
            host: None,
            port: None,
            api_host: None,
            websocket_host: None,
            redis_url: None,
            control_token: None,
            filter: vec![],
        }
    }

    /// Applies one layer over the ones before it.
    fn apply(&mut self, layer: Layer) {
        let cwd = self.cwd;
        let in_cwd = |p: PathBuf| if p.is_absolute() { p } else { cwd.join(p) };
        let c = &mut self.config;
        if !layer.apps.is_empty() {
            c.apps = layer.apps;
        }
        let default_app = &mut c.apps[0];
        if let Some((id, source)) = layer.app_id {
            default_app.id = AppId::new(id);
            c.sources.id = source;
        }
        if let Some((key, source)) = layer.key {
            default_app.key = key;
            c.sources.key = source;
        }
        if let Some((secret, source)) = layer.secret {
            default_app.secret = Secret::new(secret);
            c.sources.secret = source;
        }
        if !layer.webhooks.is_empty() {
            default_app.webhooks = layer.webhooks.into_iter().map(crate::webhook::Target::new).collect();
        }
        if let Some(tls_only) = layer.tls_only {
            c.apps.iter_mut().for_each(|app| app.tls_only = tls_only);
        }
        self.host = layer.host.or(self.host.take());
        self.port = layer.port.or(self.port);
        self.api_host = layer.api_host.or(self.api_host.take());
        self.websocket_host = layer.websocket_host.or(self.websocket_host.take());
        self.redis_url = layer.redis_url.or(self.redis_url.take());
        self.filter.extend(layer.filter);
        set(&mut c.workers, layer.workers.map(Some));
        set(&mut c.activity_timeout, layer.activity_timeout);
        set(&mut c.pong_timeout, layer.pong_timeout);
        set(&mut c.outbox_capacity, layer.outbox_capacity);
        set(&mut c.history, layer.history);
        set(&mut c.max_message_bytes, layer.max_message_bytes);
        set(&mut c.max_body_bytes, layer.max_body_bytes);
        set(&mut c.webhooks.retry_for, layer.webhook_retry_for);
        set(&mut c.redis_prefix, layer.redis_prefix);
        set(&mut c.verbose, layer.verbose);
        set(&mut c.quiet, layer.quiet);
        set(&mut c.color, layer.color);
        set(&mut c.full, layer.full);
        set(&mut c.log_format, layer.log_format);
        set(&mut c.log_file, layer.log_file.map(|p| Some(in_cwd(p))));
        set(&mut c.ready_file, layer.ready_file.map(|p| Some(in_cwd(p))));
        set(&mut c.print_ready, layer.print_ready);
        set(&mut c.dev_auth, layer.dev_auth);
        set(&mut c.dev_user, layer.dev_user);
        set(&mut c.dev_user_info, layer.dev_user_info.map(Some));
        self.control_token = layer.control_token.or(self.control_token.take());
        set(&mut c.record, layer.record.map(Some));
        set(&mut c.db, layer.db.map(in_cwd));
        set(&mut c.fixtures, layer.fixtures.map(in_cwd));
        c.replay.extend(layer.replay);
        let tls = &mut c.tls;
        set(&mut tls.dir, layer.tls_dir.map(in_cwd));
        if layer.tls_cert.is_some() || layer.tls_key.is_some() {
            tls.cert = layer.tls_cert.map(in_cwd);
            tls.key = layer.tls_key.map(in_cwd);
        }
        tls.names.extend(layer.tls_names);
        tls.ca_files.extend(layer.ca_files.into_iter().map(in_cwd));
        set(&mut tls.insecure, layer.insecure);
    }

    /// Checks what waited for the last layer (where to listen, the Redis URL, the filter), then
    /// the settings together.
    fn finish(mut self, app_endpoint: AppEndpoint) -> Result<Config, ConfigError> {
        // No port asked for: listen where the app expects (its PUSHER_PORT), and say so.
        if let (None, None, None, Some((value, source))) =
            (self.port, &self.api_host, &self.websocket_host, &app_endpoint.port)
        {
            if let Ok(wanted) = value.trim().parse::<u16>() {
                if wanted != 0 {
                    self.port = Some(wanted);
                    self.config.port_source = Some(source.clone());
                }
            }
        }
        self.config.app_endpoint = app_endpoint;
        self.config.listen = self.listen()?;
        self.config.control_token = match self.control_token {
            Some(token) if token.trim().is_empty() => {
                return Err(ConfigError::Invalid { setting: "control_token", problem: "must not be empty".into() })
            }
            Some(token) => Some(ControlToken { token: Secret::new(token), generated: false }),
            None if !self.config.listen.addrs().0.ip().is_loopback() => Some(ControlToken::generate()),
            None => None,
        };
        if let Some((url, setting)) = self.redis_url {
            check_redis_url(setting, &url)?;
            self.config.redis_url = Some(url);
        }
        self.config.filter = Filter::parse(&self.filter)?;
        self.config.validate()?;
        Ok(self.config)
    }

    /// `--host` and `--port`, or Slanger's separate `--api-host` and `--websocket-host`.
    fn listen(&self) -> Result<Listen, ConfigError> {
        let ip: IpAddr = match &self.host {
            Some(h) if h == "localhost" => IpAddr::from([127, 0, 0, 1]),
            Some(h) => h.parse().map_err(|_| ConfigError::Address {
                setting: "--host",
                value: h.clone(),
                expected: "IP address (such as 127.0.0.1, 0.0.0.0 or ::1)",
            })?,
            None => IpAddr::from([127, 0, 0, 1]),
        };
        let combined = SocketAddr::new(ip, self.port.unwrap_or(DEFAULT_PORT));
        Ok(match (&self.api_host, &self.websocket_host) {
            (None, None) => Listen::Combined(combined),
            (api, ws) => {
                let api = api.as_deref().map(|v| socket_addr("--api-host", v)).transpose()?.unwrap_or(combined);
                let websocket =
                    ws.as_deref().map(|v| socket_addr("--websocket-host", v)).transpose()?.unwrap_or(combined);
                if api == websocket {
                    Listen::Combined(api)
                } else {
                    Listen::Split { api, websocket }
                }
            }
        })
    }
}

/// A Redis URL's scheme is `redis`, `rediss`, `unix` or `redis+unix`; `setting` is where it came from.
fn check_redis_url(setting: &'static str, url: &str) -> Result<(), ConfigError> {
    match url::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "redis" | "rediss" | "unix" | "redis+unix") => Ok(()),
        Ok(parsed) => {
            let reason = format!("scheme {:?} is not redis://", parsed.scheme());
            Err(ConfigError::RedisUrl { setting, value: redact_password(url), reason })
        }
        Err(e) => Err(ConfigError::RedisUrl { setting, value: redact_password(url), reason: e.to_string() }),
    }
}

impl Config {
    /// Resolves the settings from their layers, later wins: the defaults, `.env` in `cwd`, the
    /// `--config` file, the environment `env`, and `flags` (which say whether and which files are
    /// read).
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, variable or flag at fault.
    pub fn resolve(flags: Layer, env: &impl Environment, cwd: &Path) -> Result<Config, ConfigError> {
        let read_files = !flags.no_config;
        let mut draft = Draft::new(cwd);
        let dotenv = cwd.join(".env");
        if read_files && dotenv.is_file() {
            draft.apply(dotenv_credentials(&dotenv)?.into_layer());
        }
        if let (Some(path), true) = (&flags.config_file, read_files) {
            draft.apply(FileConfig::read_layer(path, cwd)?);
        }
        draft.apply(env_layer(env)?);
        draft.apply(flags);
        draft.finish(AppEndpoint::read(cwd, env, !read_files))
    }

    /// Checks values that no single layer can check.
    ///
    /// # Errors
    /// [`ConfigError`] naming the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.workers == Some(0) {
            return Err(ConfigError::Invalid { setting: "workers", problem: "must be at least 1".into() });
        }
        if self.activity_timeout.as_secs() == 0 {
            return Err(ConfigError::Invalid {
                setting: "activity_timeout",
                problem: "must be at least 1 second (pusher-js refuses a zero activity_timeout)".into(),
            });
        }
        if self.pong_timeout.is_zero() {
            return Err(ConfigError::Invalid { setting: "pong_timeout", problem: "must be at least 1 second".into() });
        }
        if let Some(name) = &self.record {
            if name.is_empty() || name.chars().any(|c| c.is_control() || c == '/' || c == '\\') {
                return Err(ConfigError::Invalid {
                    setting: "--record",
                    problem: format!("name {name:?} must be non-empty, without slashes or control characters"),
                });
            }
        }
        if self.outbox_capacity == 0 {
            return Err(ConfigError::Invalid { setting: "outbox_capacity", problem: "must be at least 1".into() });
        }
        for app in &self.apps {
            for (setting, value) in
                [("app id", app.id.as_str()), ("app key", &app.key), ("app secret", app.secret.expose())]
            {
                if value.is_empty() {
                    return Err(ConfigError::Invalid {
                        setting,
                        problem: format!("of app {:?} is empty", app.id.as_str()),
                    });
                }
            }
            for target in &app.webhooks {
                crate::webhook::check_url(&target.url).map_err(|problem| ConfigError::Invalid {
                    setting: "webhook URL (--webhook, PUSHER_LOCAL_WEBHOOK_URL or [[apps.webhooks]] url)",
                    problem: format!("of app {:?}: {problem}", app.id.as_str()),
                })?;
            }
            let Limits { max_payload_bytes, .. } = app.limits;
            if max_payload_bytes == 0 {
                return Err(ConfigError::Invalid {
                    setting: "limits.max_payload_bytes",
                    problem: "must be above 0".into(),
                });
            }
        }
        Apps::new(self.apps.iter().cloned())?;
        Ok(())
    }

    /// What is wrong with where the app's settings say Pusher is: one warning per value that
    /// does not point at this server, naming the setting, where it is set, and the fix.
    pub fn endpoint_warnings(&self) -> Vec<String> {
        let (api, _) = self.listen.addrs();
        let mut warnings = Vec::new();
        let AppEndpoint { host, port, scheme } = &self.app_endpoint;
        if let Some((value, source)) = host {
            let name = value.trim().trim_start_matches('[').trim_end_matches(']');
            let here =
                |ip: IpAddr| ip.is_loopback() || ip.is_unspecified() || ip == api.ip() || api.ip().is_unspecified();
            if is_real_pusher(name) {
                warnings.push(format!(
                    "PUSHER_HOST={value} ({source}) is hosted Pusher: your app sends its events there, not to this \
                     server. Set PUSHER_HOST=127.0.0.1 while you work with pusher-local."
                ));
            } else if name.parse::<IpAddr>().is_ok_and(|ip| !here(ip)) {
                warnings.push(format!(
                    "PUSHER_HOST={value} ({source}) is not an address of this server ({api}): your app sends its \
                     events there. Set PUSHER_HOST=127.0.0.1."
                ));
            }
        }
        if let (Some((value, source)), None) = (port, &self.port_source) {
            if value.trim().parse::<u16>().ok() != Some(api.port()) {
                warnings.push(format!(
                    "PUSHER_PORT={value} ({source}) but pusher-local listens on port {}: your app sends to a port \
                     nobody serves. Set PUSHER_PORT={}, or start pusher-local without --port to listen on the app's.",
                    api.port(),
                    api.port()
                ));
            }
        }
        if let Some((value, source)) = scheme {
            if !matches!(value.trim().to_ascii_lowercase().as_str(), "http" | "https") {
                warnings.push(format!(
                    "PUSHER_SCHEME={value} ({source}) is neither http nor https; pusher-local answers both on port {}.",
                    api.port()
                ));
            }
        }
        warnings
    }

    /// The Redis URL with any password replaced by `***`, for messages and the banner.
    pub fn redis_url_shown(&self) -> Option<String> {
        self.redis_url.as_deref().map(redact_password)
    }

    /// The app table.
    pub fn app_table(&self) -> Apps {
        // `validate` has already refused duplicate ids and keys.
        Apps::new(self.apps.iter().cloned()).expect("validated in Config::resolve")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Environment {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name: &str| map.get(name).cloned()
    }

    /// The flags' layer of a command line.
    fn flags(args: &[&str]) -> Layer {
        let mut all = vec!["pusher-local"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap().layer()
    }

    fn resolve(args: &[&str], vars: &[(&str, &str)], dir: &Path) -> Config {
        Config::resolve(flags(args), &env(vars), dir).unwrap()
    }

    #[test]
    fn zero_config_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let c = resolve(&[], &[], dir.path());
        assert_eq!(c.listen, Listen::Combined("127.0.0.1:6001".parse().unwrap()));
        assert_eq!(c.apps[0].id.as_str(), "1");
        assert!(c.apps[0].id.as_str().bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(c.sources.key, Source::Default);
        assert!(c.apps[0].client_events && c.apps[0].user_authentication);
    }

    #[test]
    fn a_control_token_is_made_up_beyond_loopback_and_kept_when_given() {
        let dir = tempfile::tempdir().unwrap();
        for loopback in [&[][..], &["--host", "::1"], &["--host", "localhost"]] {
            assert_eq!(resolve(loopback, &[], dir.path()).control_token, None, "{loopback:?}");
        }
        let exposed = resolve(&["--host", "0.0.0.0"], &[], dir.path()).control_token.unwrap();
        assert!(exposed.generated);
        assert_eq!(exposed.token.expose().len(), 32);
        let other = resolve(&["--host", "0.0.0.0"], &[], dir.path()).control_token.unwrap();
        assert_ne!(exposed.token, other.token, "a new one each start");
        let split = resolve(&["--api-host", "192.0.2.1:6001"], &[], dir.path()).control_token;
        assert!(split.is_some_and(|t| t.generated), "the HTTP API is what counts");
        let given = resolve(&["--control-token", "mine"], &[], dir.path()).control_token.unwrap();
        assert_eq!((given.token.expose(), given.generated), ("mine", false));
        std::fs::write(dir.path().join("t.toml"), "control_token = \"from-file\"\n").unwrap();
        let c = resolve(&["--config", "t.toml", "--host", "0.0.0.0"], &[], dir.path());
        assert_eq!(c.control_token.unwrap().token.expose(), "from-file");
        let empty = Config::resolve(flags(&["--control-token", " "]), &env(&[]), dir.path()).unwrap_err();
        assert_eq!(empty.to_string(), "control_token must not be empty");
    }

    #[test]
    fn layers_apply_in_order_dotenv_file_env_flag() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".env"),
            "PUSHER_APP_ID=10\nPUSHER_APP_KEY=dotenv-key\nPUSHER_APP_SECRET=dotenv-secret\n",
        )
        .unwrap();
        let c = resolve(&[], &[], dir.path());
        assert_eq!((c.apps[0].id.as_str(), c.apps[0].key.as_str()), ("10", "dotenv-key"));
        assert!(matches!(c.sources.secret, Source::DotEnv(_, "PUSHER_APP_SECRET")));

        std::fs::write(
            dir.path().join("p.toml"),
            "port = 7000\n[[apps]]\nid = 20\nkey = \"file-key\"\nsecret = \"file-secret\"\n",
        )
        .unwrap();
        let c = resolve(&["--config", "p.toml"], &[], dir.path());
        assert_eq!((c.apps[0].id.as_str(), c.apps[0].key.as_str()), ("20", "file-key"));
        assert_eq!(c.listen, Listen::Combined("127.0.0.1:7000".parse().unwrap()));

        let c = resolve(&["--config", "p.toml"], &[("PUSHER_APP_KEY", "env-key")], dir.path());
        assert_eq!((c.apps[0].id.as_str(), c.apps[0].key.as_str()), ("20", "env-key"));
        assert_eq!(c.sources.key, Source::Env("PUSHER_APP_KEY"));

        let c = resolve(
            &["--config", "p.toml", "--key", "flag-key", "--port", "7001"],
            &[("PUSHER_APP_KEY", "env-key")],
            dir.path(),
        );
        assert_eq!(c.apps[0].key, "flag-key");
        assert_eq!(c.sources.key, Source::Flag("--key"));
        assert_eq!(c.listen, Listen::Combined("127.0.0.1:7001".parse().unwrap()));

        let c = resolve(&["--no-config"], &[], dir.path());
        assert_eq!(c.apps[0].key, DEFAULT_APP_KEY);
    }

    #[test]
    fn recorder_paths_resolve_against_the_working_directory_or_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let c = resolve(&[], &[], dir.path());
        assert_eq!(
            (c.db.clone(), c.fixtures.clone()),
            (dir.path().join(DEFAULT_DB), dir.path().join(DEFAULT_FIXTURES))
        );
        assert_eq!(c.record, None);
        std::fs::create_dir(dir.path().join("conf")).unwrap();
        std::fs::write(dir.path().join("conf/p.toml"), "db = \"rec.db\"\nfixtures = \"fx\"\n").unwrap();
        let c = resolve(&["--config", "conf/p.toml", "--record"], &[], dir.path());
        assert_eq!(c.db, dir.path().join("conf/rec.db"));
        assert_eq!(c.fixtures, dir.path().join("conf/fx"));
        assert!(c.record.as_deref().is_some_and(|n| n.starts_with("rec-")));
        let c = resolve(&["--config", "conf/p.toml", "--db", "other.db"], &[], dir.path());
        assert_eq!(c.db, dir.path().join("other.db"));
        let err = Config::resolve(flags(&["--record", "a/b"]), &env(&[]), dir.path()).unwrap_err();
        assert!(err.to_string().contains("--record"), "{err}");
    }

    #[test]
    fn pusher_url_supplies_all_three_and_app_vars_override_it() {
        let dir = tempfile::tempdir().unwrap();
        let c = resolve(&[], &[("PUSHER_URL", "http://k1:s%2F1@api.example.test/apps/42")], dir.path());
        assert_eq!((c.apps[0].id.as_str(), c.apps[0].key.as_str(), c.apps[0].secret.expose()), ("42", "k1", "s/1"));
        let c = resolve(&[], &[("PUSHER_URL", "http://k1:s1@h/apps/42"), ("PUSHER_APP_ID", "43")], dir.path());
        assert_eq!(c.apps[0].id.as_str(), "43");
        let err = Config::resolve(flags(&[]), &env(&[("PUSHER_URL", "http://h/apps/1")]), dir.path()).unwrap_err();
        assert!(err.to_string().contains("PUSHER_URL"), "{err}");
    }

    #[test]
    fn broken_or_missing_config_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = Config::resolve(flags(&["--config", "missing.toml"]), &env(&[]), dir.path()).unwrap_err();
        assert!(err.to_string().contains("missing.toml"), "{err}");
        std::fs::write(dir.path().join("bad.toml"), "port = 1\nbogus = true\n").unwrap();
        let err = Config::resolve(flags(&["--config", "bad.toml"]), &env(&[]), dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("bad.toml") && text.contains("bogus") && text.contains("line 2"), "{text}");
    }

    #[test]
    fn a_layer_made_without_the_command_line_and_a_bad_value_a_later_layer_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let by_hand = Layer {
            port: Some(7002),
            key: Some(("hand-key".into(), Source::Flag("--key"))),
            filter: vec!["channel=a*".into()],
            ..Layer::default()
        };
        let c = Config::resolve(by_hand, &env(&[]), dir.path()).unwrap();
        assert_eq!(
            (c.listen, c.apps[0].key.as_str()),
            (Listen::Combined("127.0.0.1:7002".parse().unwrap()), "hand-key")
        );
        std::fs::write(dir.path().join("h.toml"), "host = \"nowhere\"\n").unwrap();
        let err = Config::resolve(flags(&["--config", "h.toml"]), &env(&[]), dir.path()).unwrap_err();
        assert!(err.to_string().contains("nowhere"), "{err}");
        let c = resolve(&["--config", "h.toml", "--host", "0.0.0.0"], &[], dir.path());
        assert_eq!(c.listen, Listen::Combined("0.0.0.0:6001".parse().unwrap()), "checked once the flags have spoken");
        let c = resolve(&["-r", "redis://a"], &[("REDIS_URL", "http://not-redis")], dir.path());
        assert_eq!(c.redis_url.as_deref(), Some("redis://a"));
    }

    #[test]
    fn workers_come_from_file_then_flag_and_default_to_half_the_cores() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(resolve(&[], &[], dir.path()).workers, None);
        std::fs::write(dir.path().join("w.toml"), "workers = 3\n").unwrap();
        assert_eq!(resolve(&["--config", "w.toml"], &[], dir.path()).workers, Some(3));
        assert_eq!(resolve(&["--config", "w.toml", "--workers", "2"], &[], dir.path()).workers, Some(2));
        let err = Config::resolve(flags(&["--workers", "0"]), &env(&[]), dir.path()).unwrap_err();
        assert!(err.to_string().contains("workers"), "{err}");

        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        assert_eq!(default_workers(None), (cores / 2).max(1));
        assert_eq!(default_workers(Some("5")), 5, "TOKIO_WORKER_THREADS is honoured");
        assert_eq!(default_workers(Some("0")), (cores / 2).max(1), "a zero or unparsable override is ignored");
        assert_eq!(default_workers(Some("many")), (cores / 2).max(1));
    }

    #[test]
    fn slanger_split_listeners() {
        let dir = tempfile::tempdir().unwrap();
        let c = resolve(&["-a", "127.0.0.1:4567", "-w", "127.0.0.1:8080"], &[], dir.path());
        assert_eq!(
            c.listen,
            Listen::Split { api: "127.0.0.1:4567".parse().unwrap(), websocket: "127.0.0.1:8080".parse().unwrap() }
        );
    }

    #[test]
    fn redis_url_from_the_flag_or_redis_url_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(resolve(&[], &[], dir.path()).redis_url, None);
        let c = resolve(&["-r", "redis://127.0.0.1:7000", "--redis-prefix", "team"], &[], dir.path());
        assert_eq!(c.redis_url.as_deref(), Some("redis://127.0.0.1:7000"));
        assert_eq!(c.redis_prefix, "team");
        let c = resolve(&[], &[("REDIS_URL", "redis://10.0.0.2")], dir.path());
        assert_eq!(c.redis_url.as_deref(), Some("redis://10.0.0.2"));
        assert_eq!(c.redis_prefix, DEFAULT_REDIS_PREFIX);
        let c = resolve(&["--redis-url", "redis://a"], &[("REDIS_URL", "redis://b")], dir.path());
        assert_eq!(c.redis_url.as_deref(), Some("redis://a"), "the flag beats REDIS_URL");
        let c = resolve(&["-r", "redis://:hunter2@10.0.0.3:6380/1"], &[], dir.path());
        assert_eq!(c.redis_url_shown().as_deref(), Some("redis://:***@10.0.0.3:6380/1"));
        let err = Config::resolve(flags(&["-r", "http://h"]), &env(&[]), dir.path()).unwrap_err();
        assert!(err.to_string().contains("--redis-url") && err.to_string().contains("http"), "{err}");
    }

    #[test]
    fn webhooks_from_the_file_and_the_flag_which_replaces_the_default_apps_urls() {
        use crate::webhook::{Kind, Target};
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("hooks.toml"),
            "webhook_retry_for = 7\n[[apps]]\nid = 1\nkey = \"k\"\nsecret = \"s\"\nwebhook_batching = true\n\
             [[apps.webhooks]]\nurl = \"http://127.0.0.1:9/a\"\nevent_types = [\"member_added\"]\n\
             [[apps.webhooks]]\nurl = \"http://127.0.0.1:9/b\"\n",
        )
        .unwrap();
        let c = resolve(&["--config", "hooks.toml"], &[], dir.path());
        assert!(c.apps[0].webhook_batching);
        assert_eq!(c.webhooks.retry_for, Duration::from_secs(7));
        assert_eq!(
            c.apps[0].webhooks,
            [
                Target { url: "http://127.0.0.1:9/a".into(), event_types: Some(vec![Kind::MemberAdded]) },
                Target::new("http://127.0.0.1:9/b"),
            ]
        );
        let c = resolve(
            &["--config", "hooks.toml", "--webhook", "http://127.0.0.1:9/flag", "--webhook-retry-for", "1"],
            &[],
            dir.path(),
        );
        assert_eq!(c.apps[0].webhooks, [Target::new("http://127.0.0.1:9/flag")]);
        assert_eq!(c.webhooks.retry_for, Duration::from_secs(1));
        let c = resolve(&["--webhook", "https://example.test/h"], &[], dir.path());
        assert_eq!(c.apps[0].webhooks, [Target::new("https://example.test/h")]);
        let err = Config::resolve(flags(&["--webhook", "ftp://example.test/h"]), &env(&[]), dir.path()).unwrap_err();
        assert!(err.to_string().contains("--webhook") && err.to_string().contains("https://"), "{err}");
        std::fs::write(dir.path().join("bad.toml"), "[[apps]]\nid = 1\nkey = \"k\"\nsecret = \"s\"\n[[apps.webhooks]]\nurl = \"http://h/\"\nevent_types = [\"nope\"]\n").unwrap();
        let err = Config::resolve(flags(&["--config", "bad.toml"]), &env(&[]), dir.path()).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn several_apps_from_the_file_with_features_and_limits() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("apps.toml"),
            "[[apps]]\nid = \"1\"\nkey = \"a\"\nsecret = \"sa\"\nclient_events = false\n[apps.limits]\nmax_connections = 5\n\n[[apps]]\nid = \"2\"\nkey = \"b\"\nsecret = \"sb\"\n",
        )
        .unwrap();
        let c = resolve(&["--config", "apps.toml"], &[], dir.path());
        assert_eq!(c.apps.len(), 2);
        assert!(!c.apps[0].client_events);
        assert_eq!(c.apps[0].limits.max_connections, Some(5));
        assert!(c.apps[1].client_events);
    }

    fn resolve_with(args: &[&str], vars: &[(&str, &str)], dir: &Path) -> Config {
        let map: std::collections::HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let env = move |name: &str| map.get(name).cloned();
        let cli =
            <Cli as clap::Parser>::try_parse_from(std::iter::once("pusher-local").chain(args.iter().copied())).unwrap();
        Config::resolve(cli.layer(), &env, dir).unwrap()
    }

    #[test]
    fn the_apps_pusher_port_is_where_pusher_local_listens_unless_a_port_is_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".env"), "PUSHER_HOST=127.0.0.1\nPUSHER_PORT=16101\nPUSHER_SCHEME=http\n")
            .unwrap();
        let c = resolve_with(&[], &[], dir.path());
        assert_eq!(c.listen, Listen::Combined("127.0.0.1:16101".parse().unwrap()));
        assert_eq!(c.port_source, Some(Source::DotEnv(dir.path().join(".env"), "PUSHER_PORT")));
        assert!(c.endpoint_warnings().is_empty(), "{:?}", c.endpoint_warnings());
        // A port asked for wins, and the mismatch is said once, with the fix.
        let c = resolve_with(&["--port", "6001"], &[], dir.path());
        assert_eq!(c.listen, Listen::Combined("127.0.0.1:6001".parse().unwrap()));
        let warnings = c.endpoint_warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("PUSHER_PORT=16101")
                && warnings[0].contains(".env")
                && warnings[0].contains("PUSHER_PORT=6001"),
            "{warnings:?}"
        );
        // The environment beats .env, as for the app itself.
        let c = resolve_with(&[], &[("PUSHER_PORT", "16202")], dir.path());
        assert_eq!(c.listen, Listen::Combined("127.0.0.1:16202".parse().unwrap()));
        assert!(resolve_with(&["--no-config"], &[], dir.path()).port_source.is_none());
    }

    #[test]
    fn an_app_pointed_at_hosted_pusher_or_another_address_is_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".env"), "PUSHER_HOST=api-eu.pusher.com\nPUSHER_SCHEME=https\n").unwrap();
        let warnings = resolve_with(&[], &[], dir.path()).endpoint_warnings();
        assert_eq!(warnings.len(), 1, "https is served too: {warnings:?}");
        assert!(
            warnings[0].contains("PUSHER_HOST=api-eu.pusher.com") && warnings[0].contains("hosted Pusher"),
            "{warnings:?}"
        );
        assert!(warnings[0].contains("PUSHER_HOST=127.0.0.1"), "{warnings:?}");
        let warnings =
            resolve_with(&[], &[("PUSHER_HOST", "10.9.8.7"), ("PUSHER_SCHEME", "ws")], dir.path()).endpoint_warnings();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        for fine in ["localhost", "127.0.0.1", "host.docker.internal", "soketi"] {
            assert!(resolve_with(&[], &[("PUSHER_HOST", fine)], dir.path()).endpoint_warnings().len() <= 1, "{fine}");
        }
        assert!(
            is_real_pusher("ws-mt1.pusher.com")
                && is_real_pusher("api.pusherapp.com")
                && !is_real_pusher("notpusher.com")
        );
    }

    #[test]
    fn a_broken_dotenv_is_reported_with_its_line_and_column_and_never_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        let error = |text: &str| {
            std::fs::write(&path, text).unwrap();
            dotenv_credentials(&path).map(|_| ()).unwrap_err().to_string()
        };
        let at = format!("cannot parse {}: ", path.display());
        // A value with a space: dotenvy quotes only the value, with an index into it.
        let e = error("# the app\nPUSHER_APP_ID=1\nPUSHER_APP_KEY=abc def\n");
        assert_eq!(
            e,
            format!(
                "{at}line 3, column 20: unexpected 'd' (quote a value that has spaces) in the value of PUSHER_APP_KEY"
            )
        );
        // The same text earlier inside quotes is not mistaken for it.
        let e = error("OTHER=\"abc def\"\nexport PUSHER_APP_KEY=abc def\n");
        assert!(
            e.ends_with(
                "line 2, column 27: unexpected 'd' (quote a value that has spaces) in the value of PUSHER_APP_KEY"
            ),
            "{e}"
        );
        // An unclosed quote, reported where it opens, not at the end of the file.
        let e = error("A=1\n\nPUSHER_APP_SECRET=\"s3cret\nB=2\n");
        assert_eq!(e, format!("{at}line 3, column 19: unclosed quote in the value of PUSHER_APP_SECRET"));
        assert!(!e.contains("s3cret"), "the value is never printed: {e}");
        // A bad name: dotenvy quotes the whole line, the column counts the indentation.
        assert_eq!(error("A=1\n  1BAD=x\n"), format!("{at}line 2, column 3: unexpected '1'"));
        // No `=` at all.
        assert_eq!(error("A=1\nJUSTANAME\n"), format!("{at}line 2, column 10: unexpected end of line"));
        // Still found through the whole resolution.
        std::fs::write(&path, "PUSHER_APP_KEY=abc def\n").unwrap();
        let e = Config::resolve(flags(&[]), &env(&[]), dir.path()).unwrap_err().to_string();
        assert!(e.contains("line 1, column 20"), "{e}");
    }
}

/// Worker threads when `workers` is not set: half the machine's cores, at least one.
///
/// pusher-local runs beside what it serves (the app, its browser, a test runner or a load
/// generator), so it leaves them room. Measured on 2 cores with the load generator on the same
/// machine: one worker instead of two delivered 1.6–1.8× the fan-out to 1000 subscribers, cut
/// the p99 latency at 100 events/s by a quarter and the generator's own CPU use by a tenth, for
/// about 10 % fewer REST triggers per second. `TOKIO_WORKER_THREADS` is honoured when set.
pub fn default_workers(env_override: Option<&str>) -> usize {
    if let Some(n) = env_override.and_then(|v| v.trim().parse::<usize>().ok()).filter(|n| *n > 0) {
        return n;
    }
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    (cores / 2).max(1)
}

/// The README documents the defaults; these tests keep it honest.
#[cfg(test)]
mod readme_tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    const README: &str = include_str!("../README.md");

    /// The first ```toml block of the README that shows every setting.
    fn example_toml() -> &'static str {
        README
            .split("```toml")
            .skip(1)
            .map(|rest| rest.split("```").next().unwrap_or(""))
            .find(|block| block.contains("[apps.limits]") && block.contains("activity_timeout"))
            .expect("README has a full config example")
    }

    #[test]
    fn the_readme_config_example_loads_and_its_first_app_shows_the_default_values() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("example.toml"), example_toml()).unwrap();
        let cli = Cli::try_parse_from(["pusher-local", "--config", "example.toml"]).unwrap();
        let config = Config::resolve(cli.layer(), &|_: &str| None, dir.path()).expect("the README example is valid");
        let defaults = Config::default();
        assert_eq!(config.activity_timeout, defaults.activity_timeout);
        assert_eq!(config.pong_timeout, defaults.pong_timeout);
        assert_eq!(config.outbox_capacity, defaults.outbox_capacity);
        assert_eq!(config.max_message_bytes, defaults.max_message_bytes);
        assert_eq!(config.max_body_bytes, defaults.max_body_bytes);
        assert_eq!(config.webhooks.retry_for, defaults.webhooks.retry_for);
        assert_eq!(config.listen, defaults.listen);
        assert_eq!(config.apps[0].limits, Limits::default(), "[apps.limits] of the first app in the README");
        let app = &config.apps[0];
        assert!(app.client_events && app.user_authentication && app.watchlist_events && app.subscription_count);
    }

    #[test]
    fn the_readme_settings_table_states_the_default_values() {
        let defaults = Config::default();
        let expected = [
            ("host", "127.0.0.1".to_owned()),
            ("port", DEFAULT_PORT.to_string()),
            ("activity_timeout", defaults.activity_timeout.as_secs().to_string()),
            ("pong_timeout", defaults.pong_timeout.as_secs().to_string()),
            ("outbox_capacity", defaults.outbox_capacity.to_string()),
            ("max_message_bytes", defaults.max_message_bytes.to_string()),
            ("max_body_bytes", defaults.max_body_bytes.to_string()),
            ("webhook_retry_for", defaults.webhooks.retry_for.as_secs().to_string()),
            ("db", defaults.db.display().to_string()),
            ("fixtures", defaults.fixtures.display().to_string()),
        ];
        for (key, value) in expected {
            let row = README
                .lines()
                .find(|l| l.starts_with('|') && l.contains(&format!("| `{key}` |")))
                .unwrap_or_else(|| panic!("no settings row for {key}"));
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            assert_eq!(cells[4], format!("`{value}`"), "README default of {key}: {row}");
        }
    }
}
