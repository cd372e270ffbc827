//! `edgeward-server`: the cloud control plane. Every device is known (registry and
//! enrollment), every device call is mutually authenticated (mTLS to the device CA plus an
//! HMAC device token) and limited (GCRA per source address and per device), and a
//! quarantined or revoked device is cut off at once. SQLite on the embedded default;
//! PostgreSQL and Redis at scale.

pub mod admin_api;
pub mod app;
pub mod attestation;
pub mod audit_agg;
pub mod audit_log;
pub mod audit_log_api;
pub mod body;
pub mod clock;
pub mod command_signing;
pub mod commands;
pub mod config;
pub mod conn_limits;
pub mod conns;
pub mod data_dir;
pub mod db;
pub mod detect_nats;
pub mod detection;
pub mod device_api;
pub mod device_gate;
pub mod enrollment;
pub mod forensics;
pub mod identity;
pub mod incidents;
pub mod ingest;
pub mod json_errors;
pub mod metrics;
pub mod mqtt;
pub mod rate_limit;
pub mod registry_cache;
pub mod rollout;
pub mod rollout_api;
pub mod server;
pub mod telemetry;
pub mod telemetry_seq;
pub mod tls;
pub mod update_repo;

pub use config::Config;
pub use server::{start, start_with_clock, Running};
