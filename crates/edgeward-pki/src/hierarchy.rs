//! The hierarchy directory and its ceremonies: `init`, `rotate`, `revoke`, `show`.
//!
//! Layout of the directory (see docs/trust-model.md):
//! `root.pem`, `root.key` (encrypted), `signing.pem`, `signing.key`, `signing-chain.pem`,
//! `device-ca.pem`, `device-ca.key`, `crl.pem`, and `previous/` for rotated-out signing
//! certificates kept until they expire.

use std::{
    fs,
    path::{Path, PathBuf},
};

use rcgen::{
    CertificateRevocationListParams, KeyIdMethod, KeyPair, PublicKeyData, RevokedCertParams,
    SerialNumber,
};
use serde::Serialize;
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::FromDer;
use zeroize::Zeroizing;

use edgeward_core::keys::KeyAlgorithm;

use crate::{files, issue, keyfile, store::write_atomic};

/// Longest signing-certificate validity the ceremony will issue, in days.
pub const MAX_SIGNING_DAYS: i64 = 90;
/// Days before expiry at which `show` warns about the signing certificate.
pub const EXPIRY_WARNING_DAYS: i64 = 14;
/// Root CA validity, in years.
pub const ROOT_YEARS: i64 = 20;
/// Device CA validity, in years.
pub const DEVICE_CA_YEARS: i64 = 5;
/// How long a freshly signed CRL says it is current, in days.
pub const CRL_VALIDITY_DAYS: i64 = 30;
/// Certificates start this long before "now" to tolerate clock skew between machines.
pub const BACKDATE: Duration = Duration::minutes(5);

/// What went wrong in a ceremony.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The request breaks policy or the directory's state (e.g. `init` over an existing root).
    #[error("{0}")]
    Refused(String),
    /// A key or certificate could not be created, parsed or decrypted.
    #[error("{0}")]
    Crypto(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn crypto(e: impl std::fmt::Display) -> PkiError {
    PkiError::Crypto(e.to_string())
}

/// The root key for a ceremony: where it is (default: `root.key` in the directory; it may
/// live offline, e.g. on removable media) and its passphrase.
pub struct RootKey<'a> {
    /// The encrypted key file, if not `DIR/root.key`.
    pub path: Option<&'a Path>,
    /// Its passphrase.
    pub passphrase: &'a [u8],
}

/// A CRL entry: the revoked serial (DER integer bytes) and when it was revoked.
type Revoked = (Vec<u8>, OffsetDateTime);

/// One certificate of the hierarchy, as `show` reports it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CertSummary {
    /// `root`, `signing`, `previous-signing` or `device-ca`.
    pub role: String,
    /// Subject, RFC 4514.
    pub subject: String,
    /// Serial, hex.
    pub serial: String,
    /// Validity start, RFC 3339.
    pub not_before: String,
    /// Validity end, RFC 3339.
    pub not_after: String,
    /// Whole days until expiry (negative once expired).
    pub days_left: i64,
    /// Whether the CRL lists it.
    pub revoked: bool,
    /// The certificate file.
    pub path: PathBuf,
}

/// A key hierarchy directory.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    dir: PathBuf,
}

impl Hierarchy {
    /// Opens an existing hierarchy directory (`root.pem` must exist).
    pub fn open(dir: &Path) -> Result<Self, PkiError> {
        let h = Hierarchy {
            dir: dir.to_path_buf(),
        };
        if !h.path(files::ROOT_CERT).exists() {
            return Err(PkiError::Refused(format!(
                "{} holds no key hierarchy (no root.pem); run `edgeward pki init --dir {}` first",
                dir.display(),
                dir.display()
            )));
        }
        Ok(h)
    }

    /// A file of the hierarchy.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Runs the key ceremony in `dir`: root CA, first signing certificate (`signing_days`,
    /// at most 90), device CA and an empty CRL. Refuses a directory that holds any of
    /// [`INIT_OUTPUTS`] (no key is overwritten) and a path that is not a directory.
    pub fn init(
        dir: &Path,
        org: &str,
        passphrase: &[u8],
        signing_days: i64,
        signing_alg: KeyAlgorithm,
        now: OffsetDateTime,
    ) -> Result<Self, PkiError> {
        let (h, _) = Self::ceremony(dir, org, passphrase, signing_days, signing_alg, now, false)?;
        Ok(h)
    }

