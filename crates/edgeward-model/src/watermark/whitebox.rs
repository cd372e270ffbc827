//! The white-box watermark: a keyed spread-spectrum mark in the input weights of a layer's
//! hidden units, detected without the original model and robust to a permutation of the
//! hidden units.
//!
//! Layout, all derived from the key: the layer's input columns are dealt into segments of
//! [`SEGMENT`] columns; the first half of the segments are *pilot* segments (known sign,
//! used for the z-score), the others *data* segments (each carries one payload bit; the 64
//! bits are interleaved over all data segments, a repetition code decoded by soft decision).
//! There are `min(hidden / 4, 64)` templates, each a ±1 chip per input column, balanced
//! (as many +1 as -1) on every segment.
//!
//! Embedding marks one hidden unit per template, those whose outgoing weights (in the next
//! layer) are smallest, so the distortion costs the least accuracy, and uses improved spread
//! spectrum: for each unit and segment, the weights move along the chips only as far as
//! needed for the segment's correlation to reach `strength × σ × SEGMENT` (σ: the layer's
//! standard deviation), which cancels the host weights' interference.
//!
//! Detection computes each row's correlation with each template per segment, divided by
//! the norm of the row's weights on that segment (rows of any scale count alike), re-aligns rows
//! to templates by maximising the sum of absolute correlations (Hungarian algorithm), then
//! reads the signs. Under the null hypothesis (a model not marked with this key), flipping
//! the sign of any template's chips on one segment is equally likely and changes neither
//! the absolute values nor the alignment, so the aligned pilot correlations `v_i` have
//! independent random signs: `z = Σ v_i / sqrt(Σ v_i²)` is a Rademacher sum, and by
//! Hoeffding's inequality `P(z > t) ≤ exp(-t²/2)` for every `t > 0`, whatever the weights are.
//! The reported p-value is that bound, not the normal upper tail: the normal approximation
//! is not a bound, and far out in the tail (where the decision threshold is) its error is
//! not controlled. At the default threshold 1e-6 the bound needs `z > 5.26` (the normal tail
//! would accept 4.75). `z` is at most `sqrt(pilot terms)`.

use super::{align, WatermarkError};
use crate::{model_key::ModelKey, tensors::TensorFile};

/// Input columns per segment.
pub const SEGMENT: usize = 8;
/// Payload bits.
pub const PAYLOAD_BITS: usize = 64;
/// Default embedding strength (target correlation per weight, in units of the layer's σ).
pub const DEFAULT_STRENGTH: f64 = 0.85;
/// Fewest pilot terms accepted: below it z cannot reach a meaningful significance.
pub const MIN_PILOT_TERMS: usize = 32;
/// Most hidden units marked (a quarter of the layer's units, at most this many).
pub const MAX_UNITS: usize = 64;
/// Largest layer accepted, in weights (bounds detection time).
pub const MAX_LAYER_WEIGHTS: usize = 1 << 24;

/// What to mark and how strongly.
#[derive(Clone, Debug)]
pub struct EmbedOptions {
    /// The marked layer's weight (`[hidden, inputs]`, F32), e.g. `fc1.weight`.
    pub tensor: String,
    /// The next layer's weight (`[outputs, hidden]`), used to pick the least important units.
    pub next: String,
    /// Target correlation per weight, in units of the layer's standard deviation.
    pub strength: f64,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        EmbedOptions {
            tensor: "fc1.weight".into(),
            next: "fc2.weight".into(),
            strength: DEFAULT_STRENGTH,
        }
    }
}

/// What embedding did.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbedReport {
    /// Hidden units marked.
    pub units: usize,
    /// The layer's standard deviation σ before marking.
    pub sigma: f64,
    /// Root-mean-square change over the whole layer, in units of σ.
    pub rms_change: f64,
}

/// The result of detection.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    /// The z-score of the pilot correlations.
    pub z: f64,
    /// One-sided p-value: an upper bound (Hoeffding, `exp(-z²/2)`) on the chance of a z this
    /// large from a model not marked with the key.
    pub p_value: f64,
    /// The payload read from the data segments.
    pub payload: u64,
    /// Bits equal to the expected payload, when one was given.
    pub bits_matching: Option<u32>,
    /// Templates (marked units) looked for.
    pub units: usize,
    /// Pilot correlations in the z-score.
    pub terms: usize,
}

