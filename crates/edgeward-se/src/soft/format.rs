//! The soft element's on-disk formats. Every file in the element's directory is untrusted
//! input (anyone with write access to the directory can change it), so every parser here is
//! total and bounded; the fuzz target `se_soft_files` drives them.
//!
//! * Key file `keys/SLOT.key`, exactly [`KEY_FILE_LEN`] bytes:
//!   `"EWSK"` ‖ version (1) ‖ algorithm (1 = P-256, 2 = Ed25519) ‖ nonce (12) ‖
//!   AES-256-GCM(secret scalar or seed, 32 bytes) ‖ tag (16). The associated data is the
//!   6-byte header followed by the slot name, so a key file moved to another slot fails.
//! * Sealed blob: the layout of [`crate::sealed`]; the associated data is [`SEAL_AAD`]
//!   followed by the version byte.
//! * Counter and time-floor files: exactly 8 bytes, big-endian `u64`.
//! * `master.key`: exactly 32 random bytes.

use crate::{
    sealed::{NONCE_LEN, TAG_LEN},
    KeyAlgorithm, SeError,
};

/// Magic at the start of a key file.
pub(crate) const KEY_MAGIC: &[u8; 4] = b"EWSK";
/// The key-file format version this code writes and reads.
pub(crate) const KEY_VERSION: u8 = 1;
/// Length of the key-file header (magic, version, algorithm).
pub(crate) const KEY_HEADER_LEN: usize = 6;
/// Exact length of a key file.
pub const KEY_FILE_LEN: usize = KEY_HEADER_LEN + NONCE_LEN + 32 + TAG_LEN;
/// Associated-data prefix of a sealed blob.
pub(crate) const SEAL_AAD: &[u8] = b"edgeward-se/soft/seal/v1";

/// A parsed key file (the secret is still encrypted).
#[derive(Debug, PartialEq, Eq)]
pub struct KeyFile<'a> {
    /// The key's algorithm.
    pub algorithm: KeyAlgorithm,
    /// The header bytes, authenticated as associated data.
    pub header: &'a [u8],
    /// The AES-GCM nonce.
    pub nonce: &'a [u8; NONCE_LEN],
    /// Ciphertext and tag of the 32-byte secret.
    pub ciphertext: &'a [u8],
}

/// Parses a key file's layout (see the module documentation).
pub fn parse_key_file(bytes: &[u8]) -> Result<KeyFile<'_>, SeError> {
    if bytes.len() != KEY_FILE_LEN {
        return Err(corrupt(format!(
            "key file is {} bytes (a soft key file is exactly {KEY_FILE_LEN})",
            bytes.len()
        )));
    }
    let (header, rest) = bytes.split_at(KEY_HEADER_LEN);
    if &header[..4] != KEY_MAGIC {
        return Err(corrupt("key file does not start with EWSK"));
    }
    if header[4] != KEY_VERSION {
        return Err(corrupt(format!(
            "key file version {} (this build reads version {KEY_VERSION})",
            header[4]
        )));
    }
    let algorithm = match header[5] {
        1 => KeyAlgorithm::P256,
        2 => KeyAlgorithm::Ed25519,
        other => return Err(corrupt(format!("key file names unknown algorithm {other}"))),
    };
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let nonce = nonce
        .try_into()
        .map_err(|_| corrupt("key file nonce is truncated"))?;
    Ok(KeyFile {
        algorithm,
        header,
        nonce,
        ciphertext,
    })
}

/// The header of a key file for `algorithm`.
pub(crate) fn key_header(algorithm: KeyAlgorithm) -> [u8; KEY_HEADER_LEN] {
    let alg = match algorithm {
        KeyAlgorithm::P256 => 1,
        KeyAlgorithm::Ed25519 => 2,
    };
    [
        KEY_MAGIC[0],
        KEY_MAGIC[1],
        KEY_MAGIC[2],
        KEY_MAGIC[3],
        KEY_VERSION,
        alg,
    ]
}

/// Parses an 8-byte big-endian counter or time-floor file; `what` names it in errors.
pub fn parse_u64_file(what: &str, bytes: &[u8]) -> Result<u64, SeError> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| {
        corrupt(format!(
            "{what} file is {} bytes (exactly 8 expected)",
            bytes.len()
        ))
    })?;
    Ok(u64::from_be_bytes(array))
}

fn corrupt(message: impl Into<String>) -> SeError {
    SeError::Backend {
        backend: "soft",
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_layout_roundtrips_and_rejects_damage() {
        let mut file = key_header(KeyAlgorithm::Ed25519).to_vec();
        file.extend_from_slice(&[7; NONCE_LEN + 32 + TAG_LEN]);
        let parsed = parse_key_file(&file).unwrap();
        assert_eq!(parsed.algorithm, KeyAlgorithm::Ed25519);
        assert_eq!(parsed.ciphertext.len(), 48);
        let soft = |e: SeError| match e {
            SeError::Backend { backend, message } => (backend, message),
            other => panic!("not a soft backend error: {other:?}"),
        };
        assert_eq!(
            soft(parse_key_file(&file[..file.len() - 1]).unwrap_err()),
            (
                "soft",
                format!(
                    "key file is {} bytes (a soft key file is exactly {KEY_FILE_LEN})",
                    KEY_FILE_LEN - 1
                )
            )
        );
        let mut bad = file.clone();
        bad[0] = b'X';
        assert_eq!(
            soft(parse_key_file(&bad).unwrap_err()),
            ("soft", "key file does not start with EWSK".to_string())
        );
        let mut bad = file.clone();
        bad[5] = 9;
        assert!(parse_key_file(&bad)
            .unwrap_err()
            .to_string()
            .contains("algorithm 9"));
    }

    #[test]
    fn counter_files_are_exactly_eight_bytes() {
        assert_eq!(parse_u64_file("counter", &7u64.to_be_bytes()).unwrap(), 7);
        assert!(matches!(
            parse_u64_file("counter", &[0; 9]),
            Err(SeError::Backend { backend: "soft", message })
                if message == "counter file is 9 bytes (exactly 8 expected)"
        ));
    }
}
