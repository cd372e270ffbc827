//! `edgeward model keygen | shuffle | unshuffle | watermark …` end to end, and the short
//! version of the watermark evaluation (`scripts/models/watermark_eval.py --quick`: train the
//! digits MLP with numpy + scikit-learn, mark it with this binary, permute its hidden units
//! and prune 50 %, detect; accuracy drop ≤ 0.5 pp). Python with numpy, scikit-learn and
//! safetensors is found at `$EDGEWARD_PYTHON`; the tests fail when it is missing.

use std::path::{Path, PathBuf};

use crate::common::{edgeward, edgeward_bin, fails, ok, python};

const MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../edgeward-model/tests/data/digits-mlp.safetensors"
);
const PAYLOAD: &str = "0123456789abcdef";

fn keygen(dir: &Path, name: &str) -> PathBuf {
    let key = dir.join(name);
    ok(edgeward().args(["model", "keygen", "-o"]).arg(&key));
    key
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn keygen_writes_0600_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    fails(edgeward().args(["model", "keygen", "-o"]).arg(&key), 2);
}

#[test]
fn shuffle_round_trip_and_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    let (key, other) = (keygen(dir.path(), "k"), keygen(dir.path(), "o"));
    let (s, r) = (dir.path().join("s"), dir.path().join("r"));
    ok(edgeward()
        .args(["model", "shuffle", MODEL, "-o"])
        .arg(&s)
        .arg("--key-file")
        .arg(&key));
    let out = ok(edgeward()
        .args(["model", "unshuffle"])
        .arg(&s)
        .arg("-o")
        .arg(&r)
        .arg("--key-file")
        .arg(&key)
        .arg("--json"));
    assert_eq!(json(&out)["ok"], true);
    assert_eq!(std::fs::read(&r).unwrap(), std::fs::read(MODEL).unwrap());
    let err = fails(
        edgeward()
            .args(["model", "unshuffle"])
            .arg(&s)
            .arg("-o")
            .arg(dir.path().join("x"))
            .arg("--key-file")
            .arg(&other),
        1,
    );
    assert!(err.contains("wrong key"), "{err}");
    fails(
        edgeward()
            .args(["model", "shuffle", "/nonexistent", "-o"])
            .arg(dir.path().join("y"))
            .arg("--key-file")
            .arg(&key),
        2,
    );
}

#[test]
fn embed_detect_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (key, other) = (keygen(dir.path(), "k"), keygen(dir.path(), "o"));
    let marked = dir.path().join("marked.safetensors");
    ok(edgeward()
        .args(["model", "watermark", "embed", MODEL, "-o"])
        .arg(&marked)
        .arg("--key-file")
        .arg(&key)
        .args(["--payload", PAYLOAD]));
    let found = json(&ok(edgeward()
        .args(["model", "watermark", "detect"])
        .arg(&marked)
        .arg("--key-file")
        .arg(&key)
        .args(["--payload", PAYLOAD, "--json"])));
    assert_eq!(found["detected"], true);
    assert_eq!(found["payload"], PAYLOAD);
    assert_eq!(found["bits_matching"], 64);
    assert!(found["p_value"].as_f64().unwrap() < 1e-6);
    // Not found: the unmarked model, and the marked one under another key: exit 1.
    for (model, k) in [(Path::new(MODEL), &key), (marked.as_path(), &other)] {
        let out = crate::common::run(
            edgeward()
                .args(["model", "watermark", "detect"])
                .arg(model)
                .arg("--key-file")
                .arg(k)
                .arg("--json"),
        );
        assert_eq!(out.status.code(), Some(1));
        let v = json(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(v["detected"], false);
    }
    // Operator errors: a short payload, a bad alpha.
    fails(
        edgeward()
            .args(["model", "watermark", "embed", MODEL, "-o"])
            .arg(dir.path().join("x"))
            .arg("--key-file")
            .arg(&key)
            .args(["--payload", "abcd"]),
        2,
    );
    let err = fails(
        edgeward()
            .args(["model", "watermark", "detect"])
            .arg(&marked)
            .arg("--key-file")
            .arg(&key)
            .args(["--alpha", "2"]),
        2,
    );
    assert!(
        err.starts_with("error: invalid value '2' for '--alpha <ALPHA>': 2 is not in (0, 1)\n"),
        "{err}"
    );
}

#[test]
fn trigger_set_verification() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k");
    let set = dir.path().join("t.safetensors");
    ok(edgeward()
        .args(["model", "watermark", "triggers", "--key-file"])
        .arg(&key)
        .arg("-o")
        .arg(&set));
    // Read the secret labels with the reference Python safetensors and answer with them.
    let labels = ok(std::process::Command::new(python())
        .arg("-c")
        .arg(
            "import sys, json; from safetensors.numpy import load_file; \
         print(json.dumps({'predictions': load_file(sys.argv[1])['labels'].tolist()}))",
        )
        .arg(&set));
    let preds = dir.path().join("p.json");
    std::fs::write(&preds, labels).unwrap();
    let v = json(&ok(edgeward()
        .args(["model", "watermark", "verify-triggers", "--predictions"])
        .arg(&preds)
        .arg("--key-file")
        .arg(&key)
        .arg("--json")));
    assert_eq!(v["matches"], 50);
    assert!(v["p_value"].as_f64().unwrap() < 1e-49);
    let wrong = dir.path().join("w.json");
    std::fs::write(&wrong, serde_json::to_string(&vec![10u32; 50]).unwrap()).unwrap();
    fails(
        edgeward()
            .args(["model", "watermark", "verify-triggers", "--predictions"])
            .arg(&wrong)
            .arg("--key-file")
            .arg(&key),
        1,
    );
}

#[test]
fn short_evaluation_on_the_digits_mlp() {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/models/watermark_eval.py"
    );
    let out = ok(std::process::Command::new(python())
        .arg(script)
        .arg("--quick")
        .env("EDGEWARD_BIN", edgeward_bin()));
    let r = json(&out);
    assert!(r["drop_wb_pp"].as_f64().unwrap() <= 0.5, "{r}");
    let stolen = &r["rows"][1];
    assert_eq!(stolen["attack"], "permutation + 50 % pruning");
    assert_eq!(stolen["detected"], true, "{r}");
}
