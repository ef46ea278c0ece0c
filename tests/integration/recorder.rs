//! Record, export, replay and capture (issue 4), end to end on in-process servers: what a
//! recording holds, that an exported fixture replays the same events, bytes and order with the
//! original spacing (paused clock), the server's own replays and control endpoints, the watched
//! fixtures folder, and capture from a second instance.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use pusher_local::commands::client::ControlClient;
use pusher_local::recorder::replay::{self, HttpPublisher, Plan, Publisher, ReplayError, Speed};
use pusher_local::recorder::watch::{Change, Fixtures};
use pusher_local::recorder::{capture, fixture_of, Fixture, FixtureEvent, Store};

use crate::support::{config, Client, TestServer, KEY, SECRET, WAIT};

/// `(channel, event, data string)` of the next `n` event frames, skipping protocol frames.
async fn events(client: &mut Client, n: usize) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    while out.len() < n {
        let frame = client.recv().await;
        let event = frame["event"].as_str().unwrap_or_default().to_owned();
        if event.starts_with("pusher") {
            continue;
        }
        let data = match &frame["data"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.push((frame["channel"].as_str().unwrap_or_default().to_owned(), event, data));
    }
    out
}

/// Data with spacing, key order, unicode and escapes that a re-encoding would change.
const ODD_JSON: &str = "{ \"z\":1,  \"a\" : [1.50, \"é\\u00e9\"] }";

#[tokio::test]
async fn a_recording_exported_and_replayed_gives_the_same_events_bytes_and_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.record = Some("session".into());
    cfg.db = dir.path().join("rec.db");
    cfg.fixtures = dir.path().join("fixtures");
    let a = TestServer::with(cfg).await;
    let mut alice = a.client().await;
    alice.subscribe_public("stock_ticker").await;
    alice.subscribe_signed("private-chat", None).await;
    let mut bob = a.client().await;
    bob.subscribe_signed("private-chat", None).await;

    let api = a.api();
    assert_eq!(api.trigger("stock_ticker", "update_event", ODD_JSON).await.0, 200);
    tokio::time::sleep(Duration::from_millis(150)).await; // spacing to preserve, not synchronisation
    assert_eq!(api.trigger("stock_ticker", "update_event", "plain text, not JSON").await.0, 200);
    bob.send(json!({"event": "client-typing", "channel": "private-chat", "data": {"who": "bob"}})).await;
    let seen_client = events(&mut alice, 3).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let batch = json!({"batch": [
        {"channel": "stock_ticker", "name": "update_event", "data": "{\"company\":\"ACME\",\"price\":1}"},
        {"channel": "private-chat", "name": "message", "data": "\"quoted\""},
    ]});
    assert_eq!(api.post("/apps/1/batch_events", &batch).await.0, 200);
    let mut seen = seen_client;
    seen.extend(events(&mut alice, 2).await);
    a.stop().await;

    let store = Store::open_existing(&dir.path().join("rec.db")).unwrap();
    let (summary, recorded) = store.read("session").unwrap();
    assert!(summary.ended_at_ms.is_some(), "a clean stop ends the recording");
    let got: Vec<(String, String, String)> =
        recorded.iter().map(|e| (e.channel.clone(), e.event.clone(), e.data.clone())).collect();
    assert_eq!(got, seen, "recorded in publish order, data bytes exact");
    let sources: Vec<&str> = recorded.iter().map(|e| e.source.as_str()).collect();
    assert_eq!(sources, ["api", "api", "client", "api", "api"]);
    assert_eq!(recorded[2].socket_id.as_deref(), Some(bob.socket_id.as_str()));
    let gap = |i: usize| Duration::from_micros((recorded[i + 1].offset_us - recorded[i].offset_us) as u64);
    assert!(gap(0) >= Duration::from_millis(150) && gap(2) >= Duration::from_millis(100), "{recorded:?}");

    // Export, read back: the same events.
    let path = dir.path().join("fixtures/session.json");
    let fixture = fixture_of(&summary, recorded.clone());
    fixture.save(&path).unwrap();
    let loaded = Fixture::load(&path).unwrap();
    assert_eq!(loaded.events.len(), 5);
    for (e, r) in loaded.events.iter().zip(&recorded) {
        assert_eq!((&e.channel, &e.event, &e.data), (&r.channel, &r.event, &r.data));
        assert_eq!(e.offset, Duration::from_millis(r.offset_us as u64 / 1000));
    }

    // Replay through the signed HTTP API into a fresh server: same frames, same order.
    let b = TestServer::start().await;
    let mut carol = b.client().await;
    carol.subscribe_public("stock_ticker").await;
    carol.subscribe_signed("private-chat", None).await;
    let publisher =
        HttpPublisher::new(&format!("http://{}", b.api_addr), "1", KEY, SECRET, &Default::default()).unwrap();
    let plan = Plan { speed: Speed::Max, ..Plan::default() };
    let out = tokio::time::timeout(WAIT, replay::run(&loaded, &plan, &publisher, &CancellationToken::new(), |_| {}))
        .await
        .expect("replayed in time")
        .unwrap();
    assert_eq!(out.sent, 5);
    assert_eq!(events(&mut carol, 5).await, seen);
    b.stop().await;

    // With the original speed, on a paused clock: every event at its recorded offset.
    let timed = tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        rt.block_on(async move {
            let sink = Timed { start: tokio::time::Instant::now(), seen: Mutex::default() };
            replay::run(&loaded, &Plan::default(), &sink, &CancellationToken::new(), |_| {}).await.unwrap();
            let seen = sink.seen.lock().unwrap().clone();
            (loaded, seen)
        })
    })
    .await
    .unwrap();
    let (loaded, seen_at) = timed;
    let offsets: Vec<Duration> = loaded.events.iter().map(|e| e.offset).collect();
    assert_eq!(seen_at.iter().map(|(at, _)| *at).collect::<Vec<_>>(), offsets);
    assert_eq!(
        seen_at.iter().map(|(_, data)| data.clone()).collect::<Vec<_>>(),
        seen.iter().map(|s| s.2.clone()).collect::<Vec<_>>()
    );
}

