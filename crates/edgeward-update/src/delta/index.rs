//! The chunk index a target carries inside its signed metadata.
//!
//! The publisher cuts the target into content-defined chunks (FastCDC 2020, so an
//! insertion moves only the chunks around it) and lists each chunk's length and SHA-256.
//! In metadata (`custom.edgeward.chunks`) it is:
//!
//! ```json
//! {"algorithm": "fastcdc-2020", "hash": "sha256",
//!  "min_size": 1536, "avg_size": 6144, "max_size": 49152,
//!  "count": 3, "chunks": "<base64 of count × (u32 big-endian length ‖ 32-byte SHA-256)>"}
//! ```
//!
//! Offsets are not stored: chunk *i* starts where chunk *i − 1* ends, so the chunks are
//! contiguous and cover the target exactly by construction. Parsing bounds everything
//! before allocating: the chunking parameters must be in FastCDC's ranges, the count at
//! most [`MAX_CHUNKS`] and at most what the target's length allows, every chunk at most
//! `max_size` and (except the last) at least `min_size`, and the lengths must add up to
//! the target's signed length.

use std::io::Read;

use base64::Engine as _;
use fastcdc::v2020::StreamCDC;
use serde_json::{json, Value};

use crate::tuf::hash::sha256;

/// The chunking algorithm name in metadata.
pub const ALGORITHM: &str = "fastcdc-2020";
/// The chunk hash name in metadata.
pub const HASH: &str = "sha256";
/// Most chunks an index may list (a 1 TiB target at the smallest average size).
pub const MAX_CHUNKS: u64 = 1 << 22;
/// Bytes per chunk record: length and SHA-256.
const RECORD: usize = 4 + 32;

/// Why a chunk index is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("chunk index: {field}: {reason}")]
pub struct IndexError {
    /// The field at fault, e.g. `chunks[12].length`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

fn bad<T>(field: impl Into<String>, reason: impl Into<String>) -> Result<T, IndexError> {
    Err(IndexError {
        field: field.into(),
        reason: reason.into(),
    })
}

/// FastCDC's size parameters (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// No chunk but the last is shorter.
    pub min_size: u32,
    /// The target average.
    pub avg_size: u32,
    /// No chunk is longer.
    pub max_size: u32,
}

impl Default for Params {
    /// 1.5 KiB / 6 KiB / 48 KiB: small enough that a 1 % scattered change of a 256 MiB
    /// image costs under 5 % including the index (bench/delta.sh), large enough that the
    /// index of a 256 MiB image is about 1.4 MiB of metadata.
    fn default() -> Self {
        Params {
            min_size: 1536,
            avg_size: 6144,
            max_size: 49152,
        }
    }
}

impl Params {
    /// Checks the parameters against FastCDC's accepted ranges (it asserts on others).
    pub fn validate(&self) -> Result<(), IndexError> {
        let check = |name: &str, v: u32, lo: usize, hi: usize| {
            if (v as usize) < lo || (v as usize) > hi || !v.is_multiple_of(2) {
                bad(name, format!("{v} is not an even number in {lo}..={hi}"))
            } else {
                Ok(())
            }
        };
        use fastcdc::v2020::{AVERAGE_MAX, AVERAGE_MIN, MAXIMUM_MAX, MAXIMUM_MIN};
        use fastcdc::v2020::{MINIMUM_MAX, MINIMUM_MIN};
        check("min_size", self.min_size, MINIMUM_MIN, MINIMUM_MAX)?;
        check("avg_size", self.avg_size, AVERAGE_MIN, AVERAGE_MAX)?;
        check("max_size", self.max_size, MAXIMUM_MIN, MAXIMUM_MAX)?;
        if !(self.min_size <= self.avg_size && self.avg_size <= self.max_size) {
            return bad(
                "avg_size",
                "sizes must satisfy min_size <= avg_size <= max_size",
            );
        }
        Ok(())
    }

    /// Cuts `reader` into chunks, calling `each(offset, bytes)` per chunk in order.
    /// The parameters must have been validated.
    pub fn chunk(
        &self,
        reader: impl Read,
        mut each: impl FnMut(u64, &[u8]) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let cdc = StreamCDC::new(
            reader,
            self.min_size as usize,
            self.avg_size as usize,
            self.max_size as usize,
        );
        for chunk in cdc {
            let chunk = chunk.map_err(std::io::Error::from)?;
            each(chunk.offset, &chunk.data)?;
        }
        Ok(())
    }
}

