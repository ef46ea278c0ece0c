//! `ChannelName` and `ChannelKind`: a channel name is parsed and classified once, at the edge.
//!
//! Nothing else in the crate looks at channel prefixes; it asks the parsed name what it is.

use std::fmt;
use std::sync::Arc;

/// Prefix of the per-user channel that pusher-js subscribes to after `pusher:signin`.
pub const SERVER_TO_USER_PREFIX: &str = "#server-to-user-";

/// What kind of channel a name denotes (protocol.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    /// Anything without a known prefix; no auth, no client events.
    Public,
    /// `private-`: HMAC auth, client events allowed.
    Private,
    /// `private-encrypted-`: HMAC auth, payloads are relayed untouched.
    PrivateEncrypted,
    /// `presence-`: HMAC auth over `channel_data`, member bookkeeping.
    Presence,
    /// `#server-to-user-{id}`: only for a socket signed in as `{id}`.
    ServerToUser,
}

impl ChannelKind {
    /// Whether subscribing needs a signed `auth` field.
    pub fn requires_auth(self) -> bool {
        matches!(self, Self::Private | Self::PrivateEncrypted | Self::Presence)
    }

    /// Whether clients may send `client-*` events on it.
    pub fn allows_client_events(self) -> bool {
        matches!(self, Self::Private | Self::PrivateEncrypted | Self::Presence)
    }

    /// A short label for logs.
    pub fn label(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
            Self::PrivateEncrypted => "encrypted",
            Self::Presence => "presence",
            Self::ServerToUser => "user",
        }
    }
}

/// A validated channel name. Cloning is a pointer copy.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ChannelName {
    name: Arc<str>,
    kind: ChannelKind,
    cache: bool,
}

/// Why a channel name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelNameError {
    /// The name is empty.
    #[error("channel name is empty")]
    Empty,
    /// The name is longer than the limit.
    #[error("channel name is {len} characters long; the limit is {max}")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The name holds a character outside `A-Za-z0-9_-=@,.;`.
    #[error("channel name {name:?} contains {found:?}; allowed are A-Z a-z 0-9 _ - = @ , . ;")]
    InvalidCharacter {
        /// The name as given.
        name: String,
        /// The first offending character.
        found: char,
    },
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '=' | '@' | ',' | '.' | ';')
}

impl ChannelName {
    /// Validates and classifies `name`. `max_len` is the app's channel name limit (164 on Pusher).
    ///
    /// # Errors
    /// [`ChannelNameError`] when the name is empty, too long or has a forbidden character.
    pub fn parse(name: &str, max_len: usize) -> Result<Self, ChannelNameError> {
        if name.is_empty() {
            return Err(ChannelNameError::Empty);
        }
        let len = name.chars().count();
        if len > max_len {
            return Err(ChannelNameError::TooLong { len, max: max_len });
        }
        let (checked, kind) = match name.strip_prefix(SERVER_TO_USER_PREFIX) {
            Some(user) if !user.is_empty() => (user, ChannelKind::ServerToUser),
            _ => (name, Self::kind_of(name)),
        };
        if let Some(found) = checked.chars().find(|&c| !allowed(c)) {
            return Err(ChannelNameError::InvalidCharacter { name: name.to_owned(), found });
        }
        let cache = ["cache-", "private-cache-", "private-encrypted-cache-", "presence-cache-"]
            .iter()
            .any(|p| name.starts_with(p));
        Ok(Self { name: name.into(), kind, cache })
    }

    fn kind_of(name: &str) -> ChannelKind {
        if name.starts_with("private-encrypted-") {
            ChannelKind::PrivateEncrypted
        } else if name.starts_with("private-") {
            ChannelKind::Private
        } else if name.starts_with("presence-") {
            ChannelKind::Presence
        } else {
            ChannelKind::Public
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The shared name (for map keys).
    pub fn shared(&self) -> &Arc<str> {
        &self.name
    }

    /// Its kind.
    pub fn kind(&self) -> ChannelKind {
        self.kind
    }

    /// Whether it is a cache channel (last event replayed to new subscribers).
    pub fn is_cache(&self) -> bool {
        self.cache
    }

    /// For `#server-to-user-{id}`, the user id.
    pub fn server_to_user_id(&self) -> Option<&str> {
        match self.kind {
            ChannelKind::ServerToUser => self.name.strip_prefix(SERVER_TO_USER_PREFIX),
            _ => None,
        }
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl fmt::Debug for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(name: &str) -> (ChannelKind, bool) {
        let c = ChannelName::parse(name, 164).unwrap();
        (c.kind(), c.is_cache())
    }

    #[test]
    fn prefixes_classify_in_the_documented_order() {
        use ChannelKind::*;
        assert_eq!(kind("my-channel"), (Public, false));
        assert_eq!(kind("cache-ticker"), (Public, true));
        assert_eq!(kind("private-x"), (Private, false));
        assert_eq!(kind("private-cache-x"), (Private, true));
        assert_eq!(kind("private-encrypted-x"), (PrivateEncrypted, false));
        assert_eq!(kind("private-encrypted-cache-x"), (PrivateEncrypted, true));
        assert_eq!(kind("presence-x"), (Presence, false));
        assert_eq!(kind("presence-cache-x"), (Presence, true));
        assert_eq!(kind("#server-to-user-12345"), (ServerToUser, false));
    }

    #[test]
    fn every_documented_character_is_allowed() {
        assert!(ChannelName::parse("Az09_-=@,.;", 164).is_ok());
    }

    #[test]
    fn bad_names_say_why() {
        assert_eq!(ChannelName::parse("", 164), Err(ChannelNameError::Empty));
        assert!(matches!(ChannelName::parse("a b", 164), Err(ChannelNameError::InvalidCharacter { found: ' ', .. })));
        assert!(matches!(
            ChannelName::parse("#other", 164),
            Err(ChannelNameError::InvalidCharacter { found: '#', .. })
        ));
        assert_eq!(ChannelName::parse(&"a".repeat(165), 164), Err(ChannelNameError::TooLong { len: 165, max: 164 }));
    }

    #[test]
    fn server_to_user_names_expose_the_user() {
        let c = ChannelName::parse("#server-to-user-u1", 164).unwrap();
        assert_eq!(c.server_to_user_id(), Some("u1"));
        assert_eq!(ChannelName::parse("private-a", 164).unwrap().server_to_user_id(), None);
    }
}