/// Notes the paused-clock time and data of each event.
struct Timed {
    start: tokio::time::Instant,
    seen: Mutex<Vec<(Duration, String)>>,
}

#[async_trait::async_trait]
impl Publisher for Timed {
    async fn publish(&self, event: &FixtureEvent) -> Result<(), ReplayError> {
        self.seen.lock().unwrap().push((self.start.elapsed(), event.data.clone()));
        Ok(())
    }
}

fn write_fixture(path: &std::path::Path, events: &[(u64, &str, &str, &str)]) {
    let fixture = Fixture {
        name: None,
        description: None,
        events: events
            .iter()
            .map(|(ms, ch, ev, data)| FixtureEvent::new(Duration::from_millis(*ms), ch, ev, data))
            .collect(),
    };
    fixture.save(path).unwrap();
}

#[tokio::test]
async fn the_server_replays_fixtures_from_its_folder_through_the_control_api_and_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    write_fixture(
        &dir.path().join("ticks.json"),
        &[(0, "stock_ticker", "update_event", "{\"price\":1}"), (20, "stock_ticker", "update_event", "{\"price\":2}")],
    );
    let mut cfg = config();
    cfg.fixtures = dir.path().to_owned();
    cfg.record = Some("with-replays".into());
    cfg.db = dir.path().join("rec.db");
    let server = TestServer::with(cfg).await;
    let control = ControlClient::new(format!("http://{}", server.api_addr), &Default::default(), None).unwrap();
    let list = control.fixtures().await.unwrap();
    assert_eq!(list["fixtures"][0]["name"], "ticks");
    assert_eq!(list["fixtures"][0]["events"], 2);

    let mut client = server.client().await;
    client.subscribe_public("prices").await;
    let started = control
        .start_replay(&json!({"fixture": "ticks", "speed": "max", "channel_map": {"stock_ticker": "prices"}}))
        .await
        .unwrap();
    assert_eq!(started["events"], 2);
    let got = events(&mut client, 2).await;
    assert_eq!(got[0], ("prices".into(), "update_event".into(), "{\"price\":1}".into()));
    assert_eq!(got[1].2, "{\"price\":2}");

    // A looping replay runs until stopped.
    let looping = control.start_replay(&json!({"fixture": "ticks", "speed": 4, "loop": true})).await.unwrap();
    let id = looping["id"].as_u64().unwrap();
    let listed = control.replays().await.unwrap();
    assert!(listed["replays"].as_array().unwrap().iter().any(|r| r["id"] == id && r["loop"] == true), "{listed}");
    assert_eq!(control.stop_replay(id).await.unwrap()["stopped"], true);
    let e = control.stop_replay(999).await.unwrap_err();
    assert!(e.to_string().contains("404"), "{e}");
    let e = control.start_replay(&json!({"fixture": "nope"})).await.unwrap_err();
    assert!(e.to_string().contains("no fixture named \"nope\""), "{e}");
    let e = control.start_replay(&json!({"fixture": "ticks", "speed": "fast"})).await.unwrap_err();
    assert!(e.to_string().contains("400"), "{e}");
    server.stop().await;

    // Replayed events are recorded as such.
    let (_, recorded) = Store::open_existing(&dir.path().join("rec.db")).unwrap().read("with-replays").unwrap();
    assert!(recorded.len() >= 2 && recorded.iter().all(|e| e.source == "replay"), "{recorded:?}");

    // `--replay NAME` at start-up; an unknown one stops the start.
    let mut cfg = config();
    cfg.fixtures = dir.path().to_owned();
    cfg.replay = vec!["nope".into()];
    let listeners = pusher_local::Listeners::bind(&cfg.listen).await.unwrap();
    let e = pusher_local::run(listeners, cfg, pusher_local::printer::Printer::silent(), pusher_local::Shutdown::new())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("--replay nope"), "{e}");
}

