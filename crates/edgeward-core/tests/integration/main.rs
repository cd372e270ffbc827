//! edgeward-core's integration tests, one test binary: the ECDSA property test and the
//! golden bundles of every released model_signing version.

mod ecdsa_property;
mod model_signing_golden;
