//! DSSE: the pre-authentication encoding of a fuzzed payload type and payload must decode
//! back to both (PAE is injective); the payload goes through `Statement::parse`, and a
//! `Bundle` value built around the payload, a fuzzed signature and fuzzed verification
//! material (not necessarily one `Bundle::parse` would accept) must round-trip through JSON
//! when valid, and be judged by `verify_bundle` without panicking.
//!
//! Input: byte 0 = length of the payload type (0: the in-toto type), then the type; one
//! material byte (0: the trusted key's hint, 1: no hint, 2: a hint of the next byte's length
//! from the input, 3: up to 3 certificates framed as `edgeward_fuzz::frames` reads them,
//! count in the next byte); the rest is the payload, and its last 64 bytes (or fewer) the
//! signature.
#![no_main]

use edgeward_core::{
    bundle::{Bundle, Material},
    dsse::{pae, IN_TOTO_PAYLOAD_TYPE},
    statement::Statement,
    verify::{verify_bundle, Trust},
};
use edgeward_fuzz::{frames, signing_key, NOW};
use libfuzzer_sys::fuzz_target;

/// Reads `LEN SP` (decimal, no leading zeros) and then `LEN` bytes from the front of `input`.
fn take_field(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let sp = input.iter().position(|&b| b == b' ')?;
    let digits = &input[..sp];
    if digits.is_empty()
        || !digits.iter().all(u8::is_ascii_digit)
        || (digits.len() > 1 && digits[0] == b'0')
    {
        return None;
    }
    let len: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
    let rest = &input[sp + 1..];
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// Decodes `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body` strictly.
fn decode_pae(pae: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = pae.strip_prefix(b"DSSEv1 ")?;
    let (payload_type, rest) = take_field(rest)?;
    let rest = rest.strip_prefix(b" ")?;
    let (body, rest) = take_field(rest)?;
    rest.is_empty().then_some((payload_type, body))
}

/// Takes the verification material from the front of `data` (see the module comment).
fn material(data: &[u8]) -> Option<(Material, bool, &[u8])> {
    let (&kind, rest) = data.split_first()?;
    Some(match kind % 4 {
        0 => (Material::KeyHint(Some(signing_key().hint())), true, rest),
        1 => (Material::KeyHint(None), true, rest),
        2 => {
            let (&len, rest) = rest.split_first()?;
            let (hint, rest) = rest.split_at(usize::from(len).min(rest.len()));
            let hint = String::from_utf8_lossy(hint).into_owned();
            (Material::KeyHint(Some(hint)), false, rest)
        }
        _ => {
            let (&count, mut rest) = rest.split_first()?;
            let mut certs = Vec::new();
            for _ in 0..count % 4 {
                let frame = frames(rest, 1);
                let Some(cert) = frame.first() else { break };
                certs.push(cert.to_vec());
                rest = &rest[(2 + cert.len()).min(rest.len())..];
            }
            (Material::Chain(certs), false, rest)
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&type_len, rest)) = data.split_first() else {
        return;
    };
    let type_len = usize::from(type_len).min(rest.len());
    let (type_bytes, rest) = rest.split_at(type_len);
    let Ok(payload_type) = std::str::from_utf8(type_bytes) else {
        return;
    };
    let payload_type = if payload_type.is_empty() {
        IN_TOTO_PAYLOAD_TYPE
    } else {
        payload_type
    };
    let Some((material, material_is_valid, rest)) = material(rest) else {
        return;
    };
    let sig_len = rest.len().min(64);
    let (payload, signature) = rest.split_at(rest.len() - sig_len);

    let encoded = pae(payload_type, payload);
    let (t, p) = decode_pae(&encoded).expect("PAE output decodes");
    assert_eq!(t, payload_type.as_bytes());
    assert_eq!(p, payload);

    let parsed = Statement::parse(payload);
    if let Ok(s) = &parsed {
        assert_eq!(Statement::parse(&s.to_json()).as_ref(), Ok(s));
    }

    let bundle = Bundle {
        material,
        payload_type: payload_type.to_string(),
        payload: payload.to_vec(),
        signature: signature.to_vec(),
        embedded_key: None,
        tlog_entries: Vec::new(),
        rfc3161_timestamps: Vec::new(),
    };
    match Bundle::parse(bundle.to_json().as_bytes()) {
        Ok(again) => assert_eq!(again, bundle),
        Err(e) => assert!(
            payload_type != IN_TOTO_PAYLOAD_TYPE || !material_is_valid,
            "valid in-toto bundle refused: {e}"
        ),
    }
    if let Ok(v) = verify_bundle(&bundle, &Trust::PublicKey(signing_key()), NOW) {
        assert_eq!(Ok(&v.statement), parsed.as_ref());
    }
});
