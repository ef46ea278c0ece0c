//! The local certificate authority: made once in the TLS folder, kept there, and limited by X.509
//! name constraints to local names, so a developer who trusts it cannot be attacked with it for
//! any other site (were its key ever stolen, it could still only vouch for localhost, `*.test`,
//! loopback addresses and the names asked for with `--host`/`--tls-name`).
//!
//! Files, in [`Authority::dir`]:
//!
//! | file | what |
//! |---|---|
//! | `ca.pem` | the CA certificate: what users trust |
//! | `ca-key.pem` | its private key (owner-only) |
//! | `ca-names.txt` | names beyond the built-in local ones that the CA's constraints permit |
//! | `server.pem`, `server-key.pem` | the server certificate of the last start (owner-only key) |
//! | `.lock` | held while the folder is read or written (several servers may start at once) |
//!
//! A name the CA does not cover (a LAN address in `--host`, a `--tls-name` outside `.localhost`
//! and `.test`) makes a new CA that covers it and every name before it; the caller says so,
//! since the new CA must be trusted again.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose, NameConstraints, SanType,
};

use super::TlsError;

/// The CA certificate's file name.
pub const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca-key.pem";
const CA_NAMES: &str = "ca-names.txt";
/// The server certificate's file name.
pub const SERVER_CERT: &str = "server.pem";
/// The server key's file name.
pub const SERVER_KEY: &str = "server-key.pem";
const LOCK: &str = ".lock";

/// DNS subtrees every CA permits: `localhost` and `*.localhost`, `*.test` (RFC 6761; Valet's
/// and Herd's domains).
const LOCAL_DNS: [&str; 2] = ["localhost", "test"];

/// A host name or an IP address in a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Name {
    /// A DNS name (lower case).
    Dns(String),
    /// An IP address.
    Ip(IpAddr),
}

impl Name {
    /// Parses `--tls-name` / `--host` text: an IP address (brackets allowed) or a DNS name.
    ///
    /// # Errors
    /// [`TlsError::BadName`] for anything else.
    pub fn parse(text: &str) -> Result<Name, TlsError> {
        let trimmed = text.trim().trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = trimmed.parse::<IpAddr>() {
            return Ok(Name::Ip(ip));
        }
        let dns = trimmed.trim_end_matches('.').to_ascii_lowercase();
        let label_ok = |l: &str| {
            !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        let mut labels = dns.split('.').peekable();
        let wildcard = labels.peek() == Some(&"*");
        if wildcard {
            labels.next();
        }
        let rest: Vec<&str> = labels.collect();
        if dns.len() > 253 || rest.is_empty() || !rest.iter().all(|l| label_ok(l)) {
            return Err(TlsError::BadName(text.to_owned()));
        }
        Ok(Name::Dns(dns))
    }

    /// Whether the built-in constraints (localhost, `.test`, loopback) already cover this name.
    pub fn is_local(&self) -> bool {
        match self {
            Name::Dns(d) => LOCAL_DNS.iter().any(|base| dns_within(d, base)),
            Name::Ip(ip) => ip.is_loopback(),
        }
    }

    fn san(&self) -> Result<SanType, TlsError> {
        Ok(match self {
            Name::Dns(d) => SanType::DnsName(d.clone().try_into().map_err(|_| TlsError::BadName(d.clone()))?),
            Name::Ip(ip) => SanType::IpAddress(*ip),
        })
    }

    fn subtree(&self) -> GeneralSubtree {
        match self {
            Name::Dns(d) => GeneralSubtree::DnsName(d.trim_start_matches("*.").to_owned()),
            Name::Ip(ip) => {
                GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(*ip, if ip.is_ipv4() { 32 } else { 128 }))
            }
        }
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Name::Dns(d) => f.write_str(d),
            Name::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// `name` is `base` or a subdomain of it (the X.509 DNS constraint rule).
fn dns_within(name: &str, base: &str) -> bool {
    let name = name.trim_start_matches("*.");
    name == base || name.strip_suffix(base).is_some_and(|head| head.ends_with('.'))
}

/// What [`Authority::open`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// The CA was there and covers every name.
    Existing,
    /// There was no CA: one was made.
    Created,
    /// The CA did not cover these names: a new one was made that does (trust it again).
    Remade(Vec<Name>),
}

/// The local CA, loaded with its key.
pub struct Authority {
    dir: PathBuf,
    key: KeyPair,
    /// Names beyond the built-in local ones that this CA permits.
    extra: Vec<Name>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority").field("dir", &self.dir).field("extra", &self.extra).finish_non_exhaustive()
    }
}

