//! The payload: a STREAM (Hoang–Reyhanitabar–Rogaway–Vizár) of AES-256-GCM chunks, as in
//! age. Chunk `i` is sealed with nonce `i` (11 bytes, big-endian) followed by a last-chunk
//! flag byte, and with the SHA-256 of the header's fixed part as associated data; the key
//! is derived from the file key, the payload salt and that same digest. So a chunk cannot
//! move, repeat, vanish or be cut off, the stream cannot end early, and no chunk decrypts
//! under another header's parameters.
//!
//! Chunks are independent given their index, so both directions run on every core. When a
//! chunk fails, a diagnosis pass (failure path only) tells truncation, dropped, duplicated,
//! reordered and modified chunks apart. Each chunk is read straight into its place in the
//! output buffer and opened there (no staging copy, no second buffer). In memory, plaintext
//! is only ever returned whole and authenticated; on any failure the buffer is zeroized and
//! dropped. Streamed out ([`StreamKey::decrypt_to`]), only authenticated chunks are written,
//! after the payload's length was checked, through one reused, zeroized window.

use std::io::Write;

use hkdf::Hkdf;
use rayon::prelude::*;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{
    aead::{self, TAG_LEN},
    container::FixedHeader,
    plaintext::Plaintext,
    source::PayloadSource,
    CryptError,
};

