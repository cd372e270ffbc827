//! edgeward-pki's own tests, on real files: the key ceremony's refusals, signing-key rotation
//! and pruning, the CRL's numbering, revocation, and the files' modes. openssl checks the
//! CRLs and chains the crate writes, as a verifier elsewhere would.

mod common;
mod crl;
mod revoke;
mod rotate;
mod store;
