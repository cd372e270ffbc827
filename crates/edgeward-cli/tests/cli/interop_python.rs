//! Interop with Python: the `verify_model` recipe of the best-practice guide, verbatim, on
//! Edgeward's Ed25519 signatures (and Python-made signatures verified by Edgeward); and the
//! PyPI `model_signing` 1.1 CLI verifying what `edgeward sign` signed, in key and certificate
//! mode, and `edgeward verify` accepting what `model_signing sign` signed.

use crate::common::*;
use std::{fs, path::Path};

/// `verify_model` exactly as ../shared/reference/edge-ai-security-practices.txt gives it.
const VERIFY_MODEL_RECIPE: &str = r#"
import hashlib
from cryptography.hazmat.primitives import serialization
def verify_model(model_path, signature_path, public_key_path):
    with open(public_key_path, "rb") as f:
        public_key = serialization.load_pem_public_key(f.read())
    with open(model_path, "rb") as f:
        model_data = f.read()
    with open(signature_path, "rb") as f:
        signature = f.read()
    # Verify model signature
    public_key.verify(signature, model_data)
    print("Model signature verified")

import sys
verify_model(sys.argv[1], sys.argv[2], sys.argv[3])
"#;

const PYTHON_SIGN_ED25519: &str = r#"
import sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
private_key = ed25519.Ed25519PrivateKey.generate()
with open(sys.argv[1], "rb") as f:
    data = f.read()
with open(sys.argv[2], "wb") as f:
    f.write(private_key.sign(data))
with open(sys.argv[3], "wb") as f:
    f.write(private_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
"#;

#[test]
fn the_verify_model_recipe_accepts_edgeward_ed25519_signatures() {
    let t = tempfile::tempdir().expect("tmp");
    let d = t.path();
    let model = d.join("model.onnx");
    fs::write(&model, bytes(2_000_000, 5)).expect("write");
    let (key, pubkey) = ed25519_keypair(d);
    let sig = d.join("model.sig");
    ok(edgeward()
        .args(["sign", "--raw"])
        .arg(&model)
        .arg("--key")
        .arg(&key)
        .arg("-o")
        .arg(&sig));
    let script = d.join("verify_model.py");
    fs::write(&script, VERIFY_MODEL_RECIPE).expect("write");
    let out = ok(std::process::Command::new(python())
        .arg(&script)
        .arg(&model)
        .arg(&sig)
        .arg(&pubkey));
    assert_eq!(out.trim(), "Model signature verified");

    // A flipped byte makes the recipe raise InvalidSignature.
    let mut data = fs::read(&model).expect("read");
    data[0] ^= 1;
    fs::write(&model, &data).expect("write");
    let out = run(std::process::Command::new(python())
        .arg(&script)
        .arg(&model)
        .arg(&sig)
        .arg(&pubkey));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("InvalidSignature"));
}

#[test]
fn python_cryptography_ed25519_signatures_verify_with_edgeward() {
    let t = tempfile::tempdir().expect("tmp");
    let d = t.path();
    let model = d.join("model.bin");
    fs::write(&model, bytes(1_234_567, 6)).expect("write");
    let script = d.join("sign.py");
    fs::write(&script, PYTHON_SIGN_ED25519).expect("write");
    let (sig, pubkey) = (d.join("model.sig"), d.join("pub.pem"));
    ok(std::process::Command::new(python())
        .arg(&script)
        .arg(&model)
        .arg(&sig)
        .arg(&pubkey));
    assert_eq!(fs::metadata(&sig).expect("sig").len(), 64);
    ok(edgeward()
        .args(["verify", "--raw"])
        .arg(&model)
        .arg("--signature")
        .arg(&sig)
        .arg("--pubkey")
        .arg(&pubkey));
    let mut data = fs::read(&model).expect("read");
    let last = data.len() - 1;
    data[last] ^= 0x80;
    fs::write(&model, &data).expect("write");
    let err = fails(
        edgeward()
            .args(["verify", "--raw"])
            .arg(&model)
            .arg("--signature")
            .arg(&sig)
            .arg("--pubkey")
            .arg(&pubkey),
        1,
    );
    assert!(err.contains("Ed25519 signature is not by key"), "{err}");
}

