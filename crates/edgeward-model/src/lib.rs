//! Protecting model weights: encrypted to a device and loaded only after verification
//! ([`crypt`], [`secure_load`]), and ownership protection — keyed layer shuffling
//! ([`shuffle`]) and watermarks ([`watermark`]) under a model key ([`model_key`]), over
//! safetensors files (a private module; its parser is reachable for the fuzz targets and
//! tests through [`internal`]).
//!
//! Signing and verifying the files themselves is `edgeward-artifact`'s job; this crate
//! checks a model's signature bundle through `edgeward-core` before it decrypts anything.

pub mod crypt;
pub mod model_key;
pub mod secure_load;
pub mod shuffle;
mod tensors;
pub mod watermark;

pub use tensors::TensorFileError;

/// The safetensors view the fuzz target `safetensors_header` and this crate's tests drive,
/// reachable from outside only for them: not part of the API, no stability promise (as
/// rustls does with its `internal` module).
#[doc(hidden)]
pub mod internal {
    /// The bounded, validated view of a safetensors file.
    pub mod tensors {
        pub use crate::tensors::{Matrix, TensorEntry, TensorFile, MAX_HEADER_BYTES};
    }
}
