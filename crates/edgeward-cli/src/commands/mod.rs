//! One module per command: each owns its clap arguments and its `run`.

pub(crate) mod audit;
pub(crate) mod boot;
pub(crate) mod detect;
pub(crate) mod device;
pub(crate) mod fleet;
pub(crate) mod incidents;
pub(crate) mod mcuboot;
pub(crate) mod model;
pub(crate) mod pki;
pub(crate) mod release;
pub(crate) mod rollout;
pub(crate) mod se;
pub(crate) mod sign;
pub(crate) mod verify;
