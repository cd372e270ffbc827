//! Signing TUF metadata (the repository side).
//!
//! Keys are Ed25519 or ECDSA P-256 (the algorithm of Edgeward's PKI keys), held by
//! aws-lc-rs, loaded from and saved as PKCS#8. The key id is the SHA-256 of the key's
//! canonical JSON, as the specification defines it, so other TUF clients agree on it.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use pkcs8::der::pem::LineEnding;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::canonical;
use super::hash::sha256;
use super::keys::Scheme;

/// Why a key could not be made, read or used.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The PKCS#8 document is not an Ed25519 or P-256 key.
    #[error("private key is neither an Ed25519 nor an ECDSA P-256 PKCS#8 key")]
    UnsupportedKey,
    /// The PEM wrapping is wrong.
    #[error("private key PEM: {0}")]
    Pem(String),
    /// The crypto library failed.
    #[error("signing failed: {0}")]
    Crypto(String),
}

enum Inner {
    Ed25519(Ed25519KeyPair),
    EcdsaP256(EcdsaKeyPair),
}

/// A private key that signs TUF metadata.
pub struct SigningKey {
    inner: Inner,
    scheme: Scheme,
    public: String,
    keyid: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("scheme", &self.scheme)
            .field("keyid", &self.keyid)
            .finish_non_exhaustive()
    }
}

fn crypto(e: impl std::fmt::Display) -> SignError {
    SignError::Crypto(e.to_string())
}

impl SigningKey {
    /// A fresh key for `scheme` (Ed25519 or ECDSA P-256); returns it and its PKCS#8 DER.
    pub fn generate(scheme: Scheme) -> Result<(Self, Zeroizing<Vec<u8>>), SignError> {
        let rng = SystemRandom::new();
        let der = match scheme {
            Scheme::Ed25519 => Ed25519KeyPair::generate_pkcs8(&rng).map_err(crypto)?,
            Scheme::EcdsaP256Sha256 => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
                    .map_err(crypto)?
            }
            _ => return Err(SignError::UnsupportedKey),
        };
        let der = Zeroizing::new(der.as_ref().to_vec());
        Ok((Self::from_pkcs8_der(&der)?, der))
    }

    /// Reads a PKCS#8 DER private key (Ed25519 or ECDSA P-256).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, SignError> {
        if let Ok(k) = Ed25519KeyPair::from_pkcs8(der)
            .or_else(|_| Ed25519KeyPair::from_pkcs8_maybe_unchecked(der))
        {
            let public = hex::encode(k.public_key().as_ref());
            return Ok(Self::finish(Inner::Ed25519(k), Scheme::Ed25519, public));
        }
        if let Ok(k) = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, der) {
            let spki = k.public_key().as_der().map_err(crypto)?;
            let public =
                pkcs8::der::pem::encode_string("PUBLIC KEY", LineEnding::LF, spki.as_ref())
                    .map_err(|e| SignError::Pem(e.to_string()))?;
            return Ok(Self::finish(
                Inner::EcdsaP256(k),
                Scheme::EcdsaP256Sha256,
                public,
            ));
        }
        Err(SignError::UnsupportedKey)
    }

    /// Reads a `PRIVATE KEY` PEM (PKCS#8).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, SignError> {
        let (label, der) = pkcs8::der::pem::decode_vec(pem.trim().as_bytes())
            .map_err(|e| SignError::Pem(e.to_string()))?;
        let der = Zeroizing::new(der);
        if label != "PRIVATE KEY" {
            return Err(SignError::Pem(format!(
                "label is {label:?}, expected \"PRIVATE KEY\""
            )));
        }
        Self::from_pkcs8_der(&der)
    }

    fn finish(inner: Inner, scheme: Scheme, public: String) -> Self {
        let mut key = SigningKey {
            inner,
            scheme,
            public,
            keyid: String::new(),
        };
        let canonical = canonical::encode(&key.public_json()).unwrap_or_default();
        key.keyid = hex::encode(sha256(&canonical));
        key
    }

    /// The key id (SHA-256 of the canonical public key object).
    pub fn keyid(&self) -> &str {
        &self.keyid
    }

    /// The scheme it signs with.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The public key object as metadata lists it.
    pub fn public_json(&self) -> Value {
        json!({
            "keytype": self.scheme.keytype(),
            "scheme": self.scheme.name(),
            "keyval": {"public": self.public},
        })
    }

    /// Signs `message` (the canonical bytes of a `signed` object).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match &self.inner {
            Inner::Ed25519(k) => Ok(k.sign(message).as_ref().to_vec()),
            Inner::EcdsaP256(k) => Ok(k
                .sign(&SystemRandom::new(), message)
                .map_err(crypto)?
                .as_ref()
                .to_vec()),
        }
    }
}

/// Signs `signed` with each of `keys` and returns the metadata file's bytes.
pub fn sign_metadata(signed: &Value, keys: &[&SigningKey]) -> Result<Vec<u8>, SignError> {
    let canonical = canonical::encode(signed).map_err(crypto)?;
    let signatures = keys
        .iter()
        .map(|k| {
            Ok(json!({
                "keyid": k.keyid(),
                "sig": hex::encode(k.sign(&canonical)?),
            }))
        })
        .collect::<Result<Vec<_>, SignError>>()?;
    let doc = json!({"signed": signed, "signatures": signatures});
    serde_json::to_vec_pretty(&doc).map_err(crypto)
}
