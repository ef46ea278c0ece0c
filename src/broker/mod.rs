//! The multi-node seam: one small trait, [`Broker`], that delivers envelopes to every subscriber
//! (on this node, and for a future Redis broker on every node) and answers cluster-wide queries.
//!
//! - [`envelope`]: `Envelope`, what travels between nodes.
//! - [`local`]: `LocalBroker`, the embedded single-node broker.
//!
//! Sockets never appear here; they belong to the registry.

pub mod envelope;
pub mod local;

use std::sync::Arc;

use async_trait::async_trait;

use crate::apps::AppId;
use crate::protocol::ChannelName;
use crate::registry::{CachedEvent, ChannelInfo, ChannelRegistry};

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
    /// Stops background work; called once during shutdown.
    async fn close(&self);
}

/// Builds the broker for this process: the embedded one (Redis arrives in a later version).
pub fn connect(registry: ChannelRegistry) -> Arc<dyn Broker> {
    Arc::new(LocalBroker::new(registry))
}
