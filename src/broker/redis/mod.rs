//! `RedisBroker`: several pusher-local nodes as one, over one Redis.
//!
//! - Deliveries: every node SUBSCRIBEs to `P events`. `publish` fans out to this node's sockets
//!   first, then queues the envelope (with this node's id) for one publisher task, which
//!   PUBLISHes in order, in pipelined batches. Incoming envelopes with our own id are dropped
//!   (no echo), the others go to the registry's fan-out. Local delivery never waits on Redis.
//! - Cluster state: per-node keys and Lua scripts, see [`scripts`]. Every subscribe and
//!   unsubscribe runs a script that answers with cluster-wide counts and presence transitions,
//!   so member_added/removed, occupied and vacated happen once, on the node whose change made
//!   them.
//! - Presence order: the scripts PUBLISH member_added/removed themselves, atomically with the
//!   roster change, as envelopes with no node id (every node delivers them, the sender too). A
//!   presence subscribe's script then PUBLISHes an ack on the node's own acks channel, read on
//!   the same connection as the events, and the socket is registered when the subscriber reads
//!   that ack. So the socket hears exactly the announcements its roster does not already
//!   include: no member twice, none missed, however many nodes join at once.
//!
//! ```text
//! session ── subscribe ──▶ JOIN script ── PUBLISH member_added ──▶ every node's subscriber
//!                              └───────── PUBLISH ack ──▶ this node's subscriber ─▶ registry
//!                                                         (session awaits the registration)
//! ```
//! - Node death: each node beats every [`BEAT`] (`SET alive PX` [`ALIVE_TTL`]); after each beat
//!   it runs the reaper script, which removes nodes whose key expired and returns the presence
//!   members and channels their removal emptied. Those go out as [`Notice::NodeGone`], which
//!   the state turns into member_removed frames and webhooks. A kill -9'd node is gone within
//!   `ALIVE_TTL + BEAT` (6 s).
//! - Redis lost: the subscription stream ends or a command fails → [`Notice::Down`] (printed
//!   loudly); local delivery goes on and cluster questions fall back to this node's view. The
//!   subscriber reconnects with backoff (to 5 s); once it is back and the state is rewritten
//!   from the [`mirror::Mirror`] ([`scripts`] RESYNC), [`Notice::Up`]. A beat that finds its
//!   own `alive` key missing (Redis restarted, or this node stalled and was reaped) rewrites
//!   too; when it was reaped (same Redis epoch), the members it brings back go out as
//!   [`Notice::MembersBack`], to be announced again.
//!
//! - [`scripts`]: the keys and Lua scripts.
//! - [`mirror`]: this node's own state, as written to Redis.

pub mod mirror;
pub mod scripts;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubStream};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{join_here, tell_here, Broker, ChannelState, ClusterLeave, Envelope, Notice, Query};
use crate::apps::AppId;
use crate::error::ClientError;
use crate::protocol::{server, ChannelName, Frame};
use crate::registry::{
    CachedEvent, ChannelInfo, ChannelRegistry, Delivery, Joined, Joining, Leaving, Left, Member, CACHE_TTL,
};
use mirror::Mirror;
use scripts::Scripts;

/// How often a node beats (and reaps).
pub const BEAT: Duration = Duration::from_secs(1);
/// How long a node counts as alive after its last beat.
pub const ALIVE_TTL: Duration = Duration::from_secs(5);
/// Envelopes that may wait for the publisher before new ones are dropped (Redis too slow).
const QUEUE: usize = 16 * 1024;
/// Envelopes per pipelined PUBLISH batch.
const BATCH: usize = 256;
/// Longest wait between reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Bound on connecting and on each command, so a dead Redis never stalls a session for long.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Redis could not be reached at start.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach Redis at {url} (--redis-url)")]
pub struct ConnectError {
    /// The URL.
    pub url: String,
    /// Why.
    #[source]
    pub source: StartError,
}

/// Why connecting failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The client refused the URL or the server did not answer. Its text already carries its
    /// own cause, so it is not chained a second time.
    #[error("{0}")]
    Redis(redis::RedisError),
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// A `--ca-file` for `rediss://` could not be read.
    #[error(transparent)]
    Tls(crate::tls::TlsError),
}

/// What the publisher task sends: one envelope, and for cache channels the new cached value.
#[derive(Debug)]
struct Outgoing {
    payload: String,
    cache: Option<(String, String)>,
}

/// A cache channel's last event as kept on Redis.
#[derive(Serialize, Deserialize)]
struct CacheValue {
    event: String,
    data: String,
    frame: String,
}

