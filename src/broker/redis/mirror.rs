//! `Mirror`: what this node has told Redis about its own sockets: per channel, the local
//! subscription count and the presence users with their local socket counts. It decides "first
//! / last socket of this user on this node" before a script runs, and it is what the node
//! writes again ([`Mirror::snapshot`]) when Redis comes back empty.
//!
//! It is kept by the broker, not read from the registry, so the registry stays the one owner
//! of sockets and the broker the one owner of what Redis was told.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;

use crate::apps::AppId;

#[derive(Debug, Default)]
struct Local {
    subscribers: usize,
    /// User key → (sockets on this node, member JSON).
    users: HashMap<Arc<str>, (usize, String)>,
}

/// This node's own subscriptions and presence members.
#[derive(Debug, Default)]
pub struct Mirror {
    channels: HashMap<(AppId, Arc<str>), Local>,
}

impl Mirror {
    /// One more local subscriber; returns true when it is `user`'s first socket here.
    pub fn join(&mut self, app: &AppId, channel: &Arc<str>, user: Option<(&Arc<str>, String)>) -> bool {
        let local = self.channels.entry((app.clone(), channel.clone())).or_default();
        local.subscribers += 1;
        let Some((key, member)) = user else { return false };
        let entry = local.users.entry(key.clone()).or_insert((0, member));
        entry.0 += 1;
        entry.0 == 1
    }

    /// One local subscriber fewer; when it was `user`'s last socket here, returns the user's
    /// member JSON.
    pub fn leave(&mut self, app: &AppId, channel: &Arc<str>, user: Option<&str>) -> Option<String> {
        let id = (app.clone(), channel.clone());
        let local = self.channels.get_mut(&id)?;
        local.subscribers = local.subscribers.saturating_sub(1);
        let mut last = None;
        if let Some(key) = user {
            if let Some(entry) = local.users.get_mut(key) {
                entry.0 -= 1;
                if entry.0 == 0 {
                    last = local.users.remove(key).map(|(_, member)| member);
                }
            }
        }
        if local.subscribers == 0 {
            self.channels.remove(&id);
        }
        last
    }

    /// The JSON the RESYNC script reads: every local count and presence member.
    pub fn snapshot(&self) -> String {
        let mut subs = Vec::new();
        let mut presence = Vec::new();
        for ((app, channel), local) in &self.channels {
            subs.push(json!([app.as_str(), &**channel, local.subscribers]));
            for (key, (_, member)) in &local.users {
                presence.push(json!([app.as_str(), &**channel, &**key, member]));
            }
        }
        json!({ "subs": subs, "presence": presence }).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_and_last_local_socket_of_a_user_and_the_snapshot() {
        let mut m = Mirror::default();
        let (app, ch, u) = (AppId::new("1"), Arc::<str>::from("presence-a"), Arc::<str>::from("u1"));
        assert!(m.join(&app, &ch, Some((&u, "{}".into()))));
        assert!(!m.join(&app, &ch, Some((&u, "{}".into()))));
        assert!(!m.join(&app, &Arc::from("news"), None));
        let snap: serde_json::Value = serde_json::from_str(&m.snapshot()).unwrap();
        assert_eq!(snap["subs"].as_array().unwrap().len(), 2);
        assert_eq!(snap["presence"], json!([["1", "presence-a", "u1", "{}"]]));
        assert_eq!(m.leave(&app, &ch, Some("u1")), None);
        assert_eq!(m.leave(&app, &ch, Some("u1")).as_deref(), Some("{}"));
        assert_eq!(m.leave(&app, &ch, Some("u1")), None, "nothing left to leave");
    }
}
