//! The HTTP API endpoints (protocol.md §6). Each takes a [`Call`] whose signature
//! [`answer`] has checked, and returns `Result<Response, ApiError>`; `answer` turns a refusal
//! into its response. Events go through `AppState::publish`, like every other event.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use warp::http::StatusCode;
use warp::reply::Response;

use super::filters::{authenticate, RawRequest};
use super::reply::{finish, json, ApiError};
use crate::apps::{App, AppId};
use crate::auth::request::SignedRequest;
use crate::event::{Event, Source};
use crate::protocol::{ChannelKind, ChannelName, SocketId};
use crate::state::{AppState, ChannelState};

/// A signed call to the HTTP API: the app it is signed for, its parameters and its body.
pub struct Call {
    /// The state.
    pub state: AppState,
    /// The app the call is signed for.
    pub app: Arc<App>,
    /// The verified parameters.
    pub signed: SignedRequest,
    /// The request.
    pub request: RawRequest,
}

/// Checks the request's signature (for the app of the path, if it names one) and runs
/// `handler`; every answer, refusals too, becomes a response here.
///
/// # Errors
/// Never: the error type is warp's.
pub async fn answer<F, Fut>(
    state: AppState,
    request: RawRequest,
    app_id: Option<String>,
    handler: F,
) -> Result<Response, Infallible>
where
    F: FnOnce(Call) -> Fut,
    Fut: std::future::Future<Output = Result<Response, ApiError>>,
{
    let metrics = state.metrics().clone();
    let app = app_id.as_deref().and_then(|id| state.apps().find_by_id(id)).map(|app| app.id.clone());
    let injected = state.faults().http_status(app.as_ref().map(AppId::as_str));
    let result = match injected {
        Some(status) => Err(ApiError::Fault(StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE))),
        None => match authenticate(&state, &request, app_id.as_deref()) {
            Ok((app, signed)) => handler(Call { state, app, signed, request }).await,
            Err(error) => Err(error),
        },
    };
    let response = finish(result);
    if let Ok(response) = &response {
        metrics.api_call(app.as_ref(), response.status().as_u16());
    }
    response
}

/// One event as the SDKs post it (`events`, or one item of `batch_events`).
#[derive(Debug, Deserialize)]
struct TriggerBody {
    name: Option<String>,
    data: Option<Value>,
    channels: Option<Vec<String>>,
    channel: Option<String>,
    socket_id: Option<String>,
    info: Option<String>,
}

#[derive(Debug, Deserialize)]
struct BatchBody {
    batch: Option<Vec<TriggerBody>>,
}

/// A validated event, ready to publish.
struct Checked {
    name: Arc<str>,
    data: Arc<str>,
    channels: Vec<ChannelName>,
    except: Option<SocketId>,
    info: Info,
}

#[derive(Debug, Default, Clone, Copy)]
struct Info {
    user_count: bool,
    subscription_count: bool,
    cache: bool,
}

impl Info {
    fn parse(text: Option<&str>) -> Result<Info, ApiError> {
        let mut info = Info::default();
        for attr in text.unwrap_or("").split(',').map(str::trim).filter(|a| !a.is_empty()) {
            match attr {
                "user_count" => info.user_count = true,
                "subscription_count" => info.subscription_count = true,
                "cache" => info.cache = true,
                other => return Err(ApiError::UnknownInfo(other.to_owned())),
            }
        }
        Ok(info)
    }

    fn any(self) -> bool {
        self.user_count || self.subscription_count
    }
}

fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::InvalidJson(e.to_string()))
}

fn check_event(app: &App, body: TriggerBody, single_channel: bool) -> Result<Checked, ApiError> {
    let limits = &app.limits;
    let name = body.name.filter(|n| !n.is_empty()).ok_or(ApiError::MissingField("name"))?;
    let len = name.chars().count();
    if len > limits.max_event_name_length {
        return Err(ApiError::EventNameTooLong { len, max: limits.max_event_name_length });
    }
    // The SDKs always send a string; anything else is relayed as its JSON text.
    let data = match body.data.ok_or(ApiError::MissingField("data"))? {
        Value::String(s) => s,
        other => other.to_string(),
    };
    if data.len() > limits.max_payload_bytes {
        return Err(ApiError::PayloadTooLarge { len: data.len(), max: limits.max_payload_bytes });
    }
    let names: Vec<String> = match (body.channels, body.channel) {
        (Some(list), _) if !list.is_empty() => list,
        (_, Some(one)) => vec![one],
        _ => return Err(ApiError::MissingField(if single_channel { "channel" } else { "channels (or channel)" })),
    };
    let max = if single_channel { 1 } else { limits.max_channels_per_event };
    if names.len() > max {
        return Err(ApiError::TooManyChannels { count: names.len(), max });
    }
    let channels =
        names.iter().map(|n| ChannelName::parse(n, limits.max_channel_name_length)).collect::<Result<Vec<_>, _>>()?;
    if channels.len() > 1 {
        if let Some(enc) = channels.iter().find(|c| c.kind() == ChannelKind::PrivateEncrypted) {
            return Err(ApiError::EncryptedMultiChannel(enc.to_string()));
        }
    }
    let except = match body.socket_id.filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => SocketId::parse(&text).map_err(|_| ApiError::InvalidSocketId(text.clone()))?,
    };
    let info = Info::parse(body.info.as_deref())?;
    Ok(Checked { name: name.into(), data: data.into(), channels, except, info })
}