/// Holds the folder's lock file while alive.
struct FolderLock(File);

impl FolderLock {
    fn take(dir: &Path) -> Result<FolderLock, TlsError> {
        create_dir(dir)?;
        let path = dir.join(LOCK);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| TlsError::File { path: path.clone(), source })?;
        file.lock().map_err(|source| TlsError::File { path, source })?;
        Ok(FolderLock(file))
    }
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

fn create_dir(dir: &Path) -> Result<(), TlsError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| TlsError::File { path: dir.to_owned(), source })
}

/// Writes `contents` to `path` through a temporary file and a rename, so a reader never sees
/// half a file; `secret` files are owner-only.
fn write_file(path: &Path, contents: &str, secret: bool) -> Result<(), TlsError> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let fail = |source| TlsError::File { path: path.to_owned(), source };
    let mut options = OpenOptions::new();
    options.create(true).truncate(true).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, if secret { 0o600 } else { 0o644 });
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(&tmp).map_err(fail)?;
    file.write_all(contents.as_bytes()).map_err(fail)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(fail)
}

fn read(path: &Path) -> Result<Option<String>, TlsError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TlsError::File { path: path.to_owned(), source }),
    }
}

/// The CA's subject, which names its key: every CA made anywhere has its own name, so a client
/// that trusts an older CA of this machine (or another machine's) reports an unknown issuer
/// rather than a bad signature. The issuer of every server certificate must name it exactly.
fn ca_subject(key: &KeyPair) -> DistinguishedName {
    use sha2::Digest as _;
    let id = hex::encode(&sha2::Sha256::digest(key.public_key_raw())[..4]);
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "pusher-local");
    dn.push(DnType::CommonName, format!("pusher-local development CA {id} (local names only)"));
    dn
}

/// The CA's parameters; the same every time for the same key and `extra`, so that an issuer can
/// be rebuilt from the stored key alone.
fn ca_params(key: &KeyPair, extra: &[Name]) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = ca_subject(key);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let mut permitted: Vec<GeneralSubtree> =
        LOCAL_DNS.iter().map(|d| GeneralSubtree::DnsName((*d).to_owned())).collect();
    permitted.push(GeneralSubtree::IpAddress(CidrSubnet::from_v4_prefix([127, 0, 0, 0], 8)));
    permitted
        .push(GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]), 128)));
    permitted.extend(extra.iter().map(Name::subtree));
    params.name_constraints = Some(NameConstraints { permitted_subtrees: permitted, excluded_subtrees: Vec::new() });
    params
}

/// `(today, today + days)` as certificate validity dates (midnight UTC).
fn validity(days: i64) -> (time_like::Date, time_like::Date) {
    let today = chrono::Utc::now().date_naive();
    (time_like::from(today - chrono::Days::new(1)), time_like::from(today + chrono::Duration::days(days)))
}

/// Dates for rcgen without a direct dependency on the `time` crate.
mod time_like {
    use chrono::Datelike;

    pub type Date = (i32, u8, u8);

    pub fn from(d: chrono::NaiveDate) -> Date {
        // Months and days always fit in a u8.
        (d.year(), d.month() as u8, d.day() as u8)
    }
}

