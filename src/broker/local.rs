//! `LocalBroker`: the embedded single-node broker. Publishing is the registry's fan-out;
//! queries read the registry.

use async_trait::async_trait;

use super::{join_here, leave_here, Broker, ChannelState, Envelope, Query};
use crate::apps::AppId;
use crate::error::ClientError;
use crate::registry::{ChannelRegistry, Joined, Joining, Leaving, Left};

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

    async fn query(&self, app: &AppId, query: Query<'_>) -> Vec<ChannelState> {
        match query {
            Query::Occupied { prefix } => ChannelState::all_here(&self.registry, app, prefix),
            Query::Channel(channel) => vec![ChannelState::here(&self.registry, app, channel)],
        }
    }

    async fn join(&self, joining: Joining) -> Result<Joined, ClientError> {
        // One node is the whole cluster: the registry's own view stands.
        join_here(&self.registry, &self.joins, &joining, None)
    }

    async fn leave(&self, leaving: Leaving) -> Option<Left> {
        leave_here(&self.registry, &leaving)
    }

    async fn close(&self) {}
}
