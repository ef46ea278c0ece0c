//! The multi-node seam: one small trait, [`Broker`], that delivers envelopes to every subscriber
//! (on this node, and with Redis on every node of the cluster) and answers cluster-wide queries.
//!
//! - [`envelope`]: `Envelope`, what travels between nodes, and its wire form.
//! - [`local`]: `LocalBroker`, the embedded single-node broker.
//! - [`redis`]: `RedisBroker`, several nodes as one over Redis (pub/sub for deliveries, shared
//!   keys and Lua scripts for counts and presence, heartbeats for node death).
//!
//! Sockets never appear here; they belong to the registry. The session asks the broker about
//! each subscribe and unsubscribe ([`Broker::join`], [`Broker::leave`]) so that occupied/vacated,
//! member_added/removed and subscription counts are decided for the whole cluster; the local
//! broker answers `None` there, which means "this node is the whole cluster".

pub mod envelope;
pub mod local;
pub mod redis;

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::apps::{App, AppId};
use crate::config::Config;
use crate::error::ClientError;
use crate::protocol::{server, ChannelName};
use crate::registry::{CachedEvent, ChannelInfo, ChannelRegistry, Joined, Left, Member};

pub use self::redis::{ConnectError, RedisBroker};
pub use envelope::Envelope;
pub use local::LocalBroker;

/// Delivers events to every subscriber of a channel and answers channel queries.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Fans `envelope` out everywhere; returns the deliveries made on this node.
    async fn publish(&self, envelope: Envelope) -> usize;
    /// Occupied channels whose names start with `prefix`, with their counts.
    async fn channels(&self, app: &AppId, prefix: &str) -> Vec<ChannelInfo>;
    /// One channel's counts and its cached event (cache channels).
    async fn channel(
        &self,
        app: &AppId,
        channel: &ChannelName,
    ) -> (ChannelInfo, Option<(CachedEvent, std::time::Duration)>);
    /// Distinct presence user ids.
    async fn users(&self, app: &AppId, channel: &ChannelName) -> Vec<Arc<str>>;
    /// Records, before the registry takes it, that a socket of this node subscribes to
    /// `channel` (as `member` on presence channels). `None`: no cluster, use the registry's view.
    ///
    /// # Errors
    /// [`ClientError::PresenceFull`] when a new user would exceed the member limit cluster-wide.
    async fn join(
        &self,
        app: &App,
        channel: &ChannelName,
        member: Option<&Member>,
    ) -> Result<Option<ClusterJoin>, ClientError>;
    /// Records that a socket of this node left `channel` (presence user key `user`).
    async fn leave(&self, app: &AppId, channel: &ChannelName, user: Option<&str>) -> Option<ClusterLeave>;
    /// Stops background work; called once during shutdown.
    async fn close(&self);
}

/// A subscribe as the whole cluster sees it.
#[derive(Debug, Clone)]
pub struct ClusterJoin {
    /// Connections subscribed to the channel on every node, this one included.
    pub subscriptions: usize,
    /// The user's first socket anywhere (member_added).
    pub first_member: bool,
    /// Presence channels: every member on every node, for subscription_succeeded.
    pub roster: Option<Vec<Member>>,
}

impl ClusterJoin {
    /// The registry's `joined`, corrected to the cluster's view.
    pub fn apply(&self, mut joined: Joined, channel: &ChannelName) -> Joined {
        joined.occupied = self.subscriptions == 1;
        if !self.first_member {
            joined.member_added = None;
        }
        joined.subscribers = self.subscriptions;
        if joined.subscription_count.is_some() {
            joined.subscription_count = Some(server::subscription_count(channel.as_str(), self.subscriptions));
        }
        joined
    }
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
}

/// Receives [`Notice`]s; `server::run` drains it into `AppState::on_notice`.
pub type Notices = mpsc::UnboundedReceiver<Notice>;

/// Builds the broker `config` names: Redis when `redis_url` is set, else the embedded one. A
/// Redis that cannot be reached is an error, never a silent fallback to a single node.
///
/// # Errors
/// [`ConnectError`] naming the URL.
pub async fn connect(config: &Config, registry: ChannelRegistry) -> Result<(Arc<dyn Broker>, Notices), ConnectError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let broker: Arc<dyn Broker> = match &config.redis_url {
        None => Arc::new(LocalBroker::new(registry)),
        Some(url) => {
            let shown = config.redis_url_shown().unwrap_or_default();
            RedisBroker::connect(url, &shown, &config.redis_prefix, registry, tx).await?
        }
    };
    Ok((broker, rx))
}
