//! HTTP API request signatures (protocol.md §7).
//!
//! The string to sign is `METHOD\nPATH\nquery`, where `query` is every parameter except
//! `auth_signature`, keys lowercased, sorted, values **percent-decoded** and joined unescaped.
//! Node and Python send values raw, Ruby and PHP percent-encode them; decoding first makes both
//! verify. `body_md5` is accepted on every method (pusher-http-python sends it on GETs too).

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use md5::{Digest, Md5};
use percent_encoding::percent_decode_str;

use super::verify;

/// Why a signed request was refused. Every variant is an HTTP 401 except `UnknownKey` (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestAuthError {
    /// A required `auth_*` parameter is absent.
    #[error("Missing parameter: {0}")]
    Missing(&'static str),
    /// `auth_version` is not `1.0`.
    #[error("Version not supported: {0:?} (only 1.0 is)")]
    VersionNotSupported(String),
    /// `auth_timestamp` is not a number.
    #[error("Timestamp required: auth_timestamp must be seconds since the epoch, got {0:?}")]
    BadTimestamp(String),
    /// The timestamp is outside the window.
    #[error("Timestamp expired: Given timestamp ({given}) not within {window}s of server time ({now})")]
    TimestampExpired {
        /// The client's time, RFC 3339.
        given: String,
        /// Ours, RFC 3339.
        now: String,
        /// The window in seconds.
        window: u64,
        /// Signed difference, client minus server, in seconds.
        skew: i64,
    },
    /// `body_md5` does not match the body.
    #[error("Invalid body_md5: the body's MD5 is {actual}, but body_md5 is {given}")]
    BodyMd5Mismatch {
        /// MD5 of the received body.
        actual: String,
        /// The parameter.
        given: String,
    },
    /// A request with a body carried no `body_md5`.
    #[error("Missing parameter: body_md5 (required when the request has a body)")]
    BodyMd5Missing,
    /// The HMAC does not match.
    #[error("Invalid signature: you should have sent HmacSHA256Hex({}, your_secret_key), but you sent {got:?}", escape(.signed))]
    InvalidSignature {
        /// The string that should have been signed.
        signed: String,
        /// The `auth_signature` received.
        got: String,
    },
}

/// Writes the string to sign the way real Pusher shows it: quoted, newlines as `\n`.
fn escape(signed: &str) -> String {
    format!("{signed:?}")
}

/// The parsed query of a signed request, before the app's secret is known.
#[derive(Debug, Clone)]
pub struct SignedRequest {
    method: String,
    path: String,
    /// Decoded parameters except `auth_signature`, keys lowercased.
    params: Vec<(String, String)>,
    auth_key: String,
    signature: String,
    raw_query: String,
}

fn decode(text: &str) -> Cow<'_, str> {
    percent_decode_str(text).decode_utf8_lossy()
}

