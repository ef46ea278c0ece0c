//! The waits (issue 13): long polls that answer as soon as something is true, so a test waits
//! for what it expects instead of sleeping. Each answers at once when it is already true, and
//! after `timeout_ms` (default 5000, at most 120000) with 408 and what was seen instead, so a
//! failing test says why.
//!
//! | `POST /pusher-local/wait/…` | Body (JSON) | 200 answer |
//! |---|---|---|
//! | `subscribers` | `channel`, `count` (1), `app_id` | `{"channel","subscription_count"}` |
//! | `member` | `channel`, `user_id`, `present` (true), `app_id` | `{"channel","user_id","present","members"}` |
//! | `event` | `channel`, `event` (globs, `*`), `data` (a subset), `source`, `since` (seq), `app_id` | `{"event": record}` |
//! | `client-event` | as `event`, source `client` | `{"event": record}` |
//! | `webhook` | `kind`, `channel` (glob), `user_id`, `since` (webhook id), `app_id` | `{"webhook": record}` |
//!
//! An event wait looks at the history first (`since` leaves out what came before), so an event
//! published just before the wait still counts. A webhook counts once it is in the outbox and,
//! when its app has webhook URLs, once one of them took it (a 2xx). Subscribers and members are
//! counted cluster-wide, re-checked on every change here and every 100 ms for other nodes.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::inspect::{glob_param, source_param};
use super::{json_reply, with, Refusal};
use crate::apps::{AppId, WebhookKind};
use crate::event::Source;
use crate::history::Query;
use crate::protocol::ChannelName;
use crate::state::AppState;
use crate::webhook::outbox::{DeliveryState, Record};

/// How long a wait lasts when the body does not say.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest wait.
const MAX_TIMEOUT: Duration = Duration::from_secs(120);
/// How often a wait re-checks without a change here (other nodes' subscribers).
const POLL: Duration = Duration::from_millis(100);
/// Events and webhooks a timed-out wait shows.
const SEEN: usize = 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Subscribers {
    app_id: Option<String>,
    channel: String,
    #[serde(default = "one")]
    count: usize,
    timeout_ms: Option<u64>,
}

