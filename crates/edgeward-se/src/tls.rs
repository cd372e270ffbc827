//! Device mTLS with the private key inside the element: [`SeSigningKey`] implements
//! rustls's `SigningKey`, so a TLS client signs its `CertificateVerify` through
//! [`SecureElement::sign`] and the key never enters process memory.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # fn demo(chain: Vec<rustls_pki_types::CertificateDer<'static>>) -> Result<(), Box<dyn std::error::Error>> {
//! let element: Arc<dyn edgeward_se::SecureElement> = edgeward_se::open("soft:/var/lib/edgeward/se")?.into();
//! let key = edgeward_se::tls::SeSigningKey::new(element, "device")?;
//! let resolver = edgeward_se::tls::SeClientCertResolver::new(key.certified_key(chain));
//! // ClientConfig::builder().with_root_certificates(roots).with_client_cert_resolver(Arc::new(resolver))
//! # Ok(()) }
//! ```

use std::sync::Arc;

use edgeward_core::keys::PublicKey;
use rustls::{
    client::ResolvesClientCert,
    sign::{CertifiedKey, Signer, SigningKey},
    SignatureAlgorithm, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, SubjectPublicKeyInfoDer};

use crate::{SeError, SecureElement};

/// A rustls signing key whose private half lives in a secure element slot.
#[derive(Clone)]
pub struct SeSigningKey {
    element: Arc<dyn SecureElement>,
    slot: String,
    public: PublicKey,
    scheme: SignatureScheme,
}

impl std::fmt::Debug for SeSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeSigningKey")
            .field("backend", &self.element.backend())
            .field("slot", &self.slot)
            .field("key", &self.public.fingerprint())
            .finish()
    }
}

impl SeSigningKey {
    /// The key in `slot` of `element` (P-256 signs with `ecdsa_secp256r1_sha256`, Ed25519
    /// with `ed25519`).
    pub fn new(element: Arc<dyn SecureElement>, slot: &str) -> Result<Self, SeError> {
        let public = element.public_key(slot)?;
        let scheme = match public {
            PublicKey::P256(_) => SignatureScheme::ECDSA_NISTP256_SHA256,
            PublicKey::Ed25519(_) => SignatureScheme::ED25519,
            PublicKey::Rsa(_) | PublicKey::P384(_) | PublicKey::P521(_) => {
                return Err(SeError::Unsupported {
                    backend: element.backend(),
                    what: format!("{} TLS client keys", public.algorithm()),
                })
            }
        };
        Ok(SeSigningKey {
            element,
            slot: slot.to_owned(),
            public,
            scheme,
        })
    }

    /// The element's public key for this slot.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// Pairs the key with its certificate chain (leaf first) for rustls.
    pub fn certified_key(self, chain: Vec<CertificateDer<'static>>) -> CertifiedKey {
        CertifiedKey::new(chain, Arc::new(self))
    }
}

impl SigningKey for SeSigningKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered.contains(&self.scheme).then(|| {
            Box::new(SeSigner {
                element: Arc::clone(&self.element),
                slot: self.slot.clone(),
                scheme: self.scheme,
            }) as Box<dyn Signer>
        })
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(SubjectPublicKeyInfoDer::from(self.public.to_spki_der()))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        match self.scheme {
            SignatureScheme::ED25519 => SignatureAlgorithm::ED25519,
            _ => SignatureAlgorithm::ECDSA,
        }
    }
}

/// One signing operation in the element, as rustls asks for it.
struct SeSigner {
    element: Arc<dyn SecureElement>,
    slot: String,
    scheme: SignatureScheme,
}

impl std::fmt::Debug for SeSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeSigner")
            .field("slot", &self.slot)
            .field("scheme", &self.scheme)
            .finish()
    }
}

impl Signer for SeSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        self.element
            .sign(&self.slot, message)
            .map_err(|e| rustls::Error::General(format!("secure element signature: {e}")))
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}

/// Presents one element-backed certified key to every server that asks for a client
/// certificate whose signature scheme the key can produce.
#[derive(Debug)]
pub struct SeClientCertResolver {
    key: Arc<CertifiedKey>,
}

impl SeClientCertResolver {
    /// A resolver always offering `key`.
    pub fn new(key: CertifiedKey) -> Self {
        SeClientCertResolver { key: Arc::new(key) }
    }
}

impl ResolvesClientCert for SeClientCertResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.key
            .key
            .choose_scheme(sigschemes)
            .is_some()
            .then(|| Arc::clone(&self.key))
    }

    fn has_certs(&self) -> bool {
        true
    }
}
