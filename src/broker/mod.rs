//! The multi-node seam: one small trait, [`Broker`], that delivers envelopes to every subscriber
//! (on this node, and with Redis on every node of the cluster) and answers cluster-wide queries.
//!
//! - [`envelope`]: `Envelope`, what travels between nodes, and its wire form.
//! - [`local`]: `LocalBroker`, the embedded single-node broker.
//! - [`redis`]: `RedisBroker`, several nodes as one over Redis (pub/sub for deliveries, shared
//!   keys and Lua scripts for counts and presence, heartbeats for node death).
//!
//! Sockets belong to the registry, by id; no socket handle crosses the seam. Joining and
//! leaving go the same way: [`Broker::join`] and [`Broker::leave`] change the registry (the
//! local broker at once; the Redis broker in order with the cluster's presence announcements),
//! announce member_added/removed, and answer the whole cluster's view, so that
//! occupied/vacated, members and subscription counts are decided once for the cluster. Only
//! `state` holds the broker; what it answers is acted on in `AppState::membership`.

pub mod envelope;
pub mod local;
pub mod redis;

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::apps::AppId;
use crate::error::ClientError;
use crate::protocol::{server, ChannelName, Frame, SocketId};
use crate::registry::{CachedEvent, ChannelInfo, ChannelRegistry, Delivery, Joined, Joining, Leaving, Left, Member};

pub use self::redis::{ConnectError, RedisBroker, StartError};
pub use envelope::Envelope;
pub use local::LocalBroker;

/// Delivers events to every subscriber of a channel, keeps channel membership cluster-wide and
/// answers channel queries. Five methods; no socket handle crosses it (the registry holds the
/// sockets, by id).
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Fans `envelope` out everywhere; returns the deliveries made on this node.
    async fn publish(&self, envelope: Envelope) -> usize;
    /// Occupied channels, or one channel in full, as the whole cluster sees them.
    async fn query(&self, app: &AppId, query: Query<'_>) -> Vec<ChannelState>;
    /// Subscribes a connected socket of this node: records it cluster-wide (on Redis) and in
    /// the registry, which queues subscription_succeeded (with the cluster's roster on
    /// presence channels). A new member's member_added has gone to every other subscriber by
    /// the time this returns. The answer is the cluster's view of the change.
    ///
    /// # Errors
    /// [`ClientError::PresenceFull`] when a new user would exceed the member limit cluster-wide.
    async fn join(&self, joining: Joining) -> Result<Joined, ClientError>;
    /// Unsubscribes a socket of this node, from the registry and cluster-wide. A departed
    /// member's member_removed has gone to every subscriber by the time this returns. The
    /// answer is the cluster's view of the change; `None` when the socket was not subscribed.
    async fn leave(&self, leaving: Leaving) -> Option<Left>;
    /// Stops background work; called once during shutdown.
    async fn close(&self);
}

/// What [`Broker::query`] asks.
#[derive(Debug, Clone, Copy)]
pub enum Query<'a> {
    /// Every occupied channel whose name starts with the prefix, with its counts (no users,
    /// no cached event), sorted by name.
    Occupied {
        /// The name prefix (`""`: all).
        prefix: &'a str,
    },
    /// One channel, occupied or not: counts, presence users and the cached event.
    Channel(&'a ChannelName),
}

/// A channel as [`Broker::query`] answers it.
#[derive(Debug, Clone)]
pub struct ChannelState {
    /// Its counts.
    pub info: ChannelInfo,
    /// Distinct presence user ids, sorted ([`Query::Channel`] only).
    pub users: Vec<Arc<str>>,
    /// The cached event and its time left (cache channels, [`Query::Channel`] only).
    pub cached: Option<(CachedEvent, std::time::Duration)>,
}

impl ChannelState {
    /// This node's view of one channel.
    pub fn here(registry: &ChannelRegistry, app: &AppId, channel: &ChannelName) -> Self {
        let users = registry.users(app, channel);
        Self { info: registry.channel(app, channel), users, cached: registry.cached(app, channel) }
    }

    /// This node's occupied channels.
    pub fn all_here(registry: &ChannelRegistry, app: &AppId, prefix: &str) -> Vec<Self> {
        let counts = registry.channels(app, prefix).into_iter();
        counts.map(|info| Self { info, users: Vec::new(), cached: None }).collect()
    }
}

