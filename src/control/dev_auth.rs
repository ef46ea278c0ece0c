//! `--dev-auth`: pusher-local as the app's auth endpoint, for front-end work with no backend.
//!
//! `POST /pusher-local/auth` (pusher-js's `channelAuthorization.endpoint`) and
//! `POST /pusher-local/user-auth` (`userAuthentication.endpoint`) take what pusher-js sends, a
//! form with `socket_id` and `channel_name`, and answer what the server SDKs' `authorizeChannel`
//! and `authenticateUser` return, signed with the first app's key and secret. The user is
//! `--dev-user` / `--dev-user-info`, or per request a `user_id` form field or an
//! `X-Pusher-Local-User` header (so one test can be several users). Without `--dev-auth` both
//! answer 404 saying so. [`super::guard::check_dev_auth`] decides who may call them; the
//! answers carry CORS headers for the calling page's origin.

use std::collections::HashMap;

use base64::Engine as _;
use percent_encoding::percent_decode_str;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use warp::http::{header, HeaderMap, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Filter, Reply};

use super::{error, json_reply, with};
use crate::apps::Secret;
use crate::auth::channel::{auth_value, signin_string, subscription_string};
use crate::protocol::channel::{ChannelKind, ChannelName};
use crate::state::AppState;

/// The header that names the user for one request.
pub const USER_HEADER: &str = "x-pusher-local-user";

/// Request headers a page may send: pusher-js's and Laravel Echo's, and [`USER_HEADER`].
const ALLOWED_HEADERS: &str =
    "Content-Type, X-Pusher-Local-User, X-Requested-With, X-Socket-Id, X-CSRF-Token, X-XSRF-Token, Authorization";

/// Who a response signs for.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// The user id.
    pub id: String,
    /// The `user_info`.
    pub info: Value,
}

/// What signs a channel authorization: the app's key and secret, and its encryption master key
/// (base64) when it has one.
#[derive(Debug, Clone, Copy)]
pub struct Signer<'a> {
    /// The app key.
    pub key: &'a str,
    /// The app secret.
    pub secret: &'a str,
    /// `encryption_master_key_base64`.
    pub master_key: Option<&'a str>,
}

/// `{"auth"}` for a private channel, `{"auth","channel_data"}` for a presence channel and
/// `{"auth","shared_secret"}` for an encrypted one, as the SDKs' `authorizeChannel` returns them.
///
/// # Errors
/// A message for a 400: a bad socket id or channel, a public channel, an encrypted channel of an
/// app with no (or a bad) encryption master key.
pub fn channel_auth(signer: Signer<'_>, socket_id: &str, channel: &str, user: &User) -> Result<Value, String> {
    let Signer { key, secret, master_key } = signer;
    check_socket_id(socket_id)?;
    let name = ChannelName::parse(channel, usize::MAX).map_err(|e| e.to_string())?;
    match name.kind() {
        ChannelKind::Private => {
            Ok(json!({ "auth": auth_value(key, secret, &subscription_string(socket_id, channel, None)) }))
        }
        ChannelKind::Presence => {
            let data = json!({ "user_id": user.id, "user_info": user.info }).to_string();
            let auth = auth_value(key, secret, &subscription_string(socket_id, channel, Some(&data)));
            Ok(json!({ "auth": auth, "channel_data": data }))
        }
        ChannelKind::PrivateEncrypted => {
            let master = master_key.ok_or_else(|| {
                format!(
                    "{channel}: set encryption_master_key_base64 on the app in pusher-local.toml (the same 32-byte \
                     key your server SDK encrypts with) so --dev-auth can hand out the channel's shared_secret"
                )
            })?;
            let master = base64::engine::general_purpose::STANDARD
                .decode(master.trim())
                .ok()
                .filter(|k| k.len() == 32)
                .ok_or("encryption_master_key_base64 must be 32 bytes in base64")?;
            // As the SDKs derive it: SHA-256 of the channel name followed by the master key.
            let shared = Sha256::new().chain_update(channel.as_bytes()).chain_update(&master).finalize();
            let auth = auth_value(key, secret, &subscription_string(socket_id, channel, None));
            Ok(json!({ "auth": auth, "shared_secret": base64::engine::general_purpose::STANDARD.encode(shared) }))
        }
        ChannelKind::Public | ChannelKind::ServerToUser => {
            Err(format!("{channel} needs no authorization: only private- and presence- channels do"))
        }
    }
}

