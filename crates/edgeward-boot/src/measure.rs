//! Measured boot: each verified stage's digest is extended into a register,
//! `M = SHA-256(M ‖ digest)` starting from 32 zero bytes (a TPM PCR's rule), and recorded in
//! an event log. Replaying the log must give the register: a verifier learns what ran.

use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::BootError;

/// Most events a log may hold (one per stage).
pub const MAX_EVENTS: usize = crate::chain::MAX_STAGES;

/// A measurement register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Register(pub [u8; 32]);

impl Register {
    /// Extends the register with `digest`: `M = SHA-256(M ‖ digest)`.
    pub fn extend(&mut self, digest: &[u8; 32]) {
        let mut h = sha2::Sha256::new();
        h.update(self.0);
        h.update(digest);
        self.0 = h.finalize().into();
    }

    /// The register a log replays to.
    pub fn replay(events: &[Event]) -> Register {
        let mut r = Register::default();
        for e in events {
            r.extend(&e.digest);
        }
        r
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// One measured stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// The stage's position in the chain.
    pub index: usize,
    /// The stage's name.
    pub stage: String,
    /// `bundle` or `mcuboot`.
    pub format: String,
    /// What was extended: the bundle's signed root digest (over the image's file or shard
    /// digests) or the MCUboot image hash (header, image and protected TLVs).
    #[serde(with = "hex_digest")]
    pub digest: [u8; 32],
    /// The signed security counter.
    pub security_counter: u64,
    /// The signed hardware class.
    pub hardware: Option<String>,
    /// Fingerprint of the key that signed the stage.
    pub signer: String,
}

/// What a successful boot leaves behind: the register and the log that replays to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootLog {
    /// Format version (1).
    pub version: u32,
    /// The hardware class booted.
    pub hardware: String,
    /// The register after the last stage.
    #[serde(with = "hex_digest")]
    pub register: [u8; 32],
    /// The events, in boot order.
    pub events: Vec<Event>,
    /// When the boot happened (Unix seconds, the device's judged time).
    pub booted_at: u64,
    /// The signed policy (chain description) the boot ran under; confirm raises the
    /// element's policy floors to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<crate::policy::PolicyRecord>,
}

impl BootLog {
    /// Parses a boot log (bounded) and checks that it replays to its register.
    pub fn parse(bytes: &[u8]) -> Result<BootLog, BootError> {
        if bytes.len() > 256 * 1024 {
            return Err(BootError::Malformed {
                what: "boot log",
                detail: "larger than 256 KiB".into(),
            });
        }
        let log: BootLog = serde_json::from_slice(bytes).map_err(|e| BootError::Malformed {
            what: "boot log",
            detail: e.to_string(),
        })?;
        if log.events.len() > MAX_EVENTS {
            return Err(BootError::Malformed {
                what: "boot log",
                detail: format!("{} events (at most {MAX_EVENTS})", log.events.len()),
            });
        }
        if Register::replay(&log.events).0 != log.register {
            return Err(BootError::Malformed {
                what: "boot log",
                detail: "its events do not replay to its register".into(),
            });
        }
        Ok(log)
    }
}

/// Serde for a 32-byte digest as 64 hex digits.
pub mod hex_digest {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes hex.
    pub fn serialize<S: Serializer>(d: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(d))
    }

    /// Reads exactly 64 hex digits.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = <&str>::deserialize(d)?;
        edgeward_core::statement::parse_digest("digest", s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extend_is_sha256_of_register_and_digest() {
        let mut r = Register::default();
        r.extend(&[1u8; 32]);
        let mut cat = [0u8; 64];
        cat[32..].copy_from_slice(&[1u8; 32]);
        assert_eq!(r.0, edgeward_core::sha256(&cat));
    }
}
