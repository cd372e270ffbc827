//! The server's integration tests, one binary: each module starts real servers on loopback
//! (SQLite, and PostgreSQL and Redis where the module says so) and drives them as devices,
//! operators and attackers would.

#[macro_use]
mod common;
#[path = "../support/mosquitto.rs"]
mod mosquitto;

mod abuse;
mod api;
mod attestation;
mod audit;
mod audit_log;
mod data_dir;
mod detection;
mod faults;
mod interop;
mod logs;
mod memory;
mod mqtt;
mod openapi;
mod quarantine;
mod rate_limit;
mod replicas;
mod revocation;
mod roles;
mod rollouts;
mod routes;
mod scale_out;
mod transitions;
mod updates;
