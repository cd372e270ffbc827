//! Edgeward's key hierarchy on disk (the key ceremony).
//!
//! One root, everywhere: an offline root CA whose key is stored encrypted; an online signing
//! certificate (code-signing EKU, at most 90 days, rotated with overlap); a device CA that
//! issues device identities; and a root-signed CRL. The verification side of this policy is
//! `edgeward_core::cert_policy`; this crate only creates and maintains the files.

pub mod device_ca;
pub mod files;
pub mod hierarchy;
pub mod issue;
pub mod keyfile;
pub mod store;

pub use hierarchy::{CertSummary, Hierarchy, PkiError, RootKey};
