//! The Edgeward device agent's logic (the binary only parses arguments): tamper response.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod tamper;
