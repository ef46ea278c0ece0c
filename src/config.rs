//! `Config`: every setting, resolved once from its layers and then immutable.
//!
//! Layers, later wins: `Config::default()` < `.env` in the working directory (the app's
//! `PUSHER_APP_*`, as Laravel and Rails keep them) < `--config FILE` (TOML) < environment
//! (`PUSHER_URL`, `PUSHER_APP_*`; `PUSHER_LOCAL_*` arrive through clap) < flags. For the default
//! app's id, key and secret the layer each value came from is kept, so the banner can say.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::apps::{App, AppId, Apps, Limits, Secret};
use crate::cli::{Cli, ColorChoice};
use crate::printer::filter::FilterError;
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
}

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
            webhooks: crate::webhook::Settings::default(),
            record: None,
            db: PathBuf::from(DEFAULT_DB),
            fixtures: PathBuf::from(DEFAULT_FIXTURES),
            replay: Vec::new(),
            redis_url: None,
            redis_prefix: DEFAULT_REDIS_PREFIX.to_owned(),
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
    /// Apps; when given they replace the default app.
    #[serde(default)]
    pub apps: Vec<App>,
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
    let mut vars = std::collections::HashMap::new();
    for item in iter {
        let (k, v) = item.map_err(|e| ConfigError::DotEnv { path: path.to_owned(), message: e.to_string() })?;
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

impl Config {
    /// Resolves the layers for `cli`, reading `.env` from `cwd` and variables from `env`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, variable or flag at fault.
    pub fn resolve(cli: &Cli, env: &impl Environment, cwd: &Path) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        let mut creds = Credentials::default();

        if !cli.no_config {
            let dotenv = cwd.join(".env");
            if dotenv.is_file() {
                creds.overlay(dotenv_credentials(&dotenv)?);
            }
        }

        let mut host: Option<String> = None;
        let mut port: Option<u16> = None;
        if let (Some(path), false) = (&cli.config, cli.no_config) {
            let path = if path.is_absolute() { path.clone() } else { cwd.join(path) };
            let text = std::fs::read_to_string(&path)
                .map_err(|source| ConfigError::ReadFile { path: path.clone(), source })?;
            let file: FileConfig = toml::from_str(&text)
                .map_err(|e| ConfigError::ParseFile { path: path.clone(), message: e.to_string() })?;
            host = file.host;
            port = file.port;
            let secs = Duration::from_secs;
            if let Some(v) = file.workers {
                config.workers = Some(v);
            }
            if let Some(v) = file.activity_timeout {
                config.activity_timeout = secs(v);
            }
            if let Some(v) = file.pong_timeout {
                config.pong_timeout = secs(v);
            }
            if let Some(v) = file.outbox_capacity {
                config.outbox_capacity = v;
            }
            if let Some(v) = file.max_message_bytes {
                config.max_message_bytes = v;
            }
            if let Some(v) = file.max_body_bytes {
                config.max_body_bytes = v;
            }
            if let Some(v) = file.webhook_retry_for {
                config.webhooks.retry_for = secs(v);
            }
            // Relative paths in the file are relative to the file.
            let beside = |p: PathBuf| if p.is_absolute() { p } else { path.parent().unwrap_or(cwd).join(p) };
            if let Some(v) = file.db {
                config.db = beside(v);
            }
            if let Some(v) = file.fixtures {
                config.fixtures = beside(v);
            }
            if !file.apps.is_empty() {
                let first = &file.apps[0];
                let src = || Source::ConfigFile(path.clone());
                creds = Credentials {
                    id: Some((first.id.to_string(), src())),
                    key: Some((first.key.clone(), src())),
                    secret: Some((first.secret.expose().to_owned(), src())),
                };
                config.apps = file.apps;
            }
        }

        creds.overlay(credentials_from(|name| env.var(name), Source::Env)?);
        creds.overlay(Credentials {
            id: cli.app_id.clone().map(|v| (v, Source::Flag("--app-id"))),
            key: cli.key.clone().map(|v| (v, Source::Flag("--key"))),
            secret: cli.secret.clone().map(|v| (v, Source::Flag("--secret"))),
        });

        // Apply the winning credentials to the default (first) app.
        let default_app = &mut config.apps[0];
        if let Some((id, source)) = creds.id {
            default_app.id = AppId::new(id);
            config.sources.id = source;
        }
        if let Some((key, source)) = creds.key {
            default_app.key = key;
            config.sources.key = source;
        }
        if let Some((secret, source)) = creds.secret {
            default_app.secret = Secret::new(secret);
            config.sources.secret = source;
        }

        host = cli.host.clone().or(host);
        port = cli.port.or(port);
        let ip: IpAddr = match &host {
            Some(h) if h == "localhost" => IpAddr::from([127, 0, 0, 1]),
            Some(h) => h.parse().map_err(|_| ConfigError::Address {
                setting: "--host",
                value: h.clone(),
                expected: "IP address (such as 127.0.0.1, 0.0.0.0 or ::1)",
            })?,
            None => IpAddr::from([127, 0, 0, 1]),
        };
        let combined = SocketAddr::new(ip, port.unwrap_or(DEFAULT_PORT));
        config.listen = match (&cli.api_host, &cli.websocket_host) {
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
        };

        if let Some(v) = cli.workers {
            config.workers = Some(v);
        }
        if let Some(v) = cli.activity_timeout {
            config.activity_timeout = Duration::from_secs(v);
        }
        if let Some(v) = cli.pong_timeout {
            config.pong_timeout = Duration::from_secs(v);
        }
        if let Some(v) = cli.webhook_retry_for {
            config.webhooks.retry_for = Duration::from_secs(v);
        }
        // `--webhook` (or PUSHER_LOCAL_WEBHOOK_URL) replaces the default app's file URLs.
        if !cli.webhook.is_empty() {
            config.apps[0].webhooks = cli.webhook.iter().map(crate::webhook::Target::new).collect();
        }
        // `REDIS_URL` is where hosting platforms and docker-compose files put it.
        let redis = match &cli.redis_url {
            Some(url) => Some(("--redis-url / PUSHER_LOCAL_REDIS_URL", url.clone())),
            None => env.var("REDIS_URL").map(|url| ("REDIS_URL", url)),
        };
        if let Some((setting, url)) = redis {
            match url::Url::parse(&url) {
                Ok(parsed) if matches!(parsed.scheme(), "redis" | "rediss" | "unix" | "redis+unix") => {}
                Ok(parsed) => {
                    let reason = format!("scheme {:?} is not redis://", parsed.scheme());
                    return Err(ConfigError::RedisUrl { setting, value: redact_password(&url), reason });
                }
                Err(e) => {
                    return Err(ConfigError::RedisUrl { setting, value: redact_password(&url), reason: e.to_string() })
                }
            }
            config.redis_url = Some(url);
        }
        if let Some(prefix) = &cli.redis_prefix {
            config.redis_prefix.clone_from(prefix);
        }
        config.verbose = cli.verbose;
        config.quiet = cli.quiet;
        config.color = cli.color.unwrap_or_default();
        config.filter = Filter::parse(&cli.filter)?;
        config.full = cli.full;
        config.log_format = cli.log_format.unwrap_or_default();
        let in_cwd = |p: &PathBuf| if p.is_absolute() { p.clone() } else { cwd.join(p) };
        config.log_file = cli.log_file.as_ref().map(in_cwd);
        config.db = in_cwd(cli.db.as_ref().unwrap_or(&config.db));
        config.fixtures = in_cwd(cli.fixtures.as_ref().unwrap_or(&config.fixtures));
        config.record = cli.record.clone().map(|name| name.unwrap_or_else(crate::recorder::default_name));
        config.replay = cli.replay.clone();
        config.validate()?;
        Ok(config)
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
    use clap::Parser;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Environment {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name: &str| map.get(name).cloned()
    }

    fn cli(args: &[&str]) -> Cli {
        let mut all = vec!["pusher-local"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap()
    }

    fn resolve(args: &[&str], vars: &[(&str, &str)], dir: &Path) -> Config {
        Config::resolve(&cli(args), &env(vars), dir).unwrap()
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
        let err = Config::resolve(&cli(&["--record", "a/b"]), &env(&[]), dir.path()).unwrap_err();
        assert!(err.to_string().contains("--record"), "{err}");
    }

    #[test]
    fn pusher_url_supplies_all_three_and_app_vars_override_it() {
        let dir = tempfile::tempdir().unwrap();
        let c = resolve(&[], &[("PUSHER_URL", "http://k1:s%2F1@api.example.test/apps/42")], dir.path());
        assert_eq!((c.apps[0].id.as_str(), c.apps[0].key.as_str(), c.apps[0].secret.expose()), ("42", "k1", "s/1"));
        let c = resolve(&[], &[("PUSHER_URL", "http://k1:s1@h/apps/42"), ("PUSHER_APP_ID", "43")], dir.path());
        assert_eq!(c.apps[0].id.as_str(), "43");
        let err = Config::resolve(&cli(&[]), &env(&[("PUSHER_URL", "http://h/apps/1")]), dir.path()).unwrap_err();
        assert!(err.to_string().contains("PUSHER_URL"), "{err}");
    }

    #[test]
    fn broken_or_missing_config_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = Config::resolve(&cli(&["--config", "missing.toml"]), &env(&[]), dir.path()).unwrap_err();
        assert!(err.to_string().contains("missing.toml"), "{err}");
        std::fs::write(dir.path().join("bad.toml"), "port = 1\nbogus = true\n").unwrap();
        let err = Config::resolve(&cli(&["--config", "bad.toml"]), &env(&[]), dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("bad.toml") && text.contains("bogus") && text.contains("line 2"), "{text}");
    }

    #[test]
    fn workers_come_from_file_then_flag_and_default_to_half_the_cores() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(resolve(&[], &[], dir.path()).workers, None);
        std::fs::write(dir.path().join("w.toml"), "workers = 3\n").unwrap();
        assert_eq!(resolve(&["--config", "w.toml"], &[], dir.path()).workers, Some(3));
        assert_eq!(resolve(&["--config", "w.toml", "--workers", "2"], &[], dir.path()).workers, Some(2));
        let err = Config::resolve(&cli(&["--workers", "0"]), &env(&[]), dir.path()).unwrap_err();
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
        let err = Config::resolve(&cli(&["-r", "http://h"]), &env(&[]), dir.path()).unwrap_err();
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
        let err = Config::resolve(&cli(&["--webhook", "https://example.test/h"]), &env(&[]), dir.path()).unwrap_err();
        assert!(err.to_string().contains("--webhook") && err.to_string().contains("https"), "{err}");
        std::fs::write(dir.path().join("bad.toml"), "[[apps]]\nid = 1\nkey = \"k\"\nsecret = \"s\"\n[[apps.webhooks]]\nurl = \"http://h/\"\nevent_types = [\"nope\"]\n").unwrap();
        let err = Config::resolve(&cli(&["--config", "bad.toml"]), &env(&[]), dir.path()).unwrap_err();
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
        let config = Config::resolve(&cli, &|_: &str| None, dir.path()).expect("the README example is valid");
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
