//! Certificate chains: `cert_policy::verify_signing_chain` of a fuzzed chain (and optionally a
//! fuzzed CRL) against the fixed trust root at a fixed time, and `cert_policy::cert_info` of every
//! certificate.
//!
//! Input: frames of a little-endian u16 length and that many bytes (see
//! `edgeward_fuzz::frames`). The first byte selects: bit 0 set, the last frame is a CRL.
#![no_main]

use edgeward_core::cert_policy::{self, Policy};
use edgeward_fuzz::{frames, roots, NOW};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut parts: Vec<Vec<u8>> = frames(rest, 9).into_iter().map(<[u8]>::to_vec).collect();
    let crls: Vec<Vec<u8>> = if flags & 1 == 1 {
        parts.pop().into_iter().collect()
    } else {
        Vec::new()
    };
    for der in &parts {
        let _ = cert_policy::cert_info(der);
    }
    let policy = if flags & 2 == 2 {
        Policy {
            max_signing_validity_secs: u64::MAX,
        }
    } else {
        Policy::default()
    };
    for at in [NOW, 0, u64::MAX / 2] {
        if let Ok(signer) = cert_policy::verify_signing_chain(&parts, roots(), &crls, at, &policy) {
            let leaf = cert_policy::cert_info(&parts[0]).expect("an endorsed leaf parses");
            assert_eq!(signer.serial, leaf.serial);
            assert!(signer.not_before <= at as i64 && at as i64 <= signer.not_after);
        }
    }
});