/// One chunk: where it is in the target and what it must hash to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Offset in the target.
    pub offset: u64,
    /// Length in bytes (≥ 1).
    pub length: u32,
    /// SHA-256 of its bytes.
    pub sha256: [u8; 32],
}

/// A validated chunk index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkIndex {
    /// The parameters it was cut with (the device cuts its own data with the same).
    pub params: Params,
    /// The chunks, contiguous from offset 0.
    pub chunks: Vec<Chunk>,
}

impl ChunkIndex {
    /// Cuts `reader` (the target's bytes) with `params` and hashes each chunk.
    pub fn build(reader: impl Read, params: Params) -> Result<Self, BuildError> {
        params.validate().map_err(BuildError::Params)?;
        let mut chunks = Vec::new();
        params
            .chunk(reader, |offset, data| {
                chunks.push(Chunk {
                    offset,
                    length: data.len() as u32,
                    sha256: sha256(data),
                });
                Ok(())
            })
            .map_err(BuildError::Io)?;
        Ok(ChunkIndex { params, chunks })
    }

    /// The target length the chunks cover.
    pub fn total_length(&self) -> u64 {
        self.chunks
            .last()
            .map_or(0, |c| c.offset + u64::from(c.length))
    }

    /// The `custom.edgeward.chunks` object.
    pub fn to_json(&self) -> Value {
        let mut packed = Vec::with_capacity(self.chunks.len() * RECORD);
        for c in &self.chunks {
            packed.extend_from_slice(&c.length.to_be_bytes());
            packed.extend_from_slice(&c.sha256);
        }
        json!({
            "algorithm": ALGORITHM,
            "hash": HASH,
            "min_size": self.params.min_size,
            "avg_size": self.params.avg_size,
            "max_size": self.params.max_size,
            "count": self.chunks.len(),
            "chunks": base64::engine::general_purpose::STANDARD.encode(packed),
        })
    }

    /// Reads and validates an index from signed metadata, for a target of
    /// `target_length` bytes.
    pub fn from_json(value: &Value, target_length: u64) -> Result<Self, IndexError> {
        let obj = match value.as_object() {
            Some(o) => o,
            None => return bad("chunks", "must be an object"),
        };
        let text = |name: &str| obj.get(name).and_then(Value::as_str);
        if text("algorithm") != Some(ALGORITHM) {
            return bad("algorithm", format!("must be {ALGORITHM:?}"));
        }
        if text("hash") != Some(HASH) {
            return bad("hash", format!("must be {HASH:?}"));
        }
        let size = |name: &str| -> Result<u32, IndexError> {
            obj.get(name)
                .and_then(Value::as_u64)
                .and_then(|v| u32::try_from(v).ok())
                .map_or_else(|| bad(name, "must be an integer below 2^32"), Ok)
        };
        let params = Params {
            min_size: size("min_size")?,
            avg_size: size("avg_size")?,
            max_size: size("max_size")?,
        };
        params.validate()?;
        let count = match obj.get("count").and_then(Value::as_u64) {
            Some(c) => c,
            None => return bad("count", "must be a non-negative integer"),
        };
        if count > MAX_CHUNKS {
            return bad("count", format!("{count} is more than {MAX_CHUNKS}"));
        }
        let least = target_length.div_ceil(u64::from(params.max_size));
        let most = target_length.div_ceil(u64::from(params.min_size));
        if count < least || count > most {
            return bad(
                "count",
                format!("{count} chunks cannot cover {target_length} bytes with these sizes"),
            );
        }
        let encoded = match text("chunks") {
            Some(s) => s,
            None => return bad("chunks", "must be a base64 string"),
        };
        // `count` is bounded, so this bounds the decoding before it allocates.
        let expected_len = (count as usize) * RECORD;
        if encoded.len() != expected_len.div_ceil(3) * 4 {
            return bad(
                "chunks",
                format!(
                    "is {} base64 characters, {count} records need {}",
                    encoded.len(),
                    expected_len.div_ceil(3) * 4
                ),
            );
        }
        let packed = match base64::engine::general_purpose::STANDARD.decode(encoded) {
            Ok(p) => p,
            Err(e) => return bad("chunks", format!("is not base64: {e}")),
        };
        if packed.len() != expected_len {
            return bad(
                "chunks",
                format!(
                    "decodes to {} bytes, {count} records need {expected_len}",
                    packed.len()
                ),
            );
        }
        let mut chunks = Vec::with_capacity(count as usize);
        let mut offset: u64 = 0;
        for (i, record) in packed.chunks_exact(RECORD).enumerate() {
            let mut len = [0u8; 4];
            len.copy_from_slice(&record[..4]);
            let length = u32::from_be_bytes(len);
            let last = i + 1 == count as usize;
            if length == 0 || length > params.max_size {
                return bad(
                    format!("chunks[{i}].length"),
                    format!("{length} is not in 1..={}", params.max_size),
                );
            }
            if !last && length < params.min_size {
                return bad(
                    format!("chunks[{i}].length"),
                    format!(
                        "{length} is below min_size {} and it is not the last chunk",
                        params.min_size
                    ),
                );
            }
            let mut sha = [0u8; 32];
            sha.copy_from_slice(&record[4..]);
            chunks.push(Chunk {
                offset,
                length,
                sha256: sha,
            });
            offset += u64::from(length);
            if offset > target_length {
                return bad(
                    format!("chunks[{i}]"),
                    format!("ends at {offset}, past the target's {target_length} bytes"),
                );
            }
        }
        if offset != target_length {
            return bad(
                "chunks",
                format!("cover {offset} bytes, the target is {target_length}"),
            );
        }
        Ok(ChunkIndex { params, chunks })
    }
}

