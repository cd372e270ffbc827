//! The payload: a STREAM (Hoang–Reyhanitabar–Rogaway–Vizár) of AES-256-GCM chunks, as in
//! age. Chunk `i` is sealed with nonce `i` (11 bytes, big-endian) followed by a last-chunk
//! flag byte, and with the SHA-256 of the header's fixed part as associated data; the key
//! is derived from the file key, the payload salt and that same digest. So a chunk cannot
//! move, repeat, vanish or be cut off, the stream cannot end early, and no chunk decrypts
//! under another header's parameters.
//!
//! Chunks are independent given their index, so both directions run on every core. When a
//! chunk fails, a diagnosis pass (failure path only) tells truncation, dropped, duplicated,
//! reordered and modified chunks apart. Plaintext is only ever returned whole and
//! authenticated; on any failure the buffer is zeroized and dropped.

use hkdf::Hkdf;
use rayon::prelude::*;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{
    aead::{self, TAG_LEN},
    container::FixedHeader,
    plaintext::Plaintext,
    CryptError,
};

/// HKDF info of the payload key.
const PAYLOAD_INFO: &[u8] = b"edgeward/model-crypt/v1 payload";
/// At most this many chunk indices (nearest first) are tried when diagnosing a failed chunk.
const MAX_DIAGNOSIS_TRIES: u64 = 4096;

/// The payload key and the parameters every chunk is bound to.
pub struct StreamKey {
    key: aead::Key,
    aad: [u8; 32],
    chunk_size: usize,
    chunks: u64,
    plaintext_len: u64,
}

impl StreamKey {
    /// Derives the payload key from the file key and the header's fixed part.
    pub fn derive(file_key: &[u8; 32], fixed: &FixedHeader) -> Result<Self, CryptError> {
        let aad = fixed.digest();
        let mut info = PAYLOAD_INFO.to_vec();
        info.extend_from_slice(&aad);
        let mut okm = Zeroizing::new([0u8; 32]);
        Hkdf::<Sha256>::new(Some(&fixed.salt), file_key)
            .expand(&info, okm.as_mut())
            .map_err(|_| CryptError::Backend("HKDF expansion failed".into()))?;
        let chunk_size = usize::try_from(fixed.chunk_size)
            .map_err(|_| CryptError::InvalidArgument("chunk size too large".into()))?;
        Ok(StreamKey {
            key: aead::Key::new(okm.as_ref())?,
            aad,
            chunk_size,
            chunks: fixed.chunk_count(),
            plaintext_len: fixed.plaintext_len,
        })
    }

    fn stride(&self) -> usize {
        self.chunk_size + TAG_LEN
    }

    /// Encrypts `plaintext` (whose length the header declared) into the payload.
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>, CryptError> {
        if plaintext.len() as u64 != self.plaintext_len {
            return Err(CryptError::InvalidArgument(format!(
                "plaintext is {} bytes, the header declares {}",
                plaintext.len(),
                self.plaintext_len
            )));
        }
        let payload_len = usize::try_from(self.plaintext_len + self.chunks * TAG_LEN as u64)
            .map_err(|_| CryptError::InvalidArgument("plaintext too large".into()))?;
        let mut out = vec![0u8; payload_len];
        let last = self.chunks - 1;
        out.par_chunks_mut(self.stride())
            .enumerate()
            .try_for_each(|(i, piece)| {
                let start = i * self.chunk_size;
                let end = plaintext.len().min(start + self.chunk_size);
                let (body, tag_out) = piece.split_at_mut(end - start);
                body.copy_from_slice(&plaintext[start..end]);
                let tag =
                    self.key
                        .seal_in_place(nonce(i as u64, i as u64 == last), &self.aad, body)?;
                tag_out.copy_from_slice(&tag);
                Ok::<(), CryptError>(())
            })?;
        Ok(out)
    }

