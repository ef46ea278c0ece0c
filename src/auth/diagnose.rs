//! Why a signature did not match: the string that should have been signed, what was received,
//! what was expected, and the likely cause, found by re-checking the signature against the
//! usual mistakes (another app's secret, re-encoded `channel_data`, a changed path or query,
//! clock skew, a body changed after signing). Pure: the caller passes the apps to try.

use std::fmt;

use serde_json::Value;

use super::channel::{signin_string, subscription_string};
use super::request::{body_md5, RequestAuthError, SignedRequest};
use super::{sign, verify};
use crate::apps::App;

/// What was being signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// An HTTP API request.
    Request {
        /// Method.
        method: String,
        /// Path.
        path: String,
    },
    /// A private/presence subscription.
    Channel {
        /// The channel.
        channel: String,
        /// The socket.
        socket_id: String,
    },
    /// A `pusher:signin`.
    Signin {
        /// The socket.
        socket_id: String,
    },
}

/// A likely cause, most specific first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The signature matches another configured app's secret.
    SecretOfOtherApp(String),
    /// The key belongs to another configured app.
    KeyOfOtherApp(String),
    /// No configured app has this key.
    UnknownKey(String),
    /// The signature matches a different serialisation of the same JSON (which field).
    ReencodedAfterSigning(&'static str),
    /// The signature covers the channel without its `channel_data`.
    SignedWithoutChannelData,
    /// The clock of the signer is off by this many seconds.
    ClockSkew(i64),
    /// The body does not match `body_md5`.
    BodyChanged,
    /// The signature covers the URL-encoded query instead of the decoded values.
    QueryNotDecoded,
    /// The signature matches another method or path.
    PathOrMethodChanged(String),
    /// Nothing else matched: a different secret, or the data changed in transit.
    WrongSecret,
    /// Nothing else matched for a socket's subscription or signin: a different secret, or the
    /// auth endpoint signed another socket id or channel.
    WrongSecretForSocket,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::SecretOfOtherApp(id) => write!(f, "signed with the secret of app {id}: the signer uses another app's credentials"),
            Cause::KeyOfOtherApp(id) => write!(f, "the key belongs to app {id}: the signer uses another app's credentials"),
            Cause::UnknownKey(key) => write!(f, "no app has the key {key:?}: the signer's key is not configured here"),
            Cause::ReencodedAfterSigning(what) => write!(
                f,
                "{what} was re-encoded after signing: sign and send the exact same string (e.g. Python json.dumps adds spaces)"
            ),
            Cause::SignedWithoutChannelData => {
                f.write_str("the signature leaves out channel_data: sign socket_id:channel:channel_data when channel_data is sent")
            }
            Cause::ClockSkew(secs) => write!(f, "clock skew: the signer's clock is {secs}s off this machine's"),
            Cause::BodyChanged => f.write_str("the body changed after signing (re-serialised JSON, or a proxy rewrote it)"),
            Cause::QueryNotDecoded => {
                f.write_str("the URL-encoded query was signed: sign the decoded values (auth_key=...&info=a,b, not %2C)")
            }
            Cause::PathOrMethodChanged(signed) => {
                write!(f, "the signature matches {signed:?}: the path or method changed between signing and sending (a proxy?)")
            }
            Cause::WrongSecret => f.write_str(
                "wrong secret (most likely), or the request changed between signing and sending (path, query or a proxy)",
            ),
            Cause::WrongSecretForSocket => f.write_str(
                "wrong secret (most likely: your auth endpoint signs with another app's secret), or it signed another \
                 socket_id or channel than the ones this socket sent (an old socket_id after a reconnect?)",
            ),
        }
    }
}

/// Everything the log shows about one rejected signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    /// What was signed.
    pub subject: Subject,
    /// The app the request or socket belongs to, when known.
    pub app: Option<String>,
    /// The string that should have been signed.
    pub expected_string: String,
    /// The signature received.
    pub received: String,
    /// The signature expected (with this app's secret), when the app is known.
    pub expected: Option<String>,
    /// MD5 of the body (requests).
    pub body_md5: Option<String>,
    /// Signer's clock minus ours, in seconds (requests).
    pub skew_secs: Option<i64>,
    /// The likely cause.
    pub cause: Cause,
}