/// An event [`check_one`] passed.
#[derive(Debug)]
pub struct CheckedEvent {
    /// The event name.
    pub name: Arc<str>,
    /// The data.
    pub data: Arc<str>,
    /// Its channels.
    pub channels: Vec<ChannelName>,
    /// The socket left out.
    pub except: Option<SocketId>,
}

/// One event checked as `POST /events` checks it (name, data size, channels, socket_id), for the
/// console's event creator.
///
/// # Errors
/// The [`ApiError`] the HTTP API would answer.
pub fn check_one(
    app: &App,
    channels: Vec<String>,
    name: String,
    data: String,
    socket_id: Option<String>,
) -> Result<CheckedEvent, ApiError> {
    let body = TriggerBody {
        name: Some(name),
        data: Some(Value::String(data)),
        channels: Some(channels),
        channel: None,
        socket_id,
        info: None,
    };
    let Checked { name, data, channels, except, .. } = check_event(app, body, false)?;
    Ok(CheckedEvent { name, data, channels, except })
}

/// Publishes on every channel; returns once every event is recorded (when recording), so an
/// acknowledged trigger survives a crash. The commits are awaited together: one group commit.
/// A recording that fails is the recorder's problem (it said so, loudly, and stopped): the
/// events were delivered, so the trigger still succeeds.
async fn publish(state: &AppState, app: &App, events: &[&Checked]) {
    let mut commits = Vec::new();
    for event in events {
        for channel in &event.channels {
            let (_, commit) = state
                .publish(Event {
                    app_id: app.id.clone(),
                    channel: channel.clone(),
                    name: event.name.clone(),
                    data: event.data.clone(),
                    except: event.except,
                    user_id: None,
                    source: Source::Api,
                })
                .await;
            commits.push(commit);
        }
    }
    for commit in commits {
        let _delivered_anyway = commit.wait().await;
    }
}

#[derive(Serialize, Default)]
struct Counts {
    #[serde(skip_serializing_if = "Option::is_none")]
    user_count: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subscription_count: Option<usize>,
}

async fn counts(state: &AppState, app: &App, channel: &ChannelName, info: Info) -> Counts {
    let numbers = state.channel(&app.id, channel).await.info;
    Counts {
        user_count: (info.user_count && channel.kind() == ChannelKind::Presence).then_some(numbers.user_count),
        subscription_count: info.subscription_count.then_some(numbers.subscription_count),
    }
}

/// `POST /apps/{app_id}/events`.
pub async fn events(call: Call) -> Result<Response, ApiError> {
    let Call { state, app, request, .. } = &call;
    let event = check_event(app, parse_json(&request.body)?, false)?;
    publish(state, app, &[&event]).await;
    if !event.info.any() {
        return Ok(json(StatusCode::OK, &serde_json::json!({})));
    }
    let mut channels = BTreeMap::new();
    for channel in &event.channels {
        channels.insert(channel.to_string(), counts(state, app, channel, event.info).await);
    }
    Ok(json(StatusCode::OK, &serde_json::json!({ "channels": channels })))
}

/// `POST /apps/{app_id}/batch_events`.
pub async fn batch_events(call: Call) -> Result<Response, ApiError> {
    let Call { state, app, request, .. } = &call;
    let batch = parse_json::<BatchBody>(&request.body)?.batch.ok_or(ApiError::MissingField("batch"))?;
    if batch.len() > app.limits.max_batch_size {
        return Err(ApiError::BatchTooLarge { count: batch.len(), max: app.limits.max_batch_size });
    }
    // Validate every event before publishing any, so a bad batch publishes nothing.
    let events = batch.into_iter().map(|e| check_event(app, e, true)).collect::<Result<Vec<_>, _>>()?;
    publish(state, app, &events.iter().collect::<Vec<_>>()).await;
    if !events.iter().any(|e| e.info.any()) {
        return Ok(json(StatusCode::OK, &serde_json::json!({})));
    }
    let mut results = Vec::with_capacity(events.len());
    for event in &events {
        results.push(counts(state, app, &event.channels[0], event.info).await);
    }
    Ok(json(StatusCode::OK, &serde_json::json!({ "batch": results })))
}

