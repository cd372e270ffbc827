//! C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys: a text, a blank line, and
//! signature lines `— <key name> <base64(key hash || signature)>`. Keys are written as Go's
//! `golang.org/x/mod/sumdb/note` writes them: verifier `<name>+<hex key hash>+<base64(0x01 ||
//! public key)>`, signer `PRIVATE+KEY+<name>+<hex key hash>+<base64(0x01 || seed)>`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use edgeward_core::signed_note::{
    self, check_text, valid_signer_name, MalformedNote, SIGNATURE_PREFIX,
};
use sha2::{Digest, Sha256};

/// Longest note accepted (a checkpoint is a few hundred bytes).
pub const MAX_NOTE_BYTES: usize = 64 * 1024;

const ALG_ED25519: u8 = 0x01;

/// Why a key or a note was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// A key string is malformed.
    #[error("malformed {0} key: {1}")]
    Key(&'static str, &'static str),
    /// The note is malformed.
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    /// No signature line is by the verifier's key.
    #[error("the note has no signature by {0}")]
    NoSignature(String),
    /// The verifier's signature does not verify.
    #[error("the signature by {0} does not verify: the note was altered or signed by another key")]
    BadSignature(String),
}

/// The 4-byte key hash: SHA-256(name || "\n" || 0x01 || public key)[..4].
fn key_hash(name: &str, public: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(public.as_bytes());
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// A key that signs notes.
pub struct NoteSigner {
    name: String,
    key: SigningKey,
    hash: [u8; 4],
}

impl NoteSigner {
    /// A new random key named `name` (for a log, its origin).
    pub fn generate(name: &str) -> Result<NoteSigner, NoteError> {
        if !valid_signer_name(name) {
            return Err(NoteError::Key(
                "signer",
                "the name is empty or has '+' or spaces",
            ));
        }
        let key = SigningKey::generate(&mut rand_core::OsRng);
        Ok(NoteSigner {
            name: name.to_string(),
            hash: key_hash(name, &key.verifying_key()),
            key,
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<hash>+<base64>`.
    pub fn parse(text: &str) -> Result<NoteSigner, NoteError> {
        let bad = |why| NoteError::Key("signer", why);
        let rest = text
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| bad("no PRIVATE+KEY+ prefix"))?;
        let (name, hash, key) =
            split_key(rest).ok_or_else(|| bad("expected <name>+<hash>+<key>"))?;
        let raw = B64.decode(key).map_err(|_| bad("the key is not base64"))?;
        if raw.len() != 33 || raw[0] != ALG_ED25519 {
            return Err(bad("not an Ed25519 key"));
        }
        let seed: [u8; 32] = raw[1..].try_into().map_err(|_| bad("not an Ed25519 key"))?;
        let key = SigningKey::from_bytes(&seed);
        let signer = NoteSigner {
            name: name.to_string(),
            hash: key_hash(name, &key.verifying_key()),
            key,
        };
        if hex4(&signer.hash) != hash {
            return Err(bad("the key hash does not match the key"));
        }
        Ok(signer)
    }

    /// The key as `PRIVATE+KEY+<name>+<hash>+<base64>` (a secret: store it 0600).
    pub fn to_private_string(&self) -> String {
        let mut raw = vec![ALG_ED25519];
        raw.extend_from_slice(&self.key.to_bytes());
        format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            hex4(&self.hash),
            B64.encode(raw)
        )
    }

    /// The matching verifier key.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key: self.key.verifying_key(),
            hash: self.hash,
        }
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Signs `text` (which must end in a newline) and returns the signed note.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        check_text(text).map_err(malformed)?;
        let sig = self.key.sign(text.as_bytes());
        let mut blob = self.hash.to_vec();
        blob.extend_from_slice(&sig.to_bytes());
        Ok(format!(
            "{text}\n{SIGNATURE_PREFIX}{} {}\n",
            self.name,
            B64.encode(blob)
        ))
    }
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NoteSigner({}+{})", self.name, hex4(&self.hash))
    }
}

/// A key that verifies notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key: VerifyingKey,
    hash: [u8; 4],
}

impl NoteVerifier {
    /// Parses `<name>+<hash>+<base64(0x01 || key)>`.
    pub fn parse(text: &str) -> Result<NoteVerifier, NoteError> {
        let bad = |why| NoteError::Key("verifier", why);
        let (name, hash, key) =
            split_key(text.trim()).ok_or_else(|| bad("expected <name>+<hash>+<key>"))?;
        let raw = B64.decode(key).map_err(|_| bad("the key is not base64"))?;
        if raw.len() != 33 || raw[0] != ALG_ED25519 {
            return Err(bad("not an Ed25519 key"));
        }
        let bytes: [u8; 32] = raw[1..].try_into().map_err(|_| bad("not an Ed25519 key"))?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| bad("not a valid Ed25519 point"))?;
        let verifier = NoteVerifier {
            name: name.to_string(),
            hash: key_hash(name, &key),
            key,
        };
        if hex4(&verifier.hash) != hash {
            return Err(bad("the key hash does not match the key"));
        }
        Ok(verifier)
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Opens a signed note: checks the signature by this key and returns the text.
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        let note = signed_note::split(note, MAX_NOTE_BYTES).map_err(malformed)?;
        let mut found = false;
        for line in note.signatures {
            if line.name != self.name || line.hint != self.hash {
                continue;
            }
            found = true;
            let sig = ed25519_dalek::Signature::from_slice(&line.signature)
                .map_err(|_| NoteError::BadSignature(self.name.clone()))?;
            if self.key.verify_strict(note.text.as_bytes(), &sig).is_ok() {
                return Ok(note.text);
            }
        }
        Err(if found {
            NoteError::BadSignature(self.name.clone())
        } else {
            NoteError::NoSignature(self.name.clone())
        })
    }
}

impl std::fmt::Display for NoteVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut raw = vec![ALG_ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{}+{}", self.name, hex4(&self.hash), B64.encode(raw))
    }
}

/// Splits `<name>+<8 hex>+<base64>` (the base64 may itself contain '+').
fn split_key(s: &str) -> Option<(&str, &str, &str)> {
    let (name, rest) = s.split_once('+')?;
    let (hash, key) = rest.split_once('+')?;
    (valid_signer_name(name) && hash.len() == 8 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some((name, hash, key))
}

fn hex4(h: &[u8; 4]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

fn malformed(e: MalformedNote) -> NoteError {
    NoteError::Malformed(e.0)
}