    /// [`Hierarchy::init`] over an existing hierarchy: once the arguments are checked, every
    /// one of [`INIT_OUTPUTS`] found in `dir` moves aside to `NAME.old-YYYYMMDDTHHMMSSZ`
    /// (`now`, UTC) in the same directory, so that no key is destroyed. Returns the new
    /// hierarchy and each move, from and to. Refuses, moving nothing, when a destination
    /// already exists.
    pub fn init_replacing(
        dir: &Path,
        org: &str,
        passphrase: &[u8],
        signing_days: i64,
        signing_alg: KeyAlgorithm,
        now: OffsetDateTime,
    ) -> Result<(Self, Vec<(PathBuf, PathBuf)>), PkiError> {
        Self::ceremony(dir, org, passphrase, signing_days, signing_alg, now, true)
    }

    fn ceremony(
        dir: &Path,
        org: &str,
        passphrase: &[u8],
        signing_days: i64,
        signing_alg: KeyAlgorithm,
        now: OffsetDateTime,
        replace: bool,
    ) -> Result<(Self, Vec<(PathBuf, PathBuf)>), PkiError> {
        check_signing_days(signing_days)?;
        if passphrase.len() < keyfile::MIN_PASSPHRASE_LEN {
            return Err(PkiError::Refused(format!(
                "the root passphrase must have at least {} bytes",
                keyfile::MIN_PASSPHRASE_LEN
            )));
        }
        refuse_non_directory(dir)?;
        fs::create_dir_all(dir).map_err(io(dir))?;
        let h = Hierarchy {
            dir: dir.to_path_buf(),
        };
        // No private key is ever replaced silently: any output of an earlier ceremony
        // (not only the root) stops `init`; `init_replacing` moves them aside instead.
        let moved = if replace {
            move_aside(dir, now)?
        } else {
            Vec::new()
        };
        let existing = existing_outputs(dir);
        if !existing.is_empty() {
            return Err(PkiError::Refused(format!(
                "{} already holds {}; refusing to overwrite it (--force moves the old files aside)",
                dir.display(),
                existing.join(", ")
            )));
        }
        let start = now - BACKDATE;
        let root_key = issue::generate_key(KeyAlgorithm::P256).map_err(crypto)?;
        let root_params = issue::root_params(org, start, start + Duration::days(365 * ROOT_YEARS));
        let root_cert = root_params.self_signed(&root_key).map_err(crypto)?;
        let root_key_der = Zeroizing::new(root_key.serialize_der());
        let root_key_pem =
            keyfile::encrypt_pkcs8(&root_key_der, passphrase).map_err(PkiError::Refused)?;
        h.write(files::ROOT_KEY, root_key_pem.as_bytes(), true)?;
        h.write(files::ROOT_CERT, root_cert.pem().as_bytes(), false)?;

        let issuer = issue::issuer_from_pem(&root_cert.pem(), root_key).map_err(crypto)?;
        let device_key = issue::generate_key(KeyAlgorithm::P256).map_err(crypto)?;
        let device_cert =
            issue::device_ca_params(org, start, start + Duration::days(365 * DEVICE_CA_YEARS))
                .signed_by(&device_key, &issuer)
                .map_err(crypto)?;
        h.write(
            files::DEVICE_CA_KEY,
            keyfile::pkcs8_pem(&device_key.serialize_der()).as_bytes(),
            true,
        )?;
        h.write(files::DEVICE_CA_CERT, device_cert.pem().as_bytes(), false)?;

        h.issue_signing(&issuer, org, signing_days, signing_alg, now)?;
        h.write_crl(&issuer, &[], 1, now)?;
        Ok((h, moved))
    }

