//! The demo's first chapter: the key ceremony, a firmware image and a model directory
//! signed in certificate mode and verified against the root, a raw signature, and two
//! attacks refused (a flipped byte, a key the root never endorsed).

use super::StepResult;
use std::{fs, path::Path};

use edgeward_artifact::{bundle_signing, raw_signing, NoProgress};
use edgeward_core::{
    bundle::Bundle, cert_policy::Policy, civil::unix_now, keys::SigningKey, pem, verify::Trust,
};
use edgeward_pki::{issue, Hierarchy};
use rand_core::{OsRng, RngCore};
use time::{Duration, OffsetDateTime};

use crate::demo::{random_bytes, read, Demo};

/// DER certificates or CRLs.
type DerList = Vec<Vec<u8>>;

/// Runs the chapter's steps in `dir` (the hierarchy goes to `dir/pki`).
pub(crate) fn story(demo: &mut Demo, dir: &Path) {
    let pki_dir = dir.join("pki");
    let mut pass = [0u8; 24];
    OsRng.fill_bytes(&mut pass);
    let pass: Vec<u8> = pass.iter().map(|b| b'a' + (b % 26)).collect();
    let now = OffsetDateTime::now_utc();

    demo.step("key ceremony", || {
        Hierarchy::init(&pki_dir, "Edgeward Demo", &pass, 90, edgeward_core::keys::KeyAlgorithm::P256, now)
            ?;
        // The demo's throwaway root passphrase, so a kept demo (--keep) can be rotated.
        edgeward_pki::store::write_atomic(&dir.join("DEMO-ROOT-PASSPHRASE"), &pass, true)
            ?;
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
        demo.step("sample artifacts", || Err(e.into()));
        return;
    }

    let signing = || -> StepResult<(SigningKey, Vec<Vec<u8>>)> {
        let key = SigningKey::from_pem(
            &read(&pki_dir.join(edgeward_pki::files::SIGNING_KEY))?,
            None,
        )?;
        let chain = pem::parse_labelled(
            &read(&pki_dir.join(edgeward_pki::files::SIGNING_CHAIN))?,
            "CERTIFICATE",
        )?;
        Ok((key, chain))
    };
    let roots = || -> StepResult<(DerList, DerList)> {
        let roots = pem::parse_labelled(
            &read(&pki_dir.join(edgeward_pki::files::ROOT_CERT))?,
            "CERTIFICATE",
        )?;
        let crls =
            pem::parse_labelled(&read(&pki_dir.join(edgeward_pki::files::CRL))?, "X509 CRL")?;
        Ok((roots, crls))
    };
    let options = bundle_signing::SignOptions {
        shard_size: Some(edgeward_artifact::hashing::DEFAULT_SHARD_SIZE),
        ignore_paths: Vec::new(),
        ignore_git_paths: true,
        signed_at: unix_now(),
    };
    let verify = |path: &Path, bundle: &Bundle| -> StepResult<String> {
        let (roots, crls) = roots()?;
        let trust = Trust::Roots {
            roots: &roots,
            crls: &crls,
            policy: Policy::default(),
        };
        let v = bundle_signing::verify_path(path, bundle, &trust, unix_now(), &[], &NoProgress)?;
        let n = v.statement.manifest.items.len();
        Ok(format!(
            "{n} digest{} verified; signer {} endorsed by the root",
            if n == 1 { "" } else { "s" },
            v.certificate.map(|c| c.subject).unwrap_or_default()
        ))
    };

    let mut firmware_bundle = None;
    demo.step("sign firmware image (bundle, certificate mode)", || {
        let (key, chain) = signing()?;
        let b = bundle_signing::sign_path(&firmware, &key, Some(chain), &options, &NoProgress)?;
        fs::write(dir.join("firmware.bin.sig"), b.to_json())?;
        firmware_bundle = Some(b);
        Ok("firmware.bin (8 MiB) → firmware.bin.sig (OpenSSF model-signing bundle)".into())
    });
    demo.step("verify firmware image against the root", || {
        verify(&firmware, firmware_bundle.as_ref().ok_or("no bundle")?)
    });
    demo.step("raw signature, as openssl dgst -sha256 -sign makes it", || {
        let (key, _) = signing()?;
        let sig = raw_signing::sign_file(&firmware, &key, &NoProgress)?;
        raw_signing::verify_file(&firmware, &key.public_key(), &sig, &NoProgress)?;
        fs::write(dir.join("firmware.bin.rawsig"), &sig)?;
        Ok(format!(
            "{}-byte DER ECDSA-Sig-Value, the format `openssl dgst -sha256 -verify` reads (crates/edgeward-cli/tests/cli/interop_openssl.rs checks that openssl verifies signatures made this way)",
            sig.len()
        ))
    });

    let mut model_bundle = None;
    demo.step("sign model directory", || {
        let (key, chain) = signing()?;
        let b = bundle_signing::sign_path(&model, &key, Some(chain), &options, &NoProgress)?;
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
        let mut bytes = fs::read(&weights)?;
        bytes[12_345_678] ^= 0x01;
        fs::write(&weights, &bytes)?;
        match verify(&model, model_bundle.as_ref().ok_or("no bundle")?) {
            Ok(_) => Err("the tampered model verified!".into()),
            Err(e) => Ok(format!("refused: {e}")),
        }
    });

    demo.step("attack: a key the root never endorsed is refused", || {
        let rogue_key = issue::generate_key(edgeward_core::keys::KeyAlgorithm::P256)?;
        let rogue_root_key = issue::generate_key(edgeward_core::keys::KeyAlgorithm::P256)?;
        let start = now - Duration::minutes(5);
        let rogue_root = issue::root_params("Mallory", start, start + Duration::days(365))
            .self_signed(&rogue_root_key)?;
        let issuer = issue::issuer_from_pem(&rogue_root.pem(), rogue_root_key)?;
        let cert = issue::signing_params("Mallory", start, start + Duration::days(30), true)
            .signed_by(&rogue_key, &issuer)?;
        let key = SigningKey::from_pkcs8_der(&rogue_key.serialize_der())?;
        let chain = vec![cert.der().to_vec(), rogue_root.der().to_vec()];
        let b = bundle_signing::sign_path(&firmware, &key, Some(chain), &options, &NoProgress)?;
        match verify(&firmware, &b) {
            Ok(_) => Err("the rogue signature verified!".into()),
            Err(e) => Ok(format!("refused: {e}")),
        }
    });
}
