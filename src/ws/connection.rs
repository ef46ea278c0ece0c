//! One task per socket: reads frames into `ClientMessage`s for the session, writes the outbox to
//! the socket (several queued frames are written with one flush), pings idle clients (a
//! `pusher:ping` and a WebSocket Ping) and closes with 4201 when no reply comes, and closes with
//! 1001 going away on shutdown.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{sleep, Instant, Timeout};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::apps::App;
use crate::error::{ClientError, HandshakeError};
use crate::printer::Line;
use crate::protocol::{codes, server, Frame};
use crate::registry::{Client, Outbox, OutboxReceiver, Outgoing, Transport};
use crate::session::{register, Session};
use crate::state::AppState;

/// How long the closing handshake may take before the socket is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Most frames written before one flush.
const WRITE_BATCH: usize = 64;

async fn close<S>(ws: &mut WebSocketStream<S>, code: u16, reason: &str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let frame = CloseFrame { code: CloseCode::from(code), reason: reason.to_owned().into() };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.close(Some(frame))).await;
}

/// Refuses a connection: `pusher:error` with a numeric code, then a close frame with it.
/// (Not an `async fn`, for the reason given on [`run`].)
#[allow(clippy::manual_async_fn)] // deliberate: see `run`
pub fn refuse<S>(
    state: AppState,
    mut ws: WebSocketStream<S>,
    key: String,
    error: HandshakeError,
    remote: Option<SocketAddr>,
) -> impl std::future::Future<Output = ()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    async move {
        let code = error.close_code();
        let reason = error.to_string();
        let frame = server::error(Some(code), &reason);
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.send(Message::Text(frame))).await;
        close(&mut ws, code, &reason).await;
        state.printer().line(Line::Refused { key, code, reason, remote });
    }
}

/// Serves one admitted connection until it closes.
///
/// A plain function returning an `async move` block rather than an `async fn`: an `async fn`
/// keeps each argument twice in its state (rust-lang/rust#62958), and the WebSocket stream alone
/// is 312 bytes that every idle connection would carry twice.
#[allow(clippy::manual_async_fn)] // deliberate: an async fn would be larger, as said above
pub fn run<S>(
    state: AppState,
    mut ws: WebSocketStream<S>,
    app: Arc<App>,
    remote: Option<SocketAddr>,
    user_agent: Option<Box<str>>,
) -> impl std::future::Future<Output = ()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    async move {
        let (activity_timeout, pong_timeout) = (state.config().activity_timeout, state.config().pong_timeout);
        let client = Client::new(Transport::Ws, remote, user_agent.as_deref());
        let (socket_id, outbox, mut outgoing) = match register(&state, &app, client) {
            Ok(registered) => registered,
            Err(error) => return Box::pin(refuse(state.clone(), ws, app.key.clone(), error, remote)).await,
        };
        let app_id = app.id.clone();
        let mut session = Session::start(state.clone(), app, socket_id, outbox, remote);

        let mut batch = Vec::new();
        // The idle timer is not moved on every inbound frame (a timer-wheel update each time);
        // the frame's time is noted, and when the timer fires early it is re-armed from there.
        let idle = sleep(activity_timeout);
        tokio::pin!(idle);
        let mut last_heard = Instant::now();
        let mut awaiting_pong = false;
        // Authorized connections (an app option): boxed, so sockets of other apps pay nothing.
        let mut authorize_by = app_authorization_deadline(&session);
        let (code, reason, we_close): Ending = loop {
            tokio::select! {
                biased;
                out = outgoing.recv(&mut batch, WRITE_BATCH) => match out {
                    Outgoing::Frames => {
                        outgoing.frames_out(batch.len());
                        state.printer().frames_out(socket_id, &app_id, &batch);
                        if let Err(e) = write(&mut ws, &mut batch, &outgoing).await {
                            break (None, format!("write failed: {e}").into(), false);
                        }
                    }
                    Outgoing::Close(code, reason) => break (Some(code), reason, true),
                },
                message = ws.next() => {
                    last_heard = Instant::now();
                    awaiting_pong = false;
                    match received(message) {
                        Received::Text(text) => session.receive(&text).await,
                        Received::Refused(error) => session.reply_error(&error),
                        Received::Nothing => {}
                        Received::End(ending) => break ending,
                    }
                }
                () = until(&mut authorize_by) => {
                    if !session.is_authorized() {
                        session.outbox().close(codes::UNAUTHORIZED, "Connection not authorized within timeout");
                    }
                    authorize_by = None;
                }
                () = &mut idle => match on_idle(last_heard, awaiting_pong, activity_timeout) {
                    Idle::Quiet(until) => idle.as_mut().reset(until),
                    Idle::Unanswered => {
                        break (Some(codes::PONG_NOT_RECEIVED), "Pong reply not received in time".into(), true);
                    }
                    Idle::Ping => {
                        if let Ok(Err(e)) = ping(&mut ws, session.outbox()).await {
                            break (None, format!("write failed: {e}").into(), false);
                        }
                        awaiting_pong = true;
                        idle.as_mut().reset(Instant::now() + pong_timeout);
                    }
                },
            }
        };
        if let (Some(code), true) = (code, we_close) {
            Box::pin(close_saying_why(&mut ws, code, &reason)).await;
        }
        Box::pin(session.end()).await;
        state.printer().line(Line::Disconnected { socket: socket_id, app: app_id, code, reason: reason.into_owned() });
    }
}

