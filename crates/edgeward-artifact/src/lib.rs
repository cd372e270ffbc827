//! Signing and verifying artifacts on disk — a firmware image, a model file or a whole model
//! directory — in the OpenSSF model-signing format or as raw detached signatures.
//!
//! The formats and the trust decisions live in `edgeward-core`; this crate walks the
//! filesystem with model-signing's rules ([`walk`]), hashes files and shards on every core
//! ([`hashing`]), and ties both to signature bundles ([`bundle_signing`]) and raw detached
//! signatures ([`raw_signing`]). Firmware, boot stages, updates and models all sign and
//! verify through it; it links no encryption or watermark code.

pub mod bundle_signing;
pub mod error;
pub mod hashing;
pub mod raw_signing;
pub mod walk;

pub use error::ArtifactError;

/// Receives progress of long hashing work (the CLI draws a bar; libraries never print).
pub trait Progress: Sync {
    /// Hashing of `total_bytes` starts.
    fn start(&self, total_bytes: u64);
    /// `bytes` more were hashed (called from several threads).
    fn advance(&self, bytes: u64);
    /// Hashing ended.
    fn finish(&self);
}

/// A [`Progress`] that reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
}
