//! Signed updates for Edgeward devices.
//!
//! A TUF 1.0 client of our own ([`tuf`]): root chaining, one fixed start time for every
//! expiry check, rollback and fast-forward protection, snapshot/timestamp consistency,
//! bounded downloads, and a depth-first delegation search; chunk-level deltas ([`delta`]);
//! and the device-side installer ([`install`]): A/B slots, trial, confirm or revert.

pub mod delta;
mod fsio;
pub mod install;
pub mod release;
pub mod repo;
pub mod tuf;
