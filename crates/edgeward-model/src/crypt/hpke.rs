//! HPKE (RFC 9180) base mode with DHKEM(P-256, HKDF-SHA256), HKDF-SHA256 and AES-256-GCM,
//! single-shot, with the recipient's Diffie-Hellman step done by a secure element.
//!
//! Sender side: an ephemeral P-256 key from the `p256` crate. Recipient side: the element
//! computes the shared x-coordinate ([`edgeward_se::SecureElement::ecdh`]), so the device
//! key never leaves it; everything after that — `ExtractAndExpand`, the key schedule and the
//! AEAD — is RFC 9180 §4.1 and §5.1 composed from `hkdf`/`sha2` and the AEAD backend.
//! Interoperability with the `hpke` crate and the RFC's vectors is tested.

use hkdf::Hkdf;
use p256::elliptic_curve::sec1::ToEncodedPoint;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{aead, container::ENC_LEN, CryptError};

/// KEM id of DHKEM(P-256, HKDF-SHA256).
const KEM_ID: u16 = 0x0010;
/// KDF id of HKDF-SHA256.
const KDF_ID: u16 = 0x0001;
/// AEAD id of AES-256-GCM.
pub const AEAD_ID_AES_256_GCM: u16 = 0x0002;
/// Length of the AEAD nonce.
const NN: usize = 12;

/// `"KEM" || I2OSP(kem_id, 2)`.
fn kem_suite() -> [u8; 5] {
    let mut s = *b"KEM\0\0";
    s[3..].copy_from_slice(&KEM_ID.to_be_bytes());
    s
}

/// `"HPKE" || I2OSP(kem_id, 2) || I2OSP(kdf_id, 2) || I2OSP(aead_id, 2)`.
fn hpke_suite(aead_id: u16) -> [u8; 10] {
    let mut s = *b"HPKE\0\0\0\0\0\0";
    s[4..6].copy_from_slice(&KEM_ID.to_be_bytes());
    s[6..8].copy_from_slice(&KDF_ID.to_be_bytes());
    s[8..10].copy_from_slice(&aead_id.to_be_bytes());
    s
}

/// `LabeledExtract(salt, label, ikm)` (RFC 9180 §4).
fn labeled_extract(suite: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut input = Zeroizing::new(Vec::with_capacity(
        7 + suite.len() + label.len() + ikm.len(),
    ));
    input.extend_from_slice(b"HPKE-v1");
    input.extend_from_slice(suite);
    input.extend_from_slice(label);
    input.extend_from_slice(ikm);
    let (prk, _) = Hkdf::<Sha256>::extract(Some(salt), &input);
    Zeroizing::new(prk.into())
}

/// `LabeledExpand(prk, label, info, L)` (RFC 9180 §4), `L = out.len()`.
fn labeled_expand(
    suite: &[u8],
    prk: &[u8; 32],
    label: &[u8],
    info: &[u8],
    out: &mut [u8],
) -> Result<(), CryptError> {
    let len = u16::try_from(out.len())
        .map_err(|_| CryptError::InvalidArgument("HKDF output too long".into()))?;
    let mut labeled = Vec::with_capacity(9 + suite.len() + label.len() + info.len());
    labeled.extend_from_slice(&len.to_be_bytes());
    labeled.extend_from_slice(b"HPKE-v1");
    labeled.extend_from_slice(suite);
    labeled.extend_from_slice(label);
    labeled.extend_from_slice(info);
    Hkdf::<Sha256>::from_prk(prk)
        .and_then(|h| h.expand(&labeled, out).map_err(|_| hkdf::InvalidPrkLength))
        .map_err(|_| CryptError::InvalidArgument("HKDF expansion failed".into()))
}

/// DHKEM's `ExtractAndExpand(dh, kem_context)` giving the 32-byte shared secret.
fn extract_and_expand(
    dh: &[u8; 32],
    enc: &[u8; ENC_LEN],
    pk_r: &[u8; ENC_LEN],
) -> Result<Zeroizing<[u8; 32]>, CryptError> {
    let suite = kem_suite();
    let eae_prk = labeled_extract(&suite, b"", b"eae_prk", dh);
    let mut kem_context = [0u8; 2 * ENC_LEN];
    kem_context[..ENC_LEN].copy_from_slice(enc);
    kem_context[ENC_LEN..].copy_from_slice(pk_r);
    let mut shared = Zeroizing::new([0u8; 32]);
    labeled_expand(
        &suite,
        &eae_prk,
        b"shared_secret",
        &kem_context,
        shared.as_mut(),
    )?;
    Ok(shared)
}

