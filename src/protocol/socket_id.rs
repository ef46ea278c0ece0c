//! `SocketId`: the `"1234.5678"` identifier of one connection, and its generator.
//!
//! Every server SDK validates socket ids against `^\d+\.\d+$` before signing, so the id is two
//! decimal numbers. It is stored as two `u32`s (cheap to copy and hash on the fan-out path).

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

/// The id of one WebSocket connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId {
    high: u32,
    low: u32,
}

impl SocketId {
    /// Builds an id from its two parts.
    pub fn new(high: u32, low: u32) -> Self {
        Self { high, low }
    }

    /// Parses `"123.456"`. Returns `Err` when the text is not of the form `\d+\.\d+`.
    /// `Ok(None)` means well-formed but out of range, so it cannot name any socket of ours.
    pub fn parse(text: &str) -> Result<Option<SocketId>, InvalidSocketId> {
        let (high, low) = text.split_once('.').ok_or(InvalidSocketId)?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(high) || !digits(low) {
            return Err(InvalidSocketId);
        }
        Ok(match (high.parse(), low.parse()) {
            (Ok(high), Ok(low)) => Some(SocketId { high, low }),
            _ => None,
        })
    }
}

impl fmt::Display for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.high, self.low)
    }
}

/// The text was not a socket id of the form `123.456`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid socket_id: expected two numbers separated by a dot, such as \"1234.5678\"")]
pub struct InvalidSocketId;

/// Hands out unique socket ids: a random high part per process, a counter below it.
///
/// The random part keeps ids from different runs (and different nodes) apart; the counter
/// guarantees uniqueness within a run without a lookup.
#[derive(Debug)]
pub struct SocketIds {
    high: u32,
    next: AtomicU32,
}

impl SocketIds {
    /// A generator with a random prefix.
    pub fn random() -> Self {
        Self::starting_at(rand::random_range(100_000..1_000_000), rand::random_range(1..1_000_000))
    }

    /// A deterministic generator (tests, recorded fixtures).
    pub fn starting_at(high: u32, low: u32) -> Self {
        Self { high, next: AtomicU32::new(low) }
    }

    /// The next id.
    pub fn next_id(&self) -> SocketId {
        SocketId::new(self.high, self.next.fetch_add(1, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_the_dotted_form() {
        let id = SocketId::parse("264774.13368624").unwrap().unwrap();
        assert_eq!(id.to_string(), "264774.13368624");
    }

    #[test]
    fn rejects_anything_but_digits_dot_digits() {
        for bad in ["", "1", "1.", ".1", "a.1", "1.2.3", "1 .2", "-1.2"] {
            assert_eq!(SocketId::parse(bad), Err(InvalidSocketId), "{bad:?}");
        }
    }

    #[test]
    fn out_of_range_is_well_formed_but_names_no_socket() {
        assert_eq!(SocketId::parse("99999999999.1"), Ok(None));
    }

    #[test]
    fn generated_ids_are_unique_and_well_formed() {
        let ids = SocketIds::starting_at(7, 1);
        let a = ids.next_id();
        let b = ids.next_id();
        assert_ne!(a, b);
        assert_eq!(a.to_string(), "7.1");
    }
}
