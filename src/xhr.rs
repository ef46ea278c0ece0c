//! pusher-js's HTTP fallback transports, for clients whose WebSockets fail or are disabled:
//! `xhr_streaming` (one long response) and `xhr` (long polling) to receive, `xhr_send` to send,
//! under `…/app/{key}/{server}/{session}/…` (pusher-js's `httpPath`, `/pusher` by default).
//!
//! An HTTP session is a socket like any other: the same [`Session`] state machine, registry entry
//! and [`Outbox`](crate::registry::Outbox) as a WebSocket, so everything else (channels, presence,
//! client events, 4009 on terminate, 4200 on shutdown) works unchanged. Only the framing differs,
//! one frame per line as pusher-js reads it: `o` (open), `a["frame",…]` (frames), `h` (heartbeat),
//! `c[code,"reason"]` (close). Every response allows cross-origin requests: pusher-js sends them
//! from the app's page with `Content-Type: application/json`, which needs a preflight.
//!
//! A session lives while a receive request is attached, [`DETACHED_FOR`] after a poll was
//! answered (a polling client asks again at once) and [`ABANDONED_FOR`] after the client dropped
//! its request (a closed page never asks again).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, Instant};
use warp::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::apps::App;
use crate::error::{ClientError, HandshakeError};
use crate::printer::Line;
use crate::protocol::{codes, server, Frame};
use crate::registry::{Client, Outgoing, Transport};
use crate::rest::reply::plain;
use crate::session::{check_protocol, register, Session};
use crate::state::AppState;

/// How long a session waits for the next poll after answering one (pusher-js asks again at
/// once; this allows for a busy page).
pub const DETACHED_FOR: Duration = Duration::from_secs(5);
/// How long a session outlives a receive request the client abandoned (pusher-js does that
/// when it disconnects, or to replace a stream that grew too long, at once).
pub const ABANDONED_FOR: Duration = Duration::from_secs(2);
/// A streaming response gets `h` this often; a held poll is answered with `h` after this long
/// (pusher-js's HTTP transports wait 30 s for a pong).
const HEARTBEAT: Duration = Duration::from_secs(25);
/// How long a close waits for a receive request to carry it (a polling client between polls).
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Lines a streaming response may hold unread before the session counts as a slow consumer.
const STREAM_BACKLOG: usize = 64;
/// Most frames one `xhr_send` body may carry at the size limit (pusher-js sends one).
const SEND_BODY_FRAMES: usize = 16;
/// Most frames in one `a[…]` line.
const BATCH: usize = 64;

/// Which request of the transport a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `xhr_streaming`: receive, one response that stays open.
    Streaming,
    /// `xhr`: receive, one response per batch (long polling).
    Polling,
    /// `xhr_send`: client to server.
    Send,
}

/// `…/app/{key}/{server}/{session}/{kind}` → (key, `key/server/session`, kind).
fn parse_path(path: &str) -> Option<(&str, String, Kind)> {
    let mut parts = path.rsplitn(6, '/');
    let kind = match parts.next()? {
        "xhr_streaming" => Kind::Streaming,
        "xhr" => Kind::Polling,
        "xhr_send" => Kind::Send,
        _ => return None,
    };
    let session = parts.next().filter(|s| !s.is_empty())?;
    let server = parts.next().filter(|s| !s.is_empty())?;
    let key = parts.next().filter(|s| !s.is_empty())?;
    (parts.next()? == "app").then(|| (key, format!("{key}/{server}/{session}"), kind))
}

/// The open sessions, by `key/server/session`.
#[derive(Debug, Clone, Default)]
struct Sessions(Arc<Mutex<HashMap<String, mpsc::Sender<Command>>>>);

impl Sessions {
    fn get(&self, id: &str) -> Option<mpsc::Sender<Command>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }

    fn insert(&self, id: String, commands: mpsc::Sender<Command>) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(id, commands);
    }

    /// Removes `id` if it is still this session's entry.
    fn remove(&self, id: &str, commands: &mpsc::Sender<Command>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(id).is_some_and(|c| c.same_channel(commands)) {
            map.remove(id);
        }
    }
}

/// What a request asks of its session's task.
#[derive(Debug)]
enum Command {
    /// Frames from `xhr_send`.
    Send(Vec<String>),
    /// A frame refused before it reached the session (over the size limit): answered with
    /// `pusher:error`, as on a WebSocket.
    Refused(ClientError),
    /// A receive request to answer.
    Receive(Receiver),
}