/// The base-mode key schedule's AEAD key (`nk` bytes) and base nonce (RFC 9180 §5.1).
pub(crate) fn key_schedule(
    aead_id: u16,
    nk: usize,
    shared_secret: &[u8; 32],
    info: &[u8],
) -> Result<(Zeroizing<Vec<u8>>, [u8; NN]), CryptError> {
    let suite = hpke_suite(aead_id);
    let psk_id_hash = labeled_extract(&suite, b"", b"psk_id_hash", b"");
    let info_hash = labeled_extract(&suite, b"", b"info_hash", info);
    let mut context = [0u8; 65];
    // mode_base = 0x00 stays in context[0].
    context[1..33].copy_from_slice(psk_id_hash.as_ref());
    context[33..].copy_from_slice(info_hash.as_ref());
    let secret = labeled_extract(&suite, shared_secret, b"secret", b"");
    let mut key = Zeroizing::new(vec![0u8; nk]);
    labeled_expand(&suite, &secret, b"key", &context, &mut key)?;
    let mut nonce = [0u8; NN];
    labeled_expand(&suite, &secret, b"base_nonce", &context, &mut nonce)?;
    Ok((key, nonce))
}

/// The uncompressed SEC1 encoding of a P-256 public key.
pub fn sec1_uncompressed(key: &p256::PublicKey) -> [u8; ENC_LEN] {
    let mut out = [0u8; ENC_LEN];
    out.copy_from_slice(key.to_encoded_point(false).as_bytes());
    out
}

