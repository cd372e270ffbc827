//! Delta updates without a separate delta file.
//!
//! Each target carries a content-defined chunk index inside its signed metadata
//! ([`index`]); the device finds the chunks it already has in its active slot or a chunk
//! store ([`plan`]) and fetches only the others with HTTP range requests, writing only
//! bytes verified against the signed chunk hashes and checking the whole target's signed
//! hashes at the end ([`assemble`]). A repository needs nothing but the full target file:
//! any static HTTP server that honours `Range` serves deltas to every older version.

pub mod assemble;
mod background;
pub mod index;
pub mod plan;

pub use assemble::{assemble, DeltaError, Job, Options, Report};
pub use index::{ChunkIndex, IndexError, Params};
pub use plan::{LocalChunks, Plan};

use crate::tuf::metadata::TargetFile;

/// The chunk index of a target (`custom.edgeward.chunks`), validated against its signed
/// length; `None` when the target has none (it is then downloaded whole).
pub fn target_index(file: &TargetFile) -> Result<Option<ChunkIndex>, IndexError> {
    match file
        .custom
        .as_ref()
        .and_then(|c| c.get("edgeward"))
        .and_then(|e| e.get("chunks"))
    {
        Some(v) => ChunkIndex::from_json(v, file.length).map(Some),
        None => Ok(None),
    }
}
