//! The binary itself: flags, config layering as the banner reports it, errors and exit codes,
//! colour rules, signals. Each run is hermetic: a temp working directory, no PUSHER_* variables.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pusher-local");

fn command(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("PUSHER_") || key == "NO_COLOR" || key == "REDIS_URL" {
            cmd.env_remove(key);
        }
    }
    // The test servers' local CA, not the user's data folder.
    cmd.env("PUSHER_LOCAL_TLS_DIR", crate::support::tls_dir());
    cmd
}

/// The child's stdout, line by line, read on a thread (the child was spawned with it piped).
fn stdout_lines(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let Some(stdout) = child.stdout.take() else { unreachable!("stdout is piped") };
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// Starts the server on port 0 and returns it with the banner lines (up to the "Ctrl-C" line).
fn start(cmd: &mut Command) -> (Child, Vec<String>) {
    let mut running = Running::launch(cmd);
    let mut lines = vec![running.first.clone()];
    loop {
        let line = running.until(|_| true);
        let done = line.starts_with("Ctrl-C");
        lines.push(line);
        if done {
            return (running.child, lines);
        }
    }
}

fn stop(mut child: Child) -> std::process::ExitStatus {
    // SIGTERM, as a process manager would send it.
    Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn zero_config_start_prints_banner_with_sources_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (child, lines) = start(&mut command(dir.path()));
    let banner = lines.join("\n");
    assert!(lines[0].starts_with("pusher-local ") && lines[0].contains("listening on 127.0.0.1:"), "{banner}");
    assert!(banner.contains("app_id  1 ") && banner.contains("(built-in default)"), "{banner}");
    assert!(banner.contains("forceTLS: false"));
    assert!(!banner.contains('\u{1b}'), "piped output has no escape codes");
    let ca = crate::support::tls_dir().join("ca.pem");
    assert!(banner.contains(&format!("CA {}", ca.display())), "{banner}");
    for trust in [
        "NODE_EXTRA_CA_CERTS=",
        "REQUESTS_CA_BUNDLE=",
        "CURL_CA_BUNDLE=",
        "certutil -d sql:",
        "security add-trusted-cert",
        "certutil -user -addstore",
    ] {
        assert!(banner.contains(trust), "{trust} in {banner}");
    }
    assert!(stop(child).success());
}

#[test]
fn the_tls_command_makes_the_ca_once_and_prints_where_how_to_trust_it_and_its_pem() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    let run = || {
        let out = command(dir.path()).arg("tls").arg("--tls-dir").arg(&tls).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let first = run();
    assert!(first.contains("(made now: trust it once, it is kept)"), "{first}");
    assert!(first.contains(&format!("NODE_EXTRA_CA_CERTS={}", tls.join("ca.pem").display())), "{first}");
    let pem = std::fs::read_to_string(tls.join("ca.pem")).unwrap();
    assert!(first.ends_with(&pem), "{first}");
    let second = run();
    assert!(!second.contains("made now"), "kept: {second}");
    assert_eq!(std::fs::read_to_string(tls.join("ca.pem")).unwrap(), pem);
}

#[test]
fn credentials_come_from_dotenv_then_environment_then_flags_and_the_banner_says_so() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "PUSHER_APP_ID=77\nPUSHER_APP_KEY=dotenv-key\nPUSHER_APP_SECRET=dotenv-secret\n",
    )
    .unwrap();
    let mut cmd = command(dir.path());
    cmd.env("PUSHER_APP_KEY", "env-key").args(["--secret", "flag-secret"]);
    let (child, lines) = start(&mut cmd);
    let banner = lines.join("\n");
    assert!(banner.contains("app_id  77") && banner.contains("PUSHER_APP_ID in"), "{banner}");
    assert!(banner.contains("env-key") && banner.contains("($PUSHER_APP_KEY)"), "{banner}");
    assert!(banner.contains("flag-secret") && banner.contains("(--secret)"), "{banner}");
    stop(child);
}