/// The key-derived layout for a layer of `hidden` units over `inputs` columns.
struct Layout {
    units: usize,
    /// `segments[s]`: the input columns of segment `s`; pilot segments first.
    segments: Vec<Vec<usize>>,
    pilots: usize,
    /// `chips[k][j]`: template `k`'s chip (±1) on input column `j`.
    chips: Vec<Vec<f64>>,
    /// `bit_of[k][d]`: the payload bit carried by template `k`'s data segment `d`.
    bit_of: Vec<Vec<usize>>,
}

impl Layout {
    fn new(key: &ModelKey, hidden: usize, inputs: usize) -> Result<Self, WatermarkError> {
        use rand::seq::SliceRandom;
        if hidden.saturating_mul(inputs) > MAX_LAYER_WEIGHTS {
            return Err(WatermarkError::Invalid(format!(
                "layer of {hidden} x {inputs} weights is larger than {MAX_LAYER_WEIGHTS}"
            )));
        }
        let units = (hidden / 4).min(MAX_UNITS);
        let n_seg = inputs / SEGMENT;
        let pilots = n_seg / 2;
        let data = n_seg - pilots;
        if units * pilots < MIN_PILOT_TERMS || units * data < PAYLOAD_BITS {
            return Err(WatermarkError::TooSmall(format!(
                "{hidden} hidden units x {inputs} inputs give {} pilot terms and {} data \
                 symbols; at least {MIN_PILOT_TERMS} and {PAYLOAD_BITS} are needed",
                units * pilots,
                units * data
            )));
        }
        let mut context = (inputs as u64).to_le_bytes().to_vec();
        context.extend_from_slice(&(units as u64).to_le_bytes());
        let mut rng = key.rng("edgeward/watermark/v1/layout", &context);
        let mut columns: Vec<usize> = (0..inputs).collect();
        columns.shuffle(&mut rng);
        let segments: Vec<Vec<usize>> = columns
            .chunks_exact(SEGMENT)
            .take(n_seg)
            .map(<[usize]>::to_vec)
            .collect();
        // Balanced chips: half +1, half -1 on every segment, so a mark adds nothing to a
        // unit's response to an input that is constant over the segment.
        let chips = (0..units)
            .map(|_| {
                let mut row = vec![0.0; inputs];
                for seg in &segments {
                    let mut signs: Vec<f64> = (0..SEGMENT)
                        .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
                        .collect();
                    signs.shuffle(&mut rng);
                    for (&j, sign) in seg.iter().zip(signs) {
                        row[j] = sign;
                    }
                }
                row
            })
            .collect();
        let mut symbols: Vec<usize> = (0..units * data).collect();
        symbols.shuffle(&mut rng);
        let bit_of = symbols
            .chunks_exact(data)
            .map(|c| c.iter().map(|s| s % PAYLOAD_BITS).collect())
            .collect();
        Ok(Layout {
            units,
            segments,
            pilots,
            chips,
            bit_of,
        })
    }

    /// The sign template `k` carries on segment `s` for `payload`.
    fn symbol(&self, k: usize, s: usize, payload: u64) -> f64 {
        if s < self.pilots {
            return 1.0;
        }
        let bit = self.bit_of[k][s - self.pilots];
        if payload >> (PAYLOAD_BITS - 1 - bit) & 1 == 1 {
            1.0
        } else {
            -1.0
        }
    }

    /// Correlation of `row` with template `k` on segment `s`.
    fn correlation(&self, row: &[f32], k: usize, s: usize) -> f64 {
        self.segments[s]
            .iter()
            .map(|&j| f64::from(row[j]) * self.chips[k][j])
            .sum()
    }
}

