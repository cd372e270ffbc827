//! Protecting model weights: encrypted to a device and loaded only after verification
//! ([`crypt`], [`secure_load`]), and ownership protection — keyed layer shuffling
//! ([`shuffle`]) and watermarks ([`watermark`]) under a model key ([`model_key`]), over
//! safetensors files ([`tensors`]).
//!
//! Signing and verifying the files themselves is `edgeward-artifact`'s job; this crate
//! checks a model's signature bundle through `edgeward-core` before it decrypts anything.

pub mod crypt;
pub mod model_key;
pub mod secure_load;
pub mod shuffle;
pub mod tensors;
pub mod watermark;
