//! What a device asks of the update repository (`edgeward_proto::repo_request`): a metadata
//! name or target path, and a `Range` header against a file length. Nothing may panic; an
//! accepted path is relative with no `.`-led or empty component; a served range lies
//! inside the file and is not empty.
#![no_main]

use edgeward_proto::repo_request::{checked_path, parse_range, Area, RangeRequest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let length = u64::from_le_bytes(*head);
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match parse_range(Some(text), length) {
        RangeRequest::Part(r) => {
            assert!(r.len >= 1);
            assert!(r.start.checked_add(r.len).is_some_and(|end| end <= length));
        }
        RangeRequest::Whole | RangeRequest::Unsatisfiable => {}
    }
    for area in [Area::Metadata, Area::Targets] {
        if let Ok(p) = checked_path(area, text) {
            assert!(p.is_relative());
            for c in p.components() {
                assert!(matches!(c, std::path::Component::Normal(n)
                    if !n.is_empty() && !n.to_string_lossy().starts_with('.')));
            }
        }
    }
});
