//! Runs the official-SDK compatibility suite in `tests/sdk/` (pusher-js 8 and
//! the `pusher` Node server SDK 5, under Node's built-in test runner) against
//! the `pusher-local` binary that Cargo just built.
//!
//! Needs `node` (20.14 or newer) and `npm` on `PATH`. Without them the test
//! prints a loud SKIPPED line and passes, except under `CI=true`, where it
//! fails. `npm ci` runs first when `tests/sdk/node_modules` is missing or
//! older than `tests/sdk/package-lock.json` (a dependency was added since).
//!
//! `npm test` runs `tests/sdk/run.js`, which has the binary create a local CA
//! in a temporary folder (`pusher-local tls --tls-dir DIR`) before any test
//! file starts, and runs them with `PUSHER_LOCAL_SDK_TLS_DIR=DIR` (every server
//! gets `--tls-dir DIR`) and `NODE_EXTRA_CA_CERTS=DIR/ca.pem`. The TLS tests
//! also need `openssl`, and the headless-browser test `/usr/bin/chromium` and
//! `certutil`: without them those tests skip loudly, except under `CI=true`.

use std::env;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Upper bound for the whole `npm test` run; the process group is killed after it.
const SUITE_TIMEOUT: Duration = Duration::from_secs(300);
/// Upper bound for `npm ci`.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);
/// Oldest Node that has `--test-concurrency` and `--test-force-exit`.
const MIN_NODE: (u32, u32) = (20, 14);

#[test]
fn official_sdks_pass_against_the_binary() {
    let sdk_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("sdk");
    let bin = env!("CARGO_BIN_EXE_pusher-local");

    let (node, npm) = match (which("node"), which("npm")) {
        (Some(node), Some(npm)) => (node, npm),
        (node, npm) => {
            let missing: Vec<&str> = [("node", node.is_none()), ("npm", npm.is_none())]
                .iter()
                .filter(|(_, absent)| *absent)
                .map(|(name, _)| *name)
                .collect();
            return skip_or_fail(&format!("{} not found on PATH", missing.join(" and ")));
        }
    };
    match node_version(&node) {
        Some(version) if version >= MIN_NODE => {}
        Some((major, minor)) => {
            return skip_or_fail(&format!(
                "node {major}.{minor} is too old; the suite needs {}.{} or newer",
                MIN_NODE.0, MIN_NODE.1
            ));
        }
        None => return skip_or_fail(&format!("could not read `{} --version`", node.display())),
    }

    if node_modules_outdated(&sdk_dir) {
        let install = run(Command::new(&npm).arg("ci").current_dir(&sdk_dir), INSTALL_TIMEOUT);
        assert!(
            install.succeeded(),
            "`npm ci` in {} failed ({})\n{}",
            sdk_dir.display(),
            install.describe(),
            install.output
        );
    }

    let suite = run(Command::new(&npm).arg("test").current_dir(&sdk_dir).env("PUSHER_LOCAL_BIN", bin), SUITE_TIMEOUT);
    // Forward the runner's report so that it shows up in `cargo test` output.
    println!("{}", suite.output);
    assert!(
        suite.succeeded(),
        "the official-SDK suite failed ({}); its output is above. Re-run it alone with:\n  \
         cd tests/sdk && PUSHER_LOCAL_BIN={bin} npm test",
        suite.describe()
    );
}

/// Whether `npm ci` is needed: no `node_modules`, or npm's record of what it
/// installed (`node_modules/.package-lock.json`) is older than `package-lock.json`.
fn node_modules_outdated(sdk_dir: &Path) -> bool {
    let modified = |path: PathBuf| path.metadata().and_then(|m| m.modified()).ok();
    match (
        modified(sdk_dir.join("node_modules").join(".package-lock.json")),
        modified(sdk_dir.join("package-lock.json")),
    ) {
        (Some(installed), Some(wanted)) => installed < wanted,
        _ => true,
    }
}

/// Without node/npm: fail under `CI=true`, otherwise skip loudly.
fn skip_or_fail(reason: &str) {
    if env::var("CI").is_ok_and(|v| v == "true") {
        panic!("official-SDK suite cannot run: {reason} (CI=true, so this is an error; install Node 20+ and npm)");
    }
    // Written straight to stderr, past libtest's output capture, so that the
    // skip is visible in a plain `cargo test` run.
    let banner = "************************************************************";
    let _ = writeln!(
        io::stderr(),
        "\n{banner}\nSKIPPED: node/npm not found or unusable ({reason}).\n\
         The official pusher-js / pusher SDK suite in tests/sdk did NOT run.\n{banner}\n"
    );
}

/// Looks `name` up on `PATH`, like `which`.
fn which(name: &str) -> Option<PathBuf> {
    let candidates: Vec<String> = if cfg!(windows) {
        vec![format!("{name}.cmd"), format!("{name}.exe"), name.to_string()]
    } else {
        vec![name.to_string()]
    };
    env::split_paths(&env::var_os("PATH")?)
        .flat_map(|dir| candidates.iter().map(move |c| dir.join(c)))
        .find(|path| is_executable(path))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// `node --version` ("v20.20.2") as (major, minor).
fn node_version(node: &Path) -> Option<(u32, u32)> {
    let out = Command::new(node).arg("--version").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let mut parts = text.trim().trim_start_matches('v').split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

struct Finished {
    status: Option<ExitStatus>,
    timed_out: Option<Duration>,
    output: String,
}

impl Finished {
    fn succeeded(&self) -> bool {
        self.timed_out.is_none() && self.status.is_some_and(|s| s.success())
    }

    fn describe(&self) -> String {
        match (self.timed_out, self.status) {
            (Some(limit), _) => format!("killed after the {}s timeout", limit.as_secs()),
            (None, Some(status)) => status.to_string(),
            (None, None) => "could not be waited for".to_string(),
        }
    }
}

/// Runs `command` in its own process group with stdout and stderr captured,
/// killing the whole group (npm, node, its test workers and their servers)
/// once `limit` has passed.
///
/// Completion is detected by both pipes closing, before the child is reaped:
/// until then its pid, and so the process-group id, cannot be reused, which
/// makes the group kill safe.
fn run(command: &mut Command, limit: Duration) -> Finished {
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    let mut child = command.spawn().unwrap_or_else(|err| panic!("failed to start {command:?}: {err}"));
    let (done_tx, done_rx) = mpsc::channel();
    let stdout = drain(child.stdout.take().expect("stdout is piped"), done_tx.clone());
    let stderr = drain(child.stderr.take().expect("stderr is piped"), done_tx);

    let deadline = Instant::now() + limit;
    let mut closed = 0;
    let mut timed_out = None;
    while closed < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        match done_rx.recv_timeout(left) {
            Ok(()) => closed += 1,
            Err(_) => {
                timed_out = Some(limit);
                kill_group(&mut child);
                break;
            }
        }
    }
    let status = child.wait().ok();

    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let mut output = stdout;
    if !stderr.trim().is_empty() {
        output.push_str("\n----- stderr -----\n");
        output.push_str(&stderr);
    }
    Finished { status, timed_out, output }
}

fn drain(mut pipe: impl Read + Send + 'static, done: mpsc::Sender<()>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        let _ = done.send(());
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

#[cfg(unix)]
fn kill_group(child: &mut Child) {
    // The child leads its own process group (process_group(0) above) and has
    // not been reaped yet, so this id still names that group.
    let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).stderr(Stdio::null()).status();
    let _ = child.kill();
}

#[cfg(not(unix))]
fn kill_group(child: &mut Child) {
    let _ = child.kill();
}
