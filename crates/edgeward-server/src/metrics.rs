//! Counters exposed at `/metrics` in the Prometheus text format.

use std::{collections::BTreeMap, fmt::Write, sync::Mutex};

/// Named counters with labels, e.g. `edgeward_requests_total{listener="device",status="200"}`.
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(&'static str, String), u64>>,
}

const HELP: &[(&str, &str)] = &[
    (
        "edgeward_requests_total",
        "HTTP requests answered, by listener and status",
    ),
    (
        "edgeward_auth_refusals_total",
        "device API calls refused before reaching a handler, by reason",
    ),
    (
        "edgeward_enrollments_total",
        "enrollment attempts, by outcome",
    ),
    (
        "edgeward_handshake_failures_total",
        "TLS handshakes refused, by listener",
    ),
    (
        "edgeward_connections_refused_total",
        "connections closed unserved: a connection cap reached, or out of file descriptors",
    ),
    (
        "edgeward_connections_closed_total",
        "device connections closed by quarantine or revocation",
    ),
    (
        "edgeward_telemetry_batches_total",
        "numbered telemetry batches, stored or recognised as already stored",
    ),
    (
        "edgeward_update_bytes_total",
        "update target bytes served to devices (charged to their update_limit)",
    ),
    (
        "edgeward_alerts_total",
        "alerts raised by detection, by kind and severity",
    ),
    (
        "edgeward_detection_refusals_total",
        "refusals of authenticated devices told to detection, by kind: fed to the rules or only counted",
    ),
];

impl Metrics {
    /// Adds one to `name{labels}`; `labels` is the inside of the braces.
    pub fn inc(&self, name: &'static str, labels: String) {
        if let Ok(mut c) = self.counters.lock() {
            *c.entry((name, labels)).or_insert(0) += 1;
        }
    }

    /// Adds `n` to `name{labels}`.
    pub fn add(&self, name: &'static str, labels: String, n: u64) {
        if let Ok(mut c) = self.counters.lock() {
            *c.entry((name, labels)).or_insert(0) += n;
        }
    }

    /// The exposition text, with `gauges` (name, help, value) appended.
    pub fn render(&self, gauges: &[(&str, &str, u64)]) -> String {
        let mut out = String::new();
        let counters = self.counters.lock().map(|c| c.clone()).unwrap_or_default();
        for (name, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for ((n, labels), v) in &counters {
                if n == name {
                    let _ = writeln!(out, "{name}{{{labels}}} {v}");
                }
            }
        }
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        out
    }
}