fn set_validity(params: &mut CertificateParams, days: i64) {
    let ((y1, m1, d1), (y2, m2, d2)) = validity(days);
    params.not_before = rcgen::date_time_ymd(y1, m1, d1);
    params.not_after = rcgen::date_time_ymd(y2, m2, d2);
}

impl Authority {
    /// The CA certificate's path in `dir`.
    pub fn ca_path(dir: &Path) -> PathBuf {
        dir.join(CA_CERT)
    }

    /// Loads the CA in `dir`, making it (and the folder) when there is none, or making a new one
    /// when `wanted` holds a name it does not cover.
    ///
    /// # Errors
    /// The folder or its files cannot be read or written; a stored file is not PEM.
    pub fn open(dir: &Path, wanted: &[Name]) -> Result<(Authority, Opened), TlsError> {
        let _lock = FolderLock::take(dir)?;
        let (cert_path, key_path, names_path) = (dir.join(CA_CERT), dir.join(CA_KEY), dir.join(CA_NAMES));
        let stored = match (read(&cert_path)?, read(&key_path)?) {
            (Some(_), Some(key)) => Some(
                KeyPair::from_pem(&key)
                    .map_err(|e| TlsError::Pem { path: key_path.clone(), reason: format!("not a private key: {e}") })?,
            ),
            _ => None,
        };
        let extra: Vec<Name> = read(&names_path)?
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter_map(|l| Name::parse(l).ok())
            .collect();
        let missing: Vec<Name> =
            wanted.iter().filter(|n| !n.is_local() && !extra.iter().any(|e| covers(e, n))).cloned().collect();
        match stored {
            Some(key) if missing.is_empty() => Ok((Authority { dir: dir.to_owned(), key, extra }, Opened::Existing)),
            stored => {
                let opened = if stored.is_some() { Opened::Remade(missing.clone()) } else { Opened::Created };
                let mut all = if stored.is_some() { extra } else { Vec::new() };
                all.extend(missing);
                let authority = Self::create(dir, all)?;
                Ok((authority, opened))
            }
        }
    }

    fn create(dir: &Path, extra: Vec<Name>) -> Result<Authority, TlsError> {
        let key = KeyPair::generate()?;
        let mut params = ca_params(&key, &extra);
        set_validity(&mut params, 3650);
        let cert = params.self_signed(&key)?;
        write_file(&dir.join(CA_KEY), &key.serialize_pem(), true)?;
        write_file(&dir.join(CA_CERT), &cert.pem(), false)?;
        let names: String = extra.iter().map(|n| format!("{n}\n")).collect();
        write_file(&dir.join(CA_NAMES), &names, false)?;
        Ok(Authority { dir: dir.to_owned(), key, extra })
    }

    /// The folder the CA lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Signs a server certificate for `names` (with a fresh key) and writes it beside the CA as
    /// `server.pem` / `server-key.pem`, for other local servers to reuse. Returns `(cert PEM,
    /// key PEM)`.
    ///
    /// # Errors
    /// A name rcgen refuses, or a file that cannot be written.
    pub fn issue(&self, names: &[Name]) -> Result<(String, String), TlsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, names.first().map(ToString::to_string).unwrap_or_else(|| "localhost".into()));
        params.distinguished_name = dn;
        params.subject_alt_names = names.iter().map(Name::san).collect::<Result<_, _>>()?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        // Under the 398 days that browsers accept for a server certificate.
        set_validity(&mut params, 390);
        let issuer = Issuer::new(ca_params(&self.key, &self.extra), &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
        let _lock = FolderLock::take(&self.dir)?;
        write_file(&self.dir.join(SERVER_KEY), &key_pem, true)?;
        write_file(&self.dir.join(SERVER_CERT), &cert_pem, false)?;
        Ok((cert_pem, key_pem))
    }
}