/// A presence member as kept on Redis.
#[derive(Serialize, Deserialize)]
struct MemberValue {
    user_id: Box<RawValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user_info: Option<Box<RawValue>>,
}

fn member_json(member: &Member) -> String {
    let value = MemberValue { user_id: member.user_id.clone(), user_info: member.user_info.clone() };
    // Raw JSON values that were valid when received: serialising cannot fail.
    serde_json::to_string(&value).expect("valid raw JSON")
}

fn member_from(key: &str, json: &str) -> Option<Member> {
    let value: MemberValue = serde_json::from_str(json).ok()?;
    Some(Member { key: key.into(), user_id: value.user_id, user_info: value.user_info })
}

/// A presence subscribe whose script ran: the subscriber registers the socket when the ack
/// arrives, in order with the announcements around it.
struct Pending {
    subscription: Joining,
    reply: oneshot::Sender<Result<Joined, ClientError>>,
}

/// The ack a JOIN script PUBLISHes on the node's acks channel.
#[derive(Deserialize)]
struct Ack {
    id: String,
    /// Flat `[key, member JSON, ...]`; Lua's JSON encoder writes an empty table as `{}`.
    #[serde(default)]
    roster: serde_json::Value,
}

fn roster_of(flat: &[String]) -> Vec<Member> {
    flat.chunks_exact(2).filter_map(|kv| member_from(&kv[0], &kv[1])).collect()
}

struct Shared {
    url: String,
    /// The key prefix with its trailing `:`.
    prefix: String,
    node: String,
    events: String,
    /// This node's acks channel (see `scripts::JOIN`).
    acks: String,
    client: redis::Client,
    conn: ConnectionManager,
    registry: ChannelRegistry,
    scripts: Scripts,
    mirror: Mutex<Mirror>,
    /// Redis answers and our state is written there.
    up: AtomicBool,
    /// The subscriber is connected.
    subscribed: AtomicBool,
    outgoing: mpsc::Sender<Outgoing>,
    dropped: AtomicU64,
    notices: StdMutex<Option<mpsc::UnboundedSender<Notice>>>,
    /// The Redis dataset's epoch as last seen (see `scripts::RESYNC`).
    epoch: StdMutex<String>,
    /// Subscribes while Redis is away go one at a time (see `broker::join_here`).
    joins: StdMutex<()>,
    /// Presence subscribes waiting for their ack, by request id.
    pending: StdMutex<HashMap<u64, Pending>>,
    next_request: AtomicU64,
    /// Playing dead for a test (see `Shared::playing_dead`), and until when at least.
    dead: AtomicBool,
    dead_until: StdMutex<Option<std::time::Instant>>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

/// The Redis broker; see the module docs.
#[derive(Clone)]
pub struct RedisBroker {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBroker").field("url", &self.shared.url).field("node", &self.shared.node).finish()
    }
}

impl From<redis::RedisError> for StartError {
    fn from(error: redis::RedisError) -> Self {
        StartError::Redis(error)
    }
}

async fn bounded<T>(f: impl std::future::Future<Output = redis::RedisResult<T>>) -> Result<T, StartError> {
    match tokio::time::timeout(COMMAND_TIMEOUT, f).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(StartError::Timeout(COMMAND_TIMEOUT)),
    }
}

