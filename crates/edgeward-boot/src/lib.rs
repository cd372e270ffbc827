//! Secure boot for an Edgeward device: every stage verified under the root before anything
//! after it is touched, measured into a register with a replayable event log, guarded by
//! anti-rollback counters in the secure element.
//!
//! - [`chain`]: the chain description (`chain.toml`), parsed with bounds.
//! - [`policy`]: the chain description's signature and the element-held floors (policy
//!   counter, CRL number) that keep the boot policy from being edited or rolled back.
//! - [`mcuboot`]: MCUboot images as `imgtool sign` writes them.
//! - [`stage`]: verifying one stage (a signature bundle or an MCUboot image).
//! - [`measure`]: the measurement register and its event log.
//! - [`boot`]: running the chain in order; the first failure gives a [`recovery`] record.
//! - [`attest`]: attestation evidence signed inside the element, and its verifier.
//! - [`ab`]: A/B install, trial boot and confirm, with the counter raised last.
//! - [`signing`]: signing a stage image and the boot policy.
//! - `provision` and `example` (feature `provision`): putting the root anchor and a device
//!   certificate into an element at the factory, and a signed example chain. They issue
//!   certificates, so a device build leaves them (and the certificate tooling) out.

pub mod ab;
pub mod attest;
pub mod boot;
pub mod chain;
pub mod error;
#[cfg(feature = "provision")]
pub mod example;
pub mod mcuboot;
pub mod measure;
pub mod policy;
#[cfg(feature = "provision")]
pub mod provision;
pub mod recovery;
pub mod signing;
pub mod stage;
pub mod state;

pub use error::{BootError, FailureKind, StageFailure};
