//! What a thief does to a stolen model to hide where it came from, for demonstrations and
//! robustness tests of the watermark: a function-preserving permutation of the hidden units
//! of a two-layer block, and magnitude pruning.

use rand::{seq::SliceRandom, SeedableRng};
use rand_chacha::ChaCha20Rng;

use super::WatermarkError;
use crate::tensors::{Matrix, TensorFile};

/// Permutes the hidden units between layers `first` (`[hidden, inputs]` weight, with bias
/// `first_bias` if present) and `second` (`[outputs, hidden]`) with a permutation drawn from
/// `seed`. The model computes exactly the same function afterwards.
pub fn permute_hidden(
    model: &[u8],
    first: &str,
    first_bias: &str,
    second: &str,
    seed: u64,
) -> Result<Vec<u8>, WatermarkError> {
    let file = TensorFile::parse(model)?;
    let w1 = file.f32_matrix(first)?;
    let w2 = file.f32_matrix(second)?;
    if w2.cols != w1.rows {
        return Err(WatermarkError::Invalid(format!(
            "{second} has {} columns but {first} has {} rows",
            w2.cols, w1.rows
        )));
    }
    let hidden = w1.rows;
    let mut perm: Vec<usize> = (0..hidden).collect();
    perm.shuffle(&mut ChaCha20Rng::seed_from_u64(seed));
    let new_w1 = Matrix {
        data: perm.iter().flat_map(|&p| w1.row(p).to_vec()).collect(),
        ..w1
    };
    let new_w2 = Matrix {
        data: (0..w2.rows)
            .flat_map(|o| perm.iter().map(move |&p| (o, p)))
            .map(|(o, p)| w2.data[o * hidden + p])
            .collect(),
        ..w2
    };
    let mut out = model.to_vec();
    out[file.get(first)?.range.clone()].copy_from_slice(&new_w1.to_le_bytes());
    out[file.get(second)?.range.clone()].copy_from_slice(&new_w2.to_le_bytes());
    if let Ok(bias) = file.get(first_bias) {
        let b = file.data(bias);
        if bias.dtype != safetensors::Dtype::F32 || b.len() != hidden * 4 {
            return Err(WatermarkError::Invalid(format!(
                "{first_bias} is not an F32 vector of {hidden}"
            )));
        }
        let permuted: Vec<u8> = perm
            .iter()
            .flat_map(|&p| b[p * 4..p * 4 + 4].to_vec())
            .collect();
        out[bias.range.clone()].copy_from_slice(&permuted);
    }
    Ok(out)
}

/// Sets the `fraction` (0 to 1) of smallest-magnitude weights of each listed 2-D F32
/// tensor to zero.
pub fn prune(model: &[u8], tensors: &[&str], fraction: f64) -> Result<Vec<u8>, WatermarkError> {
    if !(0.0..=1.0).contains(&fraction) {
        return Err(WatermarkError::Invalid(format!(
            "pruning fraction {fraction} is not in [0, 1]"
        )));
    }
    let file = TensorFile::parse(model)?;
    let mut out = model.to_vec();
    for name in tensors {
        let mut m = file.f32_matrix(name)?;
        let mut mags: Vec<f32> = m.data.iter().map(|v| v.abs()).collect();
        mags.sort_by(f32::total_cmp);
        let cut = ((mags.len() as f64 * fraction) as usize).min(mags.len());
        if cut == 0 {
            continue;
        }
        let threshold = mags.get(cut).copied().unwrap_or(f32::INFINITY);
        m.data
            .iter_mut()
            .filter(|v| v.abs() < threshold)
            .for_each(|v| *v = 0.0);
        out[file.get(name)?.range.clone()].copy_from_slice(&m.to_le_bytes());
    }
    Ok(out)
}
