//! The demo's encrypted-model chapter: a model signed and encrypted for one device is loaded
//! there through the verified in-memory path, and refused on a device it was not encrypted
//! for (called from `demo::story` after the key ceremony).

use super::{fail, StepResult};
use std::{fs, path::Path};

use edgeward_artifact::{bundle_signing, NoProgress};
use edgeward_core::{cert_policy::Policy, keys::SigningKey, pem, verify::Trust};
use edgeward_model::{
    crypt::{self, EncryptOptions, RecipientKey},
    secure_load,
};
use edgeward_se::KeyAlgorithm;

use edgeward_core::civil::unix_now;

use crate::demo::Demo;

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

/// Looks at every file under `dir` (the chapter's files: the container, both elements'
/// state) and fails if one holds the plaintext model's safetensors header, which the
/// in-memory load must never write; returns how many files were looked at.
fn no_plaintext_in(dir: &Path) -> StepResult<usize> {
    let plain = sample_safetensors(1 << 20);
    let header_len = 8 + u64::from_le_bytes(plain[..8].try_into().unwrap_or_default()) as usize;
    let needle = &plain[8..header_len.min(plain.len())];
    let mut stack = vec![dir.to_path_buf()];
    let mut files = 0;
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            files += 1;
            let bytes = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            if bytes.windows(needle.len()).any(|w| w == needle) {
                return fail(format!("{} holds the plaintext model", path.display()));
            }
        }
    }
    Ok(files)
}

/// Runs the chapter's steps; `pki_dir` holds the ceremony's root, signing key and CRL.
pub(crate) fn story(demo: &mut Demo, dir: &Path, pki_dir: &Path) {
    let read = |p: &Path| fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let model = dir.join("encrypted-demo.safetensors");
    let sealed = dir.join("encrypted-demo.ewm");
    let (dev_a, dev_b) = (dir.join("device-a-se"), dir.join("device-b-se"));
    let element = |d: &Path| edgeward_se::open(&format!("soft:{}", d.display()));
    let mut bundle = None;
    demo.step(
        "encrypt a signed model for device A (HPKE to its element's key)",
        || {
            let a = element(&dev_a)?;
            element(&dev_b)?.generate_key("device", KeyAlgorithm::P256)?;
            let key_a = a.generate_key("device", KeyAlgorithm::P256)?;
            let plain = sample_safetensors(1 << 20);
            fs::write(&model, &plain)?;
            let signer = SigningKey::from_pem(
                &read(&pki_dir.join(edgeward_pki::files::SIGNING_KEY))?,
                None,
            )?;
            let chain = pem::parse_labelled(
                &read(&pki_dir.join(edgeward_pki::files::SIGNING_CHAIN))?,
                "CERTIFICATE",
            )?;
            let options = bundle_signing::SignOptions {
                shard_size: Some(1 << 20),
                ignore_paths: Vec::new(),
                ignore_git_paths: true,
                signed_at: unix_now(),
            };
            bundle = Some(bundle_signing::sign_path(
                &model,
                &signer,
                Some(chain),
                &options,
                &NoProgress,
            )?);
            let recipient = RecipientKey::new(&key_a)?;
            let container = crypt::encrypt(&plain, &[recipient], EncryptOptions::default())?;
            fs::write(&sealed, &container)?;
            fs::remove_file(&model)?;
            Ok(format!(
                "4 MiB safetensors signed (certificate mode) and encrypted for device A ({}) → {}",
                key_a.fingerprint(),
                sealed.display()
            ))
        },
    );
    let load = |se_dir: &Path| -> StepResult<String> {
        let roots = pem::parse_labelled(
            &read(&pki_dir.join(edgeward_pki::files::ROOT_CERT))?,
            "CERTIFICATE",
        )?;
        let crls =
            pem::parse_labelled(&read(&pki_dir.join(edgeward_pki::files::CRL))?, "X509 CRL")?;
        let trust = Trust::Roots {
            roots: &roots,
            crls: &crls,
            policy: Policy::default(),
        };
        let se = element(se_dir)?;
        let b = bundle.as_ref().ok_or("no bundle")?;
        let m = secure_load::open_verified(&sealed, b, &trust, unix_now(), &*se, "device")?;
        let tensors = m.safetensors()?;
        let files = no_plaintext_in(dir)?;
        Ok(format!(
            "signature verified against the root, decrypted in memory with the element's key, {} tensor(s) handed to the runtime; no plaintext on disk (none of the {files} files in {} holds the model's header)",
            tensors.len(),
            dir.display()
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
