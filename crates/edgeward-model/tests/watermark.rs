//! The white-box watermark on the real digits MLP (`tests/data/digits-mlp.safetensors`,
//! written by `scripts/models/train_digits.py --seed 0`): detected after a hidden-unit
//! permutation with 50 % pruning, after Gaussian noise and int8 quantization; silent on the
//! unmarked model and under another key; trigger sets verified with the binomial test.
//! (The full evaluation with accuracies is `scripts/models/watermark_eval.py`; the CLI
//! tests run its short version.)

use edgeward_model::{
    internal::tensors::{Matrix, TensorFile},
    model_key::ModelKey,
    watermark::{
        launder,
        triggers::TriggerSet,
        whitebox::{detect, embed, EmbedOptions},
        WatermarkError,
    },
    TensorFileError,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

const MODEL: &[u8] = include_bytes!("data/digits-mlp.safetensors");
const PAYLOAD: u64 = 0xfeed_0123_4567_beef;

fn key(seed: u8) -> ModelKey {
    ModelKey::from_secret(zeroize::Zeroizing::new([seed; 32]))
}

/// Applies `f` to the F32 tensors of a model, returning the new file.
fn rewrite(model: &[u8], mut f: impl FnMut(&str, &mut Vec<f32>, &[usize])) -> Vec<u8> {
    let file = TensorFile::parse(model).unwrap();
    let mut out = model.to_vec();
    for t in file.tensors() {
        let mut values: Vec<f32> = file
            .data(t)
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        f(&t.name, &mut values, &t.shape);
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        out[t.range.clone()].copy_from_slice(&bytes);
    }
    out
}

fn permute_hidden(model: &[u8], seed: u64) -> Vec<u8> {
    launder::permute_hidden(model, "fc1.weight", "fc1.bias", "fc2.weight", seed).unwrap()
}

fn prune(model: &[u8], fraction: f64) -> Vec<u8> {
    launder::prune(model, &["fc1.weight", "fc2.weight"], fraction).unwrap()
}

fn std_dev(v: &[f32]) -> f32 {
    let m = v.iter().sum::<f32>() / v.len() as f32;
    (v.iter().map(|x| (x - m).powi(2)).sum::<f32>() / v.len() as f32).sqrt()
}

/// Adds Gaussian noise of `sigmas` standard deviations of each weight matrix.
fn noise(model: &[u8], sigmas: f32, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    rewrite(model, |name, v, _| {
        if name.ends_with("weight") {
            let s = std_dev(v) * sigmas;
            for x in v.iter_mut() {
                // Box–Muller.
                let (u1, u2): (f32, f32) = (rng.gen_range(f32::EPSILON..1.0), rng.gen());
                *x += s * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos();
            }
        }
    })
}

/// Symmetric per-tensor int8 quantization and back.
fn int8(model: &[u8]) -> Vec<u8> {
    rewrite(model, |_, v, _| {
        let scale = v.iter().fold(0f32, |m, x| m.max(x.abs())) / 127.0;
        v.iter_mut().for_each(|x| *x = (*x / scale).round() * scale);
    })
}

#[test]
fn survives_permutation_pruning_noise_and_quantization() {
    let k = key(7);
    let (marked, report) = embed(MODEL, &k, PAYLOAD, &EmbedOptions::default()).unwrap();
    assert_eq!(report.units, 32);
    assert!(report.rms_change < 0.5, "{report:?}");
    for (name, attacked) in [
        ("marked", marked.clone()),
        (
            "permuted + 50 % pruned",
            prune(&permute_hidden(&marked, 1), 0.5),
        ),
        ("noise 0.5 sigma", noise(&marked, 0.5, 2)),
        ("int8", int8(&marked)),
        ("permuted + int8", int8(&permute_hidden(&marked, 3))),
    ] {
        let d = detect(&attacked, &k, "fc1.weight", Some(PAYLOAD)).unwrap();
        assert!(d.p_value < 1e-6, "{name}: {d:?}");
        assert!(d.bits_matching.unwrap() >= 60, "{name}: {d:?}");
    }
}

#[test]
fn silent_without_the_mark_or_the_key() {
    let k = key(7);
    for model in [MODEL.to_vec(), permute_hidden(MODEL, 4)] {
        let d = detect(&model, &k, "fc1.weight", None).unwrap();
        assert!(d.p_value > 1e-6, "{d:?}");
    }
    let (marked, _) = embed(MODEL, &k, PAYLOAD, &EmbedOptions::default()).unwrap();
    for other in 8..12 {
        let d = detect(&marked, &key(other), "fc1.weight", None).unwrap();
        assert!(d.p_value > 1e-6, "key {other}: {d:?}");
    }
}

#[test]
fn marking_changes_only_the_marked_tensor() {
    let (marked, _) = embed(MODEL, &key(7), PAYLOAD, &EmbedOptions::default()).unwrap();
    let (a, b) = (
        TensorFile::parse(MODEL).unwrap(),
        TensorFile::parse(&marked).unwrap(),
    );
    assert_eq!(a.header(), b.header());
    for t in a.tensors() {
        assert_eq!(a.data(t) == b.data(t), t.name != "fc1.weight", "{}", t.name);
    }
}

#[test]
fn refuses_unusable_layers() {
    let k = key(7);
    let missing = EmbedOptions {
        tensor: "nope".into(),
        ..EmbedOptions::default()
    };
    assert!(matches!(
        embed(MODEL, &k, 1, &missing),
        Err(WatermarkError::Tensors(_))
    ));
    let bias = EmbedOptions {
        tensor: "fc1.bias".into(),
        ..EmbedOptions::default()
    };
    // A bias is a vector: no matrix of units x inputs to spread the mark over.
    assert!(matches!(
        embed(MODEL, &k, 1, &bias),
        Err(WatermarkError::Tensors(TensorFileError::WrongKind { name, wanted: "a 2-D F32 matrix", .. }))
            if name == "fc1.bias"
    ));
    // fc2.weight is 10 x 128: 2 units cannot carry the mark.
    assert!(matches!(
        detect(MODEL, &k, "fc2.weight", None),
        Err(WatermarkError::TooSmall(_))
    ));
    let nan = rewrite(MODEL, |name, v, _| {
        if name == "fc1.weight" {
            v[5] = f32::NAN;
        }
    });
    assert!(matches!(
        detect(&nan, &k, "fc1.weight", None),
        Err(WatermarkError::Tensors(TensorFileError::NotFinite(name))) if name == "fc1.weight"
    ));
}

#[test]
fn trigger_sets_are_keyed_and_tested_exactly() {
    let set = TriggerSet::derive(&key(7), 50, 64, 10).unwrap();
    let other = TriggerSet::derive(&key(8), 50, 64, 10).unwrap();
    assert_ne!(set.labels, other.labels);
    // A model that learned the set reproduces it: p = 0.1^50.
    assert!(set.verify(&set.labels).unwrap().p_value < 1e-49);
    // A model that did not agrees by chance only.
    let v = set.verify(&other.labels).unwrap();
    assert!(v.p_value > 1e-6, "{v:?}");
    // 14 of 50 (chance 5): P(X >= 14) for Binomial(50, 0.1) = 2.8512e-4 (scipy binom.sf).
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let predictions: Vec<u32> = (0..50)
        .map(|i| match i {
            0..14 => set.labels[i],
            _ => (set.labels[i] + rng.gen_range(1..10)) % 10,
        })
        .collect();
    let v = set.verify(&predictions).unwrap();
    assert_eq!(v.matches, 14);
    assert!((v.p_value - 2.8512e-4).abs() < 1e-8, "{v:?}");
}

#[test]
fn matrix_rows_round_trip() {
    let m = TensorFile::parse(MODEL)
        .unwrap()
        .f32_matrix("fc1.weight")
        .unwrap();
    let again = Matrix {
        rows: m.rows,
        cols: m.cols,
        data: m
            .to_le_bytes()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
    };
    assert_eq!(m, again);
    assert_eq!(m.row(1), &m.data[64..128]);
}

#[test]
fn laundering_preserves_the_function() {
    fn forward(model: &[u8], x: &[f32]) -> Vec<f32> {
        let f = TensorFile::parse(model).unwrap();
        let (w1, w2) = (
            f.f32_matrix("fc1.weight").unwrap(),
            f.f32_matrix("fc2.weight").unwrap(),
        );
        let bias = |n: &str| -> Vec<f32> {
            f.data(f.get(n).unwrap())
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect()
        };
        let (b1, b2) = (bias("fc1.bias"), bias("fc2.bias"));
        let h: Vec<f32> = (0..w1.rows)
            .map(|r| (w1.row(r).iter().zip(x).map(|(w, v)| w * v).sum::<f32>() + b1[r]).max(0.0))
            .collect();
        (0..w2.rows)
            .map(|o| w2.row(o).iter().zip(&h).map(|(w, v)| w * v).sum::<f32>() + b2[o])
            .collect()
    }
    let x: Vec<f32> = (0..64).map(|i| (i % 7) as f32 / 7.0).collect();
    let (a, b) = (forward(MODEL, &x), forward(&permute_hidden(MODEL, 9), &x));
    assert!(
        a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-4),
        "{a:?} {b:?}"
    );
    assert_ne!(permute_hidden(MODEL, 9), MODEL);
    let pruned = prune(MODEL, 0.5);
    let w = TensorFile::parse(&pruned)
        .unwrap()
        .f32_matrix("fc1.weight")
        .unwrap();
    let zeros = w.data.iter().filter(|v| **v == 0.0).count();
    assert!(
        (zeros as f64 / w.data.len() as f64 - 0.5).abs() < 0.01,
        "{zeros}"
    );
}
