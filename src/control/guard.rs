//! Who may drive the control API. It is a local tool's controls, answered on the same port as
//! the Pusher endpoints, so a web page the developer has open must not be able to use it:
//!
//! - **DNS rebinding**: a request is answered only when its `Host` names this machine: an IP
//!   address (a page whose origin is an IP is cross-origin to nothing here but itself),
//!   `localhost` or `*.localhost`, or a name given with `--tls-name`. A page on
//!   `evil.example` whose name now resolves to 127.0.0.1 sends `Host: evil.example` and is
//!   refused.
//! - **Cross-site requests**: a request that changes something (`POST`, `DELETE`, …) with an
//!   `Origin` other than this server's own (`scheme://` + its `Host`) is refused. Command-line
//!   tools send no `Origin` and pass.
//! - **Simple requests**: a body must be JSON (`Content-Type: application/json`). A page may
//!   POST `text/plain` or a form to any site without a CORS preflight; JSON needs one, which
//!   this API never grants.
//!
//! `--dev-auth`'s two endpoints (`/pusher-local/auth`, `/pusher-local/user-auth`) are the
//! exception, checked by [`check_dev_auth`] instead: a page on another local origin
//! (`http://localhost:3000`) must call them the way pusher-js does, with a form post. They keep
//! the `Host` check and accept an `Origin` only on a loopback host (or none); the CORS answer
//! names that origin.
//!
//! The Pusher endpoints are not guarded: pusher-js connects from any origin and the HTTP API
//! is signed.

use std::net::IpAddr;

use warp::http::{header, HeaderMap, Method, StatusCode};
use warp::reply::Response;

/// The paths [`check_dev_auth`] guards instead of [`check`].
pub const DEV_AUTH_PATHS: [&str; 2] = ["/pusher-local/auth", "/pusher-local/user-auth"];

/// Why a request to a `--dev-auth` endpoint is refused: a `Host` not naming this machine, or an
/// `Origin` whose host is not a loopback name or address. Any method and body type pass.
pub fn check_dev_auth(headers: &HeaderMap, names: &[String]) -> Result<(), (StatusCode, String)> {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(host) = text(header::HOST) {
        if !is_local_host(host, names) {
            return Err((
                StatusCode::FORBIDDEN,
                format!("pusher-local's --dev-auth answers only requests addressed to this machine, not Host {host:?}"),
            ));
        }
    }
    match text(header::ORIGIN) {
        Some(origin) if !is_loopback_origin(origin) => Err((
            StatusCode::FORBIDDEN,
            format!(
                "pusher-local's --dev-auth answers pages on this machine only (localhost, *.localhost, 127.x, [::1]), \
                 not {origin}"
            ),
        )),
        _ => Ok(()),
    }
}

/// `origin` (`scheme://host[:port]`) is a page on a loopback name or address.
pub fn is_loopback_origin(origin: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else { return false };
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") || rest.contains(['/', '@']) {
        return false;
    }
    let name = match rest.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((ip, _)) => return ip.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()),
            None => return false,
        },
        None => rest.rsplit_once(':').map_or(rest, |(name, _)| name),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    match name.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => name == "localhost" || name.ends_with(".localhost"),
    }
}

/// Why a control request is refused: the status and the message of the JSON error.
pub fn check(method: &Method, headers: &HeaderMap, secure: bool, names: &[String]) -> Result<(), (StatusCode, String)> {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let host = text(header::HOST);
    if let Some(host) = host {
        if !is_local_host(host, names) {
            return Err((
                StatusCode::FORBIDDEN,
                format!(
                    "pusher-local's control API answers only requests addressed to this machine, not Host {host:?} \
                     (protection against DNS rebinding; add the name with --tls-name if it is yours)"
                ),
            ));
        }
    }
    let changes = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !changes {
        return Ok(());
    }
    if let Some(origin) = text(header::ORIGIN) {
        let own = host.map(|h| format!("{}://{h}", if secure { "https" } else { "http" }));
        if own.as_deref() != Some(origin) {
            return Err((
                StatusCode::FORBIDDEN,
                format!(
                    "pusher-local's control API refuses requests from another web origin ({origin}): a page \
                     cannot drive it; use the pusher-local commands, curl, or a page served by this server"
                ),
            ));
        }
    }
    let has_body = text(header::CONTENT_LENGTH).is_some_and(|n| n.trim() != "0")
        || headers.contains_key(header::TRANSFER_ENCODING);
    let json = text(header::CONTENT_TYPE)
        .and_then(|t| t.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if has_body && !json {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the body as JSON with Content-Type: application/json (curl: -H 'content-type: application/json')"
                .into(),
        ));
    }
    Ok(())
}