impl RedisBroker {
    /// Connects, registers this node and starts the subscriber, the publisher and the beat.
    /// `shown` is the URL as messages name it (password hidden).
    ///
    /// # Errors
    /// [`ConnectError`] naming `shown` when Redis does not answer.
    /// `roots`: for `rediss://`, the CA certificates (PEM) to trust instead of the system's.
    pub async fn connect(
        url: &str,
        shown: &str,
        prefix: &str,
        roots: Option<Vec<u8>>,
        registry: ChannelRegistry,
        notices: mpsc::UnboundedSender<Notice>,
    ) -> Result<Arc<dyn Broker>, ConnectError> {
        let fail = |source| ConnectError { url: shown.to_owned(), source };
        // The Redis client builds its TLS configuration on the process's default provider.
        crate::tls::install_default_provider();
        let client = match roots {
            Some(root_cert) if url.starts_with("rediss:") => {
                let certificates = redis::TlsCertificates { client_tls: None, root_cert: Some(root_cert) };
                redis::Client::build_with_tls(url, certificates)
            }
            _ => redis::Client::open(url),
        }
        .map_err(|e| fail(e.into()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let mut conn = bounded(client.get_connection_manager_with_config(config)).await.map_err(fail)?;
        bounded(redis::cmd("PING").query_async::<String>(&mut conn)).await.map_err(fail)?;
        let prefix = format!("{prefix}:");
        let events = format!("{prefix}events");
        let node = node_id();
        let acks = format!("{prefix}node:{node}:acks");
        let stream = subscribe(&client, &events, &acks).await.map_err(fail)?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let shared = Arc::new(Shared {
            url: shown.to_owned(),
            node,
            prefix,
            events,
            acks,
            client,
            conn,
            registry,
            scripts: Scripts::new(),
            mirror: Mutex::new(Mirror::default()),
            // Up from the start (connect fails otherwise): the first resync is no comeback.
            up: AtomicBool::new(true),
            subscribed: AtomicBool::new(true),
            outgoing: tx,
            dropped: AtomicU64::new(0),
            notices: StdMutex::new(Some(notices)),
            joins: StdMutex::new(()),
            epoch: StdMutex::new(String::new()),
            pending: StdMutex::new(HashMap::new()),
            next_request: AtomicU64::new(1),
            dead: AtomicBool::new(false),
            dead_until: StdMutex::new(None),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        shared.resync(false).await.map_err(|e| fail(e.into()))?;
        tracing::info!(node = %shared.node, url = %shared.url, "joined the cluster");
        shared.tasks.spawn(listen(shared.clone(), stream));
        shared.tasks.spawn(send(shared.clone(), rx));
        shared.tasks.spawn(beat(shared.clone()));
        Ok(Arc::new(RedisBroker { shared }))
    }

    /// This node's id in the cluster.
    pub fn node(&self) -> &str {
        &self.shared.node
    }
}

/// The registry's `joined`, corrected to the cluster's view.
fn cluster_view(mut joined: Joined, channel: &ChannelName, subscriptions: usize, first_member: bool) -> Joined {
    joined.occupied = subscriptions == 1;
    if !first_member {
        joined.member_added = None;
    }
    joined.subscribers = subscriptions;
    if joined.subscription_count.is_some() {
        joined.subscription_count = Some(server::subscription_count(channel.as_str(), subscriptions));
    }
    joined
}

/// Waits for the registration the subscriber makes when the ack arrives; without an ack in
/// time (Redis went away after the script), takes the request back and registers it here
/// with the script's `roster`.
async fn registered(
    shared: &Shared,
    id: u64,
    mut rx: oneshot::Receiver<Result<Joined, ClientError>>,
    roster: &[Member],
) -> Result<Joined, ClientError> {
    const REPLIES: &str = "the subscriber replies to every request it takes from the pending map";
    if let Ok(reply) = tokio::time::timeout(COMMAND_TIMEOUT, &mut rx).await {
        return reply.expect(REPLIES);
    }
    match shared.take_pending(id) {
        Some(pending) => shared.register(&pending.subscription, roster),
        // Taken just now by the subscriber: its reply is on the way.
        None => rx.await.expect(REPLIES),
    }
}

/// A random node id: 16 hex digits.
fn node_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// One connection for both channels: Redis delivers a connection's messages in publish order,
/// across channels too, which is what orders acks with announcements.
async fn subscribe(client: &redis::Client, events: &str, acks: &str) -> Result<PubSubStream, StartError> {
    let mut pubsub = bounded(client.get_async_pubsub()).await?;
    bounded(pubsub.subscribe(&[events, acks])).await?;
    Ok(pubsub.into_on_message())
}

impl Shared {
    fn notify(&self, notice: Notice) {
        if let Some(tx) = &*self.notices.lock().unwrap_or_else(|p| p.into_inner()) {
            // The receiver lives until shutdown; a notice after it is of no use.
            let _ = tx.send(notice);
        }
    }

    /// Marks Redis as lost; says so once per outage.
    fn down(&self, reason: &dyn std::fmt::Display) {
        if self.up.swap(false, Ordering::SeqCst) {
            // The printer says it loudly (Notice::Down); stderr gets the detail at debug.
            tracing::debug!(url = %self.url, %reason, "redis lost");
            self.notify(Notice::Down { url: self.url.clone(), reason: reason.to_string() });
        }
    }

    /// Redis answers and this node is part of the cluster (not playing dead for a test's
    /// `node_down` fault, when it acts as though Redis were away).
    fn is_up(&self) -> bool {
        self.up.load(Ordering::SeqCst) && !self.playing_dead()
    }

    /// A test's `node_down` fault holds: no heartbeat, nothing written to Redis. Once begun,
    /// the death lasts at least until the other nodes have reaped this one (the heartbeat's
    /// TTL and a beat), so its comeback is always a reaped node's and no member is left behind.
    fn playing_dead(&self) -> bool {
        let faults = self.registry.faults();
        let fault = faults.active() && faults.node_down();
        if !fault && !self.dead.load(Ordering::Relaxed) {
            return false;
        }
        let mut until = self.dead_until.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        match *until {
            None if fault => {
                *until = Some(now + ALIVE_TTL + BEAT);
                self.dead.store(true, Ordering::Relaxed);
                true
            }
            Some(end) if fault || now < end => true,
            _ => {
                *until = None;
                self.dead.store(false, Ordering::Relaxed);
                false
            }
        }
    }

    /// Writes this node's whole state again; marks Redis as up when the subscriber is too.
    /// `lost`: our heartbeat key had expired. If other nodes reaped us meanwhile (same epoch),
    /// the members we bring back are announced again ([`Notice::MembersBack`]).
    async fn resync(&self, lost: bool) -> redis::RedisResult<()> {
        let mirror = self.mirror.lock().await;
        let seen = self.epoch.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut conn = self.conn.clone();
        let (epoch, back): (String, Vec<Vec<String>>) = self
            .scripts
            .resync
            .arg(&self.prefix)
            .arg(&self.node)
            .arg(ALIVE_TTL.as_millis() as u64)
            .arg(mirror.snapshot())
            .arg(format!("{:016x}", rand::random::<u64>()))
            .arg(seen)
            .arg(if lost { "1" } else { "0" })
            .invoke_async(&mut conn)
            .await?;
        drop(mirror);
        *self.epoch.lock().unwrap_or_else(|p| p.into_inner()) = epoch;
        let added: Vec<(AppId, ChannelName, Member)> = back
            .iter()
            .filter_map(|row| match row.as_slice() {
                [app, ch, json] => {
                    let member = serde_json::from_str::<MemberValue>(json)
                        .ok()
                        .and_then(|m| user_key(&m.user_id))
                        .and_then(|key| member_from(&key, json))?;
                    Some((AppId::new(app.as_str()), ChannelName::parse(ch, usize::MAX).ok()?, member))
                }
                _ => None,
            })
            .collect();
        if !added.is_empty() {
            tracing::info!(members = added.len(), "taken for dead while stalled: members announced again");
            self.notify(Notice::MembersBack { added });
        }
        if self.subscribed.load(Ordering::SeqCst) && !self.up.swap(true, Ordering::SeqCst) {
            tracing::info!(url = %self.url, "redis back");
            self.notify(Notice::Up { url: self.url.clone() });
        }
        Ok(())
    }

    /// An envelope from the events channel. Ours are dropped (delivered locally before they
    /// were sent), except those with no node id: the scripts' presence announcements, which
    /// every node delivers in stream order.
    fn receive(&self, payload: &[u8]) {
        match Envelope::from_wire(payload) {
            Ok((node, _)) if node == self.node => {}
            Ok((_, envelope)) => {
                self.registry.fan_out(&envelope.app_id, &envelope.delivery);
            }
            Err(error) => tracing::warn!(%error, "unreadable message on the events channel"),
        }
    }

    /// A presence subscribe is in: register the socket now, before the next announcement.
    fn acknowledged(&self, payload: &[u8]) {
        let Ok(ack) = serde_json::from_slice::<Ack>(payload) else {
            tracing::warn!("unreadable message on the acks channel");
            return;
        };
        let Some(pending) = ack.id.parse().ok().and_then(|id| self.take_pending(id)) else { return };
        let flat: Vec<String> = serde_json::from_value(ack.roster).unwrap_or_default();
        let _ = pending.reply.send(self.register(&pending.subscription, &roster_of(&flat)));
    }

    fn take_pending(&self, id: u64) -> Option<Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(&id)
    }

    /// Hands the socket to the registry, with `roster` on presence channels.
    fn register(&self, s: &Joining, roster: &[Member]) -> Result<Joined, ClientError> {
        self.registry.subscribe(s, s.member.is_some().then_some(roster))
    }

    fn cache_key(&self, app: &AppId, channel: &str) -> String {
        format!("{}cache:{}:{channel}", self.prefix, app.as_str())
    }

    /// The reaper's answer, as one notice per node removed. Rows of one node come before
    /// its `n` row.
    fn reaped(&self, rows: Vec<Vec<String>>) {
        let (mut removed, mut vacated, mut counts) = (Vec::new(), Vec::new(), Vec::new());
        let channel = |name: &str| ChannelName::parse(name, usize::MAX).ok();
        for row in rows {
            match row.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
                ["m", app, ch, json] => {
                    let member = serde_json::from_str::<MemberValue>(json)
                        .ok()
                        .and_then(|m| user_key(&m.user_id))
                        .and_then(|key| member_from(&key, json));
                    if let (Some(ch), Some(member)) = (channel(ch), member) {
                        removed.push((AppId::new(*app), ch, member));
                    }
                }
                ["v", app, ch] => vacated.extend(channel(ch).map(|ch| (AppId::new(*app), ch))),
                ["c", app, ch, n] => {
                    if let (Some(ch), Ok(n)) = (channel(ch), n.parse()) {
                        counts.push((AppId::new(*app), ch, n));
                    }
                }
                ["n", node] => {
                    let (removed, vacated, counts) =
                        (std::mem::take(&mut removed), std::mem::take(&mut vacated), std::mem::take(&mut counts));
                    tracing::info!(node = %node, members = removed.len(), "reaped a node that stopped beating");
                    self.notify(Notice::NodeGone { node: (*node).to_owned(), removed, vacated, counts });
                }
                other => tracing::warn!(row = ?other, "unexpected reaper row"),
            }
        }
    }
}

/// The presence user key of a `user_id` value (string or number), as the session makes it.
fn user_key(user_id: &RawValue) -> Option<String> {
    match serde_json::from_str::<serde_json::Value>(user_id.get()).ok()? {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The subscriber: hands envelopes to the registry; on loss, reconnects with backoff.
async fn listen(shared: Arc<Shared>, mut stream: PubSubStream) {
    loop {
        loop {
            tokio::select! {
                () = shared.stop.cancelled() => return,
                message = stream.next() => match message {
                    Some(message) if message.get_channel_name() == shared.acks => {
                        shared.acknowledged(message.get_payload_bytes());
                    }
                    Some(message) => shared.receive(message.get_payload_bytes()),
                    None => break,
                },
            }
        }
        shared.subscribed.store(false, Ordering::SeqCst);
        shared.down(&"the subscription connection closed");
        let mut delay = Duration::from_millis(100);
        stream = loop {
            tokio::select! {
                () = shared.stop.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
            match subscribe(&shared.client, &shared.events, &shared.acks).await {
                Ok(stream) => break stream,
                Err(error) => {
                    tracing::debug!(%error, ?delay, "redis still unreachable");
                    delay = (delay * 2).min(MAX_BACKOFF);
                }
            }
        };
        shared.subscribed.store(true, Ordering::SeqCst);
        if let Err(error) = shared.resync(false).await {
            shared.down(&error);
        }
    }
}

/// The publisher: PUBLISHes queued envelopes in order, in pipelined batches.
async fn send(shared: Arc<Shared>, mut rx: mpsc::Receiver<Outgoing>) {
    let mut batch = Vec::with_capacity(BATCH);
    let ttl = CACHE_TTL.as_millis() as u64;
    loop {
        let n = tokio::select! {
            () = shared.stop.cancelled() => return,
            n = rx.recv_many(&mut batch, BATCH) => n,
        };
        if n == 0 {
            return;
        }
        let mut pipe = redis::pipe();
        for out in batch.drain(..) {
            pipe.publish(&shared.events, out.payload).ignore();
            if let Some((key, value)) = out.cache {
                pipe.pset_ex(key, value, ttl).ignore();
            }
        }
        let mut conn = shared.conn.clone();
        if let Err(error) = pipe.query_async::<()>(&mut conn).await {
            shared.down(&error);
        }
    }
}

/// The heartbeat and the reaper.
async fn beat(shared: Arc<Shared>) {
    let alive = format!("{}node:{}:alive", shared.prefix, shared.node);
    let nodes = format!("{}nodes", shared.prefix);
    loop {
        tokio::select! {
            () = shared.stop.cancelled() => return,
            () = tokio::time::sleep(BEAT) => {}
        }
        if shared.playing_dead() {
            // The other nodes reap this one once its heartbeat key expires; when the fault
            // lifts, the next beat finds the key gone and writes this node's state again.
            continue;
        }
        let mut conn = shared.conn.clone();
        let before: redis::RedisResult<(Option<String>, i64)> = redis::pipe()
            .cmd("SET")
            .arg(&alive)
            .arg("1")
            .arg("PX")
            .arg(ALIVE_TTL.as_millis() as u64)
            .arg("GET")
            .sadd(&nodes, &shared.node)
            .query_async(&mut conn)
            .await;
        match before {
            Err(error) => {
                shared.down(&error);
                continue;
            }
            // Our key was gone: Redis restarted, or we were paused and reaped. Write it all again.
            Ok((None, _)) => {
                if let Err(error) = shared.resync(true).await {
                    shared.down(&error);
                    continue;
                }
            }
            Ok((Some(_), _)) if !shared.is_up() => {
                if let Err(error) = shared.resync(false).await {
                    shared.down(&error);
                    continue;
                }
            }
            Ok(_) => {}
        }
        let reaped: redis::RedisResult<Vec<Vec<String>>> =
            shared.scripts.reap.arg(&shared.prefix).arg(&shared.node).arg("dead").invoke_async(&mut conn).await;
        match reaped {
            Ok(rows) => shared.reaped(rows),
            Err(error) => shared.down(&error),
        }
    }
}

#[async_trait]
impl Broker for RedisBroker {
    async fn publish(&self, envelope: Envelope) -> usize {
        let shared = &self.shared;
        let delivered = shared.registry.fan_out(&envelope.app_id, &envelope.delivery);
        if shared.is_up() {
            let cache = match &envelope.delivery {
                Delivery::Event { channel, frame, cache: Some(cached), .. } => {
                    let value = CacheValue {
                        event: cached.event.to_string(),
                        data: cached.data.to_string(),
                        frame: frame.as_str().to_owned(),
                    };
                    // Strings only: serialising cannot fail.
                    let value = serde_json::to_string(&value).expect("plain JSON");
                    Some((shared.cache_key(&envelope.app_id, channel.as_str()), value))
                }
                _ => None,
            };
            let out = Outgoing { payload: envelope.to_wire(&shared.node), cache };
            if shared.outgoing.try_send(out).is_err() {
                let n = shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(dropped = n, "redis is not keeping up: cross-node envelopes dropped");
                }
            }
        }
        delivered
    }

    async fn query(&self, app: &AppId, query: Query<'_>) -> Vec<ChannelState> {
        let shared = &self.shared;
        let answer = if shared.is_up() {
            match query {
                Query::Occupied { prefix } => self.occupied(app, prefix).await,
                Query::Channel(channel) => self.channel(app, channel).await.map(|state| vec![state]),
            }
        } else {
            Err(None)
        };
        answer.unwrap_or_else(|error| {
            if let Some(error) = error {
                shared.down(&error);
            }
            // This node's view stands in while Redis is away.
            match query {
                Query::Occupied { prefix } => ChannelState::all_here(&shared.registry, app, prefix),
                Query::Channel(channel) => vec![ChannelState::here(&shared.registry, app, channel)],
            }
        })
    }

    async fn join(&self, s: Joining) -> Result<Joined, ClientError> {
        let shared = &self.shared;
        let json = s.member.as_ref().map(member_json);
        let mut mirror = shared.mirror.lock().await;
        let first_here = mirror.join(
            &s.app.id,
            s.channel.shared(),
            s.member.as_ref().map(|m| (&m.key, json.clone().unwrap_or_default())),
        );
        if !shared.is_up() {
            // Written by the resync once Redis is back; until then this node is its own cluster.
            drop(mirror);
            return join_here(&shared.registry, &shared.joins, &s, None);
        }
        if s.channel.is_cache() {
            self.seed_cache(&s.app.id, &s.channel).await;
        }
        let (id, rx) = self.await_ack(&s);
        let answer = self.run_join(&s, json, first_here, id).await;
        let (subscriptions, first, roster) = match answer {
            Ok(answer) => answer,
            Err(error) => {
                shared.down(&error);
                drop(mirror);
                if let (Some(rx), None) = (rx, shared.take_pending(id)) {
                    // The script ran and its ack came; only the answer was lost. Registered.
                    return registered(shared, id, rx, &[]).await;
                }
                return join_here(&shared.registry, &shared.joins, &s, None);
            }
        };
        if subscriptions < 0 {
            shared.take_pending(id);
            mirror.leave(&s.app.id, s.channel.shared(), s.member.as_ref().map(|m| &*m.key));
            let max = s.app.limits.max_presence_members;
            return Err(ClientError::PresenceFull { channel: s.channel.to_string(), max });
        }
        drop(mirror);
        let registered = match rx {
            None => shared.register(&s, &[]),
            Some(rx) => registered(shared, id, rx, &roster_of(&roster)).await,
        };
        let joined = match registered {
            Ok(joined) => joined,
            Err(error) => {
                // The registry refused what Redis took (it cannot be fuller than the cluster,
                // so this is not expected): take it back.
                self.leave_cluster(&s.app.id, &s.channel, s.member.as_ref().map(|m| &*m.key)).await;
                return Err(error);
            }
        };
        let subscriptions = usize::try_from(subscriptions).unwrap_or(0);
        Ok(cluster_view(joined, &s.channel, subscriptions, first == 1))
    }

    async fn leave(&self, leaving: Leaving) -> Option<Left> {
        let shared = &self.shared;
        let left = shared.registry.unsubscribe(&leaving)?;
        match self.leave_cluster(&leaving.app.id, &leaving.channel, leaving.user.as_deref()).await {
            // member_removed, if any, went to every node (this one too) from the script.
            Some(cluster) => Some(cluster.apply(left)),
            None => {
                // No cluster to ask: this node's view stands, announced here.
                if let Some(frame) = &left.member_removed {
                    tell_here(&shared.registry, &leaving.app.id, &left.channel, frame, None);
                }
                Some(left)
            }
        }
    }

    async fn close(&self) {
        let shared = &self.shared;
        shared.stop.cancel();
        shared.tasks.close();
        if tokio::time::timeout(COMMAND_TIMEOUT, shared.tasks.wait()).await.is_err() {
            tracing::warn!("redis broker tasks did not stop in time");
        }
        if shared.is_up() {
            // A clean leave: remove our keys now rather than after ALIVE_TTL.
            let mut conn = shared.conn.clone();
            let left: redis::RedisResult<Vec<Vec<String>>> = tokio::time::timeout(
                COMMAND_TIMEOUT,
                shared.scripts.reap.arg(&shared.prefix).arg(&shared.node).arg("self").invoke_async(&mut conn),
            )
            .await
            .unwrap_or_else(|_| Err(redis::RedisError::from((redis::ErrorKind::Io, "timed out"))));
            if let Err(error) = left {
                tracing::warn!(%error, "could not remove this node's keys from redis");
            }
        }
        shared.notices.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

impl RedisBroker {
    /// Every occupied channel whose name starts with `prefix`, cluster-wide.
    async fn occupied(&self, app: &AppId, prefix: &str) -> Result<Vec<ChannelState>, Option<redis::RedisError>> {
        let shared = &self.shared;
        let mut conn = shared.conn.clone();
        let rows: Vec<String> = shared
            .scripts
            .channels
            .arg(&shared.prefix)
            .arg(&shared.node)
            .arg(app.as_str())
            .arg(prefix)
            .invoke_async(&mut conn)
            .await?;
        let mut list: Vec<ChannelState> = rows
            .chunks_exact(3)
            .map(|row| ChannelState {
                info: ChannelInfo {
                    name: row[0].as_str().into(),
                    subscription_count: row[1].parse().unwrap_or(0),
                    user_count: row[2].parse().unwrap_or(0),
                },
                users: Vec::new(),
                cached: None,
            })
            .collect();
        list.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        Ok(list)
    }

    /// One channel, cluster-wide: counts, presence users and the cached event.
    async fn channel(&self, app: &AppId, channel: &ChannelName) -> Result<ChannelState, Option<redis::RedisError>> {
        let shared = &self.shared;
        let mut conn = shared.conn.clone();
        let (subscriptions, roster): (usize, Vec<String>) = shared
            .scripts
            .channel
            .arg(&shared.prefix)
            .arg(&shared.node)
            .arg(app.as_str())
            .arg(channel.as_str())
            .invoke_async(&mut conn)
            .await?;
        let mut users: Vec<Arc<str>> = roster.chunks_exact(2).map(|kv| kv[0].as_str().into()).collect();
        users.sort();
        let info =
            ChannelInfo { name: channel.shared().clone(), subscription_count: subscriptions, user_count: users.len() };
        let cached = if channel.is_cache() {
            let key = shared.cache_key(app, channel.as_str());
            let (value, ttl): (Option<String>, i64) = redis::pipe().get(&key).pttl(&key).query_async(&mut conn).await?;
            value.and_then(|value| serde_json::from_str::<CacheValue>(&value).ok()).map(|v| {
                let ttl = Duration::from_millis(u64::try_from(ttl).unwrap_or(0));
                (CachedEvent { event: v.event.into(), data: v.data.into() }, ttl)
            })
        } else {
            None
        };
        Ok(ChannelState { info, users, cached })
    }

    /// A presence subscribe waits for its ack (see the module docs): a request id and the
    /// receiver its registration is answered on. `(0, None)` for other channels.
    fn await_ack(&self, s: &Joining) -> (u64, Option<oneshot::Receiver<Result<Joined, ClientError>>>) {
        if s.member.is_none() {
            return (0, None);
        }
        let shared = &self.shared;
        let id = shared.next_request.fetch_add(1, Ordering::Relaxed);
        let (reply, rx) = oneshot::channel();
        let pending = Pending { subscription: s.clone(), reply };
        shared.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(id, pending);
        (id, Some(rx))
    }

    /// Runs the JOIN script: cluster-wide subscriptions (negative: presence full), whether
    /// this is the user's first socket anywhere, and the roster.
    async fn run_join(
        &self,
        s: &Joining,
        member_json: Option<String>,
        first_here: bool,
        id: u64,
    ) -> redis::RedisResult<(i64, i64, Vec<String>)> {
        let shared = &self.shared;
        // The announcement every node delivers (node id "": the sender too), except to this socket.
        let added = s.member.as_ref().map_or_else(String::new, |m| {
            let frame = server::member_added(s.channel.as_str(), &m.as_ref());
            let delivery = Delivery::Event { channel: s.channel.clone(), frame, except: Some(s.socket), cache: None };
            Envelope { app_id: s.app.id.clone(), delivery }.to_wire("")
        });
        let mut conn = shared.conn.clone();
        shared
            .scripts
            .join
            .arg(&shared.prefix)
            .arg(&shared.node)
            .arg(s.app.id.as_str())
            .arg(s.channel.as_str())
            .arg(s.member.as_ref().map_or("", |m| &*m.key))
            .arg(member_json.unwrap_or_default())
            .arg(s.app.limits.max_presence_members)
            .arg(if first_here { "1" } else { "0" })
            .arg(id.to_string())
            .arg(&shared.acks)
            .arg(added)
            .arg(&shared.events)
            .invoke_async(&mut conn)
            .await
    }

    /// Records cluster-wide that a socket of this node left `channel` (presence user key
    /// `user`); the script announces member_removed when it was the user's last socket
    /// anywhere. `None`: Redis is away, this node's view stands.
    async fn leave_cluster(&self, app: &AppId, channel: &ChannelName, user: Option<&str>) -> Option<ClusterLeave> {
        let shared = &self.shared;
        let mut mirror = shared.mirror.lock().await;
        let last_here = mirror.leave(app, channel.shared(), user);
        if !shared.is_up() {
            return None;
        }
        // Sent by the script, and only if this was the user's last socket anywhere.
        let removed = last_here.as_deref().and_then(|json| serde_json::from_str::<MemberValue>(json).ok()).map_or_else(
            String::new,
            |m| {
                let frame = server::member_removed(channel.as_str(), &m.user_id);
                let delivery = Delivery::Event { channel: channel.clone(), frame, except: None, cache: None };
                Envelope { app_id: app.clone(), delivery }.to_wire("")
            },
        );
        let mut conn = shared.conn.clone();
        let answer: redis::RedisResult<(i64, i64)> = shared
            .scripts
            .leave
            .arg(&shared.prefix)
            .arg(&shared.node)
            .arg(app.as_str())
            .arg(channel.as_str())
            .arg(user.unwrap_or(""))
            .arg(if last_here.is_some() { "1" } else { "0" })
            .arg(removed)
            .arg(&shared.events)
            .invoke_async(&mut conn)
            .await;
        match answer {
            Ok((subscriptions, last)) => Some(ClusterLeave {
                subscriptions: usize::try_from(subscriptions).unwrap_or(0),
                last_member: last == 1,
            }),
            Err(error) => {
                shared.down(&error);
                None
            }
        }
    }

    /// A cache channel's first local subscriber on a node that never saw its last event: take
    /// it from Redis so the replay is cluster-wide.
    async fn seed_cache(&self, app: &AppId, channel: &ChannelName) {
        let shared = &self.shared;
        if shared.registry.cached(app, channel).is_some()
            || shared.registry.channel(app, channel).subscription_count > 0
        {
            return;
        }
        let mut conn = shared.conn.clone();
        let value: redis::RedisResult<Option<String>> = conn.get(shared.cache_key(app, channel.as_str())).await;
        if let Ok(Some(value)) = value {
            if let Ok(v) = serde_json::from_str::<CacheValue>(&value) {
                let cache = Some(CachedEvent { event: v.event.into(), data: v.data.into() });
                let delivery =
                    Delivery::Event { channel: channel.clone(), frame: Frame::from(v.frame), except: None, cache };
                // No local subscriber yet: this only stores the cached event.
                shared.registry.fan_out(app, &delivery);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::server;

    #[test]
    fn members_round_trip_through_their_redis_form() {
        let member = Member {
            key: "42".into(),
            user_id: RawValue::from_string("42".into()).unwrap(),
            user_info: Some(RawValue::from_string("{\"name\":\"Ann\"}".into()).unwrap()),
        };
        let json = member_json(&member);
        let back = member_from("42", &json).unwrap();
        assert_eq!(back.user_id.get(), "42");
        assert_eq!(back.user_info.unwrap().get(), "{\"name\":\"Ann\"}");
        assert_eq!(user_key(&back.user_id).as_deref(), Some("42"));
        assert!(server::member_removed("presence-a", &member.user_id).as_str().contains("42"));
    }
}