/// Where the session's next lines go.
#[derive(Debug)]
enum Receiver {
    /// An open `xhr_streaming` response.
    Stream(mpsc::Sender<Bytes>),
    /// A held `xhr` poll: answered once (then `None`), and the client asks again.
    Poll(Option<oneshot::Sender<Bytes>>),
}

impl Receiver {
    /// Hands over `line`. `Ok(true)`: the receiver can take more; `Ok(false)`: it is used up
    /// (a poll); `Err`: it is gone or, for a stream, full.
    fn deliver(&mut self, line: Bytes) -> Result<bool, ()> {
        match self {
            Receiver::Stream(tx) => tx.try_send(line).map(|()| true).map_err(drop),
            Receiver::Poll(tx) => match tx.take() {
                Some(tx) => tx.send(line).map(|()| false).map_err(drop),
                None => Err(()),
            },
        }
    }

    /// Resolves when the client has gone (the response was dropped).
    async fn gone(&mut self) {
        match self {
            Receiver::Stream(tx) => tx.closed().await,
            Receiver::Poll(Some(tx)) => tx.closed().await,
            Receiver::Poll(None) => {}
        }
    }
}

/// An `a[…]` line carrying `frames`, each a JSON string.
fn frames_line(frames: &[Frame]) -> Bytes {
    let mut line = String::with_capacity(4 + frames.iter().map(|f| f.len() + 8).sum::<usize>());
    line.push_str("a[");
    for (i, frame) in frames.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        // Serializing a str cannot fail.
        line.push_str(&serde_json::to_string(frame.as_str()).expect("a string serializes"));
    }
    line.push_str("]\n");
    Bytes::from(line)
}

/// A `c[code,"reason"]` line.
fn close_line(code: u16, reason: &str) -> Bytes {
    Bytes::from(format!("c{}\n", serde_json::json!([code, reason])))
}

/// Logs a refused session and returns what its client is told.
fn refuse(state: &AppState, key: &str, error: &HandshakeError, remote: Option<SocketAddr>) -> Bytes {
    let reason = error.to_string();
    state.printer().line(Line::Refused { key: key.to_owned(), code: error.close_code(), reason, remote });
    refusal(error)
}

/// A refused session: open, say why in a `pusher:error` (as a WebSocket refusal does), close.
fn refusal(error: &HandshakeError) -> Bytes {
    let reason = error.to_string();
    let mut body = b"o\n".to_vec();
    body.extend_from_slice(&frames_line(&[server::error(Some(error.close_code()), &reason)]));
    body.extend_from_slice(&close_line(error.close_code(), &reason));
    Bytes::from(body)
}

/// The routes: `POST …/app/{key}/{server}/{session}/xhr_streaming|xhr|xhr_send`, and `OPTIONS`
/// on the same paths for the browser's preflight. Any other path is not ours (rejected, so the
/// next route tries it).
pub fn route(state: AppState) -> warp::filters::BoxedFilter<(Response,)> {
    let sessions = Sessions::default();
    warp::path::full()
        .and_then(|path: warp::path::FullPath| async move {
            parse_path(path.as_str())
                .map(|(key, id, kind)| (key.to_owned(), id, kind))
                .ok_or_else(warp::reject::not_found)
        })
        .untuple_one()
        .and(warp::method())
        .and(warp::header::headers_cloned())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::body::bytes())
        .and(crate::accept::peer())
        .and_then(
            move |key: String,
                  id: String,
                  kind: Kind,
                  method: Method,
                  headers: HeaderMap,
                  query: String,
                  body: Bytes,
                  remote: Option<SocketAddr>| {
                let (state, sessions) = (state.clone(), sessions.clone());
                async move {
                    let mut response = if method == Method::OPTIONS {
                        preflight(&headers)
                    } else if method != Method::POST {
                        plain(StatusCode::METHOD_NOT_ALLOWED, "The HTTP transports take POST\n")
                    } else {
                        match kind {
                            Kind::Send => send(&state, &sessions, &id, &body).await,
                            Kind::Streaming | Kind::Polling => {
                                let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok());
                                let opening = Opening { query: &query, remote, user_agent };
                                receive(state, &sessions, id, &key, kind, opening).await
                            }
                        }
                    };
                    allow_origin(&mut response, &headers);
                    Ok::<_, Infallible>(response)
                }
            },
        )
        .boxed()
}

/// CORS: any page may use the transports (real Pusher serves them to every origin).
fn allow_origin(response: &mut Response, request: &HeaderMap) {
    let origin = request.get(header::ORIGIN).cloned().unwrap_or(HeaderValue::from_static("*"));
    let h = response.headers_mut();
    if origin != "*" {
        h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
}

fn preflight(request: &HeaderMap) -> Response {
    let mut response = plain(StatusCode::NO_CONTENT, "");
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST, OPTIONS"));
    let asked = request.get(header::ACCESS_CONTROL_REQUEST_HEADERS).cloned();
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.unwrap_or(HeaderValue::from_static("Content-Type")));
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    response
}

