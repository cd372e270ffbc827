//! The worker's model runtime: a multilayer perceptron read from a safetensors file (layers
//! `fc1`, `fc2`, … each with `weight` [outputs × inputs] and `bias` [outputs], ReLU between
//! layers, raw scores out), computed in plain Rust over the decrypted weights. It is the
//! runtime the digits classifier of `edgeward-model` needs, with no code (and no system
//! call) beyond arithmetic, which keeps the worker's filter small. The weights are moved out
//! of the decrypted file into zeroizing buffers, so the worker holds them once and wipes
//! them when it exits.

use edgeward_model::{internal::tensors::TensorFile, TensorFileError};
use zeroize::Zeroizing;

/// Most layers a model may have.
const MAX_LAYERS: usize = 64;

/// One dense layer.
struct Layer {
    outputs: usize,
    inputs: usize,
    weight: Zeroizing<Vec<f32>>,
    bias: Zeroizing<Vec<f32>>,
}

/// A loaded perceptron.
pub struct Mlp {
    layers: Vec<Layer>,
}

impl std::fmt::Debug for Mlp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Mlp({}→{}, {} layers)",
            self.inputs(),
            self.outputs(),
            self.layers.len()
        )
    }
}

impl Mlp {
    /// Reads the layers of a safetensors file, checking that each layer's inputs are the
    /// previous layer's outputs.
    pub fn from_safetensors(bytes: &[u8]) -> Result<Self, TensorFileError> {
        let file = TensorFile::parse(bytes)?;
        let mut layers: Vec<Layer> = Vec::new();
        for n in 1..=MAX_LAYERS {
            let name = format!("fc{n}.weight");
            if file.get(&name).is_err() {
                break;
            }
            let w = file.f32_matrix(&name)?;
            let bias_name = format!("fc{n}.bias");
            let b = file.get(&bias_name)?;
            if b.shape != [w.rows] || b.dtype != safetensors::Dtype::F32 {
                return Err(TensorFileError::WrongKind {
                    name: bias_name,
                    found: format!("{} {:?}", b.dtype, b.shape),
                    wanted: "an F32 vector as long as the layer's outputs",
                });
            }
            let bias: Vec<f32> = file
                .data(b)
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if bias.iter().any(|v| !v.is_finite()) {
                return Err(TensorFileError::NotFinite(bias_name));
            }
            if let Some(prev) = layers.last() {
                if prev.outputs != w.cols {
                    return Err(TensorFileError::Invalid(format!(
                        "{name} takes {} inputs but the layer before gives {}",
                        w.cols, prev.outputs
                    )));
                }
            }
            layers.push(Layer {
                outputs: w.rows,
                inputs: w.cols,
                weight: Zeroizing::new(w.data),
                bias: Zeroizing::new(bias),
            });
        }
        if layers.is_empty() {
            return Err(TensorFileError::MissingTensor("fc1.weight".into()));
        }
        Ok(Mlp { layers })
    }

    /// Inputs the model takes.
    pub fn inputs(&self) -> usize {
        self.layers.first().map_or(0, |l| l.inputs)
    }

    /// Outputs it gives.
    pub fn outputs(&self) -> usize {
        self.layers.last().map_or(0, |l| l.outputs)
    }

    /// Runs the model; `None` when `input` is not [`Mlp::inputs`] long.
    pub fn infer(&self, input: &[f32]) -> Option<Vec<f32>> {
        if input.len() != self.inputs() {
            return None;
        }
        let mut x = Zeroizing::new(input.to_vec());
        for (i, layer) in self.layers.iter().enumerate() {
            let last = i + 1 == self.layers.len();
            let mut y = Zeroizing::new(Vec::with_capacity(layer.outputs));
            for (row, b) in layer
                .weight
                .chunks_exact(layer.inputs)
                .zip(layer.bias.iter())
            {
                let v = row.iter().zip(x.iter()).map(|(w, v)| w * v).sum::<f32>() + b;
                y.push(if last { v } else { v.max(0.0) });
            }
            x = y;
        }
        Some(x.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGITS: &[u8] =
        include_bytes!("../../../edgeward-model/tests/data/digits-mlp.safetensors");

    #[test]
    fn the_digits_model_loads_and_computes() {
        let m = Mlp::from_safetensors(DIGITS).expect("load");
        assert_eq!((m.inputs(), m.outputs()), (64, 10));
        let out = m.infer(&[0.5; 64]).expect("infer");
        assert_eq!(out.len(), 10);
        assert!(out.iter().all(|v| v.is_finite()));
        assert_ne!(out, m.infer(&[0.0; 64]).expect("infer"));
        assert!(m.infer(&[0.5; 63]).is_none());
        assert!(matches!(
            Mlp::from_safetensors(b"not a model"),
            Err(TensorFileError::HeaderLength(_))
        ));
    }
}
