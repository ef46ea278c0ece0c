//! Replays run by the server itself (`--replay FIXTURE` at start-up, `POST
//! /pusher-local/replays`): each is a task that runs [`replay::run`] into a [`Publisher`] (the
//! server's is `AppState::publish` with `Source::Replay`, the same path every other event
//! takes) and keeps its progress for the listing. They stop on `DELETE
//! /pusher-local/replays/{id}` or when their token is cancelled at shutdown.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::apps::AppId;
use crate::printer::{Line, Printer, RecorderLine};

use super::replay::{self, Plan, Progress, Publisher};
use super::Fixture;

/// A running replay, as listed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReplayInfo {
    /// Its id.
    pub id: u64,
    /// The fixture.
    pub fixture: String,
    /// The app it publishes into.
    pub app_id: String,
    /// Events sent in this pass.
    pub sent: usize,
    /// Events in one pass.
    pub total: usize,
    /// Passes completed.
    pub passes: u64,
    /// Time left in this pass, ms.
    pub remaining_ms: u64,
    /// `1x`, `2x`, `max`.
    pub speed: String,
    /// Loops until stopped.
    #[serde(rename = "loop")]
    pub looped: bool,
}

#[derive(Debug)]
struct Running {
    info: ReplayInfo,
    stop: CancellationToken,
}

#[derive(Debug, Default)]
struct Table {
    next_id: u64,
    running: BTreeMap<u64, Running>,
}

/// One replay to run: a fixture, how to play it, and the app it is for.
#[derive(Debug)]
pub struct Job {
    /// The fixture's name, as listed.
    pub name: String,
    /// The fixture.
    pub fixture: Arc<Fixture>,
    /// Speed, loop, offsets, channel map.
    pub plan: Plan,
    /// The app it publishes into.
    pub app_id: AppId,
}

/// The replays in progress. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Replays {
    table: Arc<Mutex<Table>>,
}

impl Replays {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts `job` into `publisher` until it ends or `stop` is cancelled; returns the
    /// replay's id. Its start and end are printed.
    pub fn start(
        &self,
        job: Job,
        publisher: impl Publisher + 'static,
        printer: &Printer,
        stop: CancellationToken,
    ) -> u64 {
        let Job { name, fixture, plan, app_id } = job;
        let name = name.as_str();
        let total = replay::schedule(&fixture, &plan).len();
        let info = ReplayInfo {
            id: 0,
            fixture: name.to_owned(),
            app_id: app_id.to_string(),
            sent: 0,
            total,
            passes: 0,
            remaining_ms: 0,
            speed: plan.speed.to_string(),
            looped: plan.looped,
        };
        let id = {
            let mut table = self.lock();
            table.next_id += 1;
            let id = table.next_id;
            table.running.insert(id, Running { info: ReplayInfo { id, ..info }, stop: stop.clone() });
            id
        };
        printer.line(Line::Recorder(RecorderLine::ReplayStarted {
            id,
            fixture: name.to_owned(),
            events: total,
            speed: plan.speed.to_string(),
            looped: plan.looped,
        }));
        let replays = self.clone();
        let printer = printer.clone();
        let fixture_name = name.to_owned();
        tokio::spawn(async move {
            let sent = std::sync::atomic::AtomicU64::new(0);
            let on_progress = |p: Progress| {
                sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Some(r) = replays.lock().running.get_mut(&id) {
                    r.info.sent = p.sent;
                    r.info.passes = p.passes;
                    r.info.remaining_ms = p.remaining.as_millis() as u64;
                }
            };
            let result = replay::run(&fixture, &plan, &publisher, &stop, on_progress).await;
            replays.lock().running.remove(&id);
            let line = match result {
                Ok(out) => RecorderLine::ReplayEnded {
                    id,
                    fixture: fixture_name,
                    sent: out.sent,
                    stopped: out.stopped,
                    error: None,
                },
                Err(e) => RecorderLine::ReplayEnded {
                    id,
                    fixture: fixture_name,
                    sent: sent.load(std::sync::atomic::Ordering::Relaxed),
                    stopped: false,
                    error: Some(e.to_string()),
                },
            };
            printer.line(Line::Recorder(line));
        });
        id
    }

    /// Stops one replay; false when there is none with this id.
    pub fn stop(&self, id: u64) -> bool {
        match self.lock().running.get(&id) {
            Some(r) => {
                r.stop.cancel();
                true
            }
            None => false,
        }
    }

    /// Stops every replay; returns how many.
    pub fn stop_all(&self) -> usize {
        let table = self.lock();
        table.running.values().for_each(|r| r.stop.cancel());
        table.running.len()
    }

    /// The running replays, by id.
    pub fn list(&self) -> Vec<ReplayInfo> {
        self.lock().running.values().map(|r| r.info.clone()).collect()
    }
}
