//! Property test over 10,000 ECDSA P-256 signatures: every DER form (70, 71 and 72 bytes,
//! and the rarer shorter ones) verifies, the high-S twin OpenSSL may produce verifies too,
//! and any single flipped bit in the signature or a different message is refused.

use edgeward_core::{keys::PublicKey, keys::SigningKey, raw_signature, sha256, Error};
use p256::elliptic_curve::{scalar::IsHigh, PrimeField};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn key() -> SigningKey {
    SigningKey::P256(p256::ecdsa::SigningKey::from_bytes(&[7u8; 32].into()).expect("fixed key"))
}

/// The refusal of a well-formed P-256 signature that `pk` did not make over this digest.
fn not_by(pk: &PublicKey) -> Error {
    Error::BadSignature(format!(
        "ECDSA P-256 signature (sha256) is not by key {} over this content",
        pk.fingerprint()
    ))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, ..ProptestConfig::default() })]

    #[test]
    fn every_der_form_verifies_and_every_flip_is_refused(
        message in proptest::collection::vec(any::<u8>(), 0..256),
        flip in any::<usize>(),
    ) {
        let sk = key();
        let pk: PublicKey = sk.public_key();
        let digest = sha256(&message);
        let der = sk.sign_sha256_digest(&digest).expect("sign");
        prop_assert!(der.len() <= 72);
        prop_assert!(raw_signature::verify_digest(&pk, &digest, &der).is_ok());
        prop_assert!(raw_signature::verify_message(&pk, &message, &der).is_ok());

        // The same signature with s replaced by n - s (what OpenSSL emits half the time).
        let sig = raw_signature::parse_ecdsa_der(&der).expect("parse");
        let (r, s) = (sig.r(), sig.s());
        let s_twin = -*s.as_ref();
        let twin = p256::ecdsa::Signature::from_scalars(r.to_repr(), s_twin.to_repr()).expect("twin");
        prop_assert!(bool::from(s.is_high()) != bool::from(twin.s().is_high()));
        prop_assert!(raw_signature::verify_digest(&pk, &digest, twin.to_der().as_bytes()).is_ok());

        let mut bad = der.clone();
        let bit = flip % (bad.len() * 8);
        bad[bit / 8] ^= 1 << (bit % 8);
        // A flip either breaks the DER (refused as malformed, with the parser's own words)
        // or leaves another well-formed signature, which does not verify.
        let refused = raw_signature::verify_digest(&pk, &digest, &bad).expect_err("a flipped bit");
        match raw_signature::parse_ecdsa_der(&bad) {
            Err(malformed) => prop_assert_eq!(refused, malformed),
            Ok(_) => prop_assert_eq!(refused, not_by(&pk)),
        }

        let mut other = digest;
        other[flip % 32] ^= 0x80;
        prop_assert_eq!(raw_signature::verify_digest(&pk, &other, &der), Err(not_by(&pk)));
    }
}

#[test]
fn all_three_common_der_lengths_occur() {
    let sk = key();
    let mut seen = BTreeMap::new();
    for i in 0u32..2_000 {
        let d = sha256(&i.to_le_bytes());
        *seen
            .entry(sk.sign_sha256_digest(&d).expect("sign").len())
            .or_insert(0) += 1;
    }
    for len in [70, 71, 72] {
        assert!(
            seen.contains_key(&len),
            "no {len}-byte signature in {seen:?}"
        );
    }
}
