//! The control token ([`crate::config::ControlToken`]): when the HTTP API listens beyond
//! loopback (`--host 0.0.0.0`), or a token is set with `--control-token`, the console and the
//! control API answer only to requests that carry it. On loopback with no token set, the
//! machine's own user is trusted and nothing is asked.
//!
//! A request carries it as `Authorization: Bearer TOKEN`, as `X-Pusher-Local-Token: TOKEN`, as
//! `?token=TOKEN`, or in the cookie the console link sets: the banner prints
//! `/pusher-local/console?token=TOKEN`, which answers with the cookie (`HttpOnly`,
//! `SameSite=Strict`, path `/pusher-local`) and a redirect to the bare console URL, so the token
//! leaves the address bar. The cookie's name carries the port: two servers on one machine keep
//! their own.
//!
//! Not asked for: the health check, the OpenAPI document (neither shows or changes anything)
//! and `--dev-auth`'s endpoints, which the app's own pages call. Comparisons are constant time.

use subtle::ConstantTimeEq;
use warp::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use warp::reply::Response;

use super::guard::DEV_AUTH_PATHS;

/// Paths answered without the token.
const OPEN_PATHS: [&str; 2] = ["/pusher-local/health", "/pusher-local/openapi.json"];

/// The paths that show the console page (the link's target).
const CONSOLE_PATHS: [&str; 3] = ["/pusher-local/console", "/pusher-local", "/pusher-local/"];

/// The header a script may send the token in (besides `Authorization: Bearer`).
pub const HEADER: &str = "x-pusher-local-token";

/// What the token check decided for a request that needs it.
#[derive(Debug)]
pub enum Verdict {
    /// It carries the token (or needs none): on to the routes.
    Pass,
    /// The console link with the right token: set the cookie and redirect.
    Login(Response),
    /// No token, or a wrong one.
    Refused(Response),
}

/// Checks `token` on a request for `path` (a path under `/pusher-local`).
pub fn check(path: &str, method: &Method, query: &str, headers: &HeaderMap, secure: bool, token: &str) -> Verdict {
    if OPEN_PATHS.contains(&path) || DEV_AUTH_PATHS.contains(&path) {
        return Verdict::Pass;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let cookie = cookie_name(host);
    let in_query = query_token(query);
    let page = *method == Method::GET && CONSOLE_PATHS.contains(&path);
    if let (true, Some(given)) = (page, in_query.as_deref()) {
        return match same(given, token) {
            true => Verdict::Login(login(&cookie, token, secure)),
            false => Verdict::Refused(refused(page, "the token in the link is not this server's")),
        };
    }
    let carried = bearer(headers)
        .into_iter()
        .chain(headers.get_all(HEADER).iter().filter_map(|v| v.to_str().ok()).map(str::trim))
        .chain(cookies(headers, &cookie))
        .chain(in_query.as_deref())
        .collect::<Vec<_>>();
    if carried.iter().any(|given| same(given, token)) {
        return Verdict::Pass;
    }
    let why = match carried.is_empty() {
        true => "a control token is needed",
        false => "the control token given is not this server's",
    };
    Verdict::Refused(refused(page, why))
}

/// Constant-time equality.
fn same(given: &str, token: &str) -> bool {
    given.as_bytes().ct_eq(token.as_bytes()).into()
}

/// `pusher_local_token_PORT`, the port from `Host` (none: the scheme's default).
fn cookie_name(host: Option<&str>) -> String {
    let port = host
        .and_then(|h| h.rsplit_once(':'))
        .map(|(_, port)| port)
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or("default");
    format!("pusher_local_token_{port}")
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// The values of every cookie named `name`.
fn cookies<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(move |pair| pair.trim().split_once('=').filter(|(n, _)| *n == name).map(|(_, v)| v.trim()))
}

/// The `token` parameter of a query string, decoded.
fn query_token(query: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "token").map(|(_, v)| v.into_owned())
}

