//! Public and private keys: parsing from PEM/DER, fingerprints, and the key-mode "hint".
//!
//! Signing keys are ECDSA P-256 and Ed25519. Verification also accepts ECDSA P-384 and P-521
//! (what model_signing, certtool and imgtool sign with, each curve with its own hash) and
//! RSA (2048–4096 bits, for signatures that already exist: `openssl dgst -sha256 -sign rsa.pem`).

use alloc::{
    format,
    string::{String, ToString},
    vec::Vec,
};

use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey, LineEnding};
use zeroize::Zeroizing;

use crate::{digest::HashAlg, pem, sha256, Error};

/// OID of an EC public key (`id-ecPublicKey`).
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
/// Named-curve OIDs of the curves accepted.
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_P521: &str = "1.3.132.0.35";

/// Smallest RSA modulus accepted, in bits.
pub const RSA_MIN_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits.
pub const RSA_MAX_BITS: usize = 4096;
/// Most PBKDF2 iterations accepted in an encrypted private key (Edgeward writes 600,000,
/// OpenSSL 2,048); bounds the CPU time a hostile key file can demand.
pub const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
/// Most memory scrypt may need to decrypt a private key, `128 * r * N` bytes (OpenSSL's
/// own limit is 32 MiB); bounds what a hostile key file can make us allocate.
pub const MAX_SCRYPT_MEMORY: u64 = 256 * 1024 * 1024;
/// Most scrypt work for one key, `128 * r * N * p` bytes mixed.
pub const MAX_SCRYPT_WORK: u64 = 1024 * 1024 * 1024;

/// The algorithm of a key Edgeward generates: for the key hierarchy (`edgeward-pki`), inside a
/// secure element (`edgeward-se`) and on the command line (`--key-type`, with the `clap`
/// feature). Other algorithms are accepted for verification only (see [`PublicKey`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum KeyAlgorithm {
    /// ECDSA P-256 with SHA-256 (every secure-element backend; verifies with openssl and
    /// model_signing).
    P256,
    /// Ed25519 (where the secure element has it; Edgeward and openssl verify it,
    /// model_signing 1.1 only verifies EC keys).
    Ed25519,
}

/// A public key that can verify Edgeward signatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// ECDSA over NIST P-256 with SHA-256.
    P256(p256::ecdsa::VerifyingKey),
    /// ECDSA over NIST P-384 with SHA-384 (verification only).
    P384(p384::ecdsa::VerifyingKey),
    /// ECDSA over NIST P-521 with SHA-512 (verification only).
    P521(ecdsa::VerifyingKey<p521::NistP521>),
    /// Ed25519 (PureEdDSA over the whole message).
    Ed25519(ed25519_dalek::VerifyingKey),
    /// RSA, PKCS#1 v1.5 or PSS with SHA-256 (verification only).
    Rsa(rsa::RsaPublicKey),
}

