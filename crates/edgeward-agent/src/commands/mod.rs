//! Signed incident commands: verification ([`verify`]) before anything runs.

pub mod verify;
