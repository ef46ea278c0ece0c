//! `ChannelRegistry`: who is subscribed to what on this node, and fan-out to their sockets.
//!
//! One `std::sync::Mutex` guards the state; it is never held across an `.await` (nothing here
//! is async), and each operation is a short, allocation-light critical section. Replies that
//! must be ordered with fan-out (subscription_succeeded, then the cached event) are queued while
//! the lock is held, so no event can overtake them.
//!
//! - [`outbox`]: the bounded per-socket queue and its 4100 policy.
//! - [`presence`]: presence rosters.
//! - [`client`]: each connection's transport, address, user agent and frame counts.
//!
//! Fan-out asks the fault table (`crate::faults`) first, one atomic load: a test may have asked
//! for late or lost deliveries on some channels.

pub mod client;
pub mod outbox;
pub mod presence;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::apps::{App, AppId};
use crate::error::{ClientError, HandshakeError};
use crate::faults::{DeliveryFault, Faults};
use crate::metrics::Gauges;
use crate::protocol::{codes, server, ChannelKind, ChannelName, Frame, SocketId};

pub use client::{Client, Transport};
pub use outbox::{Outbox, OutboxReceiver, Outgoing, SendOutcome};
pub use presence::{Member, Members};

/// How long a cache channel keeps its last event ("up to 30 minutes" on Pusher).
pub const CACHE_TTL: Duration = Duration::from_secs(30 * 60);
/// Above this many subscribers, subscription_count goes out at most every [`COUNT_INTERVAL`].
pub const COUNT_THROTTLE_ABOVE: usize = 100;
/// See [`COUNT_THROTTLE_ABOVE`].
pub const COUNT_INTERVAL: Duration = Duration::from_secs(5);

/// What to deliver to this node's sockets.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A frame for every subscriber of `channel` except `except`.
    Event {
        /// The channel.
        channel: ChannelName,
        /// The encoded frame.
        frame: Frame,
        /// The socket that must not receive it (REST `socket_id`, or the client event's sender).
        except: Option<SocketId>,
        /// When set, the frame becomes the channel's cached event.
        cache: Option<CachedEvent>,
    },
    /// Close every connection signed in as this user (REST terminate_connections).
    TerminateUser {
        /// The user id.
        user_id: Arc<str>,
    },
}

/// The last event of a cache channel, for `info=cache`.
#[derive(Debug, Clone)]
pub struct CachedEvent {
    /// The event name.
    pub event: Arc<str>,
    /// The data as published.
    pub data: Arc<str>,
}

#[derive(Debug)]
struct Cached {
    event: CachedEvent,
    frame: Frame,
    at: Instant,
}

#[derive(Debug)]
struct Subscriber {
    outbox: Outbox,
    member_key: Option<Arc<str>>,
}

#[derive(Debug)]
struct Channel {
    name: ChannelName,
    subscribers: HashMap<SocketId, Subscriber>,
    members: Members,
    last_count_sent: Option<Instant>,
}

#[derive(Debug)]
struct SignedIn {
    user: Arc<str>,
    watching: Vec<Arc<str>>,
}

#[derive(Debug, Default)]
struct Rooms {
    channels: HashMap<Arc<str>, Channel>,
    cache: HashMap<Arc<str>, Cached>,
    /// Every connection of the app on this node.
    connections: HashMap<SocketId, (Outbox, Client)>,
    /// Frames in and out of the app's connections that have closed.
    closed_frames: (u64, u64),
    /// Signed-in user → its sockets.
    users: HashMap<Arc<str>, HashMap<SocketId, Outbox>>,
    /// Socket → who it is signed in as and whom it watches.
    signed_in: HashMap<SocketId, SignedIn>,
    /// Watched user → sockets watching it.
    watchers: HashMap<Arc<str>, HashMap<SocketId, Outbox>>,
}

/// Cheap-to-clone handle on this node's channel state.
#[derive(Debug, Clone, Default)]
pub struct ChannelRegistry {
    state: Arc<Mutex<HashMap<AppId, Rooms>>>,
    faults: Faults,
    /// Deliveries held back by a latency fault, in publish order (started on first use).
    delayed: Arc<OnceLock<mpsc::UnboundedSender<Delayed>>>,
}

/// A delivery a latency fault holds back.
#[derive(Debug)]
struct Delayed {
    at: tokio::time::Instant,
    outboxes: Vec<Outbox>,
    frame: Frame,
}

