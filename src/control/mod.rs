//! The control HTTP API: pusher-local's own endpoints, under `/pusher-local/`, a prefix no
//! Pusher path uses. Served on the HTTP API listener, unsigned: it is a loopback tool. Only
//! `GET /pusher-local/apps` shows the apps' secrets (a test signs with them; this machine has
//! them already); webhook records carry the key and the HMAC signature only.
//!
//! | Method and path | Answer |
//! |---|---|
//! | `GET /pusher-local/health` | 200 `{"status":"serving"}`; 503 `{"status":"draining"}` or `{"status":"redis_down","reason"}` |
//! | `POST /pusher-local/reset`, `POST /pusher-local/disconnect` | see [`harness`] |
//! | `GET /pusher-local/apps`, `/connections`, `/channels`, `/events`, `/metrics` | see [`inspect`] |
//! | `POST /pusher-local/wait/…` (`subscribers`, `member`, `event`, `client-event`, `webhook`) | see [`wait`] |
//! | `GET`, `POST`, `DELETE /pusher-local/faults`, `DELETE /pusher-local/faults/{id}` | see [`faults`] |
//! | `GET /pusher-local/console`, `GET /pusher-local/stream`, `POST /pusher-local/publish` | the debug console: see [`console`] |
//! | `GET /pusher-local/openapi.json` | all of this as an OpenAPI 3 document ([`OPENAPI`]) |
//! | `GET /pusher-local/webhooks` | `{"webhooks":[record, …]}`, oldest first |
//! | `DELETE /pusher-local/webhooks` | forgets every record, `{}` |
//! | `GET /pusher-local/webhooks/{id}` | the record, or 404 |
//! | `POST /pusher-local/webhooks/{id}/resend` | body `{"url":"http://…"}` optional; 202 `{"id","urls"}` |
//! | `GET /pusher-local/fixtures` | `{"dir","fixtures":[{name, file, built_in, events, duration_ms, error}]}` |
//! | `GET /pusher-local/replays` | `{"replays":[{id, fixture, app_id, sent, total, passes, remaining_ms, speed, loop}]}` |
//! | `POST /pusher-local/replays` | body [`ReplayRequest`]; 202 `{"id","fixture","events"}`, 404 unknown fixture |
//! | `DELETE /pusher-local/replays/{id}` | stops it, `{"id","stopped":true}`, or 404 |
//! | `DELETE /pusher-local/replays` | stops every replay, `{"stopped":N}` |
//! | `GET /pusher-local/recordings`, `POST`, `DELETE /pusher-local/recording`, `POST /pusher-local/recordings/{name}/export` | recording from the console: see [`recordings`] |
//! | `POST /pusher-local/auth` | `--dev-auth` only: form `socket_id`, `channel_name`; `{"auth"[, "channel_data"]}` |
//! | `POST /pusher-local/user-auth` | `--dev-auth` only: form `socket_id`; `{"auth","user_data"}` |
//!
//! A record: `id`, `app_id`, `time_ms`, `events`, `body` (the exact bytes sent), `headers`,
//! `deliveries` (`url`, `state`, `attempts` with `attempt`, `at_ms`, `elapsed_ms`, `status`,
//! `error`). The `pusher-local webhooks` command's side is `commands::client`; the server's
//! own replays run in `recorder::replays`; [`guard`] decides who may call any of it (this machine's `Host`, no
//! other web origin, JSON bodies only).

pub mod console;
pub mod dev_auth;
pub mod faults;
pub mod guard;
pub mod harness;
pub mod inspect;
pub mod recordings;
pub mod token;
pub mod wait;

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::json;
use warp::filters::BoxedFilter;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::state::{AppState, Health};
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

/// Why a control request is refused: its status and message (answered as `{"error": message}`).
#[derive(Debug)]
pub struct Refusal(pub StatusCode, pub String);

impl Refusal {
    /// A 400.
    pub fn bad(message: impl std::fmt::Display) -> Self {
        Self(StatusCode::BAD_REQUEST, message.to_string())
    }

    /// The answer.
    pub fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    let mut response = json_reply(status, &json!({ "error": message.to_string() }));
    response.extensions_mut().insert(crate::rest::reply::Reason(message.to_string()));
    response
}

/// `POST /pusher-local/replays`: which fixture and how. Offsets in milliseconds; `speed` is a
/// number or `"max"`; `channel_map` renames channels (`{"old": "new"}`); `app_id` defaults to
/// the first app.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// A fixture name from the fixtures folder.
    pub fixture: String,
    /// `2`, `0.5`, `"2x"` or `"max"`.
    #[serde(default)]
    pub speed: Option<serde_json::Value>,
    /// Start again after the last event, until stopped.
    #[serde(default, rename = "loop")]
    pub looped: bool,
    /// Channel renames.
    #[serde(default)]
    pub channel_map: BTreeMap<String, String>,
    /// Skip events before this offset.
    #[serde(default)]
    pub from_ms: Option<u64>,
    /// Skip events after this offset.
    #[serde(default)]
    pub to_ms: Option<u64>,
    /// The app to publish into.
    #[serde(default)]
    pub app_id: Option<String>,
}

