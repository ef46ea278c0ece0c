//! The test-suite views (issue 13): what the server holds, unsigned, for tests and the console.
//!
//! | Method and path | Query (all optional) | Answer |
//! |---|---|---|
//! | `GET /pusher-local/apps` | | `{"apps":[{id, key, secret, connections, channels, client_events, user_authentication, tls_only, webhooks}]}` |
//! | `GET /pusher-local/connections` | `app_id`, `channel`, `user_id` | `{"connections":[{socket_id, app_id, transport, remote_addr, user_agent, user_id, channels, connected_at_ms, age_ms, frames_in, frames_out}]}` (this node's) |
//! | `GET /pusher-local/channels` | `app_id`, `prefix` | `{"channels":[{app_id, name, type, cache, subscription_count, user_count, members}]}` (cluster-wide; `members` for presence channels) |
//! | `GET /pusher-local/events` | `app_id`, `channel` and `event` (globs), `source`, `since` (seq), `limit` (100) | `{"events":[record, …], "last_seq"}`, oldest first |
//! | `GET /pusher-local/metrics` | | the Prometheus text format |
//!
//! The apps list shows each secret: a test needs it to sign, and these endpoints answer this
//! machine only (the guard), which already has it in its `.env`.

use std::collections::HashMap;

use glob::Pattern;
use serde_json::{json, Value};
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Filter;

use super::{json_reply, with, Refusal};
use crate::apps::AppId;
use crate::event::Source;
use crate::history::Query;
use crate::protocol::{ChannelKind, ChannelName};
use crate::state::AppState;

/// Query parameters, by name.
pub type Params = HashMap<String, String>;

/// Most records one `GET /pusher-local/events` answers.
const MAX_EVENTS: usize = 10_000;

/// The app named by `app_id` (which must exist), or `None` for every app.
pub fn app_param(state: &AppState, app_id: Option<&str>) -> Result<Option<AppId>, Refusal> {
    match app_id {
        None => Ok(None),
        Some(id) => match state.apps().find_by_id(id) {
            Some(app) => Ok(Some(app.id.clone())),
            None => Err(Refusal(StatusCode::NOT_FOUND, format!("no app with id {id:?}"))),
        },
    }
}

/// A glob parameter.
pub fn glob_param(name: &str, value: Option<&str>) -> Result<Option<Pattern>, Refusal> {
    value.map(|v| Pattern::new(v).map_err(|e| Refusal::bad(format!("{name} {v:?} is not a glob: {e}")))).transpose()
}

/// A `source` parameter.
pub fn source_param(value: Option<&str>) -> Result<Option<Source>, Refusal> {
    match value {
        None => Ok(None),
        Some("api") => Ok(Some(Source::Api)),
        Some("client") => Ok(Some(Source::Client)),
        Some("replay") => Ok(Some(Source::Replay)),
        Some("console") => Ok(Some(Source::Console)),
        Some(other) => Err(Refusal::bad(format!("source must be api, client, replay or console, not {other:?}"))),
    }
}

fn number<T: std::str::FromStr>(params: &Params, name: &str) -> Result<Option<T>, Refusal> {
    params
        .get(name)
        .map(|v| v.parse().map_err(|_| Refusal::bad(format!("{name} must be a number, not {v:?}"))))
        .transpose()
}

/// `GET /pusher-local/apps`.
fn apps(state: &AppState) -> Response {
    let gauges = state.registry().gauges();
    let apps: Vec<Value> = state
        .apps()
        .iter()
        .map(|app| {
            let g = gauges.get(&app.id).copied().unwrap_or_default();
            json!({
                "id": app.id,
                "key": app.key,
                "secret": app.secret.expose(),
                "connections": g.connections,
                "channels": g.channels,
                "client_events": app.client_events,
                "user_authentication": app.user_authentication,
                "tls_only": app.tls_only,
                "webhooks": app.webhooks.iter().map(|w| &w.url).collect::<Vec<_>>(),
            })
        })
        .collect();
    json_reply(StatusCode::OK, &json!({ "apps": apps }))
}

/// `GET /pusher-local/connections`.
fn connections(state: &AppState, params: &Params) -> Response {
    let app = match app_param(state, params.get("app_id").map(String::as_str)) {
        Ok(app) => app,
        Err(refusal) => return refusal.into_response(),
    };
    let list: Vec<Value> = state
        .registry()
        .connection_list(app.as_ref())
        .into_iter()
        .filter(|c| params.get("channel").is_none_or(|ch| c.channels.iter().any(|have| **have == **ch)))
        .filter(|c| params.get("user_id").is_none_or(|u| c.user.as_deref() == Some(u.as_str())))
        .map(|c| {
            let (client, (frames_in, frames_out)) = (&c.client, c.frames);
            json!({
                "socket_id": c.socket.to_string(),
                "app_id": c.app,
                "transport": client.transport,
                "remote_addr": client.remote.map(|a| a.to_string()),
                "user_agent": client.user_agent,
                "user_id": c.user,
                "channels": c.channels,
                "connected_at_ms": client.connected_at_ms,
                "age_ms": client.age_ms(),
                "frames_in": frames_in,
                "frames_out": frames_out,
            })
        })
        .collect();
    json_reply(StatusCode::OK, &json!({ "connections": list }))
}

