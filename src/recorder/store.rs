//! `Store`: recordings in a SQLite file (the only place rusqlite is used). WAL journal,
//! `synchronous=NORMAL` (a committed transaction survives the process being killed; only a
//! power cut can lose the last ones), schema versioned by `PRAGMA user_version` with one
//! migration per version, and `PRAGMA application_id` marking the file as ours so a foreign
//! SQLite file is refused instead of being written into.
//!
//! Events are clustered by `(recording_id, seq)` (`WITHOUT ROWID`): one b-tree, appended at
//! its end while recording, read in order by a range scan.
//!
//! Every call is blocking: the recorder runs them on its own thread, the `recordings`
//! commands on the main thread before any runtime starts.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension};

/// `PRAGMA application_id` of a pusher-local database ("PLRC").
pub const APPLICATION_ID: i32 = 0x504c_5243;

/// One entry per schema version; entry `n` takes `user_version` from `n` to `n + 1`.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE recordings (
        id            INTEGER PRIMARY KEY,
        name          TEXT NOT NULL UNIQUE,
        started_at_ms INTEGER NOT NULL,
        ended_at_ms   INTEGER
    );
    CREATE TABLE events (
        recording_id INTEGER NOT NULL REFERENCES recordings(id) ON DELETE CASCADE,
        seq          INTEGER NOT NULL,
        offset_us    INTEGER NOT NULL,
        time_ms      INTEGER NOT NULL,
        app_id       TEXT NOT NULL,
        channel      TEXT NOT NULL,
        event        TEXT NOT NULL,
        data         TEXT NOT NULL,
        socket_id    TEXT,
        user_id      TEXT,
        source       TEXT NOT NULL,
        PRIMARY KEY (recording_id, seq)
    ) WITHOUT ROWID;
",
    "
    -- The server writing a recording (its pid and where it listens), cleared when it ends.
    ALTER TABLE recordings ADD COLUMN holder_pid INTEGER;
    ALTER TABLE recordings ADD COLUMN holder TEXT;
",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// A database problem, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `recordings` on a path with no database.
    #[error("no recordings database at {0} (start the server with --record, or pass --db PATH)")]
    Missing(PathBuf),
    /// The file exists but is not SQLite (or is damaged).
    #[error("{0} is not a pusher-local recordings database (not SQLite, or damaged)")]
    NotADatabase(PathBuf),
    /// A SQLite file of some other program.
    #[error("{0} is a SQLite database of another program (refusing to write into it; pass --db with another path)")]
    Foreign(PathBuf),
    /// Written by a newer pusher-local.
    #[error(
        "{path} has schema version {found}; this pusher-local knows up to {SCHEMA_VERSION} (upgrade pusher-local)"
    )]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Its `user_version`.
        found: i32,
    },
    /// A recording of that name exists.
    #[error("a recording named {0:?} already exists (delete it with `pusher-local recordings delete {0}` or pick another name)")]
    NameTaken(String),
    /// No recording of that name.
    #[error("no recording named {0:?} (see `pusher-local recordings list`)")]
    NotFound(String),
    /// The recording is being written by a running server.
    #[error("recording {name:?} is being written by the pusher-local server {holder}: stop that server (Ctrl-C) first, then delete it")]
    InProgress {
        /// The recording.
        name: String,
        /// Which server (pid and address).
        holder: String,
    },
    /// The recording was deleted from the database while it was being written.
    #[error("the recording is no longer in the database (deleted while it was being written)")]
    Vanished,
    /// The recorder's writer thread could not start, or died.
    #[error("recorder thread")]
    Thread(#[source] std::io::Error),
    /// Any other SQLite failure.
    #[error("database {path}: {reason}")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        reason: rusqlite::Error,
    },
}

/// A recording, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Its name.
    pub name: String,
    /// When it started, ms since the epoch.
    pub started_at_ms: i64,
    /// When it ended, if it did cleanly.
    pub ended_at_ms: Option<i64>,
    /// Its number of events.
    pub events: u64,
    /// Offset of its last event, microseconds.
    pub last_offset_us: i64,
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Time since the recording started, microseconds.
    pub offset_us: i64,
    /// Wall-clock time, ms since the epoch.
    pub time_ms: i64,
    /// The app.
    pub app_id: String,
    /// The channel.
    pub channel: String,
    /// The event name.
    pub event: String,
    /// The data, exactly as published.
    pub data: String,
    /// The socket that sent it or was excluded.
    pub socket_id: Option<String>,
    /// The presence user that sent it.
    pub user_id: Option<String>,
    /// `api`, `client` or `replay`.
    pub source: String,
}

