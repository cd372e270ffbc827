//! Edgeward's tamper-evident audit log. The entries are the leaves of an RFC 6962/9162 Merkle
//! tree ([`merkle`]); the log signs its size and root as a C2SP checkpoint ([`checkpoint`]) in
//! a C2SP signed note ([`note`]); [`log`] verifies a log against its checkpoint and against
//! the last checkpoint a verifier kept, so editing, dropping, reordering or truncating
//! entries is caught. [`proof`] is the JSON of the proofs a log serves.

pub mod checkpoint;
pub mod log;
pub mod merkle;
pub mod note;
pub mod proof;
