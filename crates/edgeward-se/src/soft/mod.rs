//! The `soft` backend: a file-backed secure element for development, CI and devices without
//! a secure element. It is NOT a hardware boundary: anyone who can read its directory (root,
//! a disk image, a backup) can read `master.key` and with it every key and sealed secret, and
//! anyone who can write the directory can roll counters and the time floor back. It offers
//! the same interface as the hardware backends, so everything above it is tested for real.
//!
//! Layout of the directory (created 0700 when missing, subdirectories 0700, every file 0600
//! and written atomically):
//! `master.key` (32 random bytes), `keys/SLOT.key` (AES-256-GCM under a key derived from the
//! master with HKDF-SHA256), `certs/SLOT.der`, `counters/NAME`, `time-floor`. The formats are
//! in `format`.

pub(crate) mod format;

use std::{
    io,
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard},
};

use aes_gcm::{aead::Aead, aead::Payload, Aes256Gcm, KeyInit, Nonce};
use edgeward_core::keys::{PublicKey, SigningKey};
use zeroize::Zeroizing;

use self::format::SEAL_AAD;
use crate::sealed::{
    encode_sealed_blob, no_sealing_key, not_authentic, parse_sealed_blob, NONCE_LEN, SEAL_VERSION,
};
use crate::{
    files::{
        self, create_private_dir, io_error, read_bounded, remove_if_present, write_atomic, Replace,
    },
    names::check_name,
    KeyAlgorithm, SeError, SecureElement,
};

/// Largest certificate stored.
pub const MAX_CERTIFICATE_LEN: usize = 64 * 1024;

const BACKEND: &str = "soft";
const MASTER_FILE: &str = "master.key";
const TIME_FLOOR_FILE: &str = "time-floor";
const KEY_WRAP_INFO: &[u8] = b"edgeward-se/soft/key-wrap/v1";
const SEAL_INFO: &[u8] = b"edgeward-se/soft/seal/v1";

/// The file-backed development element (see the module documentation for its caveats).
#[derive(Debug)]
pub struct SoftElement {
    dir: PathBuf,
    /// Serialises read-modify-write sequences within this process.
    lock: Mutex<()>,
}

impl SoftElement {
    /// Opens (creating if needed) the element kept in `dir`.
    pub fn open(dir: &Path) -> Result<Self, SeError> {
        for sub in ["", "keys", "certs", "counters"] {
            create_private_dir(BACKEND, &dir.join(sub))?;
        }
        Ok(SoftElement {
            dir: dir.to_path_buf(),
            lock: Mutex::new(()),
        })
    }

    /// The element's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn guard(&self) -> MutexGuard<'_, ()> {
        // A panic while holding the lock leaves no partial state (writes are atomic).
        self.lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn key_path(&self, slot: &str) -> PathBuf {
        self.dir.join("keys").join(format!("{slot}.key"))
    }

    /// The master secret, created on first use when `create` is set.
    fn master(&self, create: bool) -> Result<Option<Zeroizing<[u8; 32]>>, SeError> {
        let path = self.dir.join(MASTER_FILE);
        if let Some(bytes) = read_bounded(BACKEND, &path, 32)? {
            let bytes = Zeroizing::new(bytes);
            let array: [u8; 32] = bytes.as_slice().try_into().map_err(|_| SeError::Backend {
                backend: BACKEND,
                message: format!("{} is not 32 bytes long", path.display()),
            })?;
            return Ok(Some(Zeroizing::new(array)));
        }
        if !create {
            return Ok(None);
        }
        let mut fresh = Zeroizing::new([0u8; 32]);
        fill_random(fresh.as_mut())?;
        match write_atomic(&path, fresh.as_ref(), Replace::No) {
            Ok(()) => Ok(Some(fresh)),
            // Another handle created it first: use theirs.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => self.master(false),
            Err(e) => Err(io_error(BACKEND, &path, e)),
        }
    }

    fn cipher(master: &[u8; 32], info: &[u8]) -> Result<Aes256Gcm, SeError> {
        let mut key = Zeroizing::new([0u8; 32]);
        hkdf::Hkdf::<sha2::Sha256>::new(None, master)
            .expand(info, key.as_mut())
            .map_err(|_| backend_error("HKDF expand failed"))?;
        Aes256Gcm::new_from_slice(key.as_ref()).map_err(|_| backend_error("bad AES key length"))
    }