/// Lowercase hex MD5 of `body`.
pub fn body_md5(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

impl SignedRequest {
    /// Reads the `auth_*` parameters from `raw_query`.
    ///
    /// # Errors
    /// [`RequestAuthError::Missing`] when `auth_key` or `auth_signature` is absent.
    pub fn parse(method: &str, path: &str, raw_query: &str) -> Result<Self, RequestAuthError> {
        let mut params = Vec::new();
        let mut signature = None;
        for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (k, v) = (decode(k).to_lowercase(), decode(v).into_owned());
            if k == "auth_signature" {
                signature = Some(v);
            } else {
                params.push((k, v));
            }
        }
        params.sort();
        let auth_key = Self::find(&params, "auth_key").ok_or(RequestAuthError::Missing("auth_key"))?.to_owned();
        let signature = signature.ok_or(RequestAuthError::Missing("auth_signature"))?;
        Ok(Self {
            method: method.to_ascii_uppercase(),
            path: path.to_owned(),
            params,
            auth_key,
            signature,
            raw_query: raw_query.to_owned(),
        })
    }

    fn find<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
        params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The `auth_signature` received.
    pub fn signature(&self) -> &str {
        &self.signature
    }

    /// The method, uppercase.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The path as sent.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The string to sign built from the query exactly as sent (values not percent-decoded):
    /// what a client that signed its URL-encoded query would have signed.
    pub fn string_to_sign_undecoded(&self) -> String {
        let mut params: Vec<(String, &str)> = self
            .raw_query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
            .filter(|(k, _)| !k.eq_ignore_ascii_case("auth_signature"))
            .map(|(k, v)| (k.to_lowercase(), v))
            .collect();
        params.sort();
        let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{}\n{}\n{}", self.method, self.path, query.join("&"))
    }

    /// The string to sign with another method and path (for diagnosing what changed).
    pub fn string_to_sign_as(&self, method: &str, path: &str) -> String {
        let query: Vec<String> = self.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{method}\n{path}\n{}", query.join("&"))
    }

    /// The `auth_key` parameter: which app signed this.
    pub fn auth_key(&self) -> &str {
        &self.auth_key
    }

    /// A decoded query parameter (lowercased key), excluding `auth_signature`.
    pub fn param(&self, key: &str) -> Option<&str> {
        Self::find(&self.params, key)
    }

    /// Parameters that are not part of the signing scheme (`info`, `filter_by_prefix`, ...).
    pub fn extra_params(&self) -> impl Iterator<Item = &str> {
        self.params
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| !matches!(*k, "auth_key" | "auth_timestamp" | "auth_version" | "body_md5"))
    }

    /// The exact string the client should have signed for `path`.
    pub fn string_to_sign(&self, path: &str) -> String {
        self.string_to_sign_as(&self.method, path)
    }

    /// Verifies version, timestamp (within `window` of `now`), `body_md5` and the signature.
    ///
    /// # Errors
    /// The first check that fails, as a [`RequestAuthError`].
    pub fn verify(&self, secret: &str, body: &[u8], now: SystemTime, window: Duration) -> Result<(), RequestAuthError> {
        match self.param("auth_version") {
            Some("1.0") => {}
            Some(other) => return Err(RequestAuthError::VersionNotSupported(other.to_owned())),
            None => return Err(RequestAuthError::Missing("auth_version")),
        }
        let ts = self.param("auth_timestamp").ok_or(RequestAuthError::Missing("auth_timestamp"))?;
        let given: i64 = ts.parse().map_err(|_| RequestAuthError::BadTimestamp(ts.to_owned()))?;
        let now_secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
        let skew = given - now_secs;
        if skew.unsigned_abs() >= window.as_secs() {
            let at = |secs: i64| {
                let t = UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64);
                humantime::format_rfc3339_seconds(t).to_string()
            };
            return Err(RequestAuthError::TimestampExpired {
                given: at(given),
                now: at(now_secs),
                window: window.as_secs(),
                skew,
            });
        }
        match self.param("body_md5") {
            Some(given) => {
                let actual = body_md5(body);
                if !given.eq_ignore_ascii_case(&actual) {
                    return Err(RequestAuthError::BodyMd5Mismatch { actual, given: given.to_owned() });
                }
            }
            None if !body.is_empty() => return Err(RequestAuthError::BodyMd5Missing),
            None => {}
        }
        // SDKs sign the unescaped path; accept the path as sent or percent-decoded.
        let decoded = decode(&self.path);
        let candidates = [Some(self.path.as_str()), (decoded != self.path).then_some(&*decoded)];
        for path in candidates.into_iter().flatten() {
            if verify(secret, &self.string_to_sign(path), &self.signature) {
                return Ok(());
            }
        }
        Err(RequestAuthError::InvalidSignature { signed: self.string_to_sign(&self.path), got: self.signature.clone() })
    }
}

