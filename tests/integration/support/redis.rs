//! A real `redis-server` for the Redis broker's tests: started by the test on a random loopback
//! port, with no persistence, and stopped (killed) when dropped. `restart` brings it back on the
//! same port, empty, as a crashed and restarted Redis would be.
//!
//! Without the binary the Redis cases skip loudly; under `CI=true` they fail instead.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    /// `(certificate, key)` PEM files: the server speaks only TLS (`rediss://`).
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// Whether the Redis cases can run here; panics under CI when they cannot.
pub fn available() -> bool {
    let found = Command::new("redis-server").arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none_or(|v| v.is_empty()),
            "redis-server is not installed and CI is set: the Redis broker suite must run (apt-get install redis-server)"
        );
        eprintln!("SKIPPED: redis-server is not installed; the Redis broker cases did not run");
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl RedisServer {
    /// Starts a fresh server, or `None` (skipped loudly) when redis-server is not installed.
    pub fn start() -> Option<RedisServer> {
        if !available() {
            return None;
        }
        let mut server = RedisServer { port: free_port(), child: None, tls: None };
        server.spawn();
        Some(server)
    }

    /// Starts a server that speaks only TLS, with this certificate and key (PEM files).
    pub fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> Option<RedisServer> {
        if !available() {
            return None;
        }
        let tls = Some((cert.to_owned(), key.to_owned()));
        let mut server = RedisServer { port: free_port(), child: None, tls };
        server.spawn();
        Some(server)
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let port = self.port.to_string();
        let mut command = Command::new("redis-server");
        match &self.tls {
            None => command.args(["--port", &port]),
            Some((cert, key)) => command
                .args(["--port", "0", "--tls-port", &port, "--tls-auth-clients", "no"])
                .arg("--tls-cert-file")
                .arg(cert)
                .arg("--tls-key-file")
                .arg(key),
        };
        let child = command
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--dir", &std::env::temp_dir().display().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers() {
            assert!(Instant::now() < deadline, "redis-server did not answer on port {} in time", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        if self.tls.is_some() {
            // Redis opens its TLS port once it is ready to serve.
            return true;
        }
        stream.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
    }

    /// Kills the server (SIGKILL: a crash, not a clean shutdown).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
