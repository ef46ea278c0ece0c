//! Faults a test injects through `/pusher-local/faults` (issue 13): late or lost deliveries on
//! channels matching a glob, refused connections, HTTP API errors for the next N calls, a
//! skewed clock for signature checks, and (with Redis) this node playing dead.
//!
//! Every hot path asks [`Faults::active`] first: one relaxed atomic load while no fault is set,
//! which is always, outside a test that sets one. Faults with a duration lapse on their own;
//! they are pruned lazily when the table is next read.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use glob::Pattern;
use serde::Serialize;

/// What a fault does.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Kind {
    /// Deliveries on matching channels arrive `ms` late (in publish order).
    Latency {
        /// The channel glob.
        #[serde(serialize_with = "pattern")]
        channel: Pattern,
        /// The delay.
        ms: u64,
    },
    /// That fraction of deliveries on matching channels (each socket drawn alone) is lost.
    Drop {
        /// The channel glob.
        #[serde(serialize_with = "pattern")]
        channel: Pattern,
        /// 0 to 1.
        fraction: f64,
    },
    /// New connections get `pusher:error` with `code` and are closed.
    RefuseConnections {
        /// A 4000–4099 code (4003 app disabled, 4004 over quota…).
        code: u16,
    },
    /// The next `remaining` HTTP API calls answer `status`.
    HttpStatus {
        /// The status.
        status: u16,
        /// Calls still to be answered so.
        remaining: u32,
    },
    /// Signature checks take the time as now + `seconds`.
    ClockSkew {
        /// Seconds, either way.
        seconds: i64,
    },
    /// With Redis: this node stops beating, drops its sockets and refuses new ones.
    NodeDown,
}

fn pattern<S: serde::Serializer>(p: &Pattern, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.as_str())
}

/// One fault in the table.
#[derive(Debug, Clone, Serialize)]
pub struct Fault {
    /// Increasing from 1.
    pub id: u64,
    /// What it does.
    #[serde(flatten)]
    pub kind: Kind,
    /// Only this app's traffic (`None`: every app's).
    pub app_id: Option<String>,
    /// When it lapses (`None`: when cleared).
    #[serde(skip)]
    pub until: Option<Instant>,
}

impl Fault {
    fn live(&self, now: Instant) -> bool {
        self.until.is_none_or(|until| now < until) && !matches!(self.kind, Kind::HttpStatus { remaining: 0, .. })
    }

    fn for_app(&self, app: &str) -> bool {
        self.app_id.as_deref().is_none_or(|a| a == app)
    }

    /// Time left, for listings (`None`: until cleared).
    pub fn expires_in(&self) -> Option<Duration> {
        self.until.map(|until| until.saturating_duration_since(Instant::now()))
    }
}

/// What happens to deliveries on one channel.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DeliveryFault {
    /// Added delay.
    pub latency: Duration,
    /// Fraction lost.
    pub drop: f64,
}

#[derive(Debug, Default)]
struct Inner {
    /// Whether the table may hold a live fault (the hot paths' one check).
    active: AtomicBool,
    next_id: AtomicU64,
    table: Mutex<Vec<Fault>>,
}

/// The fault table (cheap to clone; one per server).
#[derive(Debug, Clone, Default)]
pub struct Faults {
    inner: Arc<Inner>,
}

impl Faults {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether any fault may be set: check this before anything else on a hot path.
    #[inline]
    pub fn active(&self) -> bool {
        self.inner.active.load(Ordering::Relaxed)
    }

