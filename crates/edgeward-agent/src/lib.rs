//! The Edgeward device agent's logic (the binary only parses arguments): the daemon
//! ([`daemon`]) that enrolls from the secure element, streams telemetry over mutual TLS and
//! answers signed commands, the isolated inference worker it starts ([`inference`]), and the
//! one-shot device operations (tamper response).

pub mod commands;
pub mod config;
pub mod daemon;
pub mod enroll;
pub mod error;
pub mod files;
pub mod inference;
pub mod logbuf;
pub mod metrics;
pub mod mqtt;
pub mod net;
pub mod queue;
pub mod retire;
pub mod status;
pub mod tamper;
pub mod update;

pub use config::AgentConfig;
pub use error::AgentError;
