//! `LocalBroker`: the embedded single-node broker. Publishing is the registry's fan-out;
//! queries read the registry.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Broker, Envelope};
use crate::apps::AppId;
use crate::error::ClientError;
use crate::protocol::ChannelName;
use crate::registry::{CachedEvent, ChannelInfo, ChannelRegistry, Joined};

use super::{subscribe_here, ClusterLeave, Joining};

/// The in-process broker.
#[derive(Debug)]
pub struct LocalBroker {
    registry: ChannelRegistry,
    joins: std::sync::Mutex<()>,
}

impl LocalBroker {
    /// A broker over `registry`.
    pub fn new(registry: ChannelRegistry) -> Self {
        Self { registry, joins: std::sync::Mutex::new(()) }
    }
}

#[async_trait]
impl Broker for LocalBroker {
    async fn publish(&self, envelope: Envelope) -> usize {
        self.registry.fan_out(&envelope.app_id, &envelope.delivery)
    }

    async fn channels(&self, app: &AppId, prefix: &str) -> Vec<ChannelInfo> {
        self.registry.channels(app, prefix)
    }

    async fn channel(&self, app: &AppId, channel: &ChannelName) -> (ChannelInfo, Option<(CachedEvent, Duration)>) {
        (self.registry.channel(app, channel), self.registry.cached(app, channel))
    }

    async fn users(&self, app: &AppId, channel: &ChannelName) -> Vec<Arc<str>> {
        self.registry.users(app, channel)
    }

    async fn subscribe(&self, joining: Joining) -> Result<Joined, ClientError> {
        // One node is the whole cluster: the registry's own view stands.
        subscribe_here(&self.registry, &self.joins, joining)
    }

    async fn leave(&self, _: &AppId, _: &ChannelName, _: Option<&str>) -> Option<ClusterLeave> {
        None
    }

    async fn close(&self) {}
}
