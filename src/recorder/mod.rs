//! Record, export, replay and capture of event fixtures.
//!
//! - [`Recorder`] (here): taps `AppState::publish` while a recording runs (`--record`, or one
//!   started from the console: [`slot`] holds it). Every event goes to
//!   one writer thread that owns the SQLite connection ([`store`]); the thread drains whatever
//!   has queued up and commits it as one transaction (group commit), then acknowledges. A
//!   REST trigger waits for that acknowledgement before it answers, so an acknowledged event is
//!   on disk even if the process is then killed; client events are not waited for. A write
//!   that fails stops the recording (reported once, with SQLite's reason) and never the events:
//!   they were delivered, and the trigger still answers 200.
//! - [`fixture`]: the JSON fixture format.
//! - [`watch`]: the fixtures folder, loaded and watched.
//! - [`replay`]: timing (speed, loop, from/to, channel map) and the publishers (signed HTTP
//!   API, or the running server itself).
//! - [`capture`]: a WebSocket client that turns what a server sends into a fixture.

pub mod capture;
pub mod fixture;
pub mod remote;
pub mod replay;
pub mod replays;
pub mod slot;
pub mod store;
pub mod watch;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;
use tokio::time::Instant;

pub use fixture::{Fixture, FixtureError, FixtureEvent};
pub use store::{Store, StoreError, StoredEvent};

/// Most events committed in one transaction.
const GROUP_MAX: usize = 4096;

/// A recorded event failed to reach the disk.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RecordError {
    /// The transaction failed.
    #[error("recording failed: {0}")]
    Write(Arc<StoreError>),
    /// The recorder has stopped.
    #[error("recording has stopped")]
    Stopped,
}

/// What the recorder is told to store about one event.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The app.
    pub app_id: String,
    /// The channel.
    pub channel: String,
    /// The event name.
    pub event: String,
    /// The data.
    pub data: Arc<str>,
    /// The socket that sent it or is excluded.
    pub socket_id: Option<String>,
    /// The presence user that sent it.
    pub user_id: Option<Arc<str>>,
    /// `api`, `client` or `replay`.
    pub source: &'static str,
}

/// Resolves once the event is committed (or at once when nothing is recorded).
#[must_use = "a trigger is acknowledged only after its events are committed"]
#[derive(Debug)]
pub struct Commit(Option<oneshot::Receiver<Result<(), RecordError>>>);

impl Commit {
    /// Nothing to wait for.
    pub fn none() -> Commit {
        Commit(None)
    }

    /// Waits for the commit.
    ///
    /// # Errors
    /// [`RecordError`] when the event could not be stored.
    pub async fn wait(self) -> Result<(), RecordError> {
        match self.0 {
            None => Ok(()),
            Some(rx) => rx.await.unwrap_or(Err(RecordError::Stopped)),
        }
    }
}

enum Command {
    Event(StoredEvent, Option<oneshot::Sender<Result<(), RecordError>>>),
    Finish(oneshot::Sender<Result<u64, Arc<StoreError>>>),
}

/// Failures of events nobody waits for (client events) are reported here.
pub type ErrorReport = Box<dyn Fn(&StoreError) + Send + 'static>;

/// A recording in progress. Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    tx: Arc<Mutex<Option<mpsc::Sender<Command>>>>,
    started: Instant,
    name: Arc<str>,
    path: Arc<Path>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").field("name", &self.name).field("path", &self.path).finish_non_exhaustive()
    }
}

fn wall_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

