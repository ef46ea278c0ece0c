//! The WebSocket edge: `GET /app/{key}` → upgrade → [`connection::run`] → `session::Session`;
//! an upgrade on any other path is refused with 4005.
//!
//! The upgrade is done here rather than with warp's `ws()` filter so that the WebSocket
//! configuration is ours (small read/write buffers per socket) and frames can be sent as shared
//! bytes; warp still does the HTTP routing.
//!
//! - [`connection`]: the per-socket task.
//! - [`read_ahead`]: the socket's reads, one system call for everything the kernel holds.
//!
//! The protocol state machine is the `session` room's, shared with the HTTP fallbacks (`xhr`).

pub mod connection;
pub mod read_ahead;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use futures_util::future::Either;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use warp::http::{header, HeaderMap, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Filter;

use self::read_ahead::ReadAhead;
use crate::accept::Peer;
use crate::apps::App;
use crate::error::HandshakeError;
use crate::rest::reply::plain;
use crate::session::check_protocol;
use crate::state::AppState;

/// The subprotocol the Swift client offers; echoed back when offered.
const SUBPROTOCOL: &str = "pusher-channels-protocol-7";

/// The `/app/{key}` route, also under a prefix (pusher-js's `wsPath`, a proxy's mount point).
/// A WebSocket upgrade on any other path is accepted only to be refused with 4005 "Path not
/// found", which pusher-js reports instead of retrying a failing handshake for ever.
pub fn route(state: AppState) -> warp::filters::BoxedFilter<(Response,)> {
    warp::get()
        .and(warp::path::full().and(warp::header::headers_cloned()).and_then(
            |path: warp::path::FullPath, headers: HeaderMap| async move {
                match app_key(path.as_str()) {
                    Some(key) => Ok((Target::App(key.to_owned()), headers)),
                    None if header_has(&headers, header::UPGRADE, "websocket") => {
                        Ok((Target::Unknown(path.as_str().to_owned()), headers))
                    }
                    None => Err(warp::reject::not_found()),
                }
            },
        ))
        .untuple_one()
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::ext::optional::<OnUpgrade>())
        .and(warp::ext::optional::<Peer>())
        .map(
            move |target: Target,
                  headers: HeaderMap,
                  query: String,
                  on_upgrade: Option<OnUpgrade>,
                  peer: Option<Peer>| {
                upgrade(state.clone(), target, &query, &headers, on_upgrade, peer)
            },
        )
        .boxed()
}

/// What the path asks for.
enum Target {
    /// `…/app/{key}`.
    App(String),
    /// Any other path (kept for the log).
    Unknown(String),
}

/// The key of `…/app/{key}` (any prefix, no trailing segment).
fn app_key(path: &str) -> Option<&str> {
    let (prefix, key) = path.rsplit_once('/')?;
    (prefix.ends_with("/app") && !key.is_empty()).then_some(key)
}

fn header_has(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case(token))
}

/// Per-socket WebSocket buffers: small, because most sockets are idle most of the time. (Public
/// for in-process drivers: the fuzz targets.)
pub fn websocket_config(state: &AppState) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(256)
        .write_buffer_size(8 * 1024)
        .max_write_buffer_size(4 * 1024 * 1024)
        .max_message_size(Some(state.config().max_message_bytes.max(64 * 1024) * 4))
        .max_frame_size(Some(state.config().max_message_bytes.max(64 * 1024) * 4))
}

