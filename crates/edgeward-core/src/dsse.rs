//! DSSE (Dead Simple Signing Envelope) v1: the pre-authentication encoding that is signed.

use alloc::{format, vec::Vec};

/// The in-toto JSON payload type, the only one model-signing uses.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// The DSSE v1 pre-authentication encoding:
/// `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let head = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    );
    let mut out = Vec::with_capacity(head.len() + payload.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(payload);
    out
}

/// The pre-authentication encoding model_signing v0.2 signed, by a bug it kept for
/// compatibility: `"DSSEV1" SP LEN(type) SP type SP LEN(body) SP repr(body)`, where
/// `repr(body)` is Python's `repr` of the payload bytes (`b'...'` with escapes). Distinct
/// from [`pae`] (its tag is `DSSEV1`), so a signature over one never verifies as the other.
pub fn pae_v0_2(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEV1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    python_bytes_repr(payload, &mut out);
    out
}

/// Appends Python's `repr()` of a `bytes` object.
fn python_bytes_repr(bytes: &[u8], out: &mut Vec<u8>) {
    let quote = if bytes.contains(&b'\'') && !bytes.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    out.push(b'b');
    out.push(quote);
    for &b in bytes {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ if b == quote => {
                out.push(b'\\');
                out.push(b);
            }
            0x20..=0x7e => out.push(b),
            _ => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
        }
    }
    out.push(quote);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn legacy_pae_is_pythons_repr() {
        // What `f"{b}"` gives in Python for these bytes.
        assert_eq!(
            pae_v0_2("t", b"a'\n\\\x00\xff\"q"),
            br#"DSSEV1 1 t 8 b'a\'\n\\\x00\xff"q'"#.to_vec()
        );
        assert_eq!(pae_v0_2("t", b"it's"), br#"DSSEV1 1 t 4 b"it's""#.to_vec());
    }
}
