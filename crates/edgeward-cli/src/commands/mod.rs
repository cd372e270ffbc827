//! One module per command: each owns its clap arguments and its `run`.

pub mod audit;
pub mod boot;
pub mod device;
pub mod fleet;
pub mod mcuboot;
pub mod model;
pub mod pki;
pub mod release;
pub mod rollout;
pub mod se;
pub mod sign;
pub mod verify;
