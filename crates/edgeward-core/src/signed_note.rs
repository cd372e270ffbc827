//! The envelope of a signed note (c2sp.org/signed-note, Go's `golang.org/x/mod/sumdb/note`):
//! a text ending in a newline, a blank line, then signature lines
//! `— NAME BASE64(4-byte key hint ‖ signature)`, each ending in a newline. Rekor's checkpoints
//! and the audit log's checkpoints are both signed notes: this is the one parser of that
//! envelope, so both refuse the same malformed notes with the same reasons. What a signature
//! is and how a key's hint is computed stay with each user.

use alloc::vec::Vec;
use core::fmt;

use base64::{engine::general_purpose::STANDARD as B64, Engine as _};

/// Most signature lines a note may carry.
pub const MAX_NOTE_SIGNATURES: usize = 16;

/// The signature lines start with an em dash and a space.
pub const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// Why a note's envelope was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedNote(pub &'static str);

impl fmt::Display for MalformedNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature<'a> {
    /// The signer's name.
    pub name: &'a str,
    /// The 4-byte key hint.
    pub hint: [u8; 4],
    /// The signature bytes after the hint.
    pub signature: Vec<u8>,
}

/// A note split into its signed text and its signature lines (none verified yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNote<'a> {
    /// The signed text, ending in its newline.
    pub text: &'a str,
    /// The signature lines, in order.
    pub signatures: Vec<NoteSignature<'a>>,
}

/// Whether `name` may name a note's signer: not empty, no `+`, no spaces or control characters.
pub fn valid_signer_name(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('+')
        && name.chars().all(|c| !c.is_whitespace() && !c.is_control())
}

/// Checks a note's text: it ends in a newline, has no blank line and no control character
/// other than the newline.
pub fn check_text(text: &str) -> Result<(), MalformedNote> {
    if !text.ends_with('\n') {
        return Err(MalformedNote("the text does not end in a newline"));
    }
    if text.starts_with('\n') || text.contains("\n\n") {
        return Err(MalformedNote("the text has a blank line"));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(MalformedNote("the text has control characters"));
    }
    Ok(())
}

/// Splits a note of at most `max_bytes` into its text and signature lines. The text ends at
/// the last blank line (as Go's `note.Open` reads it).
pub fn split(note: &str, max_bytes: usize) -> Result<SignedNote<'_>, MalformedNote> {
    if note.len() > max_bytes {
        return Err(MalformedNote("longer than the size limit"));
    }
    let split = note.rfind("\n\n").ok_or(MalformedNote(
        "no blank line between the text and its signatures",
    ))?;
    let (text, lines) = (&note[..split + 1], &note[split + 2..]);
    check_text(text)?;
    if lines.is_empty() {
        return Err(MalformedNote("no signature lines"));
    }
    let lines = lines.strip_suffix('\n').ok_or(MalformedNote(
        "the last signature line does not end in a newline",
    ))?;
    let mut signatures = Vec::new();
    for line in lines.split('\n') {
        if signatures.len() == MAX_NOTE_SIGNATURES {
            return Err(MalformedNote("too many signature lines"));
        }
        let body = line
            .strip_prefix(SIGNATURE_PREFIX)
            .ok_or(MalformedNote("a signature line does not start with '— '"))?;
        let (name, b64) = body
            .split_once(' ')
            .ok_or(MalformedNote("a signature line has no signature"))?;
        if !valid_signer_name(name) {
            return Err(MalformedNote(
                "a signature line's name is not a valid key name",
            ));
        }
        let raw = B64
            .decode(b64)
            .map_err(|_| MalformedNote("a signature is not base64"))?;
        if raw.len() < 5 {
            return Err(MalformedNote("a signature is shorter than its key hint"));
        }
        let (hint, signature) = raw.split_at(4);
        signatures.push(NoteSignature {
            name,
            hint: [hint[0], hint[1], hint[2], hint[3]],
            signature: signature.to_vec(),
        });
    }
    Ok(SignedNote { text, signatures })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIG: &str = "AAAAAQID"; // hint 00 00 00 01, signature 02 03

    fn refused(note: &str) -> &'static str {
        split(note, 1024).expect_err("refused").0
    }

    #[test]
    fn a_note_splits_into_text_and_signatures() {
        let note = alloc::format!("origin\n5\n\n— a {SIG}\n— b {SIG}\n");
        let n = split(&note, 1024).expect("parses");
        assert_eq!(n.text, "origin\n5\n");
        assert_eq!(n.signatures.len(), 2);
        assert_eq!(n.signatures[1].name, "b");
        assert_eq!(n.signatures[0].hint, [0, 0, 0, 1]);
        assert_eq!(n.signatures[0].signature, [2, 3]);
    }

    #[test]
    fn malformed_envelopes_are_refused_with_their_reason() {
        let long = alloc::format!("{}\n\n— a {SIG}\n", "x".repeat(2000));
        assert_eq!(refused(&long), "longer than the size limit");
        assert_eq!(
            refused("text\n— a AAAAAQID\n"),
            "no blank line between the text and its signatures"
        );
        assert_eq!(
            refused("a\n\nb\n\n— a AAAAAQID\n"),
            "the text has a blank line"
        );
        assert_eq!(refused("\n\n— a AAAAAQID\n"), "the text has a blank line");
        assert_eq!(
            refused("a\tb\n\n— a AAAAAQID\n"),
            "the text has control characters"
        );
        assert_eq!(refused("text\n\n"), "no signature lines");
        assert_eq!(
            refused("text\n\n— a AAAAAQID"),
            "the last signature line does not end in a newline"
        );
        assert_eq!(
            refused("text\n\n- a AAAAAQID\n"),
            "a signature line does not start with '— '"
        );
        assert_eq!(
            refused("text\n\n— a\n"),
            "a signature line has no signature"
        );
        assert_eq!(
            refused("text\n\n— a+b AAAAAQID\n"),
            "a signature line's name is not a valid key name"
        );
        assert_eq!(refused("text\n\n— a !!!\n"), "a signature is not base64");
        assert_eq!(
            refused("text\n\n— a AAAAAQ==\n"),
            "a signature is shorter than its key hint"
        );
        let many = alloc::format!("t\n\n{}", alloc::format!("— a {SIG}\n").repeat(17));
        assert_eq!(refused(&many), "too many signature lines");
    }
}
