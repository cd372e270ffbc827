//! The container header: one bounded, total parser and its serializer.
//!
//! Layout (integers big-endian; full description in `docs/encrypted-models.md`):
//!
//! ```text
//! fixed part (44 bytes, never changed by rewrap; bound into every payload chunk)
//!   0  8  magic "EWMODEL\0"
//!   8  1  format version (2; version 1 is read, see below)
//!   9  1  cipher (1 = STREAM of AES-256-GCM chunks)
//!  10  2  HPKE KEM id (0x0010, DHKEM(P-256, HKDF-SHA256))
//!  12  2  HPKE KDF id (0x0001, HKDF-SHA256)
//!  14  2  HPKE AEAD id (0x0002, AES-256-GCM)
//!  16  4  chunk size (plaintext bytes per chunk)
//!  20  8  plaintext length
//!  28 16  payload salt (random)
//! recipients
//!  44  2  recipient count n (1..=MAX_RECIPIENTS)
//!      n × 146 bytes: type (1 = hpke-p256) | recipient id (32, the key id: SHA-256 of the
//!                     public key's PEM text, the model-signing hint) |
//!                     enc (65, uncompressed P-256 point) | wrapped file key (48)
//! header MAC (32): HMAC-SHA256 over every byte before it, under a key derived from the
//!                  file key
//! ```
//!
//! Version 1 differs only in the recipient id, SHA-256 of the SPKI DER. Version 2 uses the
//! hint so that a recipient shows the same key id as every other Edgeward message
//! (`PublicKey::fingerprint`). Files of version 1 are read and rewrapped as version 1: the
//! version byte is in the fixed part, which is bound into every payload chunk.

use sha2::{Digest, Sha256};

use super::CryptError;

/// The first eight bytes of every container.
pub const MAGIC: [u8; 8] = *b"EWMODEL\0";
/// The format version this code writes.
pub const VERSION: u8 = 2;
/// The first format version, still read: recipient ids are SHA-256 of the SPKI DER.
pub const VERSION_SPKI_IDS: u8 = 1;
/// Cipher code of the STREAM of AES-256-GCM chunks.
pub const CIPHER_AES256GCM_STREAM: u8 = 1;
/// HPKE KEM id of DHKEM(P-256, HKDF-SHA256) (RFC 9180 §7.1).
pub const KEM_P256_HKDF_SHA256: u16 = 0x0010;
/// HPKE KDF id of HKDF-SHA256.
pub const KDF_HKDF_SHA256: u16 = 0x0001;
/// HPKE AEAD id of AES-256-GCM.
pub const AEAD_AES_256_GCM: u16 = 0x0002;
/// Recipient entry type: the file key sealed with HPKE base mode to a P-256 key.
pub const RECIPIENT_HPKE_P256: u8 = 1;

/// Length of the fixed part of the header.
pub const FIXED_LEN: usize = 44;
/// Length of one recipient entry.
pub const RECIPIENT_LEN: usize = 1 + 32 + ENC_LEN + WRAPPED_KEY_LEN;
/// Length of an HPKE encapsulated key (an uncompressed SEC1 P-256 point).
pub const ENC_LEN: usize = 65;
/// Length of the wrapped file key (32-byte key and 16-byte tag).
pub const WRAPPED_KEY_LEN: usize = 48;
/// Length of the header MAC.
pub const MAC_LEN: usize = 32;
/// Length of the random payload salt.
pub const SALT_LEN: usize = 16;
/// Most recipients one container may list (bounds the header at about 150 KB).
pub const MAX_RECIPIENTS: usize = 1024;
/// Smallest chunk size accepted.
pub const MIN_CHUNK_SIZE: u32 = 4 * 1024;
/// Largest chunk size accepted (bounds the memory one chunk needs).
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;
/// Edgeward's default chunk size.
pub const DEFAULT_CHUNK_SIZE: u32 = 64 * 1024;
/// Largest plaintext a container may declare (1 TiB).
pub const MAX_PLAINTEXT_LEN: u64 = 1 << 40;
/// Longest possible header: enough to read from a file before parsing it.
pub const MAX_HEADER_LEN: usize = FIXED_LEN + 2 + MAX_RECIPIENTS * RECIPIENT_LEN + MAC_LEN;
/// Length of the AES-GCM tag ending every chunk.
pub const TAG_LEN: usize = 16;

/// One recipient: who can unwrap the file key, and the wrap itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    /// The recipient's key id: SHA-256 of its PEM public key (version 2) or of its
    /// SubjectPublicKeyInfo DER (version 1).
    pub id: [u8; 32],
    /// The HPKE encapsulated key.
    pub enc: [u8; ENC_LEN],
    /// The file key sealed with HPKE (ciphertext and tag).
    pub wrapped_key: [u8; WRAPPED_KEY_LEN],
}

