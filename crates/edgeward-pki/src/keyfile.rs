//! Private key files: PKCS#8 PEM, and for the root key PKCS#8 encrypted with PBES2
//! (PBKDF2-HMAC-SHA256, 600,000 iterations, AES-256-CBC) — a form `openssl pkey` and Python
//! `cryptography` read with the same passphrase.

use pkcs8::pkcs5::pbes2;
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

/// PBKDF2 iterations for the root key (OWASP's 2023 figure for PBKDF2-HMAC-SHA256).
pub const PBKDF2_ITERATIONS: u32 = 600_000;

/// Shortest root passphrase accepted.
pub const MIN_PASSPHRASE_LEN: usize = 8;

/// Encrypts a PKCS#8 DER private key and returns `ENCRYPTED PRIVATE KEY` PEM.
pub fn encrypt_pkcs8(der: &[u8], passphrase: &[u8]) -> Result<String, String> {
    if passphrase.len() < MIN_PASSPHRASE_LEN {
        return Err(format!(
            "the root passphrase must have at least {MIN_PASSPHRASE_LEN} bytes"
        ));
    }
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    OsRng.fill_bytes(&mut iv);
    let params = pbes2::Parameters::pbkdf2_sha256_aes256cbc(PBKDF2_ITERATIONS, &salt, &iv)
        .map_err(|e| format!("PBES2 parameters: {e}"))?;
    let info = pkcs8::PrivateKeyInfo::try_from(der).map_err(|e| format!("PKCS#8 key: {e}"))?;
    let doc = info
        .encrypt_with_params(params, passphrase)
        .map_err(|e| format!("encrypting the key: {e}"))?;
    doc.to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF)
        .map(|p| p.to_string())
        .map_err(|e| format!("PEM: {e}"))
}

/// Decrypts an `ENCRYPTED PRIVATE KEY` PEM to PKCS#8 DER (zeroized on drop).
pub fn decrypt_pkcs8(pem: &str, passphrase: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    let blocks = edgeward_core::pem::parse_labelled(pem.as_bytes(), "ENCRYPTED PRIVATE KEY")
        .map_err(|e| e.to_string())?;
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(blocks[0].as_slice())
        .map_err(|e| format!("malformed encrypted key: {e}"))?;
    edgeward_core::keys::check_kdf_cost(&info.encryption_algorithm).map_err(|e| e.to_string())?;
    let doc = info
        .decrypt(passphrase)
        .map_err(|_| "wrong passphrase for the root key".to_string())?;
    Ok(Zeroizing::new(doc.as_bytes().to_vec()))
}

/// Reads an unencrypted `PRIVATE KEY` PEM to PKCS#8 DER (zeroized on drop).
pub fn read_pkcs8(pem: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let mut blocks = edgeward_core::pem::parse_labelled(pem.as_bytes(), "PRIVATE KEY")
        .map_err(|e| e.to_string())?;
    Ok(Zeroizing::new(blocks.swap_remove(0)))
}

/// PEM of an unencrypted PKCS#8 DER key (zeroized on drop).
pub fn pkcs8_pem(der: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(edgeward_core::pem::encode("PRIVATE KEY", der))
}

/// Re-encodes a PKCS#8 key in the form every tool reads: Ed25519 keys as PKCS#8 v1 (RFC
/// 8410 without the optional public key, which OpenSSL 3.0 and Python `cryptography`
/// refuse); other keys unchanged.
pub fn portable_pkcs8(der: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, KeypairBytes};
    match ed25519_dalek::SigningKey::from_pkcs8_der(der) {
        Ok(key) => KeypairBytes {
            secret_key: key.to_bytes(),
            public_key: None,
        }
        .to_pkcs8_der()
        .map(|doc| Zeroizing::new(doc.as_bytes().to_vec()))
        .map_err(|e| format!("encoding the Ed25519 key: {e}")),
        Err(_) => Ok(Zeroizing::new(der.to_vec())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pkcs8::der::Encode;

    #[test]
    fn round_trip_and_wrong_passphrase() {
        let key = rcgen::KeyPair::generate().expect("key");
        let pem = encrypt_pkcs8(&key.serialize_der(), b"correct horse").expect("encrypt");
        assert_eq!(
            decrypt_pkcs8(&pem, b"correct horse")
                .expect("decrypt")
                .as_slice(),
            key.serialize_der()
        );
        assert!(decrypt_pkcs8(&pem, b"wrong horse").is_err());
        assert!(encrypt_pkcs8(&key.serialize_der(), b"short").is_err());
    }

    #[test]
    fn a_hostile_iteration_count_is_refused_before_any_work() {
        let (salt, iv) = ([1u8; 16], [2u8; 16]);
        let params =
            pbes2::Parameters::pbkdf2_sha256_aes256cbc(50_000_000, &salt, &iv).expect("params");
        let info = pkcs8::EncryptedPrivateKeyInfo {
            encryption_algorithm: params.into(),
            encrypted_data: &[0u8; 48],
        };
        let pem = edgeward_core::pem::encode("ENCRYPTED PRIVATE KEY", &info.to_der().expect("der"));
        let started = std::time::Instant::now();
        let err = decrypt_pkcs8(&pem, b"anything").expect_err("refused");
        assert!(err.contains("PBKDF2 iterations"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
}
