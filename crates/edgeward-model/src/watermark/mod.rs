//! Ownership watermarks for models: a white-box spread-spectrum mark embedded into the
//! weights of a layer ([`whitebox`]), and verification of a black-box trigger-set mark from
//! a suspect model's predictions ([`triggers`]). Both are keyed by the owner's
//! [`crate::model_key::ModelKey`]; [`launder`] holds what a thief does to hide a model
//! (for demonstrations and tests). `docs/watermark.md` describes the scheme and
//! `docs/watermark-eval.md` its measured robustness.

mod align;
pub mod launder;
pub mod triggers;
pub mod whitebox;

use crate::tensors::TensorFileError;

/// Why embedding or detecting a watermark failed.
#[derive(Debug, thiserror::Error)]
pub enum WatermarkError {
    /// The model is not a usable safetensors file or lacks the tensors needed.
    #[error(transparent)]
    Tensors(#[from] TensorFileError),
    /// The marked layer is too small to carry the mark.
    #[error("layer too small for a watermark: {0}")]
    TooSmall(String),
    /// The layers do not fit together or an argument is out of range.
    #[error("{0}")]
    Invalid(String),
    /// A predictions file is malformed.
    #[error("predictions: {0}")]
    Predictions(String),
}