    fn load_key(&self, slot: &str) -> Result<SigningKey, SeError> {
        check_name("slot", slot)?;
        let path = self.key_path(slot);
        let bytes = read_bounded(BACKEND, &path, format::KEY_FILE_LEN)?
            .ok_or_else(|| SeError::NoSuchKey(slot.to_owned()))?;
        let file = format::parse_key_file(&bytes)?;
        let master = self.master(false)?.ok_or_else(|| {
            backend_error(format!(
                "{} exists but {MASTER_FILE} is missing (re-provision the element)",
                path.display()
            ))
        })?;
        let mut aad = file.header.to_vec();
        aad.extend_from_slice(slot.as_bytes());
        let secret = Zeroizing::new(
            Self::cipher(&master, KEY_WRAP_INFO)?
                .decrypt(
                    Nonce::from_slice(file.nonce),
                    Payload {
                        msg: file.ciphertext,
                        aad: &aad,
                    },
                )
                .map_err(|_| {
                    backend_error(format!(
                        "{} does not decrypt under this element's master key",
                        path.display()
                    ))
                })?,
        );
        let secret: &[u8; 32] = secret
            .as_slice()
            .try_into()
            .map_err(|_| backend_error("decrypted key is not 32 bytes"))?;
        match file.algorithm {
            KeyAlgorithm::P256 => p256::ecdsa::SigningKey::from_bytes(secret.into())
                .map(SigningKey::P256)
                .map_err(|_| {
                    backend_error(format!("{} holds an invalid P-256 scalar", path.display()))
                }),
            KeyAlgorithm::Ed25519 => Ok(SigningKey::Ed25519(
                ed25519_dalek::SigningKey::from_bytes(secret),
            )),
        }
    }

    fn read_u64(&self, path: &Path, what: &str) -> Result<u64, SeError> {
        match read_bounded(BACKEND, path, 8)? {
            Some(bytes) => format::parse_u64_file(what, &bytes),
            None => Ok(0),
        }
    }

    fn write_u64(&self, path: &Path, value: u64) -> Result<(), SeError> {
        write_atomic(path, &value.to_be_bytes(), Replace::Yes)
            .map_err(|e| io_error(BACKEND, path, e))
    }

    fn counter_path(&self, name: &str) -> Result<PathBuf, SeError> {
        check_name("counter", name)?;
        Ok(self.dir.join("counters").join(name))
    }

    fn remove_all_in(&self, sub: &str) -> Result<(), SeError> {
        let dir = self.dir.join(sub);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_error(BACKEND, &dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io_error(BACKEND, &dir, e))?;
            remove_if_present(BACKEND, &entry.path())?;
        }
        files::sync_dir(&dir).map_err(|e| io_error(BACKEND, &dir, e))
    }
}

