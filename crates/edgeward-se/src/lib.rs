//! The device's hardware root of trust behind one trait.
//!
//! Everything above this crate (boot chain, attestation, mTLS, model decryption) asks a
//! [`SecureElement`] for what it needs and never sees a private key. Backends: `soft`
//! (file-backed, development only, not a hardware boundary), `pkcs11` (any PKCS#11 module;
//! SoftHSM2 in tests) and `tpm` (TPM 2.0; swtpm in tests). [`open`] picks one from a URI.

mod checks;
mod error;
mod files;
mod names;
pub mod pkcs11;
mod sealed;
pub mod soft;
pub mod tls;
#[cfg(feature = "tpm")]
pub mod tpm;
mod uri;

/// The parsers the fuzz targets drive (`fuzz/fuzz_targets/se_soft_files.rs`), reachable
/// from outside only for them: not part of the API, no stability promise. The modules they
/// live in are private, as rustls does with its `internal` module.
#[doc(hidden)]
pub mod internal {
    /// The sealed-blob codec every backend shares.
    pub mod sealed {
        pub use crate::sealed::{
            encode_sealed_blob, parse_sealed_blob, SealedBlob, MAX_SEALED_BLOB_LEN, NONCE_LEN,
            TAG_LEN,
        };
    }
    /// The soft element's key and counter files.
    pub mod soft_format {
        pub use crate::soft::format::{parse_key_file, parse_u64_file, KeyFile, KEY_FILE_LEN};
    }
}

/// Key types an element can generate (P-256 on every backend, Ed25519 where it has it).
pub use edgeward_core::keys::KeyAlgorithm;
pub use edgeward_core::keys::PublicKey;
pub use error::SeError;
pub use names::{check_name, MAX_NAME_LEN};
pub use uri::{parse_uri, ElementUri, MAX_URI_LEN};
use zeroize::Zeroizing;

/// What the layers above need from a secure element. Slots and counters are named by short
/// ASCII names (`[A-Za-z0-9._-]{1,64}`); backends map them to their own object handles.
pub trait SecureElement: Send + Sync {
    /// The backend's name (`soft`, `pkcs11`, `tpm`), for messages and evidence.
    fn backend(&self) -> &'static str;

    /// Generates a new non-extractable key in `slot` and returns its public key. Refuses
    /// when the slot already holds a key (delete it with [`SecureElement::wipe`]).
    fn generate_key(&self, slot: &str, algorithm: KeyAlgorithm) -> Result<PublicKey, SeError>;

    /// The public key held in `slot`.
    fn public_key(&self, slot: &str) -> Result<PublicKey, SeError>;

    /// Signs `message` with the key in `slot`: ECDSA P-256 over SHA-256 (DER signature;
    /// backends without a combined mechanism hash on the host) or Ed25519 (64 bytes).
    fn sign(&self, slot: &str, message: &[u8]) -> Result<Vec<u8>, SeError>;

    /// Signs a SHA-256 digest computed elsewhere (P-256 keys only; DER signature).
    fn sign_digest(&self, slot: &str, digest: &[u8; 32]) -> Result<Vec<u8>, SeError>;

    /// ECDH with the P-256 key in `slot` and a peer's SEC1 public point; returns the shared
    /// x-coordinate (the raw Diffie-Hellman output HPKE's DHKEM feeds into its KDF).
    fn ecdh(&self, slot: &str, peer_sec1: &[u8]) -> Result<Zeroizing<[u8; 32]>, SeError>;

    /// Fills `out` from the element's random number generator.
    fn random(&self, out: &mut [u8]) -> Result<(), SeError>;

    /// The current value of monotonic counter `name` (0 when never incremented).
    fn counter(&self, name: &str) -> Result<u64, SeError>;

    /// Adds one to monotonic counter `name` and returns the new value.
    fn increment_counter(&self, name: &str) -> Result<u64, SeError>;

    /// Raises counter `name` to at least `target` (never lowers it) and returns its value.
    fn advance_counter(&self, name: &str, target: u64) -> Result<u64, SeError> {
        let mut value = self.counter(name)?;
        while value < target {
            value = self.increment_counter(name)?;
        }
        Ok(value)
    }