fn start_replay(state: &AppState, body: &[u8]) -> Response {
    let request: ReplayRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("body must be {{\"fixture\":\"NAME\", …}}: {e}")),
    };
    let speed = match &request.speed {
        None => crate::recorder::replay::Speed::default(),
        Some(serde_json::Value::String(s)) => match s.parse() {
            Ok(speed) => speed,
            Err(e) => return error(StatusCode::BAD_REQUEST, e),
        },
        Some(serde_json::Value::Number(n)) => match n.to_string().parse() {
            Ok(speed) => speed,
            Err(e) => return error(StatusCode::BAD_REQUEST, e),
        },
        Some(other) => {
            return error(StatusCode::BAD_REQUEST, format!("speed must be a number or \"max\", not {other}"))
        }
    };
    let app_id = match request.app_id.as_deref() {
        None => state.config().apps[0].id.clone(),
        Some(id) => match state.apps().find_by_id(id) {
            Some(app) => app.id.clone(),
            None => return error(StatusCode::NOT_FOUND, format!("no app with id {id:?}")),
        },
    };
    let Some(fixture) = state.fixtures().get(&request.fixture) else {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "no fixture named {:?} in {} (GET /pusher-local/fixtures lists them)",
                request.fixture,
                state.fixtures().dir().display()
            ),
        );
    };
    let plan = crate::recorder::replay::Plan {
        speed,
        looped: request.looped,
        channel_map: request
            .channel_map
            .into_iter()
            .map(|(from, to)| crate::recorder::replay::ChannelMap { from, to })
            .collect(),
        from: request.from_ms.map(std::time::Duration::from_millis),
        to: request.to_ms.map(std::time::Duration::from_millis),
    };
    let events = crate::recorder::replay::schedule(&fixture, &plan).len();
    if events == 0 {
        return error(StatusCode::BAD_REQUEST, crate::recorder::replay::ReplayError::Empty);
    }
    let job = crate::recorder::replays::Job { name: request.fixture.clone(), fixture, plan, app_id };
    let id = state.start_replay(job);
    json_reply(StatusCode::ACCEPTED, &json!({ "id": id, "fixture": request.fixture, "events": events }))
}

/// Every endpoint of this API as an OpenAPI 3 document (`GET /pusher-local/openapi.json`);
/// a test keeps it listing every route.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Every control route, behind the guard.
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let fixtures =
        warp::path!("pusher-local" / "fixtures").and(warp::get()).and(with(&state)).map(|state: AppState| {
            json_reply(StatusCode::OK, &json!({ "dir": state.fixtures().dir(), "fixtures": state.fixtures().list() }))
        });
    let health =
        warp::path!("pusher-local" / "health").and(warp::get()).and(with(&state)).map(|state: AppState| health(&state));
    let reset = warp::path!("pusher-local" / "reset")
        .and(warp::post())
        .and(warp::body::bytes())
        .and(with(&state))
        .map(|body: bytes::Bytes, state: AppState| harness::reset(&state, &body));
    let disconnect = warp::path!("pusher-local" / "disconnect")
        .and(warp::post())
        .and(warp::body::bytes())
        .and(with(&state))
        .map(|body: bytes::Bytes, state: AppState| harness::disconnect(&state, &body));
    let openapi = warp::path!("pusher-local" / "openapi.json").and(warp::get()).map(|| {
        let mut response = Response::new(OPENAPI.into());
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    });
    // One check of the first segment before any of the routes: every Pusher request (REST,
    // WebSocket) passes by here first, and must not be tried against each control route.
    let gate = warp::path::peek()
        .and_then(|peek: warp::path::Peek| async move {
            if peek.segments().next() == Some(PREFIX) {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one();
    let routes = refused(&state)
        .or(health)
        .unify()
        .or(openapi)
        .unify()
        .or(reset)
        .unify()
        .or(disconnect)
        .unify()
        .or(dev_auth::routes(&state))
        .unify()
        .or(inspect::routes(&state))
        .unify()
        .or(wait::routes(&state))
        .unify()
        .or(faults::routes(&state))
        .unify()
        .or(console::routes(&state))
        .unify()
        .or(webhook_routes(&state))
        .unify()
        .or(fixtures)
        .unify()
        .or(replay_routes(&state))
        .unify()
        .or(recordings::routes(&state))
        .unify();
    gate.and(routes).boxed()
}

/// `GET /pusher-local/health`: 200 `{"status":"serving"}`; 503 with `draining` (shutting down)
/// or `redis_down` and the reason (cluster mode, Redis unreachable), for Docker and compose
/// health checks.
fn health(state: &AppState) -> Response {
    match state.health() {
        Health::Serving => json_reply(StatusCode::OK, &json!({ "status": "serving" })),
        Health::Draining => json_reply(StatusCode::SERVICE_UNAVAILABLE, &json!({ "status": "draining" })),
        Health::NodeDown => json_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "status": "node_down", "reason": "a node_down fault (/pusher-local/faults)" }),
        ),
        Health::ClusterDown(reason) => {
            json_reply(StatusCode::SERVICE_UNAVAILABLE, &json!({ "status": "redis_down", "reason": reason }))
        }
    }
}

