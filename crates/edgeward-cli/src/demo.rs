//! `edgeward demo`: the whole story on the embedded default, in a temporary directory, with
//! no services: the key ceremony, signing a firmware image and a model directory, verifying
//! them and two attacks being refused; then the device (demo_boot), the model's protection
//! (demo_crypt, demo_watermark) and the control plane (demo_server).

use std::{fs, path::Path, time::Instant};

use edgeward_core::{bundle::Bundle, chain::Policy, keys::SigningKey, pem, verify::Trust};
use edgeward_model::{artifact, raw, NoProgress};
use edgeward_pki::{issue, Hierarchy};
use rand_core::{OsRng, RngCore};
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use crate::{
    cli::DemoArgs,
    outcome::{print_json, Failure, Outcome},
    sign_cmd::unix_now,
};

/// DER certificates or CRLs.
type DerList = Vec<Vec<u8>>;

/// One step of the demo: `ok` means the step had the expected outcome (for an attack: it
/// was refused).
#[derive(Serialize)]
struct Step {
    name: &'static str,
    ok: bool,
    detail: String,
    millis: u128,
}

pub(crate) struct Demo {
    steps: Vec<Step>,
    json: bool,
}

impl Demo {
    pub(crate) fn step(&mut self, name: &'static str, f: impl FnOnce() -> Result<String, String>) {
        let start = Instant::now();
        let (ok, detail) = match f() {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        if !self.json {
            println!("{} {name}\n    {detail}", if ok { "✓" } else { "✗" });
        }
        self.steps.push(Step {
            name,
            ok,
            detail,
            millis: start.elapsed().as_millis(),
        });
    }
}

pub fn run(a: DemoArgs) -> Outcome {
    let tmp;
    let dir = match &a.keep {
        Some(d) => {
            if d.join("pki").exists() {
                return Err(Failure::operator(format!(
                    "{} already holds a demo; give --keep an empty or new directory",
                    d.display()
                )));
            }
            fs::create_dir_all(d)
                .map_err(|e| Failure::operator(format!("{}: {e}", d.display())))?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir()
                .map_err(|e| Failure::operator(format!("temporary directory: {e}")))?;
            tmp.path().to_path_buf()
        }
    };
    let mut demo = Demo {
        steps: Vec::new(),
        json: a.json,
    };
    if !a.json {
        println!("Edgeward demo in {}\n", dir.display());
    }
    story(&mut demo, &dir);
    crate::demo_boot::story(&mut demo, &dir.join("device"), &dir.join("pki"));
    crate::demo_crypt::story(&mut demo, &dir.join("model"), &dir.join("pki"));
    crate::demo_watermark::story(&mut demo, &dir.join("watermark"));
    crate::demo_server::story(&mut demo, &dir.join("server"));
    let passed = demo.steps.iter().filter(|s| s.ok).count();
    let all_ok = passed == demo.steps.len();
    if a.json {
        print_json(&serde_json::json!({
            "ok": all_ok,
            "dir": dir,
            "steps": demo.steps,
        }));
    } else {
        println!(
            "\nsummary: {passed}/{} steps as expected — {}",
            demo.steps.len(),
            if all_ok {
                "signed artifacts verify under the root, tampering and unendorsed keys are refused; the device boots only a signed chain, attests from its element and opens only models encrypted to it; a stolen model carries its owner's mark; the control plane admits only enrolled, authenticated, unquarantined devices within their rate"
            } else {
                "SOMETHING IS WRONG"
            }
        );
    }
    if all_ok {
        Ok(())
    } else {
        Err(Failure::rejected("the demo did not go as expected"))
    }
}

fn story(demo: &mut Demo, dir: &Path) {
    let pki_dir = dir.join("pki");
    let mut pass = [0u8; 24];
    OsRng.fill_bytes(&mut pass);
    let pass: Vec<u8> = pass.iter().map(|b| b'a' + (b % 26)).collect();
    let now = OffsetDateTime::now_utc();

    demo.step("key ceremony", || {
        Hierarchy::init(&pki_dir, "Edgeward Demo", &pass, 90, issue::KeyAlg::P256, now)
            .map_err(|e| e.to_string())?;
        // The demo's throwaway root passphrase, so a kept demo (--keep) can be rotated.
        edgeward_pki::store::write_atomic(&dir.join("DEMO-ROOT-PASSPHRASE"), &pass, true)
            .map_err(|e| e.to_string())?;
        Ok(format!(
            "offline root (encrypted key), 90-day code-signing certificate, device CA and empty CRL in {}",
            pki_dir.display()
        ))
    });

    let firmware = dir.join("firmware.bin");
    let model = dir.join("model");
    let setup = (|| -> std::io::Result<()> {
        fs::write(&firmware, random_bytes(8 << 20))?;
        fs::create_dir_all(model.join("tokenizer"))?;
        fs::write(
            model.join("config.json"),
            br#"{"architectures":["DemoNet"],"hidden_size":256}"#,
        )?;
        fs::write(model.join("model.safetensors"), random_bytes(24 << 20))?;
        fs::write(
            model.join("tokenizer/vocab.txt"),
            b"[PAD]\n[UNK]\nedge\nward\n",
        )?;
        Ok(())
    })();
    if let Err(e) = setup {
        demo.step("sample artifacts", || Err(e.to_string()));
        return;
    }

    let signing = || -> Result<(SigningKey, Vec<Vec<u8>>), String> {
        let key = SigningKey::from_pem(&read(&pki_dir.join("signing.key"))?, None)
            .map_err(|e| e.to_string())?;
        let chain = pem::parse_labelled(&read(&pki_dir.join("signing-chain.pem"))?, "CERTIFICATE")
            .map_err(|e| e.to_string())?;
        Ok((key, chain))
    };
    let roots = || -> Result<(DerList, DerList), String> {
        let roots = pem::parse_labelled(&read(&pki_dir.join("root.pem"))?, "CERTIFICATE")
            .map_err(|e| e.to_string())?;
        let crls = pem::parse_labelled(&read(&pki_dir.join("crl.pem"))?, "X509 CRL")
            .map_err(|e| e.to_string())?;
        Ok((roots, crls))
    };
    let options = artifact::SignOptions {
        shard_size: Some(edgeward_model::hashing::DEFAULT_SHARD_SIZE),
        ignore_paths: Vec::new(),
        ignore_git_paths: true,
        signed_at: unix_now(),
    };
    let verify = |path: &Path, bundle: &Bundle| -> Result<String, String> {
        let (roots, crls) = roots()?;
        let trust = Trust::Roots {
            roots: &roots,
            crls: &crls,
            policy: Policy::default(),
        };
        artifact::verify_path(path, bundle, &trust, unix_now(), &[], &NoProgress)
            .map(|v| {
                let n = v.statement.manifest.items.len();
                format!(
                    "{n} digest{} verified; signer {} endorsed by the root",
                    if n == 1 { "" } else { "s" },
                    v.certificate.map(|c| c.subject).unwrap_or_default()
                )
            })
            .map_err(|e| e.to_string())
    };

    let mut firmware_bundle = None;
    demo.step("sign firmware image (bundle, certificate mode)", || {
        let (key, chain) = signing()?;
        let b = artifact::sign_path(&firmware, &key, Some(chain), &options, &NoProgress)
            .map_err(|e| e.to_string())?;
        fs::write(dir.join("firmware.bin.sig"), b.to_json()).map_err(|e| e.to_string())?;
        firmware_bundle = Some(b);
        Ok("firmware.bin (8 MiB) → firmware.bin.sig (OpenSSF model-signing bundle)".into())
    });
    demo.step("verify firmware image against the root", || {
        verify(&firmware, firmware_bundle.as_ref().ok_or("no bundle")?)
    });
    demo.step("raw signature, as openssl dgst -sha256 -sign makes it", || {
        let (key, _) = signing()?;
        let sig = raw::sign_file(&firmware, &key, &NoProgress).map_err(|e| e.to_string())?;
        raw::verify_file(&firmware, &key.public_key(), &sig, &NoProgress).map_err(|e| e.to_string())?;
        fs::write(dir.join("firmware.bin.rawsig"), &sig).map_err(|e| e.to_string())?;
        Ok(format!(
            "{}-byte DER ECDSA-Sig-Value, the format `openssl dgst -sha256 -verify` reads (crates/edgeward-cli/tests/interop_openssl.rs checks that openssl verifies signatures made this way)",
            sig.len()
        ))
    });

    let mut model_bundle = None;
    demo.step("sign model directory", || {
        let (key, chain) = signing()?;
        let b = artifact::sign_path(&model, &key, Some(chain), &options, &NoProgress)
            .map_err(|e| e.to_string())?;
        let n = b.payload.len();
        model_bundle = Some(b);
        Ok(format!(
            "model/ (3 files, 24 MiB) signed; statement of {n} bytes"
        ))
    });
    demo.step("verify model directory against the root", || {
        verify(&model, model_bundle.as_ref().ok_or("no bundle")?)
    });

    demo.step("attack: one flipped byte in the weights is refused", || {
        let weights = model.join("model.safetensors");
        let mut bytes = fs::read(&weights).map_err(|e| e.to_string())?;
        bytes[12_345_678] ^= 0x01;
        fs::write(&weights, &bytes).map_err(|e| e.to_string())?;
        match verify(&model, model_bundle.as_ref().ok_or("no bundle")?) {
            Ok(_) => Err("the tampered model verified!".into()),
            Err(e) => Ok(format!("refused: {e}")),
        }
    });

    demo.step("attack: a key the root never endorsed is refused", || {
        let rogue_key = issue::generate_key(issue::KeyAlg::P256).map_err(|e| e.to_string())?;
        let rogue_root_key = issue::generate_key(issue::KeyAlg::P256).map_err(|e| e.to_string())?;
        let start = now - Duration::minutes(5);
        let rogue_root = issue::root_params("Mallory", start, start + Duration::days(365))
            .self_signed(&rogue_root_key)
            .map_err(|e| e.to_string())?;
        let issuer =
            issue::issuer_from_pem(&rogue_root.pem(), rogue_root_key).map_err(|e| e.to_string())?;
        let cert = issue::signing_params("Mallory", start, start + Duration::days(30), true)
            .signed_by(&rogue_key, &issuer)
            .map_err(|e| e.to_string())?;
        let key =
            SigningKey::from_pkcs8_der(&rogue_key.serialize_der()).map_err(|e| e.to_string())?;
        let chain = vec![cert.der().to_vec(), rogue_root.der().to_vec()];
        let b = artifact::sign_path(&firmware, &key, Some(chain), &options, &NoProgress)
            .map_err(|e| e.to_string())?;
        match verify(&firmware, &b) {
            Ok(_) => Err("the rogue signature verified!".into()),
            Err(e) => Ok(format!("refused: {e}")),
        }
    });
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    OsRng.fill_bytes(&mut v);
    v
}

pub(crate) fn read(p: &Path) -> Result<Vec<u8>, String> {
    fs::read(p).map_err(|e| format!("{}: {e}", p.display()))
}
