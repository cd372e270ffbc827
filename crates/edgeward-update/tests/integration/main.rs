//! Integration tests of edgeward-update, one binary of modules.

mod attacks;
mod crash;
mod delta;
mod install;
mod release_attacks;
mod repo;
mod resume;
mod sim;