fn upgrade(
    state: AppState,
    target: Target,
    query: &str,
    headers: &HeaderMap,
    on_upgrade: Option<OnUpgrade>,
    peer: Option<Peer>,
) -> Response {
    let remote = peer.map(|p| p.addr);
    let secure = peer.is_some_and(|p| p.tls);
    if state.shutdown().is_cancelled() {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "pusher-local is shutting down\n");
    }
    let ws_key = headers.get(header::SEC_WEBSOCKET_KEY);
    let (Some(ws_key), Some(on_upgrade), true, true) = (
        ws_key,
        on_upgrade,
        header_has(headers, header::CONNECTION, "upgrade"),
        header_has(headers, header::UPGRADE, "websocket"),
    ) else {
        return plain(
            StatusCode::UPGRADE_REQUIRED,
            "This is the Pusher WebSocket endpoint: connect with pusher-js or another WebSocket client.\n",
        );
    };
    let (key, admission) = match target {
        Target::App(key) => {
            let admission = check_protocol(query)
                .and_then(|()| state.apps().find_by_key(&key).cloned().ok_or(HandshakeError::UnknownApp))
                .and_then(|app| if app.tls_only && !secure { Err(HandshakeError::TlsOnly) } else { Ok(app) });
            (key, admission)
        }
        // The log's "key" is then the path that was asked for.
        Target::Unknown(path) => (path, Err(HandshakeError::PathNotFound)),
    };
    let mut response = Response::new("".into());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    // The accept key is base64, always a valid header value.
    h.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&derive_accept_key(ws_key.as_bytes())).expect("base64"),
    );
    if header_has(headers, header::SEC_WEBSOCKET_PROTOCOL, SUBPROTOCOL) {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(SUBPROTOCOL));
    }
    let config = websocket_config(&state);
    // Copied now: the headers go with the request.
    let user_agent: Option<Box<str>> = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(Into::into);
    let tracker = state.shutdown().tracker().clone();
    // One task type per transport: each task's single allocation holds only its own stream
    // (a TLS stream is several times a TCP stream's size), so plain sockets stay as small.
    if secure {
        tracker.spawn(async move {
            if let Some((io, early)) = unwrap_upgrade::<crate::tls::Stream>(on_upgrade).await {
                let ws =
                    WebSocketStream::from_partially_read(ReadAhead::new(io), early, Role::Server, Some(config)).await;
                serve(state, ws, admission, key, (remote, user_agent)).await;
            }
        });
    } else {
        tracker.spawn(async move {
            // The connection is served inline, not boxed: this task's one allocation then holds the
            // upgrade state and the connection state overlapped (measured: about 900 bytes less per
            // idle socket than a small upgrade task plus a boxed connection future).
            if let Some((io, early)) = unwrap_upgrade::<TcpStream>(on_upgrade).await {
                let ws =
                    WebSocketStream::from_partially_read(ReadAhead::new(io), early, Role::Server, Some(config)).await;
                serve(state, ws, admission, key, (remote, user_agent)).await;
            }
        });
    }
    response
}

/// Waits for hyper's upgrade and unwraps it back to the stream `accept::serve` gave hyper (a
/// TCP stream, or a TLS stream over one), which drops the boxed IO and hyper's buffers. Returns
/// the stream and the bytes the client sent right behind its handshake.
async fn unwrap_upgrade<S>(on_upgrade: OnUpgrade) -> Option<(S, Vec<u8>)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let upgraded = match on_upgrade.await {
        Ok(upgraded) => upgraded,
        Err(e) => {
            tracing::debug!(error = %e, "websocket upgrade failed");
            return None;
        }
    };
    let hyper::upgrade::Parts { io, read_buf, .. } = match upgraded.downcast::<TokioIo<S>>() {
        Ok(parts) => parts,
        Err(_) => {
            tracing::error!("upgraded connection is not the stream accept::serve made");
            return None;
        }
    };
    // `read_buf` is a view into hyper's 8 KB read buffer: holding it (even empty) for the
    // socket's life keeps that buffer (measured: 8.4 KB per idle socket instead of 3.0 KB).
    // Frames the client sent right behind its handshake are copied out, and the view is
    // dropped before the connection starts.
    let early = read_buf.to_vec();
    drop(read_buf);
    Some((io.into_inner(), early))
}

/// Runs or refuses one upgraded connection. A plain function choosing between two futures, not
/// an `async fn`, for the reason given on [`connection::run`]: its state would hold the
/// WebSocket stream a second time.
fn serve<S>(
    state: AppState,
    ws: WebSocketStream<S>,
    admission: Result<Arc<App>, HandshakeError>,
    key: String,
    (remote, user_agent): (Option<SocketAddr>, Option<Box<str>>),
) -> Either<impl Future<Output = ()>, impl Future<Output = ()>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match admission {
        Ok(app) => Either::Left(connection::run(state, ws, app, remote, user_agent)),
        Err(error) => Either::Right(connection::refuse(state, ws, key, error, remote)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_the_last_segment_after_app_with_any_prefix() {
        assert_eq!(app_key("/app/k"), Some("k"));
        assert_eq!(app_key("/ws/app/k"), Some("k"));
        assert_eq!(app_key("/app/"), None);
        assert_eq!(app_key("/apps/1"), None);
        assert_eq!(app_key("/app/k/x"), None);
        assert_eq!(app_key("/app"), None);
    }
}
