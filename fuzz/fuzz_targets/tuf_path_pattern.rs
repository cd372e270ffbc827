//! The shell-style matcher of TUF delegation paths, on arbitrary target paths and
//! patterns (split at the first NUL): it must never panic, and a pattern always matches
//! itself when it has no wildcard or bracket characters.
#![no_main]

use edgeward_update::tuf::metadata::path_matches;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (target, pattern) = text.split_once('\0').unwrap_or((text, "*"));
    let _ = path_matches(target, pattern);
    if !target.contains(['*', '?', '[']) {
        assert!(path_matches(target, target), "literal pattern must match itself");
    }
});
