//! Replays run by the server itself (`--replay FIXTURE` at start-up, `POST
//! /pusher-local/replays`): each is a task that publishes a fixture through
//! `AppState::publish` with `Source::Replay`, the same path every other event takes. They stop
//! on `DELETE /pusher-local/replays/{id}` or at shutdown.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::apps::AppId;
use crate::printer::{Line, RecorderLine};
use crate::protocol::ChannelName;
use crate::recorder::replay::{self, Plan, Progress, Publisher, ReplayError};
use crate::recorder::{Fixture, FixtureEvent};
use crate::state::{AppState, Event, Source};

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

/// The replays in progress. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Replays {
    table: Arc<Mutex<Table>>,
}

/// Publishes into the running server.
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

impl Replays {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts replaying `fixture` (named `name`) into app `app_id`; returns the replay's id.
    pub fn start(&self, state: &AppState, name: &str, fixture: Arc<Fixture>, plan: Plan, app_id: AppId) -> u64 {
        let stop = state.shutdown().token().child_token();
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
        state.printer().line(Line::Recorder(RecorderLine::ReplayStarted {
            id,
            fixture: name.to_owned(),
            events: total,
            speed: plan.speed.to_string(),
            looped: plan.looped,
        }));
        let replays = self.clone();
        let publisher = StatePublisher { state: state.clone(), app_id };
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
            publisher.state.printer().line(Line::Recorder(line));
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
