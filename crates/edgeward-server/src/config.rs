//! Server configuration: built-in defaults (the embedded default: SQLite in `./edgeward-data`,
//! a development PKI created there, in-process limits), overridden by a TOML file, then by
//! `EDGEWARD_*` environment variables, then by command-line flags.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf};

use serde::Deserialize;

/// A rate limit for one hardware class (or for source addresses).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// Sustained requests per second.
    pub per_second: u32,
    /// Requests allowed at once.
    pub burst: u32,
}

impl LimitConfig {
    /// As a GCRA quota.
    pub fn quota(&self) -> edgeward_proto::gcra::Quota {
        edgeward_proto::gcra::Quota::per_second(self.per_second, self.burst)
    }
}

/// What a device may download from the update repository (the `update_limit` table):
/// target requests are counted by the KiB they serve, not by the request, so a delta's
/// many range requests do not run into the per-device request limit and no device can
/// pull unbounded data. Every request costs at least `request_kib`, so tiny ranges are
/// counted too.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct UpdateLimitConfig {
    /// Sustained KiB per second per device (1 to 1 000 000).
    pub kib_per_second: u32,
    /// KiB a device may fetch at once; one request asking for more is refused (413), so
    /// this must exceed the largest target fetched whole.
    pub burst_kib: u32,
    /// The least a target request costs, in KiB.
    pub request_kib: u32,
}

impl Default for UpdateLimitConfig {
    fn default() -> Self {
        UpdateLimitConfig {
            kib_per_second: 4096,
            burst_kib: 1024 * 1024,
            request_kib: 16,
        }
    }
}

impl UpdateLimitConfig {
    /// As a GCRA quota whose unit is one KiB. The rate is capped at 1 000 000 KiB/s so that
    /// one KiB's interval is at least the microsecond Redis's arithmetic counts in.
    pub fn quota(&self) -> edgeward_proto::gcra::Quota {
        edgeward_proto::gcra::Quota::per_second(
            self.kib_per_second.clamp(1, 1_000_000),
            self.burst_kib,
        )
    }

    /// What serving `bytes` costs, in KiB (rounded up, at least `request_kib`).
    pub fn cost(&self, bytes: u64) -> u64 {
        bytes.div_ceil(1024).max(u64::from(self.request_kib.max(1)))
    }
}

/// Timeouts and caps on every connection of each listener (the `[connections]` table).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionLimits {
    /// Seconds a client has to complete the TLS handshake.
    pub handshake_timeout_secs: u64,
    /// Seconds a client has to send a request's headers (HTTP/1.1).
    pub header_timeout_secs: u64,
    /// Seconds a client has to send a request's whole body, from its headers on.
    pub body_timeout_secs: u64,
    /// Seconds a connection may stay open with no request in progress.
    pub idle_timeout_secs: u64,
    /// Most connections open at once on one listener (lowered at start to what the process's
    /// file descriptor limit allows).
    pub max_connections: usize,
    /// Most connections open at once from one source address on one listener.
    pub max_connections_per_address: usize,
    /// MiB of request bodies held in memory at once, over every connection of both
    /// listeners; a body that would go past it is refused with 503.
    pub body_memory_mib: u32,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            handshake_timeout_secs: 10,
            header_timeout_secs: 10,
            body_timeout_secs: 30,
            idle_timeout_secs: 60,
            max_connections: 4096,
            max_connections_per_address: 64,
            body_memory_mib: 256,
        }
    }
}

/// How the SQLite telemetry writer syncs its commits (`[database] telemetry_sync`).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TelemetrySync {
    /// `synchronous = FULL`: each acknowledged batch is on disk before the answer, and
    /// survives a crash of the process and a power loss.
    #[default]
    Full,
    /// `synchronous = NORMAL` (WAL): a batch survives a crash of the process, but the last
    /// batches acknowledged before a power loss can be lost (never a corrupt database; the
    /// next FULL commit of the registry or audit log syncs them too).
    Normal,
}

/// Database settings beyond its URL (the `[database]` table).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// How the SQLite telemetry writer syncs (registry transitions and the audit log are
    /// always `FULL`); PostgreSQL ignores it.
    pub telemetry_sync: TelemetrySync,
}

