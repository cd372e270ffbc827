//! What detection produces: an alert naming the device, what was seen, how bad it is and
//! when. Alerts are plain data so the server can store, deduplicate and route them.

use serde::{Deserialize, Serialize};

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look.
    Low,
    /// Needs attention soon.
    Medium,
    /// Likely an attack or a failure in progress.
    High,
    /// Act now (the default playbook contains on these).
    Critical,
}

/// What kind of detection raised an alert.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum AlertKind {
    /// A metric departed from the device's own baseline (or its cohort's, while it is new).
    Behaviour {
        /// The metric.
        metric: String,
    },
    /// Authentication failures came in a burst.
    AuthFailureBurst,
    /// The device kept hitting its rate limit.
    RateLimitBurst,
    /// A signature or artifact verification failed on the device.
    VerificationFailure,
    /// The device's attestation evidence did not verify.
    AttestationFailure,
    /// The device runs a model whose hash is not in its release.
    ForeignModel {
        /// The hash the device reported.
        hash: String,
    },
    /// The device listens on a port it did not listen on before.
    NewListeningPort {
        /// The port.
        port: u16,
    },
    /// The device reported physical tampering.
    Tamper,
    /// The device booted into recovery.
    BootRecovery,
    /// The device reported from outside its expected area.
    OutsideArea,
    /// Two consecutive locations are too far apart for the time between them.
    ImpossibleTravel {
        /// Implied speed in km/h.
        speed_kmh: u32,
    },
    /// One certificate was in use from two networks or places at once.
    ClonedCertificate,
}

impl AlertKind {
    /// The kind's name, as in its JSON `kind` field and in playbooks.
    pub fn name(&self) -> &'static str {
        match self {
            AlertKind::Behaviour { .. } => "behaviour",
            AlertKind::AuthFailureBurst => "auth_failure_burst",
            AlertKind::RateLimitBurst => "rate_limit_burst",
            AlertKind::VerificationFailure => "verification_failure",
            AlertKind::AttestationFailure => "attestation_failure",
            AlertKind::ForeignModel { .. } => "foreign_model",
            AlertKind::NewListeningPort { .. } => "new_listening_port",
            AlertKind::Tamper => "tamper",
            AlertKind::BootRecovery => "boot_recovery",
            AlertKind::OutsideArea => "outside_area",
            AlertKind::ImpossibleTravel { .. } => "impossible_travel",
            AlertKind::ClonedCertificate => "cloned_certificate",
        }
    }

    /// What makes two alerts "the same" for deduplication: the kind and, for behaviour, the
    /// metric (a burst of one metric's anomalies is one alert; another metric is another).
    pub fn dedup_key(&self) -> String {
        match self {
            AlertKind::Behaviour { metric } => format!("behaviour:{metric}"),
            other => other.name().to_string(),
        }
    }
}

/// One detection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The device concerned.
    pub device: String,
    /// What was detected.
    #[serde(flatten)]
    pub kind: AlertKind,
    /// How urgent it is.
    pub severity: Severity,
    /// When the triggering observation was made (Unix seconds).
    pub at: i64,
    /// A sentence saying what was seen.
    pub detail: String,
}
