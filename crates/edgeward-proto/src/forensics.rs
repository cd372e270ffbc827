//! Forensic bundles: what a device collects for an investigation, signed by its device key
//! inside the secure element, in a layout the server can check while the bundle sits on
//! disk (up to 16 MiB) without holding it in memory.
//!
//! A bundle file is one line holding a [`Signed`] header (JSON, base64 payload and
//! signature), a `\n`, then the body: the canonical JSON of the evidence (struct fields in
//! declaration order, maps sorted, no whitespace). The signature covers
//! `"edgeward-forensics-v1\n" ‖ header payload`, and the header names the body's length and
//! SHA-256, so one signature over a small header binds the whole bundle. See
//! docs/formats.md.

use serde::{Deserialize, Serialize};

use crate::{api::BodyError, command::Signed};

/// Domain separation prefix of a bundle header signature.
pub const BUNDLE_CONTEXT: &[u8] = b"edgeward-forensics-v1\n";
/// The header format version.
pub const VERSION: u32 = 1;
/// Largest header line (the signed envelope, before its `\n`).
pub const MAX_HEADER_LINE: usize = 8 * 1024;

/// What the device signs about one bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleHeader {
    /// [`VERSION`].
    pub v: u32,
    /// The device that collected it.
    pub device_id: String,
    /// The `collect_forensics` command it answers.
    pub command_id: i64,
    /// When it was collected (Unix seconds, device clock).
    pub created_at: i64,
    /// The body's length in bytes.
    pub body_bytes: u64,
    /// The body's SHA-256, hex.
    pub body_sha256: String,
}

/// A bundle's header line split from the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderLine {
    /// The signed header payload (JSON bytes) and its signature.
    pub payload: Vec<u8>,
    /// The signature over [`BUNDLE_CONTEXT`] ‖ payload.
    pub signature: Vec<u8>,
    /// The parsed header.
    pub header: BundleHeader,
    /// Where the body starts in the file (after the header line's `\n`).
    pub body_offset: usize,
}

/// Parses the header line at the start of `bytes` (only the first [`MAX_HEADER_LINE`] + 1
/// bytes need to be given). The signature is not checked here: the caller verifies it
/// with the device's key over [`BUNDLE_CONTEXT`] ‖ `payload`, then the body against the
/// header's length and digest.
pub fn parse_header(bytes: &[u8]) -> Result<HeaderLine, BodyError> {
    let window = &bytes[..bytes.len().min(MAX_HEADER_LINE + 1)];
    let end = window.iter().position(|&b| b == b'\n').ok_or_else(|| {
        BodyError(format!(
            "a forensic bundle starts with a header line of at most {MAX_HEADER_LINE} bytes"
        ))
    })?;
    let signed: Signed = serde_json::from_slice(&window[..end])
        .map_err(|e| BodyError(format!("bad forensic bundle header line: {e}")))?;
    let (payload, signature) = signed.decode()?;
    let header: BundleHeader = serde_json::from_slice(&payload)
        .map_err(|e| BodyError(format!("bad forensic bundle header: {e}")))?;
    if header.v != VERSION {
        return Err(BodyError(format!(
            "forensic bundle header version {} (expected {VERSION})",
            header.v
        )));
    }
    if header.body_sha256.len() != 64 || hex::decode(&header.body_sha256).is_err() {
        return Err(BodyError(
            "the bundle header's body_sha256 is not 64 hex digits".into(),
        ));
    }
    Ok(HeaderLine {
        payload,
        signature,
        header,
        body_offset: end + 1,
    })
}

/// Assembles a bundle file from its signed header and body.
pub fn assemble(header: &Signed, body: &[u8]) -> Vec<u8> {
    // Serializing two strings cannot fail.
    let mut out = serde_json::to_vec(header).unwrap_or_default();
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(v: u32, sha: &str) -> Vec<u8> {
        serde_json::to_vec(&BundleHeader {
            v,
            device_id: "cam".into(),
            command_id: 3,
            created_at: 1,
            body_bytes: 2,
            body_sha256: sha.into(),
        })
        .expect("json")
    }

    #[test]
    fn header_line_round_trips_and_refuses_bad_input() {
        let sha = "ab".repeat(32);
        let file = assemble(&Signed::new(&header(1, &sha), &[1, 2, 3]), b"{}");
        let h = parse_header(&file).expect("parses");
        assert_eq!(
            (h.header.command_id, h.signature, &file[h.body_offset..]),
            (3, vec![1, 2, 3], &b"{}"[..])
        );
        let e = parse_header(&assemble(&Signed::new(&header(2, &sha), &[1]), b"")).unwrap_err();
        assert_eq!(e.0, "forensic bundle header version 2 (expected 1)");
        let e = parse_header(&assemble(&Signed::new(&header(1, "zz"), &[1]), b"")).unwrap_err();
        assert_eq!(e.0, "the bundle header's body_sha256 is not 64 hex digits");
        let e = parse_header(&vec![b'{'; MAX_HEADER_LINE + 10]).unwrap_err();
        assert!(e
            .0
            .starts_with("a forensic bundle starts with a header line"));
        assert!(parse_header(b"not json\n").is_err());
    }
}
