//! The decrypted model: bytes that are zeroized when dropped, on every core (a model can be
//! gigabytes, and `zeroize`'s volatile stores are byte by byte).

use rayon::prelude::*;
use zeroize::Zeroize;

/// Zeroing work per task when a [`Plaintext`] is dropped.
const WIPE_SLICE: usize = 1 << 20;

/// Plaintext that only ever lives in memory and is wiped on drop. Its `Debug` shows the
/// length, never the contents.
pub struct Plaintext(Vec<u8>);

impl Plaintext {
    /// A zero-filled buffer of `len` bytes to decrypt into.
    pub(crate) fn zeroed(len: usize) -> Self {
        Plaintext(vec![0u8; len])
    }

    /// The buffer, for decrypting into.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl std::ops::Deref for Plaintext {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Plaintext({} bytes)", self.0.len())
    }
}

impl Drop for Plaintext {
    fn drop(&mut self) {
        // The vector was allocated at its final length, so this covers its whole capacity.
        self.0
            .par_chunks_mut(WIPE_SLICE)
            .for_each(|slice| slice.zeroize());
    }
}
