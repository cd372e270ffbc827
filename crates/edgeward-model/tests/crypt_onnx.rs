//! An ONNX MLP (written by `scripts/models/make_onnx.py` with the Python `onnx` package),
//! signed and encrypted for a device, loaded through the verified path into tract: its
//! outputs are bit-identical to the plaintext model's and match onnx's reference evaluator;
//! on a second device the load fails. Needs the `onnx` feature and the project venv.

mod crypt_common;

use std::{path::PathBuf, process::Command};

use crypt_common::{device, pki};
use edgeward_model::{
    crypt::{self, CryptError, EncryptOptions, RecipientKey},
    secure_load::{open_verified, LoadError},
};
use tract_onnx::prelude::*;

fn python() -> PathBuf {
    let p = std::env::var_os("EDGEWARD_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/edgeward/venv/bin/python"));
    assert!(
        p.exists(),
        "{} not found (set EDGEWARD_PYTHON or run scripts/test.sh, which installs onnx)",
        p.display()
    );
    p
}

fn run(model: InferenceModel, input: &[f32]) -> Vec<f32> {
    let plan = model.into_optimized().unwrap().into_runnable().unwrap();
    let x = tract_ndarray::Array2::from_shape_vec((1, input.len()), input.to_vec()).unwrap();
    let out = plan.run(tvec!(Tensor::from(x).into())).unwrap();
    out[0]
        .to_plain_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}

#[test]
fn encrypted_signed_onnx_matches_plaintext_and_fails_on_another_device() {
    let dir = tempfile::tempdir().unwrap();
    let onnx_path = dir.path().join("mlp.onnx");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/models/make_onnx.py"
    );
    let status = Command::new(python())
        .arg(script)
        .arg(&onnx_path)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "make_onnx.py failed (is `onnx` installed in the venv?)"
    );
    let io: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("mlp.onnx.json")).unwrap()).unwrap();
    let input: Vec<f32> = io["input"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let reference: Vec<f32> = io["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();

    let pki = pki();
    let (dev, other) = (device(), device());
    let bundle = pki.sign(&onnx_path);
    let plain = std::fs::read(&onnx_path).unwrap();
    let container = crypt::encrypt(
        &plain,
        &[RecipientKey::new(&dev.key).unwrap()],
        EncryptOptions::default(),
    )
    .unwrap();
    let enc_path = dir.path().join("mlp.ewm");
    std::fs::write(&enc_path, &container).unwrap();

    let verified =
        open_verified(&enc_path, &bundle, &pki.trust(), pki.now, &dev.se, "device").unwrap();
    let secure = run(verified.tract_onnx().unwrap(), &input);
    let plain_out = run(onnx().model_for_path(&onnx_path).unwrap(), &input);
    assert_eq!(secure, plain_out, "bit-identical to the plaintext model");
    assert_eq!(secure.len(), 10);
    for (a, b) in secure.iter().zip(&reference) {
        assert!((a - b).abs() < 1e-4, "tract {a} vs onnx reference {b}");
    }

    let err = open_verified(
        &enc_path,
        &bundle,
        &pki.trust(),
        pki.now,
        &other.se,
        "device",
    )
    .unwrap_err();
    assert!(
        matches!(err, LoadError::Decrypt(CryptError::NotARecipient { .. })),
        "{err}"
    );
}
