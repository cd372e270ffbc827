//! The file names of the key hierarchy in its directory, named once for every program that
//! reads or writes them: this crate, boot's example chain, the CLI and its demo, and the
//! server's development PKI.

/// The root CA's private key, encrypted under the root passphrase (kept offline).
pub const ROOT_KEY: &str = "root.key";
/// The root CA certificate, the trust anchor verifiers are given.
pub const ROOT_CERT: &str = "root.pem";
/// The current signing key.
pub const SIGNING_KEY: &str = "signing.key";
/// The current signing certificate.
pub const SIGNING_CERT: &str = "signing.pem";
/// The signing certificate followed by the root, what certificate-mode bundles carry.
pub const SIGNING_CHAIN: &str = "signing-chain.pem";
/// The device CA's private key.
pub const DEVICE_CA_KEY: &str = "device-ca.key";
/// The device CA certificate.
pub const DEVICE_CA_CERT: &str = "device-ca.pem";
/// The root-signed certificate revocation list.
pub const CRL: &str = "crl.pem";
/// The directory of rotated-out signing keys and certificates.
pub const PREVIOUS: &str = "previous";
