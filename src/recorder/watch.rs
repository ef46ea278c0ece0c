//! `Fixtures`: the fixtures folder (`./fixtures`, `--fixtures DIR`), every `*.json` in it
//! loaded by file stem, and watched with `notify`. A new or edited file is parsed at once; an
//! invalid one is reported (file, line, column) and the version loaded before stays in use.
//! Each outcome is broadcast as a [`Change`] (the server prints them; tests await them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::event::ModifyKind;
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::{broadcast, mpsc};

use super::fixture::{Fixture, FixtureError};

/// Events of one path arriving within this window are read once (editors write in steps).
const SETTLE: Duration = Duration::from_millis(40);

/// What happened to one fixture file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Loaded (new or edited).
    Loaded {
        /// Its name (file stem).
        name: String,
        /// The file.
        file: PathBuf,
        /// Number of events.
        events: usize,
    },
    /// Refused; `kept` says whether an earlier version stays loaded.
    Invalid {
        /// Its name.
        name: String,
        /// Error text: `file:line:column: message` for parse errors.
        error: String,
        /// An earlier version is still in use.
        kept: bool,
    },
    /// The file is gone.
    Removed {
        /// Its name.
        name: String,
    },
}

/// A fixture's state, as listed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listing {
    /// Its name.
    pub name: String,
    /// The file (none for a built-in fixture).
    pub file: Option<PathBuf>,
    /// Built into pusher-local (no file of that name in the folder).
    pub built_in: bool,
    /// Events in the version in use (absent when none could be loaded).
    pub events: Option<usize>,
    /// Offset of the last event in ms.
    pub duration_ms: Option<u64>,
    /// Why the file on disk is refused, if it is.
    pub error: Option<String>,
}

#[derive(Debug)]
struct Entry {
    file: PathBuf,
    fixture: Option<Arc<Fixture>>,
    error: Option<String>,
}

/// The watcher could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch the fixtures folder {path}")]
pub struct WatchError {
    /// The folder.
    pub path: PathBuf,
    /// Why.
    pub source: notify::Error,
}

/// The fixtures folder. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Fixtures {
    dir: PathBuf,
    entries: Arc<Mutex<BTreeMap<String, Entry>>>,
    changes: broadcast::Sender<Change>,
}

fn fixture_name(path: &Path) -> Option<String> {
    if path.extension().and_then(|e| e.to_str()) != Some("json") {
        return None;
    }
    let stem = path.file_stem()?.to_str()?;
    (!stem.starts_with('.')).then(|| stem.to_owned())
}

/// Whether a notify event may mean new content. Reading a fixture raises access events (and
/// may touch its access time); treating those as changes would re-read it for ever.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) | EventKind::Any => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(_) | EventKind::Other => false,
    }
}

impl Fixtures {
    /// An empty set for `dir` (nothing read yet).
    pub fn new(dir: PathBuf) -> Fixtures {
        let (changes, _) = broadcast::channel(256);
        Fixtures { dir, entries: Arc::default(), changes }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Receives every later [`Change`].
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Reads every `*.json` in the folder (blocking: call from a blocking context or at
    /// start-up). A missing folder is no fixtures. Returns what happened to each file.
    pub fn scan(&self) -> Vec<Change> {
        let mut paths: Vec<PathBuf> = match std::fs::read_dir(&self.dir) {
            Ok(dir) => dir.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| fixture_name(p).is_some()).collect(),
            Err(_) => Vec::new(),
        };
        paths.sort();
        paths.iter().filter_map(|p| self.reload(p)).collect()
    }

    /// Re-reads one path (blocking) and broadcasts the outcome.
    pub fn reload(&self, path: &Path) -> Option<Change> {
        let name = fixture_name(path)?;
        let change = if path.is_file() {
            let loaded = Fixture::load(path);
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            let entry = entries.entry(name.clone()).or_insert_with(|| Entry {
                file: path.to_owned(),
                fixture: None,
                error: None,
            });
            match loaded {
                // An editor's save raises several events: the same content again is no news.
                Ok(fixture) if entry.error.is_none() && entry.fixture.as_deref() == Some(&fixture) => return None,
                Ok(fixture) => {
                    let events = fixture.events.len();
                    entry.fixture = Some(Arc::new(fixture));
                    entry.error = None;
                    Change::Loaded { name, file: path.to_owned(), events }
                }
                // Gone between the check and the read: the removal event follows.
                Err(FixtureError::Read { .. }) if !path.exists() => return None,
                Err(e) => {
                    let error = e.to_string();
                    entry.error = Some(error.clone());
                    Change::Invalid { name, error, kept: entry.fixture.is_some() }
                }
            }
        } else {
            let removed = self.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(&name);
            removed?;
            Change::Removed { name }
        };
        let _ = self.changes.send(change.clone());
        Some(change)
    }

    /// The fixture in use under `name`: the folder's, else a built-in one.
    pub fn get(&self, name: &str) -> Option<Arc<Fixture>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(name) {
            Some(entry) => entry.fixture.clone(),
            None => super::fixture::built_in(name).map(Arc::new),
        }
    }