/// `POST /apps/{app_id}/channels/{channel}/events?name=...` (deprecated API; body is the data).
pub async fn legacy_event(call: Call, channel: String) -> Result<Response, ApiError> {
    let Call { state, app, signed, request } = &call;
    let data = String::from_utf8_lossy(&request.body).into_owned();
    let body = TriggerBody {
        name: signed.param("name").map(str::to_owned),
        data: Some(Value::String(data)),
        channels: None,
        channel: Some(decode(&channel)),
        socket_id: signed.param("socket_id").map(str::to_owned),
        info: None,
    };
    let event = check_event(app, body, true)?;
    publish(state, app, &[&event]).await;
    Ok(json(StatusCode::ACCEPTED, &serde_json::json!({})))
}

fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

fn channel_param(app: &App, segment: &str) -> Result<ChannelName, ApiError> {
    Ok(ChannelName::parse(&decode(segment), app.limits.max_channel_name_length)?)
}

/// `GET /apps/{app_id}/channels`.
pub async fn channels(call: Call) -> Result<Response, ApiError> {
    let Call { state, app, signed, .. } = &call;
    let info = Info::parse(signed.param("info"))?;
    let prefix = signed.param("filter_by_prefix").unwrap_or("");
    if info.user_count && !prefix.starts_with("presence-") {
        return Err(ApiError::UserCountNeedsPresencePrefix);
    }
    let mut channels = BTreeMap::new();
    for ch in state.channels(&app.id, prefix).await {
        let counts = Counts {
            user_count: info.user_count.then_some(ch.user_count),
            subscription_count: info.subscription_count.then_some(ch.subscription_count),
        };
        channels.insert(ch.name.to_string(), counts);
    }
    Ok(json(StatusCode::OK, &serde_json::json!({ "channels": channels })))
}

#[derive(Serialize)]
struct CacheInfo {
    data: Arc<str>,
    ttl: u64,
}

#[derive(Serialize)]
struct ChannelReply {
    occupied: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_count: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subscription_count: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache: Option<Option<CacheInfo>>,
}

/// `GET /apps/{app_id}/channels/{channel}`.
pub async fn channel(call: Call, channel: String) -> Result<Response, ApiError> {
    let Call { state, app, signed, .. } = &call;
    let channel = channel_param(app, &channel)?;
    let info = Info::parse(signed.param("info"))?;
    if info.user_count && channel.kind() != ChannelKind::Presence {
        return Err(ApiError::UserCountNotPresence);
    }
    let ChannelState { info: numbers, cached, .. } = state.channel(&app.id, &channel).await;
    let reply = ChannelReply {
        occupied: numbers.subscription_count > 0,
        user_count: info.user_count.then_some(numbers.user_count),
        subscription_count: info.subscription_count.then_some(numbers.subscription_count),
        cache: info.cache.then(|| cached.map(|(event, ttl)| CacheInfo { data: event.data, ttl: ttl.as_secs() })),
    };
    Ok(json(StatusCode::OK, &reply))
}

/// `GET /apps/{app_id}/channels/{channel}/users`.
pub async fn users(call: Call, channel: String) -> Result<Response, ApiError> {
    let Call { state, app, signed, .. } = &call;
    reject_extra_params(signed)?;
    let channel = channel_param(app, &channel)?;
    if channel.kind() != ChannelKind::Presence {
        return Err(ApiError::UsersNotPresence);
    }
    #[derive(Serialize)]
    struct User {
        id: Arc<str>,
    }
    let users: Vec<User> = state.channel(&app.id, &channel).await.users.into_iter().map(|id| User { id }).collect();
    Ok(json(StatusCode::OK, &serde_json::json!({ "users": users })))
}

fn reject_extra_params(signed: &SignedRequest) -> Result<(), ApiError> {
    let extra: Vec<&str> = signed.extra_params().collect();
    if extra.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Extraneous(extra.join(", ")))
    }
}

/// `POST /apps/{app_id}/users/{user_id}/terminate_connections`, and `POST
/// /users/{user_id}/terminate_connections`, the path pusher-http-python sends.
pub async fn terminate(call: Call, user_id: String) -> Result<Response, ApiError> {
    let Call { state, app, .. } = &call;
    state.terminate_user(&app.id, &decode(&user_id)).await;
    Ok(json(StatusCode::OK, &serde_json::json!({})))
}