/// Signs a request the way the official SDKs do; returns the full query string. Used by the
/// replay client and by tests.
pub fn sign_query(
    key: &str,
    secret: &str,
    method: &str,
    path: &str,
    body: &[u8],
    timestamp: u64,
    extra: &[(&str, &str)],
) -> String {
    let mut params: Vec<(String, String)> = vec![
        ("auth_key".into(), key.into()),
        ("auth_timestamp".into(), timestamp.to_string()),
        ("auth_version".into(), "1.0".into()),
    ];
    if !body.is_empty() {
        params.push(("body_md5".into(), body_md5(body)));
    }
    params.extend(extra.iter().map(|(k, v)| (k.to_lowercase(), v.to_string())));
    params.sort();
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let query = query.join("&");
    let signature = super::sign(secret, &format!("{}\n{path}\n{query}", method.to_uppercase()));
    format!("{query}&auth_signature={signature}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "278d425bdf160c739803";
    const SECRET: &str = "7ad3773142a6692b25b8";
    const TS: u64 = 1353088179;

    fn at(ts: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(ts)
    }

    const WINDOW: Duration = Duration::from_secs(600);

    #[test]
    fn docs_post_vector_verifies() {
        let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        assert_eq!(body_md5(body), "ec365a775a4cd0599faeb73354201b6f");
        let q = format!("auth_key={KEY}&auth_timestamp={TS}&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f&auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c");
        let req = SignedRequest::parse("POST", "/apps/3/events", &q).unwrap();
        assert_eq!(req.verify(SECRET, body, at(TS), WINDOW), Ok(()));
    }

    #[test]
    fn percent_encoded_values_verify_like_raw_ones() {
        // Ruby/PHP send info=user_count%2Csubscription_count; Node sends the comma raw.
        let q =
            sign_query(KEY, SECRET, "GET", "/apps/3/channels/c", b"", TS, &[("info", "user_count,subscription_count")]);
        let encoded = q.replace(',', "%2C");
        for query in [q, encoded] {
            let req = SignedRequest::parse("GET", "/apps/3/channels/c", &query).unwrap();
            assert_eq!(req.verify(SECRET, b"", at(TS), WINDOW), Ok(()));
        }
    }

    #[test]
    fn python_style_body_md5_on_get_is_accepted() {
        let q = format!("auth_key={KEY}&auth_timestamp={TS}&auth_version=1.0&body_md5=d41d8cd98f00b204e9800998ecf8427e&info=user_count,subscription_count");
        let sig = crate::auth::sign(SECRET, &format!("GET\n/apps/3/channels/presence-foobar\n{q}"));
        assert_eq!(sig, "1e5ce8ad11c48842231003911c29c872174a125059c4cdd215f10f2134d0c1b1");
        let req = SignedRequest::parse("GET", "/apps/3/channels/presence-foobar", &format!("{q}&auth_signature={sig}"))
            .unwrap();
        assert_eq!(req.verify(SECRET, b"", at(TS), WINDOW), Ok(()));
    }

    #[test]
    fn wrong_secret_names_the_string_to_sign() {
        let q = sign_query(KEY, "nope", "POST", "/apps/3/events", b"{}", TS, &[]);
        let err = SignedRequest::parse("POST", "/apps/3/events", &q)
            .unwrap()
            .verify(SECRET, b"{}", at(TS), WINDOW)
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(
                r#"Invalid signature: you should have sent HmacSHA256Hex("POST\n/apps/3/events\nauth_key="#
            ),
            "{text}"
        );
        assert!(!text.contains(SECRET));
    }

    #[test]
    fn timestamp_window_is_600_seconds_exclusive() {
        let q = sign_query(KEY, SECRET, "GET", "/apps/3/channels", b"", TS, &[]);
        let req = SignedRequest::parse("GET", "/apps/3/channels", &q).unwrap();
        assert_eq!(req.verify(SECRET, b"", at(TS + 599), WINDOW), Ok(()));
        let err = req.verify(SECRET, b"", at(TS + 600), WINDOW).unwrap_err();
        assert!(matches!(err, RequestAuthError::TimestampExpired { skew: -600, .. }));
        assert!(err
            .to_string()
            .starts_with("Timestamp expired: Given timestamp (2012-11-16T17:49:39Z) not within 600s"));
    }

    #[test]
    fn body_md5_must_match_and_is_required_with_a_body() {
        let q = sign_query(KEY, SECRET, "POST", "/p", b"{}", TS, &[]);
        let req = SignedRequest::parse("POST", "/p", &q).unwrap();
        assert!(matches!(req.verify(SECRET, b"{ }", at(TS), WINDOW), Err(RequestAuthError::BodyMd5Mismatch { .. })));
        let q = sign_query(KEY, SECRET, "POST", "/p", b"", TS, &[]);
        let req = SignedRequest::parse("POST", "/p", &q).unwrap();
        assert_eq!(req.verify(SECRET, b"{}", at(TS), WINDOW), Err(RequestAuthError::BodyMd5Missing));
    }

    #[test]
    fn missing_and_bad_parameters() {
        assert_eq!(
            SignedRequest::parse("GET", "/p", "auth_signature=x").unwrap_err(),
            RequestAuthError::Missing("auth_key")
        );
        assert_eq!(
            SignedRequest::parse("GET", "/p", "auth_key=k").unwrap_err(),
            RequestAuthError::Missing("auth_signature")
        );
        let req = SignedRequest::parse("GET", "/p", "auth_key=k&auth_signature=x&auth_version=2.0").unwrap();
        assert!(matches!(req.verify(SECRET, b"", at(TS), WINDOW), Err(RequestAuthError::VersionNotSupported(_))));
    }

    #[test]
    fn signed_unescaped_path_verifies_when_sent_escaped() {
        let q = sign_query(KEY, SECRET, "GET", "/apps/3/channels/a;b", b"", TS, &[]);
        let req = SignedRequest::parse("GET", "/apps/3/channels/a%3Bb", &q).unwrap();
        assert_eq!(req.verify(SECRET, b"", at(TS), WINDOW), Ok(()));
    }
}