    /// Issues the next signing certificate (new key, valid from now for `days`); the current
    /// one moves to `previous/` and stays usable until it expires.
    pub fn rotate(
        &self,
        root: &RootKey<'_>,
        days: i64,
        alg: KeyAlgorithm,
        now: OffsetDateTime,
    ) -> Result<CertSummary, PkiError> {
        check_signing_days(days)?;
        let issuer = self.root_issuer(root)?;
        let current = self.read(files::SIGNING_CERT)?;
        let serial = edgeward_core::cert_policy::cert_info(&pem_der(&current)?)
            .map_err(crypto)?
            .serial;
        let prev = self.path(files::PREVIOUS);
        fs::create_dir_all(&prev).map_err(io(&prev))?;
        let old_key = self.read(files::SIGNING_KEY)?;
        write_atomic(
            &prev.join(format!("signing-{serial}.key")),
            old_key.as_bytes(),
            true,
        )
        .map_err(io(&prev))?;
        write_atomic(
            &prev.join(format!("signing-{serial}.pem")),
            current.as_bytes(),
            false,
        )
        .map_err(io(&prev))?;
        self.prune_previous(now)?;
        let org = org_of(&current);
        self.issue_signing(&issuer, &org, days, alg, now)?;
        self.show(now)?
            .into_iter()
            .find(|c| c.role == "signing")
            .ok_or_else(|| PkiError::Crypto("the new signing certificate is missing".into()))
    }

    /// Adds the certificate with serial `serial_hex` to the root-signed CRL. Returns whether
    /// the serial belongs to a certificate of this directory (a lost certificate can still be
    /// revoked by its serial; the caller should warn when it is unknown).
    pub fn revoke(
        &self,
        root: &RootKey<'_>,
        serial_hex: &str,
        now: OffsetDateTime,
    ) -> Result<bool, PkiError> {
        let serial_hex = normalize_serial(serial_hex);
        let serial = hex_bytes(&serial_hex).ok_or_else(|| {
            PkiError::Refused(format!("{serial_hex:?} is not a hex serial number"))
        })?;
        let issuer = self.root_issuer(root)?;
        let (mut revoked, number) = self.crl_state()?;
        if revoked.iter().any(|(s, _)| s == &serial) {
            return Err(PkiError::Refused(format!(
                "serial {serial_hex} is already revoked"
            )));
        }
        let known = self.show(now)?.iter().any(|c| c.serial == serial_hex);
        revoked.push((serial, now));
        self.write_crl(&issuer, &revoked, number + 1, now)?;
        Ok(known)
    }

    /// Re-signs the CRL with the same entries, a higher number and fresh dates.
    pub fn refresh_crl(&self, root: &RootKey<'_>, now: OffsetDateTime) -> Result<(), PkiError> {
        let issuer = self.root_issuer(root)?;
        let (revoked, number) = self.crl_state()?;
        self.write_crl(&issuer, &revoked, number + 1, now)
    }