    /// Every fixture: the folder's by name, then the built-in ones no file replaces.
    pub fn list(&self) -> Vec<Listing> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let listing = |name: &str, file: Option<PathBuf>, fixture: Option<&Fixture>, error: Option<String>| Listing {
            name: name.to_owned(),
            built_in: file.is_none(),
            file,
            events: fixture.map(|f| f.events.len()),
            duration_ms: fixture.map(|f| f.duration().as_millis() as u64),
            error,
        };
        let mut list: Vec<Listing> = entries
            .iter()
            .map(|(name, e)| listing(name, Some(e.file.clone()), e.fixture.as_deref(), e.error.clone()))
            .collect();
        for (name, _) in super::fixture::BUILT_IN.iter().filter(|(name, _)| !entries.contains_key(*name)) {
            list.push(listing(name, None, super::fixture::built_in(name).as_ref(), None));
        }
        list
    }

    /// Watches the folder until the returned guard is dropped; changes are re-read on a
    /// blocking thread.
    ///
    /// # Errors
    /// [`WatchError`] when the folder cannot be watched (it must exist).
    pub fn watch(&self) -> Result<WatchGuard, WatchError> {
        let werr = |source| WatchError { path: self.dir.clone(), source };
        let (tx, mut rx) = mpsc::unbounded_channel::<PathBuf>();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if is_change(&event.kind) {
                for path in event.paths {
                    let _ = tx.send(path);
                }
            }
        })
        .map_err(werr)?;
        watcher.watch(&self.dir, RecursiveMode::NonRecursive).map_err(werr)?;
        let fixtures = self.clone();
        let task = tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut paths = vec![first];
                // Let a multi-step save finish, then read each path once.
                tokio::time::sleep(SETTLE).await;
                while let Ok(p) = rx.try_recv() {
                    paths.push(p);
                }
                paths.sort();
                paths.dedup();
                let fixtures = fixtures.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    for path in paths {
                        fixtures.reload(&path);
                    }
                })
                .await;
            }
        });
        Ok(WatchGuard { _watcher: watcher, task })
    }
}

/// Keeps the watcher alive.
#[derive(Debug)]
pub struct WatchGuard {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_a_fixture_is_not_a_change_to_it() {
        use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, MetadataKind, RenameMode};
        assert!(!is_change(&EventKind::Access(AccessKind::Open(AccessMode::Any))));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(AccessMode::Read))));
        assert!(!is_change(&EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime))));
        assert!(is_change(&EventKind::Create(CreateKind::File)));
        assert!(is_change(&EventKind::Modify(ModifyKind::Data(DataChange::Content))));
        assert!(is_change(&EventKind::Modify(ModifyKind::Name(RenameMode::To))));
    }

    #[test]
    fn scan_loads_valid_files_reports_invalid_ones_and_skips_others() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("good.json"), "{\"pusher_local_fixture\": 1, \"events\": []}").unwrap();
        std::fs::write(dir.path().join("bad.json"), "{\"pusher_local_fixture\": 1,\n\"events\": [}").unwrap();
        std::fs::write(dir.path().join("README.md"), "# not a fixture").unwrap();
        let fixtures = Fixtures::new(dir.path().to_owned());
        let changes = fixtures.scan();
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(matches!(&changes[1], Change::Loaded { name, events: 0, .. } if name == "good"));
        match &changes[0] {
            Change::Invalid { name, error, kept: false } => {
                assert_eq!(name, "bad");
                assert!(error.contains("bad.json:2:"), "{error}");
            }
            other => panic!("{other:?}"),
        }
        assert!(fixtures.get("good").is_some() && fixtures.get("bad").is_none());
        assert_eq!(
            fixtures.list().iter().filter(|l| !l.built_in).count(),
            2,
            "the folder's two, then the built-in ones"
        );
        assert!(Fixtures::new(dir.path().join("missing")).scan().is_empty());
    }
}
