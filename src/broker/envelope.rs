//! `Envelope`: one delivery addressed to an app, as it would travel between nodes.

use crate::apps::AppId;
use crate::registry::Delivery;

/// A delivery for one app.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The app.
    pub app_id: AppId,
    /// What to deliver.
    pub delivery: Delivery,
}
