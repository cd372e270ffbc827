//! A signed five-stage example chain (first-stage bootloader, second-stage bootloader, OS,
//! application, model) and a software secure element provisioned with the root anchor, made
//! from a key hierarchy: what `edgeward boot example` writes and the tests and benchmark use.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use edgeward_artifact::hashing::DEFAULT_SHARD_SIZE;
use edgeward_core::{keys::SigningKey, pem, statement::BootClaims};
use edgeward_se::SecureElement;
use time::OffsetDateTime;

use crate::{provision, signing, BootError};

/// The example's hardware class.
pub const EXAMPLE_HARDWARE: &str = "edgeward-sim-v1";

/// One stage of the example: name, file name, size.
#[derive(Debug, Clone)]
pub struct ExampleStage {
    /// Stage name.
    pub name: &'static str,
    /// File name under `stages/` (starting with the index).
    pub file: String,
    /// Size in bytes.
    pub size: u64,
}

/// The five stages with their sizes: small bootloaders, `os` and `model` as given.
pub fn stages(os_size: u64, model_size: u64) -> Vec<ExampleStage> {
    [
        ("fsbl", "bin", 64 * 1024),
        ("ssbl", "bin", 256 * 1024),
        ("os", "img", os_size),
        ("app", "bin", 1024 * 1024),
        ("model", "bin", model_size),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (name, ext, size))| ExampleStage {
        name,
        file: format!("{i}-{name}.{ext}"),
        size,
    })
    .collect()
}

/// What [`write_example`] made.
#[derive(Debug, Clone)]
pub struct Example {
    /// `chain.toml`.
    pub chain: PathBuf,
    /// The stage images, in order.
    pub images: Vec<PathBuf>,
    /// Their signature bundles, in order.
    pub signatures: Vec<PathBuf>,
    /// The software element's directory.
    pub se_dir: PathBuf,
}

/// Writes deterministic pseudo-random bytes (a stage image's stand-in content).
pub fn write_pseudo_random(path: &Path, size: u64, seed: u64) -> Result<(), BootError> {
    let mut f = std::io::BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(path).map_err(|e| BootError::io(path, e))?,
    );
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for chunk in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..n]).map_err(|e| BootError::io(path, e))?;
        left -= n as u64;
    }
    f.flush().map_err(|e| BootError::io(path, e))
}

/// Reads the current signing key and chain of the hierarchy in `pki`.
pub fn signer(pki: &Path) -> Result<(SigningKey, Vec<Vec<u8>>), BootError> {
    let read = |name: &str| {
        let p = pki.join(name);
        std::fs::read(&p).map_err(|e| BootError::io(p, e))
    };
    let key = SigningKey::from_pem(&read(edgeward_pki::files::SIGNING_KEY)?, None)?;
    let chain = pem::parse_labelled(&read(edgeward_pki::files::SIGNING_CHAIN)?, "CERTIFICATE")?;
    Ok((key, chain))
}

/// Writes the example under `out` from the hierarchy in `pki`, and provisions `se` (root
/// anchor, device key and certificate). `os_size`/`model_size` set the large stages.
pub fn write_example(
    pki: &Path,
    out: &Path,
    se: &dyn SecureElement,
    os_size: u64,
    model_size: u64,
    now: OffsetDateTime,
) -> Result<Example, BootError> {
    let (key, chain) = signer(pki)?;
    let stage_dir = out.join("stages");
    std::fs::create_dir_all(&stage_dir).map_err(|e| BootError::io(&stage_dir, e))?;
    let signed_at = u64::try_from(now.unix_timestamp()).unwrap_or(0);
    // The hierarchy's root-signed CRL travels with the chain; the signed description names it.
    let crl = out.join("crl.pem");
    std::fs::copy(pki.join(edgeward_pki::files::CRL), &crl).map_err(|e| BootError::io(&crl, e))?;
    let mut toml = format!(
        "# Edgeward boot chain: stages are verified in this order. It is signed (chain.toml.sig):\n# edit it and re-sign, or the device refuses to boot.\nversion = 1\nhardware = \"{EXAMPLE_HARDWARE}\"\ncrl = \"crl.pem\"\n"
    );
    let mut images = Vec::new();
    let mut signatures = Vec::new();
    for (i, s) in stages(os_size, model_size).iter().enumerate() {
        let image = stage_dir.join(&s.file);
        write_pseudo_random(&image, s.size, i as u64 + 1)?;
        let claims = BootClaims {
            stage: Some(s.name.to_string()),
            hardware: Some(EXAMPLE_HARDWARE.to_string()),
            security_counter: Some(1),
        };
        let bundle = signing::sign_stage(
            &image,
            &key,
            Some(chain.clone()),
            claims,
            Some(DEFAULT_SHARD_SIZE),
            signed_at,
        )?;
        let sig = stage_dir.join(format!("{}.sig", s.file));
        std::fs::write(&sig, bundle.to_json()).map_err(|e| BootError::io(&sig, e))?;
        toml.push_str(&format!(
            "\n[[stage]]\nname = \"{}\"\nimage = \"stages/{}\"\nsignature = \"stages/{}.sig\"\nsecurity_counter = 1\n",
            s.name, s.file, s.file
        ));
        images.push(image);
        signatures.push(sig);
    }
    let chain_path = out.join("chain.toml");
    std::fs::write(&chain_path, toml).map_err(|e| BootError::io(&chain_path, e))?;
    signing::sign_policy(&chain_path, &key, chain, EXAMPLE_HARDWARE, 1, signed_at)?;

    let read = |name: &str| {
        let p = pki.join(name);
        std::fs::read_to_string(&p).map_err(|e| BootError::io(p, e))
    };
    let root_der = pem::parse_labelled(
        read(edgeward_pki::files::ROOT_CERT)?.as_bytes(),
        "CERTIFICATE",
    )?
    .into_iter()
    .next()
    .ok_or_else(|| BootError::Provision("root.pem holds no certificate".into()))?;
    provision::provision(
        se,
        &root_der,
        &read(edgeward_pki::files::DEVICE_CA_CERT)?,
        &read(edgeward_pki::files::DEVICE_CA_KEY)?,
        "sim-device-1",
        now,
    )?;
    Ok(Example {
        chain: chain_path,
        images,
        signatures,
        se_dir: out.join("se"),
    })
}