fn login(cookie: &str, token: &str, secure: bool) -> Response {
    let mut response = Response::new("".into());
    *response.status_mut() = StatusCode::SEE_OTHER;
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_static("/pusher-local/console"));
    let secure = if secure { "; Secure" } else { "" };
    // The token is hex (made up) or what the user chose: a cookie value must be plain ASCII.
    let value = format!("{cookie}={token}; Path=/pusher-local; HttpOnly; SameSite=Strict{secure}");
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(header::SET_COOKIE, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// 401: a page for the console's URL, the control API's JSON error otherwise.
fn refused(page: bool, why: &str) -> Response {
    let help = "open the console link printed in pusher-local's banner (…/pusher-local/console?token=…), or \
                send the token as Authorization: Bearer TOKEN; pusher-local asks for it when it listens beyond \
                loopback or was started with --control-token";
    let mut response = if page {
        let html = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>pusher-local: token needed</title>\
             </head><body style=\"font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em\">\
             <h1 style=\"font-size:1.4em\">pusher-local: {why}</h1><p data-testid=\"token-help\">To open the debug \
             console, {help}.</p></body></html>"
        );
        let mut response = Response::new(html.into());
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        response
    } else {
        super::error(StatusCode::UNAUTHORIZED, format!("{why}: {help}"))
    };
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    let headers = response.headers_mut();
    headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"pusher-local\""));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef";

    fn headers(list: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in list {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn verdict(path: &str, method: Method, query: &str, list: &[(&'static str, &str)]) -> Verdict {
        check(path, &method, query, &headers(list), false, TOKEN)
    }

    fn status(v: &Verdict) -> StatusCode {
        match v {
            Verdict::Pass => StatusCode::OK,
            Verdict::Login(r) | Verdict::Refused(r) => r.status(),
        }
    }

    #[test]
    fn the_console_link_sets_a_cookie_for_this_port_and_redirects_to_the_bare_url() {
        let v = verdict("/pusher-local/console", Method::GET, "token=0123456789abcdef", &[("host", "127.0.0.1:6001")]);
        let Verdict::Login(response) = v else { panic!("{v:?}") };
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(response.headers()[header::LOCATION], "/pusher-local/console");
        let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
        assert_eq!(cookie, "pusher_local_token_6001=0123456789abcdef; Path=/pusher-local; HttpOnly; SameSite=Strict");
        let wrong = verdict("/pusher-local/console", Method::GET, "token=nope", &[("host", "127.0.0.1:6001")]);
        let Verdict::Refused(page) = wrong else { panic!("{wrong:?}") };
        assert_eq!(page.status(), StatusCode::UNAUTHORIZED);
        assert!(page.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/html"));
    }

    #[test]
    fn the_token_passes_in_a_header_the_cookie_or_the_query_and_nothing_else_does() {
        let host = ("host", "localhost:7000");
        let path = "/pusher-local/apps";
        assert_eq!(status(&verdict(path, Method::GET, "", &[host])), StatusCode::UNAUTHORIZED);
        let passes = [
            vec![host, ("authorization", "Bearer 0123456789abcdef")],
            vec![host, ("authorization", "bearer  0123456789abcdef ")],
            vec![host, (HEADER, "0123456789abcdef")],
            vec![host, ("cookie", "other=1; pusher_local_token_7000=0123456789abcdef")],
        ];
        for list in passes {
            assert!(matches!(verdict(path, Method::GET, "", &list), Verdict::Pass), "{list:?}");
        }
        assert!(matches!(verdict(path, Method::POST, "token=0123456789abcdef", &[host]), Verdict::Pass));
        let refused = [
            vec![host, ("authorization", "Bearer 0123456789abcdeF")],
            vec![host, ("authorization", "Basic 0123456789abcdef")],
            vec![host, ("cookie", "pusher_local_token_6001=0123456789abcdef")],
            vec![host, (HEADER, "")],
        ];
        for list in refused {
            assert_eq!(status(&verdict(path, Method::GET, "", &list)), StatusCode::UNAUTHORIZED, "{list:?}");
        }
        let json = verdict("/pusher-local/replays", Method::POST, "", &[host]);
        let Verdict::Refused(response) = json else { panic!() };
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }

    #[test]
    fn health_the_api_description_and_dev_auth_need_no_token() {
        for path in
            ["/pusher-local/health", "/pusher-local/openapi.json", "/pusher-local/auth", "/pusher-local/user-auth"]
        {
            assert!(matches!(verdict(path, Method::GET, "", &[]), Verdict::Pass), "{path}");
        }
        assert_eq!(status(&verdict("/pusher-local/console", Method::GET, "", &[])), StatusCode::UNAUTHORIZED);
        assert_eq!(cookie_name(None), "pusher_local_token_default");
        assert_eq!(cookie_name(Some("[::1]:6001")), "pusher_local_token_6001");
        assert_eq!(cookie_name(Some("[::1]")), "pusher_local_token_default");
    }
}
