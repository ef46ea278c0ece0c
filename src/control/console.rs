//! The debug console (issue 12): a page served from the binary that watches and drives the
//! server, offline. It loads nothing from the network: its HTML, JS and CSS are compiled in.
//!
//! | Method and path | Answer |
//! |---|---|
//! | `GET /pusher-local/console` | the page (`console/index.html`); `console/console.js` and `console/console.css` beside it; `/pusher-local/` redirects to it |
//! | `GET /pusher-local/stream` | Server-Sent Events: `hello` (`{"apps":[{id, key}]}`), then a `record` per log line (the JSON of `--log-format json`), `missed` (`{"missed":N}`) when the page fell behind |
//! | `POST /pusher-local/publish` | `{"app_id", "channels", "event", "data", "socket_id"}` → `{"channels":{name: sockets}}`, through the same checks and publish as the HTTP API (source `console`) |
//!
//! The rest of what the page shows comes from the other control endpoints (channels,
//! connections, webhooks, fixtures, replays). The stream never slows delivery: each page has a
//! bounded queue (`printer::tap`).

use std::convert::Infallible;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Map, Value};
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::sse::Event as Sse;
use warp::{Filter, Reply};

use super::{json_reply, with, Refusal};
use crate::event::{Event, Source};
use crate::state::AppState;

const INDEX: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/console.js");
const STYLE: &str = include_str!("console/console.css");

/// How often an idle stream sends a comment, so proxies and browsers keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

fn asset(body: &'static str, kind: &'static str) -> Response {
    let mut response = Response::new(body.into());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishRequest {
    app_id: Option<String>,
    channels: Vec<String>,
    event: String,
    data: Value,
    socket_id: Option<String>,
}

/// `POST /pusher-local/publish`: the event creator's send.
async fn publish(state: AppState, body: bytes::Bytes) -> Response {
    let checked = (|| {
        let r: PublishRequest = serde_json::from_slice(&body)
            .map_err(|e| Refusal::bad(format!(r#"body must be {{"channels":["…"],"event":"…","data":"…"}}: {e}"#)))?;
        let app = match r.app_id.as_deref() {
            None => state.apps().iter().next().cloned(),
            Some(id) => state.apps().find_by_id(id).cloned(),
        }
        .ok_or_else(|| Refusal(StatusCode::NOT_FOUND, format!("no app with id {:?}", r.app_id.unwrap_or_default())))?;
        // The SDKs send a string; anything else is published as its JSON text.
        let data = match r.data {
            Value::String(text) => text,
            other => other.to_string(),
        };
        let checked = crate::rest::handlers::check_one(&app, r.channels, r.event, data, r.socket_id)
            .map_err(|e| Refusal(e.status(), e.to_string()))?;
        Ok::<_, Refusal>((app, checked))
    })();
    let (app, crate::rest::handlers::CheckedEvent { name, data, channels, except }) = match checked {
        Ok(checked) => checked,
        Err(refusal) => return refusal.into_response(),
    };
    let mut reached = Map::new();
    let mut commits = Vec::new();
    for channel in channels {
        let event = Event {
            app_id: app.id.clone(),
            channel: channel.clone(),
            name: name.clone(),
            data: data.clone(),
            except,
            user_id: None,
            source: Source::Console,
        };
        let (delivered, commit) = state.publish(event).await;
        reached.insert(channel.to_string(), json!(delivered));
        commits.push(commit);
    }
    for commit in commits {
        let _delivered_anyway = commit.wait().await;
    }
    json_reply(StatusCode::OK, &json!({ "channels": reached }))
}

/// `GET /pusher-local/stream`.
fn stream(state: &AppState) -> Response {
    let Some(tap) = state.printer().tap() else {
        return Refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "this server prints nothing, so it has nothing to stream".into(),
        )
        .into_response();
    };
    let apps: Vec<Value> = state.apps().iter().map(|a| json!({ "id": a.id, "key": a.key })).collect();
    let hello = Sse::default().event("hello").data(json!({ "apps": apps }).to_string());
    let records = futures_util::stream::unfold(tap, |mut tap| async move {
        let record = tap.next().await?;
        let missed = tap.missed();
        let mut events = Vec::with_capacity(2);
        if missed > 0 {
            events.push(Sse::default().event("missed").data(json!({ "missed": missed }).to_string()));
        }
        events.push(Sse::default().event("record").data(&*record));
        Some((futures_util::stream::iter(events.into_iter().map(Ok::<_, Infallible>)), tap))
    });
    let events = futures_util::StreamExt::chain(
        futures_util::stream::once(async { Ok::<_, Infallible>(hello) }),
        futures_util::StreamExt::flatten(records),
    );
    warp::sse::reply(warp::sse::keep_alive().interval(KEEP_ALIVE).stream(events)).into_response()
}

/// The routes (not boxed: `control::routes` boxes them all once).
pub fn routes(state: &AppState) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let page =
        warp::path!("pusher-local" / "console").and(warp::get()).map(|| asset(INDEX, "text/html; charset=utf-8"));
    let script = warp::path!("pusher-local" / "console" / "console.js")
        .and(warp::get())
        .map(|| asset(SCRIPT, "application/javascript; charset=utf-8"));
    let style = warp::path!("pusher-local" / "console" / "console.css")
        .and(warp::get())
        .map(|| asset(STYLE, "text/css; charset=utf-8"));
    let stream = warp::path!("pusher-local" / "stream").and(warp::get()).and(with(state)).map(|s: AppState| stream(&s));
    let publish = warp::path!("pusher-local" / "publish")
        .and(warp::post())
        .and(warp::body::bytes())
        .and(with(state))
        .then(|body: bytes::Bytes, s: AppState| publish(s, body));
    // `/pusher-local` and `/pusher-local/`: the console.
    let root = warp::path("pusher-local").and(warp::path::end()).and(warp::get()).map(|| {
        let mut response = Response::new("".into());
        *response.status_mut() = StatusCode::SEE_OTHER;
        response.headers_mut().insert(header::LOCATION, HeaderValue::from_static("/pusher-local/console"));
        response
    });
    page.or(root).unify().or(script).unify().or(style).unify().or(stream).unify().or(publish).unify()
}