fn other_app_secret<'a>(others: &'a [&App], message: &str, signature: &str) -> Option<&'a App> {
    others.iter().copied().find(|a| verify(a.secret.expose(), message, signature))
}

/// Other serialisations of the JSON in `text`: compact, Python's `json.dumps`, pretty.
fn reencodings(text: &str) -> Vec<String> {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return Vec::new();
    };
    let mut out = vec![value.to_string(), python_dumps(&value)];
    out.extend(serde_json::to_string_pretty(&value));
    out.retain(|s| s != text);
    out
}

fn python_dumps(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let items: Vec<String> =
                map.iter().map(|(k, v)| format!("{}: {}", Value::String(k.clone()), python_dumps(v))).collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Array(list) => format!("[{}]", list.iter().map(python_dumps).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

/// Causes that apply to any `"<key>:<hex>"` auth: the key or the secret of another app.
fn credential_cause(app: &App, others: &[&App], key: &str, expected_string: &str, received: &str) -> Option<Cause> {
    if key != app.key {
        return Some(match others.iter().find(|a| a.key == key) {
            Some(other) => Cause::KeyOfOtherApp(other.id.to_string()),
            None => Cause::UnknownKey(key.to_owned()),
        });
    }
    other_app_secret(others, expected_string, received).map(|other| Cause::SecretOfOtherApp(other.id.to_string()))
}

/// A socket-side diagnosis (subscription or signin).
fn socket_diagnosis(app: &App, subject: Subject, expected_string: String, received: &str, cause: Cause) -> Diagnosis {
    Diagnosis {
        subject,
        app: Some(app.id.to_string()),
        expected: Some(sign(app.secret.expose(), &expected_string)),
        expected_string,
        received: received.to_owned(),
        body_md5: None,
        skew_secs: None,
        cause,
    }
}

/// Diagnoses a refused private/presence subscription `auth` (`"<key>:<hex>"`).
pub fn channel(
    app: &App,
    others: &[&App],
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
    auth: &str,
) -> Diagnosis {
    let (key, received) = auth.split_once(':').unwrap_or((auth, ""));
    let expected_string = subscription_string(socket_id, channel, channel_data);
    let signs =
        |data: Option<&str>| verify(app.secret.expose(), &subscription_string(socket_id, channel, data), received);
    let cause = credential_cause(app, others, key, &expected_string, received).unwrap_or_else(|| {
        if channel_data.is_some() && signs(None) {
            Cause::SignedWithoutChannelData
        } else if channel_data.is_some_and(|d| reencodings(d).iter().any(|alt| signs(Some(alt)))) {
            Cause::ReencodedAfterSigning("channel_data")
        } else {
            Cause::WrongSecretForSocket
        }
    });
    let subject = Subject::Channel { channel: channel.to_owned(), socket_id: socket_id.to_owned() };
    socket_diagnosis(app, subject, expected_string, received, cause)
}

/// Diagnoses a refused `pusher:signin`.
pub fn signin(app: &App, others: &[&App], socket_id: &str, user_data: &str, auth: &str) -> Diagnosis {
    let (key, received) = auth.split_once(':').unwrap_or((auth, ""));
    let expected_string = signin_string(socket_id, user_data);
    let cause = credential_cause(app, others, key, &expected_string, received).unwrap_or_else(|| {
        let signs = |data: &str| verify(app.secret.expose(), &signin_string(socket_id, data), received);
        if reencodings(user_data).iter().any(|alt| signs(alt)) {
            Cause::ReencodedAfterSigning("user_data")
        } else {
            Cause::WrongSecretForSocket
        }
    });
    socket_diagnosis(app, Subject::Signin { socket_id: socket_id.to_owned() }, expected_string, received, cause)
}

/// Diagnoses a refused HTTP API request. `app` is the app its `auth_key` names, if any;
/// `others` are the remaining apps.
pub fn request(
    app: Option<&App>,
    others: &[&App],
    request: &SignedRequest,
    error: &RequestAuthError,
    body: &[u8],
    path_app: Option<&str>,
) -> Diagnosis {
    let expected_string = request.string_to_sign(request.path());
    let received = request.signature().to_owned();
    let skew = match error {
        RequestAuthError::TimestampExpired { skew, .. } => Some(*skew),
        _ => request
            .param("auth_timestamp")
            .and_then(|t| t.parse::<i64>().ok())
            .map(|t| t - chrono::Utc::now().timestamp()),
    };
    let cause = match (app, error) {
        (None, _) => Cause::UnknownKey(request.auth_key().to_owned()),
        (Some(_), RequestAuthError::TimestampExpired { skew, .. }) => Cause::ClockSkew(*skew),
        (Some(_), RequestAuthError::BodyMd5Mismatch { .. }) => Cause::BodyChanged,
        (Some(app), _) if path_app.is_some_and(|id| id != app.id.as_str()) => Cause::KeyOfOtherApp(app.id.to_string()),
        (Some(app), _) => {
            let secret = app.secret.expose();
            if let Some(other) = other_app_secret(others, &expected_string, &received) {
                Cause::SecretOfOtherApp(other.id.to_string())
            } else if verify(secret, &request.string_to_sign_undecoded(), &received) {
                Cause::QueryNotDecoded
            } else {
                let path = request.path();
                let trimmed = path.trim_end_matches('/');
                let slashed = format!("{trimmed}/");
                let other_method = if request.method() == "GET" { "POST" } else { "GET" };
                let candidates =
                    [(request.method(), trimmed), (request.method(), slashed.as_str()), (other_method, path)];
                let matched = candidates
                    .into_iter()
                    .filter(|(m, p)| (*m, *p) != (request.method(), path))
                    .map(|(m, p)| request.string_to_sign_as(m, p))
                    .find(|candidate| verify(secret, candidate, &received));
                matched.map_or(Cause::WrongSecret, |s| Cause::PathOrMethodChanged(s.replace('\n', "\\n")))
            }
        }
    };
    Diagnosis {
        subject: Subject::Request { method: request.method().to_owned(), path: request.path().to_owned() },
        app: app.map(|a| a.id.to_string()),
        expected: app.map(|a| sign(a.secret.expose(), &expected_string)),
        expected_string,
        received,
        body_md5: Some(body_md5(body)),
        skew_secs: skew,
        cause,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::request::sign_query;
    use std::time::{Duration, SystemTime};

    fn app(id: &str) -> App {
        App::new(id, format!("key-{id}"), format!("secret-{id}"))
    }

    fn auth_for(app: &App, signed: &str) -> String {
        format!("{}:{}", app.key, sign(app.secret.expose(), signed))
    }

    #[test]
    fn channel_wrong_secret() {
        let a = app("1");
        let auth = format!("key-1:{}", sign("nope", "1.2:private-x"));
        let d = channel(&a, &[], "1.2", "private-x", None, &auth);
        assert_eq!(d.cause, Cause::WrongSecretForSocket);
        assert!(!d.cause.to_string().contains("proxy"), "a socket's hint is about sockets: {}", d.cause);
        assert_eq!(d.expected_string, "1.2:private-x");
        assert_eq!(d.expected.as_deref(), Some(sign("secret-1", "1.2:private-x").as_str()));
    }

    #[test]
    fn channel_signed_with_another_apps_secret_or_key() {
        let (a, b) = (app("1"), app("2"));
        let auth = format!("key-1:{}", sign("secret-2", "1.2:private-x"));
        assert_eq!(channel(&a, &[&b], "1.2", "private-x", None, &auth).cause, Cause::SecretOfOtherApp("2".into()));
        let auth = auth_for(&b, "1.2:private-x");
        assert_eq!(channel(&a, &[&b], "1.2", "private-x", None, &auth).cause, Cause::KeyOfOtherApp("2".into()));
        assert_eq!(channel(&a, &[], "1.2", "private-x", None, "zzz:00").cause, Cause::UnknownKey("zzz".into()));
    }

    #[test]
    fn channel_data_reencoded_after_signing() {
        let a = app("1");
        // Signed the Python form, sent the compact form.
        let signed = subscription_string("1.2", "presence-x", Some(r#"{"user_id": "u", "user_info": {"n": 1}}"#));
        let auth = auth_for(&a, &signed);
        let d = channel(&a, &[], "1.2", "presence-x", Some(r#"{"user_id":"u","user_info":{"n":1}}"#), &auth);
        assert_eq!(d.cause, Cause::ReencodedAfterSigning("channel_data"));
        assert!(d.cause.to_string().contains("re-encoded after signing"));
    }

    #[test]
    fn channel_data_left_out_of_the_signature() {
        let a = app("1");
        let auth = auth_for(&a, "1.2:presence-x");
        let d = channel(&a, &[], "1.2", "presence-x", Some(r#"{"user_id":"u"}"#), &auth);
        assert_eq!(d.cause, Cause::SignedWithoutChannelData);
    }

    #[test]
    fn signin_user_data_reencoded() {
        let a = app("1");
        let auth = auth_for(&a, &signin_string("1.2", r#"{"id": "u"}"#));
        assert_eq!(signin(&a, &[], "1.2", r#"{"id":"u"}"#, &auth).cause, Cause::ReencodedAfterSigning("user_data"));
    }

    fn req(
        secret: &str,
        method: &str,
        signed_path: &str,
        sent_path: &str,
        ts: u64,
        extra: &[(&str, &str)],
    ) -> SignedRequest {
        let q = sign_query("key-1", secret, method, signed_path, b"", ts, extra);
        SignedRequest::parse(method, sent_path, &q).unwrap()
    }

    fn now() -> u64 {
        chrono::Utc::now().timestamp() as u64
    }

    fn failure(r: &SignedRequest, a: &App) -> RequestAuthError {
        r.verify(a.secret.expose(), b"", SystemTime::now(), Duration::from_secs(600)).unwrap_err()
    }

    #[test]
    fn request_causes() {
        let (a, b) = (app("1"), app("2"));
        let r = req("secret-9", "GET", "/apps/1/channels", "/apps/1/channels", now(), &[]);
        let d = request(Some(&a), &[&b], &r, &failure(&r, &a), b"", Some("1"));
        assert_eq!(d.cause, Cause::WrongSecret);
        assert_eq!(d.body_md5.as_deref(), Some("d41d8cd98f00b204e9800998ecf8427e"));
        assert!(d.skew_secs.unwrap().abs() < 5);

        let r = req("secret-2", "GET", "/apps/1/channels", "/apps/1/channels", now(), &[]);
        assert_eq!(
            request(Some(&a), &[&b], &r, &failure(&r, &a), b"", Some("1")).cause,
            Cause::SecretOfOtherApp("2".into())
        );

        let r = req("secret-1", "GET", "/apps/1/channels", "/apps/1/channels", now() - 1000, &[]);
        assert_eq!(request(Some(&a), &[], &r, &failure(&r, &a), b"", Some("1")).cause, Cause::ClockSkew(-1000));

        let r = req("secret-1", "GET", "/proxy/apps/1/channels", "/apps/1/channels", now(), &[]);
        assert_eq!(request(Some(&a), &[], &r, &failure(&r, &a), b"", Some("1")).cause, Cause::WrongSecret);
        let r = req("secret-1", "GET", "/apps/1/channels/", "/apps/1/channels", now(), &[]);
        assert!(matches!(
            request(Some(&a), &[], &r, &failure(&r, &a), b"", Some("1")).cause,
            Cause::PathOrMethodChanged(_)
        ));

        // Signed the %2C form.
        let q = sign_query("key-1", "secret-1", "GET", "/apps/1/channels", b"", now(), &[("info", "a%2Cb")]);
        let r = SignedRequest::parse("GET", "/apps/1/channels", &q).unwrap();
        assert_eq!(request(Some(&a), &[], &r, &failure(&r, &a), b"", Some("1")).cause, Cause::QueryNotDecoded);

        let r = req("secret-1", "GET", "/apps/1/channels", "/apps/1/channels", now(), &[]);
        let d = request(None, &[&a], &r, &RequestAuthError::Missing("x"), b"", Some("1"));
        assert_eq!(d.cause, Cause::UnknownKey("key-1".into()));
        assert_eq!(d.expected, None);
    }
}
