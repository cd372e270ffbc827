//! Fixed keys, trust roots and helpers shared by the fuzz targets.
//!
//! The keys in `keys/` are public keys only; they were generated once with openssl (and the
//! root and signing key with `edgeward pki init`) and never change, so that a crash found
//! today reproduces tomorrow.

use std::sync::OnceLock;

use edgeward_core::{keys::PublicKey, pem};

/// The verifier's clock in every target: 2026-11-26T22:53:20Z, inside the validity of the
/// embedded root (2026-11-26 → 2046-11-21) and its first signing certificate
/// (2026-11-26 → 2027-02-24).
pub const NOW: u64 = 1_795_700_000;

/// PEM of the trust root made by `edgeward pki init`.
pub const ROOT_PEM: &[u8] = include_bytes!("../keys/root.pem");
/// PEM public key of the signing certificate issued by that root (P-256).
pub const SIGNING_PUB_PEM: &[u8] = include_bytes!("../keys/signing.pub.pem");
/// PEM public key, ECDSA P-256, made with `openssl genpkey`.
pub const P256_PUB_PEM: &[u8] = include_bytes!("../keys/p256.pub.pem");
/// PEM public key, Ed25519, made with `openssl genpkey`.
pub const ED25519_PUB_PEM: &[u8] = include_bytes!("../keys/ed25519.pub.pem");
/// PEM public key, RSA-2048, made with `openssl genpkey`.
pub const RSA2048_PUB_PEM: &[u8] = include_bytes!("../keys/rsa2048.pub.pem");

fn parse_key(pem: &[u8]) -> PublicKey {
    PublicKey::from_pem(pem).expect("embedded fuzz key parses")
}

/// The signing certificate's public key (bundle target: key mode and certificate mode).
pub fn signing_key() -> &'static PublicKey {
    static KEY: OnceLock<PublicKey> = OnceLock::new();
    KEY.get_or_init(|| parse_key(SIGNING_PUB_PEM))
}

/// The fixed P-256, Ed25519 and RSA-2048 keys (raw-signature target).
pub fn raw_keys() -> &'static [PublicKey; 3] {
    static KEYS: OnceLock<[PublicKey; 3]> = OnceLock::new();
    KEYS.get_or_init(|| {
        [
            parse_key(P256_PUB_PEM),
            parse_key(ED25519_PUB_PEM),
            parse_key(RSA2048_PUB_PEM),
        ]
    })
}

/// The trust root as DER, in a one-element slice.
pub fn roots() -> &'static [Vec<u8>] {
    static ROOTS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    ROOTS
        .get_or_init(|| pem::parse_labelled(ROOT_PEM, "CERTIFICATE").expect("embedded root parses"))
}

/// Splits `data` into frames, each a little-endian `u16` length followed by that many
/// bytes (a short last frame takes what is left). At most `max` frames are returned.
///
/// Seed files for the targets that take several DER objects use this framing.
pub fn frames(mut data: &[u8], max: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while data.len() >= 2 && out.len() < max {
        let len = usize::from(u16::from_le_bytes([data[0], data[1]]));
        data = &data[2..];
        let take = len.min(data.len());
        out.push(&data[..take]);
        data = &data[take..];
    }
    out
}
