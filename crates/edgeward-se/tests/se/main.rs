//! The secure-element backends' integration tests, one test binary: the conformance suite
//! (`conformance_suite!`) on the soft, PKCS#11 (SoftHSM2) and, with `--features tpm`, TPM 2.0
//! (swtpm) backends, plus each backend's own properties.

#[macro_use]
mod common;

mod pkcs11;
mod soft;
#[cfg(feature = "tpm")]
mod swtpm;
#[cfg(feature = "tpm")]
mod tpm;