impl Recorder {
    /// Opens `path` on a new writer thread and starts recording `name`; `holder` names this
    /// server (pid and address) to anyone who tries to delete the recording meanwhile.
    ///
    /// # Errors
    /// [`StoreError`] when the database cannot be opened or the name is taken.
    pub async fn start(
        path: PathBuf,
        name: String,
        holder: String,
        on_error: ErrorReport,
    ) -> Result<Recorder, StoreError> {
        let (ready_tx, ready_rx) = oneshot::channel();
        let (tx, rx) = mpsc::channel::<Command>();
        let thread_path = path.clone();
        let thread_name = name.clone();
        let spawned = std::thread::Builder::new().name("pusher-local-recorder".into()).spawn(move || {
            let opened = Store::open(&thread_path).and_then(|store| {
                let id = store.begin(&thread_name, wall_ms(), &holder)?;
                Ok((store, id))
            });
            match opened {
                Ok((store, id)) => {
                    let _ = ready_tx.send(Ok(()));
                    write_loop(store, id, rx, on_error);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        });
        spawned.map_err(StoreError::Thread)?;
        // The thread answers before it ends, unless it panicked.
        ready_rx.await.unwrap_or_else(|_| Err(thread_died()))?;
        Ok(Recorder {
            tx: Arc::new(Mutex::new(Some(tx))),
            started: Instant::now(),
            name: name.into(),
            path: path.into(),
        })
    }

    /// The recording's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues one event; the [`Commit`] resolves when it is on disk (`wait = true`), or at once.
    pub fn record(&self, entry: Entry, wait: bool) -> Commit {
        // The lock is held only for the send (never across an await); taking the time under
        // it keeps offsets in the order the writer receives the events.
        let guard = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        let stored = StoredEvent {
            offset_us: self.started.elapsed().as_micros() as i64,
            time_ms: wall_ms(),
            app_id: entry.app_id,
            channel: entry.channel,
            event: entry.event,
            data: entry.data.to_string(),
            socket_id: entry.socket_id,
            user_id: entry.user_id.map(|u| u.to_string()),
            source: entry.source.to_owned(),
        };
        let (ack, commit) = if wait {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Commit(Some(rx)))
        } else {
            (None, Commit::none())
        };
        // Sending on an unbounded std channel never blocks the async worker.
        match guard.as_ref().map(|tx| tx.send(Command::Event(stored, ack)).is_ok()) {
            Some(true) => commit,
            Some(false) | None => Commit(Some(stopped())),
        }
    }

    /// Ends the recording after everything queued is committed; returns the number of events.
    ///
    /// # Errors
    /// [`RecordError`] when the last commit failed.
    pub async fn finish(&self) -> Result<u64, RecordError> {
        let (tx, rx) = oneshot::channel();
        let sender = self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(sender) = sender else { return Err(RecordError::Stopped) };
        if sender.send(Command::Finish(tx)).is_err() {
            return Err(RecordError::Stopped);
        }
        drop(sender);
        rx.await.unwrap_or_else(|_| Err(Arc::new(thread_died()))).map_err(RecordError::Write)
    }
}

fn stopped() -> oneshot::Receiver<Result<(), RecordError>> {
    let (tx, rx) = oneshot::channel();
    let _ = tx.send(Err(RecordError::Stopped));
    rx
}

fn thread_died() -> StoreError {
    StoreError::Thread(std::io::Error::other("the recorder thread ended unexpectedly"))
}

/// The writer thread: block for one command, take what else is queued, commit them together.
/// After a failed commit nothing more is written: the failure is reported once, later events
/// are answered [`RecordError::Stopped`] at once, and the finish reports the failure.
fn write_loop(mut store: Store, id: i64, rx: mpsc::Receiver<Command>, on_error: ErrorReport) {
    let mut failed: Option<Arc<StoreError>> = None;
    let mut total: u64 = 0;
    let mut batch = Vec::with_capacity(64);
    let mut acks = Vec::with_capacity(64);
    while let Ok(first) = rx.recv() {
        let mut finish = None;
        let mut next = Some(first);
        while let Some(command) = next.take() {
            match command {
                Command::Event(event, ack) => {
                    batch.push(event);
                    acks.extend(ack);
                }
                Command::Finish(reply) => {
                    finish = Some(reply);
                    break;
                }
            }
            if batch.len() < GROUP_MAX {
                next = rx.try_recv().ok();
            }
        }
        let result = match &failed {
            Some(_) => Err(RecordError::Stopped),
            None if batch.is_empty() => Ok(()),
            None => store.append(id, total as i64, &batch).map_err(|e| {
                let e = Arc::new(e);
                on_error(&e);
                failed = Some(e.clone());
                RecordError::Write(e)
            }),
        };
        if result.is_ok() {
            total += batch.len() as u64;
        }
        for ack in acks.drain(..) {
            let _ = ack.send(result.clone());
        }
        batch.clear();
        if let Some(reply) = finish {
            let ended = match failed {
                Some(e) => Err(e),
                None => store.end(id, wall_ms()).map_err(Arc::new),
            };
            let _ = reply.send(ended.map(|()| total));
            return;
        }
    }
    // Every sender is gone without a finish (the server stopped abruptly): the recording
    // stays without an end time; its events are all committed.
}

/// A default recording name from the local time, `rec-2026-12-01-18-30-05`.
pub fn default_name() -> String {
    chrono::Local::now().format("rec-%Y-%m-%d-%H-%M-%S").to_string()
}

/// The fixture for a recording: offsets in milliseconds from the start of the recording, data
/// bytes as stored, metadata kept.
pub fn fixture_of(summary: &store::Summary, events: Vec<StoredEvent>) -> Fixture {
    Fixture {
        name: Some(summary.name.clone()),
        description: Some(format!(
            "recorded by pusher-local {}",
            chrono::DateTime::from_timestamp_millis(summary.started_at_ms)
                .map(|t| t.with_timezone(&chrono::Local).format("on %Y-%m-%d at %H:%M:%S").to_string())
                .unwrap_or_default()
        )),
        events: events
            .into_iter()
            .map(|e| FixtureEvent {
                offset: std::time::Duration::from_micros(e.offset_us.max(0) as u64),
                channel: e.channel,
                event: e.event,
                data: e.data,
                app_id: Some(e.app_id),
                socket_id: e.socket_id,
                user_id: e.user_id,
                source: Some(e.source),
                time_ms: Some(e.time_ms),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(data: &str, source: &'static str) -> Entry {
        Entry {
            app_id: "1".into(),
            channel: "c".into(),
            event: "e".into(),
            data: data.into(),
            socket_id: None,
            user_id: None,
            source,
        }
    }

    #[tokio::test]
    async fn acknowledged_events_are_committed_in_order_and_finish_counts_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let recorder = Recorder::start(path.clone(), "t".into(), "test".into(), Box::new(|_| {})).await.unwrap();
        let commits: Vec<Commit> = (0..50).map(|i| recorder.record(entry(&i.to_string(), "api"), true)).collect();
        let _ = recorder.record(entry("client", "client"), false);
        for c in commits {
            c.wait().await.unwrap();
        }
        // Acknowledged means visible to another connection already.
        let (summary, events) = Store::open_existing(&path).unwrap().read("t").unwrap();
        assert!(summary.events >= 50);
        assert_eq!(
            events[..50].iter().map(|e| e.data.as_str()).collect::<Vec<_>>(),
            (0..50).map(|i| i.to_string()).collect::<Vec<_>>()
        );
        assert_eq!(recorder.finish().await.unwrap(), 51);
        assert!(matches!(recorder.record(entry("late", "api"), true).wait().await, Err(RecordError::Stopped)));
        let list = Store::open_existing(&path).unwrap().list().unwrap();
        assert!(list[0].ended_at_ms.is_some());
    }

    #[tokio::test]
    async fn a_taken_name_or_a_foreign_file_fails_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let first = Recorder::start(path.clone(), "same".into(), "test".into(), Box::new(|_| {})).await.unwrap();
        first.finish().await.unwrap();
        let e = Recorder::start(path, "same".into(), "test".into(), Box::new(|_| {})).await.unwrap_err();
        assert!(matches!(e, StoreError::NameTaken(_)), "{e:?}");
        let garbage = dir.path().join("g.db");
        std::fs::write(&garbage, vec![7u8; 4096]).unwrap();
        let e = Recorder::start(garbage, "x".into(), "test".into(), Box::new(|_| {})).await.unwrap_err();
        assert!(matches!(e, StoreError::NotADatabase(_)), "{e:?}");
    }
}
