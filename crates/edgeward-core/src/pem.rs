//! PEM (RFC 7468) files holding one or several blocks: key files, certificate chains, CRLs.

use alloc::{string::String, vec::Vec};

use crate::{size_limits::MAX_PEM_BYTES, Error};

/// One decoded PEM block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The label after `BEGIN`, e.g. `CERTIFICATE` or `PRIVATE KEY`.
    pub label: String,
    /// The decoded DER contents.
    pub der: Vec<u8>,
}

const BEGIN: &str = "-----BEGIN ";
const END: &str = "-----END ";

/// Decodes every PEM block in `input`, in order. Text between blocks is ignored (as OpenSSL
/// does, so `openssl x509 -text` output still parses); a broken block is an error, and so is
/// input with no block at all.
pub fn parse_all(input: &[u8]) -> Result<Vec<Block>, Error> {
    if input.len() > MAX_PEM_BYTES {
        return Err(Error::malformed(
            "PEM",
            alloc::format!(
                "{} bytes exceeds the {MAX_PEM_BYTES}-byte limit",
                input.len()
            ),
        ));
    }
    let text =
        core::str::from_utf8(input).map_err(|_| Error::malformed("PEM", "not UTF-8 text"))?;
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let after = &rest[start + BEGIN.len()..];
        let label_end = after
            .find("-----")
            .ok_or_else(|| Error::malformed("PEM", "unterminated BEGIN line"))?;
        let label = &after[..label_end];
        let end_marker = alloc::format!("{END}{label}-----");
        let end_at = rest[start..]
            .find(&end_marker)
            .ok_or_else(|| Error::malformed("PEM", alloc::format!("no END line for {label}")))?;
        let block_end = start + end_at + end_marker.len();
        let (decoded_label, der) = pem_rfc7468::decode_vec(&rest.as_bytes()[start..block_end])
            .map_err(|e| Error::malformed("PEM", alloc::format!("{label} block: {e}")))?;
        blocks.push(Block {
            label: String::from(decoded_label),
            der,
        });
        rest = &rest[block_end..];
    }
    if blocks.is_empty() {
        return Err(Error::malformed("PEM", "no PEM block found"));
    }
    Ok(blocks)
}

/// Decodes the blocks of `input` that carry `label`, refusing input with none.
pub fn parse_labelled(input: &[u8], label: &str) -> Result<Vec<Vec<u8>>, Error> {
    let found: Vec<Vec<u8>> = parse_all(input)?
        .into_iter()
        .filter(|b| b.label == label)
        .map(|b| b.der)
        .collect();
    if found.is_empty() {
        return Err(Error::malformed(
            "PEM",
            alloc::format!("no {label} block found"),
        ));
    }
    Ok(found)
}

/// Encodes DER as a PEM block with 64-column lines and LF line endings (OpenSSL's layout).
pub fn encode(label: &str, der: &[u8]) -> String {
    pem_rfc7468::encode_string(label, pem_rfc7468::LineEnding::LF, der)
        .unwrap_or_else(|_| String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_chain() {
        let a = encode("CERTIFICATE", b"one");
        let b = encode("CERTIFICATE", b"two");
        let joined = alloc::format!("subject=foo\n{a}junk\n{b}");
        let blocks = parse_labelled(joined.as_bytes(), "CERTIFICATE").unwrap();
        assert_eq!(blocks, [b"one".to_vec(), b"two".to_vec()]);
    }

    #[test]
    fn broken_inputs_are_errors() {
        for bad in [
            &b""[..],
            b"-----BEGIN X-----\nAAAA\n",
            b"-----BEGIN X",
            b"-----BEGIN X-----\n!!!!\n-----END X-----\n",
            b"\xff\xfe",
        ] {
            assert!(parse_all(bad).is_err(), "{bad:?}");
        }
    }
}
