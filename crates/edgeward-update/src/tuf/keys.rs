//! Public keys as TUF metadata lists them, and signature checks with them.
//!
//! TUF names a key by `keytype` + `scheme` + `keyval.public`. The schemes the
//! specification names are supported (`ed25519` with a hex key, `ecdsa-sha2-nistp256` with
//! a PEM SubjectPublicKeyInfo or a hex SEC1 point, `rsassa-pss-sha256` with a PEM key),
//! plus `ecdsa-sha2-nistp384` and `rsa-pkcs1v15-sha256`, which securesystemslib also
//! writes. Verification is aws-lc-rs's. A key of a scheme we do not know, or whose public
//! value does not parse, is kept as unusable: it never counts towards a threshold, but it
//! does not make the metadata that lists it unreadable (a root may list a hardware key
//! type the device cannot check, as long as a threshold of others signs).

use aws_lc_rs::signature::{self, RsaParameters, RsaPssSaltLength, UnparsedPublicKey};
use pkcs8::der::DecodePem;
use pkcs8::spki::SubjectPublicKeyInfoOwned;

/// RSA-PSS with the salt as long as the digest (what securesystemslib signs with).
static RSA_PSS_SHA256: &RsaParameters = &signature::RSA_PSS_2048_8192_SHA256;
/// RSA-PSS with the longest salt the modulus allows (what some older signers used).
static RSA_PSS_SHA256_MAX_SALT: RsaParameters =
    signature::RSA_PSS_2048_8192_SHA256.with_pss_salt_length(RsaPssSaltLength::Max);

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_RSA: &str = "1.2.840.113549.1.1.1";

/// A signature scheme a key may sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Ed25519 over the canonical bytes.
    Ed25519,
    /// ECDSA on P-256 with SHA-256, ASN.1 DER signature.
    EcdsaP256Sha256,
    /// ECDSA on P-384 with SHA-384, ASN.1 DER signature.
    EcdsaP384Sha384,
    /// RSASSA-PSS with SHA-256 and MGF1-SHA-256.
    RsaPssSha256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RsaPkcs1Sha256,
}

impl Scheme {
    /// The scheme's name in TUF metadata.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Ed25519 => "ed25519",
            Scheme::EcdsaP256Sha256 => "ecdsa-sha2-nistp256",
            Scheme::EcdsaP384Sha384 => "ecdsa-sha2-nistp384",
            Scheme::RsaPssSha256 => "rsassa-pss-sha256",
            Scheme::RsaPkcs1Sha256 => "rsa-pkcs1v15-sha256",
        }
    }

    /// The `keytype` that goes with the scheme when we write metadata.
    pub fn keytype(self) -> &'static str {
        match self {
            Scheme::Ed25519 => "ed25519",
            Scheme::EcdsaP256Sha256 | Scheme::EcdsaP384Sha384 => "ecdsa",
            Scheme::RsaPssSha256 | Scheme::RsaPkcs1Sha256 => "rsa",
        }
    }
}

/// A public key from metadata: usable for one scheme, or unusable with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    usable: Result<UsableKey, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct UsableKey {
    scheme: Scheme,
    /// Ed25519: the 32 key bytes; ECDSA: the SEC1 point; RSA: the PKCS#1 RSAPublicKey DER.
    material: Vec<u8>,
}

impl PublicKey {
    /// Reads `keytype`, `scheme` and `keyval.public` as metadata gives them.
    pub fn from_metadata(keytype: &str, scheme: &str, public: &str) -> Self {
        PublicKey {
            usable: parse(keytype, scheme, public),
        }
    }

    /// Why the key cannot verify anything, if it cannot.
    pub fn unusable_reason(&self) -> Option<&str> {
        self.usable.as_ref().err().map(String::as_str)
    }

    /// Identity of the key material, the same however the public key was encoded: two
    /// key ids naming one key must not count twice towards a threshold.
    pub fn identity(&self) -> Option<&[u8]> {
        self.usable.as_ref().ok().map(|k| k.material.as_slice())
    }

    /// The scheme the key verifies, when usable.
    pub fn scheme(&self) -> Option<Scheme> {
        self.usable.as_ref().ok().map(|k| k.scheme)
    }

