//! Integration tests of edgeward-update, one binary of modules.

mod attacks;
mod delta;
mod sim;
