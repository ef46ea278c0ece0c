//! Presence members of one channel: one member per distinct user id, with a count of that
//! user's sockets, so member_added/member_removed fire only on the first and last socket.
//!
//! Users are keyed by the string form of `user_id` (`10` and `"10"` are one user); the JSON
//! value as first received is kept and echoed back. The first socket's `user_info` is kept until
//! the user's last socket leaves.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::value::RawValue;

use crate::protocol::server::MemberRef;

/// A presence member as a subscriber declared it.
#[derive(Debug, Clone)]
pub struct Member {
    /// The user id as text (the dedup key).
    pub key: Arc<str>,
    /// The `user_id` JSON value as received (string or number).
    pub user_id: Box<RawValue>,
    /// `user_info` as received.
    pub user_info: Option<Box<RawValue>>,
}

impl Member {
    /// Borrowed view for frame encoders.
    pub fn as_ref(&self) -> MemberRef<'_> {
        MemberRef { user_id: &self.user_id, key: &self.key, user_info: self.user_info.as_deref() }
    }
}

#[derive(Debug)]
struct Entry {
    member: Member,
    sockets: usize,
}

/// The roster of one presence channel.
#[derive(Debug, Default)]
pub struct Members {
    users: HashMap<Arc<str>, Entry>,
}

impl Members {
    /// Whether this user is already present.
    pub fn contains(&self, key: &str) -> bool {
        self.users.contains_key(key)
    }

    /// Distinct users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Adds one socket of `member`'s user. Returns true when it is the user's first socket.
    pub fn join(&mut self, member: Member) -> bool {
        match self.users.get_mut(&member.key) {
            Some(entry) => {
                entry.sockets += 1;
                false
            }
            None => {
                self.users.insert(member.key.clone(), Entry { member, sockets: 1 });
                true
            }
        }
    }

    /// Removes one socket of user `key`. Returns the member when that was its last socket.
    pub fn leave(&mut self, key: &str) -> Option<Member> {
        let entry = self.users.get_mut(key)?;
        entry.sockets -= 1;
        if entry.sockets == 0 {
            self.users.remove(key).map(|e| e.member)
        } else {
            None
        }
    }

    /// The member for `key`.
    pub fn get(&self, key: &str) -> Option<&Member> {
        self.users.get(key).map(|e| &e.member)
    }

    /// Every member.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Member> + Clone {
        self.users.values().map(|e| &e.member)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str) -> Member {
        Member { key: id.into(), user_id: RawValue::from_string(format!("\"{id}\"")).unwrap(), user_info: None }
    }

    #[test]
    fn first_and_last_socket_of_a_user_are_reported() {
        let mut m = Members::default();
        assert!(m.join(member("a")));
        assert!(!m.join(member("a")), "second socket of the same user");
        assert!(m.join(member("b")));
        assert_eq!(m.len(), 2);
        assert!(m.leave("a").is_none(), "a still has a socket");
        assert_eq!(m.leave("a").unwrap().key.as_ref(), "a");
        assert_eq!(m.len(), 1);
        assert!(m.leave("zzz").is_none());
    }
}
