//! `Slot`: the recording in progress, if any, switched while the server runs: `--record` fills
//! it at start-up, the control API (`POST` and `DELETE /pusher-local/recording`, the console's
//! Record button) starts and stops recordings later, and the drain at shutdown empties it.
//!
//! `AppState::publish` asks the slot for every event, so a server that is not recording pays
//! one atomic load for it and takes no lock. While recording, the event is queued under a
//! shared read lock; a stop takes the recorder out under the write lock and then finishes it,
//! so every event queued before the stop is committed before the stop answers, and none after
//! it is queued.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use super::{Commit, Entry, RecordError, Recorder, StoreError};
use crate::printer::{Line, Printer, RecorderLine};

/// Why a recording did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// One is running already.
    #[error("recording {0:?} is running: stop it first (DELETE /pusher-local/recording)")]
    Running(String),
    /// The database refused it (the name is taken, the file is not ours…).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How a stopped recording ended.
#[derive(Debug)]
pub struct Stopped {
    /// Its name.
    pub name: String,
    /// Its number of events, or why the last commit failed.
    pub result: Result<u64, RecordError>,
}

/// The recording in progress, if any; see the module doc.
#[derive(Debug)]
pub struct Slot {
    on: AtomicBool,
    current: RwLock<Option<Recorder>>,
    /// Held across a start or a stop, so two cannot interleave.
    switching: tokio::sync::Mutex<()>,
    db: PathBuf,
    holder: String,
    printer: Printer,
}

impl Slot {
    /// An empty slot recording into `db`; `holder` names this server (pid and address) to a
    /// `recordings delete` of a recording it writes; `printer` hears of failed commits and of
    /// every stop.
    pub fn new(db: PathBuf, holder: String, printer: Printer) -> Slot {
        Slot {
            on: AtomicBool::new(false),
            current: RwLock::new(None),
            switching: tokio::sync::Mutex::new(()),
            db,
            holder,
            printer,
        }
    }

    /// The database file.
    pub fn db(&self) -> &Path {
        &self.db
    }

    /// The recording in progress.
    pub fn current(&self) -> Option<Recorder> {
        if !self.on.load(Ordering::Acquire) {
            return None;
        }
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Queues the event `entry` makes when a recording runs (`entry` is not called otherwise);
    /// see [`Recorder::record`].
    pub fn record(&self, entry: impl FnOnce() -> Entry, wait: bool) -> Commit {
        if !self.on.load(Ordering::Acquire) {
            return Commit::none();
        }
        match self.current.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(recorder) => recorder.record(entry(), wait),
            None => Commit::none(),
        }
    }

    /// Opens the database (on the recorder's own thread) and starts recording `name`.
    ///
    /// # Errors
    /// [`StartError::Running`] when a recording runs, else the database's refusal.
    pub async fn start(&self, name: String) -> Result<Recorder, StartError> {
        let _switching = self.switching.lock().await;
        if let Some(running) = self.current() {
            return Err(StartError::Running(running.name().to_owned()));
        }
        let report = self.printer.clone();
        let recording = name.clone();
        let on_error = Box::new(move |e: &StoreError| {
            report.line(Line::Recorder(RecorderLine::Failed {
                message: format!(
                    "recording {recording:?} failed and has stopped: {e}. Events are still delivered; what was \
                     committed before stays in the database."
                ),
            }));
        });
        let recorder = Recorder::start(self.db.clone(), name, self.holder.clone(), on_error).await?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(recorder.clone());
        self.on.store(true, Ordering::Release);
        Ok(recorder)
    }

    /// Ends the recording in progress once everything queued is committed, and prints how it
    /// ended; `None` when none runs.
    pub async fn stop(&self) -> Option<Stopped> {
        let _switching = self.switching.lock().await;
        let recorder = {
            let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
            self.on.store(false, Ordering::Release);
            current.take()?
        };
        let name = recorder.name().to_owned();
        let result = recorder.finish().await;
        let line = match &result {
            Ok(events) => RecorderLine::Saved { name: name.clone(), events: *events },
            Err(e) => RecorderLine::Failed { message: format!("recording {name:?} was not saved in full: {e}") },
        };
        self.printer.line(Line::Recorder(line));
        Some(Stopped { name, result })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            app_id: "1".into(),
            channel: "c".into(),
            event: "e".into(),
            data: "{}".into(),
            socket_id: None,
            user_id: None,
            source: "api",
        }
    }

    #[tokio::test]
    async fn events_are_recorded_only_between_a_start_and_a_stop() {
        let dir = tempfile::tempdir().unwrap();
        let slot = Slot::new(dir.path().join("r.db"), "test".into(), Printer::silent());
        slot.record(|| unreachable!("no entry is made while not recording"), true).wait().await.unwrap();
        assert!(slot.stop().await.is_none());

        assert_eq!(slot.start("one".into()).await.unwrap().name(), "one");
        let e = slot.start("two".into()).await.unwrap_err();
        assert!(matches!(&e, StartError::Running(name) if name == "one"), "{e:?}");
        let commits: Vec<Commit> = (0..3).map(|_| slot.record(entry, true)).collect();
        let stopped = slot.stop().await.unwrap();
        assert_eq!((stopped.name.as_str(), stopped.result.unwrap()), ("one", 3));
        for commit in commits {
            commit.wait().await.unwrap();
        }
        assert!(slot.current().is_none());

        // A taken name is the store's refusal; a new name records again.
        assert!(matches!(slot.start("one".into()).await, Err(StartError::Store(StoreError::NameTaken(_)))));
        slot.start("two".into()).await.unwrap();
        let _ = slot.record(entry, false);
        assert_eq!(slot.stop().await.unwrap().result.unwrap(), 1);
    }
}
