//! `Apps`: the table of configured applications, looked up by id (REST) or key (WebSocket).
//!
//! An app is static for the life of the process: credentials, feature switches and limits.
//! `Secret` keeps the secret out of `Debug` output and logs.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// An app id (numeric text for the Python SDK's sake, but any text is accepted).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppId(Arc<str>);

impl AppId {
    /// Wraps a string.
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        Self(id.into())
    }

    /// Whether both are the same id, not only equal ones (a pointer comparison).
    pub fn same(&self, other: &AppId) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for AppId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl<'de> Deserialize<'de> for AppId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Accept `id = 1` as well as `id = "1"` in TOML.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Text {
            S(String),
            N(u64),
        }
        Ok(match Text::deserialize(d)? {
            Text::S(s) => AppId::new(s),
            Text::N(n) => AppId::new(n.to_string()),
        })
    }
}

impl serde::Serialize for AppId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// An app secret. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for signing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

fn yes() -> bool {
    true
}

/// One application: credentials, feature switches and limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    /// The app id used in REST paths.
    pub id: AppId,
    /// The public key used by clients.
    pub key: String,
    /// The secret used to sign.
    pub secret: Secret,
    /// Clients may send `client-*` events (on by default: a local tool needs no dashboard).
    #[serde(default = "yes")]
    pub client_events: bool,
    /// `pusher:signin` is accepted.
    #[serde(default = "yes")]
    pub user_authentication: bool,
    /// Watchlist online/offline events are sent to signed-in users.
    #[serde(default = "yes")]
    pub watchlist_events: bool,
    /// `pusher_internal:subscription_count` is sent on subscribe/unsubscribe (non-presence).
    #[serde(default = "yes")]
    pub subscription_count: bool,
    /// Authorized connections: a socket must sign in or subscribe to a private or presence
    /// channel within this many seconds, or it is closed with 4009. Off when absent (as on Pusher).
    #[serde(default)]
    pub authorized_connections_timeout: Option<u64>,
    /// Limits; Pusher's documented values by default.
    #[serde(default)]
    pub limits: Limits,
    /// Webhook endpoints (`[[apps.webhooks]]`); none by default (webhooks are still kept in
    /// the local outbox).
    #[serde(default)]
    pub webhooks: Vec<WebhookTarget>,
    /// Several events per webhook POST, gathered over a short window (off: one per POST).
    #[serde(default)]
    pub webhook_batching: bool,
    /// Plain `ws://` connections are refused with 4000 and plain-HTTP API calls with 403, as
    /// hosted Pusher does for an app that only accepts TLS (`--tls-only` sets it on every app).
    #[serde(default)]
    pub tls_only: bool,
    /// The 32-byte key (base64) the app's server SDK encrypts `private-encrypted-` channels with
    /// (`encryptionMasterKeyBase64`): `--dev-auth` needs it to hand out their `shared_secret`.
    #[serde(default)]
    pub encryption_master_key_base64: Option<Secret>,
}

/// One endpoint of an app (`[[apps.webhooks]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookTarget {
    /// Where to POST (`http://…`).
    pub url: String,
    /// Only these kinds; every kind when absent.
    #[serde(default)]
    pub event_types: Option<Vec<WebhookKind>>,
}

impl WebhookTarget {
    /// A target receiving every kind.
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), event_types: None }
    }

    /// Whether this target wants `kind`. subscription_count fires on every subscribe and
    /// unsubscribe, so it goes only to targets that ask for it by name.
    pub fn wants(&self, kind: WebhookKind) -> bool {
        match &self.event_types {
            Some(kinds) => kinds.contains(&kind),
            None => kind != WebhookKind::SubscriptionCount,
        }
    }
}

/// The kinds of webhook event (the `name` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookKind {
    /// A channel got its first subscriber.
    ChannelOccupied,
    /// A channel's last subscriber left (sent after the leave delay).
    ChannelVacated,
    /// A user's first socket joined a presence channel.
    MemberAdded,
    /// A user's last socket left a presence channel (sent after the leave delay).
    MemberRemoved,
    /// A client sent a `client-*` event.
    ClientEvent,
    /// A socket subscribed to a cache channel with nothing cached.
    CacheMiss,
    /// A non-presence channel's subscription count changed (sent only to endpoints that list
    /// it in `event_types`, as Pusher sends it only when the app enables it).
    SubscriptionCount,
}

impl WebhookKind {
    /// The `name` as sent.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookKind::ChannelOccupied => "channel_occupied",
            WebhookKind::ChannelVacated => "channel_vacated",
            WebhookKind::MemberAdded => "member_added",
            WebhookKind::MemberRemoved => "member_removed",
            WebhookKind::ClientEvent => "client_event",
            WebhookKind::CacheMiss => "cache_miss",
            WebhookKind::SubscriptionCount => "subscription_count",
        }
    }
}

