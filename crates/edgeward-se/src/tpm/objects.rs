//! Object templates and conversions: the storage key (SRK), the per-slot P-256 keys, the
//! sealed-data object, and the translation between TPM structures and the types the rest of
//! the crate uses (SEC1 points, DER ECDSA signatures).

use edgeward_core::keys::PublicKey;
use tss_esapi::{
    attributes::ObjectAttributesBuilder,
    interface_types::{
        algorithm::{HashingAlgorithm, PublicAlgorithm},
        ecc::EccCurve,
    },
    structures::{
        Digest, EccParameter, EccPoint, EccScheme, EccSignature, KeyDerivationFunctionScheme,
        KeyedHashScheme, Public, PublicBuilder, PublicEccParameters, PublicKeyedHashParameters,
        SymmetricDefinitionObject,
    },
};

use super::{backend_error, tss};
use crate::SeError;

/// The storage key: a restricted ECC P-256 decryption key in the owner hierarchy. Its
/// `unique` field carries the 32-byte seed from NV, so the same seed always re-creates the
/// same key and a new seed (after a wipe) a different one.
pub(super) fn storage_key_template(seed: &[u8]) -> Result<Public, SeError> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()
        .map_err(|e| tss("SRK attributes", e))?;
    let unique = EccPoint::new(
        EccParameter::try_from(seed.to_vec()).map_err(|e| tss("SRK unique", e))?,
        EccParameter::default(),
    );
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(PublicEccParameters::new(
            SymmetricDefinitionObject::AES_128_CFB,
            EccScheme::Null,
            EccCurve::NistP256,
            KeyDerivationFunctionScheme::Null,
        ))
        .with_ecc_unique_identifier(unique)
        .build()
        .map_err(|e| tss("SRK template", e))
}

/// A slot key: unrestricted ECC P-256 with both `sign` and `decrypt` (so one key does
/// TPM2_Sign and TPM2_ECDH_ZGen; the TPM then requires the `NULL` scheme, and each TPM2_Sign
/// names ECDSA-SHA256). Generated inside the TPM (`sensitiveDataOrigin`), bound to it
/// (`fixedTPM`, `fixedParent`: TPM2_Duplicate is refused), no auth policy.
pub(super) fn slot_key_template() -> Result<Public, SeError> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_sign_encrypt(true)
        .with_decrypt(true)
        .build()
        .map_err(|e| tss("key attributes", e))?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(PublicEccParameters::new(
            SymmetricDefinitionObject::Null,
            EccScheme::Null,
            EccCurve::NistP256,
            KeyDerivationFunctionScheme::Null,
        ))
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
        .map_err(|e| tss("key template", e))
}

/// The sealed-data object holding the 32-byte host-side sealing key: a `KEYEDHASH` object
/// with caller-provided data (so no `sensitiveDataOrigin`), bound to this TPM and parent.
pub(super) fn sealed_template() -> Result<Public, SeError> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .build()
        .map_err(|e| tss("sealed object attributes", e))?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
        .with_keyed_hash_unique_identifier(Digest::default())
        .build()
        .map_err(|e| tss("sealed object template", e))
}

/// The P-256 public key of a TPM ECC object.
pub(super) fn public_key(public: &Public) -> Result<PublicKey, SeError> {
    let Public::Ecc {
        unique, parameters, ..
    } = public
    else {
        return Err(backend_error("a key object is not an ECC key"));
    };
    if parameters.ecc_curve() != EccCurve::NistP256 {
        return Err(backend_error("a key object is not on the P-256 curve"));
    }
    let mut sec1 = [0u8; 65];
    sec1[0] = 4;
    sec1[1..33].copy_from_slice(&coordinate(unique.x().value())?);
    sec1[33..].copy_from_slice(&coordinate(unique.y().value())?);
    p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
        .map(PublicKey::P256)
        .map_err(|_| backend_error("a key object's public point is not on P-256"))
}

/// A P-256 point as the TPM takes it.
pub(super) fn ecc_point(point: &p256::PublicKey) -> Result<EccPoint, SeError> {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let encoded = point.to_encoded_point(false);
    let (Some(x), Some(y)) = (encoded.x(), encoded.y()) else {
        return Err(SeError::InvalidArgument(
            "the peer public key is the point at infinity".into(),
        ));
    };
    Ok(EccPoint::new(
        EccParameter::try_from(x.to_vec()).map_err(|e| tss("ECC point", e))?,
        EccParameter::try_from(y.to_vec()).map_err(|e| tss("ECC point", e))?,
    ))
}

/// Left-pads a big-endian coordinate or scalar to 32 bytes.
pub(super) fn coordinate(bytes: &[u8]) -> Result<[u8; 32], SeError> {
    let mut out = [0u8; 32];
    coordinate_into(bytes, &mut out)?;
    Ok(out)
}

/// Left-pads a big-endian value into `out` (for secrets: no copy is left behind).
pub(super) fn coordinate_into(bytes: &[u8], out: &mut [u8; 32]) -> Result<(), SeError> {
    let significant = bytes
        .iter()
        .position(|&b| b != 0)
        .map_or(&[][..], |i| &bytes[i..]);
    if significant.len() > 32 {
        return Err(backend_error(format!(
            "the TPM returned a {}-byte P-256 value",
            bytes.len()
        )));
    }
    out.fill(0);
    out[32 - significant.len()..].copy_from_slice(significant);
    Ok(())
}

/// DER encoding of a TPM ECDSA signature (r, s).
pub(super) fn der_signature(signature: &EccSignature) -> Result<Vec<u8>, SeError> {
    let r = coordinate(signature.signature_r().value())?;
    let s = coordinate(signature.signature_s().value())?;
    p256::ecdsa::Signature::from_scalars(r, s)
        .map(|sig| sig.to_der().as_bytes().to_vec())
        .map_err(|_| backend_error("the TPM returned an invalid ECDSA signature"))
}