/// `outer` (a permitted name of the CA) covers `name`.
fn covers(outer: &Name, name: &Name) -> bool {
    match (outer, name) {
        (Name::Dns(base), Name::Dns(d)) => dns_within(d, base.trim_start_matches("*.")),
        (Name::Ip(a), Name::Ip(b)) => a == b,
        _ => false,
    }
}

/// How to trust the CA at `ca` in the common clients: `(client, command)`, one line each.
pub fn trust_commands(ca: &Path) -> Vec<(&'static str, String)> {
    let ca = ca.display();
    vec![
        ("Node", format!("NODE_EXTRA_CA_CERTS={ca} node app.js")),
        ("Python (requests)", format!("REQUESTS_CA_BUNDLE={ca} python app.py   (replaces the default roots)")),
        ("PHP / curl", format!("CURL_CA_BUNDLE={ca} php artisan …   (or curl.cainfo in php.ini)")),
        (
            "Chromium / Firefox on Linux",
            format!("certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n pusher-local -i {ca}   (libnss3-tools)"),
        ),
        ("macOS", format!("sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain {ca}")),
        ("Windows", format!("certutil -user -addstore Root {ca}")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<Name> {
        list.iter().map(|n| Name::parse(n).unwrap()).collect()
    }

    #[test]
    fn names_parse_as_ip_or_dns() {
        assert_eq!(Name::parse("127.0.0.1").unwrap(), Name::Ip([127, 0, 0, 1].into()));
        assert_eq!(Name::parse("[::1]").unwrap(), Name::Ip("::1".parse().unwrap()));
        assert_eq!(Name::parse("MyApp.Test.").unwrap(), Name::Dns("myapp.test".into()));
        assert_eq!(Name::parse("*.dev.localhost").unwrap(), Name::Dns("*.dev.localhost".into()));
        for bad in ["", "a..b", "exa mple.com", "é.test", "*"] {
            assert!(Name::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn local_names_are_covered_by_every_ca() {
        for n in names(&["localhost", "api.localhost", "myapp.test", "127.0.0.1", "127.8.9.10", "::1"]) {
            assert!(n.is_local(), "{n}");
        }
        for n in names(&["example.com", "localhost.example.com", "notlocalhost", "192.168.1.5", "test.com"]) {
            assert!(!n.is_local(), "{n}");
        }
        assert!(covers(&Name::Dns("dev.internal".into()), &Name::Dns("a.dev.internal".into())));
        assert!(!covers(&Name::Dns("dev.internal".into()), &Name::Dns("xdev.internal".into())));
    }

    #[test]
    fn the_ca_is_made_once_kept_and_remade_for_a_name_it_does_not_cover() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, opened) = Authority::open(dir.path(), &names(&["localhost"])).unwrap();
        assert_eq!(opened, Opened::Created);
        let first = std::fs::read_to_string(dir.path().join(CA_CERT)).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(CA_KEY)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "the CA key is owner-only");
        }
        let (cert, key) = ca.issue(&names(&["localhost", "127.0.0.1", "::1"])).unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----") && key.contains("PRIVATE KEY"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SERVER_KEY)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "the server key is owner-only");
        }

        let (_, opened) = Authority::open(dir.path(), &names(&["localhost", "app.test"])).unwrap();
        assert_eq!(opened, Opened::Existing);
        assert_eq!(std::fs::read_to_string(dir.path().join(CA_CERT)).unwrap(), first, "kept");

        let (ca, opened) = Authority::open(dir.path(), &names(&["192.168.1.5"])).unwrap();
        assert_eq!(opened, Opened::Remade(names(&["192.168.1.5"])));
        assert_ne!(std::fs::read_to_string(dir.path().join(CA_CERT)).unwrap(), first);
        assert_eq!(ca.extra, names(&["192.168.1.5"]));
        let (_, opened) = Authority::open(dir.path(), &names(&["192.168.1.5", "localhost"])).unwrap();
        assert_eq!(opened, Opened::Existing, "the new CA keeps covering it");
    }
}