#[tokio::test]
async fn the_watcher_picks_up_new_edited_and_invalid_fixtures_and_keeps_the_previous_version() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = Fixtures::new(dir.path().to_owned());
    assert!(fixtures.scan().is_empty());
    let mut changes = fixtures.subscribe();
    let _guard = fixtures.watch().unwrap();
    let path = dir.path().join("feed.json");
    // Awaits the change for `name`; notify may report a write in several events.
    async fn next_for(rx: &mut tokio::sync::broadcast::Receiver<Change>, want: impl Fn(&Change) -> bool) -> Change {
        tokio::time::timeout(WAIT, async {
            loop {
                let change = rx.recv().await.unwrap();
                if want(&change) {
                    return change;
                }
            }
        })
        .await
        .expect("the watcher reports the change in time")
    }

    write_fixture(&path, &[(0, "notifications", "new", "{\"id\":1}")]);
    next_for(&mut changes, |c| matches!(c, Change::Loaded { events: 1, .. })).await;
    assert_eq!(fixtures.get("feed").unwrap().events.len(), 1);

    write_fixture(&path, &[(0, "notifications", "new", "{\"id\":1}"), (500, "notifications", "new", "{\"id\":2}")]);
    next_for(&mut changes, |c| matches!(c, Change::Loaded { events: 2, .. })).await;
    assert_eq!(fixtures.get("feed").unwrap().events.len(), 2);

    std::fs::write(
        &path,
        "{\n  \"pusher_local_fixture\": 1,\n  \"events\": [\n    {\"offset_ms\": 0 \"channel\": \"c\"}\n  ]\n}\n",
    )
    .unwrap();
    let invalid = next_for(&mut changes, |c| matches!(c, Change::Invalid { .. })).await;
    match invalid {
        Change::Invalid { name, error, kept } => {
            assert_eq!(name, "feed");
            assert!(kept, "the previous version stays loaded");
            assert!(error.contains(&format!("{}:4:", path.display())), "file and line: {error}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fixtures.get("feed").unwrap().events.len(), 2, "previous version kept");
    assert!(fixtures.list()[0].error.is_some());

    std::fs::remove_file(&path).unwrap();
    next_for(&mut changes, |c| matches!(c, Change::Removed { .. })).await;
    assert!(fixtures.get("feed").is_none());
}

#[tokio::test]
async fn capture_from_a_second_instance_gives_a_fixture_that_replays_identically() {
    let source = TestServer::start().await;
    let mut direct = source.client().await;
    direct.subscribe_public("stock_ticker").await;
    direct.subscribe_signed("private-feed", None).await;

    let options = capture::Options {
        url: format!("ws://{}", source.addr),
        key: KEY.into(),
        secret: Some(SECRET.into()),
        channels: vec!["stock_ticker".into(), "private-feed".into(), "presence-room".into()],
        user_id: "capture".into(),
        trust: Default::default(),
    };
    let (notices_tx, mut notices) = tokio::sync::mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        capture::run(&options, async { stop_rx.await.unwrap_or(()) }, move |n| notices_tx.send(n).unwrap()).await
    });
    let mut subscribed = 0;
    while subscribed < 3 {
        match tokio::time::timeout(WAIT, notices.recv()).await.expect("subscribed in time").unwrap() {
            capture::Notice::Subscribed(_) => subscribed += 1,
            capture::Notice::Connected(_) => {}
            other => panic!("{other:?}"),
        }
    }
    let api = source.api();
    api.trigger("stock_ticker", "update_event", ODD_JSON).await;
    api.trigger("private-feed", "item", "plain").await;
    api.trigger("stock_ticker", "update_event", "{\"price\":2}").await;
    let sent = events(&mut direct, 3).await;
    let mut kept = 0;
    while kept < 3 {
        if let capture::Notice::Event { count, .. } =
            tokio::time::timeout(WAIT, notices.recv()).await.expect("captured in time").unwrap()
        {
            kept = count;
        }
    }
    stop_tx.send(()).unwrap();
    let fixture = tokio::time::timeout(WAIT, task).await.unwrap().unwrap().unwrap();
    assert_eq!(fixture.events.len(), 3);
    assert_eq!(fixture.events[0].offset, Duration::ZERO, "offsets count from the first event");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("captured.json");
    fixture.save(&path).unwrap();
    let fixture = Fixture::load(&path).unwrap();

    let target = TestServer::start().await;
    let mut watcher = target.client().await;
    watcher.subscribe_public("stock_ticker").await;
    watcher.subscribe_signed("private-feed", None).await;
    let publisher: Arc<dyn Publisher> = Arc::new(
        HttpPublisher::new(&format!("http://{}", target.api_addr), "1", KEY, SECRET, &Default::default()).unwrap(),
    );
    let plan = Plan { speed: Speed::Max, ..Plan::default() };
    tokio::time::timeout(WAIT, replay::run(&fixture, &plan, &*publisher, &CancellationToken::new(), |_| {}))
        .await
        .expect("replayed in time")
        .unwrap();
    assert_eq!(events(&mut watcher, 3).await, sent);
    source.stop().await;
    target.stop().await;
}

