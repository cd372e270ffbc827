//! AES-256-GCM from `aws-lc-rs` behind three calls, so the rest of the module does not
//! depend on one backend's API. aws-lc's VAES/AVX-512 path is the fastest measured here
//! (see `bench/model-crypt.sh`).

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};

use super::CryptError;

/// Length of an AES-GCM tag.
pub(super) const TAG_LEN: usize = 16;

/// An AES-256-GCM key.
pub(super) struct Key(LessSafeKey);

/// Authentication failed (or the buffers did not fit); carries no detail on purpose.
#[derive(Debug)]
pub(super) struct OpenFailed;

impl Key {
    /// A key from 32 bytes.
    pub(super) fn new(bytes: &[u8]) -> Result<Self, CryptError> {
        UnboundKey::new(&AES_256_GCM, bytes)
            .map(|k| Key(LessSafeKey::new(k)))
            .map_err(|e| CryptError::Backend(e.to_string()))
    }

    /// Encrypts `buf` in place and returns the tag.
    pub(super) fn seal_in_place(
        &self,
        nonce: [u8; 12],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CryptError> {
        let tag = self
            .0
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf)
            .map_err(|e| CryptError::Backend(e.to_string()))?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Decrypts `buf` in place, checking it against `tag`. On failure `buf` holds garbage
    /// that the caller must discard (it is never released).
    pub(super) fn open_in_place(
        &self,
        nonce: [u8; 12],
        aad: &[u8],
        tag: &[u8],
        buf: &mut [u8],
    ) -> Result<(), OpenFailed> {
        self.0
            .open_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                tag,
                buf,
            )
            .map(|_| ())
            .map_err(|_| OpenFailed)
    }
}
