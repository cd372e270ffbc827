//! Size bounds for everything parsed from untrusted input.
//!
//! They are generous for real models (a 1 TB model sharded at 64 MiB has ~16,000 shards) and
//! small enough that a hostile file cannot make a verifier allocate without bound.

/// Largest signature bundle accepted, in bytes.
pub const MAX_BUNDLE_BYTES: usize = 64 * 1024 * 1024;
/// Most resources (files or shards) one statement may list.
pub const MAX_RESOURCES: usize = 1_000_000;
/// Longest resource name (a path, or `path:start:end`).
pub const MAX_NAME_BYTES: usize = 4096;
/// Most certificates in a bundle's chain.
pub const MAX_CHAIN_CERTS: usize = 8;
/// Largest single certificate, CRL entry aside.
pub const MAX_CERT_BYTES: usize = 16 * 1024;
/// Largest CRL.
pub const MAX_CRL_BYTES: usize = 16 * 1024 * 1024;
/// Largest PEM file (keys, certificates, and CRLs up to [`MAX_CRL_BYTES`] of DER).
pub const MAX_PEM_BYTES: usize = 24 * 1024 * 1024;
/// Most ignore paths a statement may list.
pub const MAX_IGNORE_PATHS: usize = 1024;
