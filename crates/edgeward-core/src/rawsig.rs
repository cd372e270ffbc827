//! Detached raw signatures over a whole file, the way teams already sign firmware:
//! `openssl dgst -sha256 -sign key.pem` (ECDSA P-256: a DER `ECDSA-Sig-Value`; RSA:
//! PKCS#1 v1.5, or PSS) and Python `cryptography`'s Ed25519 `private_key.sign(data)` (64 bytes).

use alloc::{format, string::String};

use crate::{keys::PublicKey, Error, Sha256Digest};

/// The longest raw signature accepted (RSA-4096 is 512 bytes).
pub const MAX_RAW_SIGNATURE_BYTES: usize = 512;

/// Parses a DER ECDSA P-256 signature strictly (no BER leniency, no trailing bytes).
pub fn parse_ecdsa_der(sig: &[u8]) -> Result<p256::ecdsa::Signature, Error> {
    p256::ecdsa::Signature::from_der(sig).map_err(|_| {
        Error::malformed(
            "ECDSA signature DER",
            format!(
                "{} bytes are not a DER ECDSA-Sig-Value with two in-range integers",
                sig.len()
            ),
        )
    })
}

/// Verifies a raw signature made over a message whose SHA-256 digest is `digest`.
///
/// ECDSA and RSA sign the digest, so a file of any size is hashed once by the caller (as a
/// stream). Ed25519 needs the whole message: use [`verify_message`].
pub fn verify_digest(key: &PublicKey, digest: &Sha256Digest, sig: &[u8]) -> Result<(), Error> {
    check_len(sig)?;
    match key {
        PublicKey::P256(k) => {
            use p256::ecdsa::signature::hazmat::PrehashVerifier;
            let sig = parse_ecdsa_der(sig)?;
            k.verify_prehash(digest, &sig).map_err(|_| {
                Error::BadSignature(format!(
                    "ECDSA P-256 signature is not by key {} over this content",
                    key.fingerprint()
                ))
            })
        }
        PublicKey::Rsa(k) => verify_rsa(k, digest, sig, &key.fingerprint()),
        PublicKey::Ed25519(_) => Err(Error::InvalidArgument(String::from(
            "Ed25519 verifies the whole message, not a digest",
        ))),
    }
}

/// Verifies a raw signature over the whole `message` (any key type).
pub fn verify_message(key: &PublicKey, message: &[u8], sig: &[u8]) -> Result<(), Error> {
    check_len(sig)?;
    match key {
        PublicKey::Ed25519(k) => {
            let bytes: [u8; 64] = sig.try_into().map_err(|_| {
                Error::malformed(
                    "Ed25519 signature",
                    format!("{} bytes, an Ed25519 signature is exactly 64", sig.len()),
                )
            })?;
            let sig = ed25519_dalek::Signature::from_bytes(&bytes);
            k.verify_strict(message, &sig).map_err(|_| {
                Error::BadSignature(format!(
                    "Ed25519 signature is not by key {} over this content",
                    key.fingerprint()
                ))
            })
        }
        _ => verify_digest(key, &crate::sha256(message), sig),
    }
}

fn check_len(sig: &[u8]) -> Result<(), Error> {
    if sig.is_empty() || sig.len() > MAX_RAW_SIGNATURE_BYTES {
        return Err(Error::malformed(
            "raw signature",
            format!("{} bytes (expected 1–{MAX_RAW_SIGNATURE_BYTES})", sig.len()),
        ));
    }
    Ok(())
}

/// RSA with SHA-256: PKCS#1 v1.5 (OpenSSL's default), else PSS with the salt lengths OpenSSL
/// signs with (the digest length, OpenSSL ≥ 3.1's default, or the maximum, 3.0's default).
fn verify_rsa(
    key: &rsa::RsaPublicKey,
    digest: &Sha256Digest,
    sig: &[u8],
    fingerprint: &str,
) -> Result<(), Error> {
    use rsa::traits::PublicKeyParts;
    let modulus_bytes = key.size();
    if sig.len() != modulus_bytes {
        return Err(Error::malformed(
            "RSA signature",
            format!("{} bytes for a {modulus_bytes}-byte modulus", sig.len()),
        ));
    }
    if key
        .verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), digest, sig)
        .is_ok()
    {
        return Ok(());
    }
    let em_len = (key.n().bits() - 1).div_ceil(8);
    let max_salt = em_len.saturating_sub(32 + 2);
    for salt in [32, max_salt] {
        if key
            .verify(rsa::Pss::new_with_salt::<sha2::Sha256>(salt), digest, sig)
            .is_ok()
        {
            return Ok(());
        }
    }
    Err(Error::BadSignature(format!(
        "RSA signature (PKCS#1 v1.5 or PSS, SHA-256) is not by key {fingerprint} over this content"
    )))
}
