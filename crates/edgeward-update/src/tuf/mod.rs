//! TUF 1.0: metadata, verification and the client workflow.
//!
//! Our own implementation of The Update Framework specification, checked against the
//! public conformance suite (docs/updates.md says how to run it).

pub mod canonical;
pub mod envelope;
pub mod error;
pub mod hash;
pub mod keys;
pub mod metadata;
pub mod signer;
pub mod store;
pub mod transport;
pub mod trusted;
pub mod updater;

pub use error::TufError;
pub use updater::{ClientConfig, FoundTarget, Updater};