/// Per-app limits. Defaults are Pusher's documented ones (protocol.md §3).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Concurrent connections; `None` is unlimited (4004 when exceeded).
    pub max_connections: Option<usize>,
    /// Channel name length.
    pub max_channel_name_length: usize,
    /// Event name length.
    pub max_event_name_length: usize,
    /// `data` size in bytes for HTTP and client events (413 / `pusher:error`).
    pub max_payload_bytes: usize,
    /// Channels in one `events` call.
    pub max_channels_per_event: usize,
    /// Events in one `batch_events` call.
    pub max_batch_size: usize,
    /// Distinct users in one presence channel.
    pub max_presence_members: usize,
    /// Size of one member's `user_info` JSON in bytes.
    pub max_presence_user_info_bytes: usize,
    /// Length of a presence `user_id`.
    pub max_presence_user_id_length: usize,
    /// Client events per second per connection (4301 beyond).
    pub client_events_per_second: u32,
    /// User ids in a signin watchlist (4302 beyond).
    pub max_watchlist: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: None,
            max_channel_name_length: 164,
            max_event_name_length: 200,
            max_payload_bytes: 10 * 1024,
            max_channels_per_event: 100,
            max_batch_size: 10,
            max_presence_members: 100,
            max_presence_user_info_bytes: 1024,
            max_presence_user_id_length: 128,
            client_events_per_second: 10,
            max_watchlist: 100,
        }
    }
}

impl App {
    /// An app with every feature on and default limits.
    pub fn new(id: impl Into<Arc<str>>, key: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            id: AppId::new(id),
            key: key.into(),
            secret: Secret::new(secret),
            client_events: true,
            user_authentication: true,
            watchlist_events: true,
            subscription_count: true,
            authorized_connections_timeout: None,
            limits: Limits::default(),
            webhooks: Vec::new(),
            webhook_batching: false,
            tls_only: false,
            encryption_master_key_base64: None,
        }
    }
}

/// The app table.
#[derive(Debug, Clone, Default)]
pub struct Apps {
    all: Vec<Arc<App>>,
    by_id: HashMap<AppId, Arc<App>>,
    by_key: HashMap<String, Arc<App>>,
}

/// Two apps share an id or a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppsError {
    /// Duplicate id.
    #[error("two apps have the id {0:?}")]
    DuplicateId(String),
    /// Duplicate key.
    #[error("two apps have the key {0:?}")]
    DuplicateKey(String),
}

impl Apps {
    /// Builds the table.
    ///
    /// # Errors
    /// [`AppsError`] when two apps share an id or a key.
    pub fn new(apps: impl IntoIterator<Item = App>) -> Result<Self, AppsError> {
        let mut table = Apps::default();
        for app in apps {
            let app = Arc::new(app);
            if table.by_id.insert(app.id.clone(), app.clone()).is_some() {
                return Err(AppsError::DuplicateId(app.id.to_string()));
            }
            if table.by_key.insert(app.key.clone(), app.clone()).is_some() {
                return Err(AppsError::DuplicateKey(app.key.clone()));
            }
            table.all.push(app);
        }
        Ok(table)
    }

    /// The app with this id.
    pub fn find_by_id(&self, id: &str) -> Option<&Arc<App>> {
        self.by_id.get(id)
    }

    /// The app with this key.
    pub fn find_by_key(&self, key: &str) -> Option<&Arc<App>> {
        self.by_key.get(key)
    }

    /// Every app, in configuration order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<App>> {
        self.all.iter()
    }

    /// How many apps there are.
    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_is_redacted() {
        let app = App::new("1", "key", "very-secret");
        let shown = format!("{app:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn lookups_by_id_and_key() {
        let apps = Apps::new([App::new("1", "k1", "s1"), App::new("2", "k2", "s2")]).unwrap();
        assert_eq!(apps.find_by_id("2").unwrap().key, "k2");
        assert_eq!(apps.find_by_key("k1").unwrap().id.as_str(), "1");
        assert!(apps.find_by_id("3").is_none());
    }

    #[test]
    fn duplicates_are_refused() {
        let err = Apps::new([App::new("1", "k1", "s"), App::new("1", "k2", "s")]).unwrap_err();
        assert_eq!(err, AppsError::DuplicateId("1".into()));
        let err = Apps::new([App::new("1", "k", "s"), App::new("2", "k", "s")]).unwrap_err();
        assert_eq!(err, AppsError::DuplicateKey("k".into()));
    }
}