/// An open database.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating it if needed) and migrates the database at `path`.
    ///
    /// # Errors
    /// [`StoreError`]: not SQLite, foreign, too new, or SQLite's own failure.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Self::open_with(path, OpenFlags::default())
    }

    /// Opens an existing database; a missing file is [`StoreError::Missing`], not created.
    ///
    /// # Errors
    /// As [`Store::open`].
    pub fn open_existing(path: &Path) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing(path.to_owned()));
        }
        Self::open_with(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
    }

    fn open_with(path: &Path, flags: OpenFlags) -> Result<Store, StoreError> {
        let sql = |reason| StoreError::Sqlite { path: path.to_owned(), reason };
        let conn = Connection::open_with_flags(path, flags).map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(sql)?;
        let not_db = |e: rusqlite::Error| match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => StoreError::NotADatabase(path.to_owned()),
            _ => sql(e),
        };
        // The first read of the header: a file that is not SQLite fails here.
        let application_id: i32 = conn.pragma_query_value(None, "application_id", |r| r.get(0)).map_err(not_db)?;
        let version: i32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(not_db)?;
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table'", [], |r| r.get(0))
            .map_err(not_db)?;
        let ours = application_id == APPLICATION_ID;
        if !ours && (application_id != 0 || tables > 0 || version != 0) {
            return Err(StoreError::Foreign(path.to_owned()));
        }
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew { path: path.to_owned(), found: version });
        }
        conn.pragma_update(None, "journal_mode", "WAL").map_err(sql)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(sql)?;
        let mut store = Store { conn, path: path.to_owned() };
        store.migrate(version)?;
        Ok(store)
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |reason| StoreError::Sqlite { path: self.path.clone(), reason }
    }

    fn migrate(&mut self, from: i32) -> Result<(), StoreError> {
        let path = self.path.clone();
        let sql = |reason| StoreError::Sqlite { path: path.clone(), reason };
        for (version, migration) in MIGRATIONS.iter().enumerate().skip(from as usize) {
            let tx = self.conn.transaction().map_err(sql)?;
            tx.execute_batch(migration).map_err(sql)?;
            tx.pragma_update(None, "user_version", version as i32 + 1).map_err(sql)?;
            tx.pragma_update(None, "application_id", APPLICATION_ID).map_err(sql)?;
            tx.commit().map_err(sql)?;
        }
        Ok(())
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts a recording written by this process, `holder` saying which server it is (shown
    /// to a `recordings delete` of it); returns its id.
    ///
    /// # Errors
    /// [`StoreError::NameTaken`], or SQLite's failure.
    pub fn begin(&self, name: &str, started_at_ms: i64, holder: &str) -> Result<i64, StoreError> {
        match self.conn.execute(
            "INSERT INTO recordings (name, started_at_ms, holder_pid, holder) VALUES (?1, ?2, ?3, ?4)",
            params![name, started_at_ms, std::process::id(), holder],
        ) {
            Ok(_) => Ok(self.conn.last_insert_rowid()),
            Err(e) if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) => {
                Err(StoreError::NameTaken(name.to_owned()))
            }
            Err(e) => Err(self.sql()(e)),
        }
    }

    /// Appends `events` to recording `id` in one transaction (the group commit), numbered from
    /// `first_seq` (the recording's next sequence number; a new recording starts at 0).
    ///
    /// # Errors
    /// SQLite's failure; then none of them is stored.
    pub fn append(&mut self, id: i64, first_seq: i64, events: &[StoredEvent]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let sql = |reason| StoreError::Sqlite { path: path.clone(), reason };
        let tx = self.conn.transaction().map_err(sql)?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO events (recording_id, seq, offset_us, time_ms, app_id, channel, event, data, socket_id, user_id, source)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )
                .map_err(sql)?;
            for (seq, e) in (first_seq..).zip(events) {
                insert
                    .execute(params![
                        id,
                        seq,
                        e.offset_us,
                        e.time_ms,
                        e.app_id,
                        e.channel,
                        e.event,
                        e.data,
                        e.socket_id,
                        e.user_id,
                        e.source
                    ])
                    .map_err(sql)?;
            }
        }
        tx.commit().map_err(sql)
    }

    /// Marks recording `id` as ended.
    ///
    /// # Errors
    /// SQLite's failure.
    pub fn end(&self, id: i64, ended_at_ms: i64) -> Result<(), StoreError> {
        let changed = self
            .conn
            .execute(
                "UPDATE recordings SET ended_at_ms = ?2, holder_pid = NULL, holder = NULL WHERE id = ?1",
                params![id, ended_at_ms],
            )
            .map_err(self.sql())?;
        if changed == 0 {
            return Err(StoreError::Vanished);
        }
        Ok(())
    }

    const SUMMARY: &'static str =
        "SELECT r.name, r.started_at_ms, r.ended_at_ms, count(e.seq), coalesce(max(e.offset_us), 0)
         FROM recordings r LEFT JOIN events e ON e.recording_id = r.id";

    fn summary(row: &rusqlite::Row<'_>) -> rusqlite::Result<Summary> {
        Ok(Summary {
            name: row.get(0)?,
            started_at_ms: row.get(1)?,
            ended_at_ms: row.get(2)?,
            events: row.get::<_, i64>(3)? as u64,
            last_offset_us: row.get(4)?,
        })
    }

    /// Every recording, oldest first.
    ///
    /// # Errors
    /// SQLite's failure.
    pub fn list(&self) -> Result<Vec<Summary>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!("{} GROUP BY r.id ORDER BY r.started_at_ms, r.id", Self::SUMMARY))
            .map_err(self.sql())?;
        let rows = stmt.query_map([], Self::summary).map_err(self.sql())?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(self.sql())
    }

    /// One recording and its events in the order they were published.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], or SQLite's failure.
    pub fn read(&self, name: &str) -> Result<(Summary, Vec<StoredEvent>), StoreError> {
        let summary = self
            .conn
            .query_row(&format!("{} WHERE r.name = ?1 GROUP BY r.id", Self::SUMMARY), [name], Self::summary)
            .optional()
            .map_err(self.sql())?
            .ok_or_else(|| StoreError::NotFound(name.to_owned()))?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT e.offset_us, e.time_ms, e.app_id, e.channel, e.event, e.data, e.socket_id, e.user_id, e.source
                 FROM events e JOIN recordings r ON r.id = e.recording_id WHERE r.name = ?1 ORDER BY e.seq",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map([name], |row| {
                Ok(StoredEvent {
                    offset_us: row.get(0)?,
                    time_ms: row.get(1)?,
                    app_id: row.get(2)?,
                    channel: row.get(3)?,
                    event: row.get(4)?,
                    data: row.get(5)?,
                    socket_id: row.get(6)?,
                    user_id: row.get(7)?,
                    source: row.get(8)?,
                })
            })
            .map_err(self.sql())?;
        let events = rows.collect::<rusqlite::Result<Vec<_>>>().map_err(self.sql())?;
        Ok((summary, events))
    }

    /// Deletes a recording and its events.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], or SQLite's failure.
    pub fn delete(&self, name: &str) -> Result<(), StoreError> {
        let holder: Option<(Option<u32>, Option<String>)> = self
            .conn
            .query_row("SELECT holder_pid, holder FROM recordings WHERE name = ?1", [name], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()
            .map_err(self.sql())?;
        if let Some((Some(pid), holder)) = holder {
            if process_runs(pid) {
                let holder = holder.unwrap_or_else(|| format!("pid {pid}"));
                return Err(StoreError::InProgress { name: name.to_owned(), holder });
            }
        }
        let n = self.conn.execute("DELETE FROM recordings WHERE name = ?1", [name]).map_err(self.sql())?;
        if n == 0 {
            return Err(StoreError::NotFound(name.to_owned()));
        }
        Ok(())
    }
}

