//! The start-up banner: where pusher-local listens, the credentials in use and where each came
//! from, and copy-paste snippets for pusher-js, Laravel Echo, the Node server SDK and `.env`;
//! its TLS block (also `pusher-local tls`) and the warnings about the app's own Pusher settings.
//! It reads the resolved [`Config`], so it sits above it; the printer's styles colour it.

use std::net::SocketAddr;

use crate::config::Config;
use crate::tls::authority::{trust_commands, Opened};
use crate::tls::server::Identity;

use crate::printer::{style, Kind};

/// The host clients should dial: a wildcard bind is reached on loopback.
fn client_host(addr: SocketAddr) -> String {
    match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
        ip if ip.is_unspecified() => "::1".to_owned(),
        ip if ip.is_ipv6() => format!("[{ip}]"),
        ip => ip.to_string(),
    }
}

/// The console's link, with the control token when the server asks for one, and why it does.
fn console(config: &Config, api: SocketAddr, api_host: &str, color: bool) -> String {
    let url = format!("http://{api_host}:{}/pusher-local/console", api.port());
    let Some(token) = &config.control_token else {
        return format!("  console {url} (watch and drive the traffic in a browser)\n");
    };
    let token = token.token.expose();
    let why = match config.control_token.as_ref().is_some_and(|t| t.generated) {
        true => format!("the HTTP API listens on {api}, beyond this machine"),
        false => "--control-token is set".to_owned(),
    };
    format!(
        "  console {url}?token={token} (watch and drive the traffic in a browser)\n  {} the console and /pusher-local/… \
         ask for the control token {token} because {why} (scripts: Authorization: Bearer TOKEN)\n",
        style::kind(Kind::Connect, "token:", color),
    )
}

/// Renders the banner for the bound `(api, websocket)` addresses, with the TLS block when the
/// server has a certificate.
pub fn render(config: &Config, api: SocketAddr, websocket: SocketAddr, tls: Option<&Identity>, color: bool) -> String {
    let app = &config.apps[0];
    let (key, secret, id) = (&app.key, app.secret.expose(), app.id.as_str());
    let ws_host = client_host(websocket);
    let api_host = client_host(api);
    let (ws_port, api_port) = (websocket.port(), api.port());
    let head = |s: &str| style::kind(Kind::Connect, s, color);
    let mut out = String::new();
    let version = env!("CARGO_PKG_VERSION");
    if api == websocket {
        out += &format!(
            "{} {version} listening on {api} (WebSocket /app/{{key}} and HTTP API /apps/{{app_id}})\n",
            head("pusher-local")
        );
    } else {
        out += &format!(
            "{} {version} listening on {websocket} (WebSocket /app/{{key}}) and {api} (HTTP API /apps/{{app_id}})\n",
            head("pusher-local")
        );
    }
    if let Some(source) = &config.port_source {
        out += &format!("  port {} as the app expects ({source})\n", api.port());
    }
    out += &credentials(config);
    out += &console(config, api, &api_host, color);
    if config.dev_auth {
        out += &format!(
            "  {} --dev-auth is on: anyone on this machine can authorize any channel and sign in as any user\n",
            style::error("warning:", color)
        );
    }
    // The endpoints over the page's own scheme (the port serves both): a page on https may
    // not call http.
    let endpoints = |scheme: &str| match config.dev_auth {
        true => {
            let url = format!("{scheme}://{api_host}:{api_port}/pusher-local");
            format!(", channelAuthorization: {{ endpoint: '{url}/auth' }}, userAuthentication: {{ endpoint: '{url}/user-auth' }}")
        }
        false => String::new(),
    };
    let dev_auth = endpoints("http");
    if let Some(identity) = tls {
        out += "\n";
        out += &tls_block(identity, color);
    }
    let client = format!(
        "{{ cluster: 'local', wsHost: '{ws_host}', wsPort: {ws_port}, wssPort: {ws_port}, forceTLS: false, enabledTransports: ['ws', 'wss']{dev_auth} }}"
    );
    out += &format!("\n{}\n  new Pusher('{key}', {client})\n", head("pusher-js"));
    if tls.is_some() {
        out += &format!(
            "  new Pusher('{key}', {{ cluster: 'local', wsHost: '{ws_host}', wsPort: {ws_port}, wssPort: {ws_port}, forceTLS: true, enabledTransports: ['ws', 'wss']{} }})   (pages on https)\n",
            endpoints("https")
        );
    }
    out += &format!(
        "{}\n  new Echo({{ broadcaster: 'pusher', key: '{key}', cluster: 'local', wsHost: '{ws_host}', wsPort: {ws_port}, wssPort: {ws_port}, forceTLS: false, enabledTransports: ['ws', 'wss']{dev_auth} }})\n",
        head("Laravel Echo")
    );
    out += &format!(
        "{}\n  new Pusher({{ appId: '{id}', key: '{key}', secret: '{secret}', host: '{api_host}', port: '{api_port}', useTLS: false }})\n",
        head("Node server SDK (pusher)")
    );
    // An app already on https keeps it (both are served); otherwise plain http, the simplest.
    let scheme = match &config.app_endpoint.scheme {
        Some((s, _)) if s.trim().eq_ignore_ascii_case("https") && tls.is_some() => "https",
        _ => "http",
    };
    out += &format!(
        "{}\n  PUSHER_APP_ID={id}\n  PUSHER_APP_KEY={key}\n  PUSHER_APP_SECRET={secret}\n  PUSHER_HOST={api_host}\n  PUSHER_PORT={api_port}\n  PUSHER_SCHEME={scheme}\n  PUSHER_APP_CLUSTER=local\n",
        head(".env")
    );
    out += "\nCtrl-C stops; -v shows every frame.";
    out
}