    /// The table, with lapsed faults pruned.
    fn table(&self) -> MutexGuard<'_, Vec<Fault>> {
        let mut table = self.inner.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        table.retain(|f| f.live(now));
        if table.is_empty() {
            self.inner.active.store(false, Ordering::Relaxed);
        }
        table
    }

    /// Adds a fault lasting `duration` (`None`: until cleared); returns it with its id.
    pub fn add(&self, kind: Kind, app_id: Option<String>, duration: Option<Duration>) -> Fault {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let fault = Fault { id, kind, app_id, until: duration.map(|d| Instant::now() + d) };
        let mut table = self.table();
        table.push(fault.clone());
        self.inner.active.store(true, Ordering::Relaxed);
        fault
    }

    /// The live faults, oldest first.
    pub fn list(&self) -> Vec<Fault> {
        if !self.active() {
            return Vec::new();
        }
        self.table().clone()
    }

    /// Removes one fault; whether it was there.
    pub fn remove(&self, id: u64) -> bool {
        let mut table = self.table();
        let before = table.len();
        table.retain(|f| f.id != id);
        let removed = table.len() < before;
        if table.is_empty() {
            self.inner.active.store(false, Ordering::Relaxed);
        }
        removed
    }

    /// Removes every fault; returns how many there were.
    pub fn clear(&self) -> usize {
        let mut table = self.table();
        let n = table.len();
        table.clear();
        self.inner.active.store(false, Ordering::Relaxed);
        n
    }

    /// What happens to a delivery of `app`'s `channel` (`None`: nothing).
    pub fn delivery(&self, app: &str, channel: &str) -> Option<DeliveryFault> {
        if !self.active() {
            return None;
        }
        let mut found = None::<DeliveryFault>;
        for fault in self.table().iter().filter(|f| f.for_app(app)) {
            match &fault.kind {
                Kind::Latency { channel: glob, ms } if glob.matches(channel) => {
                    let f = found.get_or_insert_with(DeliveryFault::default);
                    f.latency = f.latency.max(Duration::from_millis(*ms));
                }
                Kind::Drop { channel: glob, fraction } if glob.matches(channel) => {
                    let f = found.get_or_insert_with(DeliveryFault::default);
                    f.drop = f.drop.max(*fraction);
                }
                _ => {}
            }
        }
        found
    }

    /// The close code a new connection of `app` is refused with, if one is.
    pub fn refused_connection(&self, app: &str) -> Option<u16> {
        if !self.active() {
            return None;
        }
        self.table().iter().filter(|f| f.for_app(app)).find_map(|f| match f.kind {
            Kind::RefuseConnections { code } => Some(code),
            _ => None,
        })
    }

    /// The status the next HTTP API call of `app` answers with, if one is due; counts it.
    pub fn http_status(&self, app: Option<&str>) -> Option<u16> {
        if !self.active() {
            return None;
        }
        let mut table = self.table();
        let fault = table.iter_mut().find(|f| {
            matches!(f.kind, Kind::HttpStatus { remaining: 1.., .. })
                && (f.app_id.is_none() || app.is_some_and(|a| f.for_app(a)))
        })?;
        let Kind::HttpStatus { status, remaining } = &mut fault.kind else { return None };
        *remaining -= 1;
        Some(*status)
    }

    /// Seconds to add to the clock for signature checks (0 when not skewed).
    pub fn clock_skew(&self) -> i64 {
        if !self.active() {
            return 0;
        }
        self.table().iter().map(|f| if let Kind::ClockSkew { seconds } = f.kind { seconds } else { 0 }).sum()
    }

    /// Whether this node is playing dead.
    pub fn node_down(&self) -> bool {
        self.active() && self.table().iter().any(|f| matches!(f.kind, Kind::NodeDown))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(s: &str) -> Pattern {
        Pattern::new(s).unwrap()
    }

    #[test]
    fn nothing_is_active_until_a_fault_is_added_and_after_it_is_cleared() {
        let faults = Faults::new();
        assert!(!faults.active());
        assert_eq!(faults.delivery("1", "orders"), None);
        let f = faults.add(Kind::Latency { channel: glob("ord*"), ms: 50 }, None, None);
        assert!(faults.active());
        assert_eq!(faults.delivery("1", "orders").unwrap().latency, Duration::from_millis(50));
        assert_eq!(faults.delivery("1", "chat"), None);
        assert!(faults.remove(f.id));
        assert!(!faults.active());
        assert!(!faults.remove(f.id));
    }

    #[test]
    fn http_status_answers_the_next_n_calls_then_lapses() {
        let faults = Faults::new();
        faults.add(Kind::HttpStatus { status: 503, remaining: 2 }, Some("1".into()), None);
        assert_eq!(faults.http_status(Some("2")), None);
        assert_eq!(faults.http_status(Some("1")), Some(503));
        assert_eq!(faults.http_status(Some("1")), Some(503));
        assert_eq!(faults.http_status(Some("1")), None);
        assert!(faults.list().is_empty());
        assert!(!faults.active());
    }

    #[test]
    fn a_fault_with_a_duration_lapses_and_the_others_stay() {
        let faults = Faults::new();
        faults.add(Kind::ClockSkew { seconds: -700 }, None, Some(Duration::ZERO));
        faults.add(Kind::RefuseConnections { code: 4004 }, Some("1".into()), None);
        assert_eq!(faults.clock_skew(), 0);
        assert_eq!(faults.refused_connection("1"), Some(4004));
        assert_eq!(faults.refused_connection("2"), None);
        assert_eq!(faults.list().len(), 1);
        assert_eq!(faults.clear(), 1);
        assert!(!faults.node_down());
    }

    #[test]
    fn a_listing_says_what_each_fault_is() {
        let faults = Faults::new();
        faults.add(Kind::Drop { channel: glob("*"), fraction: 0.5 }, None, Some(Duration::from_secs(60)));
        let json = serde_json::to_value(faults.list()).unwrap();
        assert_eq!(json[0]["kind"], "drop");
        assert_eq!(json[0]["channel"], "*");
        assert_eq!(json[0]["fraction"], 0.5);
        assert_eq!(json[0]["id"], 1);
    }
}