/// Subscribes on this node alone: the registry takes the socket and, for a new presence member,
/// this node's other subscribers hear member_added, with no other subscribe in between (under
/// `one_at_a_time`). Otherwise a socket subscribing at that moment could find the member in its
/// roster and then hear it added as well. `roster`: the cluster's, for presence.
///
/// # Errors
/// As [`ChannelRegistry::subscribe`].
pub fn join_here(
    registry: &ChannelRegistry,
    one_at_a_time: &std::sync::Mutex<()>,
    joining: &Joining,
    roster: Option<&[Member]>,
) -> Result<Joined, ClientError> {
    // A panic while holding it cannot leave anything half-done that this lock protects.
    let _turn = one_at_a_time.lock().unwrap_or_else(|p| p.into_inner());
    let joined = registry.subscribe(joining, roster)?;
    if let Some(frame) = &joined.member_added {
        tell_here(registry, &joining.app.id, &joining.channel, frame, Some(joining.socket));
    }
    Ok(joined)
}

/// Unsubscribes on this node alone and tells this node's remaining subscribers of a departed
/// member.
pub fn leave_here(registry: &ChannelRegistry, leaving: &Leaving) -> Option<Left> {
    let left = registry.unsubscribe(leaving)?;
    if let Some(frame) = &left.member_removed {
        tell_here(registry, &leaving.app.id, &left.channel, frame, None);
    }
    Some(left)
}

/// Delivers a presence announcement to this node's subscribers of `channel` but `except`.
pub fn tell_here(
    registry: &ChannelRegistry,
    app: &AppId,
    channel: &ChannelName,
    frame: &Frame,
    except: Option<SocketId>,
) {
    let delivery = Delivery::Event { channel: channel.clone(), frame: frame.clone(), except, cache: None };
    registry.fan_out(app, &delivery);
}

/// An unsubscribe as the whole cluster sees it.
#[derive(Debug, Clone, Copy)]
pub struct ClusterLeave {
    /// Connections still subscribed on every node.
    pub subscriptions: usize,
    /// The user's last socket anywhere left (member_removed).
    pub last_member: bool,
}

impl ClusterLeave {
    /// The registry's `left`, corrected to the cluster's view.
    pub fn apply(&self, mut left: Left) -> Left {
        left.vacated = self.subscriptions == 0;
        if !self.last_member {
            left.member_removed = None;
        }
        left.subscribers = self.subscriptions;
        if left.vacated {
            left.subscription_count = None;
        } else if left.subscription_count.is_some() {
            left.subscription_count = Some(server::subscription_count(left.channel.as_str(), self.subscriptions));
        }
        left
    }
}

/// Something the cluster did that the node must act on (print it, announce it, webhook it).
#[derive(Debug, Clone)]
pub enum Notice {
    /// Redis went away: local delivery goes on, cross-node delivery is down.
    Down {
        /// The Redis URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Redis is back and this node's state is written again.
    Up {
        /// The Redis URL.
        url: String,
    },
    /// A node stopped beating and this node cleaned up after it.
    NodeGone {
        /// Its id.
        node: String,
        /// Presence members whose last socket was on that node.
        removed: Vec<(AppId, ChannelName, Member)>,
        /// Channels nobody is subscribed to any more.
        vacated: Vec<(AppId, ChannelName)>,
        /// Channels still occupied, with their new subscription count.
        counts: Vec<(AppId, ChannelName, usize)>,
    },
    /// This node stalled past its heartbeat, was taken for dead (its members announced
    /// removed) and is back: these members are present again.
    MembersBack {
        /// The members, with their app and channel.
        added: Vec<(AppId, ChannelName, Member)>,
    },
}

/// Receives [`Notice`]s; `server::run` drains it into `AppState::on_notice`.
pub type Notices = mpsc::UnboundedReceiver<Notice>;

/// Where the cluster is: the Redis of `--redis-url`.
#[derive(Debug, Clone, Copy)]
pub struct Cluster<'a> {
    /// The Redis URL.
    pub url: &'a str,
    /// The URL as shown (password hidden).
    pub shown: &'a str,
    /// The key prefix shared by the cluster's nodes.
    pub prefix: &'a str,
    /// What `rediss://` trusts.
    pub tls: &'a crate::tls::Settings,
}

