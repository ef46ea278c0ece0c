//! TLS on both sides, all on rustls with the ring provider.
//!
//! - [`authority`]: the local certificate authority, made once in the user's data directory and
//!   limited by X.509 name constraints to local names, and the server certificate it signs at
//!   each start; how to trust it in each common client.
//! - [`server`]: the server's identity ([`ServerTls`]): the generated certificate, or the user's
//!   `--tls-cert`/`--tls-key`; [`crate::accept`] tells a TLS ClientHello from plain HTTP by its
//!   first byte and hands the former to this acceptor, so one port serves both.
//! - [`client`]: the `rustls::ClientConfig` for every connection pusher-local itself makes
//!   (capture, replay, webhooks, the control client): the system's roots, the local CA and
//!   `--ca-file`, or `--insecure` when asked for loudly.
//!
//! This module sits at the bottom of the graph beside `protocol` and `auth`: it knows files and
//! certificates, not apps or sockets.

pub mod authority;
pub mod client;
pub mod server;

use std::path::PathBuf;

pub use authority::Authority;
/// The server side's acceptor, for [`crate::accept`].
pub use tokio_rustls::TlsAcceptor as Acceptor;
/// A server-side TLS connection over TCP, as [`crate::ws`] unwraps it after the upgrade.
pub type Stream = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
pub use client::ClientTrust;
pub use server::ServerTls;

/// The TLS settings of a server (from `--tls-*` flags, `PUSHER_LOCAL_TLS_*` and the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Where the local CA is kept (`--tls-dir`).
    pub dir: PathBuf,
    /// A certificate chain to serve instead of the generated one (`--tls-cert`, PEM).
    pub cert: Option<PathBuf>,
    /// The private key of `cert` (`--tls-key`, PEM).
    pub key: Option<PathBuf>,
    /// Names the generated certificate covers besides localhost, 127.0.0.1, ::1 and the listen
    /// address (`--tls-name`).
    pub names: Vec<String>,
    /// Extra CA bundles that outgoing connections trust (`--ca-file`).
    pub ca_files: Vec<PathBuf>,
    /// Outgoing connections accept any certificate (`--insecure`).
    pub insecure: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self { dir: default_dir(), cert: None, key: None, names: Vec::new(), ca_files: Vec::new(), insecure: false }
    }
}

impl Settings {
    /// What outgoing connections trust: the system's roots, the local CA in `dir`, `ca_files`.
    pub fn client_trust(&self) -> ClientTrust {
        ClientTrust { tls_dir: Some(self.dir.clone()), ca_files: self.ca_files.clone(), insecure: self.insecure }
    }
}

/// The platform's data directory for pusher-local: `$XDG_DATA_HOME/pusher-local` (else
/// `~/.local/share/pusher-local`) on Linux, `~/Library/Application Support/pusher-local` on
/// macOS, `%APPDATA%\pusher-local` on Windows.
pub fn default_dir() -> PathBuf {
    dirs::data_dir().unwrap_or_else(std::env::temp_dir).join("pusher-local")
}

/// The crypto provider every TLS configuration here is built with.
pub(crate) fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

/// Installs ring as the process's default rustls provider, for the libraries (the Redis client)
/// that build their own configuration with `ClientConfig::builder()`. Idempotent.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Everything that can go wrong with certificates and keys.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A PEM file held nothing usable.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// `--tls-cert` without `--tls-key` or the other way round.
    #[error("--tls-cert and --tls-key go together: give both (PEM files, e.g. from mkcert) or neither")]
    HalfPair,
    /// rcgen could not make a certificate.
    #[error("making the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the certificate and key.
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    /// A `--tls-name` that is neither a DNS name nor an IP address.
    #[error("--tls-name {0:?} is not a host name or an IP address")]
    BadName(String),
}
