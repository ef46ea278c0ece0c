//! The event history (issue 13): the last N events each app published, whatever their source,
//! for `GET /pusher-local/events` and `POST /pusher-local/wait/event`. Bounded per app
//! (`--history N`, default [`DEFAULT_CAPACITY`]; 0 keeps none); the oldest record goes first.
//!
//! [`History::push`] is on the publish path: one short lock and one small allocation per event,
//! the data shared with the frame, not copied.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use glob::Pattern;
use serde::Serialize;
use serde_json::Value;

use crate::apps::AppId;
use crate::event::{Event, Source};

/// Records kept per app when `--history` is not given.
pub const DEFAULT_CAPACITY: usize = 1000;

/// One published event as the history keeps it.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// Increasing from 1 across every app: `since` in a query.
    pub seq: u64,
    /// The app.
    pub app_id: AppId,
    /// The channel.
    pub channel: Arc<str>,
    /// The event name.
    pub event: Arc<str>,
    /// The data as published (a string; JSON data is JSON text).
    pub data: Arc<str>,
    /// `api`, `client` or `replay`.
    #[serde(serialize_with = "source_label")]
    pub source: Source,
    /// The excluded socket: the REST call's `socket_id`, a client event's sender.
    #[serde(serialize_with = "socket_text")]
    pub socket_id: Option<crate::protocol::SocketId>,
    /// The sender's presence user id (client events on presence channels).
    pub user_id: Option<Arc<str>>,
    /// When it was published, in ms since the epoch.
    pub time_ms: u64,
    /// Sockets of this node it reached.
    pub delivered: usize,
}

fn source_label<S: serde::Serializer>(source: &Source, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(source.label())
}

fn socket_text<S: serde::Serializer>(socket: &Option<crate::protocol::SocketId>, s: S) -> Result<S::Ok, S::Error> {
    match socket {
        Some(id) => s.collect_str(id),
        None => s.serialize_none(),
    }
}

/// Which records a query wants; every field narrows it.
#[derive(Debug, Default)]
pub struct Query {
    /// One app.
    pub app: Option<AppId>,
    /// Channel glob.
    pub channel: Option<Pattern>,
    /// Event-name glob.
    pub event: Option<Pattern>,
    /// One source.
    pub source: Option<Source>,
    /// Only records after this `seq`.
    pub since: Option<u64>,
    /// JSON the event's data must contain (an object's keys recursively, other values equal).
    pub data: Option<Value>,
}

impl Query {
    /// Whether `record` is wanted.
    pub fn matches(&self, record: &Record) -> bool {
        self.app.as_ref().is_none_or(|a| *a == record.app_id)
            && self.since.is_none_or(|s| record.seq > s)
            && self.source.is_none_or(|s| s == record.source)
            && self.channel.as_ref().is_none_or(|p| p.matches(&record.channel))
            && self.event.as_ref().is_none_or(|p| p.matches(&record.event))
            && self
                .data
                .as_ref()
                .is_none_or(|want| serde_json::from_str::<Value>(&record.data).is_ok_and(|have| contains(&have, want)))
    }
}

/// Whether `have` contains `want`: every key of an object (recursively), every other value equal.
pub fn contains(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Object(have), Value::Object(want)) => {
            want.iter().all(|(k, w)| have.get(k).is_some_and(|h| contains(h, w)))
        }
        _ => have == want,
    }
}

#[derive(Debug, Default)]
struct Store {
    next_seq: u64,
    apps: HashMap<AppId, VecDeque<Arc<Record>>>,
}

/// The history handle (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct History {
    capacity: usize,
    store: Arc<Mutex<Store>>,
}

