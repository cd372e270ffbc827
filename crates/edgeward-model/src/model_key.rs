//! The owner's model key: one 32-byte secret from which every key of the keyed shuffle and
//! the watermarks is derived with HKDF-SHA256 under distinct labels.
//!
//! On a device the secret is sealed by the secure element (`SecureElement::seal`) and
//! handed to [`ModelKey::from_secret`] after `unseal`; operators keep it in a key file:
//!
//! ```json
//! {"format":"edgeward-model-key","version":1,"secret":"<64 hex digits>"}
//! ```
//!
//! written with mode 0600. Nothing here prints or logs the secret, and `Debug` shows only
//! the key's public identifier.

use std::{fs::OpenOptions, io::Write, path::Path};

use hkdf::Hkdf;
use rand::{rngs::OsRng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

/// Largest key file accepted, in bytes.
pub const MAX_KEY_FILE_BYTES: usize = 1024;

/// The `format` field of a key file.
pub const KEY_FILE_FORMAT: &str = "edgeward-model-key";

/// HKDF salt binding every derived key to this scheme and version.
const HKDF_SALT: &[u8] = b"edgeward model key v1";

/// Why a key file was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file is larger than [`MAX_KEY_FILE_BYTES`].
    #[error("key file is {0} bytes; a model key file is at most {MAX_KEY_FILE_BYTES}")]
    TooLarge(usize),
    /// Not the JSON object described in the module documentation.
    #[error("not an edgeward model key file: {0}")]
    Malformed(String),
    /// A version this build does not know.
    #[error("model key file version {0} is not supported (only version 1)")]
    Version(u32),
    /// Writing a new key file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFileJson {
    format: String,
    version: u32,
    secret: String,
}

/// The owner's secret for shuffling and watermarking models.
pub struct ModelKey {
    secret: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for ModelKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ModelKey(id {})", self.id())
    }
}

impl ModelKey {
    /// A key from a secret the caller already holds (e.g. unsealed by the secure element).
    pub fn from_secret(secret: Zeroizing<[u8; 32]>) -> Self {
        ModelKey { secret }
    }

    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Self {
        let mut secret = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(secret.as_mut());
        ModelKey { secret }
    }

    /// Parses a key file.
    pub fn parse(bytes: &[u8]) -> Result<Self, KeyFileError> {
        if bytes.len() > MAX_KEY_FILE_BYTES {
            return Err(KeyFileError::TooLarge(bytes.len()));
        }
        let mut json: KeyFileJson =
            serde_json::from_slice(bytes).map_err(|e| KeyFileError::Malformed(e.to_string()))?;
        let result = Self::from_json(&json);
        json.secret.zeroize();
        result
    }

    fn from_json(json: &KeyFileJson) -> Result<Self, KeyFileError> {
        if json.format != KEY_FILE_FORMAT {
            return Err(KeyFileError::Malformed(format!(
                "format is {:?}, not {KEY_FILE_FORMAT:?}",
                json.format
            )));
        }
        if json.version != 1 {
            return Err(KeyFileError::Version(json.version));
        }
        let mut secret = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(json.secret.as_bytes(), secret.as_mut()).map_err(|_| {
            KeyFileError::Malformed("secret is not 64 hexadecimal digits".to_string())
        })?;
        Ok(ModelKey { secret })
    }

    /// The key file's bytes (holds the secret: keep it zeroized).
    pub fn to_file_bytes(&self) -> Zeroizing<Vec<u8>> {
        let hex = Zeroizing::new(hex::encode(self.secret.as_ref()));
        let mut out = Zeroizing::new(Vec::with_capacity(128));
        out.extend_from_slice(b"{\"format\":\"");
        out.extend_from_slice(KEY_FILE_FORMAT.as_bytes());
        out.extend_from_slice(b"\",\"version\":1,\"secret\":\"");
        out.extend_from_slice(hex.as_bytes());
        out.extend_from_slice(b"\"}\n");
        out
    }

    /// Writes the key to a new file with mode 0600; refuses to overwrite an existing file.
    pub fn write_new(&self, path: &Path) -> Result<(), KeyFileError> {
        let io = |source| KeyFileError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(io)?;
        file.write_all(&self.to_file_bytes()).map_err(io)?;
        file.sync_all().map_err(io)
    }

    /// A public identifier of the key (16 hex digits), safe to print and to store.
    pub fn id(&self) -> String {
        hex::encode(&self.derive("edgeward/model-key/id", &[])[..8])
    }

    /// 32 bytes derived for `label` (one purpose) and `context` (e.g. a file's salt).
    pub fn derive(&self, label: &str, context: &[u8]) -> Zeroizing<[u8; 32]> {
        let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), self.secret.as_ref());
        let mut okm = Zeroizing::new([0u8; 32]);
        let len = (label.len() as u64).to_be_bytes();
        hk.expand_multi_info(&[&len, label.as_bytes(), context], okm.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        okm
    }

    /// A ChaCha20 random stream seeded by [`ModelKey::derive`].
    pub fn rng(&self, label: &str, context: &[u8]) -> ChaCha20Rng {
        ChaCha20Rng::from_seed(*self.derive(label, context))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_derives_distinct_keys() {
        let k = ModelKey::generate();
        let again = ModelKey::parse(&k.to_file_bytes()).unwrap();
        assert_eq!(k.derive("a", b"x"), again.derive("a", b"x"));
        assert_ne!(*k.derive("a", b"x"), *k.derive("b", b"x"));
        assert_ne!(*k.derive("a", b"x"), *k.derive("a", b"y"));
        assert_ne!(*k.derive("ab", b""), *k.derive("a", b"b"));
        assert!(!format!("{k:?}").contains(&hex::encode(k.secret.as_ref())));
    }

    #[test]
    fn refuses_bad_files() {
        for bad in [
            &b"{}"[..],
            b"{\"format\":\"edgeward-model-key\",\"version\":1,\"secret\":\"00\",\"more\":1}",
        ] {
            assert!(matches!(
                ModelKey::parse(bad),
                Err(KeyFileError::Malformed(_))
            ));
        }
        assert!(matches!(
            ModelKey::parse(b"{\"format\":\"edgeward-model-key\",\"version\":2,\"secret\":\"00\"}"),
            Err(KeyFileError::Version(2))
        ));
        assert!(matches!(
            ModelKey::parse(b"{\"format\":\"x\",\"version\":1,\"secret\":\"00\"}"),
            Err(KeyFileError::Malformed(m)) if m == "format is \"x\", not \"edgeward-model-key\""
        ));
        assert!(matches!(
            ModelKey::parse(b"{\"format\":\"edgeward-model-key\",\"version\":1,\"secret\":\"zz\"}"),
            Err(KeyFileError::Malformed(m)) if m == "secret is not 64 hexadecimal digits"
        ));
        assert!(matches!(
            ModelKey::parse(&[b' '; 2000]),
            Err(KeyFileError::TooLarge(2000))
        ));
    }

    #[cfg(unix)]
    #[test]
    fn writes_0600_and_never_overwrites() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        let k = ModelKey::generate();
        k.write_new(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(
            k.write_new(&path),
            Err(KeyFileError::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists
        ));
        assert_eq!(
            ModelKey::parse(&std::fs::read(&path).unwrap())
                .unwrap()
                .id(),
            k.id()
        );
    }
}
