//! Per-device token secrets, derived from one server master key with HKDF-SHA256 (key
//! diversification), so the server stores no per-device secret table and a factory holding
//! the master key can compute any device's secret:
//!
//! ```text
//! secret(device_id) = hex( HKDF-SHA256(ikm = master_key,
//!                                      salt = "edgeward/device-token-secret/v1",
//!                                      info = device_id, L = 32) )
//! ```
//!
//! The secret is the 64-character lowercase hex string; as in the best-practice recipe
//! (`secret_key.encode()`), the HMAC key is that string's UTF-8 bytes.

use zeroize::Zeroizing;

/// The HKDF salt of the derivation.
pub const SALT: &[u8] = b"edgeward/device-token-secret/v1";

/// Shortest master key accepted, in bytes.
pub const MIN_MASTER_KEY_LEN: usize = 32;

/// Derives the token secret of `device_id` (a 64-character hex string, zeroized on drop).
pub fn derive(master_key: &[u8], device_id: &str) -> Zeroizing<String> {
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(SALT), master_key);
    let mut okm = Zeroizing::new([0u8; 32]);
    hk.expand(device_id.as_bytes(), okm.as_mut())
        .expect("32 bytes is far below HKDF-SHA256's 8160-byte output limit");
    Zeroizing::new(hex::encode(okm.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_is_stable_and_per_device() {
        let master = [7u8; 32];
        let a = derive(&master, "dev-001");
        assert_eq!(a.len(), 64);
        assert_eq!(*a, *derive(&master, "dev-001"));
        assert_ne!(*a, *derive(&master, "dev-002"));
        assert_ne!(*a, *derive(&[8u8; 32], "dev-001"));
    }
}
