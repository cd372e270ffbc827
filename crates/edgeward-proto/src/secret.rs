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
    Deriver::new(master_key).derive(device_id)
}

/// A master key prepared for deriving many devices' secrets: HKDF's extract step is done
/// once, and only its output (the pseudorandom key, zeroized on drop) is kept.
pub struct Deriver {
    prk: Zeroizing<[u8; 32]>,
}

impl core::fmt::Debug for Deriver {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Deriver(..)")
    }
}

impl Deriver {
    /// Runs HKDF-Extract over `master_key` with the derivation's salt.
    pub fn new(master_key: &[u8]) -> Self {
        let (prk, _) = hkdf::Hkdf::<sha2::Sha256>::extract(Some(SALT), master_key);
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&prk);
        Deriver { prk: out }
    }

    /// The token secret of `device_id` (HKDF-Expand with the device id as info).
    pub fn derive(&self, device_id: &str) -> Zeroizing<String> {
        let hk = hkdf::Hkdf::<sha2::Sha256>::from_prk(self.prk.as_ref())
            .expect("a SHA-256 PRK is 32 bytes, HKDF's minimum");
        let mut okm = Zeroizing::new([0u8; 32]);
        hk.expand(device_id.as_bytes(), okm.as_mut())
            .expect("32 bytes is far below HKDF-SHA256's 8160-byte output limit");
        let mut text = Zeroizing::new([0u8; 64]);
        hex::encode_to_slice(okm.as_ref(), text.as_mut())
            .expect("64 bytes hold the hex of 32 bytes");
        // Hex digits are ASCII: the text is valid UTF-8 and is copied as it is.
        Zeroizing::new(String::from_utf8_lossy(text.as_ref()).into_owned())
    }
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

    #[test]
    fn the_derivation_is_rfc5869_hkdf_sha256() {
        // Computed independently with Python's hmac module:
        // prk = HMAC(salt, master); okm = HMAC(prk, b"cam-0042" + b"\x01").
        let master = [9u8; 48];
        let expected = "f6f081510047db3f0fa1fca64be8adc9ce3e74f5bbb21199b89f56e3159e6e03";
        assert_eq!(*Deriver::new(&master).derive("cam-0042"), expected);
        assert_eq!(*derive(&master, "cam-0042"), expected);
    }
}