#[tokio::test]
async fn capture_refuses_private_channels_without_a_secret_and_reports_refusals() {
    let server = TestServer::start().await;
    let base = capture::Options {
        url: format!("ws://{}", server.addr),
        key: KEY.into(),
        secret: None,
        channels: vec!["private-x".into()],
        user_id: "u".into(),
        trust: Default::default(),
    };
    let e = capture::run(&base, std::future::pending(), |_| {}).await.unwrap_err();
    assert!(e.to_string().contains("--secret"), "{e}");
    let wrong_key = capture::Options { key: "nope".into(), channels: vec!["public".into()], ..base.clone() };
    let e = tokio::time::timeout(WAIT, capture::run(&wrong_key, std::future::pending(), |_| {}))
        .await
        .unwrap()
        .unwrap_err();
    assert!(e.to_string().contains("refused"), "{e}");
    let bad_secret = capture::Options { secret: Some("wrong".into()), ..base };
    let e = tokio::time::timeout(WAIT, capture::run(&bad_secret, std::future::pending(), |_| {}))
        .await
        .unwrap()
        .unwrap_err();
    assert!(e.to_string().contains("private-x"), "{e}");
    server.stop().await;
}

#[tokio::test]
async fn a_recording_in_progress_cannot_be_deleted_and_a_failing_recorder_never_fails_a_delivered_trigger() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.record = Some("live".into());
    cfg.db = dir.path().join("rec.db");
    let captured = crate::support::Captured::default();
    let server = TestServer::with_printer(cfg, captured.printer()).await;
    let mut watcher = server.client().await;
    watcher.subscribe_public("c").await;
    assert_eq!(server.api().trigger("c", "e", "1").await.0, 200);
    assert_eq!(watcher.expect("e").await["data"], "1");

    // `recordings delete` of the recording this server writes is refused, naming the server.
    let store = Store::open_existing(&dir.path().join("rec.db")).unwrap();
    let refused = store.delete("live").unwrap_err().to_string();
    assert!(refused.contains("being written") && refused.contains(&format!("pid {}", std::process::id())), "{refused}");
    assert!(refused.contains(&server.addr.to_string()), "{refused}");

    // Pulled from under the recorder anyway (another SQLite client): its next write fails.
    let raw = rusqlite::Connection::open(dir.path().join("rec.db")).unwrap();
    raw.execute("DELETE FROM recordings WHERE name = 'live'", []).unwrap();
    for data in ["2", "3"] {
        let (status, body) = server.api().trigger("c", "e", data).await;
        assert_eq!((status, body.as_str()), (200, "{}"), "a delivered event is acknowledged");
        assert_eq!(watcher.expect("e").await["data"], data);
    }
    captured.until("failed and has stopped", WAIT).await;
    let log = captured.text();
    assert!(log.contains("FOREIGN KEY constraint failed"), "SQLite's own reason: {log}");
    assert_eq!(log.matches("failed and has stopped").count(), 1, "reported once: {log}");
    server.stop().await;
    captured.until("was not saved in full", WAIT).await;
    let log = captured.text();
    assert!(!log.contains("saved: "), "no claim of a save: {log}");
}