/// The state, for a route's handler.
fn with(state: &AppState) -> impl Filter<Extract = (AppState,), Error = std::convert::Infallible> + Clone {
    let state = state.clone();
    warp::any().map(move || state.clone())
}

/// Every request under the prefix is checked first ([`guard`], then the [`token`] when the
/// server asks for one); one that passes falls through to the routes (a plain rejection), one
/// that fails is answered here, and so is the console link that sets the token's cookie.
fn refused(state: &AppState) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let names = state.config().tls.names.clone();
    let token = state.config().control_token.as_ref().map(|t| std::sync::Arc::<str>::from(t.token.expose()));
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::path(PREFIX)
        .and(warp::path::full())
        .and(warp::method())
        .and(query)
        .and(warp::header::headers_cloned())
        .and(crate::accept::secure())
        .and_then(
            move |path: warp::path::FullPath,
                  method: warp::http::Method,
                  query: String,
                  headers: warp::http::HeaderMap,
                  secure: bool| {
                let path = path.as_str();
                let verdict = if guard::DEV_AUTH_PATHS.contains(&path) {
                    guard::check_dev_auth(&headers, &names)
                } else {
                    guard::check(&method, &headers, secure, &names)
                };
                let answer = match (verdict, &token) {
                    (Err((status, message)), _) => Some(guard::refusal(status, &message)),
                    (Ok(()), None) => None,
                    (Ok(()), Some(token)) => match token::check(path, &method, &query, &headers, secure, token) {
                        token::Verdict::Pass => None,
                        token::Verdict::Login(response) | token::Verdict::Refused(response) => Some(response),
                    },
                };
                async move { answer.ok_or_else(warp::reject::not_found) }
            },
        )
}

/// `/pusher-local/webhooks…`: the outbox listed, cleared, one record, a resend.
fn webhook_routes(state: &AppState) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let list = warp::path!("pusher-local" / "webhooks")
        .and(warp::get())
        .and(with(state))
        .map(|state: AppState| json_reply(StatusCode::OK, &json!({ "webhooks": state.webhooks().outbox().list() })));
    let clear = warp::path!("pusher-local" / "webhooks").and(warp::delete()).and(with(state)).map(|state: AppState| {
        state.webhooks().outbox().clear();
        json_reply(StatusCode::OK, &json!({}))
    });
    let show =
        warp::path!("pusher-local" / "webhooks" / u64).and(warp::get()).and(with(state)).map(|id, state: AppState| {
            match state.webhooks().outbox().get(id) {
                Some(record) => json_reply(StatusCode::OK, &record),
                None => error(StatusCode::NOT_FOUND, ResendError::NotFound(id)),
            }
        });
    let resend = warp::path!("pusher-local" / "webhooks" / u64 / "resend")
        .and(warp::post())
        // No content-length limit filter: it would refuse a bodyless `curl -X POST` (411).
        .and(warp::body::bytes())
        .and(with(state))
        .map(|id, body: bytes::Bytes, state: AppState| resend(&state, id, &body));
    // Not boxed: one boxed filter for all the routes (in `routes`), not one per group.
    list.or(clear).unify().or(show).unify().or(resend).unify()
}

/// `POST /pusher-local/webhooks/{id}/resend`, optionally `{"url": …}`.
fn resend(state: &AppState, id: u64, body: &[u8]) -> Response {
    let request: ResendRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ResendRequest::default()
    } else {
        match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("body must be {{\"url\":\"http://…\"}}: {e}")),
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
}

/// `/pusher-local/replays…`: the running replays listed, one started, one or all stopped.
fn replay_routes(state: &AppState) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let replays = warp::path!("pusher-local" / "replays")
        .and(warp::get())
        .and(with(state))
        .map(|state: AppState| json_reply(StatusCode::OK, &json!({ "replays": state.replays().list() })));
    let start = warp::path!("pusher-local" / "replays")
        .and(warp::post())
        .and(warp::body::bytes())
        .and(with(state))
        .map(|body: bytes::Bytes, state: AppState| start_replay(&state, &body));
    let stop_all = warp::path!("pusher-local" / "replays")
        .and(warp::delete())
        .and(with(state))
        .map(|state: AppState| json_reply(StatusCode::OK, &json!({ "stopped": state.replays().stop_all() })));
    let stop = warp::path!("pusher-local" / "replays" / u64).and(warp::delete()).and(with(state)).map(
        |id: u64, state: AppState| {
            if state.replays().stop(id) {
                json_reply(StatusCode::OK, &json!({ "id": id, "stopped": true }))
            } else {
                error(StatusCode::NOT_FOUND, format!("no running replay #{id}"))
            }
        },
    );
    replays.or(start).unify().or(stop_all).unify().or(stop).unify()
}