impl PublicKey {
    /// Parses a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, Error> {
        use x509_cert::der::Decode;
        let spki = x509_cert::spki::SubjectPublicKeyInfoRef::from_der(der)
            .map_err(|e| Error::malformed("public key DER", e))?;
        let oid = spki.algorithm.oid;
        match oid.to_string().as_str() {
            OID_EC_PUBLIC_KEY => {
                let curve = spki
                    .algorithm
                    .parameters
                    .and_then(|p| p.decode_as::<x509_cert::der::asn1::ObjectIdentifier>().ok())
                    .ok_or_else(|| {
                        Error::malformed("EC public key", "no named-curve OID in its parameters")
                    })?;
                let bad = |e: pkcs8::spki::Error| Error::malformed("EC public key", e);
                match curve.to_string().as_str() {
                    OID_P256 => p256::ecdsa::VerifyingKey::from_public_key_der(der)
                        .map(PublicKey::P256)
                        .map_err(bad),
                    OID_P384 => p384::ecdsa::VerifyingKey::from_public_key_der(der)
                        .map(PublicKey::P384)
                        .map_err(bad),
                    OID_P521 => ecdsa::VerifyingKey::<p521::NistP521>::from_public_key_der(der)
                        .map(PublicKey::P521)
                        .map_err(bad),
                    other => Err(Error::unsupported(
                        "EC curve",
                        format!("OID {other} (accepted: P-256, P-384, P-521)"),
                    )),
                }
            }
            "1.3.101.112" => ed25519_dalek::VerifyingKey::from_public_key_der(der)
                .map(PublicKey::Ed25519)
                .map_err(|e| Error::malformed("Ed25519 public key", e)),
            "1.2.840.113549.1.1.1" => {
                let key = rsa::RsaPublicKey::from_public_key_der(der)
                    .map_err(|e| Error::malformed("RSA public key", e))?;
                let bits = rsa::traits::PublicKeyParts::n(&key).bits();
                if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
                    return Err(Error::unsupported(
                        "RSA key size",
                        format!("{bits} bits (accepted: {RSA_MIN_BITS}–{RSA_MAX_BITS})"),
                    ));
                }
                Ok(PublicKey::Rsa(key))
            }
            other => Err(Error::unsupported(
                "public key algorithm",
                format!("OID {other}"),
            )),
        }
    }

    /// Parses a PEM file holding a `PUBLIC KEY` block, or a `CERTIFICATE` whose key is taken.
    pub fn from_pem(input: &[u8]) -> Result<Self, Error> {
        let blocks = pem::parse_all(input)?;
        let first = blocks
            .iter()
            .find(|b| b.label == "PUBLIC KEY" || b.label == "CERTIFICATE")
            .ok_or_else(|| {
                Error::malformed("public key PEM", "no PUBLIC KEY or CERTIFICATE block")
            })?;
        if first.label == "CERTIFICATE" {
            Self::from_certificate_der(&first.der)
        } else {
            Self::from_spki_der(&first.der)
        }
    }

    /// Takes the subject public key of a DER X.509 certificate.
    pub fn from_certificate_der(der: &[u8]) -> Result<Self, Error> {
        use x509_cert::der::{Decode, Encode};
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|e| Error::malformed("certificate DER", e))?;
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| Error::malformed("certificate public key", e))?;
        Self::from_spki_der(&spki)
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn to_spki_der(&self) -> Vec<u8> {
        let doc = match self {
            PublicKey::P256(k) => k.to_public_key_der(),
            PublicKey::P384(k) => k.to_public_key_der(),
            PublicKey::P521(k) => k.to_public_key_der(),
            PublicKey::Ed25519(k) => k.to_public_key_der(),
            PublicKey::Rsa(k) => k.to_public_key_der(),
        };
        // Encoding a key we hold in memory cannot fail; an empty vector would fail every
        // later comparison, which is the safe direction.
        doc.map(|d| d.as_bytes().to_vec()).unwrap_or_default()
    }

    /// The SubjectPublicKeyInfo as PEM with LF line endings, byte for byte what OpenSSL and
    /// Python `cryptography` write.
    pub fn to_pem(&self) -> String {
        let pem = match self {
            PublicKey::P256(k) => k.to_public_key_pem(LineEnding::LF),
            PublicKey::P384(k) => k.to_public_key_pem(LineEnding::LF),
            PublicKey::P521(k) => k.to_public_key_pem(LineEnding::LF),
            PublicKey::Ed25519(k) => k.to_public_key_pem(LineEnding::LF),
            PublicKey::Rsa(k) => k.to_public_key_pem(LineEnding::LF),
        };
        pem.unwrap_or_default()
    }

    /// The key-mode hint of OpenSSF model-signing: hex SHA-256 of the PEM public key.
    pub fn hint(&self) -> String {
        hex::encode(sha256(self.to_pem().as_bytes()))
    }

    /// The key id every Edgeward message and `--json` output shows: the first 16 hex digits
    /// of [`hint`](Self::hint), so that it can be found in a model-signing bundle's hint and in
    /// an encrypted model's recipient list.
    pub fn fingerprint(&self) -> String {
        let mut hint = self.hint();
        hint.truncate(16);
        hint
    }

    /// The algorithm's name as shown to operators.
    pub fn algorithm(&self) -> &'static str {
        match self {
            PublicKey::P256(_) => "ecdsa-p256-sha256",
            PublicKey::P384(_) => "ecdsa-p384-sha384",
            PublicKey::P521(_) => "ecdsa-p521-sha512",
            PublicKey::Ed25519(_) => "ed25519",
            PublicKey::Rsa(_) => "rsa-sha256",
        }
    }

    /// The hash this key's signatures are made over: SHA-256 for P-256 and RSA, SHA-384 for
    /// P-384, SHA-512 for P-521 (and inside Ed25519, which takes the whole message).
    pub fn hash_alg(&self) -> HashAlg {
        match self {
            PublicKey::P256(_) | PublicKey::Rsa(_) => HashAlg::Sha256,
            PublicKey::P384(_) => HashAlg::Sha384,
            PublicKey::P521(_) | PublicKey::Ed25519(_) => HashAlg::Sha512,
        }
    }
}