/// Everything the server can be configured with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the embedded default keeps its database, keys and certificates.
    pub data_dir: PathBuf,
    /// The device API listener (mTLS).
    pub listen: SocketAddr,
    /// The admin listener (server-authenticated TLS; private: loopback by default).
    pub admin_listen: SocketAddr,
    /// The enrollment listener (server-authenticated TLS, `/v1/enroll` only): where devices
    /// without a certificate yet reach the server without reaching the admin API.
    pub enroll_listen: SocketAddr,
    /// `sqlite://…` or `postgres://…`; default: SQLite in the data directory.
    pub database_url: Option<String>,
    /// Database settings (`[database]`).
    pub database: DatabaseConfig,
    /// `redis://…` for fleet-wide rate limits and nonce caches; default: in process.
    pub redis_url: Option<String>,
    /// The `[nats]` table: publish accepted telemetry to JetStream for the scale-out
    /// detection workers (see docs/detection.md); default: no publishing.
    pub nats: Option<crate::detect_nats::NatsConfig>,
    /// Device CA certificate and key (PEM); default: the development PKI in the data dir.
    pub device_ca_cert: Option<PathBuf>,
    /// See `device_ca_cert`.
    pub device_ca_key: Option<PathBuf>,
    /// Master key file (hex) from which device token secrets are derived.
    pub master_key_file: Option<PathBuf>,
    /// Extra DNS names for the server certificate (besides localhost and the loopback IPs).
    pub server_names: Vec<String>,
    /// Accepted device clock difference for tokens, in seconds.
    pub token_window_secs: u64,
    /// How long an enrollment token stays valid, in seconds.
    pub enrollment_ttl_secs: u64,
    /// Validity of issued device certificates, in days.
    pub device_cert_days: i64,
    /// Per-source-address limit, applied before authentication.
    pub ip_limit: LimitConfig,
    /// Per-source-address limit on enrollment (`POST /v1/enroll`, unauthenticated).
    pub enroll_limit: LimitConfig,
    /// Seconds over which repeated refusals are counted into one audit entry.
    pub audit_aggregate_secs: u64,
    /// Per-device limit for hardware classes not listed in `class_limits`.
    pub device_limit: LimitConfig,
    /// Per-device limits by hardware class.
    pub class_limits: BTreeMap<String, LimitConfig>,
    /// Per-device download limit on update targets, in KiB.
    pub update_limit: UpdateLimitConfig,
    /// Timeouts and connection caps.
    pub connections: ConnectionLimits,
    /// Attestation: signed boot policies and nonce lifetime (`[attestation]`).
    pub attestation: crate::attestation::AttestationConfig,
    /// A TUF repository directory (as `edgeward release publish` writes it) served to
    /// devices under `/v1/device/update/`; none: devices are told there is no repository.
    pub update_repo: Option<PathBuf>,
    /// The MQTT broker to consume device traffic through (the `[mqtt]` table); none, the
    /// embedded default: HTTPS only.
    pub mqtt: Option<crate::mqtt::MqttConfig>,
    /// Detection and incident response (see docs/detection.md).
    pub detection: crate::detection::DetectionConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("edgeward-data"),
            listen: ([127, 0, 0, 1], 8443).into(),
            admin_listen: ([127, 0, 0, 1], 8444).into(),
            enroll_listen: ([127, 0, 0, 1], 8445).into(),
            database_url: None,
            database: DatabaseConfig::default(),
            redis_url: None,
            nats: None,
            device_ca_cert: None,
            device_ca_key: None,
            master_key_file: None,
            server_names: Vec::new(),
            token_window_secs: edgeward_proto::token::DEFAULT_WINDOW_SECS,
            enrollment_ttl_secs: 24 * 3600,
            device_cert_days: 365,
            ip_limit: LimitConfig {
                per_second: 200,
                burst: 400,
            },
            enroll_limit: LimitConfig {
                per_second: 20,
                burst: 100,
            },
            audit_aggregate_secs: 60,
            device_limit: LimitConfig {
                per_second: 20,
                burst: 40,
            },
            class_limits: BTreeMap::new(),
            update_limit: UpdateLimitConfig::default(),
            connections: ConnectionLimits::default(),
            attestation: Default::default(),
            update_repo: None,
            mqtt: None,
            detection: crate::detection::DetectionConfig::default(),
        }
    }
}

impl Config {
    /// Reads a TOML file over the defaults.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Applies `EDGEWARD_DATABASE_URL`, `EDGEWARD_REDIS_URL`, `EDGEWARD_DATA_DIR`,
    /// `EDGEWARD_LISTEN`, `EDGEWARD_ADMIN_LISTEN`, `EDGEWARD_ENROLL_LISTEN` when set.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), String> {
        if let Some(v) = get("EDGEWARD_DATABASE_URL") {
            self.database_url = Some(v);
        }
        if let Some(v) = get("EDGEWARD_REDIS_URL") {
            self.redis_url = Some(v);
        }
        if let Some(v) = get("EDGEWARD_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = get("EDGEWARD_LISTEN") {
            self.listen = v.parse().map_err(|e| format!("EDGEWARD_LISTEN={v}: {e}"))?;
        }
        if let Some(v) = get("EDGEWARD_ADMIN_LISTEN") {
            self.admin_listen = v
                .parse()
                .map_err(|e| format!("EDGEWARD_ADMIN_LISTEN={v}: {e}"))?;
        }
        if let Some(v) = get("EDGEWARD_ENROLL_LISTEN") {
            self.enroll_listen = v
                .parse()
                .map_err(|e| format!("EDGEWARD_ENROLL_LISTEN={v}: {e}"))?;
        }
        Ok(())
    }

    /// The per-device limit of a hardware class.
    pub fn limit_for(&self, hardware_class: &str) -> LimitConfig {
        self.class_limits
            .get(hardware_class)
            .copied()
            .unwrap_or(self.device_limit)
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("edgeward.db").display()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_overrides_defaults_and_unknown_keys_are_refused() {
        let c = Config::from_toml(
            "listen = \"127.0.0.1:9000\"\n[class_limits.jetson]\nper_second = 5\nburst = 10\n",
        )
        .expect("parse");
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(
            c.limit_for("jetson"),
            LimitConfig {
                per_second: 5,
                burst: 10
            }
        );
        assert_eq!(c.limit_for("other"), Config::default().device_limit);
        assert!(Config::from_toml("lsten = 1").is_err());
        let c = Config::from_toml("[connections]\nidle_timeout_secs = 5\n").expect("parse");
        assert_eq!(c.connections.idle_timeout_secs, 5);
        assert_eq!(c.connections.max_connections, 4096);
        assert!(Config::from_toml("[connections]\nidle = 5\n").is_err());
        assert_eq!(
            Config::default().database.telemetry_sync,
            TelemetrySync::Full
        );
        let c = Config::from_toml("[database]\ntelemetry_sync = \"normal\"\n").expect("parse");
        assert_eq!(c.database.telemetry_sync, TelemetrySync::Normal);
        assert!(Config::from_toml("[database]\ntelemetry_sync = \"off\"\n").is_err());
    }
}