/// The `type` of a channel as the API names it.
pub fn kind_name(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Public => "public",
        ChannelKind::Private => "private",
        ChannelKind::PrivateEncrypted => "private-encrypted",
        ChannelKind::Presence => "presence",
        ChannelKind::ServerToUser => "server-to-user",
    }
}

/// `GET /pusher-local/channels`.
async fn channels(state: AppState, params: Params) -> Response {
    let app = match app_param(&state, params.get("app_id").map(String::as_str)) {
        Ok(app) => app,
        Err(refusal) => return refusal.into_response(),
    };
    let prefix = params.get("prefix").map_or("", String::as_str);
    let ids: Vec<AppId> = match app {
        Some(id) => vec![id],
        None => state.apps().iter().map(|a| a.id.clone()).collect(),
    };
    let mut list = Vec::new();
    for app_id in ids {
        for info in state.channels(&app_id, prefix).await {
            let Ok(name) = ChannelName::parse(&info.name, usize::MAX) else { continue };
            let mut entry = json!({
                "app_id": app_id,
                "name": info.name,
                "type": kind_name(name.kind()),
                "cache": name.is_cache(),
                "subscription_count": info.subscription_count,
                "user_count": info.user_count,
            });
            if name.kind() == ChannelKind::Presence {
                entry["members"] = members(&state, &app_id, &name).await;
            }
            list.push(entry);
        }
    }
    json_reply(StatusCode::OK, &json!({ "channels": list }))
}

/// A presence channel's members, cluster-wide, with the `user_info` of those on this node.
async fn members(state: &AppState, app_id: &AppId, channel: &ChannelName) -> Value {
    let here: HashMap<String, Value> = state
        .registry()
        .members(app_id, channel.as_str())
        .into_iter()
        .map(|m| {
            let info = m.user_info.as_deref().and_then(|raw| serde_json::from_str(raw.get()).ok());
            (m.key.to_string(), info.unwrap_or(Value::Null))
        })
        .collect();
    let users = state.channel(app_id, channel).await.users;
    Value::Array(
        users
            .iter()
            .map(|id| json!({ "user_id": id, "user_info": here.get(&**id).cloned().unwrap_or(Value::Null) }))
            .collect(),
    )
}

/// The history query of `params`.
fn history_query(state: &AppState, params: &Params) -> Result<Query, Refusal> {
    Ok(Query {
        app: app_param(state, params.get("app_id").map(String::as_str))?,
        channel: glob_param("channel", params.get("channel").map(String::as_str))?,
        event: glob_param("event", params.get("event").map(String::as_str))?,
        source: source_param(params.get("source").map(String::as_str))?,
        since: number(params, "since")?,
        data: None,
    })
}

/// `GET /pusher-local/events`.
fn events(state: &AppState, params: &Params) -> Response {
    let answer = || -> Result<Response, Refusal> {
        let query = history_query(state, params)?;
        let limit = number::<usize>(params, "limit")?.unwrap_or(100).min(MAX_EVENTS);
        let events = state.history().find(&query, limit);
        let last_seq = state.history().last_seq();
        Ok(json_reply(StatusCode::OK, &json!({ "events": events, "last_seq": last_seq })))
    };
    answer().unwrap_or_else(Refusal::into_response)
}

/// `GET /pusher-local/metrics`.
fn metrics(state: &AppState) -> Response {
    let text = state.metrics().render(&state.registry().gauges());
    let mut response = Response::new(text.into());
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}

/// The routes (not boxed: `control::routes` boxes them all once).
pub fn routes(state: &AppState) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let query = || warp::query::<Params>();
    let apps = warp::path!("pusher-local" / "apps").and(warp::get()).and(with(state)).map(|s: AppState| apps(&s));
    let connections = warp::path!("pusher-local" / "connections")
        .and(warp::get())
        .and(query())
        .and(with(state))
        .map(|params: Params, s: AppState| connections(&s, &params));
    let channels = warp::path!("pusher-local" / "channels")
        .and(warp::get())
        .and(query())
        .and(with(state))
        .then(|params: Params, s: AppState| channels(s, params));
    let events = warp::path!("pusher-local" / "events")
        .and(warp::get())
        .and(query())
        .and(with(state))
        .map(|params: Params, s: AppState| events(&s, &params));
    let metrics =
        warp::path!("pusher-local" / "metrics").and(warp::get()).and(with(state)).map(|s: AppState| metrics(&s));
    apps.or(connections).unify().or(channels).unify().or(events).unify().or(metrics).unify()
}