impl SecureElement for SoftElement {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn generate_key(&self, slot: &str, algorithm: KeyAlgorithm) -> Result<PublicKey, SeError> {
        check_name("slot", slot)?;
        let _guard = self.guard();
        let path = self.key_path(slot);
        if path.exists() {
            return Err(SeError::SlotOccupied(slot.to_owned()));
        }
        let (secret, public) = match algorithm {
            KeyAlgorithm::P256 => {
                let key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
                let secret = Zeroizing::new(<[u8; 32]>::from(key.to_bytes()));
                (secret, PublicKey::P256(*key.verifying_key()))
            }
            KeyAlgorithm::Ed25519 => {
                let mut seed = Zeroizing::new([0u8; 32]);
                fill_random(seed.as_mut())?;
                let key = ed25519_dalek::SigningKey::from_bytes(&seed);
                (seed, PublicKey::Ed25519(key.verifying_key()))
            }
        };
        let master = self
            .master(true)?
            .ok_or_else(|| backend_error("no master key"))?;
        let header = format::key_header(algorithm);
        let mut aad = header.to_vec();
        aad.extend_from_slice(slot.as_bytes());
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let ciphertext = Self::cipher(&master, KEY_WRAP_INFO)?
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret.as_ref(),
                    aad: &aad,
                },
            )
            .map_err(|_| backend_error("AES-GCM encryption failed"))?;
        let mut file = header.to_vec();
        file.extend_from_slice(&nonce);
        file.extend_from_slice(&ciphertext);
        match write_atomic(&path, &file, Replace::No) {
            Ok(()) => Ok(public),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(SeError::SlotOccupied(slot.to_owned()))
            }
            Err(e) => Err(io_error(BACKEND, &path, e)),
        }
    }

    fn public_key(&self, slot: &str) -> Result<PublicKey, SeError> {
        Ok(self.load_key(slot)?.public_key())
    }

    fn sign(&self, slot: &str, message: &[u8]) -> Result<Vec<u8>, SeError> {
        Ok(self.load_key(slot)?.sign(message))
    }

    fn sign_digest(&self, slot: &str, digest: &[u8; 32]) -> Result<Vec<u8>, SeError> {
        match self.load_key(slot)? {
            SigningKey::P256(key) => {
                use p256::ecdsa::signature::hazmat::PrehashSigner;
                let sig: p256::ecdsa::Signature = key
                    .sign_prehash(digest)
                    .map_err(|e| backend_error(format!("ECDSA signing failed: {e}")))?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
            SigningKey::Ed25519(_) => Err(not_p256(slot, "sign a digest")),
        }
    }

    fn ecdh(&self, slot: &str, peer_sec1: &[u8]) -> Result<Zeroizing<[u8; 32]>, SeError> {
        let SigningKey::P256(key) = self.load_key(slot)? else {
            return Err(not_p256(slot, "do ECDH"));
        };
        let peer = crate::checks::parse_peer(peer_sec1)?;
        let shared = p256::ecdh::diffie_hellman(key.as_nonzero_scalar(), peer.as_affine());
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(shared.raw_secret_bytes());
        Ok(out)
    }

    fn random(&self, out: &mut [u8]) -> Result<(), SeError> {
        fill_random(out)
    }

    fn counter(&self, name: &str) -> Result<u64, SeError> {
        let path = self.counter_path(name)?;
        self.read_u64(&path, "counter")
    }

    fn increment_counter(&self, name: &str) -> Result<u64, SeError> {
        let path = self.counter_path(name)?;
        let _guard = self.guard();
        let next = self
            .read_u64(&path, "counter")?
            .checked_add(1)
            .ok_or_else(|| backend_error(format!("counter `{name}` is exhausted")))?;
        self.write_u64(&path, next)?;
        Ok(next)
    }

    fn time_floor(&self) -> Result<u64, SeError> {
        self.read_u64(&self.dir.join(TIME_FLOOR_FILE), "time floor")
    }

    fn raise_time_floor(&self, unix_seconds: u64) -> Result<u64, SeError> {
        let path = self.dir.join(TIME_FLOOR_FILE);
        let _guard = self.guard();
        let current = self.read_u64(&path, "time floor")?;
        if unix_seconds <= current {
            return Ok(current);
        }
        self.write_u64(&path, unix_seconds)?;
        Ok(unix_seconds)
    }

    fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, SeError> {
        crate::checks::check_seal_len(plaintext)?;
        let master = {
            let _guard = self.guard();
            self.master(true)?
        }
        .ok_or_else(|| backend_error("no master key"))?;
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let aad = seal_aad();
        let ciphertext = Self::cipher(&master, SEAL_INFO)?
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| backend_error("AES-GCM encryption failed"))?;
        Ok(encode_sealed_blob(&nonce, &ciphertext))
    }

    fn unseal(&self, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, SeError> {
        let parsed = parse_sealed_blob(blob)?;
        let master = self.master(false)?.ok_or_else(no_sealing_key)?;
        Self::cipher(&master, SEAL_INFO)?
            .decrypt(
                Nonce::from_slice(parsed.nonce),
                Payload {
                    msg: parsed.ciphertext,
                    aad: &seal_aad(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| not_authentic())
    }

    fn store_certificate(&self, slot: &str, der: &[u8]) -> Result<(), SeError> {
        check_name("slot", slot)?;
        crate::checks::check_certificate_len(der, MAX_CERTIFICATE_LEN)?;
        let path = self.dir.join("certs").join(format!("{slot}.der"));
        write_atomic(&path, der, Replace::Yes).map_err(|e| io_error(BACKEND, &path, e))
    }

    fn certificate(&self, slot: &str) -> Result<Option<Vec<u8>>, SeError> {
        check_name("slot", slot)?;
        read_bounded(
            BACKEND,
            &self.dir.join("certs").join(format!("{slot}.der")),
            MAX_CERTIFICATE_LEN,
        )
    }

    fn destroy_key(&self, slot: &str) -> Result<(), SeError> {
        check_name("slot", slot)?;
        let _guard = self.guard();
        let certificate = self.dir.join("certs").join(format!("{slot}.der"));
        files::destroy_slot_files(BACKEND, slot, &self.key_path(slot), &[&certificate])
    }

    fn wipe(&self) -> Result<(), SeError> {
        let _guard = self.guard();
        // Destroying the master first is the cryptographic erase: every key file and sealed
        // blob is unreadable from this point on, even if the process dies mid-wipe.
        let master = self.dir.join(MASTER_FILE);
        remove_if_present(BACKEND, &master)?;
        files::sync_dir(&self.dir).map_err(|e| io_error(BACKEND, &self.dir, e))?;
        self.remove_all_in("keys")?;
        self.remove_all_in("certs")
    }
}

fn seal_aad() -> Vec<u8> {
    let mut aad = SEAL_AAD.to_vec();
    aad.push(SEAL_VERSION);
    aad
}

fn fill_random(out: &mut [u8]) -> Result<(), SeError> {
    getrandom::getrandom(out).map_err(|e| backend_error(format!("OS random generator: {e}")))
}

fn not_p256(slot: &str, what: &str) -> SeError {
    SeError::InvalidArgument(format!(
        "slot `{slot}` holds an Ed25519 key, which cannot {what} (P-256 only)"
    ))
}

fn backend_error(message: impl Into<String>) -> SeError {
    SeError::Backend {
        backend: BACKEND,
        message: message.into(),
    }
}