/// The first app's credentials and where each came from, the other apps, the cluster.
fn credentials(config: &Config) -> String {
    let app = &config.apps[0];
    let (key, secret, id) = (&app.key, app.secret.expose(), app.id.as_str());
    let sources = &config.sources;
    let width = id.len().max(key.len()).max(secret.len());
    let mut out = format!("  app_id  {id:<width$}  ({})\n", sources.id);
    out += &format!("  key     {key:<width$}  ({})\n", sources.key);
    out += &format!("  secret  {secret:<width$}  ({})\n", sources.secret);
    if config.apps.len() > 1 {
        let others: Vec<String> = config.apps[1..].iter().map(|a| format!("{} (key {})", a.id, a.key)).collect();
        out += &format!("  also serving apps {}\n", others.join(", "));
    }
    if let Some(url) = config.redis_url_shown() {
        out += &format!("  cluster of every node on Redis {url} with prefix {}\n", config.redis_prefix);
    }
    out
}

/// Everything printed at start-up, once the checks have passed: the banner (or, with
/// `--log-format json`, one line saying where it listens), then one line per webhook endpoint.
/// Nothing with `-q`.
pub fn startup(config: &Config, api: SocketAddr, websocket: SocketAddr, tls: &Identity, color: bool) -> Vec<String> {
    if config.quiet {
        return Vec::new();
    }
    let mut lines = vec![match config.log_format {
        crate::printer::Format::Text => render(config, api, websocket, Some(tls), color),
        _ => format!("pusher-local {} listening on {websocket}", env!("CARGO_PKG_VERSION")),
    }];
    for warning in config.endpoint_warnings() {
        lines.push(format!("{} {warning}", style::error("warning:", color)));
    }
    for app in &config.apps {
        for target in &app.webhooks {
            let kinds = match &target.event_types {
                Some(kinds) => kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", "),
                None => "every kind".into(),
            };
            lines.push(format!("webhooks of app {} → {} ({kinds})", app.id, target.url));
        }
    }
    lines
}

