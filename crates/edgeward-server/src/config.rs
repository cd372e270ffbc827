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
    /// `redis://…` for fleet-wide rate limits and nonce caches; default: in process.
    pub redis_url: Option<String>,
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
    /// Per-device limit for hardware classes not listed in `class_limits`.
    pub device_limit: LimitConfig,
    /// Per-device limits by hardware class.
    pub class_limits: BTreeMap<String, LimitConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("edgeward-data"),
            listen: ([127, 0, 0, 1], 8443).into(),
            admin_listen: ([127, 0, 0, 1], 8444).into(),
            enroll_listen: ([127, 0, 0, 1], 8445).into(),
            database_url: None,
            redis_url: None,
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
            device_limit: LimitConfig {
                per_second: 20,
                burst: 40,
            },
            class_limits: BTreeMap::new(),
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
    }
}