/// Why an index could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The parameters are outside FastCDC's ranges.
    #[error(transparent)]
    Params(IndexError),
    /// Reading the target failed.
    #[error("reading the target: {0}")]
    Io(std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn round_trips_and_covers_the_target() {
        let d = data(300_000, 7);
        let index = ChunkIndex::build(&d[..], Params::default()).unwrap();
        assert!(index.chunks.len() > 10);
        assert_eq!(index.total_length(), d.len() as u64);
        let parsed = ChunkIndex::from_json(&index.to_json(), d.len() as u64).unwrap();
        assert_eq!(parsed, index);
        for c in &index.chunks {
            let bytes = &d[c.offset as usize..c.offset as usize + c.length as usize];
            assert_eq!(sha256(bytes), c.sha256);
        }
    }

    #[test]
    fn an_empty_target_has_no_chunks() {
        let index = ChunkIndex::build(&[][..], Params::default()).unwrap();
        assert!(index.chunks.is_empty());
        assert_eq!(ChunkIndex::from_json(&index.to_json(), 0).unwrap(), index);
    }

    #[test]
    fn refuses_lengths_that_do_not_cover_the_target() {
        let d = data(100_000, 3);
        let index = ChunkIndex::build(&d[..], Params::default()).unwrap();
        let v = index.to_json();
        let n = index.chunks.len();
        let e = ChunkIndex::from_json(&v, 100_001).unwrap_err();
        assert_eq!(
            e.to_string(),
            "chunk index: chunks: cover 100000 bytes, the target is 100001"
        );
        let e = ChunkIndex::from_json(&v, 99_999).unwrap_err();
        assert_eq!(e.field, format!("chunks[{}]", n - 1));
        assert_eq!(e.reason, "ends at 100000, past the target's 99999 bytes");
    }

    #[test]
    fn refuses_bad_parameters_counts_and_chunk_sizes() {
        let d = data(100_000, 5);
        let index = ChunkIndex::build(&d[..], Params::default()).unwrap();
        let mut v = index.to_json();
        v["min_size"] = json!(3);
        assert_eq!(
            ChunkIndex::from_json(&v, 100_000).unwrap_err().to_string(),
            "chunk index: min_size: 3 is not an even number in 64..=1048576"
        );
        let mut v = index.to_json();
        v["count"] = json!(MAX_CHUNKS + 1);
        assert_eq!(
            ChunkIndex::from_json(&v, 100_000).unwrap_err().reason,
            format!("{} is more than {MAX_CHUNKS}", MAX_CHUNKS + 1)
        );
        let mut v = index.to_json();
        v["count"] = json!(1);
        assert_eq!(
            ChunkIndex::from_json(&v, 100_000).unwrap_err().reason,
            "1 chunks cannot cover 100000 bytes with these sizes"
        );
        // A first chunk shorter than min_size, the second made longer to keep the sum.
        let mut short = index.clone();
        short.chunks[0].length = 100;
        short.chunks[1].length += index.chunks[0].length - 100;
        assert_eq!(
            ChunkIndex::from_json(&short.to_json(), 100_000)
                .unwrap_err()
                .to_string(),
            "chunk index: chunks[0].length: 100 is below min_size 1536 and it is not the last chunk"
        );
        let mut v = index.to_json();
        v["algorithm"] = json!("rabin");
        assert_eq!(
            ChunkIndex::from_json(&v, 100_000).unwrap_err().to_string(),
            "chunk index: algorithm: must be \"fastcdc-2020\""
        );
    }
}
