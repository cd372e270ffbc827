//! The keyed shuffle on the real digits MLP: bit-for-bit restoration, opaque names, row
//! permutations that do not compensate each other (so the file is not a working model),
//! refusal of wrong keys and changed files, and interoperability with the reference
//! Python `safetensors` (at `$EDGEWARD_PYTHON`, default the project venv; the test fails
//! when it is missing).

use std::{path::PathBuf, process::Command};

use edgeward_model::{
    internal::tensors::TensorFile,
    model_key::ModelKey,
    shuffle::{shuffle, unshuffle, ShuffleError},
};

const MODEL: &[u8] = include_bytes!("data/digits-mlp.safetensors");

fn key(seed: u8) -> ModelKey {
    ModelKey::from_secret(zeroize::Zeroizing::new([seed; 32]))
}

fn rows(file: &TensorFile<'_>, name: &str, row_bytes: usize) -> Vec<Vec<u8>> {
    let t = file.get(name).unwrap();
    file.data(t).chunks(row_bytes).map(<[u8]>::to_vec).collect()
}

/// For each row of `shuffled`, the index of the equal row of `original`.
fn recover_permutation(original: &[Vec<u8>], shuffled: &[Vec<u8>]) -> Vec<usize> {
    shuffled
        .iter()
        .map(|r| original.iter().position(|o| o == r).unwrap())
        .collect()
}

#[test]
fn restores_bit_for_bit_and_hides_names() {
    let k = key(1);
    let shuffled = shuffle(MODEL, &k).unwrap();
    assert_eq!(unshuffle(&shuffled, &k).unwrap(), MODEL);
    // (Strings that cannot occur in the hex-encoded encrypted header.)
    for name in ["fc1.", "fc2.", "weight", "bias"] {
        assert!(
            !shuffled.windows(name.len()).any(|w| w == name.as_bytes()),
            "{name} visible"
        );
    }
    // Salted per file: shuffling twice gives different files that both restore.
    let again = shuffle(MODEL, &k).unwrap();
    assert_ne!(again, shuffled);
    assert_eq!(unshuffle(&again, &k).unwrap(), MODEL);
}

#[test]
fn permutations_do_not_compensate_each_other() {
    let k = key(2);
    let original = TensorFile::parse(MODEL).unwrap();
    let shuffled_bytes = shuffle(MODEL, &k).unwrap();
    let shuffled = TensorFile::parse(&shuffled_bytes).unwrap();
    // Find where each original tensor went (their sizes differ in this model).
    let blob = |name: &str| {
        let len = original.get(name).unwrap().range.len();
        let t = shuffled
            .tensors()
            .iter()
            .find(|t| t.range.len() == len)
            .unwrap();
        shuffled.data(t).to_vec()
    };
    let split = |bytes: Vec<u8>, row: usize| -> Vec<Vec<u8>> {
        bytes.chunks(row).map(<[u8]>::to_vec).collect()
    };
    let p_weight = recover_permutation(
        &rows(&original, "fc1.weight", 64 * 4),
        &split(blob("fc1.weight"), 64 * 4),
    );
    let p_bias = recover_permutation(&rows(&original, "fc1.bias", 4), &split(blob("fc1.bias"), 4));
    let identity: Vec<usize> = (0..128).collect();
    assert_ne!(p_weight, identity);
    assert_ne!(p_bias, identity);
    assert_ne!(
        p_weight, p_bias,
        "a consistent permutation would leave the model working"
    );
    // fc2's columns (the hidden units) are not permuted at all: its rows (the classes) are.
    let fc2 = split(blob("fc2.weight"), 128 * 4);
    let p_classes = recover_permutation(&rows(&original, "fc2.weight", 128 * 4), &fc2);
    assert_ne!(p_classes, (0..10).collect::<Vec<_>>());
}

#[test]
fn refuses_wrong_key_and_changed_files() {
    let shuffled = shuffle(MODEL, &key(3)).unwrap();
    assert!(matches!(
        unshuffle(&shuffled, &key(4)),
        Err(ShuffleError::WrongKeyOrTampered)
    ));
    let mut changed = shuffled.clone();
    let n = changed.len();
    changed[n - 100] ^= 0x40;
    assert!(matches!(
        unshuffle(&changed, &key(3)),
        Err(ShuffleError::DigestMismatch)
    ));
    assert!(matches!(
        unshuffle(&shuffled[..n - 1], &key(3)),
        Err(ShuffleError::Tensors(_))
    ));
    assert!(matches!(
        shuffle(&shuffled, &key(3)),
        Err(ShuffleError::AlreadyShuffled)
    ));
    assert!(matches!(
        unshuffle(MODEL, &key(3)),
        Err(ShuffleError::NotShuffled(_))
    ));
}

fn python() -> PathBuf {
    let p = std::env::var_os("EDGEWARD_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/edgeward/venv/bin/python"));
    assert!(
        p.exists(),
        "{} not found (set EDGEWARD_PYTHON; the venv needs numpy and safetensors)",
        p.display()
    );
    p
}

#[test]
fn python_safetensors_reads_shuffled_and_restored_files() {
    let dir = tempfile::tempdir().unwrap();
    let k = key(5);
    let shuffled = shuffle(MODEL, &k).unwrap();
    let (s, r, o) = (
        dir.path().join("s.safetensors"),
        dir.path().join("r.safetensors"),
        dir.path().join("o.safetensors"),
    );
    std::fs::write(&s, &shuffled).unwrap();
    std::fs::write(&r, unshuffle(&shuffled, &k).unwrap()).unwrap();
    std::fs::write(&o, MODEL).unwrap();
    let script = r#"
import sys
import numpy as np
from safetensors.numpy import load_file
s, r, o = (load_file(p) for p in sys.argv[1:4])
assert all(v.dtype == np.uint8 and v.ndim == 1 for v in s.values()), "shuffled blobs are flat U8"
assert sorted(v.nbytes for v in s.values()) == sorted(v.nbytes for v in o.values())
assert r.keys() == o.keys() and all(np.array_equal(r[k], o[k]) for k in o)
print(len(s))
"#;
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .args([&s, &r, &o])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "4");
}
