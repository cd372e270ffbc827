//! The `[detection]` section of the server's configuration: whether detection runs, the
//! playbook file, alert deduplication and rate limits, the sinks, each hardware class's
//! release models, devices' expected areas and the networks that never count as travel.

use std::{collections::BTreeMap, path::PathBuf};

use edgeward_detect::geo::Area;
use serde::Deserialize;

/// Detection and response settings.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DetectionConfig {
    /// Run detection on telemetry (default on).
    pub enabled: bool,
    /// A playbook file (TOML, see docs/detection.md); the built-in default when absent.
    pub playbook: Option<PathBuf>,
    /// The same alert (device, kind, metric) is raised again only after this many seconds.
    pub dedup_secs: u64,
    /// Most alerts raised per minute, fleet-wide; the rest are counted and dropped.
    pub max_alerts_per_minute: u32,
    /// How often changed detector state is written to the database (seconds).
    pub checkpoint_secs: u64,
    /// How far back a record's own timestamp is believed (seconds; older ones get the
    /// time of receipt).
    pub max_record_age_secs: i64,
    /// The model hashes (hex SHA-256) of each hardware class's release; a device reporting
    /// another model raises `foreign_model`. Classes without an entry are not checked.
    pub release_models: BTreeMap<String, Vec<String>>,
    /// Expected areas by device id.
    pub areas: BTreeMap<String, Area>,
    /// Networks (CIDR) whose addresses say nothing about a device's place (VPN exits).
    pub allowed_networks: Vec<String>,
    /// Implied speed above which travel is impossible (km/h).
    pub max_speed_kmh: f64,
    /// The webhook sink.
    pub webhook: Option<WebhookConfig>,
    /// The MQTT sink.
    pub mqtt: Option<MqttConfig>,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        DetectionConfig {
            enabled: true,
            playbook: None,
            dedup_secs: 300,
            max_alerts_per_minute: 120,
            checkpoint_secs: 5,
            max_record_age_secs: 30 * 86_400,
            release_models: BTreeMap::new(),
            areas: BTreeMap::new(),
            allowed_networks: Vec::new(),
            max_speed_kmh: 1_000.0,
            webhook: None,
            mqtt: None,
        }
    }
}

/// Where alerts are POSTed as JSON, signed with HMAC-SHA256.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The URL (http or https).
    pub url: String,
    /// A file holding the HMAC key (its bytes, trailing newline ignored).
    pub secret_file: PathBuf,
    /// A CA certificate (PEM) to trust for an https URL.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Attempts per alert (retried with exponential backoff on errors and 5xx/429).
    #[serde(default = "default_attempts")]
    pub attempts: u32,
}

fn default_attempts() -> u32 {
    5
}

/// The MQTT broker and topic alerts are published to (`<topic>/<device>`, QoS 1).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker host.
    pub host: String,
    /// Broker port.
    #[serde(default = "default_mqtt_port")]
    pub port: u16,
    /// Topic prefix.
    #[serde(default = "default_topic")]
    pub topic: String,
    /// Client id.
    #[serde(default = "default_client_id")]
    pub client_id: String,
}

fn default_mqtt_port() -> u16 {
    1883
}

fn default_topic() -> String {
    "edgeward/alerts".into()
}

fn default_client_id() -> String {
    "edgeward-server-alerts".into()
}
