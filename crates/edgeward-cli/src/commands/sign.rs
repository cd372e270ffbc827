//! `edgeward sign`: a bundle (key or certificate mode) or a raw detached signature.

use std::path::{Path, PathBuf};

use clap::Args;
use edgeward_artifact::{bundle_signing, raw_signing};
use edgeward_core::{civil::unix_now, keys::SigningKey, pem};
use serde_json::json;

use crate::{
    args::parse_size,
    outcome::{print_json, read_operator_file, Failure, Outcome},
    progress::Bar,
    secrets::passphrase,
};

/// Arguments of `sign`.
#[derive(Args, Debug)]
pub(crate) struct SignArgs {
    /// The file or model directory to sign.
    pub(crate) path: PathBuf,
    /// The private key (PEM: PKCS#8, SEC1 or encrypted PKCS#8).
    #[arg(long)]
    pub(crate) key: PathBuf,
    /// Certificate chain (PEM, signing certificate first): certificate mode.
    #[arg(long)]
    pub(crate) cert_chain: Option<PathBuf>,
    /// Where to write the signature.
    #[arg(short = 'o', long = "output")]
    pub(crate) output: PathBuf,
    /// Write a raw detached signature over the file (as `openssl dgst -sha256 -sign`).
    #[arg(long)]
    pub(crate) raw: bool,
    /// Digest every SIZE bytes of each file separately (e.g. 64MiB) so one large file is
    /// hashed on all cores. Default 0: one digest per file, model-signing's default, which
    /// its CLI verifies (its CLI verifies files mode only; its Python API verifies both).
    #[arg(long, default_value = "0", value_name = "SIZE", value_parser = parse_size)]
    pub(crate) shard_size: u64,
    /// Paths inside the model to leave out of the signature (repeatable).
    #[arg(long = "ignore-paths")]
    pub(crate) ignore_paths: Vec<PathBuf>,
    /// Sign git metadata (.git, .gitattributes, .github, .gitignore) too.
    #[arg(long)]
    pub(crate) no_ignore_git_paths: bool,
    /// Environment variable holding the key's passphrase, if the key is encrypted.
    #[arg(long, default_value = "EDGEWARD_KEY_PASSPHRASE")]
    pub(crate) passphrase_env: String,
}

/// Runs `sign`.
pub(crate) fn run(a: SignArgs, json: bool) -> Outcome {
    let key = load_signing_key(&a.key, &a.passphrase_env)?;
    let bar = Bar::new("hashing");
    let signature = if a.raw {
        if a.cert_chain.is_some() {
            return Err(Failure::operator(
                "--raw signatures carry no certificate chain",
            ));
        }
        raw_signing::sign_file(&a.path, &key, &bar)?
    } else {
        let chain = match &a.cert_chain {
            Some(p) => Some(
                pem::parse_labelled(&read_operator_file(p)?, "CERTIFICATE")
                    .map_err(|e| Failure::operator(format!("{}: {e}", p.display())))?,
            ),
            None => None,
        };
        if let Some(chain) = &chain {
            preflight_chain(chain)?;
        }
        let mut ignore_paths = relative_ignores(&a.path, &a.ignore_paths)?;
        if let Some(inside) = relative_to(&a.path, &a.output) {
            ignore_paths.push(inside);
        }
        let options = bundle_signing::SignOptions {
            shard_size: (a.shard_size > 0).then_some(a.shard_size),
            ignore_paths,
            ignore_git_paths: !a.no_ignore_git_paths,
            signed_at: unix_now(),
        };
        bundle_signing::sign_path(&a.path, &key, chain, &options, &bar)?
            .to_json()
            .into_bytes()
    };
    std::fs::write(&a.output, &signature)
        .map_err(|e| Failure::operator(format!("{}: {e}", a.output.display())))?;
    let public = key.public_key();
    if json {
        print_json(&json!({
            "signed": a.path,
            "signature": a.output,
            "format": if a.raw { "raw" } else { "bundle" },
            "mode": if a.raw { "raw" } else if a.cert_chain.is_some() { "certificate" } else { "key" },
            "key": public.fingerprint(),
            "algorithm": public.algorithm(),
        }));
    } else {
        println!(
            "signed {} with {} key {} → {}",
            a.path.display(),
            public.algorithm(),
            public.fingerprint(),
            a.output.display()
        );
    }
    Ok(())
}

/// Refuses to sign with a certificate chain that no verifier would accept now (expired,
/// not yet valid, longer than 90 days, without the code-signing EKU, broken), judged
/// against the chain's own root when the chain ends in one.
fn preflight_chain(chain: &[Vec<u8>]) -> Result<(), Failure> {
    use edgeward_core::cert_policy::{cert_info, verify_signing_chain, Policy};
    let Some(last) = chain.last() else {
        return Err(Failure::operator("the certificate chain is empty"));
    };
    let info = cert_info(last).map_err(|e| Failure::operator(format!("certificate chain: {e}")))?;
    if info.subject != info.issuer || chain.len() < 2 {
        return Ok(());
    }
    verify_signing_chain(
        chain,
        std::slice::from_ref(last),
        &[],
        unix_now(),
        &Policy::default(),
    )
    .map(|_| ())
    .map_err(|e| Failure::operator(format!("refusing to sign: {e}")))
}

/// Loads a private key, asking for a passphrase only if the PEM is encrypted.
pub(crate) fn load_signing_key(path: &Path, passphrase_env: &str) -> Result<SigningKey, Failure> {
    let pem_bytes = zeroize::Zeroizing::new(read_operator_file(path)?);
    let encrypted = pem_bytes.windows(21).any(|w| w == b"ENCRYPTED PRIVATE KEY");
    let pass = if encrypted {
        Some(passphrase(passphrase_env, "Key passphrase: ", false)?)
    } else {
        None
    };
    SigningKey::from_pem(&pem_bytes, pass.as_ref().map(|p| p.as_slice())).map_err(|e| {
        Failure::operator(
            crate::hints::not_a_private_key(path, &pem_bytes)
                .unwrap_or_else(|| format!("{}: {e}", path.display())),
        )
    })
}

/// `path` relative to the artifact `root`, as a POSIX string, when it lies inside it.
pub(crate) fn relative_to(root: &Path, path: &Path) -> Option<String> {
    let root = root.canonicalize().ok()?;
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    let full = parent.canonicalize().ok()?.join(path.file_name()?);
    let rel = full.strip_prefix(&root).ok()?;
    let parts: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    let joined = parts?.join("/");
    (!joined.is_empty()).then_some(joined)
}

/// `--ignore-paths` as paths relative to the artifact `root`; one outside it is refused.
pub(crate) fn relative_ignores(root: &Path, paths: &[PathBuf]) -> Result<Vec<String>, Failure> {
    paths
        .iter()
        .map(|p| {
            let candidate = if p.is_absolute() || p.exists() {
                p.clone()
            } else {
                root.join(p)
            };
            relative_to(root, &candidate).ok_or_else(|| {
                Failure::operator(format!(
                    "--ignore-paths {}: not inside {}",
                    p.display(),
                    root.display()
                ))
            })
        })
        .collect()
}