    /// The time floor: the newest trusted time (Unix seconds) ever recorded, 0 at first.
    fn time_floor(&self) -> Result<u64, SeError>;

    /// Raises the time floor to `unix_seconds` if that is later; returns the floor.
    fn raise_time_floor(&self, unix_seconds: u64) -> Result<u64, SeError>;

    /// Encrypts and authenticates a small secret (at most [`MAX_SEALED_LEN`] bytes) under a
    /// device-unique key that never leaves the element; the blob is safe to store anywhere.
    fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, SeError>;

    /// Opens a blob made by [`SecureElement::seal`] on this element.
    fn unseal(&self, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, SeError>;

    /// Stores a certificate (DER) under `slot` (the device certificate, the root anchor).
    fn store_certificate(&self, slot: &str, der: &[u8]) -> Result<(), SeError>;

    /// The certificate stored under `slot`, if any.
    fn certificate(&self, slot: &str) -> Result<Option<Vec<u8>>, SeError>;

    /// Destroys the key in `slot` and the certificate stored under the same name, leaving
    /// every other slot, the sealed-storage key and the counters as they were (a
    /// re-provisioned device retires its old key this way). [`SeError::NoSuchKey`] when the
    /// slot holds no key. What "destroyed" means is the backend's: the token deletes the
    /// object (PKCS#11 `C_DestroyObject`); the soft and TPM backends delete the only wrapped
    /// copy Edgeward keeps (a copy taken before, e.g. a backup of the state directory, stays
    /// loadable on the same element until [`SecureElement::wipe`] destroys the wrapping key).
    fn destroy_key(&self, slot: &str) -> Result<(), SeError>;

    /// Destroys every key, sealed-storage key and certificate; the device must then be
    /// re-provisioned. Counters keep their values (they only ever rise).
    fn wipe(&self) -> Result<(), SeError>;

    /// Extends SHA-256 platform configuration register `pcr` with `digest` (new value =
    /// SHA-256(old ‖ digest)) and returns the new value. Only elements with PCRs (the TPM)
    /// implement it; the others return [`SeError::Unsupported`].
    fn extend_pcr(&self, pcr: u8, digest: &[u8; 32]) -> Result<[u8; 32], SeError> {
        let _ = (pcr, digest);
        Err(SeError::Unsupported {
            backend: self.backend(),
            what: "PCRs".into(),
        })
    }

    /// The current value of SHA-256 PCR `pcr` ([`SeError::Unsupported`] without PCRs).
    fn read_pcr(&self, pcr: u8) -> Result<[u8; 32], SeError> {
        let _ = pcr;
        Err(SeError::Unsupported {
            backend: self.backend(),
            what: "PCRs".into(),
        })
    }
}

/// Largest secret [`SecureElement::seal`] accepts.
pub const MAX_SEALED_LEN: usize = 4096;

/// Opens the element a URI names: `soft:DIR`, `pkcs11:MODULE?token=LABEL&pin-env=VAR` or
/// `tpm:TCTI?state=DIR` (see [`parse_uri`]).
pub fn open(uri: &str) -> Result<Box<dyn SecureElement>, SeError> {
    match parse_uri(uri)? {
        ElementUri::Soft { dir } => Ok(Box::new(soft::SoftElement::open(&dir)?)),
        ElementUri::Pkcs11 {
            module,
            token,
            pin_env,
        } => {
            let pin = std::env::var(&pin_env).map_err(|_| {
                SeError::InvalidArgument(format!(
                    "environment variable `{pin_env}` (pin-env) holding the token PIN is not set"
                ))
            })?;
            let pin = cryptoki::types::AuthPin::new(pin);
            Ok(Box::new(pkcs11::Pkcs11Element::open(&module, &token, pin)?))
        }
        #[cfg(feature = "tpm")]
        ElementUri::Tpm { tcti, state_dir } => {
            Ok(Box::new(tpm::TpmElement::open(&tcti, &state_dir)?))
        }
        #[cfg(not(feature = "tpm"))]
        ElementUri::Tpm { .. } => Err(SeError::Unsupported {
            backend: "tpm",
            what: "TPM 2.0 elements in this build (rebuild with the `tpm` feature)".into(),
        }),
    }
}
