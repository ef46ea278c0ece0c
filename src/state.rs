//! `AppState`: the shared handle every edge holds, and [`AppState::publish`], the single choke
//! point every event goes through, whether it came from the HTTP API, a client or a replay.
//!
//! publish: hand to the recorder (while a recording runs) → encode once → broker (→ registry
//! fan-out on each node) → printer → the `client_event` webhook for client events.
//!
//! Membership goes the same one way: [`AppState::join`] and [`AppState::leave`] (called by the
//! session) ask the broker, and what changed goes through `AppState::membership`, the one
//! place that raises each membership webhook (occupied, vacated, member_added/removed,
//! cache_miss, subscription_count) and announces what the broker has not, for joins and
//! leaves here and for nodes that died or came back. The broker is private to this module:
//! queries go through [`AppState::channels`] and [`AppState::channel`].

use std::sync::Arc;

use crate::apps::{App, AppId, Apps};
use crate::broker::{Broker, Envelope, Notice, Query};
use crate::changes::Changes;
use crate::config::Config;
use crate::error::ClientError;
use crate::event::{Event, Source};
use crate::faults::Faults;
use crate::history::History;
use crate::metrics::Metrics;
use crate::printer::{Line, Printer};
use crate::protocol::{server, ChannelKind, ChannelName, Frame, SocketId, SocketIds};
use crate::recorder::replay::{Publisher, ReplayError};
use crate::recorder::replays::{Job, Replays};
use crate::recorder::slot::Slot;
use crate::recorder::watch::Fixtures;
use crate::recorder::{Commit, Entry, FixtureEvent, Recorder};
use crate::registry::{CachedEvent, ChannelInfo, ChannelRegistry, Delivery, Joining, Leaving};
use crate::shutdown::Shutdown;
use crate::webhook::Webhooks;

pub use crate::broker::ChannelState;

/// One membership change on a channel, as the whole cluster sees it: what
/// [`AppState::membership`] acts on.
#[derive(Debug)]
enum Change {
    /// The channel got its first subscriber.
    Occupied,
    /// The channel's last subscriber left.
    Vacated,
    /// A socket subscribed to a cache channel with nothing cached.
    CacheMiss,
    /// A user's first socket joined a presence channel.
    MemberAdded {
        /// The user key.
        user: Arc<str>,
        /// The member_added frame when it is still to be sent (`None`: the broker sent it).
        announce: Option<Frame>,
    },
    /// A user's last socket left a presence channel.
    MemberRemoved {
        /// The user key.
        user: Arc<str>,
        /// The member_removed frame when it is still to be sent (`None`: the broker sent it).
        announce: Option<Frame>,
    },
    /// A non-presence channel's subscription count changed and is due to be announced.
    SubscriptionCount(usize),
}

struct Inner {
    config: Arc<Config>,
    apps: Apps,
    registry: ChannelRegistry,
    broker: Arc<dyn Broker>,
    printer: Printer,
    socket_ids: SocketIds,
    shutdown: Shutdown,
    webhooks: Webhooks,
    /// Boxed: the slot is large and rarely used; the hot fields stay packed together.
    recording: Box<Slot>,
    fixtures: Fixtures,
    replays: Replays,
    /// The last events of each app (the control API's history and waits).
    history: History,
    /// Per-app counters for `/pusher-local/metrics`.
    metrics: Metrics,
    /// Wakes the control API's waiters.
    changes: Changes,
    /// Why the cluster cannot be reached (`None`: no cluster, or Redis answers).
    cluster_down: std::sync::Mutex<Option<String>>,
}

/// Whether this node serves, for `GET /pusher-local/health`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Accepting connections and, with Redis, part of the cluster.
    Serving,
    /// Shutting down: closing its sockets.
    Draining,
    /// Redis is unreachable: local sockets are served, other nodes are not reached.
    ClusterDown(String),
    /// A test's `node_down` fault: this node plays dead.
    NodeDown,
}

/// Cheap-to-clone handle on everything shared.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("apps", &self.inner.apps.len()).finish_non_exhaustive()
    }
}

