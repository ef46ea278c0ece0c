//! HMAC-SHA256 signatures: pure functions over strings and bytes, no HTTP types.
//!
//! - [`channel`]: private/presence subscription `auth` and user signin.
//! - [`request`]: the HTTP API's signed query (`auth_signature`, `body_md5`, timestamp window).
//! - [`diagnose`]: why a signature did not match, for the log.
//!
//! Comparisons go through `hmac`'s `verify_slice`, which is constant time.

pub mod channel;
pub mod diagnose;
pub mod request;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str, message: &str) -> HmacSha256 {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(message.as_bytes());
    mac
}

/// Lowercase hex HMAC-SHA256 of `message` under `secret`.
pub fn sign(secret: &str, message: &str) -> String {
    hex::encode(mac(secret, message).finalize().into_bytes())
}

/// Whether `signature_hex` is the HMAC-SHA256 of `message` under `secret`, compared in
/// constant time. Malformed hex is simply not a match.
pub fn verify(secret: &str, message: &str, signature_hex: &str) -> bool {
    match hex::decode(signature_hex) {
        Ok(bytes) => mac(secret, message).verify_slice(&bytes).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "7ad3773142a6692b25b8";

    #[test]
    fn pusher_docs_private_channel_vector() {
        assert_eq!(
            sign(SECRET, "1234.1234:private-foobar"),
            "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
    }

    #[test]
    fn verify_accepts_the_right_signature_only() {
        let good = sign(SECRET, "m");
        assert!(verify(SECRET, "m", &good));
        assert!(verify(SECRET, "m", &good.to_uppercase()), "hex is case-insensitive");
        assert!(!verify(SECRET, "m2", &good));
        assert!(!verify("other", "m", &good));
        assert!(!verify(SECRET, "m", "zz"));
        assert!(!verify(SECRET, "m", ""));
    }
}
