//! The TLS configuration of every connection pusher-local makes itself: `capture` (wss://),
//! `replay` and the control client (https://), webhooks to https:// endpoints.
//!
//! Certificates are verified against the system's roots, plus the local CA (so a pusher-local
//! on https is trusted by another pusher-local without a flag), plus each `--ca-file`. An
//! invalid certificate is an error that names the host and the reason ([`explain`]); the only
//! way around it is `--insecure`, which the commands print loudly.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::authority::Authority;
use super::TlsError;

/// What outgoing connections trust.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTrust {
    /// The TLS folder whose `ca.pem` is trusted when it exists.
    pub tls_dir: Option<PathBuf>,
    /// Extra PEM bundles (`--ca-file`).
    pub ca_files: Vec<PathBuf>,
    /// Accept any certificate (`--insecure`).
    pub insecure: bool,
}

impl ClientTrust {
    /// The PEM certificates to trust besides the system's roots: the local CA (when it exists)
    /// and every `--ca-file` (which must be readable and hold at least one certificate).
    ///
    /// # Errors
    /// An unreadable or empty `--ca-file`.
    pub fn extra_roots(&self) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let mut certs = Vec::new();
        if let Some(dir) = &self.tls_dir {
            let ca = Authority::ca_path(dir);
            if let Ok(bytes) = std::fs::read(&ca) {
                certs.extend(CertificateDer::pem_slice_iter(&bytes).filter_map(Result::ok));
            }
        }
        for path in &self.ca_files {
            let bytes = std::fs::read(path).map_err(|source| TlsError::File { path: path.clone(), source })?;
            let found = CertificateDer::pem_slice_iter(&bytes)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TlsError::Pem { path: path.clone(), reason: e.to_string() })?;
            if found.is_empty() {
                return Err(TlsError::Pem { path: path.clone(), reason: "no CERTIFICATE block (expected PEM)".into() });
            }
            certs.extend(found);
        }
        Ok(certs)
    }

    /// The rustls client configuration (HTTP/1.1 over TLS).
    ///
    /// # Errors
    /// An unreadable or empty `--ca-file`.
    pub fn config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let builder = ClientConfig::builder_with_provider(super::provider()).with_safe_default_protocol_versions()?;
        let config = if self.insecure {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyCertificate)).with_no_client_auth()
        } else {
            let mut roots = RootCertStore::empty();
            // Unreadable system certificates are skipped: the local CA and --ca-file still count.
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            roots.add_parsable_certificates(self.extra_roots()?);
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        Ok(Arc::new(config))
    }
}

/// Why a connection failed, in words, when the cause was TLS (found anywhere in `error`'s
/// source chain): an untrusted issuer, an expired certificate, a name mismatch…
pub fn explain(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(rustls) = e.downcast_ref::<rustls::Error>() {
            return Some(describe(rustls));
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(rustls) = io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
                return Some(describe(rustls));
            }
        }
        // Some layers (hyper-util's connector) box their cause so that it no longer downcasts;
        // rustls's own wording still says what happened.
        if let Some(text) = e.to_string().strip_prefix("invalid peer certificate: ") {
            return Some(describe_certificate(text));
        }
        current = e.source();
    }
    None
}

/// [`describe`] from the `Debug` name of a `CertificateError`, as rustls's message gives it.
fn describe_certificate(name: &str) -> String {
    use rustls::CertificateError as C;
    let error = match name.split(['(', ' ', '{']).next().unwrap_or_default() {
        "UnknownIssuer" => C::UnknownIssuer,
        "BadSignature" => C::BadSignature,
        "Expired" | "ExpiredContext" => C::Expired,
        "NotValidForName" | "NotValidForNameContext" => C::NotValidForName,
        _ => return format!("its certificate is invalid ({name})"),
    };
    describe(&rustls::Error::InvalidCertificate(error))
}

/// Why a connection failed, in words: the TLS reason when there is one ([`explain`]), else the
/// error and each of its causes.
pub fn reason(error: &(dyn std::error::Error + 'static)) -> String {
    if let Some(tls) = explain(error) {
        return tls;
    }
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn describe(error: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match error {
        // BadSignature: signed by another key under a trusted CA's name (a CA made again).
        rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => {
            "its certificate is not signed by a CA this machine trusts (pass --ca-file FILE with the CA, \
             or --insecure to skip the check)"
                .into()
        }
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "its certificate has expired".into()
        }
        rustls::Error::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            "its certificate is not valid for this host name".into()
        }
        rustls::Error::InvalidCertificate(other) => format!("its certificate is invalid ({other:?})"),
        other => format!("TLS failed: {other}"),
    }
}

/// `--insecure`: every certificate is accepted; handshake signatures are still checked so the
/// connection is at least internally consistent.
#[derive(Debug)]
struct AnyCertificate;

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &super::provider().signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &super::provider().signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        super::provider().signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let trust = ClientTrust { ca_files: vec![empty.clone()], ..ClientTrust::default() };
        assert!(trust.config().unwrap_err().to_string().contains("empty.pem"));
        let trust = ClientTrust { ca_files: vec![dir.path().join("absent.pem")], ..ClientTrust::default() };
        assert!(trust.config().unwrap_err().to_string().contains("absent.pem"));
    }

    #[test]
    fn the_local_ca_is_trusted_when_it_exists() {
        let dir = tempfile::tempdir().unwrap();
        let trust = ClientTrust { tls_dir: Some(dir.path().to_owned()), ..ClientTrust::default() };
        assert!(trust.extra_roots().unwrap().is_empty());
        super::super::Authority::open(dir.path(), &[]).unwrap();
        assert_eq!(trust.extra_roots().unwrap().len(), 1);
    }
}
