//! `ApiError` → HTTP status and body, in one exhaustive match; JSON success bodies; and
//! [`recover`] for requests that match no route.
//!
//! Errors are plain text, as real Pusher sends them (the SDKs surface the raw text); successes
//! are always JSON objects with status 200 (PHP requires exactly 200 and an object).

use std::convert::Infallible;

use serde::Serialize;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Rejection;

use crate::auth::request::RequestAuthError;
use crate::protocol::ChannelNameError;

/// Why an HTTP API request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// Signature, timestamp, version or body_md5 problem.
    #[error(transparent)]
    Auth(#[from] RequestAuthError),
    /// No app has this key.
    #[error("Unknown auth_key")]
    UnknownKey,
    /// No app has this id.
    #[error("Unknown app_id {0:?}: no app with this id is configured")]
    UnknownApp(String),
    /// The key belongs to another app.
    #[error("auth_key {key:?} does not belong to app {app:?}")]
    AppMismatch {
        /// The key.
        key: String,
        /// The app id in the path.
        app: String,
    },
    /// A plain-HTTP call to an app that only accepts TLS.
    #[error("This app accepts HTTP API calls over https:// only: use https (the SDKs' useTLS: true)")]
    TlsRequired,
    /// The body is not the expected JSON.
    #[error("Invalid JSON body: {0}")]
    InvalidJson(String),
    /// A required field is missing.
    #[error("Missing field: {0}")]
    MissingField(&'static str),
    /// A bad channel name.
    #[error("Invalid channel name: {0}")]
    InvalidChannel(#[from] ChannelNameError),
    /// Too many channels in one trigger.
    #[error("Too many channels: {count} given, the limit is {max}")]
    TooManyChannels {
        /// Given.
        count: usize,
        /// Limit.
        max: usize,
    },
    /// Too many events in one batch.
    #[error("Batch too large: {count} events given, the limit is {max}")]
    BatchTooLarge {
        /// Given.
        count: usize,
        /// Limit.
        max: usize,
    },
    /// Event name too long.
    #[error("Event name too long: {len} characters, the limit is {max}")]
    EventNameTooLong {
        /// Length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// `socket_id` is not `\d+\.\d+`.
    #[error("Invalid socket_id {0:?}: expected two numbers separated by a dot, such as \"1234.5678\"")]
    InvalidSocketId(String),
    /// An encrypted channel among several.
    #[error("Cannot trigger to several channels when one is encrypted ({0})")]
    EncryptedMultiChannel(String),
    /// `info` names an attribute we do not know.
    #[error("Unknown info attribute {0:?}: expected user_count, subscription_count or cache")]
    UnknownInfo(String),
    /// `user_count` without a presence prefix filter.
    #[error("user_count may only be requested for presence channels - please supply filter_by_prefix beginning with presence-")]
    UserCountNeedsPresencePrefix,
    /// `user_count` of a non-presence channel.
    #[error("Cannot retrieve the user count unless the channel is a presence channel")]
    UserCountNotPresence,
    /// `/users` of a non-presence channel.
    #[error("Users can only be retrieved for presence channels")]
    UsersNotPresence,
    /// Parameters an endpoint does not accept.
    #[error("The following query string parameters are extraneous: {0}")]
    Extraneous(String),
    /// `data` over the limit.
    #[error("Payload too large: data is {len} bytes, the limit is {max} bytes")]
    PayloadTooLarge {
        /// Size.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// A test asked for this status (`http_status` in `/pusher-local/faults`).
    #[error("Answered {0} by a pusher-local fault (/pusher-local/faults): nothing was done")]
    Fault(StatusCode),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Auth(_) | ApiError::AppMismatch { .. } => StatusCode::UNAUTHORIZED,
            ApiError::UnknownApp(_) => StatusCode::NOT_FOUND,
            ApiError::TlsRequired => StatusCode::FORBIDDEN,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Fault(status) => *status,
            ApiError::UnknownKey
            | ApiError::InvalidJson(_)
            | ApiError::MissingField(_)
            | ApiError::InvalidChannel(_)
            | ApiError::TooManyChannels { .. }
            | ApiError::BatchTooLarge { .. }
            | ApiError::EventNameTooLong { .. }
            | ApiError::InvalidSocketId(_)
            | ApiError::EncryptedMultiChannel(_)
            | ApiError::UnknownInfo(_)
            | ApiError::UserCountNeedsPresencePrefix
            | ApiError::UserCountNotPresence
            | ApiError::UsersNotPresence
            | ApiError::Extraneous(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The response: status and plain-text message.
    pub fn into_response(self) -> Response {
        text(self.status(), self.to_string())
    }
}

/// Why a request was refused, carried in the response's extensions so the API log line can say
/// it (`→ 401 …: Missing parameter: auth_key`).
#[derive(Debug, Clone)]
pub struct Reason(pub String);

/// A plain-text response; an error status carries its message as the [`Reason`] too.
pub fn text(status: StatusCode, body: String) -> Response {
    let reason = (status.is_client_error() || status.is_server_error()).then(|| Reason(body.clone()));
    let mut response = Response::new(body.into());
    if let Some(reason) = reason {
        response.extensions_mut().insert(reason);
    }
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

/// A JSON success with the given status.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    // Our reply types are maps, strings and numbers: serialising cannot fail.
    let body = serde_json::to_vec(value).expect("replies are plain JSON");
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Turns a handler's result into a response.
pub fn finish(result: Result<Response, ApiError>) -> Result<Response, Infallible> {
    Ok(result.unwrap_or_else(ApiError::into_response))
}

/// Answers requests no route matched (unknown path, wrong method, body over the limit).
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    let (status, message) = if rejection.is_not_found() {
        (StatusCode::NOT_FOUND, "Not found: the HTTP API lives under /apps/{app_id}/ (events, batch_events, channels, users) and WebSockets under /app/{key}".to_owned())
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        (StatusCode::PAYLOAD_TOO_LARGE, "Request body too large".to_owned())
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        (StatusCode::LENGTH_REQUIRED, "A Content-Length header is required".to_owned())
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        (StatusCode::METHOD_NOT_ALLOWED, "Method not allowed for this path".to_owned())
    } else {
        (StatusCode::BAD_REQUEST, format!("Bad request: {rejection:?}"))
    };
    Ok(text(status, message))
}

/// A plain-text response (the WebSocket endpoint's and the HTTP transports' refusals).
pub fn plain(status: StatusCode, text: &'static str) -> Response {
    let mut response = Response::new(text.into());
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_match_the_pusher_http_api() {
        assert_eq!(ApiError::UnknownKey.status(), 400);
        assert_eq!(ApiError::UnknownKey.to_string(), "Unknown auth_key");
        assert_eq!(ApiError::Auth(RequestAuthError::BodyMd5Missing).status(), 401);
        assert_eq!(ApiError::PayloadTooLarge { len: 1, max: 0 }.status(), 413);
        assert_eq!(ApiError::UnknownApp("9".into()).status(), 404);
        assert_eq!(ApiError::TlsRequired.status(), 403);
        assert_eq!(ApiError::UsersNotPresence.status(), 400);
    }
}