impl AppState {
    /// Assembles the state and starts the webhook sender. `recording` holds the recording in
    /// progress (`--record`) and those started later, `fixtures` is the fixtures folder.
    ///
    /// # Panics
    /// When called outside a Tokio runtime.
    pub fn new(
        config: Arc<Config>,
        registry: ChannelRegistry,
        broker: Arc<dyn Broker>,
        printer: Printer,
        shutdown: Shutdown,
        recording: Slot,
        fixtures: Fixtures,
    ) -> Self {
        let apps = config.app_table();
        let metrics = Metrics::new(apps.iter().map(|app| &app.id));
        let changes = Changes::default();
        let webhooks = Webhooks::new(
            config.webhooks.clone(),
            config.tls.client_trust(),
            printer.clone(),
            shutdown.token().clone(),
            (metrics.clone(), changes.clone()),
        );
        let history = History::new(config.history);
        Self {
            inner: Arc::new(Inner {
                config,
                apps,
                registry,
                broker,
                printer,
                socket_ids: SocketIds::random(),
                shutdown,
                webhooks,
                recording: Box::new(recording),
                fixtures,
                replays: Replays::default(),
                history,
                metrics,
                changes,
                cluster_down: std::sync::Mutex::new(None),
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The app table.
    pub fn apps(&self) -> &Apps {
        &self.inner.apps
    }

    /// This node's registry.
    pub fn registry(&self) -> &ChannelRegistry {
        &self.inner.registry
    }

    /// Occupied channels whose names start with `prefix`, cluster-wide, by name.
    pub async fn channels(&self, app_id: &AppId, prefix: &str) -> Vec<ChannelInfo> {
        let found = self.inner.broker.query(app_id, Query::Occupied { prefix }).await;
        found.into_iter().map(|state| state.info).collect()
    }

    /// One channel, cluster-wide: its counts, presence users and cached event.
    pub async fn channel(&self, app_id: &AppId, channel: &ChannelName) -> ChannelState {
        let found = self.inner.broker.query(app_id, Query::Channel(channel)).await;
        found.into_iter().next().unwrap_or_else(|| ChannelState {
            info: ChannelInfo { name: channel.shared().clone(), subscription_count: 0, user_count: 0 },
            users: Vec::new(),
            cached: None,
        })
    }

    /// The terminal printer.
    pub fn printer(&self) -> &Printer {
        &self.inner.printer
    }

    /// The shutdown handle.
    pub fn shutdown(&self) -> &Shutdown {
        &self.inner.shutdown
    }

    /// The webhook service and its outbox.
    pub fn webhooks(&self) -> &Webhooks {
        &self.inner.webhooks
    }

    /// The recording in progress, if any.
    pub fn recorder(&self) -> Option<Recorder> {
        self.inner.recording.current()
    }

    /// Where recordings start and stop while the server runs.
    pub fn recording(&self) -> &Slot {
        &self.inner.recording
    }

    /// The fixtures folder.
    pub fn fixtures(&self) -> &Fixtures {
        &self.inner.fixtures
    }

    /// Replays the server is running.
    pub fn replays(&self) -> &Replays {
        &self.inner.replays
    }

    /// Starts replaying `job` through [`AppState::publish`] (`Source::Replay`); stops at
    /// shutdown. Returns the replay's id.
    pub fn start_replay(&self, job: Job) -> u64 {
        let publisher = StatePublisher { state: self.clone(), app_id: job.app_id.clone() };
        let stop = self.inner.shutdown.token().child_token();
        self.inner.replays.start(job, publisher, &self.inner.printer, stop)
    }

    /// The events kept for the control API.
    pub fn history(&self) -> &History {
        &self.inner.history
    }

    /// The per-app counters.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// What wakes the control API's waiters.
    pub fn changes(&self) -> &Changes {
        &self.inner.changes
    }

    /// The faults a test injected.
    pub fn faults(&self) -> &Faults {
        self.inner.registry.faults()
    }

    /// Whether this node serves: draining wins over a cluster that is down.
    pub fn health(&self) -> Health {
        if self.inner.shutdown.is_cancelled() {
            return Health::Draining;
        }
        if self.faults().node_down() {
            return Health::NodeDown;
        }
        match self.inner.cluster_down.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            Some(reason) => Health::ClusterDown(reason),
            None => Health::Serving,
        }
    }

    /// A fresh socket id.
    pub fn next_socket_id(&self) -> SocketId {
        self.inner.socket_ids.next_id()
    }

    /// Publishes one event: the single choke point. Returns deliveries made on this node, and
    /// the [`Commit`] to await before acknowledging it (resolves at once unless recording).
    ///
    /// While recording, the event is queued for the disk first, so the recorded order is the
    /// publish order; HTTP API and replayed events get a commit to wait for, client events are
    /// not waited for ("committed as fast as they arrive").
    pub async fn publish(&self, event: Event) -> (usize, Commit) {
        // One atomic load when nothing is recorded: the entry is made only while recording.
        let commit = self.inner.recording.record(
            || Entry {
                app_id: event.app_id.to_string(),
                channel: event.channel.to_string(),
                event: event.name.to_string(),
                data: event.data.clone(),
                socket_id: event.except.map(|s| s.to_string()),
                user_id: event.user_id.clone(),
                source: event.source.label(),
            },
            event.source != Source::Client,
        );
        let frame = server::event(event.channel.as_str(), &event.name, &event.data, event.user_id.as_deref());
        // Client events are relayed but never cached (Pusher cache channels FAQ).
        let cache = (event.channel.is_cache() && event.source != Source::Client)
            .then(|| CachedEvent { event: event.name.clone(), data: event.data.clone() });
        let delivery = Delivery::Event { channel: event.channel.clone(), frame, except: event.except, cache };
        let delivered = self.inner.broker.publish(Envelope { app_id: event.app_id.clone(), delivery }).await;
        self.inner.history.push(&event, delivered);
        self.inner.metrics.published(&event.app_id, event.source);
        self.inner.changes.changed();
        if event.source == Source::Client {
            // After fan-out, and never waiting: the webhook is queued, not sent, here.
            if let Some(app) = self.inner.apps.find_by_id(event.app_id.as_str()) {
                let socket_id = event.except.map(|s| s.to_string());
                let (channel, name) = (event.channel.as_str(), &event.name);
                self.inner.webhooks.client_event(app, channel, name, &event.data, socket_id, event.user_id.clone());
            }
        }
        // Worked out only when the line is shown (`-v`, a console attached).
        let hint = if delivered == 0 && self.inner.printer.verbose() { self.unreached(&event) } else { None };
        self.inner.printer.line(Line::Published {
            app: event.app_id,
            channel: event.channel,
            event: event.name,
            data: event.data,
            source: event.source,
            delivered,
            hint,
        });
        (delivered, commit)
    }

    /// Why `event` reached no socket (`None` with Redis: other nodes' sockets are not seen here).
    fn unreached(&self, event: &Event) -> Option<String> {
        if self.inner.config.redis_url.is_some() {
            return None;
        }
        let apps: Vec<AppId> = self.inner.apps.iter().map(|a| a.id.clone()).collect();
        let missed = crate::unreached::Missed {
            app: &event.app_id,
            channel: event.channel.as_str(),
            source: event.source,
            excluded: event.except.is_some(),
        };
        crate::unreached::hint(&self.inner.registry, &apps, missed)
    }

    /// Subscribes a socket (through the broker: cluster-wide, in order with presence
    /// announcements), then acts on what changed.
    ///
    /// # Errors
    /// [`ClientError`] when the subscription is refused (presence channel full).
    pub async fn join(&self, joining: Joining) -> Result<(), ClientError> {
        let (app, channel, user) =
            (joining.app.clone(), joining.channel.clone(), joining.member.as_ref().map(|m| m.key.clone()));
        let joined = self.inner.broker.join(joining).await?;
        if joined.occupied {
            self.membership(&app, &channel, Change::Occupied).await;
        }
        if let (Some(_), Some(user)) = (joined.member_added, user) {
            // Announced by the broker already, in order with the subscribe.
            self.membership(&app, &channel, Change::MemberAdded { user, announce: None }).await;
        }
        if joined.cache_miss {
            self.membership(&app, &channel, Change::CacheMiss).await;
        }
        if joined.subscription_count.is_some() {
            self.membership(&app, &channel, Change::SubscriptionCount(joined.subscribers)).await;
        }
        self.inner.changes.changed();
        Ok(())
    }

    /// Unsubscribes a socket (through the broker, as [`AppState::join`]), then acts on what
    /// changed. Leaving a channel the socket is not in changes nothing.
    pub async fn leave(&self, leaving: Leaving) {
        let (app, user) = (leaving.app.clone(), leaving.user.clone());
        let Some(left) = self.inner.broker.leave(leaving).await else { return };
        let channel = &left.channel;
        if let (Some(_), Some(user)) = (left.member_removed, user) {
            // Announced by the broker already.
            self.membership(&app, channel, Change::MemberRemoved { user, announce: None }).await;
        }
        if left.vacated {
            self.membership(&app, channel, Change::Vacated).await;
        }
        if left.subscription_count.is_some() {
            self.membership(&app, channel, Change::SubscriptionCount(left.subscribers)).await;
        }
        self.inner.changes.changed();
    }

    /// The one place a membership change is acted on, as [`AppState::publish`] is for events:
    /// its webhook (each kind is raised here and nowhere else) and, where the others must hear
    /// it and the broker has not told them, its announcement.
    async fn membership(&self, app: &Arc<App>, channel: &ChannelName, change: Change) {
        let webhooks = &self.inner.webhooks;
        let name = channel.as_str();
        let frame = match change {
            Change::Occupied => return webhooks.channel_occupied(app, name),
            Change::Vacated => return webhooks.channel_vacated(app, name),
            Change::CacheMiss => return webhooks.cache_miss(app, name),
            Change::MemberAdded { user, announce } => {
                webhooks.member_added(app, name, &user);
                announce
            }
            Change::MemberRemoved { user, announce } => {
                webhooks.member_removed(app, name, &user);
                announce
            }
            Change::SubscriptionCount(count) => {
                webhooks.subscription_count(app, name, count);
                Some(server::subscription_count(name, count))
            }
        };
        if let Some(frame) = frame {
            // A protocol frame, not an event: not printed as one, never cached.
            let delivery = Delivery::Event { channel: channel.clone(), frame, except: None, cache: None };
            self.inner.broker.publish(Envelope { app_id: app.id.clone(), delivery }).await;
        }
    }

    /// Acts on what the cluster reported: prints Redis outages loudly, and for a node that died
    /// announces member_removed (and subscription_count) to every node and fires the webhooks
    /// its sessions can no longer fire.
    pub async fn on_notice(&self, notice: Notice) {
        let cluster_down =
            |why: Option<String>| *self.inner.cluster_down.lock().unwrap_or_else(|p| p.into_inner()) = why;
        match notice {
            Notice::Down { url, reason } => {
                cluster_down(Some(format!("Redis at {url} is unreachable ({reason})")));
                self.inner.printer.line(Line::Cluster {
                    message: format!(
                        "Redis at {url} is unreachable ({reason}): cross-node delivery is DOWN. This node \
                         keeps serving its own sockets and reconnects with backoff."
                    ),
                    problem: true,
                });
            }
            Notice::Up { url } => {
                cluster_down(None);
                self.inner.printer.line(Line::Cluster {
                    message: format!(
                        "Redis at {url} is back: cross-node delivery restored, this node's subscriptions and \
                         presence members written again."
                    ),
                    problem: false,
                });
            }
            Notice::MembersBack { added } => {
                self.inner.printer.line(Line::Cluster {
                    message: format!(
                        "this node was taken for dead (no heartbeat for 5 s) and is back: {} presence member(s) \
                         announced again",
                        added.len()
                    ),
                    problem: true,
                });
                for (app_id, channel, member) in added {
                    let announce = Some(server::member_added(channel.as_str(), &member.as_ref()));
                    self.cluster_change(&app_id, &channel, Change::MemberAdded { user: member.key, announce }).await;
                }
            }
            Notice::NodeGone { node, removed, vacated, counts } => {
                self.inner.printer.line(Line::Cluster {
                    message: format!(
                        "node {node} stopped beating: {} presence member(s) removed, {} channel(s) vacated",
                        removed.len(),
                        vacated.len()
                    ),
                    problem: false,
                });
                for (app_id, channel, member) in removed {
                    let announce = Some(server::member_removed(channel.as_str(), &member.user_id));
                    self.cluster_change(&app_id, &channel, Change::MemberRemoved { user: member.key, announce }).await;
                }
                for (app_id, channel) in vacated {
                    self.cluster_change(&app_id, &channel, Change::Vacated).await;
                }
                for (app_id, channel, count) in counts {
                    self.cluster_change(&app_id, &channel, Change::SubscriptionCount(count)).await;
                }
            }
        }
    }

    /// A change the cluster made (a node died or came back), for an app of this node's table.
    /// Subscription counts go out only where the app sends them (never on presence channels),
    /// as the registry decides for joins and leaves.
    async fn cluster_change(&self, app_id: &AppId, channel: &ChannelName, change: Change) {
        let Some(app) = self.inner.apps.find_by_id(app_id.as_str()).cloned() else { return };
        let counted = app.subscription_count && channel.kind() != ChannelKind::Presence;
        if matches!(change, Change::SubscriptionCount(_)) && !counted {
            return;
        }
        self.membership(&app, channel, change).await;
    }

    /// Closes every connection signed in as `user_id`, cluster-wide.
    pub async fn terminate_user(&self, app_id: &AppId, user_id: &str) -> usize {
        let delivery = Delivery::TerminateUser { user_id: user_id.into() };
        self.inner.broker.publish(Envelope { app_id: app_id.clone(), delivery }).await
    }
}

/// Publishes a replay into the running server.
struct StatePublisher {
    state: AppState,
    app_id: AppId,
}

#[async_trait::async_trait]
impl Publisher for StatePublisher {
    async fn publish(&self, event: &FixtureEvent) -> Result<(), ReplayError> {
        // Fixture channels were validated on load; a `--channel-map` target may not be.
        let Ok(channel) = ChannelName::parse(&event.channel, usize::MAX) else { return Ok(()) };
        let (_, commit) = self
            .state
            .publish(Event {
                app_id: self.app_id.clone(),
                channel,
                name: event.event.as_str().into(),
                data: event.data.as_str().into(),
                except: None,
                user_id: None,
                source: Source::Replay,
            })
            .await;
        // Recorded replays are committed before the next event, like HTTP API triggers. A
        // recording that ended or failed (the recorder reported it) is no reason to stop the
        // replay: the event was delivered.
        let _delivered_anyway = commit.wait().await;
        Ok(())
    }
}
