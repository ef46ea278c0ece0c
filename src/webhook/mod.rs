//! Webhooks: what the server tells the app's own HTTP endpoint (protocol.md §8).
//!
//! The session and `AppState::publish` report what happened ([`Webhooks::channel_occupied`],
//! [`Webhooks::member_removed`], …); those calls never wait. From there:
//!
//! ```text
//! report ─▶ leave delay (vacated / member_removed, cancelled by a quick rejoin)
//!        ─▶ cache_miss de-duplication ─▶ per-app batching window (when on)
//!        ─▶ record: body {"time_ms","events"} + signature ─▶ outbox (kept, bounded)
//!        ─▶ one Job per URL ─▶ bounded queue ─▶ sender task ─▶ POST with retries
//! ```
//!
//! - [`event`]: kinds, the `events[]` item, body and signature (pure).
//! - [`outbox`]: the kept records and their delivery attempts.
//! - [`sender`]: the queue, the HTTP client and the retry loop.
//!
//! Every webhook is recorded, also when the app has no URL: the developer can list, show and
//! resend them through the control API (`crate::control`) and `pusher-local webhooks`.

pub mod event;
pub mod outbox;
pub mod sender;

use crate::tls::ClientTrust;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use tokio_util::sync::CancellationToken;

pub use event::{Kind, WebhookEvent};
pub use outbox::{Outbox, Record};

use crate::apps::{App, AppId};
use crate::changes::Changes;
use crate::metrics::Metrics;
use crate::printer::{Line, Printer};
use outbox::{DeliveryState, Headers};
use sender::{Job, Sender};

pub use crate::apps::WebhookTarget as Target;

/// Timing and sizes of webhook delivery (server-wide).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// How long channel_vacated and member_removed wait for a rejoin (Pusher: 3 s).
    pub leave_delay: Duration,
    /// How long a failing delivery keeps being retried (Pusher: 5 min).
    pub retry_for: Duration,
    /// The first wait between attempts; it doubles each time, up to a minute.
    pub first_retry: Duration,
    /// Per-attempt HTTP timeout.
    pub timeout: Duration,
    /// With batching on, how long events gather before one POST.
    pub batch_window: Duration,
    /// A second cache_miss for the same channel within this window is not sent.
    pub cache_miss_window: Duration,
    /// Records kept in the outbox.
    pub outbox_capacity: usize,
    /// Deliveries that may wait for the sender; beyond it a delivery is dropped (and recorded so).
    pub queue_capacity: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            leave_delay: Duration::from_secs(3),
            retry_for: Duration::from_secs(300),
            first_retry: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            batch_window: Duration::from_millis(50),
            cache_miss_window: Duration::from_secs(5),
            outbox_capacity: 1000,
            queue_capacity: 1024,
        }
    }
}

/// Wall-clock milliseconds since the epoch (`time_ms`).
pub fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Delayed {
    Vacated(AppId, Arc<str>),
    MemberRemoved(AppId, Arc<str>, Arc<str>),
}

/// Why a resend was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResendError {
    /// No record with this id (never existed, or dropped from the bounded outbox).
    #[error("no webhook {0} in the outbox")]
    NotFound(u64),
    /// The record has no URL and none was given.
    #[error("webhook {0} has no URL to send to (the app has no webhook URL): give one")]
    NoUrl(u64),
    /// The URL given is not `http://…` or `https://…`.
    #[error("{0:?} is not an http:// or https:// URL")]
    BadUrl(String),
    /// The send queue is full.
    #[error("the webhook queue is full; try again")]
    QueueFull,
}

/// Checks a webhook URL: absolute `http://` or `https://`.
///
/// # Errors
/// A message saying what is wrong.
pub fn check_url(url: &str) -> Result<(), String> {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err(format!("{url:?} is not an http:// or https:// URL")),
    }
}

#[derive(Debug)]
struct Inner {
    settings: Settings,
    outbox: Outbox,
    sender: Sender,
    printer: Printer,
    generation: AtomicU64,
    delayed: Mutex<HashMap<Delayed, u64>>,
    batches: Mutex<HashMap<AppId, Vec<WebhookEvent>>>,
    cache_misses: Mutex<HashMap<(AppId, Arc<str>), Instant>>,
}

