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
use tokio::time::{sleep, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::apps::App;
use crate::error::{ClientError, HandshakeError};
use crate::printer::Line;
use crate::protocol::{codes, server, ClientMessage};
use crate::registry::{Outbox, Outgoing};
use crate::session::{reply_error, Session, SHUTDOWN_REASON};
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
) -> impl std::future::Future<Output = ()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    async move {
        let config = state.config();
        let (activity_timeout, pong_timeout, max_message) =
            (config.activity_timeout, config.pong_timeout, config.max_message_bytes);
        let socket_id = state.next_socket_id();
        let (outbox, mut outgoing) = Outbox::new(config.outbox_capacity);
        if let Err(error) = state.registry().connect(&app, socket_id, &outbox) {
            return Box::pin(refuse(state.clone(), ws, app.key.clone(), error, remote)).await;
        }
        // Shutdown closes every registered connection; one registered just after that is closed here.
        if state.shutdown().is_cancelled() {
            outbox.close(codes::WS_GOING_AWAY, SHUTDOWN_REASON);
        }
        outbox.send(server::connection_established(socket_id, activity_timeout.as_secs()));
        let printer = state.printer().clone();
        let verbose = printer.verbose();
        printer.line(Line::Connected { socket: socket_id, app: app.id.clone(), remote });
        let app_id = app.id.clone();
        let mut session = Session::new(state.clone(), app, socket_id, outbox.clone());

        let mut batch = Vec::new();
        // The idle timer is not moved on every inbound frame (a timer-wheel update each time);
        // the frame's time is noted, and when the timer fires early it is re-armed from there.
        let idle = sleep(activity_timeout);
        tokio::pin!(idle);
        let mut last_heard = Instant::now();
        let mut awaiting_pong = false;
        // Authorized connections (an app option): boxed, so sockets of other apps pay nothing.
        let mut authorize_by = app_authorization_deadline(&session);
        // (code, reason, whether we must send the close frame)
        let (code, reason, we_close): (Option<u16>, Cow<'static, str>, bool) = loop {
            tokio::select! {
                biased;
                out = outgoing.recv(&mut batch, WRITE_BATCH) => match out {
                    Outgoing::Frames => {
                        printer.frames_out(socket_id, &app_id, &batch);
                        // Everything that was waiting goes out with one flush.
                        let write = async {
                            for frame in batch.drain(..) {
                                ws.feed(Message::Text(frame)).await?;
                            }
                            ws.flush().await
                        };
                        // A client that stops reading blocks the write; a close request (4100 when
                        // its outbox overflowed, 4200 at shutdown) must still get through.
                        let written = tokio::select! {
                            result = write => Some(result),
                            () = outgoing.closing() => None,
                        };
                        batch.clear();
                        if let Some(Err(e)) = written {
                            break (None, format!("write failed: {e}").into(), false);
                        }
                    }
                    Outgoing::Close(code, reason) => break (Some(code), reason, true),
                },
                message = ws.next() => {
                    last_heard = Instant::now();
                    awaiting_pong = false;
                    match message {
                        Some(Ok(Message::Text(text))) => {
                            if verbose {
                                printer.line(Line::FrameIn { socket: socket_id, app: app_id.clone(), frame: text.clone() });
                            }
                            let result = if text.len() > max_message {
                                Err(ClientError::FrameTooLarge { len: text.len(), max: max_message })
                            } else {
                                match ClientMessage::parse(&text) {
                                    // Boxed: the handler's state lives on the heap only while a message is handled,
                                    // which keeps every idle connection's task small.
                                    Ok(message) => Box::pin(session.handle(message)).await,
                                    Err(e) => Err(e.into()),
                                }
                            };
                            if let Err(error) = result {
                                reply_error(&state, &outbox, socket_id, &app_id, &error);
                            }
                        }
                        Some(Ok(Message::Binary(_))) => reply_error(&state, &outbox, socket_id, &app_id, &ClientError::BinaryFrame),
                        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                        Some(Ok(Message::Close(frame))) => {
                            let (code, reason) = frame.map_or((None, String::new()), |f| (Some(u16::from(f.code)), f.reason.to_string()));
                            break (code, format!("by client {reason}").trim_end().to_owned().into(), false);
                        }
                        Some(Err(WsError::Utf8(_))) => break (Some(codes::WS_INVALID_PAYLOAD), "Invalid UTF-8 in a text frame".into(), true),
                        Some(Err(WsError::Capacity(e))) => break (Some(codes::WS_MESSAGE_TOO_BIG), format!("{e}").into(), true),
                        Some(Err(e)) => break (None, format!("connection error: {e}").into(), false),
                        None => break (None, "connection closed".into(), false),
                    }
                }
                () = until(&mut authorize_by) => {
                    if !session.is_authorized() {
                        outbox.close(codes::UNAUTHORIZED, "Connection not authorized within timeout");
                    }
                    authorize_by = None;
                }
                () = &mut idle => {
                    let quiet_until = last_heard + activity_timeout;
                    if !awaiting_pong && quiet_until > Instant::now() {
                        idle.as_mut().reset(quiet_until);
                        continue;
                    }
                    if awaiting_pong {
                        break (Some(codes::PONG_NOT_RECEIVED), "Pong reply not received in time".into(), true);
                    }
                    outbox.send(server::ping());
                    // The Java and Swift clients never answer `pusher:ping`; their WebSocket
                    // libraries (like browsers) do answer a protocol Ping, and any inbound frame
                    // counts as activity. Without it an idle Java/Swift client that only receives
                    // would be closed with 4201 every activity timeout plus pong wait.
                    let ping = ws.send(Message::Ping(Bytes::new()));
                    if let Ok(Err(e)) = tokio::time::timeout(CLOSE_TIMEOUT, ping).await {
                        break (None, format!("write failed: {e}").into(), false);
                    }
                    awaiting_pong = true;
                    idle.as_mut().reset(Instant::now() + pong_timeout);
                }
            }
        };
        if we_close {
            if let Some(code) = code {
                if matches!(code, codes::RECONNECT_NOW | codes::UNAUTHORIZED) {
                    // As real Pusher does (shutdown, unauthorized): say why in a pusher:error, then close.
                    let frame = server::error(Some(code), &reason);
                    let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.send(Message::Text(frame))).await;
                }
                Box::pin(close(&mut ws, code, &reason)).await;
            }
        }
        Box::pin(session.end()).await;
        printer.line(Line::Disconnected { socket: socket_id, app: app_id, code, reason: reason.into_owned() });
    }
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
