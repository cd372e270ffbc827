//! The chunk index parser of delta updates (`custom.edgeward.chunks`) on arbitrary JSON
//! and target lengths: it must never panic, and an index it accepts covers exactly the
//! target's length with contiguous chunks and survives a round trip.
#![no_main]

use edgeward_update::delta::ChunkIndex;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (len, json) = data.split_at(8);
    let mut length = [0u8; 8];
    length.copy_from_slice(len);
    // Keep lengths in a range where indexes are small enough to build often.
    let target_length = u64::from_le_bytes(length) % (1 << 24);
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(json) else {
        return;
    };
    if let Ok(index) = ChunkIndex::from_json(&value, target_length) {
        let mut offset = 0;
        for c in &index.chunks {
            assert_eq!(c.offset, offset, "chunks must be contiguous");
            offset += u64::from(c.length);
        }
        assert_eq!(offset, target_length, "chunks must cover the target");
        let again = ChunkIndex::from_json(&index.to_json(), target_length);
        assert_eq!(again.as_ref(), Ok(&index), "round trip");
    }
});
