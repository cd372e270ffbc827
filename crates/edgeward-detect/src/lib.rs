//! Edgeward's detection library: it scores a device's telemetry. Streaming behavioural
//! baselines per device and metric ([`baseline`], checkpointed by [`state`]), cohort
//! baselines so a new device is compared with its peers ([`cohort`]), day-one rules
//! ([`rules`]), geography and cloned certificates ([`geo`]), all behind one fleet-wide
//! detector ([`fleet`]) that produces [`alert::Alert`]s; and the harness that measures the
//! baseline on the Numenta Anomaly Benchmark ([`nab`]). What the server needs besides:
//! reading telemetry records ([`records`]), playbooks ([`playbook`]) and the incident
//! lifecycle and its requests ([`incident`]), all pure so they can be fuzzed.

pub mod alert;
pub mod baseline;
pub mod cohort;
pub mod fleet;
pub mod geo;
pub mod incident;
pub mod nab;
pub mod playbook;
pub mod records;
pub mod rules;
pub mod state;