    /// Whether `sig` is this key's valid signature over `message`. A malformed signature
    /// is simply not valid.
    pub fn verifies(&self, message: &[u8], sig: &[u8]) -> bool {
        let Ok(key) = &self.usable else {
            return false;
        };
        let check = |alg: &'static dyn signature::VerificationAlgorithm| {
            UnparsedPublicKey::new(alg, &key.material)
                .verify(message, sig)
                .is_ok()
        };
        match key.scheme {
            Scheme::Ed25519 => check(&signature::ED25519),
            Scheme::EcdsaP256Sha256 => check(&signature::ECDSA_P256_SHA256_ASN1),
            Scheme::EcdsaP384Sha384 => check(&signature::ECDSA_P384_SHA384_ASN1),
            Scheme::RsaPssSha256 => check(RSA_PSS_SHA256) || check(&RSA_PSS_SHA256_MAX_SALT),
            Scheme::RsaPkcs1Sha256 => check(&signature::RSA_PKCS1_2048_8192_SHA256),
        }
    }
}

fn parse(keytype: &str, scheme: &str, public: &str) -> Result<UsableKey, String> {
    let scheme = match (keytype, scheme) {
        ("ed25519", "ed25519") => Scheme::Ed25519,
        ("ecdsa" | "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256") => Scheme::EcdsaP256Sha256,
        ("ecdsa" | "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384") => Scheme::EcdsaP384Sha384,
        ("rsa", "rsassa-pss-sha256") => Scheme::RsaPssSha256,
        ("rsa", "rsa-pkcs1v15-sha256") => Scheme::RsaPkcs1Sha256,
        _ => {
            return Err(format!(
                "unsupported key type {keytype:?} with scheme {scheme:?}"
            ))
        }
    };
    let material = match scheme {
        Scheme::Ed25519 => {
            let bytes = hex::decode(public).map_err(|e| format!("ed25519 key is not hex: {e}"))?;
            if bytes.len() != 32 {
                return Err(format!("ed25519 key has {} bytes, not 32", bytes.len()));
            }
            bytes
        }
        Scheme::EcdsaP256Sha256 | Scheme::EcdsaP384Sha384 => {
            let (curve, point_len) = if scheme == Scheme::EcdsaP256Sha256 {
                (OID_P256, 65)
            } else {
                (OID_P384, 97)
            };
            let point = if public.trim_start().starts_with("-----BEGIN") {
                let spki = spki_from_pem(public)?;
                if spki.algorithm.oid.to_string() != OID_EC_PUBLIC_KEY {
                    return Err(format!("{} key is not an EC key", scheme.name()));
                }
                let named_curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.decode_as::<pkcs8::der::asn1::ObjectIdentifier>().ok());
                if named_curve.map(|o| o.to_string()).as_deref() != Some(curve) {
                    return Err(format!("{} key is on another curve", scheme.name()));
                }
                spki.subject_public_key.raw_bytes().to_vec()
            } else {
                hex::decode(public).map_err(|e| format!("EC key is neither PEM nor hex: {e}"))?
            };
            if point.len() != point_len || point[0] != 4 {
                return Err(format!(
                    "{} key is not an uncompressed point of {point_len} bytes",
                    scheme.name()
                ));
            }
            point
        }
        Scheme::RsaPssSha256 | Scheme::RsaPkcs1Sha256 => {
            let spki = spki_from_pem(public)?;
            if spki.algorithm.oid.to_string() != OID_RSA {
                return Err("RSA key is not an rsaEncryption key".into());
            }
            spki.subject_public_key.raw_bytes().to_vec()
        }
    };
    Ok(UsableKey { scheme, material })
}

fn spki_from_pem(public: &str) -> Result<SubjectPublicKeyInfoOwned, String> {
    SubjectPublicKeyInfoOwned::from_pem(public.trim().as_bytes())
        .map_err(|e| format!("public key PEM does not parse: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_scheme_is_unusable_not_an_error() {
        let key = PublicKey::from_metadata("sphincs", "sphincs-shake", "00");
        assert_eq!(
            key.unusable_reason(),
            Some("unsupported key type \"sphincs\" with scheme \"sphincs-shake\"")
        );
        assert!(!key.verifies(b"m", b"s"));
    }

    #[test]
    fn ed25519_key_must_be_32_hex_bytes() {
        let key = PublicKey::from_metadata("ed25519", "ed25519", "abcd");
        assert_eq!(
            key.unusable_reason(),
            Some("ed25519 key has 2 bytes, not 32")
        );
    }
}
