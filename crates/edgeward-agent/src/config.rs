//! The agent's one configuration file (`agent.toml`). Every key is checked at load time:
//! unknown keys are refused, URLs must be `https://`, intervals and bounds must be in range,
//! so a typo stops the agent at start rather than silently changing its behaviour.

use std::{path::PathBuf, time::Duration};

use serde::Deserialize;

use crate::AgentError;

/// Where the device is, when it knows (a GPS fix or a configured position).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// Degrees north, −90 to 90.
    pub latitude: f64,
    /// Degrees east, −180 to 180.
    pub longitude: f64,
}

/// How the agent reaches the cloud for telemetry and commands.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// The device API over mutual TLS (the default).
    #[default]
    Https,
    /// An MQTT broker over mutual TLS (`mqtt_broker`); enrollment, attestation and forensic
    /// uploads stay on HTTPS.
    Mqtt,
}

/// Everything `edgeward-agent run` is configured with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The device API, e.g. `https://fleet.example.com:8443` (mutual TLS).
    pub server: String,
    /// The enrollment listener, e.g. `https://fleet.example.com:8445`.
    pub enroll_server: String,
    /// The CA that signed the server's certificate (PEM).
    pub server_ca: PathBuf,
    /// The secure element URI: `soft:DIR`, `pkcs11:MODULE?token=…&pin-env=…`, `tpm:…`.
    pub element: String,
    /// The agent's state directory (certificate, telemetry queue, command state).
    pub state_dir: PathBuf,
    /// A file holding the one-time enrollment token, read when the device has no
    /// certificate (first start, or after a wipe); deleted once used.
    #[serde(default)]
    pub enrollment_token_file: Option<PathBuf>,
    /// The status socket (default: `status.sock` in the state directory).
    #[serde(default)]
    pub status_socket: Option<PathBuf>,
    /// The socket the inference application reports its metrics to (none: not collected).
    #[serde(default)]
    pub inference_socket: Option<PathBuf>,
    /// The boot state directory of `edgeward-agent boot` (its measured-boot log is what
    /// `attest` and forensic bundles report; none: nothing to report).
    #[serde(default)]
    pub boot_state_dir: Option<PathBuf>,
    /// Where the installed models live: digested into forensic bundles, deleted by `wipe`.
    #[serde(default)]
    pub models_dir: Option<PathBuf>,
    /// A configured position, reported with each device sample.
    #[serde(default)]
    pub location: Option<Location>,
    /// Milliseconds between device metric samples.
    #[serde(default = "defaults::telemetry_interval_ms")]
    pub telemetry_interval_ms: u64,
    /// Milliseconds between command polls (and queue flushes while the server is away).
    #[serde(default = "defaults::command_interval_ms")]
    pub command_interval_ms: u64,
    /// Most events the on-disk queue holds; beyond it the oldest are dropped and counted.
    #[serde(default = "defaults::queue_max_events")]
    pub queue_max_events: u64,
    /// Most events sent in one batch (1–1000).
    #[serde(default = "defaults::batch_max")]
    pub batch_max: usize,
    /// How old a signed command may be (seconds since the server signed it) and still run.
    #[serde(default = "defaults::command_window_secs")]
    pub command_window_secs: u64,
    /// Signed updates (`[update]`, docs/updates.md); none: the agent does not update.
    #[serde(default)]
    pub update: Option<crate::update::UpdateConfig>,
    /// `https` (default) or `mqtt`: how telemetry and commands travel.
    #[serde(default)]
    pub transport: TransportKind,
    /// The MQTT broker's TLS listener, `HOST:PORT` (with `transport = "mqtt"`).
    #[serde(default)]
    pub mqtt_broker: Option<String>,
    /// The MQTT version spoken to the broker: `"3.1.1"` (default) or `"5"`.
    #[serde(default)]
    pub mqtt_version: crate::mqtt::MqttVersion,
    /// The isolated inference worker (`[inference]`); none: the agent serves no model.
    #[serde(default)]
    pub inference: Option<crate::inference::InferenceConfig>,
}

mod defaults {
    pub(super) fn telemetry_interval_ms() -> u64 {
        30_000
    }
    pub(super) fn command_interval_ms() -> u64 {
        10_000
    }
    pub(super) fn queue_max_events() -> u64 {
        100_000
    }
    pub(super) fn batch_max() -> usize {
        200
    }
    pub(super) fn command_window_secs() -> u64 {
        24 * 3600
    }
}

/// Largest configuration file read.
const MAX_CONFIG: u64 = 64 * 1024;