/// `host` (a `Host` header: name or address, and maybe a port) names this machine.
fn is_local_host(host: &str, names: &[String]) -> bool {
    let name = match host.strip_prefix('[') {
        // [v6]:port
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host
            .rsplit_once(':')
            .map_or(host, |(name, port)| if port.bytes().all(|b| b.is_ascii_digit()) { name } else { host }),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name.parse::<IpAddr>().is_ok()
        || name == "localhost"
        || name.ends_with(".localhost")
        || names.iter().any(|n| n.eq_ignore_ascii_case(&name))
}

/// The refusal as the control API's JSON error.
pub fn refusal(status: StatusCode, message: &str) -> Response {
    super::error(status, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(list: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in list {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn dev_auth_takes_forms_from_loopback_origins_only() {
        for ok in ["http://localhost:3000", "https://app.localhost", "http://127.0.0.1:5173", "http://[::1]:8080"] {
            assert!(is_loopback_origin(ok), "{ok}");
        }
        for bad in ["http://evil.example", "http://localhost.evil.example", "null", "http://10.0.0.5:3000", "file://"] {
            assert!(!is_loopback_origin(bad), "{bad}");
        }
        let form = headers(&[
            ("host", "127.0.0.1:6001"),
            ("origin", "http://localhost:3000"),
            ("content-type", "application/x-www-form-urlencoded"),
            ("content-length", "20"),
        ]);
        assert!(check_dev_auth(&form, &[]).is_ok());
        assert!(check(&Method::POST, &form, false, &[]).is_err(), "the rest of the control API still refuses it");
        let evil = headers(&[("host", "127.0.0.1:6001"), ("origin", "http://evil.example")]);
        assert_eq!(check_dev_auth(&evil, &[]).unwrap_err().0, StatusCode::FORBIDDEN);
        let rebound = headers(&[("host", "evil.example:6001")]);
        assert_eq!(check_dev_auth(&rebound, &[]).unwrap_err().0, StatusCode::FORBIDDEN);
        assert!(check_dev_auth(&headers(&[("host", "localhost:6001")]), &[]).is_ok(), "no Origin: a tool");
    }

    #[test]
    fn hosts_that_name_this_machine_pass_and_others_do_not() {
        let names = vec!["app.test".to_owned()];
        for ok in [
            "127.0.0.1:6001",
            "localhost:6001",
            "LOCALHOST",
            "api.localhost:1",
            "[::1]:6001",
            "10.0.0.5:6001",
            "app.test:6001",
        ] {
            assert!(is_local_host(ok, &names), "{ok}");
        }
        for bad in ["evil.example", "evil.example:6001", "localhost.evil.example", "127.0.0.1.nip.io:6001"] {
            assert!(!is_local_host(bad, &names), "{bad}");
        }
    }

    #[test]
    fn cross_origin_changes_and_non_json_bodies_are_refused() {
        let post = Method::POST;
        let own = headers(&[
            ("host", "127.0.0.1:6001"),
            ("origin", "http://127.0.0.1:6001"),
            ("content-type", "application/json"),
            ("content-length", "2"),
        ]);
        assert!(check(&post, &own, false, &[]).is_ok());
        let foreign = headers(&[("host", "127.0.0.1:6001"), ("origin", "https://evil.example")]);
        assert_eq!(check(&post, &foreign, false, &[]).unwrap_err().0, StatusCode::FORBIDDEN);
        assert!(check(&Method::GET, &foreign, false, &[]).is_ok(), "reading is not changing");
        let plain = headers(&[("host", "127.0.0.1:6001"), ("content-type", "text/plain"), ("content-length", "20")]);
        assert_eq!(check(&post, &plain, false, &[]).unwrap_err().0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let bodyless = headers(&[("host", "127.0.0.1:6001"), ("content-length", "0")]);
        assert!(check(&post, &bodyless, false, &[]).is_ok(), "curl -X POST with no body");
        let rebound = headers(&[("host", "evil.example:6001")]);
        assert_eq!(check(&Method::GET, &rebound, false, &[]).unwrap_err().0, StatusCode::FORBIDDEN);
        let tls = headers(&[("host", "localhost:6001"), ("origin", "https://localhost:6001")]);
        assert!(check(&Method::DELETE, &tls, true, &[]).is_ok());
        assert!(check(&Method::DELETE, &tls, false, &[]).is_err(), "http page vs https origin");
    }
}
