//! Playbook files (TOML): bounded, typed parsing; nothing may panic, and what parses keeps
//! the documented bounds (rule count, names, only destructive actions without approval).
#![no_main]

use edgeward_detect::playbook::{Playbook, MAX_RULES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Playbook::parse(data) {
        assert!(p.rule.len() <= MAX_RULES);
        for r in &p.rule {
            assert!(!r.name.is_empty() && r.name.len() <= 64);
            assert!(!r.actions.is_empty());
            assert!(r.without_approval.iter().all(|a| a.destructive()));
        }
    }
});