/// Embeds `payload` into `model` (safetensors bytes); returns the marked file, identical
/// to the input except for the marked tensor's values.
pub fn embed(
    model: &[u8],
    key: &ModelKey,
    payload: u64,
    options: &EmbedOptions,
) -> Result<(Vec<u8>, EmbedReport), WatermarkError> {
    if !(options.strength.is_finite() && options.strength > 0.0 && options.strength <= 10.0) {
        return Err(WatermarkError::Invalid(format!(
            "strength {} is not in (0, 10]",
            options.strength
        )));
    }
    let file = TensorFile::parse(model)?;
    let mut weights = file.f32_matrix(&options.tensor)?;
    let next = file.f32_matrix(&options.next)?;
    let (hidden, inputs) = (weights.rows, weights.cols);
    if next.cols != hidden {
        return Err(WatermarkError::Invalid(format!(
            "{} has {} columns but {} has {hidden} rows",
            options.next, next.cols, options.tensor
        )));
    }
    let layout = Layout::new(key, hidden, inputs)?;
    let sigma = std_dev(&weights.data);
    if sigma <= 0.0 {
        return Err(WatermarkError::Invalid(format!(
            "{} is constant: no scale to mark against",
            options.tensor
        )));
    }
    // A unit's gain: the norm of its input weights times that of its output weights.
    let mut importance: Vec<(f64, usize)> = (0..hidden)
        .map(|r| {
            let out: f64 = (0..next.rows)
                .map(|o| f64::from(next.data[o * hidden + r]).powi(2))
                .sum();
            let inp: f64 = weights.row(r).iter().map(|w| f64::from(*w).powi(2)).sum();
            ((out * inp).sqrt(), r)
        })
        .collect();
    importance.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let target = options.strength * sigma * SEGMENT as f64;
    let original = weights.data.clone();
    for (k, &(_, r)) in importance.iter().take(layout.units).enumerate() {
        for s in 0..layout.segments.len() {
            let sign = layout.symbol(k, s, payload);
            let current = sign * layout.correlation(weights.row(r), k, s);
            let step = (target - current).max(0.0) / SEGMENT as f64;
            for &j in &layout.segments[s] {
                let w = &mut weights.data[r * inputs + j];
                *w = (f64::from(*w) + step * sign * layout.chips[k][j]) as f32;
            }
        }
    }
    let sq: f64 = weights
        .data
        .iter()
        .zip(&original)
        .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
        .sum();
    let report = EmbedReport {
        units: layout.units,
        sigma,
        rms_change: (sq / weights.data.len() as f64).sqrt() / sigma,
    };
    let range = file.get(&options.tensor)?.range.clone();
    let mut out = model.to_vec();
    out[range].copy_from_slice(&weights.to_le_bytes());
    Ok((out, report))
}