    /// Decrypts and authenticates the whole payload, or says precisely what is wrong with
    /// it. Nothing is returned unless every chunk authenticated in its place.
    pub fn decrypt(&self, payload: &[u8]) -> Result<Plaintext, CryptError> {
        let expected = self.plaintext_len + self.chunks * TAG_LEN as u64;
        if payload.len() as u64 != expected {
            return Err(self.diagnose_length(payload, expected));
        }
        let len = usize::try_from(self.plaintext_len)
            .map_err(|_| CryptError::InvalidArgument("plaintext too large".into()))?;
        let mut out = Plaintext::zeroed(len);
        let last = self.chunks - 1;
        let failed = out
            .as_mut_slice()
            .par_chunks_mut(self.chunk_size)
            .enumerate()
            .filter_map(|(i, body)| {
                let start = i * self.stride();
                let piece = &payload[start..start + body.len() + TAG_LEN];
                let (ct, tag) = piece.split_at(body.len());
                let ok = self
                    .key
                    .open_to(nonce(i as u64, i as u64 == last), &self.aad, ct, tag, body)
                    .is_ok();
                (!ok).then_some(i as u64)
            })
            .min();
        // An empty plaintext has one empty chunk that the loop above never visits.
        let failed = if len == 0 && !self.opens_at(payload, 0) {
            Some(0)
        } else {
            failed
        };
        match failed {
            None => Ok(out),
            Some(index) => Err(self.diagnose_chunk(payload, index)),
        }
    }

    /// Whether `piece` authenticates as chunk `index` (with the right last flag).
    fn opens_at(&self, piece: &[u8], index: u64) -> bool {
        let Some(split) = piece.len().checked_sub(TAG_LEN) else {
            return false;
        };
        let (ct, tag) = piece.split_at(split);
        let mut scratch = Zeroizing::new(vec![0u8; ct.len()]);
        self.key
            .open_to(
                nonce(index, index == self.chunks - 1),
                &self.aad,
                ct,
                tag,
                &mut scratch,
            )
            .is_ok()
    }

    /// Which chunk index `piece`, found at position `pos`, really is: the indices nearest
    /// `pos` are tried first, at most [`MAX_DIAGNOSIS_TRIES`] of them.
    fn identify(&self, piece: &[u8], pos: u64) -> Option<u64> {
        (1..=MAX_DIAGNOSIS_TRIES / 2)
            .flat_map(|d| [pos.checked_sub(d), pos.checked_add(d)])
            .flatten()
            .filter(|&j| j < self.chunks)
            .find(|&j| self.opens_at(piece, j))
    }

    /// The piece of `payload` where chunk `pos` should be, as long as that chunk should be
    /// (cut short at the end of the payload); `None` past the end.
    fn piece_at<'p>(&self, payload: &'p [u8], pos: u64) -> Option<&'p [u8]> {
        let start = pos.checked_mul(self.stride() as u64)?;
        let len = if pos + 1 == self.chunks {
            self.plaintext_len - pos * self.chunk_size as u64 + TAG_LEN as u64
        } else {
            self.stride() as u64
        };
        let start = usize::try_from(start).ok()?;
        if start >= payload.len() {
            return None;
        }
        let end = payload
            .len()
            .min(start.saturating_add(usize::try_from(len).ok()?));
        payload.get(start..end)
    }

    /// The error for a chunk that failed in a payload of the right length.
    fn diagnose_chunk(&self, payload: &[u8], index: u64) -> CryptError {
        let Some(piece) = self.piece_at(payload, index) else {
            return CryptError::ChunkCorrupted { index };
        };
        match self.identify(piece, index) {
            Some(j) if self.piece_at(payload, j) == Some(piece) => CryptError::ChunkDuplicated {
                position: index,
                copy_of: j,
            },
            Some(j) => CryptError::ChunkReordered {
                position: index,
                belongs_at: j,
            },
            None => CryptError::ChunkCorrupted { index },
        }
    }

    /// The error for a payload whose length differs from the header's: walk it in order
    /// and name the first chunk that is not where it should be.
    fn diagnose_length(&self, payload: &[u8], expected: u64) -> CryptError {
        let found = payload.len() as u64;
        let mut pos = 0u64;
        while let Some(piece) = self.piece_at(payload, pos) {
            if pos >= self.chunks {
                break;
            }
            if !self.opens_at(piece, pos) {
                let is_tail = pos * self.stride() as u64 + piece.len() as u64 >= found;
                return match self.identify(piece, pos) {
                    Some(j) if j > pos => CryptError::ChunkDropped {
                        index: pos,
                        found: j,
                    },
                    Some(j) if j < pos => CryptError::ChunkDuplicated {
                        position: pos,
                        copy_of: j,
                    },
                    _ if is_tail && found < expected => CryptError::Truncated { expected, found },
                    _ => CryptError::ChunkCorrupted { index: pos },
                };
            }
            pos += 1;
        }
        if found < expected {
            CryptError::Truncated { expected, found }
        } else {
            CryptError::TrailingData {
                extra: found - expected,
            }
        }
    }
}

