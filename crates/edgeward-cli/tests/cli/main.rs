//! The `edgeward` binary's integration tests, one test binary (one link on a two-core
//! machine instead of ten): each module runs the real binary against real peers (openssl,
//! Python `cryptography` and `model_signing`, SoftHSM2, swtpm, a server on loopback).

mod common;

mod audit;
mod boot;
mod cli;
mod detect;
mod fleet;
mod hints;
mod incidents;
mod interop_openssl;
mod interop_python;
mod model_crypt;
mod model_wm;
mod peer_formats;
mod pki_init;
mod release;
mod se;
#[cfg(feature = "tpm")]
mod se_tpm;
mod snapshots;
#[cfg(feature = "tpm")]
#[path = "../../../edgeward-se/tests/se/swtpm.rs"]
mod swtpm;
mod tour;
