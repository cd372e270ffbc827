//! Isolated inference: the decrypted weights of the device's model live only in a separate
//! worker process (`edgeward-inference-worker`) that the agent starts, never in the agent.
//!
//! The agent verifies the model's signature, and only then asks the secure element to unwrap
//! the model's file key ([`edgeward_model::secure_load::release_key`]). It hands the key, the
//! verified statement, the encrypted file and the listening socket to the worker over a
//! private socket pair ([`handoff`]); the worker locks its memory, makes itself
//! non-dumpable, drops every file system and network right ([`sandbox`]), decrypts and checks
//! the weights against the statement, installs its system call filter, and serves the
//! application over the inference socket ([`worker`], protocol in
//! [`edgeward_proto::inference`]). The agent keeps the worker running and tells it when the
//! device is quarantined ([`supervisor`]); the application reports its measurements on the
//! metrics socket, which the agent sends with its telemetry ([`metrics`]).

pub mod handoff;
pub mod metrics;
pub mod mlp;
pub mod sandbox;
pub mod supervisor;
pub mod worker;

use std::path::PathBuf;

use serde::Deserialize;

/// The `[inference]` section of `agent.toml`: which model the worker serves, where, and as whom.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferenceConfig {
    /// The encrypted model container (`edgeward model encrypt`).
    pub model: PathBuf,
    /// The signature bundle of the plaintext model (`edgeward sign`).
    pub signature: PathBuf,
    /// The model-signing trust roots (PEM certificates).
    pub trust_roots: PathBuf,
    /// CRLs of those roots (PEM), if any.
    #[serde(default)]
    pub crls: Option<PathBuf>,
    /// The element slot whose key the model is encrypted to (default: the device key).
    #[serde(default)]
    pub key_slot: Option<String>,
    /// The socket the application sends inference requests to.
    #[serde(default = "defaults::socket")]
    pub socket: PathBuf,
    /// The system user the worker runs as (created when missing and the agent is root).
    #[serde(default = "defaults::user")]
    pub user: String,
    /// The worker executable (default: `edgeward-inference-worker` beside the agent's).
    #[serde(default)]
    pub worker: Option<PathBuf>,
    /// The locked-memory limit given to the worker, in MiB (its whole address space is locked).
    #[serde(default = "defaults::memlock_mib")]
    pub memlock_mib: u64,
}

mod defaults {
    use std::path::PathBuf;

    pub(super) fn socket() -> PathBuf {
        PathBuf::from("/run/edgeward-infer/inference.sock")
    }
    pub(super) fn user() -> String {
        "edgeward-infer".into()
    }
    pub(super) fn memlock_mib() -> u64 {
        1024
    }
}

impl InferenceConfig {
    /// Checks the values a parser cannot.
    pub fn check(&self) -> Result<(), String> {
        if !(16..=1 << 20).contains(&self.memlock_mib) {
            return Err("inference.memlock_mib is 16 to 1048576".into());
        }
        if self.user.is_empty()
            || self.user.len() > 32
            || !self
                .user
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(format!("inference.user {:?} is not a user name", self.user));
        }
        Ok(())
    }

    /// The worker executable.
    pub fn worker_exe(&self) -> PathBuf {
        self.worker.clone().unwrap_or_else(|| {
            std::env::current_exe()
                .map(|p| p.with_file_name(WORKER_BIN))
                .unwrap_or_else(|_| PathBuf::from("/usr/bin").join(WORKER_BIN))
        })
    }
}

/// The worker's executable name.
pub const WORKER_BIN: &str = "edgeward-inference-worker";
