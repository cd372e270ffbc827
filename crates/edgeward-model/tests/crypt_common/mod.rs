//! Shared fixture of the verified-loading tests: a real key hierarchy (root, signing
//! certificate, CRL), devices as `soft` secure elements, and an element wrapper that counts
//! key agreements so a test can prove decryption never started.
#![allow(dead_code)]

use std::{
    fs,
    path::Path,
    sync::atomic::{AtomicUsize, Ordering},
};

use edgeward_artifact::{
    bundle_signing::{sign_path, SignOptions},
    NoProgress,
};
use edgeward_core::{
    bundle::Bundle,
    cert_policy::Policy,
    keys::{PublicKey, SigningKey},
    pem,
    verify::Trust,
};
use edgeward_pki::Hierarchy;
use edgeward_se::{KeyAlgorithm, SeError, SecureElement};
use zeroize::Zeroizing;

pub(crate) struct Pki {
    pub(crate) _tmp: tempfile::TempDir,
    pub(crate) pki: Hierarchy,
    pub(crate) now: u64,
    pub(crate) roots: Vec<Vec<u8>>,
    pub(crate) crls: Vec<Vec<u8>>,
}

pub(crate) fn pki() -> Pki {
    let tmp = tempfile::tempdir().unwrap();
    let now = time::OffsetDateTime::now_utc();
    let pki = Hierarchy::init(
        &tmp.path().join("pki"),
        "Crypt",
        b"a passphrase for tests",
        90,
        KeyAlgorithm::P256,
        now,
    )
    .unwrap();
    let roots =
        pem::parse_labelled(&fs::read(pki.path("root.pem")).unwrap(), "CERTIFICATE").unwrap();
    let crls = pem::parse_labelled(&fs::read(pki.path("crl.pem")).unwrap(), "X509 CRL").unwrap();
    Pki {
        _tmp: tmp,
        pki,
        now: now.unix_timestamp() as u64,
        roots,
        crls,
    }
}

impl Pki {
    pub(crate) fn trust(&self) -> Trust<'_> {
        Trust::Roots {
            roots: &self.roots,
            crls: &self.crls,
            policy: Policy::default(),
        }
    }

    /// Signs the plaintext model file (sharded, so verification hashes on every core).
    pub(crate) fn sign(&self, model: &Path) -> Bundle {
        self.sign_with(model, Some(1 << 20))
    }

    /// Signs the plaintext model file with `shard_size` (`None`: one digest per file).
    pub(crate) fn sign_with(&self, model: &Path, shard_size: Option<u64>) -> Bundle {
        let key =
            SigningKey::from_pem(&fs::read(self.pki.path("signing.key")).unwrap(), None).unwrap();
        let chain = pem::parse_labelled(
            &fs::read(self.pki.path("signing-chain.pem")).unwrap(),
            "CERTIFICATE",
        )
        .unwrap();
        sign_path(
            model,
            &key,
            Some(chain),
            &SignOptions {
                shard_size,
                ignore_paths: vec![],
                ignore_git_paths: true,
                signed_at: self.now,
            },
            &NoProgress,
        )
        .unwrap()
    }
}

/// A device: a soft element with a P-256 key in slot `device`.
pub(crate) struct Device {
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) se: Counting,
    pub(crate) key: PublicKey,
}

pub(crate) fn device() -> Device {
    let dir = tempfile::tempdir().unwrap();
    let se = edgeward_se::open(&format!("soft:{}", dir.path().display())).unwrap();
    let key = se.generate_key("device", KeyAlgorithm::P256).unwrap();
    Device {
        _dir: dir,
        se: Counting {
            inner: se,
            ecdh_calls: AtomicUsize::new(0),
        },
        key,
    }
}

/// A real element that counts ECDH operations (every other call passes straight through).
pub(crate) struct Counting {
    pub(crate) inner: Box<dyn SecureElement>,
    pub(crate) ecdh_calls: AtomicUsize,
}

impl Counting {
    pub(crate) fn ecdh_calls(&self) -> usize {
        self.ecdh_calls.load(Ordering::SeqCst)
    }
}

impl SecureElement for Counting {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    fn generate_key(&self, slot: &str, a: KeyAlgorithm) -> Result<PublicKey, SeError> {
        self.inner.generate_key(slot, a)
    }
    fn public_key(&self, slot: &str) -> Result<PublicKey, SeError> {
        self.inner.public_key(slot)
    }
    fn sign(&self, slot: &str, m: &[u8]) -> Result<Vec<u8>, SeError> {
        self.inner.sign(slot, m)
    }
    fn sign_digest(&self, slot: &str, d: &[u8; 32]) -> Result<Vec<u8>, SeError> {
        self.inner.sign_digest(slot, d)
    }
    fn ecdh(&self, slot: &str, peer: &[u8]) -> Result<Zeroizing<[u8; 32]>, SeError> {
        self.ecdh_calls.fetch_add(1, Ordering::SeqCst);
        self.inner.ecdh(slot, peer)
    }
    fn random(&self, out: &mut [u8]) -> Result<(), SeError> {
        self.inner.random(out)
    }
    fn counter(&self, n: &str) -> Result<u64, SeError> {
        self.inner.counter(n)
    }
    fn increment_counter(&self, n: &str) -> Result<u64, SeError> {
        self.inner.increment_counter(n)
    }
    fn time_floor(&self) -> Result<u64, SeError> {
        self.inner.time_floor()
    }
    fn raise_time_floor(&self, t: u64) -> Result<u64, SeError> {
        self.inner.raise_time_floor(t)
    }
    fn seal(&self, p: &[u8]) -> Result<Vec<u8>, SeError> {
        self.inner.seal(p)
    }
    fn unseal(&self, b: &[u8]) -> Result<Zeroizing<Vec<u8>>, SeError> {
        self.inner.unseal(b)
    }
    fn store_certificate(&self, slot: &str, der: &[u8]) -> Result<(), SeError> {
        self.inner.store_certificate(slot, der)
    }
    fn certificate(&self, slot: &str) -> Result<Option<Vec<u8>>, SeError> {
        self.inner.certificate(slot)
    }
    fn destroy_key(&self, slot: &str) -> Result<(), SeError> {
        self.inner.destroy_key(slot)
    }
    fn wipe(&self) -> Result<(), SeError> {
        self.inner.wipe()
    }
}