/// Builds the broker: Redis when a `cluster` is given, else the embedded one. A Redis that
/// cannot be reached is an error, never a silent fallback to a single node.
///
/// # Errors
/// [`ConnectError`] naming the URL.
pub async fn connect(
    cluster: Option<Cluster<'_>>,
    registry: ChannelRegistry,
) -> Result<(Arc<dyn Broker>, Notices), ConnectError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let broker: Arc<dyn Broker> = match cluster {
        None => Arc::new(LocalBroker::new(registry)),
        Some(Cluster { url, shown, prefix, tls }) => {
            let roots =
                redis_roots(tls).map_err(|e| ConnectError { url: shown.to_owned(), source: StartError::Tls(e) })?;
            RedisBroker::connect(url, shown, prefix, roots, registry, tx).await?
        }
    };
    Ok((broker, rx))
}

/// For `rediss://`: with `--ca-file`, those CAs and the local CA (PEM), trusted instead of the
/// system's roots (the Redis client takes one list); without, the system's roots.
fn redis_roots(tls: &crate::tls::Settings) -> Result<Option<Vec<u8>>, crate::tls::TlsError> {
    if tls.ca_files.is_empty() {
        return Ok(None);
    }
    let mut pem = Vec::new();
    let local = crate::tls::Authority::ca_path(&tls.dir);
    for path in tls.ca_files.iter().chain(local.is_file().then_some(&local)) {
        let bytes = std::fs::read(path).map_err(|source| crate::tls::TlsError::File { path: path.clone(), source })?;
        pem.extend_from_slice(&bytes);
        pem.push(b'\n');
    }
    Ok(Some(pem))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::App;
    use crate::registry::Outbox;
    use serde_json::value::RawValue;

    fn channel(name: &str) -> ChannelName {
        ChannelName::parse(name, 164).unwrap()
    }

    #[test]
    fn a_leave_takes_the_clusters_word_for_vacated_counts_and_the_last_member() {
        let left = || Left {
            channel: channel("room"),
            vacated: true,
            member_removed: Some(server::member_removed("room", &RawValue::from_string("\"u\"".into()).unwrap())),
            subscription_count: Some(server::subscription_count("room", 0)),
            subscribers: 0,
        };
        // Empty here, but two sockets on other nodes, one of them the same user.
        let view = ClusterLeave { subscriptions: 2, last_member: false }.apply(left());
        assert!(!view.vacated && view.member_removed.is_none());
        assert_eq!(view.subscribers, 2);
        assert!(view.subscription_count.unwrap().as_str().contains("\\\"subscription_count\\\":2"));
        // The last socket anywhere.
        let view = ClusterLeave { subscriptions: 0, last_member: true }.apply(left());
        assert!(view.vacated && view.member_removed.is_some() && view.subscription_count.is_none());
    }

    #[test]
    fn subscribing_here_tells_the_other_subscribers_of_a_new_member_but_not_the_subscriber() {
        let registry = ChannelRegistry::new();
        let lock = std::sync::Mutex::new(());
        let app = Arc::new(App::new("1", "k", "s"));
        let member = |id: &str| Member {
            key: id.into(),
            user_id: RawValue::from_string(format!("\"{id}\"")).unwrap(),
            user_info: None,
        };
        let (a, mut ra) = Outbox::new(8);
        let (b, mut rb) = Outbox::new(8);
        let ch = channel("presence-r");
        let join = |socket: u32, outbox: &Outbox, id: &str| {
            let client = crate::registry::Client::new(crate::registry::Transport::Ws, None, None);
            registry.connect(&app, SocketId::new(1, socket), outbox, client).unwrap();
            Joining {
                app: app.clone(),
                socket: SocketId::new(1, socket),
                channel: ch.clone(),
                member: Some(member(id)),
            }
        };
        join_here(&registry, &lock, &join(1, &a, "u1"), None).unwrap();
        ra.take_queued();
        let joined = join_here(&registry, &lock, &join(2, &b, "u2"), None).unwrap();
        assert!(joined.member_added.is_some(), "left for the webhook");
        let heard: Vec<String> = ra.take_queued().iter().map(|f| f.as_str().to_owned()).collect();
        assert_eq!(heard.len(), 1);
        assert!(heard[0].contains("member_added") && heard[0].contains("u2"), "{heard:?}");
        let own: Vec<String> = rb.take_queued().iter().map(|f| f.as_str().to_owned()).collect();
        assert!(own.iter().all(|f| !f.contains("member_added")), "{own:?}");
    }
}
