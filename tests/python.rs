//! Runs the Python suite in `tests/python/` (pytest with the official `pusher` PyPI SDK and
//! `websocket-client`, pinned in `tests/python/requirements.txt`) against the `pusher-local`
//! binary that Cargo just built.
//!
//! The interpreter is `PUSHER_LOCAL_PYTHON` (a path), or else the venv that `.ci/run` makes at
//! `target/ci-python`:
//!
//! ```sh
//! python3 -m venv target/ci-python
//! target/ci-python/bin/pip install -r tests/python/requirements.txt
//! ```
//!
//! Without it the test prints a loud SKIPPED line and passes, except under `CI=true`, where it
//! fails. The suite is killed, with every process it started, after three minutes.

use std::env;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Upper bound for the whole pytest run; its process group is killed after it.
const SUITE_TIMEOUT: Duration = Duration::from_secs(180);

#[test]
fn python_suite_passes_against_the_binary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin = env!("CARGO_BIN_EXE_pusher-local");
    let python = match env::var_os("PUSHER_LOCAL_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => root.join("target").join("ci-python").join("bin").join("python"),
    };
    if !python.is_file() {
        return skip_or_fail(&format!("no Python interpreter at {}", python.display()));
    }

    // pytest's output and that of everything it starts, in one file (no pipe to keep drained).
    let mut log = tempfile::tempfile().expect("a temporary file for the suite's output");
    let mut command = Command::new(&python);
    command
        .args(["-m", "pytest", "-q"])
        .current_dir(root.join("tests").join("python"))
        .env("PUSHER_LOCAL_BIN", bin)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("a second handle on the output file"))
        .stderr(log.try_clone().expect("a third handle on the output file"));
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    let mut child = command.spawn().unwrap_or_else(|err| panic!("failed to start {}: {err}", python.display()));

    let deadline = Instant::now() + SUITE_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for pytest") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            kill_group(&mut child);
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(100));
    };

    let mut bytes = Vec::new();
    log.seek(SeekFrom::Start(0)).and_then(|_| log.read_to_end(&mut bytes)).expect("reading the suite's output");
    // Shown by `cargo test` when this test fails (or always, with --nocapture).
    println!("{}", String::from_utf8_lossy(&bytes));
    let rerun = format!("cd tests/python && PUSHER_LOCAL_BIN={bin} {} -m pytest", python.display());
    match status {
        Some(status) => assert!(
            status.success(),
            "the Python suite failed ({status}); its output is above. Re-run it with:\n  {rerun}"
        ),
        None => panic!(
            "the Python suite was killed after {}s; its output is above. Re-run it with:\n  {rerun}",
            SUITE_TIMEOUT.as_secs()
        ),
    }
}

/// Without the interpreter: fail under `CI=true`, otherwise skip loudly.
fn skip_or_fail(reason: &str) {
    if env::var("CI").is_ok_and(|v| v == "true") {
        panic!("Python suite cannot run: {reason} (CI=true, so this is an error; .ci/run creates target/ci-python)");
    }
    // Straight to stderr, past libtest's capture, so that the skip shows in a plain `cargo test`.
    let banner = "************************************************************";
    let _ = writeln!(
        io::stderr(),
        "\n{banner}\nSKIPPED: {reason}.\nThe Python suite in tests/python did NOT run. Set PUSHER_LOCAL_PYTHON or create\n\
         the venv: python3 -m venv target/ci-python && target/ci-python/bin/pip install -r tests/python/requirements.txt\n{banner}\n"
    );
}

#[cfg(unix)]
fn kill_group(child: &mut Child) {
    // The child leads its own process group and has not been reaped, so its id still names it.
    let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).stderr(Stdio::null()).status();
    let _ = child.kill();
}

#[cfg(not(unix))]
fn kill_group(child: &mut Child) {
    let _ = child.kill();
}