#[test]
fn pusher_url_in_the_environment_is_understood() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.env("PUSHER_URL", "http://urlkey:urlsecret@api.example.test/apps/55");
    let (child, lines) = start(&mut cmd);
    let banner = lines.join("\n");
    assert!(banner.contains("app_id  55") && banner.contains("urlkey") && banner.contains("($PUSHER_URL)"), "{banner}");
    stop(child);
}

#[test]
fn colour_is_forced_with_always_and_refused_with_never() {
    let dir = tempfile::tempdir().unwrap();
    let (child, lines) = start(command(dir.path()).args(["--color", "always"]));
    assert!(lines.join("\n").contains('\u{1b}'));
    stop(child);
    let (child, lines) = start(command(dir.path()).args(["--color", "never"]));
    assert!(!lines.join("\n").contains('\u{1b}'));
    stop(child);
}

#[test]
fn broken_config_file_is_a_clear_error_with_path_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), "port = 1\nnot_a_setting = true\n").unwrap();
    let out = command(dir.path()).args(["--config", "bad.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("line 2") && err.contains("not_a_setting"), "{err}");
}

#[test]
fn unreachable_redis_is_a_clear_error_naming_the_url_and_a_non_zero_exit() {
    // See: issue 5. Never a silent fallback to a single node.
    let dir = tempfile::tempdir().unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://127.0.0.1:{free}");
    let out = command(dir.path()).args(["--port", "0", "-r", &url]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("cannot reach Redis at {url}")), "{err}");
    let out = command(dir.path()).args(["--port", "0"]).env("REDIS_URL", &url).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "REDIS_URL is read too");
}

#[test]
fn port_in_use_is_reported_with_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = command(dir.path()).args(["--port", &port]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}

#[test]
fn help_lists_the_slanger_spellings() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in
        ["--api-host", "--websocket-host", "--key", "--secret", "--app-id", "--config", "--verbose", "--redis-url"]
    {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    let out = Command::new(BIN).args(["-k", "k", "-s", "s", "--help"]).output().unwrap();
    assert!(out.status.success());
}

/// A running binary whose stdout lines arrive on a channel.
struct Running {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    port: u16,
    /// The "listening on" line.
    first: String,
}

impl Running {
    fn launch(cmd: &mut Command) -> Running {
        let mut child = cmd.args(["--port", "0"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let lines = stdout_lines(&mut child);
        let mut running = Running { child, lines, port: 0, first: String::new() };
        let first = running.until(|l| l.contains("listening on 127.0.0.1:"));
        let at = first.find("127.0.0.1:").unwrap() + "127.0.0.1:".len();
        running.port = first[at..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap();
        running.first = first;
        running
    }

    /// The first line matching `pred` within 10 s.
    fn until(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if pred(&line) => return line,
                Ok(_) => continue,
                Err(e) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!("no matching line in time: {e}");
                }
            }
        }
    }

    fn http(&self, request: &str) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
    }

    fn stop(self) -> std::process::ExitStatus {
        stop(self.child)
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn json_log_lines_carry_api_calls_and_signature_diagnoses_and_the_log_file_gets_them_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut running = Running::launch(command(dir.path()).args(["--log-format", "json", "--log-file", "pl.log"]));
    let request = format!(
        "GET /apps/1/channels?auth_key=app-key&auth_timestamp={}&auth_version=1.0&auth_signature=00 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        unix_now()
    );
    running.http(&request);
    let line = running.until(|l| l.contains("\"kind\":\"signature\""));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert!(
        v["expected_string"].as_str().unwrap().starts_with("GET\n/apps/1/channels\nauth_key=app-key&auth_timestamp="),
        "{v}"
    );
    assert_eq!(v["received"], "00");
    assert!(v["cause"].as_str().unwrap().contains("wrong secret"), "{v}");
    let api: serde_json::Value = serde_json::from_str(&running.until(|l| l.contains("\"kind\":\"api\""))).unwrap();
    assert_eq!((api["status"].as_u64(), api["path"].as_str()), (Some(401), Some("/apps/1/channels")));
    running.stop();
    let log = std::fs::read_to_string(dir.path().join("pl.log")).unwrap();
    assert!(log.lines().any(|l| l.contains("\"kind\":\"signature\"")), "{log}");
}

