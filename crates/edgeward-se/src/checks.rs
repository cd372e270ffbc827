//! Input checks every backend applies the same way before touching its element, so the
//! behaviour (and the error) for a bad argument does not depend on the backend.

use crate::{SeError, MAX_SEALED_LEN};

/// Parses a peer's SEC1 P-256 point (compressed or uncompressed) for ECDH.
pub(crate) fn parse_peer(peer_sec1: &[u8]) -> Result<p256::PublicKey, SeError> {
    p256::PublicKey::from_sec1_bytes(peer_sec1).map_err(|_| {
        SeError::InvalidArgument(format!(
            "peer public key ({} bytes) is not a valid SEC1 P-256 point",
            peer_sec1.len()
        ))
    })
}

/// Refuses secrets longer than [`MAX_SEALED_LEN`].
pub(crate) fn check_seal_len(plaintext: &[u8]) -> Result<(), SeError> {
    if plaintext.len() > MAX_SEALED_LEN {
        return Err(SeError::InvalidArgument(format!(
            "secret to seal is {} bytes (at most {MAX_SEALED_LEN})",
            plaintext.len()
        )));
    }
    Ok(())
}

/// Refuses empty certificates and ones longer than `max` bytes.
pub(crate) fn check_certificate_len(der: &[u8], max: usize) -> Result<(), SeError> {
    if der.is_empty() || der.len() > max {
        return Err(SeError::InvalidArgument(format!(
            "certificate is {} bytes (1 to {max} accepted)",
            der.len()
        )));
    }
    Ok(())
}