fn ms_verify_key(model: &Path, sig: &Path, pubkey: &Path) -> std::process::Output {
    run(std::process::Command::new(model_signing())
        .args(["verify", "key"])
        .arg(model)
        .arg("--signature")
        .arg(sig)
        .arg("--public_key")
        .arg(pubkey))
}

fn ms_verify_cert(model: &Path, sig: &Path, root: &Path) -> std::process::Output {
    run(std::process::Command::new(model_signing())
        .args(["verify", "certificate"])
        .arg(model)
        .arg("--signature")
        .arg(sig)
        .arg("--certificate_chain")
        .arg(root))
}

/// Verifies with model_signing's Python API, which takes the serialization (files or
/// shards) from the signature.
fn ms_api_verify(model: &Path, sig: &Path, verifier: &str, trust: &Path) -> std::process::Output {
    let script = format!(
        "import sys, model_signing\nmodel_signing.verifying.Config().{verifier}.verify(sys.argv[1], sys.argv[2])\nprint('Verification succeeded')\n"
    );
    run(std::process::Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(model)
        .arg(sig)
        .arg(trust))
}

fn succeeded(out: &std::process::Output) -> bool {
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verification succeeded")
}

#[test]
fn model_signing_verifies_what_edgeward_signed() {
    let t = tempfile::tempdir().expect("tmp");
    let d = t.path();
    let p = d.join("pki");
    pki(&p);
    let model = d.join("model");
    make_model(&model);
    let pubkey = d.join("signing.pub");
    ok(openssl()
        .args(["x509", "-pubkey", "-noout", "-in"])
        .arg(p.join("signing.pem"))
        .arg("-out")
        .arg(&pubkey));

    // model_signing's CLI verifies files mode (Edgeward's default); its Python API also
    // reads the serialization from the signature and verifies shard mode.
    for shard in ["0", "1MiB"] {
        // Key mode.
        let sig = d.join(format!("key-{shard}.sig"));
        ok(edgeward()
            .arg("sign")
            .arg(&model)
            .arg("--key")
            .arg(p.join("signing.key"))
            .args(["--shard-size", shard, "-o"])
            .arg(&sig));
        let out = if shard == "0" {
            ms_verify_key(&model, &sig, &pubkey)
        } else {
            ms_api_verify(
                &model,
                &sig,
                "use_elliptic_key_verifier(public_key=sys.argv[3])",
                &pubkey,
            )
        };
        assert!(succeeded(&out), "model_signing verify key: {out:?}");
        // Certificate mode.
        let sig = d.join(format!("cert-{shard}.sig"));
        ok(edgeward()
            .arg("sign")
            .arg(&model)
            .arg("--key")
            .arg(p.join("signing.key"))
            .arg("--cert-chain")
            .arg(p.join("signing-chain.pem"))
            .args(["--shard-size", shard, "-o"])
            .arg(&sig));
        let out = if shard == "0" {
            ms_verify_cert(&model, &sig, &p.join("root.pem"))
        } else {
            ms_api_verify(
                &model,
                &sig,
                "use_certificate_verifier(certificate_chain=[sys.argv[3]])",
                &p.join("root.pem"),
            )
        };
        assert!(succeeded(&out), "model_signing verify certificate: {out:?}");
    }

    // A single file (the resource name is "."), and a signature stored inside the model.
    let fw = d.join("firmware.bin");
    fs::write(&fw, bytes(300_000, 8)).expect("write");
    let sig = d.join("fw.sig");
    ok(edgeward()
        .arg("sign")
        .arg(&fw)
        .arg("--key")
        .arg(p.join("signing.key"))
        .arg("-o")
        .arg(&sig));
    assert!(succeeded(&ms_verify_key(&fw, &sig, &pubkey)));
    let inside = model.join("model.sig");
    ok(edgeward()
        .arg("sign")
        .arg(&model)
        .arg("--key")
        .arg(p.join("signing.key"))
        .arg("-o")
        .arg(&inside));
    assert!(
        succeeded(&ms_verify_key(&model, &inside, &pubkey)),
        "signature inside the model dir"
    );
    ok(edgeward()
        .arg("verify")
        .arg(&model)
        .arg("--signature")
        .arg(&inside)
        .arg("--pubkey")
        .arg(&pubkey));
    fs::remove_file(&inside).expect("rm");

    // And model_signing notices tampering of an Edgeward-signed model, as Edgeward does.
    let sig = d.join("key-1MiB.sig");
    let weights = model.join("model.safetensors");
    let mut w = fs::read(&weights).expect("read");
    w[4_000_000] ^= 1;
    fs::write(&weights, &w).expect("write");
    assert!(!succeeded(&ms_api_verify(
        &model,
        &sig,
        "use_elliptic_key_verifier(public_key=sys.argv[3])",
        &pubkey
    )));
    fails(
        edgeward()
            .arg("verify")
            .arg(&model)
            .arg("--signature")
            .arg(&sig)
            .arg("--pubkey")
            .arg(&pubkey),
        1,
    );
}