/// How a connection ends: the close code, the reason, and whether we send the close frame.
type Ending = (Option<u16>, Cow<'static, str>, bool);

/// Writes the batch (everything that was waiting) with one flush. A client that stops reading
/// blocks the write; a close request (4100 when its outbox overflowed, 4200 at shutdown) must
/// still get through, so it abandons the write. (Not an `async fn`, for the reason given on
/// [`run`]: its state is part of every connection's.)
#[allow(clippy::manual_async_fn)] // deliberate: see above
fn write<'a, S>(
    ws: &'a mut WebSocketStream<S>,
    batch: &'a mut Vec<Frame>,
    outgoing: &'a OutboxReceiver,
) -> impl std::future::Future<Output = Result<(), WsError>> + 'a
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    async move {
        let write = async {
            for frame in batch.drain(..) {
                ws.feed(Message::Text(frame)).await?;
            }
            ws.flush().await
        };
        let written = tokio::select! {
            result = write => result,
            () = outgoing.closing() => Ok(()),
        };
        batch.clear();
        written
    }
}

/// What a message read from the socket asks of the connection.
enum Received {
    /// A text frame, for the session.
    Text(Frame),
    /// A frame the session never sees, answered with `pusher:error`.
    Refused(ClientError),
    /// Nothing more to do (a Ping or a Pong, which count as activity).
    Nothing,
    /// The connection ends.
    End(Ending),
}

/// What the connection makes of `message` (`None`: the stream ended).
fn received(message: Option<Result<Message, WsError>>) -> Received {
    match message {
        Some(Ok(Message::Text(text))) => Received::Text(text),
        Some(Ok(Message::Binary(_))) => Received::Refused(ClientError::BinaryFrame),
        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Received::Nothing,
        Some(Ok(Message::Close(frame))) => {
            let (code, reason) =
                frame.map_or((None, String::new()), |f| (Some(u16::from(f.code)), f.reason.to_string()));
            Received::End((code, format!("by client {reason}").trim_end().to_owned().into(), false))
        }
        Some(Err(WsError::Utf8(_))) => {
            Received::End((Some(codes::WS_INVALID_PAYLOAD), "Invalid UTF-8 in a text frame".into(), true))
        }
        Some(Err(WsError::Capacity(e))) => {
            Received::End((Some(codes::WS_MESSAGE_TOO_BIG), format!("{e}").into(), true))
        }
        Some(Err(e)) => Received::End((None, format!("connection error: {e}").into(), false)),
        None => Received::End((None, "connection closed".into(), false)),
    }
}

/// What the idle timer firing means.
#[derive(Debug, PartialEq, Eq)]
enum Idle {
    /// The client was heard from since: wait until this long after that.
    Quiet(Instant),
    /// The client has been quiet a whole activity timeout: ping it.
    Ping,
    /// The ping went unanswered.
    Unanswered,
}

/// The idle timer fired: what now, given when the client was last heard from and whether a
/// ping awaits its answer.
fn on_idle(last_heard: Instant, awaiting_pong: bool, activity_timeout: Duration) -> Idle {
    let quiet_until = last_heard + activity_timeout;
    if awaiting_pong {
        Idle::Unanswered
    } else if quiet_until > Instant::now() {
        Idle::Quiet(quiet_until)
    } else {
        Idle::Ping
    }
}

/// Pings an idle client: a `pusher:ping` and a WebSocket Ping. The Java and Swift clients never
/// answer `pusher:ping`; their WebSocket libraries (like browsers) do answer a protocol Ping, and
/// any inbound frame counts as activity. Without it an idle Java/Swift client that only receives
/// would be closed with 4201 every activity timeout plus pong wait.
fn ping<'a, S>(
    ws: &'a mut WebSocketStream<S>,
    outbox: &Outbox,
) -> Timeout<futures_util::sink::Send<'a, WebSocketStream<S>, Message>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    outbox.send(server::ping());
    tokio::time::timeout(CLOSE_TIMEOUT, ws.send(Message::Ping(Bytes::new())))
}

/// Closes with `code`. A shutdown or an unauthorized connection is first told why in a
/// `pusher:error`, as real Pusher does.
async fn close_saying_why<S>(ws: &mut WebSocketStream<S>, code: u16, reason: &str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if matches!(code, codes::RECONNECT_NOW | codes::UNAUTHORIZED) {
        let frame = server::error(Some(code), reason);
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.send(Message::Text(frame))).await;
    }
    close(ws, code, reason).await;
}

fn app_authorization_deadline(session: &Session) -> Option<std::pin::Pin<Box<tokio::time::Sleep>>> {
    session.app().authorized_connections_timeout.map(|secs| Box::pin(sleep(Duration::from_secs(secs))))
}

/// Resolves when the deadline passes; never when there is none.
async fn until(deadline: &mut Option<std::pin::Pin<Box<tokio::time::Sleep>>>) {
    match deadline {
        Some(sleep) => sleep.as_mut().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of what `f` returns, without calling it.
    fn returned_size<A, B, C, D, E, F>(_: impl Fn(A, B, C, D, E) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every idle socket carries this future: it must not grow. 1104 bytes is what it was (test
    /// profile, over a `DuplexStream`) before `run` was split up (issue 15); 1072 after.
    #[test]
    fn the_connection_future_does_not_grow() {
        let size = returned_size(run::<tokio::io::DuplexStream>);
        assert!(size <= 1104, "ws::connection::run's future is {size} bytes, more than the 1104 it was");
    }

    #[test]
    fn idle_timer_waits_pings_then_gives_up() {
        let timeout = Duration::from_secs(120);
        let just_heard = Instant::now();
        assert_eq!(on_idle(just_heard, false, timeout), Idle::Quiet(just_heard + timeout));
        assert_eq!(on_idle(just_heard, false, Duration::ZERO), Idle::Ping);
        assert_eq!(on_idle(just_heard, true, timeout), Idle::Unanswered);
    }
}