/// One connection, for `GET /pusher-local/connections`.
#[derive(Debug, Clone)]
pub struct ConnectionView {
    /// The socket.
    pub socket: SocketId,
    /// Its app.
    pub app: AppId,
    /// Transport, address, agent.
    pub client: Client,
    /// Frames received and sent.
    pub frames: (u64, u64),
    /// The user it signed in as.
    pub user: Option<Arc<str>>,
    /// Its channels, sorted.
    pub channels: Vec<Arc<str>>,
}

/// Which of this node's sockets [`ChannelRegistry::close_where`] closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Which {
    /// Every socket.
    All,
    /// One socket.
    Socket(SocketId),
    /// Every socket signed in as this user.
    User(String),
    /// Every socket subscribed to this channel.
    Channel(String),
}

/// One socket of this node joining a channel.
#[derive(Debug, Clone)]
pub struct Joining {
    /// The app.
    pub app: Arc<App>,
    /// The socket (connected: the registry has its outbox).
    pub socket: SocketId,
    /// The channel.
    pub channel: ChannelName,
    /// The presence member it subscribes as.
    pub member: Option<Member>,
}

/// One socket of this node leaving a channel.
#[derive(Debug, Clone)]
pub struct Leaving {
    /// The app.
    pub app: Arc<App>,
    /// The socket.
    pub socket: SocketId,
    /// The channel.
    pub channel: ChannelName,
    /// The presence user key it was subscribed as.
    pub user: Option<Arc<str>>,
}

/// The result of a successful subscribe.
#[derive(Debug, Default)]
pub struct Joined {
    /// This socket is the channel's first subscriber (channel_occupied).
    pub occupied: bool,
    /// For presence, the user's first socket: announce to the others.
    pub member_added: Option<Frame>,
    /// The new subscription count, when it is due to be announced.
    pub subscription_count: Option<Frame>,
    /// Connections subscribed to the channel now.
    pub subscribers: usize,
    /// A cache channel had nothing cached (cache_miss webhook).
    pub cache_miss: bool,
}

/// The result of leaving a channel.
#[derive(Debug)]
pub struct Left {
    /// The channel.
    pub channel: ChannelName,
    /// No subscribers remain (channel_vacated).
    pub vacated: bool,
    /// For presence, the user's last socket: announce to the others.
    pub member_removed: Option<Frame>,
    /// The new subscription count, when due.
    pub subscription_count: Option<Frame>,
    /// Connections still subscribed.
    pub subscribers: usize,
}

/// A channel's numbers for the HTTP API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    /// The channel name.
    pub name: Arc<str>,
    /// Connections subscribed.
    pub subscription_count: usize,
    /// Distinct presence users.
    pub user_count: usize,
}

/// Result of `pusher:signin` bookkeeping.
#[derive(Debug, Default)]
pub struct SignedInState {
    /// Watched users that are online now.
    pub online: Vec<Arc<str>>,
    /// Watched users that are offline now.
    pub offline: Vec<Arc<str>>,
}