    /// Every certificate of the hierarchy with validity and days left.
    pub fn show(&self, now: OffsetDateTime) -> Result<Vec<CertSummary>, PkiError> {
        let (revoked, _) = self.crl_state()?;
        let mut files: Vec<(String, PathBuf)> = vec![
            ("root".into(), self.path(files::ROOT_CERT)),
            ("signing".into(), self.path(files::SIGNING_CERT)),
            ("device-ca".into(), self.path(files::DEVICE_CA_CERT)),
        ];
        if let Ok(entries) = fs::read_dir(self.path(files::PREVIOUS)) {
            let mut prev: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "pem"))
                .collect();
            prev.sort();
            files.extend(prev.into_iter().map(|p| ("previous-signing".into(), p)));
        }
        let mut out = Vec::new();
        for (role, path) in files {
            let pem = fs::read_to_string(&path).map_err(io(&path))?;
            let info = edgeward_core::cert_policy::cert_info(&pem_der(&pem)?).map_err(crypto)?;
            let serial_bytes = hex_bytes(&info.serial).unwrap_or_default();
            out.push(CertSummary {
                role,
                subject: info.subject,
                serial: info.serial,
                not_before: edgeward_core::civil::format_unix(info.not_before),
                not_after: edgeward_core::civil::format_unix(info.not_after),
                days_left: (info.not_after - now.unix_timestamp()).div_euclid(86_400),
                revoked: revoked.iter().any(|(s, _)| s == &serial_bytes),
                path,
            });
        }
        Ok(out)
    }

    /// Warnings an operator must see: a signing certificate expiring within 14 days, expired
    /// or revoked.
    pub fn warnings(summaries: &[CertSummary]) -> Vec<String> {
        let mut w = Vec::new();
        for c in summaries {
            if c.role == "signing" && c.days_left < 0 {
                w.push(format!(
                    "the signing certificate expired on {}; run `edgeward pki rotate`",
                    c.not_after
                ));
            } else if c.role == "signing" && c.days_left < EXPIRY_WARNING_DAYS {
                w.push(format!(
                    "the signing certificate expires in {} days ({}); run `edgeward pki rotate`",
                    c.days_left, c.not_after
                ));
            }
            if c.revoked && c.role != "previous-signing" {
                w.push(format!(
                    "the {} certificate (serial {}) is revoked",
                    c.role, c.serial
                ));
            }
        }
        w
    }

    fn issue_signing(
        &self,
        issuer: &rcgen::Issuer<'_, KeyPair>,
        org: &str,
        days: i64,
        alg: KeyAlgorithm,
        now: OffsetDateTime,
    ) -> Result<(), PkiError> {
        let start = now - BACKDATE;
        let key = issue::generate_key(alg).map_err(crypto)?;
        let cert = issue::signing_params(org, start, start + Duration::days(days), true)
            .signed_by(&key, issuer)
            .map_err(crypto)?;
        let root_pem = self.read(files::ROOT_CERT)?;
        let key_der = keyfile::portable_pkcs8(&key.serialize_der()).map_err(PkiError::Crypto)?;
        self.write(
            files::SIGNING_KEY,
            keyfile::pkcs8_pem(&key_der).as_bytes(),
            true,
        )?;
        self.write(files::SIGNING_CERT, cert.pem().as_bytes(), false)?;
        self.write(
            files::SIGNING_CHAIN,
            format!("{}{}", cert.pem(), root_pem).as_bytes(),
            false,
        )
    }

    fn root_issuer(&self, root: &RootKey<'_>) -> Result<rcgen::Issuer<'static, KeyPair>, PkiError> {
        let path = root
            .path
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.path(files::ROOT_KEY));
        let key_pem = fs::read_to_string(&path).map_err(io(&path))?;
        let der = keyfile::decrypt_pkcs8(&key_pem, root.passphrase)
            .map_err(|e| PkiError::Refused(format!("{}: {e}", path.display())))?;
        let key = KeyPair::try_from(der.as_slice()).map_err(crypto)?;
        let issuer = issue::issuer_from_pem(&self.read(files::ROOT_CERT)?, key).map_err(crypto)?;
        let root_cert = pem_der(&self.read(files::ROOT_CERT)?)?;
        let cert_key =
            edgeward_core::keys::PublicKey::from_certificate_der(&root_cert).map_err(crypto)?;
        if cert_key.to_spki_der() != issuer.key().subject_public_key_info() {
            return Err(PkiError::Refused(format!(
                "{} is not the key of {}",
                path.display(),
                self.path(files::ROOT_CERT).display()
            )));
        }
        Ok(issuer)
    }

    fn crl_state(&self) -> Result<(Vec<Revoked>, u64), PkiError> {
        let pem = self.read(files::CRL)?;
        let der = edgeward_core::pem::parse_labelled(pem.as_bytes(), "X509 CRL").map_err(crypto)?;
        let (_, crl) = x509_parser::revocation_list::CertificateRevocationList::from_der(&der[0])
            .map_err(|e| PkiError::Crypto(format!("crl.pem: {e}")))?;
        let revoked = crl
            .iter_revoked_certificates()
            .map(|r| {
                let when = OffsetDateTime::from_unix_timestamp(r.revocation_date.timestamp())
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH);
                (r.raw_serial().to_vec(), when)
            })
            .collect();
        let number = crl
            .crl_number()
            .and_then(|n| u64::try_from(n.clone()).ok())
            .unwrap_or(1);
        Ok((revoked, number))
    }

    fn write_crl(
        &self,
        issuer: &rcgen::Issuer<'_, KeyPair>,
        revoked: &[Revoked],
        number: u64,
        now: OffsetDateTime,
    ) -> Result<(), PkiError> {
        let params = CertificateRevocationListParams {
            this_update: now,
            next_update: now + Duration::days(CRL_VALIDITY_DAYS),
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|(serial, when)| RevokedCertParams {
                    serial_number: SerialNumber::from_slice(serial),
                    revocation_time: *when,
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(issuer).map_err(crypto)?;
        self.write(files::CRL, crl.pem().map_err(crypto)?.as_bytes(), false)
    }

    fn prune_previous(&self, now: OffsetDateTime) -> Result<(), PkiError> {
        let prev = self.path(files::PREVIOUS);
        let Ok(entries) = fs::read_dir(&prev) else {
            return Ok(());
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.extension().is_none_or(|x| x != "pem") {
                continue;
            }
            let pem = fs::read_to_string(&path).map_err(io(&path))?;
            let info = edgeward_core::cert_policy::cert_info(&pem_der(&pem)?).map_err(crypto)?;
            if info.not_after < now.unix_timestamp() {
                fs::remove_file(path.with_extension("key")).ok();
                fs::remove_file(&path).map_err(io(&path))?;
            }
        }
        Ok(())
    }

    fn read(&self, name: &str) -> Result<String, PkiError> {
        let p = self.path(name);
        fs::read_to_string(&p).map_err(io(&p))
    }

    fn write(&self, name: &str, data: &[u8], secret: bool) -> Result<(), PkiError> {
        let p = self.path(name);
        write_atomic(&p, data, secret).map_err(io(&p))
    }
}

/// Everything `init` writes, plus `previous/` (rotated-out signing keys): `init` refuses a
/// directory holding any of them, and `move_aside` moves them.
pub const INIT_OUTPUTS: [&str; 9] = [
    files::ROOT_KEY,
    files::ROOT_CERT,
    files::SIGNING_KEY,
    files::SIGNING_CERT,
    files::SIGNING_CHAIN,
    files::DEVICE_CA_KEY,
    files::DEVICE_CA_CERT,
    files::CRL,
    files::PREVIOUS,
];

/// Moves each of [`INIT_OUTPUTS`] found in `dir` to `NAME.old-YYYYMMDDTHHMMSSZ`, or none
/// when one destination exists.
fn move_aside(dir: &Path, now: OffsetDateTime) -> Result<Vec<(PathBuf, PathBuf)>, PkiError> {
    let now = now.to_offset(time::UtcOffset::UTC);
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let moves: Vec<(PathBuf, PathBuf)> = existing_outputs(dir)
        .into_iter()
        .map(|name| (dir.join(name), dir.join(format!("{name}.old-{stamp}"))))
        .collect();
    if let Some((_, to)) = moves.iter().find(|(_, to)| to.symlink_metadata().is_ok()) {
        return Err(PkiError::Refused(format!(
            "{} already exists; refusing to move the old files over it",
            to.display()
        )));
    }
    for (from, to) in &moves {
        fs::rename(from, to).map_err(io(from))?;
    }
    Ok(moves)
}

/// The outputs of `init` present in `dir` (a dangling symbolic link counts).
fn existing_outputs(dir: &Path) -> Vec<&'static str> {
    INIT_OUTPUTS
        .into_iter()
        .filter(|name| dir.join(name).symlink_metadata().is_ok())
        .collect()
}

