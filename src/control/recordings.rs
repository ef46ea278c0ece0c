//! Recording from the console (issue 12): the recordings database listed, a recording started
//! and stopped while the server runs (one started with `--record` too), and a recording
//! exported as a fixture into the fixtures folder, where the server loads it at once for replay.
//!
//! | Method and path | Answer |
//! |---|---|
//! | `GET /pusher-local/recordings` | `{"db", "recording": {name, started_at_ms, events} or null, "recordings": [{name, events, started_at_ms, ended_at_ms, duration_ms, running}]}`, oldest first; no database yet is an empty list |
//! | `POST /pusher-local/recording` | body `{"name"}` optional (default `rec-<local time>`); 201 `{"name","db"}`; 409 when one runs or the name is taken; 400 for a name that cannot be a file name |
//! | `DELETE /pusher-local/recording` | stops it once everything queued is committed: `{"name","events"}`; 404 when none runs |
//! | `POST /pusher-local/recordings/{name}/export` | body `{"fixture", "overwrite"}` optional; 201 `{"fixture","file","events"}` written to `<fixtures>/<fixture>.json`; 409 when that file exists (unless `"overwrite": true`) or the recording is empty; 404 unknown recording |
//!
//! The database is read on a blocking thread (a running recorder keeps writing: SQLite's WAL
//! lets both work), as the `pusher-local recordings` commands read it.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::{json_reply, with, Refusal};
use crate::recorder::slot::StartError;
use crate::recorder::store::Summary;
use crate::recorder::{self, Store, StoreError};
use crate::state::AppState;

/// The longest recording or fixture name, in bytes.
const MAX_NAME: usize = 200;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartRequest {
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportRequest {
    fixture: Option<String>,
    #[serde(default)]
    overwrite: bool,
}

/// Checks a name that becomes a file name in the fixtures folder (`<name>.json`, where the
/// folder's watcher loads it by file stem): not empty, no path separator, no `..`, not hidden
/// (the watcher skips files whose name starts with a dot), no control character, at most
/// [`MAX_NAME`] bytes. A trailing `.json` is dropped.
///
/// # Errors
/// What is wrong with it, for a 400.
pub fn file_name(name: &str) -> Result<&str, String> {
    let stem = name.strip_suffix(".json").unwrap_or(name);
    let why = if stem.trim().is_empty() {
        "is empty"
    } else if stem.contains(['/', '\\']) {
        "has a path separator (a name, not a path, is asked for)"
    } else if stem.contains("..") {
        "contains \"..\""
    } else if stem.starts_with('.') {
        "starts with a dot (the fixtures folder skips hidden files)"
    } else if stem.chars().any(char::is_control) {
        "has a control character"
    } else if stem.len() > MAX_NAME {
        "is longer than 200 bytes"
    } else {
        return Ok(stem);
    };
    Err(format!("the name {name:?} {why}"))
}

/// An optional JSON body: empty (or whitespace) is `T::default()`.
fn body<T: Default + DeserializeOwned>(body: &[u8], shape: &str) -> Result<T, Refusal> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| Refusal::bad(format!("body must be {shape}: {e}")))
}

/// The answer for a database failure: unknown recording 404, a conflict 409, else 500.
fn store_refusal(e: &StoreError) -> Refusal {
    let status = match e {
        StoreError::Missing(_) | StoreError::NotFound(_) => StatusCode::NOT_FOUND,
        StoreError::NameTaken(_) | StoreError::InProgress { .. } => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    Refusal(status, e.to_string())
}

/// Runs `work` on a blocking thread (SQLite, the fixture file).
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, Refusal> + Send + 'static) -> Result<T, Refusal> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(Refusal(StatusCode::INTERNAL_SERVER_ERROR, format!("the database reader stopped: {e}")))
    })
}

fn summary_json(s: &Summary, running: bool) -> Value {
    json!({
        "name": s.name,
        "events": s.events,
        "started_at_ms": s.started_at_ms,
        "ended_at_ms": s.ended_at_ms,
        "duration_ms": s.last_offset_us.max(0) / 1000,
        "running": running,
    })
}

/// `GET /pusher-local/recordings`.
async fn list(state: AppState) -> Result<Response, Refusal> {
    let db = state.recording().db().to_owned();
    let running = state.recorder().map(|r| r.name().to_owned());
    let path = db.clone();
    let summaries = blocking(move || match Store::open_existing(&path).and_then(|store| store.list()) {
        Ok(list) => Ok(list),
        Err(StoreError::Missing(_)) => Ok(Vec::new()),
        Err(e) => Err(store_refusal(&e)),
    })
    .await?;
    let recording = running.map(|name| match summaries.iter().find(|s| s.name == name) {
        Some(s) => json!({ "name": name, "started_at_ms": s.started_at_ms, "events": s.events }),
        None => json!({ "name": name, "started_at_ms": null, "events": 0 }),
    });
    let listed: Vec<Value> = summaries
        .iter()
        .map(|s| summary_json(s, recording.as_ref().is_some_and(|r| r["name"] == s.name.as_str())))
        .collect();
    Ok(json_reply(StatusCode::OK, &json!({ "db": db, "recording": recording, "recordings": listed })))
}

