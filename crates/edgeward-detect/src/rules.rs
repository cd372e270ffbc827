//! Day-one rules: events that mean trouble without any baseline. A burst of authentication
//! failures or rate-limit hits, a failed verification or attestation, a model hash that is not
//! in the device's release, a port the device never listened on before, tamper and boot
//! recovery. They fire from a device's first report, which behavioural baselines cannot.

use std::collections::{BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::alert::{Alert, AlertKind, Severity};

/// Most listening ports remembered per device (a device listening on more is itself odd).
pub const MAX_KNOWN_PORTS: usize = 256;

/// Something a device reported, or the server saw about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum Event {
    /// A call from the device failed authentication.
    AuthFailure,
    /// A call from the device was refused by its rate limit.
    RateLimited,
    /// The device failed to verify a signature or artifact.
    VerificationFailed {
        /// What failed to verify.
        what: String,
    },
    /// The device's attestation evidence did not verify.
    AttestationFailed,
    /// The device reported the hash of the model it runs.
    ModelLoaded {
        /// Hex SHA-256 of the model.
        hash: String,
    },
    /// The device reported its listening ports.
    ListeningPorts {
        /// The ports.
        ports: Vec<u16>,
    },
    /// The device reported tampering.
    Tamper {
        /// What the tamper sensor said.
        detail: String,
    },
    /// The device booted into recovery.
    BootRecovery {
        /// Why it fell back.
        reason: String,
    },
}

/// Thresholds of the rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleConfig {
    /// Authentication failures within [`RuleConfig::burst_seconds`] that make a burst.
    pub auth_failures: usize,
    /// Rate-limit refusals within [`RuleConfig::burst_seconds`] that make a burst.
    pub rate_limited: usize,
    /// The burst window.
    pub burst_seconds: i64,
}

impl Default for RuleConfig {
    fn default() -> Self {
        RuleConfig {
            auth_failures: 5,
            rate_limited: 20,
            burst_seconds: 60,
        }
    }
}

/// The per-device memory of the rules: recent failure times, known ports.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleState {
    auth_failures: VecDeque<i64>,
    rate_limited: VecDeque<i64>,
    ports: Option<BTreeSet<u16>>,
}

impl RuleState {
    /// Applies one event seen at `at`; returns the alert it raises, if any. `release_models`
    /// are the model hashes (hex SHA-256) of the device's current release.
    pub fn apply(
        &mut self,
        config: &RuleConfig,
        device: &str,
        at: i64,
        event: &Event,
        release_models: &[String],
    ) -> Option<Alert> {
        let alert = |kind, severity, detail: String| {
            Some(Alert {
                device: device.to_string(),
                kind,
                severity,
                at,
                detail,
            })
        };
        match event {
            Event::AuthFailure => {
                if !burst(
                    &mut self.auth_failures,
                    at,
                    config.burst_seconds,
                    config.auth_failures,
                ) {
                    return None;
                }
                let detail = format!(
                    "{} authentication failures within {} s",
                    config.auth_failures, config.burst_seconds
                );
                alert(AlertKind::AuthFailureBurst, Severity::High, detail)
            }
            Event::RateLimited => {
                if !burst(
                    &mut self.rate_limited,
                    at,
                    config.burst_seconds,
                    config.rate_limited,
                ) {
                    return None;
                }
                let detail = format!(
                    "{} rate-limit refusals within {} s",
                    config.rate_limited, config.burst_seconds
                );
                alert(AlertKind::RateLimitBurst, Severity::Medium, detail)
            }
            Event::VerificationFailed { what } => alert(
                AlertKind::VerificationFailure,
                Severity::High,
                format!("verification failed on the device: {what}"),
            ),
            Event::AttestationFailed => alert(
                AlertKind::AttestationFailure,
                Severity::Critical,
                "attestation evidence did not verify".to_string(),
            ),
            Event::ModelLoaded { hash } => {
                let hash = hash.to_ascii_lowercase();
                if release_models.iter().any(|m| m.eq_ignore_ascii_case(&hash)) {
                    None
                } else {
                    alert(
                        AlertKind::ForeignModel { hash: hash.clone() },
                        Severity::Critical,
                        format!("model {hash} is not in the device's release"),
                    )
                }
            }
            Event::ListeningPorts { ports } => {
                let reported: BTreeSet<u16> = ports.iter().copied().take(MAX_KNOWN_PORTS).collect();
                let Some(known) = &mut self.ports else {
                    // The first report is the device's baseline.
                    self.ports = Some(reported);
                    return None;
                };
                let new = reported.difference(known).next().copied();
                for port in reported {
                    if known.len() >= MAX_KNOWN_PORTS {
                        break;
                    }
                    known.insert(port);
                }
                new.and_then(|port| {
                    alert(
                        AlertKind::NewListeningPort { port },
                        Severity::High,
                        format!("the device now listens on port {port}"),
                    )
                })
            }
            Event::Tamper { detail } => alert(
                AlertKind::Tamper,
                Severity::Critical,
                format!("tamper reported: {detail}"),
            ),
            Event::BootRecovery { reason } => alert(
                AlertKind::BootRecovery,
                Severity::High,
                format!("booted into recovery: {reason}"),
            ),
        }
    }
}

/// Records an occurrence at `at` and says whether the window now holds `limit` of them (the
/// window is then cleared, so one burst raises one alert).
fn burst(times: &mut VecDeque<i64>, at: i64, window: i64, limit: usize) -> bool {
    while times.front().is_some_and(|&t| t <= at - window) {
        times.pop_front();
    }
    times.push_back(at);
    if times.len() >= limit.max(1) {
        times.clear();
        true
    } else {
        false
    }
}