#[test]
fn verbose_filter_shows_only_the_matching_channel() {
    let dir = tempfile::tempdir().unwrap();
    let mut running = Running::launch(command(dir.path()).args(["-v", "--filter", "channel=wanted-*"]));
    for (channel, event) in [("other", "skip-me"), ("wanted-1", "show-me")] {
        let body = format!(r#"{{"name":"{event}","channels":["{channel}"],"data":"1"}}"#);
        let query = pusher_local::auth::request::sign_query(
            "app-key",
            "app-secret",
            "POST",
            "/apps/1/events",
            body.as_bytes(),
            unix_now(),
            &[],
        );
        running.http(&format!(
            "POST /apps/1/events?{query} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ));
    }
    let line = running.until(|l| l.contains(" pub "));
    assert!(line.contains("show-me") && line.contains("wanted-1"), "the first publish shown is the wanted one: {line}");
    running.stop();
}

#[test]
fn a_bad_filter_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path()).args(["--filter", "colour=red"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("KEY=PATTERN"));
}

/// Signed `POST /apps/1/events`, as the SDKs send it; returns the status.
async fn trigger(http: &reqwest::Client, port: u16, i: usize) -> u16 {
    let path = "/apps/1/events";
    let body = format!("{{\"name\":\"tick\",\"channels\":[\"stock_ticker\"],\"data\":\"{{\\\"n\\\":{i}}}\"}}");
    let query = pusher_local::auth::request::sign_query(
        "app-key",
        "app-secret",
        "POST",
        path,
        body.as_bytes(),
        unix_now(),
        &[],
    );
    let url = format!("http://127.0.0.1:{port}{path}?{query}");
    http.post(url).header("content-type", "application/json").body(body).send().await.unwrap().status().as_u16()
}

// See: issue 4, "a kill -9 while recording loses no acknowledged trigger".
#[test]
fn kill_9_while_recording_loses_no_acknowledged_trigger_and_the_recording_exports_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let mut running = Running::launch(command(dir.path()).args(["--no-config", "--record=k9"]));
    running.until(|l| l.contains("recording \"k9\""));
    let port = running.port;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let acknowledged = runtime.block_on(async {
        let http = reqwest::Client::new();
        let mut tasks = Vec::new();
        for t in 0..4 {
            let http = http.clone();
            tasks.push(tokio::spawn(async move {
                let mut ok = 0;
                for i in 0..50 {
                    if trigger(&http, port, t * 100 + i).await == 200 {
                        ok += 1;
                    }
                }
                ok
            }));
        }
        let mut ok = 0;
        for task in tasks {
            ok += task.await.unwrap();
        }
        ok
    });
    assert_eq!(acknowledged, 200);
    running.child.kill().unwrap(); // SIGKILL: no shutdown, no flush
    running.child.wait().unwrap();

    let store = pusher_local::recorder::Store::open_existing(&dir.path().join("pusher-local.db")).unwrap();
    let (summary, events) = store.read("k9").unwrap();
    assert_eq!(events.len(), acknowledged, "every acknowledged trigger is on disk");
    assert_eq!(summary.ended_at_ms, None);
    drop(store);

    let list = command(dir.path()).args(["--no-config", "recordings", "list"]).output().unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success() && text.contains("k9") && text.contains("200 events"), "{text}");
    let export = command(dir.path()).args(["--no-config", "recordings", "export", "k9"]).output().unwrap();
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    let fixture = pusher_local::recorder::Fixture::load(&dir.path().join("fixtures/k9.json")).unwrap();
    assert_eq!(fixture.events.len(), 200);

    // Replay the export into a second server at full speed, by fixture name.
    let target = Running::launch(command(dir.path()).arg("--no-config"));
    let replay = command(dir.path())
        .args(["--no-config", "replay", "k9", "--speed", "max", "--url", &format!("http://127.0.0.1:{}", target.port)])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&replay.stdout);
    assert!(replay.status.success(), "{out} {}", String::from_utf8_lossy(&replay.stderr));
    assert!(out.contains("sent 200 events of k9"), "{out}");
    assert!(!out.contains('\r'), "no progress bar when stdout is not a terminal: {out}");
    target.stop();
}