/// `xhr_send`: a JSON array of frames, each a JSON string (`[]` is pusher-js's heartbeat).
async fn send(state: &AppState, sessions: &Sessions, id: &str, body: &[u8]) -> Response {
    let Some(commands) = sessions.get(id) else {
        return plain(StatusCode::NOT_FOUND, "No such session: open it with xhr_streaming or xhr first\n");
    };
    let max = state.config().max_message_bytes;
    if body.len() > SEND_BODY_FRAMES * (max + 64) {
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "The xhr_send body is over the size limit\n");
    }
    let frames = match serde_json::from_slice::<Vec<String>>(body) {
        Ok(frames) => frames,
        Err(_) => {
            return plain(StatusCode::BAD_REQUEST, "Broken JSON encoding: the body must be an array of JSON strings\n")
        }
    };
    if let Some(frame) = frames.iter().find(|f| f.len() > max) {
        // As on a WebSocket: the frame is refused, the session stays.
        let error = ClientError::FrameTooLarge { len: frame.len(), max };
        let _ = commands.send(Command::Refused(error)).await;
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "A frame is over the size limit\n");
    }
    if frames.is_empty() {
        // A heartbeat: the request itself shows the client is there.
        return plain(StatusCode::NO_CONTENT, "");
    }
    match commands.send(Command::Send(frames)).await {
        Ok(()) => plain(StatusCode::NO_CONTENT, ""),
        Err(_) => plain(StatusCode::NOT_FOUND, "The session has ended\n"),
    }
}

/// Who asks to receive, for a session it opens.
struct Opening<'a> {
    query: &'a str,
    remote: Option<SocketAddr>,
    user_agent: Option<&'a str>,
}

/// `xhr_streaming` / `xhr`: attaches to the session, or opens one.
async fn receive(
    state: AppState,
    sessions: &Sessions,
    id: String,
    key: &str,
    kind: Kind,
    opening: Opening<'_>,
) -> Response {
    let Opening { query, remote, user_agent } = opening;
    let (receiver, answer) = match kind {
        Kind::Streaming => {
            let (tx, rx) = mpsc::channel(STREAM_BACKLOG);
            let mut response = warp::reply::stream(Lines(rx)).into_response();
            set_text_headers(&mut response);
            (Receiver::Stream(tx), Answer::Stream(response))
        }
        Kind::Polling | Kind::Send => {
            let (tx, rx) = oneshot::channel();
            (Receiver::Poll(Some(tx)), Answer::Poll(rx))
        }
    };
    let receiver = match sessions.get(&id) {
        Some(commands) => match commands.send(Command::Receive(receiver)).await {
            Ok(()) => return answer.into_response().await,
            // The session ended just now: open a new one.
            Err(mpsc::error::SendError(Command::Receive(receiver))) => receiver,
            Err(_) => unreachable!("a Receive was sent"),
        },
        None => receiver,
    };
    if state.shutdown().is_cancelled() {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "pusher-local is shutting down\n");
    }
    let admission =
        check_protocol(query).and_then(|()| state.apps().find_by_key(key).cloned().ok_or(HandshakeError::UnknownApp));
    let app = match admission {
        Ok(app) => app,
        Err(error) => return text_response(refuse(&state, key, &error, remote)),
    };
    let transport = if kind == Kind::Streaming { Transport::XhrStreaming } else { Transport::XhrPolling };
    let client = Client::new(transport, remote, user_agent);
    let (commands, inbox) = mpsc::channel(16);
    sessions.insert(id.clone(), commands.clone());
    let task_sessions = sessions.clone();
    state.shutdown().tracker().clone().spawn(async move {
        run(state, app, client, inbox, receiver).await;
        task_sessions.remove(&id, &commands);
    });
    answer.into_response().await
}

/// What a receive request answers with.
enum Answer {
    /// A streaming response: its lines come as the session hands them over.
    Stream(Response),
    /// A poll: one answer, once the session has something (or the heartbeat is due).
    Poll(oneshot::Receiver<Bytes>),
}

impl Answer {
    async fn into_response(self) -> Response {
        match self {
            Answer::Stream(response) => response,
            // The session ended without answering: tell the client, which reconnects.
            Answer::Poll(rx) => {
                text_response(rx.await.unwrap_or_else(|_| close_line(codes::RECONNECT_NOW, "session ended")))
            }
        }
    }
}