impl Recipient {
    /// The short fingerprint used in messages: the first 8 bytes of the id, hex (in a
    /// version 2 container the same as `edgeward_core::keys::PublicKey::fingerprint`).
    pub fn fingerprint(&self) -> String {
        hex::encode(&self.id[..8])
    }
}

/// The fields of the header that rewrap never changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FixedHeader {
    /// Format version ([`VERSION`] or [`VERSION_SPKI_IDS`]).
    pub version: u8,
    /// Plaintext bytes per chunk.
    pub chunk_size: u32,
    /// Total plaintext length.
    pub plaintext_len: u64,
    /// Random salt of the payload key derivation.
    pub salt: [u8; SALT_LEN],
}

impl FixedHeader {
    /// The 44 bytes of the fixed part.
    pub fn encode(&self) -> [u8; FIXED_LEN] {
        let mut out = [0u8; FIXED_LEN];
        out[0..8].copy_from_slice(&MAGIC);
        out[8] = self.version;
        out[9] = CIPHER_AES256GCM_STREAM;
        out[10..12].copy_from_slice(&KEM_P256_HKDF_SHA256.to_be_bytes());
        out[12..14].copy_from_slice(&KDF_HKDF_SHA256.to_be_bytes());
        out[14..16].copy_from_slice(&AEAD_AES_256_GCM.to_be_bytes());
        out[16..20].copy_from_slice(&self.chunk_size.to_be_bytes());
        out[20..28].copy_from_slice(&self.plaintext_len.to_be_bytes());
        out[28..44].copy_from_slice(&self.salt);
        out
    }

    /// SHA-256 of the fixed part: the associated data of every payload chunk.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.encode()).into()
    }

    /// Number of payload chunks (an empty plaintext still has one, empty, final chunk).
    pub fn chunk_count(&self) -> u64 {
        self.plaintext_len
            .div_ceil(u64::from(self.chunk_size))
            .max(1)
    }

    /// Exact payload length: the plaintext plus one tag per chunk.
    pub fn payload_len(&self) -> u64 {
        // Bounded by MAX_PLAINTEXT_LEN and MIN_CHUNK_SIZE, so this cannot overflow.
        self.plaintext_len + self.chunk_count() * TAG_LEN as u64
    }
}

/// A parsed header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The fields rewrap keeps.
    pub fixed: FixedHeader,
    /// Who the file key is wrapped to, in file order.
    pub recipients: Vec<Recipient>,
    /// The header MAC as read (checked only once the file key is known).
    pub mac: [u8; MAC_LEN],
}

impl Header {
    /// Length of the encoded header.
    pub fn encoded_len(&self) -> usize {
        FIXED_LEN + 2 + self.recipients.len() * RECIPIENT_LEN + MAC_LEN
    }

    /// Every header byte the MAC covers (all but the MAC itself).
    pub fn authenticated_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(&self.fixed.encode());
        // The recipient count is bounded by MAX_RECIPIENTS when built or parsed.
        out.extend_from_slice(&(self.recipients.len() as u16).to_be_bytes());
        for r in &self.recipients {
            out.push(RECIPIENT_HPKE_P256);
            out.extend_from_slice(&r.id);
            out.extend_from_slice(&r.enc);
            out.extend_from_slice(&r.wrapped_key);
        }
        out
    }

    /// The encoded header, MAC included.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.authenticated_bytes();
        out.extend_from_slice(&self.mac);
        out
    }

    /// Parses the header at the start of `bytes`; returns it and its length (the payload
    /// starts there). Checks structure and bounds only: the MAC needs the file key.
    pub fn parse(bytes: &[u8]) -> Result<(Header, usize), CryptError> {
        if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
            return Err(CryptError::NotAContainer);
        }
        let mut r = Reader { bytes, pos: 0 };
        r.take::<8>("magic")?;
        let [version] = r.take::<1>("version")?;
        if version != VERSION && version != VERSION_SPKI_IDS {
            return Err(CryptError::Unsupported(format!(
                "format version {version} (this build reads versions {VERSION_SPKI_IDS} and {VERSION})"
            )));
        }
        let [cipher] = r.take::<1>("cipher")?;
        if cipher != CIPHER_AES256GCM_STREAM {
            return Err(CryptError::Unsupported(format!("cipher code {cipher}")));
        }
        let kem = u16::from_be_bytes(r.take("HPKE KEM id")?);
        let kdf = u16::from_be_bytes(r.take("HPKE KDF id")?);
        let aead = u16::from_be_bytes(r.take("HPKE AEAD id")?);
        if (kem, kdf, aead) != (KEM_P256_HKDF_SHA256, KDF_HKDF_SHA256, AEAD_AES_256_GCM) {
            return Err(CryptError::Unsupported(format!(
                "HPKE suite kem {kem:#06x}, kdf {kdf:#06x}, aead {aead:#06x}"
            )));
        }
        let chunk_size = u32::from_be_bytes(r.take("chunk size")?);
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
            return Err(CryptError::MalformedHeader(format!(
                "chunk size {chunk_size} is outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE}"
            )));
        }
        let plaintext_len = u64::from_be_bytes(r.take("plaintext length")?);
        if plaintext_len > MAX_PLAINTEXT_LEN {
            return Err(CryptError::MalformedHeader(format!(
                "plaintext length {plaintext_len} exceeds the limit {MAX_PLAINTEXT_LEN}"
            )));
        }
        let salt = r.take::<SALT_LEN>("payload salt")?;
        let count = usize::from(u16::from_be_bytes(r.take("recipient count")?));
        if count == 0 || count > MAX_RECIPIENTS {
            return Err(CryptError::MalformedHeader(format!(
                "{count} recipients (accepted: 1..={MAX_RECIPIENTS})"
            )));
        }
        let mut recipients = Vec::with_capacity(count);
        for i in 0..count {
            let [kind] = r.take::<1>("recipient type")?;
            if kind != RECIPIENT_HPKE_P256 {
                return Err(CryptError::Unsupported(format!(
                    "recipient {i} has type {kind} (known: {RECIPIENT_HPKE_P256}, hpke-p256)"
                )));
            }
            let recipient = Recipient {
                id: r.take("recipient id")?,
                enc: r.take("recipient encapsulated key")?,
                wrapped_key: r.take("wrapped file key")?,
            };
            if recipients.iter().any(|o: &Recipient| o.id == recipient.id) {
                return Err(CryptError::MalformedHeader(format!(
                    "recipient {} is listed twice",
                    recipient.fingerprint()
                )));
            }
            recipients.push(recipient);
        }
        let mac = r.take::<MAC_LEN>("header MAC")?;
        let header = Header {
            fixed: FixedHeader {
                version,
                chunk_size,
                plaintext_len,
                salt,
            },
            recipients,
            mac,
        };
        Ok((header, r.pos))
    }
}

