//! `Shutdown`: one cancellation token and one task tracker for the whole server, and
//! [`signal`], the Ctrl-C / SIGTERM future.
//!
//! Order on shutdown (see `server::run`): stop accepting → every socket gets 4200 → wait for
//! connection tasks up to the grace period → close the broker.

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Cheap-to-clone shutdown handle.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Shutdown {
    /// A fresh handle.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts shutting down.
    pub fn cancel(&self) {
        self.token.cancel();
    }

    /// Whether shutdown has begun.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// The token, for `select!`.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// The tracker that connection tasks are spawned on.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }
}

/// Resolves on the first Ctrl-C or SIGTERM. A second Ctrl-C exits the process at once.
pub async fn signal() {
    let ctrl_c = async {
        // Installing the handler fails only if the runtime has no signal driver; then there is
        // nothing to wait for and shutdown comes from elsewhere.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    });
}
