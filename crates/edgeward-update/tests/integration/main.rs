//! Integration tests of edgeward-update, one binary of modules.

mod attacks;
mod delta;
mod repo;
mod resume;
mod sim;
