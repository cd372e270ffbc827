//! Boot chain descriptions (`chain.toml`): parsing untrusted TOML must never panic, and what
//! parses keeps every stage path inside the chain's directory.
#![no_main]

use std::path::Path;

use edgeward_boot::chain::{Chain, StageFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let base = Path::new("/fuzz-chain");
    let Ok(chain) = Chain::parse(data, base) else {
        return;
    };
    for s in &chain.stages {
        assert!(s.image.starts_with(base));
        match &s.format {
            StageFormat::Bundle { signature } => assert!(signature.starts_with(base)),
            StageFormat::Mcuboot { certificate } => assert!(certificate.starts_with(base)),
        }
        assert!(s.counter_name().len() <= 64);
    }
});