/// Refuses `dir` when it, or the nearest of its ancestors that exists, is not a directory
/// (the OS would only say "File exists" or "Not a directory" about some path).
fn refuse_non_directory(dir: &Path) -> Result<(), PkiError> {
    if let Some(existing) = dir.ancestors().find(|p| p.exists()) {
        if !existing.is_dir() {
            return Err(PkiError::Refused(format!(
                "{} is not a directory",
                existing.display()
            )));
        }
    }
    Ok(())
}

fn check_signing_days(days: i64) -> Result<(), PkiError> {
    if !(1..=MAX_SIGNING_DAYS).contains(&days) {
        return Err(PkiError::Refused(format!(
            "a signing certificate may be valid for 1 to {MAX_SIGNING_DAYS} days, not {days}"
        )));
    }
    Ok(())
}

fn pem_der(pem: &str) -> Result<Vec<u8>, PkiError> {
    let mut blocks =
        edgeward_core::pem::parse_labelled(pem.as_bytes(), "CERTIFICATE").map_err(crypto)?;
    Ok(blocks.swap_remove(0))
}

fn org_of(cert_pem: &str) -> String {
    pem_der(cert_pem)
        .ok()
        .and_then(|der| {
            let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
            let org = cert
                .subject()
                .iter_organization()
                .next()?
                .as_str()
                .ok()?
                .to_string();
            Some(org)
        })
        .unwrap_or_else(|| "Edgeward".into())
}

/// A serial as `pki show` prints it: lowercase hex, no `0x` prefix, no colons.
pub fn normalize_serial(serial: &str) -> String {
    let s = serial.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    s.to_ascii_lowercase().replace(':', "")
}

fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}
