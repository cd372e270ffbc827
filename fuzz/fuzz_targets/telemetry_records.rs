//! What detection reads from a device's telemetry batch: bounded, total parsing; nothing may
//! panic, observations stay within their bound, and no timestamp escapes the window the
//! caller trusts.
#![no_main]

use edgeward_detect::records::{parse, Observation, MAX_OBSERVATIONS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (now, lo, hi) = (1_767_225_600, 1_767_225_600 - 86_400, 1_767_225_600 + 300);
    if let Ok(o) = parse(data, now, lo, hi) {
        assert!(o.items.len() <= MAX_OBSERVATIONS);
        for item in &o.items {
            let at = match item {
                Observation::Metric { at, value, .. } => {
                    assert!(value.is_finite());
                    *at
                }
                Observation::Event { at, .. } | Observation::Location { at, .. } => *at,
            };
            assert!((lo..=hi).contains(&at));
        }
    }
});
