//! The test-suite controls (issue 13): a reset between tests and disconnects on demand, so a
//! suite in any language can start each test clean and see how its app recovers.
//!
//! | Method and path | Body (JSON, all optional) | Answer |
//! |---|---|---|
//! | `POST /pusher-local/reset` | `app_id`, `code` (default 4200) | `{"closed","cache_cleared","webhooks_cleared","replays_stopped"}` |
//! | `POST /pusher-local/disconnect` | `app_id`; one of `socket_id`, `user_id`, `channel` (none: every socket); `code` (default 4200), `reason` | `{"closed":N}` |
//!
//! Sockets are closed on this node; pusher-js reconnects at once after 4200, after a back-off
//! after 41xx, and not at all after 40xx. A reset clears the webhook outbox and stops the
//! server's replays whole, whatever `app_id` says: they are the server's, not an app's. A
//! recording in progress goes on.

use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;

use super::inspect::app_param;
use super::{error, json_reply, Refusal};
use crate::protocol::{codes, SocketId};
use crate::registry::Which;
use crate::state::AppState;

/// The close code when none is asked for: clients reconnect at once.
const DEFAULT_CODE: u16 = codes::RECONNECT_NOW;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    app_id: Option<String>,
    code: Option<u16>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DisconnectRequest {
    app_id: Option<String>,
    socket_id: Option<String>,
    user_id: Option<String>,
    channel: Option<String>,
    code: Option<u16>,
    reason: Option<String>,
}

/// An empty body reads as `{}`; anything else must be the request's JSON.
fn parse<T: Default + for<'de> Deserialize<'de>>(body: &[u8], shape: &str) -> Result<T, Refusal> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| Refusal(StatusCode::BAD_REQUEST, format!("body must be {shape}: {e}")))
}

/// A close code a client understands: Pusher's 4000–4999, or 1000 (normal closure).
fn close_code(code: Option<u16>) -> Result<u16, Refusal> {
    match code.unwrap_or(DEFAULT_CODE) {
        code @ (1000 | 4000..=4999) => Ok(code),
        code => Err(Refusal(
            StatusCode::BAD_REQUEST,
            format!("code {code} is not a close code a Pusher client understands: use 4000–4999 (or 1000)"),
        )),
    }
}

/// `POST /pusher-local/reset`.
pub fn reset(state: &AppState, body: &[u8]) -> Response {
    let answer = || -> Result<Response, Refusal> {
        let request: ResetRequest = parse(body, r#"{"app_id":"…","code":4200}"#)?;
        let app = app_param(state, request.app_id.as_deref())?;
        let code = close_code(request.code)?;
        let closed = state.registry().close_where(app.as_ref(), &Which::All, code, "reset by pusher-local");
        let cache_cleared = state.registry().clear_cache(app.as_ref());
        state.webhooks().outbox().clear();
        let replays_stopped = state.replays().stop_all();
        let history_cleared = state.history().clear(app.as_ref());
        let faults_cleared = state.faults().clear();
        Ok(json_reply(
            StatusCode::OK,
            &json!({
                "closed": closed,
                "cache_cleared": cache_cleared,
                "webhooks_cleared": true,
                "replays_stopped": replays_stopped,
                "history_cleared": history_cleared,
                "faults_cleared": faults_cleared,
            }),
        ))
    };
    answer().unwrap_or_else(|Refusal(status, message)| error(status, message))
}

/// `POST /pusher-local/disconnect`.
pub fn disconnect(state: &AppState, body: &[u8]) -> Response {
    let answer = || -> Result<Response, Refusal> {
        let request: DisconnectRequest =
            parse(body, r#"{"socket_id":"…"} or {"user_id":"…"} or {"channel":"…"}, with "code" and "reason""#)?;
        let app = app_param(state, request.app_id.as_deref())?;
        let code = close_code(request.code)?;
        let which = match (&request.socket_id, &request.user_id, &request.channel) {
            (None, None, None) => Which::All,
            (Some(socket), None, None) => match SocketId::parse(socket) {
                Ok(Some(id)) => Which::Socket(id),
                _ => {
                    let message = format!("{socket:?} is not a socket id (like 123.456)");
                    return Err(Refusal(StatusCode::BAD_REQUEST, message));
                }
            },
            (None, Some(user), None) => Which::User(user.clone()),
            (None, None, Some(channel)) => Which::Channel(channel.clone()),
            _ => {
                let message = "name one of socket_id, user_id and channel, not several".to_owned();
                return Err(Refusal(StatusCode::BAD_REQUEST, message));
            }
        };
        let reason = request.reason.unwrap_or_else(|| "disconnected by pusher-local".to_owned());
        let closed = state.registry().close_where(app.as_ref(), &which, code, &reason);
        Ok(json_reply(StatusCode::OK, &json!({ "closed": closed })))
    };
    answer().unwrap_or_else(|Refusal(status, message)| error(status, message))
}
