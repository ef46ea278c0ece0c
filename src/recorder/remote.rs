//! Where `capture` and `replay` connect: the same URL forms for both commands.
//!
//! Each takes `ws://`, `wss://`, `http://` or `https://` (a host and port, or a full URL), or
//! `--cluster NAME` for hosted Pusher; capture turns it into the WebSocket endpoint
//! (`wss://ws-NAME.pusher.com`), replay into the HTTP API (`https://api-NAME.pusher.com`).
//! `ws`↔`http` and `wss`↔`https` are the same server on the same port, as pusher-local serves
//! both on one.

/// A URL that is not one of the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    /// Not a URL, or another scheme.
    #[error("{0:?} is not a ws://, wss://, http:// or https:// URL (for example wss://127.0.0.1:6001)")]
    Url(String),
    /// `--url` and `--cluster` together.
    #[error("--url and --cluster name the same thing: give one")]
    Both,
    /// A cluster name that cannot be a host name.
    #[error("--cluster {0:?} is not a cluster name (such as eu, us2, ap1, mt1)")]
    Cluster(String),
}

/// Which side of the server a command talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The WebSocket endpoint (`capture`).
    WebSocket,
    /// The HTTP API (`replay`).
    Api,
}

/// The URL to use for `side`: from `--url`, from `--cluster`, else `local` (the server these
/// settings would run, `HOST:PORT`) over plain ws/http.
///
/// # Errors
/// [`RemoteError`] for a URL of another scheme, both options, or a bad cluster name.
pub fn resolve(url: Option<&str>, cluster: Option<&str>, local: &str, side: Side) -> Result<String, RemoteError> {
    let url = match (url, cluster) {
        (Some(_), Some(_)) => return Err(RemoteError::Both),
        (Some(url), None) => url.to_owned(),
        (None, Some(cluster)) => {
            if cluster.is_empty() || !cluster.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(RemoteError::Cluster(cluster.to_owned()));
            }
            let host = match side {
                Side::WebSocket => "ws",
                Side::Api => "api",
            };
            format!("https://{host}-{}.pusher.com", cluster.to_ascii_lowercase())
        }
        (None, None) => format!("http://{local}"),
    };
    convert(&url, side)
}

/// `url` with the scheme `side` speaks: ws/wss for the WebSocket, http/https for the API.
fn convert(url: &str, side: Side) -> Result<String, RemoteError> {
    let bad = || RemoteError::Url(url.to_owned());
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    let secure = match scheme.to_ascii_lowercase().as_str() {
        "ws" | "http" => false,
        "wss" | "https" => true,
        _ => return Err(bad()),
    };
    let parsed = url::Url::parse(url).map_err(|_| bad())?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad());
    }
    let scheme = match (side, secure) {
        (Side::WebSocket, false) => "ws",
        (Side::WebSocket, true) => "wss",
        (Side::Api, false) => "http",
        (Side::Api, true) => "https",
    };
    Ok(format!("{scheme}://{rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_commands_take_the_same_forms() {
        let ws = |url| resolve(Some(url), None, "127.0.0.1:6001", Side::WebSocket);
        let api = |url| resolve(Some(url), None, "127.0.0.1:6001", Side::Api);
        assert_eq!(ws("wss://ws-eu.pusher.com").unwrap(), "wss://ws-eu.pusher.com");
        assert_eq!(ws("https://127.0.0.1:6001").unwrap(), "wss://127.0.0.1:6001");
        assert_eq!(ws("http://127.0.0.1:6001/app/k?protocol=7").unwrap(), "ws://127.0.0.1:6001/app/k?protocol=7");
        assert_eq!(api("wss://127.0.0.1:6001").unwrap(), "https://127.0.0.1:6001");
        assert_eq!(api("ws://localhost:6001/").unwrap(), "http://localhost:6001/");
        assert_eq!(api("https://api-eu.pusher.com").unwrap(), "https://api-eu.pusher.com");
        for bad in ["ftp://x", "127.0.0.1:6001", "http://", "nonsense"] {
            assert_eq!(api(bad), Err(RemoteError::Url(bad.into())), "{bad}");
        }
    }

    #[test]
    fn a_cluster_names_hosted_pusher_and_nothing_names_the_local_server() {
        assert_eq!(resolve(None, Some("eu"), "x", Side::WebSocket).unwrap(), "wss://ws-eu.pusher.com");
        assert_eq!(resolve(None, Some("US2"), "x", Side::Api).unwrap(), "https://api-us2.pusher.com");
        assert_eq!(resolve(None, None, "127.0.0.1:6001", Side::WebSocket).unwrap(), "ws://127.0.0.1:6001");
        assert_eq!(resolve(None, None, "127.0.0.1:6001", Side::Api).unwrap(), "http://127.0.0.1:6001");
        assert_eq!(resolve(Some("ws://a"), Some("eu"), "x", Side::Api), Err(RemoteError::Both));
        assert_eq!(resolve(None, Some("e/u"), "x", Side::Api), Err(RemoteError::Cluster("e/u".into())));
    }
}
