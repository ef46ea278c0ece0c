//! The local webhook outbox: every webhook the server would send, newest last, bounded
//! (the oldest record is dropped when full). Kept also when no URL is configured, so a
//! developer can see what would have gone out and resend it.
//!
//! A record with no URL to go to is kept unsigned and its body is built the first time it is
//! read (`list`, `get`): the same bytes and signature, from the same `time_ms`, but nothing is
//! serialised or hashed on the delivery path for webhooks that nobody receives.
//!
//! A `std::sync::Mutex` guards the store: every access is a short copy in or out, never
//! held across an `.await`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

use super::event::{self, WebhookEvent};
use crate::apps::{App, AppId};
use crate::changes::Changes;
use crate::metrics::Metrics;

/// Where one delivery (one record to one URL) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Queued or being attempted.
    Pending,
    /// The last attempt failed in a way worth retrying; another is scheduled.
    Retrying,
    /// A 2xx answer.
    Delivered,
    /// A non-retryable answer, or retries ran out of time.
    Failed,
    /// The send queue was full; never attempted.
    Dropped,
    /// The server stopped before the delivery finished.
    Abandoned,
}

/// One HTTP attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// 1, 2, … across retries and resends to the same URL.
    pub attempt: u32,
    /// Wall-clock start, in ms since the epoch.
    pub at_ms: u64,
    /// How long it took.
    pub elapsed_ms: u64,
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
    /// The transport error, when there was none.
    pub error: Option<String>,
}

/// One URL a record is sent to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// The endpoint.
    pub url: String,
    /// Where it stands.
    pub state: DeliveryState,
    /// Every attempt so far.
    pub attempts: Vec<Attempt>,
}

/// The headers sent with a webhook (the signature is an HMAC, not the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Headers {
    /// Always `application/json`.
    #[serde(rename = "Content-Type")]
    pub content_type: &'static str,
    /// The app key.
    #[serde(rename = "X-Pusher-Key")]
    pub key: Arc<str>,
    /// Hex HMAC-SHA256 of the body.
    #[serde(rename = "X-Pusher-Signature")]
    pub signature: Arc<str>,
}

/// One webhook: one body, sent to zero or more URLs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    /// Increasing from 1.
    pub id: u64,
    /// The app.
    pub app_id: AppId,
    /// `time_ms` of the body.
    pub time_ms: u64,
    /// The events in the body.
    pub events: Vec<WebhookEvent>,
    /// The exact body bytes.
    pub body: Arc<str>,
    /// The headers.
    pub headers: Headers,
    /// One per URL; empty when the app has no webhook URL.
    pub deliveries: Vec<Delivery>,
}

impl Record {
    /// Builds the body and its signature when they were left for later.
    fn sign_with(&mut self, app: &App) {
        let body = event::body(self.time_ms, &self.events);
        self.headers.signature = event::signature(app.secret.expose(), &body).into();
        self.body = body.into();
    }
}

#[derive(Debug)]
struct Stored {
    record: Record,
    /// Set while the body and signature are still to be built (with this app's secret).
    unsigned: Option<Arc<App>>,
}

impl Stored {
    fn signed(&mut self) -> &mut Record {
        if let Some(app) = self.unsigned.take() {
            self.record.sign_with(&app);
        }
        &mut self.record
    }
}

#[derive(Debug)]
struct Store {
    next_id: u64,
    capacity: usize,
    records: VecDeque<Stored>,
}

impl Store {
    fn position(&self, id: u64) -> Option<usize> {
        self.records.binary_search_by_key(&id, |r| r.record.id).ok()
    }
}

/// The outbox handle (cheap to clone).
#[derive(Debug, Clone)]
pub struct Outbox {
    store: Arc<Mutex<Store>>,
    /// Counts each delivery's outcome.
    metrics: Metrics,
    /// Wakes `/pusher-local/wait/webhook` when a record arrives or a delivery moves on.
    changes: Changes,
}

impl DeliveryState {
    /// The metrics label of a state a delivery ends in (`None`: not an end).
    fn outcome(self) -> Option<&'static str> {
        match self {
            DeliveryState::Pending | DeliveryState::Retrying => None,
            DeliveryState::Delivered => Some("delivered"),
            DeliveryState::Failed => Some("failed"),
            DeliveryState::Dropped => Some("dropped"),
            DeliveryState::Abandoned => Some("abandoned"),
        }
    }
}

impl Outbox {
    /// An empty outbox keeping at most `capacity` records.
    pub fn new(capacity: usize) -> Self {
        Self::watched(capacity, Metrics::default(), Changes::default())
    }

