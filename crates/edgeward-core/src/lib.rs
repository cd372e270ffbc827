//! Edgeward's formats and verification policy.
//!
//! This crate is the part of Edgeward that a bootloader, a device agent and the cloud all
//! share, so it is pure logic: no I/O, no clock (its functions take the time as an argument;
//! [`civil::unix_now`] reads the system clock for callers, with `std`), no printing, and it
//! builds as `no_std` + `alloc` (disable the default `std` feature). Every parser here takes
//! untrusted bytes and returns a typed [`Error`] instead of panicking.
//!
//! - [`keys`]: public and private keys (ECDSA P-256, Ed25519; ECDSA P-384/P-521 and RSA for
//!   verification), PEM/DER; [`digest`]: the hashes signatures are made over.
//! - [`raw_signature`]: detached raw signatures as `openssl dgst -sha256 -sign` and Python
//!   `cryptography` make them.
//! - [`dsse`], [`statement`], [`manifest`], [`bundle`]: the OpenSSF model-signing format
//!   (Sigstore bundle v0.3 carrying a DSSE envelope with an in-toto statement).
//! - [`cert_policy`]: Edgeward's X.509 trust policy for signing certificates;
//!   [`cert_policy_upstream`]: the upstream model_signing verifier's rules, for another
//!   organisation's PKI.
//! - [`size_limits`]: the size bounds on everything parsed from untrusted bytes.
//! - [`sigstore`]: keyless Sigstore bundles (Fulcio certificate, Rekor log entry) offline.
//! - [`merkle`]: RFC 6962/9162 Merkle trees, proofs and their verification (Rekor and the
//!   audit log).
//! - [`verify`] and [`sign`]: the whole bundle check and bundle creation.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod bundle;
pub mod cert_policy;
pub mod cert_policy_upstream;
pub mod civil;
pub mod digest;
pub mod dsse;
pub mod error;
pub mod keys;
pub mod manifest;
pub mod merkle;
pub mod pem;
pub mod raw_signature;
pub mod sign;
pub mod signed_note;
pub mod sigstore;
pub mod size_limits;
pub mod statement;
pub mod verify;
pub mod x509sig;

pub use error::Error;

/// A SHA-256 digest.
pub type Sha256Digest = [u8; 32];

/// SHA-256 of `data` (uses SHA-NI where the CPU has it).
pub fn sha256(data: &[u8]) -> Sha256Digest {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}