#[tokio::test]
async fn the_suggested_fixtures_are_built_in_and_a_file_of_the_same_name_wins() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.fixtures = dir.path().join("fixtures");
    std::fs::create_dir_all(&cfg.fixtures).unwrap();
    let mine = Fixture {
        name: None,
        description: None,
        events: vec![FixtureEvent::new(Duration::ZERO, "notifications", "mine", "{}")],
    };
    mine.save(&cfg.fixtures.join("notifications.json")).unwrap();
    let server = TestServer::with(cfg).await;
    let http = reqwest::Client::new();
    let base = format!("http://{}/pusher-local", server.api_addr);
    let list: Value = http.get(format!("{base}/fixtures")).send().await.unwrap().json().await.unwrap();
    let by_name =
        |name: &str| list["fixtures"].as_array().unwrap().iter().find(|f| f["name"] == name).cloned().unwrap();
    assert_eq!(by_name("notifications")["built_in"], false, "{list}");
    assert_eq!(by_name("stock_ticker")["built_in"], true, "{list}");
    assert_eq!(by_name("stock_ticker")["events"], 30);
    assert!(by_name("stock_ticker")["file"].is_null());

    let mut client = server.client().await;
    client.subscribe_public("stock_ticker").await;
    client.subscribe_public("notifications").await;
    for fixture in ["stock_ticker", "notifications"] {
        let started = http
            .post(format!("{base}/replays"))
            .json(&json!({"fixture": fixture, "speed": "max"}))
            .send()
            .await
            .unwrap();
        assert_eq!(started.status(), 202, "{fixture}");
    }
    let got = events(&mut client, 31).await;
    assert_eq!(got.iter().filter(|(channel, ..)| channel == "stock_ticker").count(), 30);
    assert!(
        got.iter().any(|(channel, event, _)| channel == "notifications" && event == "mine"),
        "the folder's file wins"
    );
    server.stop().await;
}
