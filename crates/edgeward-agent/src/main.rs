//! `edgeward-agent`: runs on each device.

fn main() {}
