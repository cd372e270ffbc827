//! Digests that TUF metadata names, and checking bytes against them.
//!
//! `sha256` and `sha512` are supported (aws-lc-rs, SHA-NI where the CPU has it). Every
//! hash a piece of metadata lists must match: an algorithm we cannot compute is a
//! failure, never skipped, so a repository cannot slip a file past the client by naming
//! only a hash the client ignores.

use aws_lc_rs::digest;

use super::metadata::Hashes;

/// Why bytes do not match their signed description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// The length differs from the signed length.
    #[error("is {got} bytes long, the signed length is {expected}")]
    Length {
        /// Signed length.
        expected: u64,
        /// Actual length.
        got: u64,
    },
    /// A digest differs.
    #[error("{algorithm} digest {got} does not match the signed {expected}")]
    Digest {
        /// Algorithm name.
        algorithm: String,
        /// Signed digest (hex).
        expected: String,
        /// Actual digest (hex).
        got: String,
    },
    /// A listed algorithm is not one we can compute.
    #[error("hash algorithm {0:?} is not supported")]
    Unsupported(String),
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn algorithm(name: &str) -> Option<&'static digest::Algorithm> {
    match name {
        "sha256" => Some(&digest::SHA256),
        "sha512" => Some(&digest::SHA512),
        _ => None,
    }
}

/// Incremental check of a stream against signed hashes.
pub struct HashCheck {
    contexts: Vec<(String, String, digest::Context)>,
    length: u64,
}

impl HashCheck {
    /// Starts a check against `hashes`; fails at once on an unsupported algorithm.
    pub fn new(hashes: &Hashes) -> Result<Self, HashError> {
        let contexts = hashes
            .iter()
            .map(|(name, expected)| match algorithm(name) {
                Some(alg) => Ok((
                    name.clone(),
                    expected.to_ascii_lowercase(),
                    digest::Context::new(alg),
                )),
                None => Err(HashError::Unsupported(name.clone())),
            })
            .collect::<Result<_, _>>()?;
        Ok(HashCheck {
            contexts,
            length: 0,
        })
    }

    /// Feeds the next bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.length += data.len() as u64;
        for (_, _, ctx) in &mut self.contexts {
            ctx.update(data);
        }
    }

    /// Bytes fed so far.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// Ends the check: the length (when given) and every digest must match.
    pub fn finish(self, expected_length: Option<u64>) -> Result<(), HashError> {
        if let Some(expected) = expected_length {
            if expected != self.length {
                return Err(HashError::Length {
                    expected,
                    got: self.length,
                });
            }
        }
        for (algorithm, expected, ctx) in self.contexts {
            let got = hex::encode(ctx.finish());
            if got != expected {
                return Err(HashError::Digest {
                    algorithm,
                    expected,
                    got,
                });
            }
        }
        Ok(())
    }
}

/// Checks `data` against an optional length and optional hashes.
pub fn check(data: &[u8], length: Option<u64>, hashes: Option<&Hashes>) -> Result<(), HashError> {
    let mut check = match hashes {
        Some(h) => HashCheck::new(h)?,
        None => HashCheck::new(&Hashes::new())?,
    };
    check.update(data);
    check.finish(length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_hash_must_match_and_unknown_ones_fail() {
        let mut h = Hashes::new();
        h.insert("sha256".into(), hex::encode(sha256(b"abc")));
        assert_eq!(check(b"abc", Some(3), Some(&h)), Ok(()));
        assert_eq!(
            check(b"abd", Some(3), Some(&h)).unwrap_err().to_string(),
            format!(
                "sha256 digest {} does not match the signed {}",
                hex::encode(sha256(b"abd")),
                hex::encode(sha256(b"abc"))
            )
        );
        h.insert("md5".into(), "00".into());
        assert_eq!(
            check(b"abc", Some(3), Some(&h)),
            Err(HashError::Unsupported("md5".into()))
        );
        assert_eq!(
            check(b"abcd", Some(3), None),
            Err(HashError::Length {
                expected: 3,
                got: 4
            })
        );
    }
}