impl History {
    /// Keeps `capacity` records per app (0: none).
    pub fn new(capacity: usize) -> Self {
        Self { capacity, store: Arc::default() }
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a published event that reached `delivered` sockets here.
    pub fn push(&self, event: &Event, delivered: usize) {
        if self.capacity == 0 {
            return;
        }
        let time_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let mut store = self.lock();
        store.next_seq += 1;
        let record = Arc::new(Record {
            seq: store.next_seq,
            app_id: event.app_id.clone(),
            channel: event.channel.shared().clone(),
            event: event.name.clone(),
            data: event.data.clone(),
            source: event.source,
            socket_id: event.except,
            user_id: event.user_id.clone(),
            time_ms,
            delivered,
        });
        let kept = store.apps.entry(event.app_id.clone()).or_default();
        if kept.len() == self.capacity {
            kept.pop_front();
        }
        kept.push_back(record);
    }

    /// The records `query` wants, oldest first, at most the last `limit`.
    pub fn find(&self, query: &Query, limit: usize) -> Vec<Arc<Record>> {
        let store = self.lock();
        let mut found: Vec<Arc<Record>> =
            store.apps.values().flat_map(|kept| kept.iter().filter(|r| query.matches(r)).cloned()).collect();
        found.sort_by_key(|r| r.seq);
        let skip = found.len().saturating_sub(limit);
        found.drain(..skip);
        found
    }

    /// The first record `query` wants (oldest first).
    pub fn first(&self, query: &Query) -> Option<Arc<Record>> {
        let store = self.lock();
        store.apps.values().filter_map(|kept| kept.iter().find(|r| query.matches(r))).min_by_key(|r| r.seq).cloned()
    }

    /// Forgets the records of `app` (or of every app); returns how many.
    pub fn clear(&self, app: Option<&AppId>) -> usize {
        let mut store = self.lock();
        let mut cleared = 0;
        store.apps.retain(|id, kept| {
            if app.is_none_or(|a| a == id) {
                cleared += kept.len();
                false
            } else {
                true
            }
        });
        cleared
    }

    /// The last `seq` handed out (0 before the first event).
    pub fn last_seq(&self) -> u64 {
        self.lock().next_seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ChannelName;
    use serde_json::json;

    fn event(app: &str, channel: &str, name: &str, data: &str, source: Source) -> Event {
        Event {
            app_id: AppId::new(app),
            channel: ChannelName::parse(channel, 200).unwrap(),
            name: name.into(),
            data: data.into(),
            except: None,
            user_id: None,
            source,
        }
    }

    #[test]
    fn keeps_the_last_n_per_app_and_queries_by_glob_source_since_and_data() {
        let history = History::new(2);
        history.push(&event("1", "orders", "created", r#"{"id":1,"user":{"name":"a"}}"#, Source::Api), 1);
        history.push(&event("1", "orders", "created", r#"{"id":2,"user":{"name":"b"}}"#, Source::Api), 1);
        history.push(&event("1", "private-chat", "client-typing", "{}", Source::Client), 0);
        history.push(&event("2", "orders", "created", "plain text", Source::Replay), 3);
        let all = history.find(&Query::default(), 100);
        assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![2, 3, 4]);
        let q = Query {
            app: Some(AppId::new("1")),
            channel: Some(Pattern::new("ord*").unwrap()),
            data: Some(json!({"user": {"name": "b"}})),
            ..Query::default()
        };
        assert_eq!(history.first(&q).unwrap().seq, 2);
        let q = Query { source: Some(Source::Client), ..Query::default() };
        assert_eq!(history.first(&q).unwrap().event.as_ref(), "client-typing");
        let q = Query { since: Some(3), ..Query::default() };
        assert_eq!(history.find(&q, 10).len(), 1);
        assert_eq!(history.find(&Query::default(), 1)[0].seq, 4);
        assert_eq!(history.clear(Some(&AppId::new("1"))), 2);
        assert_eq!(history.find(&Query::default(), 10).len(), 1);
        assert_eq!(history.last_seq(), 4);
    }

    #[test]
    fn data_subset_matches_objects_recursively_and_other_values_exactly() {
        assert!(contains(&json!({"a": 1, "b": {"c": [1], "d": 2}}), &json!({"b": {"c": [1]}})));
        assert!(!contains(&json!({"a": 1}), &json!({"a": 2})));
        assert!(!contains(&json!([1, 2]), &json!([1])));
        assert!(contains(&json!("x"), &json!("x")));
    }

    #[test]
    fn a_history_of_zero_keeps_nothing() {
        let history = History::new(0);
        history.push(&event("1", "a", "e", "{}", Source::Api), 0);
        assert!(history.find(&Query::default(), 10).is_empty());
    }

    #[test]
    fn a_record_serializes_with_its_source_label_and_socket_text() {
        let history = History::new(5);
        let mut e = event("1", "a", "e", "{}", Source::Client);
        e.except = crate::protocol::SocketId::parse("12.34").unwrap();
        history.push(&e, 0);
        let json = serde_json::to_value(&*history.find(&Query::default(), 1)[0]).unwrap();
        assert_eq!(json["source"], "client");
        assert_eq!(json["socket_id"], "12.34");
        assert_eq!(json["app_id"], "1");
    }
}
