//! Why an event reached no socket (issue 12): the one-line hint on the `pub … → 0 sockets` line
//! and on the console's stream row. Worked out only when someone looks (`-v`, or a console
//! attached), from this node's registry:
//!
//! - a client event goes to everyone on its channel but its sender, and nobody else is there;
//! - the channel's only subscribers were the excluded socket (`socket_id`);
//! - nobody is on the channel, but a near miss is occupied: the same name with another type
//!   prefix (`orders` vs `private-orders`), in another case, one or two edits away (a typo), or
//!   the same channel in another app;
//! - nobody is on the channel at all.
//!
//! With Redis the other nodes' sockets are not counted here, so no hint is given.

use crate::apps::AppId;
use crate::event::Source;
use crate::registry::ChannelRegistry;

/// The channel-type prefixes a near miss may differ by.
const PREFIXES: [&str; 5] = ["private-encrypted-", "private-", "presence-", "cache-", "#server-to-user-"];

/// The name without its type prefixes (and a `cache-` after them).
fn bare(name: &str) -> &str {
    let mut rest = name;
    for prefix in PREFIXES {
        if let Some(stripped) = rest.strip_prefix(prefix) {
            rest = stripped;
        }
    }
    rest.strip_prefix("cache-").unwrap_or(rest)
}

/// How `other` (occupied) nearly matches `channel`, if it does.
fn near_miss(channel: &str, other: &str) -> Option<&'static str> {
    if other == channel {
        return None;
    }
    if bare(other) == bare(channel) {
        return Some("the same name with another channel type (prefix)");
    }
    if other.eq_ignore_ascii_case(channel) {
        return Some("the same name in another case");
    }
    let distance = strsim::levenshtein(channel, other);
    (channel.chars().count() >= 4 && distance <= 2).then_some("a typo away")
}

/// What a hint needs to know about the event.
#[derive(Debug, Clone, Copy)]
pub struct Missed<'a> {
    /// Its app.
    pub app: &'a AppId,
    /// Its channel.
    pub channel: &'a str,
    /// Where it came from.
    pub source: Source,
    /// Whether a socket was excluded (REST `socket_id`, or a client event's sender).
    pub excluded: bool,
}

/// Why an event reached no socket here, in one line; `None` when it cannot tell.
pub fn hint(registry: &ChannelRegistry, apps: &[AppId], missed: Missed<'_>) -> Option<String> {
    let Missed { app, channel, source, excluded } = missed;
    let here = registry.channels(app, "");
    if here.iter().any(|c| &*c.name == channel) {
        return Some(if source == Source::Client {
            format!("a client event is not sent back to its sender, and nobody else is on {channel}")
        } else if excluded {
            format!("the only subscriber of {channel} was the excluded socket_id")
        } else {
            return None;
        });
    }
    if let Some((other, how)) = here.iter().find_map(|c| near_miss(channel, &c.name).map(|how| (c.name.clone(), how))) {
        return Some(format!("nobody is on {channel}, but {other} is occupied: {how}"));
    }
    for other_app in apps.iter().filter(|a| *a != app) {
        if registry.channels(other_app, "").iter().any(|c| &*c.name == channel) {
            return Some(format!(
                "nobody is on {channel} in app {app}, but it is occupied in app {other_app}: check the app id and key"
            ));
        }
    }
    Some(format!("nobody is subscribed to {channel}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::App;
    use crate::protocol::{ChannelName, SocketId};
    use crate::registry::{Client, Joining, Outbox, Transport};
    use std::sync::Arc;

    fn occupied(registry: &ChannelRegistry, app: &str, channel: &str, socket: u32) {
        let app = Arc::new(App::new(app, "k", "s"));
        let (outbox, _rx) = Outbox::new(8);
        let socket = SocketId::new(1, socket);
        registry.connect(&app, socket, &outbox, Client::new(Transport::Ws, None, None)).unwrap();
        let channel = ChannelName::parse(channel, 200).unwrap();
        registry.subscribe(&Joining { app, socket, channel, member: None }, None).unwrap();
    }

    fn why(registry: &ChannelRegistry, channel: &str, source: Source, excluded: bool) -> String {
        let apps = [AppId::new("1"), AppId::new("2")];
        hint(registry, &apps, Missed { app: &apps[0], channel, source, excluded }).unwrap_or_default()
    }

    #[test]
    fn says_why_nobody_got_it() {
        let registry = ChannelRegistry::new();
        occupied(&registry, "1", "private-orders", 1);
        occupied(&registry, "1", "Chat", 2);
        occupied(&registry, "1", "notifications", 3);
        occupied(&registry, "2", "billing", 4);
        assert!(why(&registry, "orders", Source::Api, false)
            .contains("private-orders is occupied: the same name with another channel type"));
        assert!(why(&registry, "chat", Source::Api, false).contains("another case"));
        assert!(why(&registry, "notifcations", Source::Api, false).contains("a typo away"));
        assert!(why(&registry, "billing", Source::Api, false).contains("occupied in app 2"));
        assert_eq!(why(&registry, "weather", Source::Api, false), "nobody is subscribed to weather");
        assert!(why(&registry, "private-orders", Source::Client, true).contains("not sent back to its sender"));
        assert!(why(&registry, "Chat", Source::Api, true).contains("excluded socket_id"));
        assert_eq!(why(&registry, "Chat", Source::Api, false), "");
    }
}
