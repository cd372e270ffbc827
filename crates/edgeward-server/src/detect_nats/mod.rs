//! Detection scaled out on NATS JetStream. Server replicas publish every accepted telemetry
//! batch to one stream, on the subject `<prefix>.<partition>.<device>` where the partition
//! is a stable hash of the device id ([`publish`]); detection workers
//! (`edgeward-server detect-worker`, [`worker`]) share the partitions through leases in
//! PostgreSQL, consume each partition they hold with a durable consumer, score its batches
//! with the in-process detector's own code (baselines, cohorts, rules, geography, cloned
//! certificates), raise alerts through the server's sinks and playbook, and checkpoint the
//! detector state together with the last stream sequence scored in one transaction. A
//! worker that dies stops renewing its leases; another takes its partitions over, restores
//! their state from the checkpoint and resumes from the message after it. Messages at or
//! below the checkpoint's sequence are acknowledged without scoring, so every point is
//! scored exactly once.

pub mod publish;
pub mod worker;

use serde::Deserialize;

/// The `[nats]` table: where replicas publish telemetry for the detection workers.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// The NATS server, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// The JetStream stream (created if missing).
    #[serde(default = "default_stream")]
    pub stream: String,
    /// The subjects' first token.
    #[serde(default = "default_prefix")]
    pub subject_prefix: String,
    /// Partitions devices are hashed into (the workers' unit of work).
    #[serde(default = "default_partitions")]
    pub partitions: u32,
}

fn default_stream() -> String {
    "EDGEWARD_TELEMETRY".into()
}

fn default_prefix() -> String {
    "telemetry".into()
}

fn default_partitions() -> u32 {
    16
}

/// Most partitions a stream may have.
pub const MAX_PARTITIONS: u32 = 1024;

impl NatsConfig {
    /// Checks the names and the partition count.
    pub fn check(&self) -> Result<(), String> {
        let token = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !token(&self.stream) {
            return Err(format!(
                "nats.stream {:?}: 1-64 letters, digits, '_' or '-'",
                self.stream
            ));
        }
        if !token(&self.subject_prefix) {
            return Err(format!(
                "nats.subject_prefix {:?}: 1-64 letters, digits, '_' or '-'",
                self.subject_prefix
            ));
        }
        if self.partitions == 0 || self.partitions > MAX_PARTITIONS {
            return Err(format!(
                "nats.partitions must be 1 to {MAX_PARTITIONS}, not {}",
                self.partitions
            ));
        }
        Ok(())
    }

    /// The subject a device's telemetry is published on.
    pub fn subject(&self, device: &str) -> String {
        format!(
            "{}.{}.{device}",
            self.subject_prefix,
            partition_of(device, self.partitions)
        )
    }

    /// The subjects of one partition.
    pub fn partition_filter(&self, partition: u32) -> String {
        format!("{}.{partition}.>", self.subject_prefix)
    }
}

/// The partition of `device` among `partitions`: the first 8 bytes of SHA-256 of its id,
/// modulo the count (the same on every replica and worker, release after release).
pub fn partition_of(device: &str, partitions: u32) -> u32 {
    let h = edgeward_core::sha256(device.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&h[..8]);
    (u64::from_be_bytes(first) % u64::from(partitions.max(1))) as u32
}

/// Creates the stream if it is missing (file storage, the subjects `<prefix>.>`, a two-minute
/// window in which a republished batch is recognised by its message id).
pub async fn ensure_stream(
    js: &async_nats::jetstream::Context,
    config: &NatsConfig,
) -> Result<async_nats::jetstream::stream::Stream, String> {
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: config.stream.clone(),
        subjects: vec![format!("{}.>", config.subject_prefix)],
        storage: async_nats::jetstream::stream::StorageType::File,
        duplicate_window: std::time::Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .map_err(|e| format!("JetStream stream {}: {e}", config.stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_stable_and_spread() {
        assert_eq!(partition_of("cam-1", 16), partition_of("cam-1", 16));
        let mut seen = [0u32; 8];
        for i in 0..800 {
            seen[partition_of(&format!("dev-{i}"), 8) as usize] += 1;
        }
        assert!(seen.iter().all(|n| (60..140).contains(n)), "{seen:?}");
    }
}
