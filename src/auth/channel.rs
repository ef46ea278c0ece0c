//! Subscription and signin signatures (protocol.md §4).
//!
//! `auth` is `"<app key>:<hex>"`; the key is checked before the HMAC, and the signed text is
//! built from the exact strings received (never re-serialised: Python's `json.dumps` adds spaces).

use super::{sign, verify};

/// Why an `auth` value was refused. The messages are the ones real Pusher sends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `auth` on a channel that needs it.
    #[error(
        "Subscribing to {channel} requires an auth signature (\"auth\":\"<key>:<signature>\") from your auth endpoint"
    )]
    Missing {
        /// The channel.
        channel: String,
    },
    /// The key part is not this app's key.
    #[error("Invalid key in subscription auth data: '{key}'")]
    InvalidKey {
        /// The key part received.
        key: String,
    },
    /// The HMAC does not match.
    #[error("Invalid signature: Expected HMAC SHA256 hex digest of {signed}, but got {got}")]
    InvalidSignature {
        /// The text that should have been signed.
        signed: String,
        /// The signature part received.
        got: String,
    },
}

/// The text a private or presence subscription signs: `socket_id:channel[:channel_data]`.
/// `channel_data` is appended whenever present, even on private channels and even when empty.
pub fn subscription_string(socket_id: &str, channel: &str, channel_data: Option<&str>) -> String {
    match channel_data {
        Some(data) => format!("{socket_id}:{channel}:{data}"),
        None => format!("{socket_id}:{channel}"),
    }
}

/// The text a user signin signs: `socket_id::user::user_data`.
pub fn signin_string(socket_id: &str, user_data: &str) -> String {
    format!("{socket_id}::user::{user_data}")
}

/// The `auth` value an app's auth endpoint would return for `signed`.
pub fn auth_value(key: &str, secret: &str, signed: &str) -> String {
    format!("{key}:{}", sign(secret, signed))
}

/// Checks `auth` (`"<key>:<hex>"`) against the text `signed`.
///
/// # Errors
/// [`AuthError::InvalidKey`] when the key part differs from `key`, [`AuthError::InvalidSignature`]
/// when the HMAC does not match.
pub fn check(auth: &str, key: &str, secret: &str, signed: String) -> Result<(), AuthError> {
    let (got_key, got_sig) = auth.split_once(':').unwrap_or((auth, ""));
    if got_key != key {
        return Err(AuthError::InvalidKey { key: got_key.to_owned() });
    }
    if verify(secret, &signed, got_sig) {
        Ok(())
    } else {
        Err(AuthError::InvalidSignature { signed, got: got_sig.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "278d425bdf160c739803";
    const SECRET: &str = "7ad3773142a6692b25b8";

    #[test]
    fn docs_vectors() {
        assert_eq!(
            auth_value(KEY, SECRET, &subscription_string("1234.1234", "private-foobar", None)),
            "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
        assert_eq!(
            sign(SECRET, &signin_string("1234.1234", r#"{"id":"12345"}"#)),
            "4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba"
        );
        let data = r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#;
        assert_eq!(
            sign(SECRET, &subscription_string("1234.1234", "presence-foobar", Some(data))),
            "31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80"
        );
    }

    #[test]
    fn empty_channel_data_is_still_signed() {
        assert_eq!(subscription_string("1.2", "private-example", Some("")), "1.2:private-example:");
    }

    #[test]
    fn key_is_checked_before_the_signature() {
        let signed = subscription_string("1.2", "private-a", None);
        let good = auth_value(KEY, SECRET, &signed);
        assert_eq!(check(&good, KEY, SECRET, signed.clone()), Ok(()));
        assert_eq!(check("other:abc", KEY, SECRET, signed.clone()), Err(AuthError::InvalidKey { key: "other".into() }));
        let wrong = auth_value(KEY, "wrong", &signed);
        let err = check(&wrong, KEY, SECRET, signed).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("Invalid signature: Expected HMAC SHA256 hex digest of 1.2:private-a, but got "));
    }
}
