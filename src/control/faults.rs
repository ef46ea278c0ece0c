//! The fault endpoints (issue 13): a test makes the server misbehave on purpose, to see how
//! its app copes. The table and what each fault does are in `crate::faults`.
//!
//! | Method and path | Body | Answer |
//! |---|---|---|
//! | `GET /pusher-local/faults` | | `{"faults":[{id, kind, …, app_id, expires_in_ms}]}` |
//! | `POST /pusher-local/faults` | `kind` and its fields, `app_id`, `duration_ms` (both optional) | 201 `{"fault":{…}}` |
//! | `DELETE /pusher-local/faults` | | `{"cleared":N}` |
//! | `DELETE /pusher-local/faults/{id}` | | `{"id","cleared":true}`, or 404 |
//!
//! Kinds: `latency` (`channel` glob, `ms`), `drop` (`channel`, `fraction` 0–1), `refuse_connections`
//! (`code`, 4000–4099, default 4004), `http_status` (`status`, 4xx or 5xx, default 503; `count`,
//! default 1), `clock_skew` (`seconds`), `node_down` (Redis only: this node stops its heartbeat,
//! closes its sockets with 4200 and refuses new ones with 4100, until the fault is cleared or
//! lapses, and at least until the other nodes have taken it for dead). `POST
//! /pusher-local/reset` clears them all.

use std::time::Duration;

use glob::Pattern;
use serde::Deserialize;
use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::{error, json_reply, with, Refusal};
use crate::faults::{Fault, Kind};
use crate::protocol::codes;
use crate::registry::Which;
use crate::state::AppState;

/// Longest clock skew accepted, either way (a year).
const MAX_SKEW: i64 = 365 * 24 * 3600;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRequest {
    kind: String,
    app_id: Option<String>,
    duration_ms: Option<u64>,
    channel: Option<String>,
    ms: Option<u64>,
    fraction: Option<f64>,
    code: Option<u16>,
    status: Option<u16>,
    count: Option<u32>,
    seconds: Option<i64>,
}

fn bad(message: impl std::fmt::Display) -> Refusal {
    Refusal::bad(message)
}

/// A fault as listed: its fields and the time it has left.
fn shown(fault: &Fault) -> Value {
    let mut value = serde_json::to_value(fault).unwrap_or(Value::Null);
    value["expires_in_ms"] = json!(fault.expires_in().map(|d| d.as_millis() as u64));
    value
}

/// The kind a request asks for, checked.
fn kind(state: &AppState, r: &FaultRequest) -> Result<Kind, Refusal> {
    let channel = || {
        let glob = r.channel.as_deref().unwrap_or("*");
        Pattern::new(glob).map_err(|e| bad(format!("channel {glob:?} is not a glob: {e}")))
    };
    Ok(match r.kind.as_str() {
        "latency" => {
            let ms = r.ms.ok_or_else(|| bad("a latency fault needs ms"))?;
            if ms > 600_000 {
                return Err(bad("ms is at most 600000"));
            }
            Kind::Latency { channel: channel()?, ms }
        }
        "drop" => match r.fraction {
            Some(fraction) if (0.0..=1.0).contains(&fraction) => Kind::Drop { channel: channel()?, fraction },
            _ => return Err(bad("a drop fault needs a fraction from 0 to 1")),
        },
        "refuse_connections" => match r.code.unwrap_or(codes::OVER_CONNECTION_QUOTA) {
            code @ 4000..=4099 => Kind::RefuseConnections { code },
            code => return Err(bad(format!("code {code} is not a refusal: use 4000–4099 (4003, 4004…)"))),
        },
        "http_status" => match r.status.unwrap_or(503) {
            status @ 400..=599 => Kind::HttpStatus { status, remaining: r.count.unwrap_or(1).max(1) },
            status => return Err(bad(format!("status {status} is not an error: use 4xx or 5xx (429, 500, 503)"))),
        },
        "clock_skew" => match r.seconds {
            Some(seconds) if seconds.abs() <= MAX_SKEW => Kind::ClockSkew { seconds },
            _ => return Err(bad(format!("a clock_skew fault needs seconds, at most {MAX_SKEW} either way"))),
        },
        "node_down" if state.config().redis_url.is_none() => {
            return Err(bad("node_down needs Redis (--redis-url): a single node has no cluster to leave"))
        }
        "node_down" => Kind::NodeDown,
        other => {
            return Err(bad(format!(
                "unknown kind {other:?}: use latency, drop, refuse_connections, http_status, clock_skew or node_down"
            )))
        }
    })
}

/// `POST /pusher-local/faults`.
fn add(state: &AppState, body: &[u8]) -> Response {
    let answer = || -> Result<Response, Refusal> {
        let r: FaultRequest = serde_json::from_slice(body).map_err(|e| {
            bad(format!(r#"body must be {{"kind":"latency","channel":"…","ms":500}} or another kind: {e}"#))
        })?;
        let kind = kind(state, &r)?;
        let app_id = super::inspect::app_param(state, r.app_id.as_deref())?.map(|id| id.to_string());
        let node_down = matches!(kind, Kind::NodeDown);
        let fault = state.faults().add(kind, app_id, r.duration_ms.map(Duration::from_millis));
        if node_down {
            // After the fault is set: the sockets' leaves stay on this node, as a dead one's do.
            let reason = "this node is down (a pusher-local node_down fault)";
            state.registry().close_where(None, &Which::All, codes::RECONNECT_NOW, reason);
        }
        Ok(json_reply(StatusCode::CREATED, &json!({ "fault": shown(&fault) })))
    };
    answer().unwrap_or_else(Refusal::into_response)
}

/// The routes (not boxed: `control::routes` boxes them all once).
pub fn routes(state: &AppState) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let list = warp::path!("pusher-local" / "faults").and(warp::get()).and(with(state)).map(|s: AppState| {
        let faults: Vec<Value> = s.faults().list().iter().map(shown).collect();
        json_reply(StatusCode::OK, &json!({ "faults": faults }))
    });
    let add = warp::path!("pusher-local" / "faults")
        .and(warp::post())
        .and(warp::body::bytes())
        .and(with(state))
        .map(|body: bytes::Bytes, s: AppState| add(&s, &body));
    let clear = warp::path!("pusher-local" / "faults")
        .and(warp::delete())
        .and(with(state))
        .map(|s: AppState| json_reply(StatusCode::OK, &json!({ "cleared": s.faults().clear() })));
    let remove = warp::path!("pusher-local" / "faults" / u64).and(warp::delete()).and(with(state)).map(
        |id: u64, s: AppState| {
            if s.faults().remove(id) {
                json_reply(StatusCode::OK, &json!({ "id": id, "cleared": true }))
            } else {
                error(StatusCode::NOT_FOUND, format!("no fault #{id} (GET /pusher-local/faults lists them)"))
            }
        },
    );
    list.or(add).unify().or(clear).unify().or(remove).unify()
}
