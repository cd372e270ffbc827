//! Edgeward's detection library: it scores a device's telemetry. Streaming behavioural
//! baselines per device and metric ([`baseline`], checkpointed by [`state`]), cohort
//! baselines so a new device is compared with its peers ([`cohort`]), day-one rules
//! ([`rules`]), geography and cloned certificates ([`geo`]), all behind one fleet-wide
//! detector ([`fleet`]) that produces [`alert::Alert`]s; and the harness that measures the
//! baseline on the Numenta Anomaly Benchmark ([`nab`]).

pub mod alert;
pub mod baseline;
pub mod cohort;
pub mod fleet;
pub mod geo;
pub mod nab;
pub mod rules;
pub mod state;