fn one() -> usize {
    1
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberWait {
    app_id: Option<String>,
    channel: String,
    user_id: Value,
    #[serde(default = "yes")]
    present: bool,
    timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventWait {
    app_id: Option<String>,
    channel: Option<String>,
    event: Option<String>,
    data: Option<Value>,
    source: Option<String>,
    since: Option<u64>,
    timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookWait {
    app_id: Option<String>,
    kind: WebhookKind,
    channel: Option<String>,
    user_id: Option<String>,
    since: Option<u64>,
    timeout_ms: Option<u64>,
}

/// A refused wait's response.
type Refused = Refusal;

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8], shape: &str) -> Result<T, Refused> {
    let body = if body.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { body };
    serde_json::from_slice(body).map_err(|e| Refusal::bad(format!("body must be {shape}: {e}")))
}

fn timeout(ms: Option<u64>) -> Result<Duration, Refused> {
    match ms.map(Duration::from_millis) {
        None => Ok(DEFAULT_TIMEOUT),
        Some(t) if t <= MAX_TIMEOUT => Ok(t),
        Some(_) => Err(Refusal::bad(format!("timeout_ms is at most {}", MAX_TIMEOUT.as_millis()))),
    }
}

/// The app a wait names, or the first app (`app_id` absent).
fn app_or_first(state: &AppState, app_id: Option<&str>) -> Result<AppId, Refused> {
    Ok(super::inspect::app_param(state, app_id)?.unwrap_or_else(|| state.config().apps[0].id.clone()))
}

fn channel_name(name: &str) -> Result<ChannelName, Refused> {
    ChannelName::parse(name, usize::MAX).map_err(|e| Refusal::bad(format!("{name:?} is not a channel name: {e}")))
}

/// Waits until `check` answers `Ok`, or answers 408 with what it last saw after `limit`.
async fn wait_for<F, Fut>(state: &AppState, limit: Duration, what: &str, check: F) -> Response
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Value, Value>>,
{
    let waiting = state.changes().wait();
    let deadline = tokio::time::Instant::now() + limit;
    match waiting.until(deadline, POLL, check).await {
        Ok(found) => json_reply(StatusCode::OK, &found),
        Err(seen) => {
            let message = format!("timed out after {} ms waiting for {what}", limit.as_millis());
            json_reply(StatusCode::REQUEST_TIMEOUT, &json!({ "error": message, "seen": seen }))
        }
    }
}

/// `POST /pusher-local/wait/subscribers`.
async fn subscribers(state: AppState, body: bytes::Bytes) -> Response {
    let ready = || -> Result<_, Refused> {
        let w: Subscribers = parse(&body, r#"{"channel":"…","count":1}"#)?;
        Ok((app_or_first(&state, w.app_id.as_deref())?, channel_name(&w.channel)?, w.count, timeout(w.timeout_ms)?))
    };
    let (app, channel, count, limit) = match ready() {
        Ok(ready) => ready,
        Err(refusal) => return refusal.into_response(),
    };
    let what = format!("{count} subscriber(s) on {channel}");
    wait_for(&state, limit, &what, || {
        let (state, app, channel) = (state.clone(), app.clone(), channel.clone());
        async move {
            let now = state.channel(&app, &channel).await.info.subscription_count;
            if now == count {
                Ok(json!({ "channel": channel.as_str(), "subscription_count": now }))
            } else {
                Err(json!({ "subscription_count": now }))
            }
        }
    })
    .await
}

/// `POST /pusher-local/wait/member`.
async fn member(state: AppState, body: bytes::Bytes) -> Response {
    let ready = || -> Result<_, Refused> {
        let w: MemberWait = parse(&body, r#"{"channel":"presence-…","user_id":"…","present":true}"#)?;
        let user = match &w.user_id {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => return Err(Refusal::bad(format!("user_id must be a string, not {other}"))),
        };
        let channel = channel_name(&w.channel)?;
        Ok((app_or_first(&state, w.app_id.as_deref())?, channel, user, w.present, timeout(w.timeout_ms)?))
    };
    let (app, channel, user, present, limit) = match ready() {
        Ok(ready) => ready,
        Err(refusal) => return refusal.into_response(),
    };
    let what = format!("user {user:?} to be {} {channel}", if present { "a member of" } else { "gone from" });
    wait_for(&state, limit, &what, || {
        let (state, app, channel, user) = (state.clone(), app.clone(), channel.clone(), user.clone());
        async move {
            let members = state.channel(&app, &channel).await.users;
            let here = members.iter().any(|m| **m == *user);
            if here == present {
                Ok(json!({ "channel": channel.as_str(), "user_id": user, "present": present, "members": members }))
            } else {
                Err(json!({ "members": members }))
            }
        }
    })
    .await
}

/// `POST /pusher-local/wait/event` and (`client`) `/wait/client-event`.
async fn event(state: AppState, body: bytes::Bytes, client: bool) -> Response {
    let ready = || -> Result<_, Refused> {
        let w: EventWait = parse(&body, r#"{"channel":"…","event":"…","data":{…}}"#)?;
        let source = if client { Some(Source::Client) } else { source_param(w.source.as_deref())? };
        let query = Query {
            app: super::inspect::app_param(&state, w.app_id.as_deref())?,
            channel: glob_param("channel", w.channel.as_deref())?,
            event: glob_param("event", w.event.as_deref())?,
            source,
            since: w.since,
            data: w.data,
        };
        Ok((query, timeout(w.timeout_ms)?))
    };
    let (query, limit) = match ready() {
        Ok(ready) => ready,
        Err(refusal) => return refusal.into_response(),
    };
    let what = describe(&query);
    let history = state.history().clone();
    let seen_query = Query { app: query.app.clone(), since: query.since, ..Query::default() };
    wait_for(&state, limit, &what, || {
        let answer = match history.first(&query) {
            Some(found) => Ok(json!({ "event": &*found })),
            None => Err(json!({ "events": history.find(&seen_query, SEEN) })),
        };
        std::future::ready(answer)
    })
    .await
}

/// What an event wait waits for, in words.
fn describe(query: &Query) -> String {
    let mut what = format!(
        "{} event {} on channel {}",
        query.source.map_or_else(|| "an".to_owned(), |s| format!("a {}", s.label())),
        query.event.as_ref().map_or("*", |p| p.as_str()),
        query.channel.as_ref().map_or("*", |p| p.as_str()),
    );
    if let Some(data) = &query.data {
        what.push_str(&format!(" with data containing {data}"));
    }
    what
}

/// Whether a webhook record is what `w` waits for.
fn webhook_matches(record: &Record, w: &WebhookWait, app: Option<&AppId>, channel: Option<&glob::Pattern>) -> bool {
    app.is_none_or(|a| *a == record.app_id)
        && w.since.is_none_or(|s| record.id > s)
        && (record.deliveries.is_empty() || record.deliveries.iter().any(|d| d.state == DeliveryState::Delivered))
        && record.events.iter().any(|e| {
            e.name == w.kind
                && channel.is_none_or(|p| p.matches(&e.channel))
                && w.user_id.as_deref().is_none_or(|u| e.user_id.as_deref() == Some(u))
        })
}

/// `POST /pusher-local/wait/webhook`.
async fn webhook(state: AppState, body: bytes::Bytes) -> Response {
    let ready = || -> Result<_, Refused> {
        let w: WebhookWait = parse(&body, r#"{"kind":"channel_occupied","channel":"…"}"#)?;
        let app = super::inspect::app_param(&state, w.app_id.as_deref())?;
        let channel = glob_param("channel", w.channel.as_deref())?;
        let limit = timeout(w.timeout_ms)?;
        Ok((w, app, channel, limit))
    };
    let (w, app, channel, limit) = match ready() {
        Ok(ready) => ready,
        Err(refusal) => return refusal.into_response(),
    };
    let what = format!("a {} webhook on channel {}", w.kind.as_str(), w.channel.as_deref().unwrap_or("*"));
    let outbox = state.webhooks().outbox().clone();
    wait_for(&state, limit, &what, || {
        let records = outbox.list();
        let answer = match records.iter().find(|r| webhook_matches(r, &w, app.as_ref(), channel.as_ref())) {
            Some(found) => Ok(json!({ "webhook": found })),
            None => {
                let skip = records.len().saturating_sub(SEEN);
                Err(json!({ "webhooks": &records[skip..] }))
            }
        };
        std::future::ready(answer)
    })
    .await
}

/// The routes (not boxed: `control::routes` boxes them all once).
pub fn routes(state: &AppState) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let post = || warp::post().and(warp::body::bytes()).and(with(state));
    let subscribers = warp::path!("pusher-local" / "wait" / "subscribers")
        .and(post())
        .then(|body: bytes::Bytes, s: AppState| subscribers(s, body));
    let member = warp::path!("pusher-local" / "wait" / "member").and(post()).then(|body, s| member(s, body));
    let events = warp::path!("pusher-local" / "wait" / "event").and(post()).then(|body, s| event(s, body, false));
    let client_events =
        warp::path!("pusher-local" / "wait" / "client-event").and(post()).then(|body, s| event(s, body, true));
    let webhooks = warp::path!("pusher-local" / "wait" / "webhook").and(post()).then(|body, s| webhook(s, body));
    subscribers.or(member).unify().or(events).unify().or(client_events).unify().or(webhooks).unify()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_says_what_it_waits_for() {
        let query = Query {
            event: Some(glob::Pattern::new("order-*").unwrap()),
            source: Some(Source::Client),
            data: Some(json!({"id": 1})),
            ..Query::default()
        };
        assert_eq!(describe(&query), r#"a client event order-* on channel * with data containing {"id":1}"#);
        assert!(timeout(Some(200_000)).is_err());
        assert_eq!(timeout(None).unwrap(), DEFAULT_TIMEOUT);
    }
}