/// The webhook service (cheap to clone). All reporting methods return at once.
#[derive(Debug, Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded maps stay consistent even if a holder panicked (single inserts/removes).
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Most events in one batched POST; a full batch goes out before its window ends.
const MAX_BATCH: usize = 100;

impl Webhooks {
    /// Starts the sender task; delivery stops when `stop` fires.
    ///
    /// # Panics
    /// When called outside a Tokio runtime.
    pub fn new(
        settings: Settings,
        trust: ClientTrust,
        printer: Printer,
        stop: CancellationToken,
        watch: (Metrics, Changes),
    ) -> Self {
        let outbox = Outbox::watched(settings.outbox_capacity, watch.0, watch.1);
        let sender = Sender::spawn(settings.clone(), trust, outbox.clone(), printer.clone(), stop);
        Self {
            inner: Arc::new(Inner {
                settings,
                outbox,
                sender,
                printer,
                generation: AtomicU64::new(0),
                delayed: Mutex::new(HashMap::new()),
                batches: Mutex::new(HashMap::new()),
                cache_misses: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The kept records.
    pub fn outbox(&self) -> &Outbox {
        &self.inner.outbox
    }

    /// A channel got its first subscriber. Not sent when it cancels a pending channel_vacated
    /// (the channel was only briefly empty, as real Pusher does).
    pub fn channel_occupied(&self, app: &Arc<App>, channel: &str) {
        if self.cancel(&Delayed::Vacated(app.id.clone(), channel.into())) {
            return;
        }
        self.emit(app, WebhookEvent::new(Kind::ChannelOccupied, channel));
    }

    /// A channel's last subscriber left: channel_vacated after the leave delay, unless it is
    /// re-occupied first.
    pub fn channel_vacated(&self, app: &Arc<App>, channel: &str) {
        let event = WebhookEvent::new(Kind::ChannelVacated, channel);
        self.delay(app, Delayed::Vacated(app.id.clone(), channel.into()), event);
    }

    /// A user's first socket joined a presence channel. Not sent when it cancels a pending
    /// member_removed for the same user.
    pub fn member_added(&self, app: &Arc<App>, channel: &str, user_id: &Arc<str>) {
        if self.cancel(&Delayed::MemberRemoved(app.id.clone(), channel.into(), user_id.clone())) {
            return;
        }
        self.emit(app, WebhookEvent::new(Kind::MemberAdded, channel).with_user(user_id.clone()));
    }

    /// A user's last socket left a presence channel: member_removed after the leave delay,
    /// unless the user rejoins first.
    pub fn member_removed(&self, app: &Arc<App>, channel: &str, user_id: &Arc<str>) {
        let event = WebhookEvent::new(Kind::MemberRemoved, channel).with_user(user_id.clone());
        self.delay(app, Delayed::MemberRemoved(app.id.clone(), channel.into(), user_id.clone()), event);
    }

    /// A client event was relayed.
    pub fn client_event(
        &self,
        app: &Arc<App>,
        channel: &str,
        event: &Arc<str>,
        data: &Arc<str>,
        socket_id: Option<String>,
        user_id: Option<Arc<str>>,
    ) {
        if app.webhooks.is_empty() {
            // Kept only when a URL would receive them: at chat or game rates they would push
            // every occupied/vacated/member record out of the outbox, and building one per client
            // event cost about a tenth of the client-event path (measured with perf).
            return;
        }
        let mut e = WebhookEvent::new(Kind::ClientEvent, channel);
        e.event = Some(event.clone());
        e.data = Some(data.clone());
        e.socket_id = socket_id;
        e.user_id = user_id;
        self.emit(app, e);
    }

    /// A non-presence channel's subscription count changed (throttled like the client
    /// notification: above 100 subscribers at most every 5 s).
    pub fn subscription_count(&self, app: &Arc<App>, channel: &str, count: usize) {
        let mut e = WebhookEvent::new(Kind::SubscriptionCount, channel);
        e.subscription_count = Some(count);
        self.emit(app, e);
    }

    /// A socket subscribed to an empty cache channel; at most one per channel per window.
    pub fn cache_miss(&self, app: &Arc<App>, channel: &str) {
        let window = self.inner.settings.cache_miss_window;
        let now = Instant::now();
        {
            let mut seen = lock(&self.inner.cache_misses);
            let key = (app.id.clone(), Arc::<str>::from(channel));
            if seen.get(&key).is_some_and(|at| now.duration_since(*at) < window) {
                return;
            }
            if seen.len() >= 4096 {
                seen.retain(|_, at| now.duration_since(*at) < window);
            }
            seen.insert(key, now);
        }
        self.emit(app, WebhookEvent::new(Kind::CacheMiss, channel));
    }

    /// Removes a pending delayed webhook; whether there was one.
    fn cancel(&self, key: &Delayed) -> bool {
        lock(&self.inner.delayed).remove(key).is_some()
    }

    fn delay(&self, app: &Arc<App>, key: Delayed, event: WebhookEvent) {
        let generation = self.inner.generation.fetch_add(1, Ordering::Relaxed);
        lock(&self.inner.delayed).insert(key.clone(), generation);
        let this = self.clone();
        let app = app.clone();
        let wait = self.inner.settings.leave_delay;
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let due = {
                let mut delayed = lock(&this.inner.delayed);
                // Still ours: not cancelled, and not replaced by a later leave.
                let ours = delayed.get(&key) == Some(&generation);
                if ours {
                    delayed.remove(&key);
                }
                ours
            };
            if due {
                this.emit(&app, event);
            }
        });
    }

    fn emit(&self, app: &Arc<App>, event: WebhookEvent) {
        if !app.webhook_batching {
            self.dispatch(app, vec![event]);
            return;
        }
        let (first, full) = {
            let mut batches = lock(&self.inner.batches);
            let batch = batches.entry(app.id.clone()).or_default();
            batch.push(event);
            let first = batch.len() == 1;
            let full = (batch.len() >= MAX_BATCH).then(|| std::mem::take(batch));
            (first, full)
        };
        if let Some(events) = full {
            self.dispatch(app, events);
        } else if first {
            let this = self.clone();
            let app = app.clone();
            let window = self.inner.settings.batch_window;
            tokio::spawn(async move {
                tokio::time::sleep(window).await;
                let events = lock(&this.inner.batches).get_mut(&app.id).map(std::mem::take).unwrap_or_default();
                if !events.is_empty() {
                    this.dispatch(&app, events);
                }
            });
        }
    }

    /// Builds the record(s) for `events`, keeps them and queues their deliveries. URLs whose
    /// filters select the same events share one record (one body, one signature).
    fn dispatch(&self, app: &Arc<App>, events: Vec<WebhookEvent>) {
        let time_ms = now_ms();
        let key: Arc<str> = app.key.as_str().into();
        if app.webhooks.is_empty() {
            // Kept for `webhooks list`, signed only if someone looks (client events and
            // subscriptions come here at full rate).
            let headers = Headers { content_type: "application/json", key, signature: "".into() };
            let record =
                Record { id: 0, app_id: app.id.clone(), time_ms, events, body: "".into(), headers, deliveries: vec![] };
            self.inner.outbox.insert_unsigned(record, app.clone());
            return;
        }
        let mut groups: Vec<(Vec<usize>, Vec<&str>)> = Vec::new();
        for target in &app.webhooks {
            let selected: Vec<usize> = (0..events.len()).filter(|&i| target.wants(events[i].name)).collect();
            if selected.is_empty() {
                continue;
            }
            match groups.iter_mut().find(|(s, _)| *s == selected) {
                Some((_, urls)) => urls.push(&target.url),
                None => groups.push((selected, vec![&target.url])),
            }
        }
        for (selected, urls) in groups {
            let events: Vec<WebhookEvent> = selected.iter().map(|&i| events[i].clone()).collect();
            let body: Arc<str> = event::body(time_ms, &events).into();
            let signature: Arc<str> = event::signature(app.secret.expose(), &body).into();
            let label: Arc<str> = match events.as_slice() {
                [one] => one.label().into(),
                many => format!("{} events", many.len()).into(),
            };
            let channel = single_channel(&events);
            let deliveries = urls
                .iter()
                .map(|url| outbox::Delivery {
                    url: (*url).to_owned(),
                    state: DeliveryState::Pending,
                    attempts: Vec::new(),
                })
                .collect();
            let record = Record {
                id: 0,
                app_id: app.id.clone(),
                time_ms,
                events,
                body: body.clone(),
                headers: Headers { content_type: "application/json", key: key.clone(), signature: signature.clone() },
                deliveries,
            };
            let id = self.inner.outbox.insert(record);
            // With no URL the record is only kept: no log line, or every subscribe would print one.
            for url in urls {
                let job = Job {
                    record: id,
                    url: url.into(),
                    body: body.clone(),
                    key: key.clone(),
                    signature: signature.clone(),
                    label: label.clone(),
                    app: app.id.clone(),
                    channel: channel.clone(),
                };
                self.queue(job);
            }
        }
    }

    fn queue(&self, job: Job) -> bool {
        let (id, url) = (job.record, job.url.clone());
        if self.inner.sender.send(job) {
            return true;
        }
        self.inner.outbox.set_state(id, &url, DeliveryState::Dropped);
        self.inner.printer.line(Line::Error(format!("webhook #{id} → {url} dropped: the webhook queue is full")));
        false
    }

    /// Sends record `id` again, unchanged (same body, `time_ms` and signature), to `to` or
    /// else to the URLs it was sent to. Returns the URLs queued.
    ///
    /// # Errors
    /// [`ResendError`].
    pub fn resend(&self, id: u64, to: Option<&str>) -> Result<Vec<String>, ResendError> {
        let record = self.inner.outbox.get(id).ok_or(ResendError::NotFound(id))?;
        let urls: Vec<String> = match to {
            Some(url) => {
                check_url(url).map_err(|_| ResendError::BadUrl(url.to_owned()))?;
                vec![url.to_owned()]
            }
            None => record.deliveries.iter().map(|d| d.url.clone()).collect(),
        };
        if urls.is_empty() {
            return Err(ResendError::NoUrl(id));
        }
        let label: Arc<str> = match record.events.as_slice() {
            [one] => format!("#{id} {}", one.label()).into(),
            many => format!("#{id} ({} events)", many.len()).into(),
        };
        for url in &urls {
            self.inner.outbox.set_state(id, url, DeliveryState::Pending);
            let job = Job {
                record: id,
                url: url.as_str().into(),
                body: record.body.clone(),
                key: record.headers.key.clone(),
                signature: record.headers.signature.clone(),
                label: label.clone(),
                app: record.app_id.clone(),
                channel: single_channel(&record.events),
            };
            if !self.queue(job) {
                return Err(ResendError::QueueFull);
            }
        }
        Ok(urls)
    }
}

/// The channel of a one-event body, for the log's channel filter.
fn single_channel(events: &[WebhookEvent]) -> Option<Arc<str>> {
    match events {
        [one] => Some(one.channel.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_count_goes_only_to_targets_that_name_it() {
        assert!(!Target::new("http://127.0.0.1:1/").wants(Kind::SubscriptionCount));
        assert!(Target::new("http://127.0.0.1:1/").wants(Kind::ChannelOccupied));
        let named = Target { url: "http://127.0.0.1:1/".into(), event_types: Some(vec![Kind::SubscriptionCount]) };
        assert!(named.wants(Kind::SubscriptionCount) && !named.wants(Kind::ChannelOccupied));
    }

    fn app() -> Arc<App> {
        Arc::new(App::new("1", "key", "secret"))
    }

    fn service(settings: Settings) -> Webhooks {
        let watch = (Metrics::default(), Changes::default());
        Webhooks::new(settings, ClientTrust::default(), Printer::silent(), CancellationToken::new(), watch)
    }

    fn names(w: &Webhooks) -> Vec<String> {
        w.outbox()
            .list()
            .iter()
            .flat_map(|r| {
                r.events.iter().map(|e| format!("{} {}", e.name.as_str(), e.user_id.as_deref().unwrap_or("")))
            })
            .map(|s| s.trim_end().to_owned())
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn vacated_waits_the_leave_delay_and_a_quick_reoccupy_cancels_both() {
        let w = service(Settings::default());
        let app = app();
        w.channel_occupied(&app, "c");
        w.channel_vacated(&app, "c");
        tokio::time::sleep(Duration::from_millis(2900)).await;
        assert_eq!(names(&w), ["channel_occupied"]);
        w.channel_occupied(&app, "c"); // back within 3 s: neither vacated nor occupied
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(names(&w), ["channel_occupied"]);
        w.channel_vacated(&app, "c");
        tokio::time::sleep(Duration::from_millis(3001)).await;
        assert_eq!(names(&w), ["channel_occupied", "channel_vacated"]);
    }

    #[tokio::test(start_paused = true)]
    async fn member_removed_is_delayed_and_cancelled_per_user() {
        let w = service(Settings::default());
        let app = app();
        let (alice, bob): (Arc<str>, Arc<str>) = ("alice".into(), "bob".into());
        w.member_added(&app, "presence-x", &alice);
        w.member_added(&app, "presence-x", &bob);
        w.member_removed(&app, "presence-x", &alice);
        w.member_removed(&app, "presence-x", &bob);
        tokio::time::sleep(Duration::from_secs(1)).await;
        w.member_added(&app, "presence-x", &alice); // alice back in time; bob is not
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(names(&w), ["member_added alice", "member_added bob", "member_removed bob"]);
    }

    #[tokio::test(start_paused = true)]
    async fn cache_miss_is_deduplicated_per_channel_within_the_window() {
        let w = service(Settings::default());
        let app = app();
        w.cache_miss(&app, "cache-a");
        w.cache_miss(&app, "cache-a");
        w.cache_miss(&app, "cache-b");
        assert_eq!(names(&w), ["cache_miss", "cache_miss"]);
        tokio::time::sleep(Duration::from_secs(6)).await;
        w.cache_miss(&app, "cache-a");
        assert_eq!(names(&w).len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn batching_gathers_events_into_one_record_and_filters_split_bodies() {
        let w = service(Settings::default());
        let mut app = App::new("1", "key", "secret");
        app.webhook_batching = true;
        app.webhooks = vec![
            Target { url: "http://127.0.0.1:9/all".into(), event_types: None },
            Target { url: "http://127.0.0.1:9/members".into(), event_types: Some(vec![Kind::MemberAdded]) },
        ];
        let app = Arc::new(app);
        w.channel_occupied(&app, "presence-x");
        w.member_added(&app, "presence-x", &"u".into());
        assert!(w.outbox().list().is_empty(), "held for the batch window");
        tokio::time::sleep(Duration::from_millis(60)).await;
        let records = w.outbox().list();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].events.len(), 2);
        assert_eq!(records[0].deliveries[0].url, "http://127.0.0.1:9/all");
        assert_eq!(records[1].events.len(), 1);
        assert_eq!(records[1].deliveries[0].url, "http://127.0.0.1:9/members");
        assert!(records[0].body.starts_with(r#"{"time_ms":"#));
        assert_eq!(&*records[0].headers.signature, event::signature("secret", &records[0].body));
    }

    #[tokio::test]
    async fn resend_needs_a_url_when_the_app_has_none() {
        let w = service(Settings::default());
        w.channel_occupied(&app(), "c");
        let id = w.outbox().list()[0].id;
        assert_eq!(w.resend(id, None), Err(ResendError::NoUrl(id)));
        assert_eq!(w.resend(999, None), Err(ResendError::NotFound(999)));
        assert!(matches!(w.resend(id, Some("ftp://x")), Err(ResendError::BadUrl(_))));
    }

    #[test]
    fn urls_must_be_http() {
        assert!(check_url("http://127.0.0.1:3000/pusher/webhook").is_ok());
        assert!(check_url("https://example.test/hook").is_ok());
        assert!(check_url("example.test/hook").is_err());
    }
}
