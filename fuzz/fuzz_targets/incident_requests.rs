//! The admin API's incident request bodies (close with the post-mortem's fields, approve):
//! bounded, strict parsing; nothing may panic, and what parses keeps the documented bounds.
#![no_main]

use edgeward_detect::incident::{approve_request, close_request, MAX_TEXT};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = close_request(data) {
        for text in [&r.root_cause, &r.lessons].into_iter().flatten() {
            assert!(text.len() <= MAX_TEXT);
        }
    }
    if let Ok(r) = approve_request(data) {
        assert!(r.action.is_none_or(|a| a >= 1));
    }
});
