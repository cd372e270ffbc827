//! Detached raw signatures over a whole file, the way teams already sign firmware:
//! `openssl dgst -sha256 -sign key.pem` (ECDSA P-256: a DER `ECDSA-Sig-Value`; RSA:
//! PKCS#1 v1.5, or PSS), `-sha384` with a P-384 key, `-sha512` with a P-521 key, and Python
//! `cryptography`'s Ed25519 `private_key.sign(data)` (64 bytes).

use alloc::{format, string::String};

use crate::{digest::HashAlg, keys::PublicKey, Error, Sha256Digest};

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
    verify_prehash(key, HashAlg::Sha256, digest, sig)
}

/// Verifies a raw ECDSA or RSA signature made over a message whose `hash` digest is
/// `digest`. The key's own hash ([`PublicKey::hash_alg`]) is what signers use; another is
/// accepted for formats that record theirs (model_signing v0.2 signed P-384 keys over
/// SHA-256).
pub fn verify_prehash(
    key: &PublicKey,
    hash: HashAlg,
    digest: &[u8],
    sig: &[u8],
) -> Result<(), Error> {
    check_len(sig)?;
    if digest.len() != hash.output_len() {
        return Err(Error::InvalidArgument(format!(
            "a {} digest is {} bytes, not {}",
            hash.name(),
            hash.output_len(),
            digest.len()
        )));
    }
    use ecdsa::signature::hazmat::PrehashVerifier;
    let refused = |curve: &str| {
        Error::BadSignature(format!(
            "ECDSA {curve} signature ({}) is not by key {} over this content",
            hash.name(),
            key.fingerprint()
        ))
    };
    match key {
        PublicKey::P256(k) => k
            .verify_prehash(digest, &parse_ecdsa_der(sig)?)
            .map_err(|_| refused("P-256")),
        PublicKey::P384(k) => k
            .verify_prehash(
                digest,
                &p384::ecdsa::Signature::from_der(sig).map_err(|_| bad_der(sig, "P-384"))?,
            )
            .map_err(|_| refused("P-384")),
        PublicKey::P521(k) => k
            .verify_prehash(
                digest,
                &p521::ecdsa::Signature::from_der(sig).map_err(|_| bad_der(sig, "P-521"))?,
            )
            .map_err(|_| refused("P-521")),
        PublicKey::Rsa(k) => verify_rsa(k, hash, digest, sig, &key.fingerprint()),
        PublicKey::Ed25519(_) => Err(Error::InvalidArgument(String::from(
            "Ed25519 verifies the whole message, not a digest",
        ))),
    }
}

/// The refusal for DER that is not an ECDSA signature on `curve`.
fn bad_der(sig: &[u8], curve: &str) -> Error {
    Error::malformed(
        "ECDSA signature DER",
        format!(
            "{} bytes are not a DER ECDSA-Sig-Value with two integers in range for {curve}",
            sig.len()
        ),
    )
}

/// Verifies a raw signature over the whole `message` (any key type; ECDSA and RSA hash it
/// with the key's own hash).
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
        _ => {
            let hash = key.hash_alg();
            verify_prehash(key, hash, &hash.digest(message), sig)
        }
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

/// RSA: PKCS#1 v1.5 (OpenSSL's default), else PSS with MGF1 of the same hash and the salt
/// lengths OpenSSL and imgtool sign with (the digest length, OpenSSL ≥ 3.1's and imgtool's,
/// or the maximum, OpenSSL 3.0's default).
fn verify_rsa(
    key: &rsa::RsaPublicKey,
    hash: HashAlg,
    digest: &[u8],
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
    let (pkcs1, pss): (rsa::Pkcs1v15Sign, fn(usize) -> rsa::Pss) = match hash {
        HashAlg::Sha256 => (rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), |salt| {
            rsa::Pss::new_with_salt::<sha2::Sha256>(salt)
        }),
        HashAlg::Sha384 => (rsa::Pkcs1v15Sign::new::<sha2::Sha384>(), |salt| {
            rsa::Pss::new_with_salt::<sha2::Sha384>(salt)
        }),
        HashAlg::Sha512 => (rsa::Pkcs1v15Sign::new::<sha2::Sha512>(), |salt| {
            rsa::Pss::new_with_salt::<sha2::Sha512>(salt)
        }),
    };
    if key.verify(pkcs1, digest, sig).is_ok() {
        return Ok(());
    }
    let em_len = (key.n().bits() - 1).div_ceil(8);
    let max_salt = em_len.saturating_sub(hash.output_len() + 2);
    for salt in [hash.output_len(), max_salt] {
        if key.verify(pss(salt), digest, sig).is_ok() {
            return Ok(());
        }
    }
    Err(Error::BadSignature(format!(
        "RSA signature (PKCS#1 v1.5 or PSS, {}) is not by key {fingerprint} over this content",
        hash.name()
    )))
}