/// `POST /pusher-local/recording`.
async fn start(state: AppState, request: bytes::Bytes) -> Result<Response, Refusal> {
    let request: StartRequest = body(&request, r#"{"name":"…"} or empty"#)?;
    let name = match request.name {
        Some(name) => file_name(&name).map_err(Refusal::bad)?.to_owned(),
        None => recorder::default_name(),
    };
    let recorder = state.recording().start(name).await.map_err(|e| match e {
        StartError::Running(_) => Refusal(StatusCode::CONFLICT, e.to_string()),
        StartError::Store(e) => store_refusal(&e),
    })?;
    let db = recorder.path().to_owned();
    state.printer().line(crate::printer::Line::Recorder(crate::printer::RecorderLine::Recording {
        name: recorder.name().to_owned(),
        db: db.clone(),
    }));
    Ok(json_reply(StatusCode::CREATED, &json!({ "name": recorder.name(), "db": db })))
}

/// `DELETE /pusher-local/recording`.
async fn stop(state: AppState) -> Result<Response, Refusal> {
    let stopped = state
        .recording()
        .stop()
        .await
        .ok_or_else(|| Refusal(StatusCode::NOT_FOUND, "no recording is running".into()))?;
    let events = stopped.result.map_err(|e| {
        Refusal(StatusCode::INTERNAL_SERVER_ERROR, format!("recording {:?} was not saved in full: {e}", stopped.name))
    })?;
    Ok(json_reply(StatusCode::OK, &json!({ "name": stopped.name, "events": events })))
}

/// Writes recording `name` of `db` as `file`; returns its number of events.
fn write_fixture(db: &Path, name: &str, file: &Path, overwrite: bool) -> Result<usize, Refusal> {
    let (summary, events) =
        Store::open_existing(db).and_then(|store| store.read(name)).map_err(|e| store_refusal(&e))?;
    if events.is_empty() {
        return Err(Refusal(StatusCode::CONFLICT, format!("recording {name:?} has no events: nothing to replay")));
    }
    if !overwrite && file.exists() {
        return Err(Refusal(
            StatusCode::CONFLICT,
            format!("{} exists already: pass \"overwrite\": true, or another \"fixture\" name", file.display()),
        ));
    }
    let fixture = recorder::fixture_of(&summary, events);
    fixture.save(file).map_err(|e| Refusal(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(fixture.events.len())
}

/// `POST /pusher-local/recordings/{name}/export`.
async fn export(state: AppState, name: String, request: bytes::Bytes) -> Result<Response, Refusal> {
    let name = percent_encoding::percent_decode_str(&name)
        .decode_utf8()
        .map_err(|_| Refusal::bad("the recording name in the path is not UTF-8"))?
        .into_owned();
    let request: ExportRequest = body(&request, r#"{"fixture":"…","overwrite":false} or empty"#)?;
    let fixture = file_name(request.fixture.as_deref().unwrap_or(&name)).map_err(Refusal::bad)?.to_owned();
    let file: PathBuf = state.fixtures().dir().join(format!("{fixture}.json"));
    let (db, fixtures, written) = (state.recording().db().to_owned(), state.fixtures().clone(), file.clone());
    let events = blocking(move || {
        let events = write_fixture(&db, &name, &written, request.overwrite)?;
        // Loaded now, watched folder or not: the answer means it can be replayed.
        let _loaded = fixtures.reload(&written);
        Ok(events)
    })
    .await?;
    Ok(json_reply(StatusCode::CREATED, &json!({ "fixture": fixture, "file": file, "events": events })))
}

fn answer(result: Result<Response, Refusal>) -> Response {
    result.unwrap_or_else(Refusal::into_response)
}

/// The routes (not boxed: `control::routes` boxes them all once).
pub fn routes(state: &AppState) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let list = warp::path!("pusher-local" / "recordings")
        .and(warp::get())
        .and(with(state))
        .then(|s: AppState| async move { answer(list(s).await) });
    let start = warp::path!("pusher-local" / "recording")
        .and(warp::post())
        .and(warp::body::bytes())
        .and(with(state))
        .then(|body: bytes::Bytes, s: AppState| async move { answer(start(s, body).await) });
    let stop = warp::path!("pusher-local" / "recording")
        .and(warp::delete())
        .and(with(state))
        .then(|s: AppState| async move { answer(stop(s).await) });
    let export = warp::path!("pusher-local" / "recordings" / String / "export")
        .and(warp::post())
        .and(warp::body::bytes())
        .and(with(state))
        .then(|name: String, body: bytes::Bytes, s: AppState| async move { answer(export(s, name, body).await) });
    list.or(start).unify().or(stop).unify().or(export).unify()
}

#[cfg(test)]
mod tests {
    use super::file_name;

    #[test]
    fn a_name_must_be_a_plain_file_name() {
        assert_eq!(file_name("rec-2026-12-03-18-30-05"), Ok("rec-2026-12-03-18-30-05"));
        assert_eq!(file_name("checkout flow.json"), Ok("checkout flow"));
        assert_eq!(file_name("é-ünïcode"), Ok("é-ünïcode"));
        for bad in ["", "  ", ".json", "a/b", "..\\x", "..", "a..b", ".hidden", "tab\there", &"x".repeat(201)] {
            let e = file_name(bad).unwrap_err();
            assert!(e.starts_with("the name "), "{bad:?}: {e}");
        }
        assert!(file_name("../etc/passwd").unwrap_err().contains("path separator"));
        assert!(file_name("..").unwrap_err().contains("\"..\""));
    }
}