#[test]
fn bad_databases_and_fixtures_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = command(dir.path()).arg("--no-config").args(args).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    // Listing with no database yet is no error: it says so and names the built-in fixtures.
    let listed = command(dir.path()).args(["--no-config", "recordings", "list"]).output().unwrap();
    let out = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{out}");
    assert!(out.contains("no recordings in") && out.contains("pusher-local.db"), "{out}");
    assert!(out.contains("built-in fixtures, replayed by name: notifications, presence_chat, stock_ticker"), "{out}");
    assert!(!dir.path().join("pusher-local.db").exists(), "listing does not create a database");
    let (code, err) = run(&["recordings", "show", "x"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no recordings database at") && err.contains("pusher-local.db"), "{err}");

    std::fs::write(dir.path().join("garbage.db"), vec![b'x'; 8192]).unwrap();
    let (code, err) = run(&["--db", "garbage.db", "recordings", "list"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("garbage.db is not a pusher-local recordings database"), "{err}");
    let (code, err) = run(&["--db", "garbage.db", "--port", "0", "--record=x"]);
    assert_eq!(code, Some(2), "the server does not start: {err}");
    assert!(err.contains("--record") && err.contains("garbage.db"), "{err}");

    std::fs::write(
        dir.path().join("bad.json"),
        "{\"pusher_local_fixture\": 1,\n  \"events\": [ {\"offset_ms\": \"soon\"} ]\n}",
    )
    .unwrap();
    let (code, err) = run(&["replay", "bad.json"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("bad.json:2:"), "file and line: {err}");
    std::fs::write(dir.path().join("ok.json"), "{\"pusher_local_fixture\": 1, \"events\": []}").unwrap();
    let (code, err) = run(&["replay", "ok.json", "--key", "other-key"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--key other-key needs its --secret"), "{err}");
    let (code, err) = run(&["replay", "nothing-by-that-name"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("not a fixture file") && err.contains("not a recording"), "{err}");
}

#[test]
fn capture_ends_on_ctrl_c_and_writes_everything_received() {
    let dir = tempfile::tempdir().unwrap();
    let server = Running::launch(command(dir.path()).arg("--no-config"));
    let port = server.port;
    let mut child = command(dir.path())
        // https:// (the same URL forms as replay), so the capture goes over wss:// trusting the
        // local CA.
        .args(["--no-config", "capture", "--url", &format!("https://127.0.0.1:{port}"), "--channel", "stock_ticker"])
        .args(["--channel", "private-orders", "-o", "captured.json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = stdout_lines(&mut child);
    let wait_for = |want: &str| loop {
        match lines.recv_timeout(Duration::from_secs(10)) {
            Ok(line) if line.contains(want) => return,
            Ok(_) => continue,
            Err(e) => panic!("no line with {want:?} in time: {e}"),
        }
    };
    wait_for("subscribed to stock_ticker");
    wait_for("subscribed to private-orders");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::new();
        for i in 0..3 {
            assert_eq!(trigger(&http, port, i).await, 200);
        }
    });
    wait_for("#3 tick on stock_ticker");
    Command::new("kill").arg("-INT").arg(child.id().to_string()).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "capture did not stop on Ctrl-C");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    let fixture = pusher_local::recorder::Fixture::load(&dir.path().join("captured.json")).unwrap();
    let data: Vec<&str> = fixture.events.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(data, ["{\"n\":0}", "{\"n\":1}", "{\"n\":2}"]);
    server.stop();
}

// See: issue 14, "every subcommand accepts the flags that find the server after the subcommand".
#[test]
fn subcommands_take_the_flags_that_find_the_server_after_their_name_and_their_help_lists_only_theirs() {
    let dir = tempfile::tempdir().unwrap();
    let server = Running::launch(command(dir.path()).arg("--no-config"));
    let port = server.port.to_string();
    // The flag after the subcommand wins over the variable (which points nowhere).
    let replay = command(dir.path())
        .args(["replay", "stock_ticker", "--speed", "max", "--port", &port, "--no-config"])
        .env("PUSHER_LOCAL_PORT", "1")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&replay.stdout);
    assert!(replay.status.success(), "{out} {}", String::from_utf8_lossy(&replay.stderr));
    assert!(out.contains(&format!("into http://127.0.0.1:{port} ")) && out.contains("sent 30 events"), "{out}");
    assert!(!out.contains('\r') && !out.contains('\u{1b}'), "no progress bar when stdout is not a terminal: {out}");

    // --to counts from the first event: this recording's first event came 1.5 s after it began.
    std::fs::write(
        dir.path().join("late.json"),
        r#"{"pusher_local_fixture": 1, "events": [
            {"offset_ms": 1500, "channel": "c", "event": "e", "data": "1"},
            {"offset_ms": 2000, "channel": "c", "event": "e", "data": "2"},
            {"offset_ms": 2600, "channel": "c", "event": "e", "data": "3"}]}"#,
    )
    .unwrap();
    let replay = command(dir.path())
        .args(["--no-config", "replay", "late.json", "--to", "1s", "--from", "0", "--port", &port])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&replay.stdout);
    assert!(replay.status.success(), "{out} {}", String::from_utf8_lossy(&replay.stderr));
    assert!(out.contains("(2 events,") && out.contains("sent 2 events of late.json"), "{out}");

    let webhooks = command(dir.path()).args(["webhooks", "list", "--port", &port, "--no-config"]).output().unwrap();
    assert!(webhooks.status.success(), "{}", String::from_utf8_lossy(&webhooks.stderr));
    // A flag that means nothing to the subcommand is refused after it, naming it.
    let refused = command(dir.path()).args(["recordings", "list", "--port", &port]).output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--port"));
    server.stop();

    let help = command(dir.path()).args(["webhooks", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for wanted in ["--url", "--port", "--host", "--ca-file"] {
        assert!(help.contains(wanted), "{wanted} in webhooks --help: {help}");
    }
    for unwanted in ["fixtures", "--record", "--tls-cert", "--tls-dir", "--db", "--redis-url", "--webhook "] {
        assert!(!help.contains(unwanted), "{unwanted} is not for webhooks: {help}");
    }
    let help = command(dir.path()).args(["replay", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("--port") && help.contains("--fixtures") && help.contains("after the first event"), "{help}");
}

#[test]
fn completions_for_each_shell_and_a_man_page() {
    let dir = tempfile::tempdir().unwrap();
    let script = |shell: &str| {
        let out = command(dir.path()).args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let bash = script("bash");
    assert!(bash.contains("complete -F _pusher__local") && bash.contains("pusher-local"), "{bash}");
    assert!(bash.contains("replay") && bash.contains("--speed"), "subcommands and their flags");
    for (shell, mark) in
        [("zsh", "#compdef pusher-local"), ("fish", "complete -c pusher-local"), ("powershell", "pusher-local")]
    {
        let text = script(shell);
        assert!(text.contains(mark) && text.contains("replay"), "{shell}: {text}");
    }
    // Sourced into bash, it completes a subcommand, and a flag after one (the hyphen in the
    // binary's name once broke that).
    let complete = |words: &str| {
        let probe = format!(
            "source /dev/stdin; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             _pusher__local pusher-local \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
             echo \"${{COMPREPLY[*]}}\""
        );
        let mut child = Command::new("bash")
            .args(["--norc", "-c", &probe])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .ok()?;
        use std::io::Write;
        child.stdin.take()?.write_all(bash.as_bytes()).ok()?;
        let out = child.wait_with_output().ok()?;
        Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    match complete("pusher-local rep") {
        Some(got) => {
            assert_eq!(got, "replay");
            assert_eq!(complete("pusher-local replay demo --po").as_deref(), Some("--port"));
            let webhooks = complete("pusher-local webhooks list --").unwrap();
            assert!(
                webhooks.contains("--url") && webhooks.contains("--port") && !webhooks.contains("--db"),
                "{webhooks}"
            );
        }
        None => eprintln!("SKIPPED the bash round trip: no bash on PATH"),
    }

    let man = command(dir.path()).arg("man").output().unwrap();
    assert!(man.status.success());
    let man = String::from_utf8(man.stdout).unwrap();
    assert!(man.contains(".TH pusher-local 1") && man.contains(".SH NAME") && man.contains("pusher\\-local"), "{man}");
    assert!(man.contains("replay"), "the subcommands are listed: {man}");
}

// See: issue 14, "a port already in use says which process holds it and suggests --port".
#[cfg(target_os = "linux")]
#[test]
fn port_in_use_names_the_process_holding_it_and_suggests_a_free_port() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = command(dir.path()).args(["--port", &port.to_string()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    // This test process holds it: its name is the test binary's (as /proc shows it).
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    let by = format!(
        "cannot listen on 127.0.0.1:{port}: address in use (by {}, pid {}); ",
        comm.trim_end(),
        std::process::id()
    );
    assert!(err.contains(&by), "{by:?} in {err}");
    let suggested: u16 = err
        .split("pick another with --port ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a --port suggestion in {err}"));
    assert!(suggested > port && suggested <= port.saturating_add(20), "{suggested} near {port}");

    // The same for a split listener, with the flag that sets it.
    let api = format!("127.0.0.1:{port}");
    let out = command(dir.path()).args(["--no-config", "-a", &api, "-w", "127.0.0.1:0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("address in use (by ") && err.contains("pick another with --api-host 127.0.0.1:"), "{err}");
}

#[test]
fn nothing_says_listening_before_the_start_up_checks_pass() {
    let dir = tempfile::tempdir().unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let unreachable = format!("redis://127.0.0.1:{free}");
    for args in [vec!["--port", "0", "-r", &unreachable], vec!["--port", "0", "--replay", "no-such-fixture"]] {
        let out = command(dir.path()).arg("--no-config").args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!stdout.contains("listening"), "{args:?} printed a banner before failing:\n{stdout}");
        assert!(!String::from_utf8_lossy(&out.stderr).is_empty(), "{args:?} says why");
    }
}

#[test]
fn the_apps_dotenv_port_is_where_it_listens_and_a_hosted_pusher_host_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(
        dir.path().join(".env"),
        format!("PUSHER_APP_KEY=k\nPUSHER_APP_SECRET=s\nPUSHER_APP_ID=1\nPUSHER_HOST=api-eu.pusher.com\nPUSHER_PORT={free}\nPUSHER_SCHEME=https\n"),
    )
    .unwrap();
    let mut child = command(dir.path()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let lines = stdout_lines(&mut child);
    let mut banner = Vec::new();
    loop {
        let line = lines.recv_timeout(Duration::from_secs(10)).expect("the banner in time");
        let done = line.starts_with("warning:");
        banner.push(line);
        if done {
            break;
        }
    }
    let banner = banner.join("\n");
    assert!(banner.contains(&format!("listening on 127.0.0.1:{free}")), "{banner}");
    assert!(banner.contains(&format!("port {free} as the app expects (PUSHER_PORT in")), "{banner}");
    assert!(banner.contains(&format!("PUSHER_PORT={free}")), "the .env block agrees: {banner}");
    assert!(banner.contains("warning: PUSHER_HOST=api-eu.pusher.com") && banner.contains("hosted Pusher"), "{banner}");
    assert!(stop(child).success());
}

/// `GET path` on `port` (`Connection: close`), the whole response.
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// The JSON `--ready-file` wrote to `path`, polled for up to 10 s (the file appears whole: it
/// is renamed into place).
fn ready_file(path: &std::path::Path, child: &mut Child) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", path.display()));
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the server exited ({status}) before writing {}", path.display());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("no ready file at {} in time", path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Checks the ready JSON of a server on port 0 with the default app, every field; returns the
/// port it picked.
fn check_ready(info: &serde_json::Value, pid: u32) -> u16 {
    let port = info["http_port"].as_u64().and_then(|p| u16::try_from(p).ok()).unwrap_or_else(|| panic!("{info}"));
    assert_ne!(port, 0, "{info}");
    let expected = serde_json::json!({
        "url": format!("http://127.0.0.1:{port}"), "ws_url": format!("ws://127.0.0.1:{port}"),
        "http_port": port, "ws_port": port, "host": "127.0.0.1",
        "app_id": "1", "key": "app-key", "secret": "app-secret", "pid": pid,
    });
    assert_eq!(info, &expected);
    port
}

#[test]
fn two_servers_on_port_0_each_write_a_ready_file_with_their_own_port_and_remove_it_on_sigterm() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    // Both started before either is waited for.
    let mut servers: Vec<(Child, std::path::PathBuf)> = dirs
        .iter()
        .map(|dir| {
            let child = command(dir.path())
                .args(["--no-config", "--port", "0", "--ready-file", "ready.json"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            (child, dir.path().join("ready.json"))
        })
        .collect();
    let mut ports = Vec::new();
    for (child, path) in &mut servers {
        let info = ready_file(path, child);
        let port = check_ready(&info, child.id());
        let response = http_get(port, "/pusher-local/fixtures");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        ports.push(port);
    }
    assert_ne!(ports[0], ports[1]);
    for (child, path) in servers {
        assert!(stop(child).success());
        assert!(!path.exists(), "{} is removed when the server stops", path.display());
    }
    for dir in &dirs {
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.iter().all(|name| !name.to_string_lossy().ends_with(".tmp")), "{left:?}");
    }
}

#[test]
fn print_ready_puts_the_ready_json_on_the_first_line_before_the_banner() {
    let dir = tempfile::tempdir().unwrap();
    // The app's PUSHER_PORT differs: the warning names the port picked, not 0.
    std::fs::write(dir.path().join(".env"), "PUSHER_PORT=1\n").unwrap();
    let mut child = command(dir.path())
        .args(["--port", "0"])
        .env("PUSHER_LOCAL_PRINT_READY", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = stdout_lines(&mut child);
    let first = lines.recv_timeout(Duration::from_secs(10)).expect("the ready line in time");
    let info: serde_json::Value = serde_json::from_str(&first).unwrap_or_else(|e| panic!("{e}: {first}"));
    let port = check_ready(&info, child.id());
    let banner = lines.recv_timeout(Duration::from_secs(10)).expect("the banner");
    assert!(
        banner.starts_with("pusher-local ") && banner.contains(&format!("listening on 127.0.0.1:{port}")),
        "{banner}"
    );
    let warning = (0..100)
        .map_while(|_| lines.recv_timeout(Duration::from_secs(10)).ok())
        .find(|line| line.starts_with("warning: PUSHER_PORT=1"))
        .expect("the PUSHER_PORT warning");
    assert!(warning.contains(&format!("listens on port {port}:")), "{warning}");
    assert!(http_get(port, "/pusher-local/fixtures").starts_with("HTTP/1.1 200"));
    assert!(stop(child).success());
}