/// `{"auth","user_data"}`, as the SDKs' `authenticateUser` returns it.
///
/// # Errors
/// A message for a 400: a bad socket id.
pub fn user_auth(key: &str, secret: &str, socket_id: &str, user: &User) -> Result<Value, String> {
    check_socket_id(socket_id)?;
    let data = json!({ "id": user.id, "user_info": user.info }).to_string();
    Ok(json!({ "auth": auth_value(key, secret, &signin_string(socket_id, &data)), "user_data": data }))
}

/// `digits.digits`, as the SDKs check it.
fn check_socket_id(socket_id: &str) -> Result<(), String> {
    let valid = socket_id
        .split_once('.')
        .is_some_and(|(a, b)| [a, b].iter().all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit())));
    if valid {
        Ok(())
    } else {
        Err(format!("Invalid socket id: {socket_id:?} (pusher-js sends socket_id as a form field)"))
    }
}

/// An `application/x-www-form-urlencoded` body.
pub fn parse_form(body: &[u8]) -> HashMap<String, String> {
    let decode = |s: &str| percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect()
}

/// The user of one request: the header, then the form's `user_id`, then `--dev-user`.
fn user_for(state: &AppState, form: &HashMap<String, String>, headers: &HeaderMap) -> User {
    let config = state.config();
    let named = headers.get(USER_HEADER).and_then(|v| v.to_str().ok()).or(form.get("user_id").map(String::as_str));
    let id = named.filter(|id| !id.is_empty()).unwrap_or(&config.dev_user).to_owned();
    let info = match (&config.dev_user_info, named) {
        (Some(info), None) => info.clone(),
        _ => json!({ "name": id }),
    };
    User { id, info }
}

/// The answer to one POST.
fn answer(state: &AppState, user_auth_path: bool, body: &[u8], headers: &HeaderMap) -> Response {
    if !state.config().dev_auth {
        return error(
            StatusCode::NOT_FOUND,
            "pusher-local signs channels and users only when started with --dev-auth (or PUSHER_LOCAL_DEV_AUTH=1)",
        );
    }
    let form = parse_form(body);
    let user = user_for(state, &form, headers);
    let app = &state.config().apps[0];
    let (key, secret) = (app.key.as_str(), app.secret.expose());
    let master_key = app.encryption_master_key_base64.as_ref().map(Secret::expose);
    let socket_id = form.get("socket_id").map_or("", String::as_str);
    let result = if user_auth_path {
        user_auth(key, secret, socket_id, &user)
    } else {
        match form.get("channel_name") {
            Some(channel) => channel_auth(Signer { key, secret, master_key }, socket_id, channel, &user),
            None => Err("send channel_name (and socket_id) as form fields, as pusher-js does".into()),
        }
    };
    match result {
        Ok(value) => json_reply(StatusCode::OK, &value),
        Err(message) => error(StatusCode::BAD_REQUEST, message),
    }
}