#[test]
fn edgeward_verifies_what_model_signing_signed() {
    let t = tempfile::tempdir().expect("tmp");
    let d = t.path();
    let p = d.join("pki");
    pki(&p);
    let model = d.join("model");
    make_model(&model);
    let pubkey = d.join("signing.pub");
    ok(openssl()
        .args(["x509", "-pubkey", "-noout", "-in"])
        .arg(p.join("signing.pem"))
        .arg("-out")
        .arg(&pubkey));

    let key_sig = d.join("ms-key.sig");
    ok(std::process::Command::new(model_signing())
        .args(["sign", "key"])
        .arg(&model)
        .arg("--private_key")
        .arg(p.join("signing.key"))
        .arg("--signature")
        .arg(&key_sig));
    ok(edgeward()
        .arg("verify")
        .arg(&model)
        .arg("--signature")
        .arg(&key_sig)
        .arg("--pubkey")
        .arg(&pubkey));

    let cert_sig = d.join("ms-cert.sig");
    ok(std::process::Command::new(model_signing())
        .args(["sign", "certificate"])
        .arg(&model)
        .arg("--private_key")
        .arg(p.join("signing.key"))
        .arg("--signing_certificate")
        .arg(p.join("signing.pem"))
        .arg("--certificate_chain")
        .arg(p.join("root.pem"))
        .arg("--signature")
        .arg(&cert_sig));
    let out = ok(edgeward()
        .arg("verify")
        .arg(&model)
        .arg("--signature")
        .arg(&cert_sig)
        .arg("--trust-root")
        .arg(p.join("root.pem"))
        .arg("--crl")
        .arg(p.join("crl.pem"))
        .arg("--json"));
    let verdict: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(verdict["verified"], true, "{verdict}");

    // model_signing's Python API signs shards, writing the shard size as a float.
    let api_sig = d.join("ms-api-shards.sig");
    ok(std::process::Command::new(python())
        .arg("-c")
        .arg(
            "import sys, model_signing\n\
             h = model_signing.hashing.Config().use_shard_serialization(shard_size=1048576)\n\
             model_signing.signing.Config().use_elliptic_key_signer(private_key=sys.argv[3])\
             .set_hashing_config(h).sign(sys.argv[1], sys.argv[2])\n",
        )
        .arg(&model)
        .arg(&api_sig)
        .arg(p.join("signing.key")));
    assert!(String::from_utf8_lossy(&fs::read(&api_sig).expect("sig")).contains("dsseEnvelope"));
    let v = serde_json::from_str::<serde_json::Value>(&ok(edgeward()
        .arg("verify")
        .arg(&model)
        .arg("--signature")
        .arg(&api_sig)
        .arg("--pubkey")
        .arg(&pubkey)
        .arg("--json")))
    .expect("json");
    assert_eq!(v["details"]["items"], 8, "{v}");

    // An added file is caught in a model_signing-signed model too.
    fs::write(model.join("backdoor.py"), b"import os").expect("write");
    let err = fails(
        edgeward()
            .arg("verify")
            .arg(&model)
            .arg("--signature")
            .arg(&key_sig)
            .arg("--pubkey")
            .arg(&pubkey),
        1,
    );
    assert!(
        err.contains("\"backdoor.py\" is not covered by the signature"),
        "{err}"
    );
}