/// Refuses key-derivation parameters that would make decrypting a key take unbounded time
/// or memory (the file's parameters are untrusted: PBKDF2 iterations up to 2^32, or scrypt
/// asking for terabytes, which aborts the process on allocation failure).
pub fn check_kdf_cost(scheme: &pkcs8::pkcs5::EncryptionScheme<'_>) -> Result<(), Error> {
    use pkcs8::pkcs5::{pbes2::Kdf, EncryptionScheme};
    let EncryptionScheme::Pbes2(params) = scheme else {
        return Ok(()); // PBES1 is refused by the decryption itself
    };
    match &params.kdf {
        Kdf::Pbkdf2(p) if p.iteration_count > MAX_PBKDF2_ITERATIONS => Err(Error::unsupported(
            "encrypted private key",
            format!(
                "{} PBKDF2 iterations (at most {MAX_PBKDF2_ITERATIONS} are accepted)",
                p.iteration_count
            ),
        )),
        Kdf::Scrypt(p) => {
            let memory = 128 * u128::from(p.block_size) * u128::from(p.cost_parameter);
            let work = memory * u128::from(p.parallelization);
            if memory > u128::from(MAX_SCRYPT_MEMORY) || work > u128::from(MAX_SCRYPT_WORK) {
                return Err(Error::unsupported(
                    "encrypted private key",
                    format!(
                        "scrypt N={} r={} p={} needs more than {} MiB of memory or {} MiB of work",
                        p.cost_parameter,
                        p.block_size,
                        p.parallelization,
                        MAX_SCRYPT_MEMORY >> 20,
                        MAX_SCRYPT_WORK >> 20
                    ),
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A private key Edgeward signs with. The key material is zeroized on drop by the
/// underlying types; `Debug` never prints it.
#[derive(Clone)]
pub enum SigningKey {
    /// ECDSA P-256.
    P256(p256::ecdsa::SigningKey),
    /// Ed25519.
    Ed25519(ed25519_dalek::SigningKey),
}

impl core::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "SigningKey({}, {})",
            self.public_key().algorithm(),
            self.public_key().fingerprint()
        )
    }
}

impl SigningKey {
    /// Parses a PEM private key: `PRIVATE KEY` (PKCS#8), `EC PRIVATE KEY` (SEC1, what
    /// `openssl ecparam -genkey` writes) or `ENCRYPTED PRIVATE KEY` (PKCS#8 PBES2, which
    /// needs `passphrase`).
    pub fn from_pem(input: &[u8], passphrase: Option<&[u8]>) -> Result<Self, Error> {
        let blocks = pem::parse_all(input)?;
        for block in blocks {
            let der = Zeroizing::new(block.der);
            match block.label.as_str() {
                "PRIVATE KEY" => return Self::from_pkcs8_der(&der),
                "EC PRIVATE KEY" => {
                    let secret = p256::SecretKey::from_sec1_der(&der).map_err(|e| {
                        Error::unsupported(
                            "EC private key",
                            format!("only P-256 is accepted ({e})"),
                        )
                    })?;
                    return Ok(SigningKey::P256(secret.into()));
                }
                "ENCRYPTED PRIVATE KEY" => {
                    let pass = passphrase.ok_or_else(|| {
                        Error::InvalidArgument(String::from(
                            "the private key is encrypted and no passphrase was given",
                        ))
                    })?;
                    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice())
                        .map_err(|e| Error::malformed("encrypted private key", e))?;
                    check_kdf_cost(&info.encryption_algorithm)?;
                    let plain = info.decrypt(pass).map_err(|_| {
                        Error::InvalidArgument(String::from(
                            "wrong passphrase for the encrypted private key",
                        ))
                    })?;
                    return Self::from_pkcs8_der(plain.as_bytes());
                }
                _ => continue,
            }
        }
        Err(Error::malformed("private key PEM", "no PRIVATE KEY block"))
    }

    /// Parses an unencrypted PKCS#8 DER private key (P-256 or Ed25519).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, Error> {
        if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_der(der) {
            return Ok(SigningKey::P256(k));
        }
        if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_der(der) {
            return Ok(SigningKey::Ed25519(k));
        }
        Err(Error::unsupported(
            "private key",
            "not a P-256 or Ed25519 PKCS#8 key (Edgeward signs with these two)",
        ))
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        match self {
            SigningKey::P256(k) => PublicKey::P256(*k.verifying_key()),
            SigningKey::Ed25519(k) => PublicKey::Ed25519(k.verifying_key()),
        }
    }

    /// Signs `message`: ECDSA P-256 with SHA-256 (DER signature), or Ed25519 (64 bytes).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            SigningKey::P256(k) => {
                use p256::ecdsa::signature::Signer;
                let sig: p256::ecdsa::Signature = k.sign(message);
                sig.to_der().as_bytes().to_vec()
            }
            SigningKey::Ed25519(k) => {
                use ed25519_dalek::Signer;
                k.sign(message).to_bytes().to_vec()
            }
        }
    }

    /// Signs a SHA-256 digest computed elsewhere (ECDSA only: Ed25519 signs whole messages).
    pub fn sign_sha256_digest(&self, digest: &crate::Sha256Digest) -> Result<Vec<u8>, Error> {
        match self {
            SigningKey::P256(k) => {
                use p256::ecdsa::signature::hazmat::PrehashSigner;
                let sig: p256::ecdsa::Signature = k
                    .sign_prehash(digest)
                    .map_err(|e| Error::InvalidArgument(format!("ECDSA signing failed: {e}")))?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
            SigningKey::Ed25519(_) => Err(Error::InvalidArgument(String::from(
                "Ed25519 signs the whole message, not a digest",
            ))),
        }
    }
}
