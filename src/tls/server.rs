//! The server's TLS identity: the user's `--tls-cert`/`--tls-key`, or a certificate signed by the
//! local CA for localhost, 127.0.0.1, ::1, the listen address and every `--tls-name`.
//!
//! Made once before the server starts (about a millisecond once the CA exists: one P-256 key
//! and one signature); the acceptor is shared by every listener.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::authority::{Authority, Name, Opened};
use super::{Settings, TlsError};

/// Where the served certificate came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// Signed by the local CA.
    Generated {
        /// The CA certificate users trust.
        ca: PathBuf,
        /// What opening the CA did (made now, remade for a new name, or already there).
        opened: Opened,
        /// The names the certificate covers.
        names: Vec<Name>,
    },
    /// The user's own files.
    Files {
        /// `--tls-cert`.
        cert: PathBuf,
        /// `--tls-key`.
        key: PathBuf,
    },
}

/// The acceptor and what it serves.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: super::Acceptor,
    identity: Identity,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").field("identity", &self.identity).finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Prepares the identity for a server listening on `hosts`.
    ///
    /// # Errors
    /// Unreadable or invalid `--tls-cert`/`--tls-key`, half a pair, a bad `--tls-name`, or a
    /// TLS folder that cannot be written.
    pub fn prepare(settings: &Settings, hosts: &[IpAddr]) -> Result<ServerTls, TlsError> {
        let (chain, key, identity) = match (&settings.cert, &settings.key) {
            (Some(cert), Some(key)) => {
                let chain = load_chain(cert)?;
                let private = load_key(key)?;
                (chain, private, Identity::Files { cert: cert.clone(), key: key.clone() })
            }
            (None, None) => {
                let names = names(settings, hosts)?;
                let (authority, opened) = Authority::open(&settings.dir, &names)?;
                let (cert_pem, key_pem) = authority.issue(&names)?;
                let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| pem_error(&settings.dir, e))?;
                let private =
                    PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| pem_error(&settings.dir, e))?;
                let ca = Authority::ca_path(&settings.dir);
                (chain, private, Identity::Generated { ca, opened, names })
            }
            _ => return Err(TlsError::HalfPair),
        };
        let mut config = rustls::ServerConfig::builder_with_provider(super::provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        // The Pusher protocol is HTTP/1.1: WebSocket upgrades and the SDKs' REST calls.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ServerTls { acceptor: super::Acceptor::from(Arc::new(config)), identity })
    }

    /// The acceptor for TLS connections.
    pub fn acceptor(&self) -> &super::Acceptor {
        &self.acceptor
    }

    /// Where the certificate came from.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Why a client's TLS handshake failed, with what to do when the client did not trust us.
    pub fn explain_failure(&self, error: &std::io::Error) -> String {
        use rustls::AlertDescription as A;
        let alert = error.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()).and_then(|e| match e {
            rustls::Error::AlertReceived(alert) => Some(*alert),
            _ => None,
        });
        match (alert, &self.identity) {
            (Some(A::UnknownCA | A::BadCertificate | A::CertificateUnknown), Identity::Generated { ca, .. }) => {
                format!(
                "the client does not trust pusher-local's certificate: trust the CA {} (`pusher-local tls` shows how)",
                ca.display()
            )
            }
            (Some(A::UnknownCA | A::BadCertificate | A::CertificateUnknown), Identity::Files { cert, .. }) => {
                format!("the client does not trust the certificate {}", cert.display())
            }
            _ => error.to_string(),
        }
    }
}

/// localhost, 127.0.0.1, ::1, the listen addresses that are not wildcards, then `--tls-name`s.
fn names(settings: &Settings, hosts: &[IpAddr]) -> Result<Vec<Name>, TlsError> {
    let mut names = vec![
        Name::Dns("localhost".into()),
        Name::Ip([127, 0, 0, 1].into()),
        Name::Ip(IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])),
    ];
    for host in hosts.iter().filter(|h| !h.is_unspecified()) {
        names.push(Name::Ip(*host));
    }
    for name in &settings.names {
        names.push(Name::parse(name)?);
    }
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    Ok(names)
}

fn pem_error(path: &Path, e: rustls::pki_types::pem::Error) -> TlsError {
    TlsError::Pem { path: path.to_owned(), reason: e.to_string() }
}

fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::File { path: path.to_owned(), source })?;
    let chain =
        CertificateDer::pem_slice_iter(&bytes).collect::<Result<Vec<_>, _>>().map_err(|e| pem_error(path, e))?;
    if chain.is_empty() {
        return Err(TlsError::Pem { path: path.to_owned(), reason: "no CERTIFICATE block (expected PEM)".into() });
    }
    Ok(chain)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::File { path: path.to_owned(), source })?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            TlsError::Pem { path: path.to_owned(), reason: "no PRIVATE KEY block (expected PEM)".into() }
        }
        e => pem_error(path, e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_identity_covers_loopback_the_host_and_extra_names() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings { dir: dir.path().to_owned(), names: vec!["app.test".into()], ..Settings::default() };
        let tls = ServerTls::prepare(&settings, &["0.0.0.0".parse().unwrap(), "10.1.2.3".parse().unwrap()]).unwrap();
        let Identity::Generated { ca, opened, names } = tls.identity() else { panic!("{:?}", tls.identity()) };
        assert_eq!(ca, &dir.path().join("ca.pem"));
        assert_eq!(opened, &Opened::Created);
        let shown: Vec<String> = names.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["localhost", "127.0.0.1", "::1", "10.1.2.3", "app.test"]);
    }

    #[test]
    fn user_files_must_come_in_pairs_and_be_pem() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        std::fs::write(&cert, "not pem").unwrap();
        let half = Settings { cert: Some(cert.clone()), ..Settings::default() };
        assert!(matches!(ServerTls::prepare(&half, &[]), Err(TlsError::HalfPair)));
        let both = Settings { cert: Some(cert.clone()), key: Some(cert.clone()), ..Settings::default() };
        let err = ServerTls::prepare(&both, &[]).unwrap_err().to_string();
        assert!(err.contains("c.pem") && err.contains("CERTIFICATE"), "{err}");
    }
}
