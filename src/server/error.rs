//! [`Error`]: what can stop the server at start-up (the config, binding a port, reaching
//! Redis, the recordings database, `--replay` fixtures, TLS). `main` prints it and exits 2.
//! What a connected client does wrong is `crate::error`'s, far below.

use std::net::SocketAddr;

use crate::config::ConfigError;
use crate::recorder::watch::WatchError;
use crate::recorder::{FixtureError, StoreError};

/// Failures that stop the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Settings could not be resolved.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener could not be opened. For an address in use: `cannot listen on
    /// 127.0.0.1:6001: address in use (by node, pid 4242); pick another with --port 6002`.
    #[error("cannot listen on {addr}: {}", bind_reason(.error, .owner.as_ref(), .instead.as_deref()))]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why (said in the message, so not a `source` said twice).
        error: std::io::Error,
        /// The process holding the port, when it could be told (address in use, Linux).
        owner: Option<crate::port_owner::Owner>,
        /// What to pass instead (address in use): `--port 6002`.
        instead: Option<String>,
    },
    /// The recordings database could not be opened for `--record`.
    #[error("--record")]
    Record(#[source] StoreError),
    /// `--replay` names a fixture that neither the folder nor a file has.
    #[error("--replay {name}: no fixture named {name:?} in {dir}, and no such file")]
    UnknownFixture {
        /// What was asked for.
        name: String,
        /// The fixtures folder.
        dir: String,
    },
    /// A `--replay` file is not a valid fixture.
    #[error("--replay")]
    Fixture(#[source] FixtureError),
    /// The fixtures folder cannot be watched.
    #[error(transparent)]
    Watch(#[from] WatchError),
    /// `--redis-url` names a Redis that does not answer.
    #[error(transparent)]
    Broker(#[from] crate::broker::ConnectError),
    /// The TLS certificate could not be loaded or made.
    #[error("TLS: {0}")]
    Tls(#[source] crate::tls::TlsError),
}

/// A convenient alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// [`Error::Bind`]'s reason: `address in use (by node, pid 4242); pick another with --port
/// 6002`, or the system's words for any other failure.
fn bind_reason(error: &std::io::Error, owner: Option<&crate::port_owner::Owner>, instead: Option<&str>) -> String {
    if error.kind() != std::io::ErrorKind::AddrInUse {
        return error.to_string();
    }
    let mut reason = "address in use".to_owned();
    if let Some(owner) = owner {
        reason.push_str(&format!(" (by {owner})"));
    }
    if let Some(instead) = instead {
        reason.push_str(&format!("; pick another with {instead}"));
    }
    reason
}
