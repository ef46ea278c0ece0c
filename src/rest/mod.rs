//! The HTTP API edge: request → signature check (`filters::authenticate`) → handler →
//! `AppState::publish` or a query. This file only says which filter chain serves which path.
//!
//! - [`filters`]: request parts and authentication.
//! - [`handlers`]: the endpoints.
//! - [`reply`]: `ApiError` → status and body; JSON replies; unmatched routes.

pub mod filters;
pub mod handlers;
pub mod reply;

use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use crate::state::AppState;
use filters::{get_request, post_request, with_state};
use handlers::answer;

/// Every HTTP API route.
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let max_body = state.config().max_body_bytes;
    let s = || with_state(state.clone());
    let events = warp::path!("apps" / String / "events")
        .and(s())
        .and(post_request(max_body))
        .and_then(|app_id, state, request| answer(state, request, Some(app_id), handlers::events));
    let batch = warp::path!("apps" / String / "batch_events")
        .and(s())
        .and(post_request(max_body))
        .and_then(|app_id, state, request| answer(state, request, Some(app_id), handlers::batch_events));
    let channels = warp::path!("apps" / String / "channels")
        .and(s())
        .and(get_request())
        .and_then(|app_id, state, request| answer(state, request, Some(app_id), handlers::channels));
    let channel = warp::path!("apps" / String / "channels" / String).and(s()).and(get_request()).and_then(
        |app_id, channel, state, request| {
            answer(state, request, Some(app_id), move |call| handlers::channel(call, channel))
        },
    );
    let users = warp::path!("apps" / String / "channels" / String / "users").and(s()).and(get_request()).and_then(
        |app_id, channel, state, request| {
            answer(state, request, Some(app_id), move |call| handlers::users(call, channel))
        },
    );
    let legacy = warp::path!("apps" / String / "channels" / String / "events")
        .and(s())
        .and(post_request(max_body))
        .and_then(|app_id, channel, state, request| {
            answer(state, request, Some(app_id), move |call| handlers::legacy_event(call, channel))
        });
    let terminate = warp::path!("apps" / String / "users" / String / "terminate_connections")
        .and(s())
        .and(post_request(max_body))
        .and_then(|app_id, user, state, request| {
            answer(state, request, Some(app_id), move |call| handlers::terminate(call, user))
        });
    // The path pusher-http-python sends: the app is the key's.
    let terminate_unprefixed = warp::path!("users" / String / "terminate_connections")
        .and(s())
        .and(post_request(max_body))
        .and_then(|user, state, request| answer(state, request, None, move |call| handlers::terminate(call, user)));
    events
        .or(batch)
        .unify()
        .or(channels)
        .unify()
        .or(channel)
        .unify()
        .or(users)
        .unify()
        .or(legacy)
        .unify()
        .or(terminate)
        .unify()
        .or(terminate_unprefixed)
        .unify()
        .boxed()
}