    /// An empty outbox that counts outcomes in `metrics` and tells `changes` of every change.
    pub fn watched(capacity: usize, metrics: Metrics, changes: Changes) -> Self {
        let store = Store { next_id: 1, capacity: capacity.max(1), records: VecDeque::new() };
        Self { store: Arc::new(Mutex::new(store)), metrics, changes }
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        // Nothing panics while holding the lock (plain pushes and lookups), so poisoning is
        // not expected; if it happened, the data is still consistent enough to show.
        self.store.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stores a record (its `id` is assigned here) and returns the id.
    pub fn insert(&self, record: Record) -> u64 {
        self.push(record, None)
    }

    /// Stores a record whose `body` and signature are built with `app`'s secret the first time
    /// it is read; for records that no URL receives.
    pub fn insert_unsigned(&self, record: Record, app: Arc<App>) -> u64 {
        self.push(record, Some(app))
    }

    fn push(&self, mut record: Record, unsigned: Option<Arc<App>>) -> u64 {
        let mut store = self.lock();
        record.id = store.next_id;
        store.next_id += 1;
        if store.records.len() >= store.capacity {
            store.records.pop_front();
        }
        let id = record.id;
        store.records.push_back(Stored { record, unsigned });
        drop(store);
        self.changes.changed();
        id
    }

    /// Every record kept, oldest first.
    pub fn list(&self) -> Vec<Record> {
        self.lock().records.iter_mut().map(|r| r.signed().clone()).collect()
    }

    /// One record.
    pub fn get(&self, id: u64) -> Option<Record> {
        let mut store = self.lock();
        let i = store.position(id)?;
        Some(store.records[i].signed().clone())
    }

    /// Forgets every record (ids keep increasing).
    pub fn clear(&self) {
        self.lock().records.clear();
    }

    /// Runs `f` on the delivery of record `id` to `url` (added if new); counts the outcome it
    /// ends in, if it ends, and wakes the waiters.
    fn with_delivery<T>(&self, id: u64, url: &str, f: impl FnOnce(&mut Delivery) -> T) -> Option<T> {
        let mut store = self.lock();
        let i = store.position(id)?;
        let record = store.records[i].signed();
        let app_id = record.app_id.clone();
        let delivery = match record.deliveries.iter().position(|d| d.url == url) {
            Some(d) => &mut record.deliveries[d],
            None => {
                record.deliveries.push(Delivery {
                    url: url.to_owned(),
                    state: DeliveryState::Pending,
                    attempts: Vec::new(),
                });
                record.deliveries.last_mut().expect("just pushed")
            }
        };
        let before = delivery.state;
        let answer = f(delivery);
        let after = delivery.state;
        drop(store);
        if let (Some(outcome), true) = (after.outcome(), after != before) {
            self.metrics.webhook(&app_id, outcome);
        }
        self.changes.changed();
        Some(answer)
    }

    /// Marks the delivery of record `id` to `url` (adding it if new) as `state`; returns the
    /// number of attempts made so far, or `None` when the record has been dropped.
    pub fn set_state(&self, id: u64, url: &str, state: DeliveryState) -> Option<u32> {
        self.with_delivery(id, url, |d| {
            d.state = state;
            d.attempts.len() as u32
        })
    }

    /// Appends an attempt and the state it leaves the delivery in. The attempt is numbered
    /// here (one more than the attempts so far), so a resend racing a retry loop to the same
    /// URL still gets distinct numbers; returns that number.
    pub fn record_attempt(&self, id: u64, url: &str, mut attempt: Attempt, state: DeliveryState) -> u32 {
        let fallback = attempt.attempt;
        self.with_delivery(id, url, |d| {
            attempt.attempt = d.attempts.len() as u32 + 1;
            let number = attempt.attempt;
            d.attempts.push(attempt);
            d.state = state;
            number
        })
        .unwrap_or(fallback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::event::Kind;

    fn record() -> Record {
        Record {
            id: 0,
            app_id: AppId::new("1"),
            time_ms: 1,
            events: vec![WebhookEvent::new(Kind::ChannelOccupied, "c")],
            body: "{}".into(),
            headers: Headers { content_type: "application/json", key: "k".into(), signature: "s".into() },
            deliveries: vec![],
        }
    }

    #[test]
    fn bounded_oldest_dropped_ids_keep_increasing() {
        let outbox = Outbox::new(2);
        assert_eq!(outbox.insert(record()), 1);
        assert_eq!(outbox.insert(record()), 2);
        assert_eq!(outbox.insert(record()), 3);
        let ids: Vec<u64> = outbox.list().iter().map(|r| r.id).collect();
        assert_eq!(ids, [2, 3]);
        assert!(outbox.get(1).is_none());
        assert_eq!(outbox.set_state(1, "http://x", DeliveryState::Pending), None);
    }

    #[test]
    fn unsigned_records_get_the_same_body_and_signature_when_read() {
        let outbox = Outbox::new(10);
        let app = App::new("1", "k", "secret");
        let mut unsigned = record();
        unsigned.time_ms = 1_700_000_000_000;
        unsigned.body = "".into();
        unsigned.headers.signature = "".into();
        let mut expected = unsigned.clone();
        expected.sign_with(&app);
        let id = outbox.insert_unsigned(unsigned, Arc::new(app));
        let read = outbox.get(id).unwrap();
        assert_eq!(read.body, expected.body);
        assert!(read.body.starts_with(r#"{"time_ms":1700000000000,"events":[{"name":"channel_occupied""#));
        assert_eq!(&*read.headers.signature, event::signature("secret", &read.body));
        assert_eq!(outbox.list()[0], read);
    }

    #[test]
    fn attempts_accumulate_per_url() {
        let outbox = Outbox::new(10);
        let id = outbox.insert(record());
        assert_eq!(outbox.set_state(id, "http://a", DeliveryState::Pending), Some(0));
        let attempt = Attempt { attempt: 1, at_ms: 5, elapsed_ms: 1, status: Some(500), error: None };
        outbox.record_attempt(id, "http://a", attempt, DeliveryState::Retrying);
        assert_eq!(outbox.set_state(id, "http://a", DeliveryState::Pending), Some(1));
        let r = outbox.get(id).unwrap();
        assert_eq!(r.deliveries.len(), 1);
        assert_eq!(r.deliveries[0].attempts[0].status, Some(500));
        assert_eq!(serde_json::to_value(&r).unwrap()["headers"]["X-Pusher-Key"], "k");
    }
}
