//! The boot chain's integration tests, one test binary made of modules: the signed policy,
//! stage verification, MCUboot images, attestation, power cuts at every step and (with
//! `--features tpm`) measured boot on swtpm.

mod common;

mod attest;
mod chain;
mod mcuboot;
mod policy;
mod power_cut;
#[cfg(feature = "tpm")]
#[path = "../../../edgeward-se/tests/se/swtpm.rs"]
mod swtpm;
#[cfg(feature = "tpm")]
mod tpm;