impl AgentConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &std::path::Path) -> Result<Self, AgentError> {
        let bytes = crate::files::read_bounded(path, MAX_CONFIG)?
            .ok_or_else(|| AgentError::Config(format!("{} does not exist", path.display())))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| AgentError::Config(format!("{} is not UTF-8", path.display())))?;
        Self::parse(&text).map_err(|e| AgentError::Config(format!("{}: {e}", path.display())))
    }

    /// Parses and checks a configuration's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let c: AgentConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        c.check()?;
        Ok(c)
    }

    fn check(&self) -> Result<(), String> {
        for (key, url) in [
            ("server", &self.server),
            ("enroll_server", &self.enroll_server),
        ] {
            if !url.starts_with("https://") {
                return Err(format!("{key} must be an https:// URL, not {url:?}"));
            }
        }
        if !(100..=86_400_000).contains(&self.telemetry_interval_ms)
            || !(100..=86_400_000).contains(&self.command_interval_ms)
        {
            return Err("intervals are 100 ms to one day".into());
        }
        if !(1..=edgeward_proto::api::MAX_RECORDS).contains(&self.batch_max) {
            return Err(format!(
                "batch_max is 1 to {}, not {}",
                edgeward_proto::api::MAX_RECORDS,
                self.batch_max
            ));
        }
        if self.queue_max_events < self.batch_max as u64 {
            return Err("queue_max_events must be at least batch_max".into());
        }
        if !(60..=30 * 86_400).contains(&self.command_window_secs) {
            return Err("command_window_secs is 60 s to 30 days".into());
        }
        if let Some(u) = &self.update {
            u.check()?;
        }
        if let Some(i) = &self.inference {
            i.check()?;
        }
        match (self.transport, &self.mqtt_broker) {
            (TransportKind::Mqtt, None) => {
                return Err("transport = \"mqtt\" needs mqtt_broker = \"HOST:PORT\"".into())
            }
            (TransportKind::Mqtt, Some(b)) => {
                edgeward_proto::mqtt::host_port(b).map_err(|e| format!("mqtt_{e}"))?;
            }
            (TransportKind::Https, _) => {}
        }
        if let Some(l) = self.location {
            if !(-90.0..=90.0).contains(&l.latitude) || !(-180.0..=180.0).contains(&l.longitude) {
                return Err(format!(
                    "location ({}, {}) is not a latitude and longitude",
                    l.latitude, l.longitude
                ));
            }
        }
        Ok(())
    }

    /// The status socket's path.
    pub fn status_socket(&self) -> PathBuf {
        self.status_socket
            .clone()
            .unwrap_or_else(|| self.state_dir.join("status.sock"))
    }

    /// The interval between device metric samples.
    pub fn telemetry_interval(&self) -> Duration {
        Duration::from_millis(self.telemetry_interval_ms)
    }

    /// The interval between command polls.
    pub fn command_interval(&self) -> Duration {
        Duration::from_millis(self.command_interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "server = \"https://s:8443\"\nenroll_server = \"https://s:8445\"\nserver_ca = \"/ca.pem\"\nelement = \"soft:/se\"\nstate_dir = \"/state\"\n";

    #[test]
    fn minimal_file_gets_defaults() {
        let c = AgentConfig::parse(MINIMAL).expect("parse");
        assert_eq!(c.telemetry_interval_ms, 30_000);
        assert_eq!(c.status_socket(), PathBuf::from("/state/status.sock"));
    }

    #[test]
    fn mistakes_are_refused_with_their_reason() {
        let e = AgentConfig::parse(&format!("{MINIMAL}bogus = 1\n")).unwrap_err();
        assert!(e.contains("unknown field `bogus`"), "{e}");
        let e =
            AgentConfig::parse(&MINIMAL.replace("https://s:8443", "http://s:8443")).unwrap_err();
        assert_eq!(e, "server must be an https:// URL, not \"http://s:8443\"");
        let e = AgentConfig::parse(&format!("{MINIMAL}batch_max = 5000\n")).unwrap_err();
        assert_eq!(e, "batch_max is 1 to 1000, not 5000");
        let e = AgentConfig::parse(&format!(
            "{MINIMAL}[location]\nlatitude = 91.0\nlongitude = 0.0\n"
        ))
        .unwrap_err();
        assert_eq!(e, "location (91, 0) is not a latitude and longitude");
        let e = AgentConfig::parse(&format!("{MINIMAL}transport = \"mqtt\"\n")).unwrap_err();
        assert_eq!(e, "transport = \"mqtt\" needs mqtt_broker = \"HOST:PORT\"");
        let c = AgentConfig::parse(&format!(
            "{MINIMAL}transport = \"mqtt\"\nmqtt_broker = \"broker:8883\"\n"
        ))
        .expect("mqtt");
        assert_eq!(c.transport, TransportKind::Mqtt);
        assert_eq!(c.mqtt_version, crate::mqtt::MqttVersion::V311);
        let c = AgentConfig::parse(&format!(
            "{MINIMAL}transport = \"mqtt\"\nmqtt_broker = \"broker:8883\"\nmqtt_version = \"5\"\n"
        ))
        .expect("mqtt 5");
        assert_eq!(c.mqtt_version, crate::mqtt::MqttVersion::V5);
        let e = AgentConfig::parse(&format!("{MINIMAL}mqtt_version = \"4\"\n")).unwrap_err();
        assert!(
            e.contains("unknown variant `4`, expected `3.1.1` or `5`"),
            "{e}"
        );
    }
}
