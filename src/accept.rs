//! The accept loop: every accepted TCP socket becomes one HTTP/1.1 connection (hyper, with
//! upgrades) serving the warp filter, until the shutdown token fires; then the listener closes,
//! idle keep-alive connections are told to finish, and `serve` returns once every connection
//! has.
//!
//! This replaces `warp::serve`:
//! - HTTP/1.1 only: warp's server sniffs every new connection for the HTTP/2 preface and wraps
//!   it in a rewinding buffer; the Pusher protocol is HTTP/1.1 (WebSocket upgrades, the SDKs'
//!   REST calls), so that work is skipped.
//! - `TCP_NODELAY` from the first byte: a response is one write, and the WebSocket writer
//!   already batches what is queued, so Nagle's algorithm would only hold a frame back.
//! - The upgraded WebSocket socket is the plain `TcpStream` again ([`crate::ws`] unwraps it and
//!   drops hyper's buffers), which warp's rewinding wrapper prevented.
//!
//! One port serves plain and TLS connections alike: the first byte of a TLS connection is a
//! handshake record (0x16), which no HTTP request starts with, so each accepted socket is peeked
//! at once and either served as it is or handed to the TLS acceptor first. The peek is one
//! `recv(MSG_PEEK)` per connection (not per request or frame); plain connections are otherwise
//! served exactly as before.
//!
//! The peer address and whether the connection is TLS travel in each request's extensions as
//! [`Peer`] ([`peer`], [`secure`]), as `warp::addr::remote()` did.

use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

/// The connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The remote address.
    pub addr: SocketAddr,
    /// The connection is TLS (wss:// or https://).
    pub tls: bool,
}

/// `warp::ext::optional::<Peer>()` as a socket address.
pub fn peer() -> impl Filter<Extract = (Option<SocketAddr>,), Error = std::convert::Infallible> + Clone {
    warp::ext::optional::<Peer>().map(|peer: Option<Peer>| peer.map(|p| p.addr))
}

/// Whether the request came over TLS.
pub fn secure() -> impl Filter<Extract = (bool,), Error = std::convert::Infallible> + Clone {
    warp::ext::optional::<Peer>().map(|peer: Option<Peer>| peer.is_some_and(|p| p.tls))
}

/// The first byte of a TLS record carrying a handshake (the ClientHello).
const TLS_HANDSHAKE: u8 = 0x16;
/// A client that opens a TLS connection and does not finish its handshake is dropped after this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the accept loop reports about TLS connections that failed before their first request.
pub type TlsFailed = std::sync::Arc<dyn Fn(SocketAddr, &std::io::Error) + Send + Sync>;

/// TLS for one listener: the acceptor and who hears about failed handshakes.
#[derive(Clone)]
pub struct Tls {
    /// The server's certificate and settings.
    pub acceptor: crate::tls::Acceptor,
    /// Called for each failed handshake (an untrusted certificate, say).
    pub failed: TlsFailed,
}

/// Whether the client's first byte opens a TLS handshake. Waits for that byte without taking
/// it; a connection closed before sending anything is served as plain (hyper ends it).
async fn opens_tls(stream: &TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(stream.peek(&mut first).await, Ok(1) if first[0] == TLS_HANDSHAKE)
}

/// Serves `filter` on `listener` until `stop` is cancelled, then waits for open connections:
/// idle keep-alive connections close at once, a request in flight is answered first. With
/// `tls`, connections that open with a TLS handshake are served over TLS.
pub async fn serve(listener: TcpListener, routes: BoxedFilter<(Response,)>, stop: CancellationToken, tls: Option<Tls>) {
    let connections = TaskTracker::new();
    let mut http = http1::Builder::new();
    http.keep_alive(true);
    loop {
        let accepted = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, addr) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                accept_failed(e).await;
                continue;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        let routes = routes.clone();
        let (http, stop, tls) = (http.clone(), stop.clone(), tls.clone());
        connections.spawn(async move {
            let tls = match tls {
                None => None,
                Some(tls) => tokio::select! {
                    opens = opens_tls(&stream) => opens.then_some(tls),
                    () = stop.cancelled() => return,
                },
            };
            let Some(tls) = tls else {
                return serve_connection(&http, stream, Peer { addr, tls: false }, routes, stop).await;
            };
            let handshake = tokio::select! {
                handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor.accept(stream)) => handshake,
                () = stop.cancelled() => return,
            };
            match handshake {
                Ok(Ok(stream)) => serve_connection(&http, stream, Peer { addr, tls: true }, routes, stop).await,
                Ok(Err(e)) => (tls.failed)(addr, &e),
                Err(_) => (tls.failed)(
                    addr,
                    &std::io::Error::new(std::io::ErrorKind::TimedOut, "the handshake did not finish in 10 s"),
                ),
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// One HTTP/1.1 connection (with upgrades) over `io`, until it ends or `stop` fires.
async fn serve_connection<I>(
    http: &http1::Builder,
    io: I,
    peer: Peer,
    routes: BoxedFilter<(Response,)>,
    stop: CancellationToken,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = warp::service(routes);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(peer);
        // A clone of the boxed filter is a reference count.
        service.clone().call(request)
    });
    let mut connection = pin!(http.serve_connection(TokioIo::new(io), service).with_upgrades());
    let served = tokio::select! {
        served = connection.as_mut() => served,
        () = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = served {
        tracing::debug!(error = %e, "HTTP connection ended with an error");
    }
}

/// An accept error: a connection that died before it was accepted is skipped; anything else
/// (out of file descriptors, say) is logged and retried after a pause, as hyper's servers do.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if !matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset) {
        tracing::error!(error = %e, "accept failed; retrying in 1 s");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
