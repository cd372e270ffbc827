//! Integration tests of edgeward-update, one binary of modules.

mod attacks;
mod delta;
mod release_attacks;
mod repo;
mod resume;
mod sim;
