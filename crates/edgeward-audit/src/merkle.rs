//! The Merkle tree of RFC 6962/9162 over SHA-256. One implementation serves the whole
//! project: it lives in `edgeward_core::merkle` (which devices use, `no_std`, for Rekor
//! proofs) and the audit log uses it from here.

pub use edgeward_core::merkle::*;