/// What the server's TLS serves and, for the generated certificate, how to trust the local CA:
/// one line per common client. Also what `pusher-local tls` prints.
pub fn tls_block(identity: &Identity, color: bool) -> String {
    let head = |s: &str| style::kind(Kind::Connect, s, color);
    let mut out = String::new();
    match identity {
        Identity::Files { cert, .. } => {
            out += &format!(
                "{}\n  wss:// and https:// on the same port with {} (--tls-cert)\n",
                head("TLS"),
                cert.display()
            );
        }
        Identity::Generated { ca, opened, names } => {
            let names: Vec<String> = names.iter().map(ToString::to_string).collect();
            out += &format!(
                "{}\n  wss:// and https:// on the same port, certificate for {} signed by the local CA\n",
                head("TLS"),
                names.join(", ")
            );
            let note = match opened {
                Opened::Existing => String::new(),
                Opened::Created => "  (made now: trust it once, it is kept)".into(),
                Opened::Remade(new) => {
                    let new: Vec<String> = new.iter().map(ToString::to_string).collect();
                    format!("  (made again to cover {}: trust it again)", new.join(", "))
                }
            };
            out += &format!("  CA {}{note}\n", ca.display());
            let commands = trust_commands(ca);
            let width = commands.iter().map(|(client, _)| client.len()).max().unwrap_or(0);
            for (client, command) in commands {
                out += &format!("  {client:<width$}  {command}\n");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner_names_address_credentials_sources_and_snippets() {
        let config = Config::default();
        let addr: SocketAddr = "127.0.0.1:6001".parse().unwrap();
        let text = render(&config, addr, addr, None, false);
        assert!(text.starts_with("pusher-local "), "{text}");
        assert!(text.contains("listening on 127.0.0.1:6001"));
        assert!(text.contains("key     app-key     (built-in default)"), "{text}");
        assert!(text.contains("wsHost: '127.0.0.1', wsPort: 6001"));
        assert!(text.contains("useTLS: false"));
        assert!(text.contains("PUSHER_APP_SECRET=app-secret"));
        assert!(!text.contains('\u{1b}'));
        assert!(!text.contains("cluster of every node"), "no Redis, no cluster line");
    }

    #[test]
    fn a_cluster_node_says_which_redis_and_prefix_without_the_password() {
        let config = Config {
            redis_url: Some("redis://:pw@10.0.0.5:6379".into()),
            redis_prefix: "team".into(),
            ..Config::default()
        };
        let addr: SocketAddr = "127.0.0.1:6001".parse().unwrap();
        let text = render(&config, addr, addr, None, false);
        assert!(text.contains("cluster of every node on Redis redis://:***@10.0.0.5:6379 with prefix team"), "{text}");
        assert!(!text.contains(":pw@"));
    }

    #[test]
    fn an_app_on_https_is_shown_its_scheme_in_the_env_block() {
        let addr: SocketAddr = "127.0.0.1:6001".parse().unwrap();
        let identity = Identity::Files { cert: "c.pem".into(), key: "k.pem".into() };
        let mut config = Config::default();
        assert!(render(&config, addr, addr, Some(&identity), false).contains("PUSHER_SCHEME=http\n"));
        config.app_endpoint.scheme = Some(("https".into(), crate::config::Source::Env("PUSHER_SCHEME")));
        assert!(render(&config, addr, addr, Some(&identity), false).contains("PUSHER_SCHEME=https\n"));
        assert!(render(&config, addr, addr, None, false).contains("PUSHER_SCHEME=http\n"), "no TLS, no https");
    }

    #[test]
    fn dev_auth_is_announced_and_in_the_snippets() {
        let addr: SocketAddr = "127.0.0.1:6001".parse().unwrap();
        let plain = render(&Config::default(), addr, addr, None, false);
        assert!(!plain.contains("dev-auth") && !plain.contains("channelAuthorization"), "{plain}");
        let config = Config { dev_auth: true, ..Config::default() };
        let text = render(&config, addr, addr, None, false);
        assert!(text.contains("warning: --dev-auth is on: anyone on this machine can authorize any channel"), "{text}");
        assert!(
            text.contains("channelAuthorization: { endpoint: 'http://127.0.0.1:6001/pusher-local/auth' }"),
            "{text}"
        );
        assert!(text.contains("userAuthentication: { endpoint: 'http://127.0.0.1:6001/pusher-local/user-auth' }"));
        // The https snippet calls the endpoints over https: a page on https may not call http.
        let identity = Identity::Files { cert: "c.pem".into(), key: "k.pem".into() };
        let with_tls = render(&config, addr, addr, Some(&identity), false);
        let https = with_tls.lines().find(|l| l.contains("(pages on https)")).unwrap();
        assert!(https.contains("endpoint: 'https://127.0.0.1:6001/pusher-local/auth'"), "{https}");
        assert_eq!(text.matches("channelAuthorization").count(), 2, "pusher-js and Echo");
    }

    #[test]
    fn the_console_link_carries_the_control_token_and_says_why_it_is_asked_for() {
        let wide: SocketAddr = "0.0.0.0:6001".parse().unwrap();
        let mut config = Config::default();
        config.control_token =
            Some(crate::config::ControlToken { token: crate::apps::Secret::new("abc123"), generated: true });
        let text = render(&config, wide, wide, None, false);
        assert!(text.contains("  console http://127.0.0.1:6001/pusher-local/console?token=abc123 ("), "{text}");
        assert!(text.contains("the console and /pusher-local/… ask for the control token abc123 because the HTTP API listens on 0.0.0.0:6001"), "{text}");
        config.control_token.as_mut().unwrap().generated = false;
        let text = render(&config, "127.0.0.1:6001".parse().unwrap(), wide, None, false);
        assert!(text.contains("because --control-token is set"), "{text}");
        let open = render(&Config::default(), wide, wide, None, false);
        assert!(open.contains("/pusher-local/console (") && !open.contains("token"), "{open}");
    }

    #[test]
    fn wildcard_binds_are_dialled_on_loopback() {
        assert_eq!(client_host("0.0.0.0:1".parse().unwrap()), "127.0.0.1");
        assert_eq!(client_host("[::1]:1".parse().unwrap()), "[::1]");
    }
}
