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
//! The peer address travels in each request's extensions as [`Peer`]
//! (`warp::ext::optional::<Peer>()`), as `warp::addr::remote()` did.

use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

/// The remote address of the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// `warp::ext::optional::<Peer>()` as a socket address.
pub fn peer() -> impl Filter<Extract = (Option<SocketAddr>,), Error = std::convert::Infallible> + Clone {
    warp::ext::optional::<Peer>().map(|peer: Option<Peer>| peer.map(|Peer(addr)| addr))
}

/// Serves `filter` on `listener` until `stop` is cancelled, then waits for open connections:
/// idle keep-alive connections close at once, a request in flight is answered first.
pub async fn serve(listener: TcpListener, routes: BoxedFilter<(Response,)>, stop: CancellationToken) {
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
        let service = warp::service(routes.clone());
        let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(Peer(addr));
            // A clone of the boxed filter is a reference count.
            service.clone().call(request)
        });
        let connection = http.serve_connection(TokioIo::new(stream), service).with_upgrades();
        let stop = stop.clone();
        connections.spawn(async move {
            let mut connection = pin!(connection);
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
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
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
