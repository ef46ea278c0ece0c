//! `Shutdown`: one cancellation token and one task tracker for the whole server, and
//! [`signal`], the Ctrl-C / SIGTERM future.
//!
//! Order on shutdown (see `server::run`): stop accepting → every socket gets 1001 going away → wait for
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

/// Installs the Ctrl-C / SIGTERM handlers now (so a signal that arrives before the returned
/// future is first polled is not lost) and returns a future that resolves on the first one.
/// After it resolved, a second Ctrl-C exits the process at once.
///
/// # Errors
/// When the runtime cannot install signal handlers.
#[cfg(unix)]
pub fn signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tokio::spawn(async move {
            if interrupt.recv().await.is_some() {
                std::process::exit(130);
            }
        });
    })
}

/// See the Unix version; elsewhere only Ctrl-C is watched.
#[cfg(not(unix))]
pub fn signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
