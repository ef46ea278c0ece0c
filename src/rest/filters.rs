//! Request extraction for the HTTP API: the raw parts a signature covers (method, full path,
//! raw query, body bytes), and [`authenticate`], which turns them into a verified app.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use warp::http::Method;
use warp::path::FullPath;
use warp::Filter;

use super::reply::ApiError;
use crate::apps::App;
use crate::auth::diagnose;
use crate::auth::request::{RequestAuthError, SignedRequest};
use crate::printer::Line;
use crate::state::AppState;

/// The parts of a request that its signature covers.
#[derive(Debug, Clone)]
pub struct RawRequest {
    /// Method.
    pub method: Method,
    /// Path as sent.
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// Body bytes.
    pub body: Bytes,
    /// It came over TLS (https://).
    pub secure: bool,
}

/// Passes the shared state into a handler.
pub fn with_state(state: AppState) -> impl Filter<Extract = (AppState,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || state.clone())
}

fn raw_query() -> impl Filter<Extract = (String,), Error = std::convert::Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// A GET request's parts (no body is read).
pub fn get_request() -> impl Filter<Extract = (RawRequest,), Error = warp::Rejection> + Clone {
    warp::get().and(warp::path::full()).and(raw_query()).and(crate::accept::secure()).map(
        |path: FullPath, query: String, secure: bool| RawRequest {
            method: Method::GET,
            path: path.as_str().to_owned(),
            query,
            body: Bytes::new(),
            secure,
        },
    )
}

/// A POST request's parts, with the body limited to `max_body` bytes.
pub fn post_request(max_body: u64) -> impl Filter<Extract = (RawRequest,), Error = warp::Rejection> + Clone {
    warp::post()
        .and(warp::path::full())
        .and(raw_query())
        .and(warp::body::content_length_limit(max_body))
        .and(warp::body::bytes())
        .and(crate::accept::secure())
        .map(|path: FullPath, query: String, body: Bytes, secure: bool| RawRequest {
            method: Method::POST,
            path: path.as_str().to_owned(),
            query,
            body,
            secure,
        })
}

/// Verifies the signature and finds the app. `path_app_id` is the `{app_id}` of the path, when
/// the route has one (the Python SDK's terminate call does not).
///
/// # Errors
/// 400 for an unknown key, 404 for an unknown app id, 401 for every signature problem, 403 for
/// plain HTTP to a TLS-only app.
pub fn authenticate(
    state: &AppState,
    request: &RawRequest,
    path_app_id: Option<&str>,
) -> Result<(Arc<App>, SignedRequest), ApiError> {
    // A TLS-only app says so before anything else, signed or not.
    if !request.secure && path_app_id.and_then(|id| state.apps().find_by_id(id)).is_some_and(|app| app.tls_only) {
        return Err(ApiError::TlsRequired);
    }
    let signed = SignedRequest::parse(request.method.as_str(), &request.path, &request.query)?;
    let apps = state.apps();
    let Some(app) = apps.find_by_key(signed.auth_key()).cloned() else {
        report(state, None, &signed, &RequestAuthError::Missing("auth_key"), request, path_app_id);
        return Err(ApiError::UnknownKey);
    };
    if let Some(id) = path_app_id {
        if id != app.id.as_str() {
            if apps.find_by_id(id).is_none() {
                return Err(ApiError::UnknownApp(id.to_owned()));
            }
            report(state, Some(&app), &signed, &RequestAuthError::Missing("auth_key"), request, path_app_id);
            return Err(ApiError::AppMismatch { key: app.key.clone(), app: id.to_owned() });
        }
    }
    if app.tls_only && !request.secure {
        return Err(ApiError::TlsRequired);
    }
    // A test may have skewed the clock (`clock_skew` in `/pusher-local/faults`).
    let skew = state.faults().clock_skew();
    let now = if skew >= 0 {
        SystemTime::now() + std::time::Duration::from_secs(skew.unsigned_abs())
    } else {
        SystemTime::now() - std::time::Duration::from_secs(skew.unsigned_abs())
    };
    if let Err(error) = signed.verify(app.secret.expose(), &request.body, now, state.config().signature_window) {
        report(state, Some(&app), &signed, &error, request, path_app_id);
        return Err(error.into());
    }
    Ok((app, signed))
}

/// Logs why a signed request was refused (what should have been signed, the likely cause).
fn report(
    state: &AppState,
    app: Option<&App>,
    signed: &SignedRequest,
    error: &RequestAuthError,
    request: &RawRequest,
    path_app_id: Option<&str>,
) {
    let others: Vec<&App> =
        state.apps().iter().map(|a| &**a).filter(|a| app.is_none_or(|app| app.id != a.id)).collect();
    let diagnosis = diagnose::request(app, &others, signed, error, &request.body, path_app_id);
    state.printer().line(Line::Signature(Box::new(diagnosis)));
}