/// Looks for the key's watermark in layer `tensor` of `model`; `expected` is the payload
/// to compare the recovered bits with, if known.
pub fn detect(
    model: &[u8],
    key: &ModelKey,
    tensor: &str,
    expected: Option<u64>,
) -> Result<Detection, WatermarkError> {
    let file = TensorFile::parse(model)?;
    let weights = file.f32_matrix(tensor)?;
    let (hidden, inputs) = (weights.rows, weights.cols);
    let layout = Layout::new(key, hidden, inputs)?;
    let n_seg = layout.segments.len();
    // norms[r][s]: the norm of suspect row r on segment s.
    let norms: Vec<Vec<f64>> = (0..hidden)
        .map(|r| {
            let row = weights.row(r);
            layout
                .segments
                .iter()
                .map(|seg| {
                    seg.iter()
                        .map(|&j| f64::from(row[j]).powi(2))
                        .sum::<f64>()
                        .sqrt()
                })
                .collect()
        })
        .collect();
    // corr[k][r][s]: template k against suspect row r on segment s, divided by the
    // segment's norm so that every row counts alike whatever its scale.
    let corr: Vec<Vec<Vec<f64>>> = (0..layout.units)
        .map(|k| {
            (0..hidden)
                .map(|r| {
                    (0..n_seg)
                        .map(|s| match norms[r][s] {
                            n if n > 0.0 => layout.correlation(weights.row(r), k, s) / n,
                            _ => 0.0,
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    let scores: Vec<Vec<f64>> = corr
        .iter()
        .map(|rows| {
            rows.iter()
                .map(|c| c.iter().map(|v| v.abs()).sum())
                .collect()
        })
        .collect();
    let rows = align::assign(&scores, hidden);

    let (mut sum, mut sum_sq) = (0.0, 0.0);
    let mut soft = [0.0f64; PAYLOAD_BITS];
    for (k, &r) in rows.iter().enumerate() {
        for (s, &v) in corr[k][r].iter().enumerate() {
            if s < layout.pilots {
                sum += v;
                sum_sq += v * v;
            } else {
                soft[layout.bit_of[k][s - layout.pilots]] += v;
            }
        }
    }
    let z = if sum_sq > 0.0 {
        sum / sum_sq.sqrt()
    } else {
        0.0
    };
    let payload = soft
        .iter()
        .fold(0u64, |acc, v| (acc << 1) | u64::from(*v > 0.0));
    Ok(Detection {
        z,
        p_value: hoeffding_upper_tail(z),
        payload,
        bits_matching: expected.map(|e| PAYLOAD_BITS as u32 - (e ^ payload).count_ones()),
        units: layout.units,
        terms: layout.units * layout.pilots,
    })
}

/// An upper bound on `P(Z ≥ z)` for a normalised Rademacher sum `Z` (Hoeffding:
/// `exp(-z²/2)` for `z > 0`; nothing better than 1 otherwise).
fn hoeffding_upper_tail(z: f64) -> f64 {
    if z > 0.0 {
        (-z * z / 2.0).exp()
    } else {
        1.0
    }
}

fn std_dev(values: &[f32]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().map(|v| f64::from(*v)).sum::<f64>() / n;
    (values
        .iter()
        .map(|v| (f64::from(*v) - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rand::{Rng, SeedableRng};
    use safetensors::Dtype;

    use super::*;
    use crate::tensors::{write, NewTensor};

    fn random_model(seed: u64, hidden: usize) -> Vec<u8> {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
        let mut gauss = |n: usize| -> Vec<u8> {
            (0..n)
                .flat_map(|_| {
                    let v: f32 = (0..12).map(|_| rng.gen::<f32>()).sum::<f32>() - 6.0;
                    (v * 0.1).to_le_bytes()
                })
                .collect()
        };
        let (w1, w2) = (gauss(hidden * 64), gauss(10 * hidden));
        write(
            &BTreeMap::new(),
            &[
                NewTensor {
                    name: "fc1.weight".into(),
                    dtype: Dtype::F32,
                    shape: vec![hidden, 64],
                    data: &w1,
                },
                NewTensor {
                    name: "fc2.weight".into(),
                    dtype: Dtype::F32,
                    shape: vec![10, hidden],
                    data: &w2,
                },
            ],
        )
    }

    #[test]
    fn embeds_and_detects_and_stays_quiet_on_unmarked_models() {
        let key = ModelKey::generate();
        let model = random_model(1, 128);
        let payload = 0x0123_4567_89ab_cdef;
        let (marked, report) = embed(&model, &key, payload, &EmbedOptions::default()).unwrap();
        assert_eq!(report.units, 32);
        let d = detect(&marked, &key, "fc1.weight", Some(payload)).unwrap();
        assert_eq!(d.payload, payload);
        assert!(d.p_value < 1e-20, "{d:?}");
        for seed in 10..20 {
            let d = detect(&random_model(seed, 128), &key, "fc1.weight", None).unwrap();
            assert!(d.p_value > 1e-6, "{d:?}");
        }
        let other = detect(&marked, &ModelKey::generate(), "fc1.weight", None).unwrap();
        assert!(other.p_value > 1e-6, "{other:?}");
    }

    #[test]
    fn the_reported_p_value_bounds_the_exact_null_tail() {
        // Equal weights, 20 pilot terms: z = (2k - n) / sqrt(n) for k positive signs, and the
        // exact tail P(Z ≥ z) is a binomial sum. The reported p-value must never be below it.
        let n = 20u32;
        let total = f64::from(2u32.pow(n));
        let choose =
            |k: u32| -> f64 { (0..k).fold(1.0, |c, i| c * f64::from(n - i) / f64::from(i + 1)) };
        for k in 0..=n {
            let z = (2.0 * f64::from(k) - f64::from(n)) / f64::from(n).sqrt();
            let exact: f64 = (k..=n).map(choose).sum::<f64>() / total;
            assert!(
                hoeffding_upper_tail(z) >= exact,
                "k {k}: bound {} < exact {exact}",
                hoeffding_upper_tail(z)
            );
        }
        assert_eq!(hoeffding_upper_tail(0.0), 1.0);
        assert_eq!(hoeffding_upper_tail(-3.0), 1.0);
        // The default threshold 1e-6 is crossed between z = 5.25 and 5.26.
        assert!(hoeffding_upper_tail(5.25) > 1e-6);
        assert!(hoeffding_upper_tail(5.26) < 1e-6);
    }

    #[test]
    fn refuses_small_layers_and_bad_strength() {
        let key = ModelKey::generate();
        let model = random_model(1, 16);
        assert!(matches!(
            embed(&model, &key, 1, &EmbedOptions::default()),
            Err(WatermarkError::TooSmall(_))
        ));
        let opts = EmbedOptions {
            strength: f64::NAN,
            ..EmbedOptions::default()
        };
        assert!(matches!(
            embed(&random_model(1, 128), &key, 1, &opts),
            Err(WatermarkError::Invalid(m)) if m == "strength NaN is not in (0, 10]"
        ));
    }
}