/// CORS headers naming the calling page's origin (the guard has already checked it).
fn with_cors(mut response: Response, headers: &HeaderMap) -> Response {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let out = response.headers_mut();
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST, OPTIONS"));
        out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(ALLOWED_HEADERS));
        out.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        out.insert(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

/// `POST` and `OPTIONS` on both paths.
pub(super) fn routes(state: &AppState) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let path = warp::path(super::PREFIX).and(warp::path::param::<String>()).and(warp::path::end()).and_then(
        |name: String| async move {
            match name.as_str() {
                "auth" => Ok(false),
                "user-auth" => Ok(true),
                _ => Err(warp::reject::not_found()),
            }
        },
    );
    let preflight = path
        .and(warp::options())
        .and(warp::header::headers_cloned())
        .map(|_, headers: HeaderMap| with_cors(StatusCode::NO_CONTENT.into_response(), &headers));
    let post =
        path.and(warp::post()).and(warp::body::bytes()).and(warp::header::headers_cloned()).and(with(state)).map(
            |user_path: bool, body: bytes::Bytes, headers: HeaderMap, state: AppState| {
                with_cors(answer(&state, user_path, &body, &headers), &headers)
            },
        );
    preflight.or(post).unify()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::channel::check;

    const KEY: &str = "278d425bdf160c739803";
    const SECRET: &str = "7ad3773142a6692b25b8";
    const SIGNER: Signer<'static> = Signer { key: KEY, secret: SECRET, master_key: None };

    #[test]
    fn an_encrypted_channel_gets_the_shared_secret_the_node_sdk_gives() {
        // pusher 5 (Node): new Pusher({ appId: '1', key: 'app-key', secret: 'app-secret',
        // encryptionMasterKeyBase64: Buffer.alloc(32, 7).toString('base64') })
        //   .authorizeChannel('123.456', 'private-encrypted-room')
        let signer = Signer {
            key: "app-key",
            secret: "app-secret",
            master_key: Some("BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="),
        };
        let value = channel_auth(signer, "123.456", "private-encrypted-room", &user()).unwrap();
        assert_eq!(
            value,
            json!({
                "auth": "app-key:25f93c7ef55bbb8f8f2d33f7f1848f0f3b31d99d77f4363acf12914e5451f553",
                "shared_secret": "KXpzU7x7m1mlSYZdKpG3V5uOThnYXRV95gd0BXYycC4="
            })
        );
        let short = Signer { master_key: Some("c2hvcnQ="), ..signer };
        assert!(channel_auth(short, "1.2", "private-encrypted-a", &user()).unwrap_err().contains("32 bytes"));
    }

    fn user() -> User {
        User { id: "10".into(), info: json!({ "name": "Mr. Channels" }) }
    }

    #[test]
    fn private_channels_get_the_sdk_answer() {
        let value = channel_auth(SIGNER, "1234.1234", "private-foobar", &user()).unwrap();
        assert_eq!(
            value,
            json!({ "auth": "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4" })
        );
    }

    #[test]
    fn presence_channels_sign_the_channel_data_they_return() {
        let value = channel_auth(SIGNER, "1.2", "presence-room", &user()).unwrap();
        let data = value["channel_data"].as_str().unwrap();
        assert_eq!(data, r#"{"user_id":"10","user_info":{"name":"Mr. Channels"}}"#);
        let signed = subscription_string("1.2", "presence-room", Some(data));
        assert_eq!(check(value["auth"].as_str().unwrap(), KEY, SECRET, signed), Ok(()));
        assert_eq!(value.as_object().unwrap().len(), 2);
    }

    #[test]
    fn user_auth_signs_the_user_data_it_returns() {
        let value = user_auth(KEY, SECRET, "1.2", &user()).unwrap();
        let data = value["user_data"].as_str().unwrap();
        assert_eq!(data, r#"{"id":"10","user_info":{"name":"Mr. Channels"}}"#);
        assert_eq!(check(value["auth"].as_str().unwrap(), KEY, SECRET, signin_string("1.2", data)), Ok(()));
    }

    #[test]
    fn bad_requests_say_why() {
        assert!(channel_auth(SIGNER, "x", "private-a", &user()).unwrap_err().contains("socket id"));
        assert!(channel_auth(SIGNER, "1.2", "public", &user()).unwrap_err().contains("needs no authorization"));
        let encrypted = channel_auth(SIGNER, "1.2", "private-encrypted-a", &user()).unwrap_err();
        assert!(encrypted.contains("encryption_master_key_base64"), "{encrypted}");
        assert!(user_auth(KEY, SECRET, "1.", &user()).is_err());
    }

    #[test]
    fn forms_are_decoded() {
        let form = parse_form(b"socket_id=1.2&channel_name=presence-a%40b&user_id=a+b&flag");
        assert_eq!(form["socket_id"], "1.2");
        assert_eq!(form["channel_name"], "presence-a@b");
        assert_eq!(form["user_id"], "a b");
        assert_eq!(form["flag"], "");
    }
}