/// A cursor that turns running off the end into a typed error naming the field.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self, what: &str) -> Result<[u8; N], CryptError> {
        let end = self.pos.saturating_add(N);
        let slice = self.bytes.get(self.pos..end).ok_or_else(|| {
            CryptError::MalformedHeader(format!(
                "the header ends at byte {} inside the {what}",
                self.bytes.len()
            ))
        })?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        self.pos = end;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            fixed: FixedHeader {
                version: VERSION,
                chunk_size: DEFAULT_CHUNK_SIZE,
                plaintext_len: 1_000_000,
                salt: [9; SALT_LEN],
            },
            recipients: vec![
                Recipient {
                    id: [1; 32],
                    enc: [4; ENC_LEN],
                    wrapped_key: [5; WRAPPED_KEY_LEN],
                },
                Recipient {
                    id: [2; 32],
                    enc: [4; ENC_LEN],
                    wrapped_key: [6; WRAPPED_KEY_LEN],
                },
            ],
            mac: [7; MAC_LEN],
        }
    }

    #[test]
    fn roundtrip() {
        let h = sample();
        let mut bytes = h.encode();
        assert_eq!(bytes.len(), h.encoded_len());
        bytes.extend_from_slice(b"payload");
        let (parsed, len) = Header::parse(&bytes).unwrap();
        assert_eq!(parsed, h);
        assert_eq!(len, h.encoded_len());
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample().encode();
        for cut in 0..bytes.len() {
            let err = Header::parse(&bytes[..cut]).unwrap_err();
            if cut < MAGIC.len() {
                assert!(
                    matches!(err, CryptError::NotAContainer),
                    "cut at {cut}: {err}"
                );
            } else {
                let want = format!("the header ends at byte {cut} inside the ");
                assert!(
                    matches!(&err, CryptError::MalformedHeader(m) if m.starts_with(&want)),
                    "cut at {cut}: {err}"
                );
            }
        }
    }

    #[test]
    fn chunk_count_and_payload_len() {
        let mut f = sample().fixed;
        f.plaintext_len = 0;
        assert_eq!((f.chunk_count(), f.payload_len()), (1, 16));
        f.plaintext_len = u64::from(DEFAULT_CHUNK_SIZE);
        assert_eq!(f.chunk_count(), 1);
        f.plaintext_len += 1;
        assert_eq!(f.chunk_count(), 2);
    }

    #[test]
    fn refuses_duplicates_and_bad_bounds() {
        let mut h = sample();
        h.recipients[1].id = h.recipients[0].id;
        assert!(matches!(
            Header::parse(&h.encode()),
            Err(CryptError::MalformedHeader(_))
        ));
        let mut bytes = sample().encode();
        bytes[16..20].copy_from_slice(&1u32.to_be_bytes());
        assert!(matches!(
            Header::parse(&bytes),
            Err(CryptError::MalformedHeader(_))
        ));
    }
}