/// HKDF info of the payload key.
const PAYLOAD_INFO: &[u8] = b"edgeward/model-crypt/v1 payload";
/// Plaintext bytes one decryption task handles when the caller gives no unit.
const GROUP: usize = 1 << 20;
/// Plaintext bytes [`StreamKey::decrypt_to`] holds at a time.
pub const WINDOW: usize = 8 << 20;
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

    /// Plaintext bytes per chunk.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Decrypts and authenticates a whole payload held in memory, or says precisely what is
    /// wrong with it. Nothing is returned unless every chunk authenticated in its place.
    pub fn decrypt(&self, payload: &[u8]) -> Result<Plaintext, CryptError> {
        self.decrypt_with(&payload, self.group(), &|| (), &|_, _| ())
            .map(|(plaintext, _)| plaintext)
    }

    /// Reads, decrypts and authenticates the whole payload into one zeroizing buffer, in
    /// place: each chunk is read straight to its final position and opened there, `unit`
    /// plaintext bytes per task, on every core. Right after
    /// a chunk authenticated, while it is still in cache, its plaintext is passed to
    /// `update` with the state of its unit (made by `init`); the states are returned in
    /// unit order, with the plaintext, only when every chunk authenticated. `unit` is rounded
    /// down to a multiple of the chunk size (at least one chunk).
    pub fn decrypt_with<S: Send>(
        &self,
        src: &dyn PayloadSource,
        unit: usize,
        init: &(dyn Fn() -> S + Sync),
        update: &(dyn Fn(&mut S, &[u8]) + Sync),
    ) -> Result<(Plaintext, Vec<S>), CryptError> {
        self.check_len(src)?;
        let len = usize::try_from(self.plaintext_len)
            .map_err(|_| CryptError::InvalidArgument("plaintext too large".into()))?;
        let mut out = Plaintext::zeroed(len);
        let states = self.open_range(src, 0, out.as_mut_slice(), unit, init, update)?;
        Ok((out, states))
    }

    /// Decrypts the payload to `out` with bounded memory: a window of [`WINDOW`] bytes is
    /// read and opened in place on every core, written, and reused. The payload's length
    /// is checked first, so truncation or extension fails before anything is written, and
    /// only authenticated chunks are ever written; but a chunk modified in the middle is
    /// found only when its window is reached, after the windows before it were written.
    /// Returns the number of bytes written.
    pub fn decrypt_to(
        &self,
        src: &dyn PayloadSource,
        out: &mut dyn Write,
    ) -> Result<u64, CryptError> {
        self.check_len(src)?;
        let window = (WINDOW / self.chunk_size).max(1) * self.chunk_size;
        let window = usize::try_from(self.plaintext_len).map_or(window, |len| len.min(window));
        let mut buf = Zeroizing::new(vec![0u8; window]);
        let written = |source| CryptError::Io {
            what: "writing the plaintext",
            source,
        };
        let mut first = 0u64;
        let mut done = 0u64;
        while done < self.plaintext_len {
            // At most `window` bytes, which is a usize.
            let n = (self.plaintext_len - done).min(window as u64) as usize;
            let part = &mut buf[..n];
            self.open_range(src, first, part, self.group(), &|| (), &|_, _| ())?;
            out.write_all(part).map_err(written)?;
            done += n as u64;
            first += (n / self.chunk_size) as u64;
        }
        if self.plaintext_len == 0 {
            self.open_range(src, 0, &mut [], self.group(), &|| (), &|_, _| ())?;
        }
        out.flush().map_err(written)?;
        Ok(done)
    }

    /// Plaintext bytes per decryption task when the caller has no unit of its own.
    fn group(&self) -> usize {
        (GROUP / self.chunk_size).max(1) * self.chunk_size
    }

    /// Fails with the precise diagnosis unless the payload has the header's length.
    fn check_len(&self, src: &dyn PayloadSource) -> Result<(), CryptError> {
        let expected = self.plaintext_len + self.chunks * TAG_LEN as u64;
        if src.len() != expected {
            return Err(self.diagnose_length(src, expected));
        }
        Ok(())
    }

    /// Reads and opens the chunks from index `first` into `out` (whole chunks, the last
    /// possibly the stream's short final one), `unit` bytes per task. An empty `out` stands
    /// for the single empty chunk of an empty plaintext.
    fn open_range<S: Send>(
        &self,
        src: &dyn PayloadSource,
        first: u64,
        out: &mut [u8],
        unit: usize,
        init: &(dyn Fn() -> S + Sync),
        update: &(dyn Fn(&mut S, &[u8]) + Sync),
    ) -> Result<Vec<S>, CryptError> {
        if out.is_empty() {
            let mut tag = [0u8; TAG_LEN];
            src.read_at(0, &mut tag).map_err(read_failed)?;
            if !self.opens_at(&tag, 0) {
                return Err(self.diagnose_chunk(src, 0));
            }
            return Ok(Vec::new());
        }
        let unit = (unit / self.chunk_size).max(1) * self.chunk_size;
        let chunks_per_unit = (unit / self.chunk_size) as u64;
        let results: Vec<Result<S, TaskFailure>> = out
            .par_chunks_mut(unit)
            .enumerate()
            .map(|(u, piece)| {
                let mut state = init();
                self.open_piece(src, first + u as u64 * chunks_per_unit, piece, |body| {
                    update(&mut state, body)
                })?;
                Ok(state)
            })
            .collect();
        let mut states = Vec::with_capacity(results.len());
        let mut io_error = None;
        let mut failed: Option<u64> = None;
        for result in results {
            match result {
                Ok(state) => states.push(state),
                Err(TaskFailure::Chunk(i)) => failed = Some(failed.map_or(i, |f| f.min(i))),
                Err(TaskFailure::Io(e)) => io_error = io_error.or(Some(e)),
            }
        }
        match (failed, io_error) {
            (Some(index), _) => Err(self.diagnose_chunk(src, index)),
            (None, Some(e)) => Err(read_failed(e)),
            (None, None) => Ok(states),
        }
    }

    /// Reads and opens, in order, the chunks from index `first` that fill `piece`, passing
    /// each authenticated body to `done`. A chunk's tag is read with its body into the
    /// start of the next chunk's place (overwritten next), except for the piece's last.
    fn open_piece(
        &self,
        src: &dyn PayloadSource,
        first: u64,
        piece: &mut [u8],
        mut done: impl FnMut(&[u8]),
    ) -> Result<(), TaskFailure> {
        let last = self.chunks - 1;
        let mut pos = 0;
        let mut index = first;
        while pos < piece.len() {
            let body_len = self.chunk_size.min(piece.len() - pos);
            let at = index * self.stride() as u64;
            let mut tag = [0u8; TAG_LEN];
            if let Some(span) = piece.get_mut(pos..pos + body_len + TAG_LEN) {
                src.read_at(at, span).map_err(TaskFailure::Io)?;
                tag.copy_from_slice(&span[body_len..]);
            } else {
                src.read_at(at, &mut piece[pos..pos + body_len])
                    .and_then(|()| src.read_at(at + body_len as u64, &mut tag))
                    .map_err(TaskFailure::Io)?;
            }
            let body = &mut piece[pos..pos + body_len];
            self.key
                .open_in_place(nonce(index, index == last), &self.aad, &tag, body)
                .map_err(|_| TaskFailure::Chunk(index))?;
            done(body);
            pos += body_len;
            index += 1;
        }
        Ok(())
    }

    /// Whether `piece` authenticates as chunk `index` (with the right last flag).
    fn opens_at(&self, piece: &[u8], index: u64) -> bool {
        let Some(split) = piece.len().checked_sub(TAG_LEN) else {
            return false;
        };
        let (ct, tag) = piece.split_at(split);
        let mut scratch = Zeroizing::new(ct.to_vec());
        self.key
            .open_in_place(
                nonce(index, index == self.chunks - 1),
                &self.aad,
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

    /// The piece of the payload where chunk `pos` should be, as long as that chunk should
    /// be (cut short at the end of the payload); `None` past the end.
    fn piece_at(&self, src: &dyn PayloadSource, pos: u64) -> Result<Option<Vec<u8>>, CryptError> {
        let Some(start) = pos.checked_mul(self.stride() as u64) else {
            return Ok(None);
        };
        let len = if pos + 1 == self.chunks {
            self.plaintext_len - pos * self.chunk_size as u64 + TAG_LEN as u64
        } else {
            self.stride() as u64
        };
        if start >= src.len() {
            return Ok(None);
        }
        // At most one stride, which is a usize.
        let len = (src.len() - start).min(len) as usize;
        let mut piece = vec![0u8; len];
        src.read_at(start, &mut piece).map_err(read_failed)?;
        Ok(Some(piece))
    }

    /// The error for a chunk that failed in a payload of the right length.
    fn diagnose_chunk(&self, src: &dyn PayloadSource, index: u64) -> CryptError {
        let piece = match self.piece_at(src, index) {
            Ok(Some(piece)) => piece,
            Ok(None) => return CryptError::ChunkCorrupted { index },
            Err(e) => return e,
        };
        match self.identify(&piece, index) {
            Some(j) => match self.piece_at(src, j) {
                Ok(Some(other)) if other == piece => CryptError::ChunkDuplicated {
                    position: index,
                    copy_of: j,
                },
                Ok(_) => CryptError::ChunkReordered {
                    position: index,
                    belongs_at: j,
                },
                Err(e) => e,
            },
            None => CryptError::ChunkCorrupted { index },
        }
    }

    /// The error for a payload whose length differs from the header's: walk it in order
    /// and name the first chunk that is not where it should be.
    fn diagnose_length(&self, src: &dyn PayloadSource, expected: u64) -> CryptError {
        let found = src.len();
        let mut pos = 0u64;
        while pos < self.chunks {
            let piece = match self.piece_at(src, pos) {
                Ok(Some(piece)) => piece,
                Ok(None) => break,
                Err(e) => return e,
            };
            if !self.opens_at(&piece, pos) {
                let is_tail = pos * self.stride() as u64 + piece.len() as u64 >= found;
                return match self.identify(&piece, pos) {
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

/// Why one decryption task stopped.
enum TaskFailure {
    /// This chunk did not authenticate.
    Chunk(u64),
    /// The payload could not be read.
    Io(std::io::Error),
}

fn read_failed(source: std::io::Error) -> CryptError {
    CryptError::Io {
        what: "reading the container",
        source,
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
    use crate::crypt::container::{FixedHeader, MIN_CHUNK_SIZE, SALT_LEN, VERSION};

    fn setup(len: u64) -> (StreamKey, Vec<u8>, Vec<u8>) {
        let fixed = FixedHeader {
            version: VERSION,
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
            version: VERSION,
            chunk_size: MIN_CHUNK_SIZE,
            plaintext_len: 4096,
            salt: [3; SALT_LEN],
        };
        let key = StreamKey::derive(&[7; 32], &short).unwrap();
        assert!(key.decrypt(&ct[..STRIDE]).is_err());
    }
}