impl ChannelRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty registry whose fan-out obeys `faults`.
    pub fn with_faults(faults: Faults) -> Self {
        Self { faults, ..Self::default() }
    }

    /// The faults its fan-out obeys.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<AppId, Rooms>> {
        // A panic while holding the lock would be a bug; the state is still consistent enough
        // to keep serving, so recover the guard instead of taking the whole server down.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a new connection of `app`, refusing it above the app's limit.
    ///
    /// # Errors
    /// [`HandshakeError::OverQuota`].
    pub fn connect(&self, app: &App, socket: SocketId, outbox: &Outbox, client: Client) -> Result<(), HandshakeError> {
        let mut state = self.lock();
        let rooms = state.entry(app.id.clone()).or_default();
        if app.limits.max_connections.is_some_and(|max| rooms.connections.len() >= max) {
            return Err(HandshakeError::OverQuota);
        }
        rooms.connections.insert(socket, (outbox.clone(), client));
        Ok(())
    }

    /// Asks every connection on this node to close (shutdown sends 1001 going away).
    pub fn close_all(&self, code: u16, reason: &'static str) {
        for rooms in self.lock().values() {
            for (outbox, _) in rooms.connections.values() {
                outbox.close(code, reason);
            }
        }
    }

    /// Closes this node's sockets that `which` selects (of `app`, or of every app) with `code`
    /// and `reason`; returns how many were asked to close.
    pub fn close_where(&self, app: Option<&AppId>, which: &Which, code: u16, reason: &str) -> usize {
        let state = self.lock();
        let mut closed = 0;
        for (_, rooms) in state.iter().filter(|(id, _)| app.is_none_or(|a| a == *id)) {
            let outboxes: Vec<&Outbox> = match which {
                Which::All => rooms.connections.values().map(|(o, _)| o).collect(),
                Which::Socket(socket) => rooms.connections.get(socket).map(|(o, _)| o).into_iter().collect(),
                Which::User(user) => rooms.users.get(user.as_str()).into_iter().flat_map(HashMap::values).collect(),
                Which::Channel(channel) => rooms
                    .channels
                    .get(channel.as_str())
                    .into_iter()
                    .flat_map(|ch| ch.subscribers.values().map(|s| &s.outbox))
                    .collect(),
            };
            for outbox in outboxes {
                outbox.close(code, reason.to_owned());
                closed += 1;
            }
        }
        closed
    }

    /// Forgets the cached events of cache channels (of `app`, or of every app); returns how
    /// many were dropped.
    pub fn clear_cache(&self, app: Option<&AppId>) -> usize {
        let mut state = self.lock();
        let mut cleared = 0;
        for (_, rooms) in state.iter_mut().filter(|(id, _)| app.is_none_or(|a| a == *id)) {
            cleared += rooms.cache.len();
            rooms.cache.clear();
        }
        cleared
    }

    /// Forgets a connection: its signin, its watchlist and its place in the quota. Its
    /// subscriptions are left with [`ChannelRegistry::unsubscribe`] first.
    pub fn disconnect(&self, app_id: &AppId, socket: SocketId) {
        let mut state = self.lock();
        let Some(rooms) = state.get_mut(app_id) else { return };
        if let Some(gone) = rooms.connections.remove(&socket) {
            let (frames_in, frames_out) = gone.0.frame_counts();
            rooms.closed_frames.0 += frames_in;
            rooms.closed_frames.1 += frames_out;
        }
        if let Some(signed) = rooms.signed_in.remove(&socket) {
            for watched in &signed.watching {
                if let Some(w) = rooms.watchers.get_mut(watched) {
                    w.remove(&socket);
                    if w.is_empty() {
                        rooms.watchers.remove(watched);
                    }
                }
            }
            let last = match rooms.users.get_mut(&signed.user) {
                Some(sockets) => {
                    sockets.remove(&socket);
                    sockets.is_empty()
                }
                None => false,
            };
            if last {
                rooms.users.remove(&signed.user);
                notify_watchers(rooms, &signed.user, false);
            }
        }
    }

    /// Subscribes a connected socket and queues subscription_succeeded (and the cached event
    /// or cache_miss) on its outbox. Presence channels need `joining.member`; their
    /// subscription_succeeded lists `roster` (the cluster's members, from the broker) when
    /// given, else this node's.
    ///
    /// # Errors
    /// [`ClientError::PresenceFull`] when a new user would exceed the member limit.
    pub fn subscribe(&self, joining: &Joining, roster: Option<&[Member]>) -> Result<Joined, ClientError> {
        let Joining { app, socket, channel, member } = joining;
        let socket = *socket;
        let mut state = self.lock();
        let rooms = state.entry(app.id.clone()).or_default();
        let Some((outbox, _)) = rooms.connections.get(&socket) else {
            // Sockets connect before they subscribe and leave their channels before they go.
            tracing::warn!(%socket, "subscribe from a socket that is not connected: ignored");
            return Ok(Joined::default());
        };
        let ch = rooms.channels.entry(channel.shared().clone()).or_insert_with(|| Channel {
            name: channel.clone(),
            subscribers: HashMap::new(),
            members: Members::default(),
            last_count_sent: None,
        });
        let mut joined = Joined { occupied: ch.subscribers.is_empty(), ..Joined::default() };
        let member_key = member.as_ref().map(|m| m.key.clone());
        if let Some(member) = member {
            if !ch.members.contains(&member.key) && ch.members.len() >= app.limits.max_presence_members {
                if ch.subscribers.is_empty() {
                    rooms.channels.remove(channel.as_str());
                }
                return Err(ClientError::PresenceFull {
                    channel: channel.to_string(),
                    max: app.limits.max_presence_members,
                });
            }
            let first = ch.members.join(member.clone());
            if first {
                joined.member_added = Some(server::member_added(channel.as_str(), &member.as_ref()));
            }
            let succeeded = match roster {
                Some(roster) => {
                    server::presence_subscription_succeeded(channel.as_str(), roster.iter().map(Member::as_ref))
                }
                None => {
                    server::presence_subscription_succeeded(channel.as_str(), ch.members.iter().map(Member::as_ref))
                }
            };
            outbox.send(succeeded);
        } else {
            outbox.send(server::subscription_succeeded(channel.as_str()));
        }
        ch.subscribers.insert(socket, Subscriber { outbox: outbox.clone(), member_key });
        joined.subscribers = ch.subscribers.len();
        if app.subscription_count && channel.kind() != ChannelKind::Presence {
            joined.subscription_count = count_notice(ch);
        }
        if channel.is_cache() {
            match rooms.cache.get(channel.as_str()).filter(|c| c.at.elapsed() < CACHE_TTL) {
                Some(cached) => {
                    outbox.send(cached.frame.clone());
                }
                None => {
                    outbox.send(server::cache_miss(channel.as_str()));
                    joined.cache_miss = true;
                }
            }
        }
        Ok(joined)
    }

    /// Removes the socket from the channel. `None` when it was not subscribed.
    pub fn unsubscribe(&self, leaving: &Leaving) -> Option<Left> {
        let Leaving { app, socket, channel, .. } = leaving;
        let mut state = self.lock();
        let rooms = state.get_mut(&app.id)?;
        let ch = rooms.channels.get_mut(channel.as_str())?;
        let sub = ch.subscribers.remove(socket)?;
        let member_removed = sub
            .member_key
            .and_then(|key| ch.members.leave(&key))
            .map(|m| server::member_removed(channel.as_str(), &m.user_id));
        let vacated = ch.subscribers.is_empty();
        let subscription_count = if !vacated && app.subscription_count && channel.kind() != ChannelKind::Presence {
            count_notice(ch)
        } else {
            None
        };
        let subscribers = ch.subscribers.len();
        if vacated {
            rooms.channels.remove(channel.as_str());
        }
        Some(Left { channel: channel.clone(), vacated, member_removed, subscription_count, subscribers })
    }

    /// Delivers to this node's sockets; returns how many frames were queued.
    pub fn fan_out(&self, app_id: &AppId, delivery: &Delivery) -> usize {
        let mut state = self.lock();
        let Some(rooms) = state.get_mut(app_id) else {
            if let Delivery::Event { channel, frame, cache: Some(cached), .. } = delivery {
                // Remember the cached event even before anyone connected to this app.
                state.entry(app_id.clone()).or_default().cache.insert(
                    channel.shared().clone(),
                    Cached { event: cached.clone(), frame: frame.clone(), at: Instant::now() },
                );
            }
            return 0;
        };
        match delivery {
            Delivery::Event { channel, frame, except, cache } => {
                if let Some(cached) = cache {
                    rooms.cache.insert(
                        channel.shared().clone(),
                        Cached { event: cached.clone(), frame: frame.clone(), at: Instant::now() },
                    );
                }
                let Some(ch) = rooms.channels.get(channel.as_str()) else {
                    return 0;
                };
                if self.faults.active() {
                    if let Some(fault) = self.faults.delivery(app_id.as_str(), channel.as_str()) {
                        return self.fan_out_faulty(ch, frame, *except, fault);
                    }
                }
                let mut delivered = 0;
                for (id, sub) in &ch.subscribers {
                    if Some(*id) != *except && sub.outbox.send(frame.clone()) == SendOutcome::Queued {
                        delivered += 1;
                    }
                }
                delivered
            }
            Delivery::TerminateUser { user_id } => {
                let Some(sockets) = rooms.users.get(user_id) else {
                    return 0;
                };
                for outbox in sockets.values() {
                    outbox.close(codes::UNAUTHORIZED, "Connection terminated by the app (terminate_connections)");
                }
                sockets.len()
            }
        }
    }

    /// Fan-out under a delivery fault: each socket's delivery is lost with the fault's
    /// probability, and the rest are held back by its latency (in publish order). Returns the
    /// deliveries not lost.
    fn fan_out_faulty(&self, ch: &Channel, frame: &Frame, except: Option<SocketId>, fault: DeliveryFault) -> usize {
        let outboxes: Vec<Outbox> = ch
            .subscribers
            .iter()
            .filter(|(id, _)| Some(**id) != except && (fault.drop <= 0.0 || rand::random::<f64>() >= fault.drop))
            .map(|(_, sub)| sub.outbox.clone())
            .collect();
        let delivered = outboxes.len();
        if fault.latency.is_zero() {
            for outbox in outboxes {
                outbox.send(frame.clone());
            }
        } else {
            let at = tokio::time::Instant::now() + fault.latency;
            // The receiver lives as long as the runtime.
            let _ = self.delayed().send(Delayed { at, outboxes, frame: frame.clone() });
        }
        delivered
    }

    /// The queue of held-back deliveries, and its task (started the first time).
    fn delayed(&self) -> &mpsc::UnboundedSender<Delayed> {
        self.delayed.get_or_init(|| {
            let (tx, mut rx) = mpsc::unbounded_channel::<Delayed>();
            tokio::spawn(async move {
                while let Some(held) = rx.recv().await {
                    tokio::time::sleep_until(held.at).await;
                    for outbox in held.outboxes {
                        outbox.send(held.frame.clone());
                    }
                }
            });
            tx
        })
    }

    /// This node's connections (of `app`, or of every app), by socket id.
    pub fn connection_list(&self, app: Option<&AppId>) -> Vec<ConnectionView> {
        let state = self.lock();
        let mut list = Vec::new();
        for (app_id, rooms) in state.iter().filter(|(id, _)| app.is_none_or(|a| a == *id)) {
            let mut channels: HashMap<SocketId, Vec<Arc<str>>> = HashMap::new();
            for (name, ch) in &rooms.channels {
                for socket in ch.subscribers.keys() {
                    channels.entry(*socket).or_default().push(name.clone());
                }
            }
            for (socket, (outbox, client)) in &rooms.connections {
                let mut chans = channels.remove(socket).unwrap_or_default();
                chans.sort();
                list.push(ConnectionView {
                    socket: *socket,
                    app: app_id.clone(),
                    client: client.clone(),
                    frames: outbox.frame_counts(),
                    user: rooms.signed_in.get(socket).map(|s| s.user.clone()),
                    channels: chans,
                });
            }
        }
        list.sort_by_key(|c| c.socket);
        list
    }

    /// This node's presence members of a channel, with their `user_info`.
    pub fn members(&self, app_id: &AppId, channel: &str) -> Vec<Member> {
        let state = self.lock();
        state
            .get(app_id)
            .and_then(|rooms| rooms.channels.get(channel))
            .map(|ch| ch.members.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Connections, channels and frame counts of each app, for the metrics.
    pub fn gauges(&self) -> BTreeMap<AppId, Gauges> {
        let state = self.lock();
        state
            .iter()
            .map(|(id, rooms)| {
                let (mut frames_in, mut frames_out) = rooms.closed_frames;
                for (outbox, _) in rooms.connections.values() {
                    let (i, o) = outbox.frame_counts();
                    frames_in += i;
                    frames_out += o;
                }
                let gauges = Gauges {
                    connections: rooms.connections.len(),
                    channels: rooms.channels.len(),
                    frames_in,
                    frames_out,
                };
                (id.clone(), gauges)
            })
            .collect()
    }

    /// Records that `socket` is signed in as `user` watching `watchlist`; tells watchers of
    /// `user` it came online if this is its first socket. Returns the watchlist's state.
    pub fn signin(
        &self,
        app: &App,
        socket: SocketId,
        outbox: &Outbox,
        user: Arc<str>,
        watchlist: Vec<Arc<str>>,
    ) -> SignedInState {
        let mut state = self.lock();
        let rooms = state.entry(app.id.clone()).or_default();
        let sockets = rooms.users.entry(user.clone()).or_default();
        let first = sockets.is_empty();
        sockets.insert(socket, outbox.clone());
        let mut result = SignedInState::default();
        for watched in &watchlist {
            rooms.watchers.entry(watched.clone()).or_default().insert(socket, outbox.clone());
            if rooms.users.contains_key(watched) {
                result.online.push(watched.clone());
            } else {
                result.offline.push(watched.clone());
            }
        }
        rooms.signed_in.insert(socket, SignedIn { user: user.clone(), watching: watchlist });
        if first && app.watchlist_events {
            notify_watchers(rooms, &user, true);
        }
        result
    }

    /// Occupied channels of `app` whose names start with `prefix`.
    pub fn channels(&self, app_id: &AppId, prefix: &str) -> Vec<ChannelInfo> {
        let state = self.lock();
        let Some(rooms) = state.get(app_id) else {
            return Vec::new();
        };
        let mut list: Vec<ChannelInfo> =
            rooms.channels.values().filter(|ch| ch.name.as_str().starts_with(prefix)).map(info).collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// One channel's numbers (zeros when unoccupied).
    pub fn channel(&self, app_id: &AppId, channel: &ChannelName) -> ChannelInfo {
        let state = self.lock();
        state
            .get(app_id)
            .and_then(|rooms| rooms.channels.get(channel.as_str()))
            .map(info)
            .unwrap_or_else(|| ChannelInfo { name: channel.shared().clone(), subscription_count: 0, user_count: 0 })
    }

    /// The cached event of a cache channel and its remaining time to live.
    pub fn cached(&self, app_id: &AppId, channel: &ChannelName) -> Option<(CachedEvent, Duration)> {
        let state = self.lock();
        let cached = state.get(app_id)?.cache.get(channel.as_str())?;
        let age = cached.at.elapsed();
        (age < CACHE_TTL).then(|| (cached.event.clone(), CACHE_TTL - age))
    }

    /// Distinct user ids of a presence channel.
    pub fn users(&self, app_id: &AppId, channel: &ChannelName) -> Vec<Arc<str>> {
        let state = self.lock();
        let mut ids: Vec<Arc<str>> = state
            .get(app_id)
            .and_then(|rooms| rooms.channels.get(channel.as_str()))
            .map(|ch| ch.members.iter().map(|m| m.key.clone()).collect())
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// Open connections of `app` on this node.
    pub fn connections(&self, app_id: &AppId) -> usize {
        self.lock().get(app_id).map_or(0, |r| r.connections.len())
    }
}

fn info(ch: &Channel) -> ChannelInfo {
    ChannelInfo {
        name: ch.name.shared().clone(),
        subscription_count: ch.subscribers.len(),
        user_count: ch.members.len(),
    }
}

/// The subscription_count frame, if one is due (throttled on big channels, as Pusher does).
fn count_notice(ch: &mut Channel) -> Option<Frame> {
    let count = ch.subscribers.len();
    let due = count <= COUNT_THROTTLE_ABOVE || ch.last_count_sent.is_none_or(|at| at.elapsed() >= COUNT_INTERVAL);
    if !due {
        return None;
    }
    ch.last_count_sent = Some(Instant::now());
    Some(server::subscription_count(ch.name.as_str(), count))
}

fn notify_watchers(rooms: &Rooms, user: &Arc<str>, online: bool) {
    let Some(watchers) = rooms.watchers.get(user) else {
        return;
    };
    let ids = [&**user];
    let frame = if online { server::watchlist_events(&ids, &[]) } else { server::watchlist_events(&[], &ids) };
    for outbox in watchers.values() {
        outbox.send(frame.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn app() -> App {
        App::new("1", "k", "s")
    }

    fn channel(name: &str) -> ChannelName {
        ChannelName::parse(name, 164).unwrap()
    }

    fn member(id: &str) -> Member {
        Member { key: id.into(), user_id: RawValue::from_string(format!("\"{id}\"")).unwrap(), user_info: None }
    }

    impl ChannelRegistry {
        /// Connects the socket (if it is not yet) and subscribes it.
        fn join(
            &self,
            app: &App,
            socket: SocketId,
            outbox: &Outbox,
            channel: &ChannelName,
            member: Option<Member>,
        ) -> Result<Joined, ClientError> {
            let app = Arc::new(app.clone());
            let client = Client::new(Transport::Ws, None, None);
            self.lock().entry(app.id.clone()).or_default().connections.insert(socket, (outbox.clone(), client));
            self.subscribe(&Joining { app, socket, channel: channel.clone(), member }, None)
        }

        fn leave(&self, app: &App, socket: SocketId, channel: &ChannelName) -> Option<Left> {
            let app = Arc::new(app.clone());
            self.unsubscribe(&Leaving { app, socket, channel: channel.clone(), user: None })
        }
    }

    fn ws_client() -> Client {
        Client::new(Transport::Ws, None, None)
    }

    fn drain(rx: &mut OutboxReceiver) -> Vec<String> {
        rx.take_queued().iter().map(|f| f.as_str().to_owned()).collect()
    }

    #[test]
    fn fan_out_skips_the_excluded_socket() {
        let reg = ChannelRegistry::new();
        let app = app();
        let ch = channel("news");
        let (a, mut ra) = Outbox::new(8);
        let (b, mut rb) = Outbox::new(8);
        reg.join(&app, SocketId::new(1, 1), &a, &ch, None).unwrap();
        reg.join(&app, SocketId::new(1, 2), &b, &ch, None).unwrap();
        drain(&mut ra);
        drain(&mut rb);
        let frame = server::event("news", "e", "{}", None);
        let n = reg
            .fan_out(&app.id, &Delivery::Event { channel: ch, frame, except: Some(SocketId::new(1, 1)), cache: None });
        assert_eq!(n, 1);
        assert!(drain(&mut ra).is_empty());
        assert_eq!(drain(&mut rb).len(), 1);
    }

    #[test]
    fn presence_member_added_only_for_first_socket_and_removed_for_last() {
        let reg = ChannelRegistry::new();
        let app = app();
        let ch = channel("presence-room");
        let (a, _ra) = Outbox::new(8);
        let (b, _rb) = Outbox::new(8);
        let j1 = reg.join(&app, SocketId::new(1, 1), &a, &ch, Some(member("u1"))).unwrap();
        let j2 = reg.join(&app, SocketId::new(1, 2), &b, &ch, Some(member("u1"))).unwrap();
        assert!(j1.member_added.is_some() && j1.occupied);
        assert!(j2.member_added.is_none() && !j2.occupied);
        assert_eq!(reg.channel(&app.id, &ch).user_count, 1);
        assert_eq!(reg.channel(&app.id, &ch).subscription_count, 2);
        let l1 = reg.leave(&app, SocketId::new(1, 1), &ch).unwrap();
        assert!(l1.member_removed.is_none() && !l1.vacated);
        let l2 = reg.leave(&app, SocketId::new(1, 2), &ch).unwrap();
        assert!(l2.member_removed.is_some() && l2.vacated);
        assert!(reg.channels(&app.id, "").is_empty());
    }

    #[test]
    fn presence_limit_refuses_new_users_but_not_new_sockets_of_present_ones() {
        let reg = ChannelRegistry::new();
        let mut app = app();
        app.limits.max_presence_members = 1;
        let ch = channel("presence-small");
        let (a, _ra) = Outbox::new(8);
        reg.join(&app, SocketId::new(1, 1), &a, &ch, Some(member("u1"))).unwrap();
        reg.join(&app, SocketId::new(1, 2), &a, &ch, Some(member("u1"))).unwrap();
        let err = reg.join(&app, SocketId::new(1, 3), &a, &ch, Some(member("u2"))).unwrap_err();
        assert!(matches!(err, ClientError::PresenceFull { max: 1, .. }));
    }

    #[test]
    fn cache_channel_replays_last_event_after_subscription_succeeded() {
        let reg = ChannelRegistry::new();
        let app = app();
        let ch = channel("cache-ticker");
        let (a, mut ra) = Outbox::new(8);
        let j = reg.join(&app, SocketId::new(1, 1), &a, &ch, None).unwrap();
        assert!(j.cache_miss);
        let got = drain(&mut ra);
        assert!(got[1].contains("pusher:cache_miss"), "{got:?}");
        let frame = server::event("cache-ticker", "tick", "1", None);
        let cache = Some(CachedEvent { event: "tick".into(), data: "1".into() });
        reg.fan_out(&app.id, &Delivery::Event { channel: ch.clone(), frame: frame.clone(), except: None, cache });
        let (b, mut rb) = Outbox::new(8);
        reg.join(&app, SocketId::new(1, 2), &b, &ch, None).unwrap();
        let got = drain(&mut rb);
        assert!(got[0].contains("subscription_succeeded"));
        assert_eq!(got[1], frame.as_str());
        assert_eq!(reg.cached(&app.id, &ch).unwrap().0.data.as_ref(), "1");
    }

    #[test]
    fn watchers_hear_first_signin_and_last_disconnect() {
        let reg = ChannelRegistry::new();
        let app = app();
        let (w, mut rw) = Outbox::new(8);
        let state = reg.signin(&app, SocketId::new(1, 1), &w, "watcher".into(), vec!["u2".into()]);
        assert_eq!(state.offline, vec![Arc::<str>::from("u2")]);
        let (u, _ru) = Outbox::new(8);
        reg.connect(&app, SocketId::new(1, 2), &u, ws_client()).unwrap();
        reg.signin(&app, SocketId::new(1, 2), &u, "u2".into(), vec![]);
        reg.signin(&app, SocketId::new(1, 3), &u, "u2".into(), vec![]);
        let got = drain(&mut rw);
        assert_eq!(got.len(), 1, "online once: {got:?}");
        assert!(got[0].contains("online"));
        reg.disconnect(&app.id, SocketId::new(1, 2));
        assert!(drain(&mut rw).is_empty(), "u2 still has a socket");
        reg.disconnect(&app.id, SocketId::new(1, 3));
        assert!(drain(&mut rw)[0].contains("offline"));
    }

    #[test]
    fn connection_quota() {
        let reg = ChannelRegistry::new();
        let mut app = app();
        app.limits.max_connections = Some(1);
        let (o, _r) = Outbox::new(1);
        reg.connect(&app, SocketId::new(1, 1), &o, ws_client()).unwrap();
        assert_eq!(reg.connect(&app, SocketId::new(1, 2), &o, ws_client()), Err(HandshakeError::OverQuota));
        reg.disconnect(&app.id, SocketId::new(1, 1));
        reg.connect(&app, SocketId::new(1, 2), &o, ws_client()).unwrap();
    }

    #[test]
    fn close_where_picks_a_socket_a_channel_or_everyone() {
        let reg = ChannelRegistry::new();
        let app = app();
        let (a, mut ra) = Outbox::new(8);
        let (b, mut rb) = Outbox::new(8);
        reg.join(&app, SocketId::new(1, 1), &a, &channel("news"), None).unwrap();
        reg.join(&app, SocketId::new(1, 2), &b, &channel("other"), None).unwrap();
        drain(&mut ra);
        drain(&mut rb);
        assert_eq!(reg.close_where(None, &Which::Channel("news".into()), 4200, "test"), 1);
        assert_eq!((a.close_code(), b.close_code()), (Some(4200), None));
        assert_eq!(reg.close_where(Some(&app.id), &Which::Socket(SocketId::new(1, 2)), 4100, "test"), 1);
        assert_eq!(b.close_code(), Some(4100));
        assert_eq!(reg.close_where(Some(&AppId::new("other")), &Which::All, 4200, "test"), 0);
        assert_eq!(reg.close_where(None, &Which::All, 4200, "test"), 2);
    }

    #[tokio::test]
    async fn a_delivery_fault_drops_or_delays_only_its_channels() {
        use crate::faults::{Faults, Kind};
        let faults = Faults::new();
        let reg = ChannelRegistry::with_faults(faults.clone());
        let app = app();
        let (a, mut ra) = Outbox::new(8);
        reg.join(&app, SocketId::new(1, 1), &a, &channel("lossy"), None).unwrap();
        reg.join(&app, SocketId::new(1, 1), &a, &channel("slow"), None).unwrap();
        reg.join(&app, SocketId::new(1, 1), &a, &channel("plain"), None).unwrap();
        drain(&mut ra);
        faults.add(Kind::Drop { channel: glob::Pattern::new("lossy").unwrap(), fraction: 1.0 }, None, None);
        faults.add(Kind::Latency { channel: glob::Pattern::new("sl*").unwrap(), ms: 50 }, None, None);
        let send = |name: &str| {
            let frame = server::event(name, "e", "{}", None);
            reg.fan_out(&app.id, &Delivery::Event { channel: channel(name), frame, except: None, cache: None })
        };
        assert_eq!(send("lossy"), 0);
        assert_eq!(send("slow"), 1);
        assert_eq!(send("plain"), 1);
        let now = drain(&mut ra);
        assert_eq!(now.len(), 1, "only the plain one at once: {now:?}");
        assert!(now[0].contains("plain"));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let late = drain(&mut ra);
        assert_eq!(late.len(), 1, "{late:?}");
        assert!(late[0].contains("slow"));
    }
}
