//! Counters for `GET /pusher-local/metrics` (issue 13), in the Prometheus text format that
//! soketi's and sockudo's users scrape: events published by source, HTTP API calls by status and
//! webhook deliveries by outcome, per app. Connections, channels and frames in and out are not
//! counted here but read from the registry when scraped (each socket counts its own frames).
//!
//! Each app's counters are made once at start, so counting is an atomic add or a short lock on
//! that app's own counters, found in a short list (apps are few) by their id's pointer first.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::apps::AppId;
use crate::event::Source;

/// One app's counters.
#[derive(Debug, Default)]
pub struct Counters {
    /// Events published, by [`Source`] (api, client, replay, console).
    published: [AtomicU64; 4],
    /// HTTP API answers by status.
    api_calls: Mutex<BTreeMap<u16, u64>>,
    /// Webhook deliveries by outcome (`delivered`, `failed`, `dropped`, `abandoned`).
    webhooks: Mutex<BTreeMap<&'static str, u64>>,
}

fn index(source: Source) -> usize {
    match source {
        Source::Api => 0,
        Source::Client => 1,
        Source::Replay => 2,
        Source::Console => 3,
    }
}

/// What the registry knows of an app when scraped.
#[derive(Debug, Default, Clone, Copy)]
pub struct Gauges {
    /// Open connections on this node.
    pub connections: usize,
    /// Occupied channels on this node.
    pub channels: usize,
    /// Frames received from clients, ever.
    pub frames_in: u64,
    /// Frames sent to clients, ever.
    pub frames_out: u64,
}

/// Every app's counters (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    apps: Arc<Vec<(AppId, Counters)>>,
    /// API calls that named no known app.
    unknown: Arc<Counters>,
}

impl Metrics {
    /// Counters for these apps.
    pub fn new<'a>(apps: impl IntoIterator<Item = &'a AppId>) -> Self {
        Self {
            apps: Arc::new(apps.into_iter().map(|id| (id.clone(), Counters::default())).collect()),
            unknown: Arc::default(),
        }
    }

    /// The counters of `app`: the same `AppId` (one pointer comparison) or an equal one.
    fn find(&self, app: &AppId) -> Option<&Counters> {
        let apps = self.apps.iter();
        let mut equal = None;
        for (id, counters) in apps {
            if id.same(app) {
                return Some(counters);
            }
            if equal.is_none() && id == app {
                equal = Some(counters);
            }
        }
        equal
    }

    fn app(&self, app: Option<&AppId>) -> &Counters {
        app.and_then(|a| self.find(a)).unwrap_or(&self.unknown)
    }

    /// An event of `app` was published.
    pub fn published(&self, app: &AppId, source: Source) {
        if let Some(counters) = self.find(app) {
            counters.published[index(source)].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The HTTP API answered `status` (`app`: the app named, when known).
    pub fn api_call(&self, app: Option<&AppId>, status: u16) {
        let mut calls = self.app(app).api_calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *calls.entry(status).or_default() += 1;
    }

    /// A webhook delivery of `app` ended so.
    pub fn webhook(&self, app: &AppId, outcome: &'static str) {
        let mut counts = self.app(Some(app)).webhooks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *counts.entry(outcome).or_default() += 1;
    }

    /// The Prometheus text exposition (format 0.0.4), with `gauges` read from the registry.
    pub fn render(&self, gauges: &BTreeMap<AppId, Gauges>) -> String {
        let mut out = String::new();
        let ids: Vec<&AppId> = {
            let mut ids: Vec<&AppId> = self.apps.iter().map(|(id, _)| id).collect();
            ids.sort();
            ids
        };
        let gauge = |out: &mut String, name: &str, kind: &str, help: &str, value: &dyn Fn(&Gauges) -> u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for id in &ids {
                let g = gauges.get(*id).copied().unwrap_or_default();
                let _ = writeln!(out, "{name}{{app_id=\"{}\"}} {}", escape(id.as_str()), value(&g));
            }
        };
        gauge(&mut out, "pusher_local_connections", "gauge", "Open connections on this node.", &|g| {
            g.connections as u64
        });
        gauge(&mut out, "pusher_local_channels", "gauge", "Occupied channels on this node.", &|g| g.channels as u64);
        gauge(&mut out, "pusher_local_messages_in_total", "counter", "Frames received from clients.", &|g| g.frames_in);
        gauge(&mut out, "pusher_local_messages_out_total", "counter", "Frames sent to clients.", &|g| g.frames_out);
        let _ = writeln!(
            out,
            "# HELP pusher_local_events_published_total Events published, by source.\n\
             # TYPE pusher_local_events_published_total counter"
        );
        for id in &ids {
            for source in [Source::Api, Source::Client, Source::Replay, Source::Console] {
                let n = self.app(Some(*id)).published[index(source)].load(Ordering::Relaxed);
                let (app, label) = (escape(id.as_str()), source.label());
                let _ = writeln!(out, "pusher_local_events_published_total{{app_id=\"{app}\",source=\"{label}\"}} {n}");
            }
        }
        let _ = writeln!(
            out,
            "# HELP pusher_local_api_calls_total HTTP API calls, by status.\n\
             # TYPE pusher_local_api_calls_total counter"
        );
        let every = ids.iter().map(|id| (id.as_str(), self.app(Some(*id)))).chain([("", &*self.unknown)]);
        for (id, counters) in every.clone() {
            let calls = counters.api_calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for (status, n) in calls.iter() {
                let app = escape(id);
                let _ = writeln!(out, "pusher_local_api_calls_total{{app_id=\"{app}\",status=\"{status}\"}} {n}");
            }
        }
        let _ = writeln!(
            out,
            "# HELP pusher_local_webhooks_total Webhook deliveries, by outcome.\n\
             # TYPE pusher_local_webhooks_total counter"
        );
        for (id, counters) in every {
            let counts = counters.webhooks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            for (outcome, n) in counts.iter() {
                let app = escape(id);
                let _ = writeln!(out, "pusher_local_webhooks_total{{app_id=\"{app}\",outcome=\"{outcome}\"}} {n}");
            }
        }
        out
    }
}

/// A label value as the text format wants it.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_per_app_with_help_and_type() {
        let (one, two) = (AppId::new("1"), AppId::new("2"));
        let metrics = Metrics::new([&one, &two]);
        metrics.published(&one, Source::Api);
        metrics.published(&one, Source::Client);
        metrics.published(&one, Source::Client);
        metrics.api_call(Some(&one), 200);
        metrics.api_call(Some(&one), 200);
        metrics.api_call(None, 404);
        metrics.webhook(&two, "delivered");
        let gauges =
            BTreeMap::from([(one.clone(), Gauges { connections: 3, channels: 2, frames_in: 7, frames_out: 9 })]);
        let text = metrics.render(&gauges);
        for line in [
            "# TYPE pusher_local_connections gauge",
            "pusher_local_connections{app_id=\"1\"} 3",
            "pusher_local_connections{app_id=\"2\"} 0",
            "pusher_local_channels{app_id=\"1\"} 2",
            "pusher_local_messages_in_total{app_id=\"1\"} 7",
            "pusher_local_messages_out_total{app_id=\"1\"} 9",
            "pusher_local_events_published_total{app_id=\"1\",source=\"client\"} 2",
            "pusher_local_events_published_total{app_id=\"1\",source=\"replay\"} 0",
            "pusher_local_api_calls_total{app_id=\"1\",status=\"200\"} 2",
            "pusher_local_api_calls_total{app_id=\"\",status=\"404\"} 1",
            "pusher_local_webhooks_total{app_id=\"2\",outcome=\"delivered\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