fn text_response(body: Bytes) -> Response {
    let mut response = Response::new(body.into());
    set_text_headers(&mut response);
    response
}

fn set_text_headers(response: &mut Response) {
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/javascript; charset=UTF-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store, no-cache, must-revalidate, max-age=0"));
}

/// A streaming response's body: the lines the session hands over, as they come.
struct Lines(mpsc::Receiver<Bytes>);

impl Stream for Lines {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|line| line.map(Ok))
    }
}

/// Hands `line` to the attached receiver, if any: whether it was delivered, and, when the
/// receiver is used up (a poll) or gone (or a stream is full) and so detached, the session's new
/// deadline: a poll's client asks again within [`DETACHED_FOR`], an abandoned one gets
/// [`ABANDONED_FOR`].
fn hand_over(receiver: &mut Option<Receiver>, line: Bytes) -> (bool, Option<Instant>) {
    let Some(r) = receiver.as_mut() else { return (false, None) };
    let (delivered, grace) = match r.deliver(line) {
        Ok(true) => return (true, None),
        Ok(false) => (true, DETACHED_FOR),
        Err(()) => (false, ABANDONED_FOR),
    };
    *receiver = None;
    (delivered, Some(Instant::now() + grace))
}

/// Resolves when `receiver` has gone; never when there is none.
async fn receiver_gone(receiver: &mut Option<Receiver>) {
    match receiver {
        Some(r) => r.gone().await,
        None => std::future::pending().await,
    }
}

/// One HTTP session from open to close: the counterpart of [`crate::ws::connection::run`].
async fn run(state: AppState, app: Arc<App>, client: Client, mut inbox: mpsc::Receiver<Command>, mut first: Receiver) {
    let remote = client.remote;
    let (socket_id, outbox, mut outgoing) = match register(&state, &app, client) {
        Ok(registered) => registered,
        Err(error) => {
            let _ = first.deliver(refuse(&state, &app.key, &error, remote));
            return;
        }
    };
    let mut receiver = Some(first);
    // `o` opens the session; for a poll it is the whole first answer.
    let (_, detached_until) = hand_over(&mut receiver, Bytes::from_static(b"o\n"));
    let app_id = app.id.clone();
    let mut session = Session::start(state.clone(), app, socket_id, outbox, remote);

    // The outbox's batch, and the frames waiting for a receiver.
    let (mut batch, mut pending) = (Vec::new(), Vec::new());
    let mut deadline = detached_until.unwrap_or_else(|| Instant::now() + HEARTBEAT);
    let (code, reason): (Option<u16>, std::borrow::Cow<'static, str>) = loop {
        tokio::select! {
            biased;
            out = outgoing.recv(&mut batch, BATCH) => match out {
                Outgoing::Frames => {
                    outgoing.frames_out(batch.len());
                    state.printer().frames_out(socket_id, &app_id, &batch);
                    pending.append(&mut batch);
                    if pending.len() > state.config().outbox_capacity {
                        session.outbox().close(codes::OVER_CAPACITY, "Over capacity: the client is not reading its messages fast enough");
                    }
                }
                Outgoing::Close(code, reason) => break (Some(code), reason),
            },
            command = inbox.recv() => match command {
                Some(Command::Send(frames)) => {
                    for text in frames {
                        session.receive(&text).await;
                    }
                }
                Some(Command::Refused(error)) => session.reply_error(&error),
                Some(Command::Receive(new)) => {
                    // A second receive request replaces the first (pusher-js reconnects its
                    // stream when the response grows too long); a replaced poll gets `h`.
                    if let Some(mut old) = receiver.replace(new) {
                        let _ = old.deliver(Bytes::from_static(b"h\n"));
                    }
                    deadline = Instant::now() + HEARTBEAT;
                }
                None => break (None, "server stopping".into()),
            },
            () = receiver_gone(&mut receiver) => {
                receiver = None;
                deadline = Instant::now() + ABANDONED_FOR;
            }
            () = sleep_until(deadline) => {
                if receiver.is_none() {
                    break (None, "client went away (no receive request)".into());
                }
                deadline = hand_over(&mut receiver, Bytes::from_static(b"h\n"))
                    .1
                    .unwrap_or_else(|| Instant::now() + HEARTBEAT);
            }
        }
        if let Some(until) = deliver_pending(&mut receiver, &mut pending) {
            deadline = until;
        }
    };
    if let Some(code) = code {
        let line = closing_line(&pending, code, &reason);
        if let Some(mut r) = attached(receiver, &mut inbox).await {
            let _ = r.deliver(line);
        }
    }
    Box::pin(session.end()).await;
    state.printer().line(Line::Disconnected { socket: socket_id, app: app_id, code, reason: reason.into_owned() });
}