/// Whether process `pid` still runs: another pusher-local (or this one) writing a recording.
/// Where the system cannot say (no `/proc`), it is taken to run: deleting a recording that is
/// being written would lose it.
fn process_runs(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.is_dir() || proc.join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(offset_us: i64, data: &str) -> StoredEvent {
        StoredEvent {
            offset_us,
            time_ms: 1_700_000_000_000 + offset_us / 1000,
            app_id: "1".into(),
            channel: "c".into(),
            event: "e".into(),
            data: data.into(),
            socket_id: None,
            user_id: Some("u".into()),
            source: "api".into(),
        }
    }

    #[test]
    fn record_list_read_delete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let mut store = Store::open(&path).unwrap();
        let id = store.begin("one", 1, "test").unwrap();
        store.append(id, 0, &[event(0, "{\"a\":1}")]).unwrap();
        store.append(id, 1, &[event(1500, "x\u{0}y")]).unwrap();
        store.end(id, 2).unwrap();
        assert!(matches!(store.begin("one", 3, "test"), Err(StoreError::NameTaken(_))));
        drop(store);

        let store = Store::open_existing(&path).unwrap();
        let list = store.list().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!((list[0].events, list[0].last_offset_us, list[0].ended_at_ms), (2, 1500, Some(2)));
        let (_, events) = store.read("one").unwrap();
        assert_eq!(events, vec![event(0, "{\"a\":1}"), event(1500, "x\u{0}y")]);
        assert!(matches!(store.read("two"), Err(StoreError::NotFound(_))));
        store.delete("one").unwrap();
        assert!(store.list().unwrap().is_empty());
        assert!(matches!(store.delete("one"), Err(StoreError::NotFound(_))));
    }

    #[test]
    fn a_recording_being_written_is_not_deleted_unless_its_writer_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let store = Store::open(&path).unwrap();
        let id = store.begin("live", 1, "pid 1, listening on 127.0.0.1:6001").unwrap();
        let refused = store.delete("live").unwrap_err();
        assert!(matches!(refused, StoreError::InProgress { .. }), "{refused:?}");
        assert!(refused.to_string().contains("listening on 127.0.0.1:6001"), "{refused}");
        // A server that died while recording: no such process any more.
        store.conn.execute("UPDATE recordings SET holder_pid = 4294967295 WHERE id = ?1", [id]).unwrap();
        store.delete("live").unwrap();
        let id = store.begin("gone", 1, "test").unwrap();
        store.conn.execute("DELETE FROM recordings WHERE id = ?1", [id]).unwrap();
        assert!(matches!(store.end(id, 2), Err(StoreError::Vanished)), "an end that saves nothing says so");
    }

    #[test]
    fn corrupt_foreign_missing_and_newer_files_are_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.db");
        std::fs::write(&garbage, b"this is not sqlite at all, just some bytes that go on for a while....").unwrap();
        let e = Store::open(&garbage).unwrap_err();
        assert!(matches!(e, StoreError::NotADatabase(_)), "{e:?}");
        assert!(e.to_string().contains("garbage.db"), "{e}");

        let foreign = dir.path().join("foreign.db");
        Connection::open(&foreign).unwrap().execute_batch("CREATE TABLE songs (title TEXT);").unwrap();
        let e = Store::open(&foreign).unwrap_err();
        assert!(matches!(e, StoreError::Foreign(_)), "{e:?}");
        assert!(e.to_string().contains("another program"), "{e}");

        let missing = dir.path().join("missing.db");
        assert!(matches!(Store::open_existing(&missing), Err(StoreError::Missing(_))));
        assert!(!missing.exists(), "open_existing does not create the file");

        let newer = dir.path().join("newer.db");
        drop(Store::open(&newer).unwrap());
        Connection::open(&newer).unwrap().pragma_update(None, "user_version", 99).unwrap();
        let e = Store::open(&newer).unwrap_err();
        assert!(matches!(e, StoreError::TooNew { found: 99, .. }), "{e:?}");
    }

    #[test]
    fn a_fresh_file_gets_the_current_schema_and_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        drop(Store::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        let version: i32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        assert_eq!((version, mode.as_str()), (SCHEMA_VERSION, "wal"));
        // Reopening an up-to-date file runs no migration and keeps the data.
        drop(Store::open(&path).unwrap());
    }
}
