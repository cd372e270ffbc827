//! The demo's encrypted-model chapter: a model signed and encrypted for one device is loaded
//! there through the verified in-memory path, and refused on a device it was not encrypted
//! for (called from `demo::story` after the key ceremony).

use std::{fs, path::Path};

use edgeward_artifact::{bundle_signing, NoProgress};
use edgeward_core::{cert_policy::Policy, keys::SigningKey, pem, verify::Trust};
use edgeward_model::{
    crypt::{self, EncryptOptions, RecipientKey},
    secure_load,
};
use edgeward_se::KeyAlgorithm;

use crate::{commands::sign::unix_now, demo::Demo};

/// A tiny valid safetensors file: one F32 tensor `w` of `n` values.
fn sample_safetensors(n: usize) -> Vec<u8> {
    let header = format!(
        r#"{{"w":{{"dtype":"F32","shape":[{n}],"data_offsets":[0,{}]}}}}"#,
        4 * n
    );
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend((0..n).flat_map(|i| (i as f32 / n as f32).to_le_bytes()));
    out
}

/// Runs the chapter's steps; `pki_dir` holds the ceremony's root, signing key and CRL.
pub(crate) fn story(demo: &mut Demo, dir: &Path, pki_dir: &Path) {
    let read = |p: &Path| fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let model = dir.join("encrypted-demo.safetensors");
    let sealed = dir.join("encrypted-demo.ewm");
    let (dev_a, dev_b) = (dir.join("device-a-se"), dir.join("device-b-se"));
    let element =
        |d: &Path| edgeward_se::open(&format!("soft:{}", d.display())).map_err(|e| e.to_string());
    let mut bundle = None;
    demo.step(
        "encrypt a signed model for device A (HPKE to its element's key)",
        || {
            let a = element(&dev_a)?;
            element(&dev_b)?
                .generate_key("device", KeyAlgorithm::P256)
                .map_err(|e| e.to_string())?;
            let key_a = a
                .generate_key("device", KeyAlgorithm::P256)
                .map_err(|e| e.to_string())?;
            let plain = sample_safetensors(1 << 20);
            fs::write(&model, &plain).map_err(|e| e.to_string())?;
            let signer = SigningKey::from_pem(&read(&pki_dir.join("signing.key"))?, None)
                .map_err(|e| e.to_string())?;
            let chain =
                pem::parse_labelled(&read(&pki_dir.join("signing-chain.pem"))?, "CERTIFICATE")
                    .map_err(|e| e.to_string())?;
            let options = bundle_signing::SignOptions {
                shard_size: Some(1 << 20),
                ignore_paths: Vec::new(),
                ignore_git_paths: true,
                signed_at: unix_now(),
            };
            bundle = Some(
                bundle_signing::sign_path(&model, &signer, Some(chain), &options, &NoProgress)
                    .map_err(|e| e.to_string())?,
            );
            let recipient = RecipientKey::new(&key_a).map_err(|e| e.to_string())?;
            let container = crypt::encrypt(&plain, &[recipient], EncryptOptions::default())
                .map_err(|e| e.to_string())?;
            fs::write(&sealed, &container).map_err(|e| e.to_string())?;
            fs::remove_file(&model).map_err(|e| e.to_string())?;
            Ok(format!(
                "4 MiB safetensors signed (certificate mode) and encrypted for device A ({}) → {}",
                key_a.fingerprint(),
                sealed.display()
            ))
        },
    );
    let load = |se_dir: &Path| -> Result<String, String> {
        let roots = pem::parse_labelled(&read(&pki_dir.join("root.pem"))?, "CERTIFICATE")
            .map_err(|e| e.to_string())?;
        let crls = pem::parse_labelled(&read(&pki_dir.join("crl.pem"))?, "X509 CRL")
            .map_err(|e| e.to_string())?;
        let trust = Trust::Roots {
            roots: &roots,
            crls: &crls,
            policy: Policy::default(),
        };
        let se = element(se_dir)?;
        let b = bundle.as_ref().ok_or("no bundle")?;
        let m = secure_load::open_verified(&sealed, b, &trust, unix_now(), &*se, "device")
            .map_err(|e| e.to_string())?;
        let tensors = m.safetensors().map_err(|e| e.to_string())?;
        Ok(format!(
            "signature verified against the root, decrypted in memory with the element's key, {} tensor(s) handed to the runtime; no plaintext on disk",
            tensors.len()
        ))
    };
    demo.step(
        "device A loads it: verify, decrypt in memory, parse",
        || load(&dev_a),
    );
    demo.step(
        "attack: the model copied to device B is refused",
        || match load(&dev_b) {
            Ok(_) => Err("device B decrypted a model not encrypted for it!".into()),
            Err(e) => Ok(format!("refused: {e}")),
        },
    );
}