/// Hands the frames waiting for a receiver to it, if one is attached: the session's new
/// deadline, if the receiver was detached (see [`hand_over`]).
fn deliver_pending(receiver: &mut Option<Receiver>, pending: &mut Vec<Frame>) -> Option<Instant> {
    if pending.is_empty() || receiver.is_none() {
        return None;
    }
    let (delivered, detached_until) = hand_over(receiver, frames_line(pending));
    if delivered {
        pending.clear();
    }
    detached_until
}

/// The last line of a session closed with `code`: whatever was queued goes first, then (for a
/// shutdown or an unauthorized connection) a `pusher:error` saying why, then the close.
fn closing_line(pending: &[Frame], code: u16, reason: &str) -> Bytes {
    let mut line = if pending.is_empty() { Vec::new() } else { frames_line(pending).to_vec() };
    if matches!(code, codes::RECONNECT_NOW | codes::UNAUTHORIZED) {
        line.extend_from_slice(&frames_line(&[server::error(Some(code), reason)]));
    }
    line.extend_from_slice(&close_line(code, reason));
    Bytes::from(line)
}

/// The receiver to carry a close: the attached one, or else the next receive request within
/// [`CLOSE_WAIT`] (a polling client between polls gets a moment to ask for it). (Not an `async
/// fn`, which would hold its arguments twice.)
#[allow(clippy::manual_async_fn)] // deliberate: see above
fn attached(
    receiver: Option<Receiver>,
    inbox: &mut mpsc::Receiver<Command>,
) -> impl std::future::Future<Output = Option<Receiver>> + '_ {
    async move {
        if receiver.is_some() {
            return receiver;
        }
        let next = async {
            loop {
                match inbox.recv().await {
                    Some(Command::Receive(r)) => return Some(r),
                    Some(Command::Send(_) | Command::Refused(_)) => continue,
                    None => return None,
                }
            }
        };
        tokio::time::timeout(CLOSE_WAIT, next).await.ok().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_key_session_and_kind_under_any_prefix() {
        assert_eq!(
            parse_path("/pusher/app/k/123/abcdefgh/xhr_streaming"),
            Some(("k", "k/123/abcdefgh".to_owned(), Kind::Streaming))
        );
        assert_eq!(parse_path("/app/k/1/s/xhr"), Some(("k", "k/1/s".to_owned(), Kind::Polling)));
        assert_eq!(parse_path("/x/y/app/k/1/s/xhr_send"), Some(("k", "k/1/s".to_owned(), Kind::Send)));
        assert_eq!(parse_path("/pusher/app/k/1/s/other"), None);
        assert_eq!(parse_path("/pusher/apps/k/1/s/xhr"), None);
        assert_eq!(parse_path("/app/k/1//xhr"), None);
        assert_eq!(parse_path("/apps/1/events"), None);
    }

    #[test]
    fn lines_are_framed_as_pusher_js_reads_them() {
        let frames = [Frame::from(r#"{"event":"a","data":"{\"x\":1}"}"#), Frame::from("{}")];
        assert_eq!(&frames_line(&frames)[..], br#"a["{\"event\":\"a\",\"data\":\"{\\\"x\\\":1}\"}","{}"]"#.iter().chain(b"\n").copied().collect::<Vec<u8>>().as_slice());
        assert_eq!(&close_line(4200, "bye \"now\"")[..], b"c[4200,\"bye \\\"now\\\"\"]\n");
        let refused = String::from_utf8(refusal(&HandshakeError::UnknownApp).to_vec()).unwrap();
        let lines: Vec<&str> = refused.lines().collect();
        assert_eq!(lines[0], "o");
        assert!(lines[1].starts_with("a[") && lines[1].contains("pusher:error") && lines[1].contains("4001"));
        assert!(lines[2].starts_with("c[4001,"));
    }

    /// Every HTTP session carries this future: it must not grow. 824 bytes is what it was (test
    /// profile) before `run` was split up (issue 15); 776 after.
    #[test]
    fn the_session_future_does_not_grow() {
        fn returned_size<A, B, C, D, E, F>(_: impl Fn(A, B, C, D, E) -> F) -> usize {
            std::mem::size_of::<F>()
        }
        let size = returned_size(run);
        assert!(size <= 824, "xhr::run's future is {size} bytes, more than the 824 it was");
    }
}