/// The STREAM nonce: 11-byte big-endian chunk counter, then 1 for the final chunk else 0.
fn nonce(index: u64, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypt::container::{FixedHeader, MIN_CHUNK_SIZE, SALT_LEN};

    fn setup(len: u64) -> (StreamKey, Vec<u8>, Vec<u8>) {
        let fixed = FixedHeader {
            chunk_size: MIN_CHUNK_SIZE,
            plaintext_len: len,
            salt: [3; SALT_LEN],
        };
        let key = StreamKey::derive(&[7; 32], &fixed).unwrap();
        let pt: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let ct = key.encrypt(&pt).unwrap();
        (key, pt, ct)
    }

    const STRIDE: usize = MIN_CHUNK_SIZE as usize + TAG_LEN;

    #[test]
    fn roundtrips_at_boundaries() {
        for len in [0u64, 1, 4095, 4096, 4097, 3 * 4096, 10_000] {
            let (key, pt, ct) = setup(len);
            assert_eq!(&key.decrypt(&ct).unwrap()[..], &pt[..], "len {len}");
        }
    }

    #[test]
    fn truncation_at_a_chunk_boundary_and_inside_a_chunk() {
        let (key, _, ct) = setup(10_000);
        assert!(matches!(
            key.decrypt(&ct[..2 * STRIDE]),
            Err(CryptError::Truncated { .. })
        ));
        assert!(matches!(
            key.decrypt(&ct[..ct.len() - 1]),
            Err(CryptError::Truncated { .. })
        ));
        assert!(matches!(
            key.decrypt(&ct[..100]),
            Err(CryptError::Truncated { .. })
        ));
    }

    #[test]
    fn dropped_duplicated_reordered_modified_extended() {
        let (key, _, ct) = setup(5 * 4096 + 10);
        let chunk = |i: usize| ct[i * STRIDE..(i + 1) * STRIDE].to_vec();
        let mut dropped = ct[..STRIDE].to_vec();
        dropped.extend_from_slice(&ct[2 * STRIDE..]);
        assert!(matches!(
            key.decrypt(&dropped),
            Err(CryptError::ChunkDropped { index: 1, found: 2 })
        ));
        let mut duplicated = ct[..2 * STRIDE].to_vec();
        duplicated.extend_from_slice(&chunk(1));
        duplicated.extend_from_slice(&ct[2 * STRIDE..]);
        assert!(matches!(
            key.decrypt(&duplicated),
            Err(CryptError::ChunkDuplicated {
                position: 2,
                copy_of: 1
            })
        ));
        let mut swapped = ct.clone();
        swapped[STRIDE..2 * STRIDE].copy_from_slice(&chunk(3));
        swapped[3 * STRIDE..4 * STRIDE].copy_from_slice(&chunk(1));
        assert!(matches!(
            key.decrypt(&swapped),
            Err(CryptError::ChunkReordered {
                position: 1,
                belongs_at: 3
            })
        ));
        let mut overwritten = ct.clone();
        overwritten[4 * STRIDE..5 * STRIDE].copy_from_slice(&chunk(0));
        assert!(matches!(
            key.decrypt(&overwritten),
            Err(CryptError::ChunkDuplicated {
                position: 4,
                copy_of: 0
            })
        ));
        let mut flipped = ct.clone();
        flipped[3 * STRIDE + 5] ^= 0x40;
        assert!(matches!(
            key.decrypt(&flipped),
            Err(CryptError::ChunkCorrupted { index: 3 })
        ));
        let mut extended = ct.clone();
        extended.extend_from_slice(b"more");
        assert!(matches!(
            key.decrypt(&extended),
            Err(CryptError::TrailingData { extra: 4 })
        ));
    }

    #[test]
    fn a_header_declaring_a_shorter_length_does_not_open_the_prefix() {
        // Cut exactly after chunk 0 of a two-chunk stream and declare the matching length:
        // the key and associated data follow the header, and chunk 0 was sealed non-final.
        let (_, _, ct) = setup(4096 + 10);
        let short = FixedHeader {
            chunk_size: MIN_CHUNK_SIZE,
            plaintext_len: 4096,
            salt: [3; SALT_LEN],
        };
        let key = StreamKey::derive(&[7; 32], &short).unwrap();
        assert!(key.decrypt(&ct[..STRIDE]).is_err());
    }
}
