//! The sealed-blob layout every backend writes and reads, parsed in one place so that a
//! damaged blob is refused with the same words whichever element sealed it:
//! version (1) ‖ nonce (12) ‖ AES-256-GCM ciphertext ‖ tag (16). What the associated data
//! is and where the key lives is each backend's business; the layout is shared. Blobs are
//! untrusted input (they are stored outside the element), so the parser is total and
//! bounded; the fuzz target `se_soft_files` drives it.

use crate::{SeError, MAX_SEALED_LEN};

/// The sealed-blob format version this code writes and reads.
pub(crate) const SEAL_VERSION: u8 = 1;
/// AES-GCM nonce length.
pub const NONCE_LEN: usize = 12;
/// AES-GCM tag length.
pub const TAG_LEN: usize = 16;
/// Longest sealed blob accepted.
pub const MAX_SEALED_BLOB_LEN: usize = 1 + NONCE_LEN + MAX_SEALED_LEN + TAG_LEN;

/// A parsed sealed blob (still encrypted).
#[derive(Debug, PartialEq, Eq)]
pub struct SealedBlob<'a> {
    /// The AES-GCM nonce.
    pub nonce: &'a [u8; NONCE_LEN],
    /// Ciphertext and tag.
    pub ciphertext: &'a [u8],
}

/// Lays out a sealed blob from its nonce and AES-GCM output (ciphertext and tag).
pub fn encode_sealed_blob(nonce: &[u8; NONCE_LEN], ciphertext: &[u8]) -> Vec<u8> {
    let mut blob = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
    blob.push(SEAL_VERSION);
    blob.extend_from_slice(nonce);
    blob.extend_from_slice(ciphertext);
    blob
}

/// Parses a sealed blob's layout, checking the version and the length bounds.
pub fn parse_sealed_blob(blob: &[u8]) -> Result<SealedBlob<'_>, SeError> {
    if blob.len() > MAX_SEALED_BLOB_LEN {
        return Err(SeError::Unseal(format!(
            "blob is {} bytes (at most {MAX_SEALED_BLOB_LEN})",
            blob.len()
        )));
    }
    let (&version, rest) = blob
        .split_first()
        .ok_or_else(|| SeError::Unseal("blob is empty".into()))?;
    if version != SEAL_VERSION {
        return Err(SeError::Unseal(format!(
            "blob version {version} (this build reads version {SEAL_VERSION})"
        )));
    }
    if rest.len() < NONCE_LEN + TAG_LEN {
        return Err(SeError::Unseal(format!(
            "blob is {} bytes, shorter than a version, nonce and tag",
            blob.len()
        )));
    }
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let nonce = nonce
        .try_into()
        .map_err(|_| SeError::Unseal("blob nonce is truncated".into()))?;
    Ok(SealedBlob { nonce, ciphertext })
}

/// The refusal when the element holds no sealing key (wiped, or nothing ever sealed).
pub(crate) fn no_sealing_key() -> SeError {
    SeError::Unseal("this element has no sealing key (it was wiped or never sealed)".into())
}

/// The refusal when a well-formed blob does not authenticate under the element's key.
pub(crate) fn not_authentic() -> SeError {
    SeError::Unseal(
        "authentication failed (tampered, or sealed by another element or before a wipe)".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(blob: &[u8]) -> String {
        match parse_sealed_blob(blob) {
            Err(SeError::Unseal(m)) => m,
            other => panic!("expected an unseal refusal, got {other:?}"),
        }
    }

    #[test]
    fn layout_roundtrips() {
        let blob = encode_sealed_blob(&[7; NONCE_LEN], &[9; TAG_LEN + 3]);
        let parsed = parse_sealed_blob(&blob).unwrap();
        assert_eq!(parsed.nonce, &[7; NONCE_LEN]);
        assert_eq!(parsed.ciphertext, &[9; TAG_LEN + 3]);
    }

    #[test]
    fn damaged_blobs_are_refused_with_the_reason() {
        assert_eq!(refusal(&[]), "blob is empty");
        assert_eq!(
            refusal(&[1; 28]),
            "blob is 28 bytes, shorter than a version, nonce and tag"
        );
        assert!(parse_sealed_blob(&[1; 29]).is_ok());
        assert_eq!(
            refusal(&[9; 29]),
            "blob version 9 (this build reads version 1)"
        );
        let long = vec![1; MAX_SEALED_BLOB_LEN + 1];
        assert_eq!(
            refusal(&long),
            format!(
                "blob is {} bytes (at most {MAX_SEALED_BLOB_LEN})",
                long.len()
            )
        );
        assert!(parse_sealed_blob(&long[..MAX_SEALED_BLOB_LEN]).is_ok());
    }
}