/// Single-shot `SealBase` to `pk_r` with a fresh ephemeral key: returns `enc` and the
/// ciphertext (plaintext length + 16).
pub fn seal(
    pk_r: &p256::PublicKey,
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<([u8; ENC_LEN], Vec<u8>), CryptError> {
    let sk_e = p256::SecretKey::random(&mut rand_core::OsRng);
    seal_with_ephemeral(&sk_e, pk_r, info, aad, plaintext)
}

/// `SealBase` with a given ephemeral key (the RFC's vectors fix it).
pub(crate) fn seal_with_ephemeral(
    sk_e: &p256::SecretKey,
    pk_r: &p256::PublicKey,
    info: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<([u8; ENC_LEN], Vec<u8>), CryptError> {
    let enc = sec1_uncompressed(&sk_e.public_key());
    let shared = p256::ecdh::diffie_hellman(sk_e.to_nonzero_scalar(), pk_r.as_affine());
    let mut dh = Zeroizing::new([0u8; 32]);
    dh.copy_from_slice(shared.raw_secret_bytes());
    let shared_secret = extract_and_expand(&dh, &enc, &sec1_uncompressed(pk_r))?;
    let (key, nonce) = key_schedule(AEAD_ID_AES_256_GCM, 32, &shared_secret, info)?;
    let key = aead::Key::new(&key)?;
    let mut out = plaintext.to_vec();
    let tag = key.seal_in_place(nonce, aad, &mut out)?;
    out.extend_from_slice(&tag);
    Ok((enc, out))
}

/// Single-shot `OpenBase`. `pk_r` is the recipient's public key (uncompressed SEC1) and
/// `dh` computes the Diffie-Hellman x-coordinate of the recipient's private key with the
/// given (validated) peer point — on a device, inside its secure element.
pub fn open(
    enc: &[u8; ENC_LEN],
    pk_r: &[u8; ENC_LEN],
    dh: impl FnOnce(&[u8; ENC_LEN]) -> Result<Zeroizing<[u8; 32]>, CryptError>,
    info: &[u8],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptError> {
    // Refuse points not on the curve before they reach the element (RFC 9180 §7.1.4).
    p256::PublicKey::from_sec1_bytes(enc).map_err(|_| {
        CryptError::MalformedHeader("an encapsulated key is not a valid P-256 point".into())
    })?;
    let shared = dh(enc)?;
    let shared_secret = extract_and_expand(&shared, enc, pk_r)?;
    let (key, nonce) = key_schedule(AEAD_ID_AES_256_GCM, 32, &shared_secret, info)?;
    let key = aead::Key::new(&key)?;
    let split = ciphertext
        .len()
        .checked_sub(aead::TAG_LEN)
        .ok_or(CryptError::WrapRejected)?;
    let (ct, tag) = ciphertext.split_at(split);
    let mut out = Zeroizing::new(ct.to_vec());
    key.open_in_place(nonce, aad, tag, &mut out)
        .map_err(|_| CryptError::WrapRejected)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn arr<const N: usize>(s: &str) -> [u8; N] {
        unhex(s).try_into().unwrap()
    }

    /// The recipient's DH as an element would compute it, from a private key in memory.
    fn soft_dh(sk: &p256::SecretKey, peer: &[u8; ENC_LEN]) -> Zeroizing<[u8; 32]> {
        let peer = p256::PublicKey::from_sec1_bytes(peer).unwrap();
        let s = p256::ecdh::diffie_hellman(sk.to_nonzero_scalar(), peer.as_affine());
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(s.raw_secret_bytes());
        out
    }

    /// RFC 9180 Appendix A.3.1: DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, base
    /// mode. Checks the KEM (decapsulation with the recipient key) and the key schedule.
    #[test]
    fn rfc9180_a31_kem_and_key_schedule() {
        let info = unhex("4f6465206f6e2061204772656369616e2055726e");
        let enc: [u8; 65] = arr("04a92719c6195d5085104f469a8b9814d5838ff72b60501e2c4466e5e67b325ac98536d7b61a1af4b78e5b7f951c0900be863c403ce65c9bfcb9382657222d18c4");
        let pk_r: [u8; 65] = arr("04fe8c19ce0905191ebc298a9245792531f26f0cece2460639e8bc39cb7f706a826a779b4cf969b8a0e539c7f62fb3d30ad6aa8f80e30f1d128aafd68a2ce72ea0");
        let sk_r = p256::SecretKey::from_slice(&unhex(
            "f3ce7fdae57e1a310d87f1ebbde6f328be0a99cdbcadf4d6589cf29de4b8ffd2",
        ))
        .unwrap();
        assert_eq!(sec1_uncompressed(&sk_r.public_key()), pk_r);
        let dh = soft_dh(&sk_r, &enc);
        let shared = extract_and_expand(&dh, &enc, &pk_r).unwrap();
        assert_eq!(
            hex::encode(shared.as_ref()),
            "c0d26aeab536609a572b07695d933b589dcf363ff9d93c93adea537aeabb8cb8"
        );
        let (key, nonce) = key_schedule(0x0001, 16, &shared, &info).unwrap();
        assert_eq!(hex::encode(&key[..]), "868c066ef58aae6dc589b6cfdd18f97e");
        assert_eq!(hex::encode(nonce), "4e0bc5018beba4bf004cca59");
    }

    /// The CFRG reference vector for this exact suite (AES-256-GCM), base mode, first
    /// encryption: the ephemeral key is fixed, so `enc` and the ciphertext must match
    /// byte for byte, and the recipient side must open it.
    #[test]
    fn cfrg_vector_p256_aes256gcm() {
        let info = unhex("4f6465206f6e2061204772656369616e2055726e");
        let sk_e = p256::SecretKey::from_slice(&derive_key_pair_sk(&unhex(
            "a90d3417c3da9cb6c6ae19b4b5dd6cc9529a4cc24efb7ae0ace1f31887a8cd6c",
        )))
        .unwrap();
        let pk_r = p256::PublicKey::from_sec1_bytes(&unhex("04abc7e49a4c6b3566d77d0304addc6ed0e98512ffccf505e6a8e3eb25c685136f853148544876de76c0f2ef99cdc3a05ccf5ded7860c7c021238f9e2073d2356c")).unwrap();
        let sk_r = p256::SecretKey::from_slice(&unhex(
            "317f915db7bc629c48fe765587897e01e282d3e8445f79f27f65d031a88082b2",
        ))
        .unwrap();
        let aad = unhex("436f756e742d30");
        let pt = unhex("4265617574792069732074727574682c20747275746820626561757479");
        let (enc, ct) = seal_with_ephemeral(&sk_e, &pk_r, &info, &aad, &pt).unwrap();
        assert_eq!(hex::encode(enc), "04c06b4f6bebc7bb495cb797ab753f911aff80aefb86fd8b6fcc35525f3ab5f03e0b21bd31a86c6048af3cb2d98e0d3bf01da5cc4c39ff5370d331a4f1f7d5a4e0");
        assert_eq!(hex::encode(&ct), "58c61a45059d0c5704560e9d88b564a8b63f1364b8d1fcb3c4c6ddc1d291742465e902cd216f8908da49f8f96f");
        let opened = open(
            &enc,
            &sec1_uncompressed(&pk_r),
            |peer| Ok(soft_dh(&sk_r, peer)),
            &info,
            &aad,
            &ct,
        )
        .unwrap();
        assert_eq!(&opened[..], &pt[..]);
    }

    /// DHKEM(P-256)'s `DeriveKeyPair` (RFC 9180 §7.1.3), only to reproduce the vectors'
    /// ephemeral keys from their `ikmE`.
    fn derive_key_pair_sk(ikm: &[u8]) -> Vec<u8> {
        let suite = kem_suite();
        let prk = labeled_extract(&suite, b"", b"dkp_prk", ikm);
        for counter in 0u8..=255 {
            let mut candidate = [0u8; 32];
            labeled_expand(&suite, &prk, b"candidate", &[counter], &mut candidate).unwrap();
            if p256::SecretKey::from_slice(&candidate).is_ok() {
                return candidate.to_vec();
            }
        }
        panic!("no candidate");
    }

    #[test]
    fn tampered_ciphertext_and_wrong_key_are_refused() {
        let sk_r = p256::SecretKey::random(&mut rand_core::OsRng);
        let other = p256::SecretKey::random(&mut rand_core::OsRng);
        let pk = sec1_uncompressed(&sk_r.public_key());
        let (enc, mut ct) = seal(&sk_r.public_key(), b"info", b"aad", b"secret").unwrap();
        assert!(matches!(
            open(&enc, &pk, |p| Ok(soft_dh(&other, p)), b"info", b"aad", &ct),
            Err(CryptError::WrapRejected)
        ));
        ct[0] ^= 1;
        assert!(matches!(
            open(&enc, &pk, |p| Ok(soft_dh(&sk_r, p)), b"info", b"aad", &ct),
            Err(CryptError::WrapRejected)
        ));
        let mut bad_enc = enc;
        bad_enc[10] ^= 1;
        assert!(open(
            &bad_enc,
            &pk,
            |p| Ok(soft_dh(&sk_r, p)),
            b"info",
            b"aad",
            &ct
        )
        .is_err());
    }
}
