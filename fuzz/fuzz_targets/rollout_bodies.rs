//! The rollout request body (`POST /v1/admin/releases/{version}/rollout`): nothing may
//! panic, and what parses must satisfy the documented bounds. (The update report a device
//! posts is fuzzed with the other API bodies, in `api_bodies`.)
#![no_main]

use edgeward_proto::rollout::{self, Selector};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = rollout::rollout(data) {
        assert!(r.threshold_bp <= 10_000);
        assert!((1..=rollout::MAX_MIN_SAMPLE).contains(&r.min_sample));
        match r.selector {
            Selector::Percent(bp) => assert!((1..=10_000).contains(&bp)),
            Selector::Devices(ids) => {
                assert!((1..=rollout::MAX_DEVICES).contains(&ids.len()));
                assert!(ids.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
            }
            Selector::Hardware(class) => assert!(!class.is_empty()),
        }
    }
});
