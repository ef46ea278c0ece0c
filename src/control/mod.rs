//! The control HTTP API: pusher-local's own endpoints, under `/pusher-local/`, a prefix no
//! Pusher path uses. Served on the HTTP API listener, unsigned: it is a loopback tool, and it
//! never shows a secret (webhook records carry the key and the HMAC signature only).
//!
//! | Method and path | Answer |
//! |---|---|
//! | `GET /pusher-local/webhooks` | `{"webhooks":[record, …]}`, oldest first |
//! | `DELETE /pusher-local/webhooks` | forgets every record, `{}` |
//! | `GET /pusher-local/webhooks/{id}` | the record, or 404 |
//! | `POST /pusher-local/webhooks/{id}/resend` | body `{"url":"http://…"}` optional; 202 `{"id","urls"}` |
//!
//! A record: `id`, `app_id`, `time_ms`, `events`, `body` (the exact bytes sent), `headers`,
//! `deliveries` (`url`, `state`, `attempts` with `attempt`, `at_ms`, `elapsed_ms`, `status`,
//! `error`). [`client`] is the `pusher-local webhooks` command's side.

pub mod client;

use serde::Deserialize;
use serde_json::json;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::state::AppState;
use crate::webhook::ResendError;

/// The path prefix.
pub const PREFIX: &str = "pusher-local";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResendRequest {
    url: Option<String>,
}

fn json_reply(status: StatusCode, value: &impl serde::Serialize) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    json_reply(status, &json!({ "error": message.to_string() }))
}

/// Every control route.
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let s = move || {
        let state = state.clone();
        warp::any().map(move || state.clone())
    };
    let list = warp::path!("pusher-local" / "webhooks")
        .and(warp::get())
        .and(s())
        .map(|state: AppState| json_reply(StatusCode::OK, &json!({ "webhooks": state.webhooks().outbox().list() })));
    let clear = warp::path!("pusher-local" / "webhooks").and(warp::delete()).and(s()).map(|state: AppState| {
        state.webhooks().outbox().clear();
        json_reply(StatusCode::OK, &json!({}))
    });
    let show =
        warp::path!("pusher-local" / "webhooks" / u64).and(warp::get()).and(s()).map(|id, state: AppState| match state
            .webhooks()
            .outbox()
            .get(id)
        {
            Some(record) => json_reply(StatusCode::OK, &record),
            None => error(StatusCode::NOT_FOUND, ResendError::NotFound(id)),
        });
    let resend = warp::path!("pusher-local" / "webhooks" / u64 / "resend")
        .and(warp::post())
        // No content-length limit filter: it would refuse a bodyless `curl -X POST` (411).
        .and(warp::body::bytes())
        .and(s())
        .map(|id, body: bytes::Bytes, state: AppState| {
            let request: ResendRequest = if body.iter().all(u8::is_ascii_whitespace) {
                ResendRequest::default()
            } else {
                match serde_json::from_slice(&body) {
                    Ok(r) => r,
                    Err(e) => {
                        return error(StatusCode::BAD_REQUEST, format!("body must be {{\"url\":\"http://…\"}}: {e}"))
                    }
                }
            };
            match state.webhooks().resend(id, request.url.as_deref()) {
                Ok(urls) => json_reply(StatusCode::ACCEPTED, &json!({ "id": id, "urls": urls })),
                Err(e) => {
                    let status = match e {
                        ResendError::NotFound(_) => StatusCode::NOT_FOUND,
                        ResendError::NoUrl(_) | ResendError::BadUrl(_) => StatusCode::BAD_REQUEST,
                        ResendError::QueueFull => StatusCode::SERVICE_UNAVAILABLE,
                    };
                    error(status, e)
                }
            }
        });
    list.or(clear).unify().or(show).unify().or(resend).unify().boxed()
}
