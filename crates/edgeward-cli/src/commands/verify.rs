//! `edgeward verify`: exit 0 verified, 1 rejected, 2 operator error; `--json` verdict.

use std::path::{Path, PathBuf};

use clap::Args;
use edgeward_artifact::{bundle_signing, raw_signing};
use edgeward_core::{
    bundle::Bundle,
    chain::Policy,
    keys::PublicKey,
    limits::MAX_BUNDLE_BYTES,
    pem,
    rawsig::MAX_RAW_SIGNATURE_BYTES,
    verify::{Trust, Verified},
};
use serde_json::{json, Value};

use crate::{
    commands::sign::{relative_to, unix_now},
    outcome::{print_json, read_operator_file, Failure, Outcome},
    progress::Bar,
};

/// Arguments of `verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The file or model directory to verify.
    pub path: PathBuf,
    /// The signature (bundle, or raw with --raw).
    #[arg(long)]
    pub signature: PathBuf,
    /// Trust exactly this public key (PEM public key or certificate).
    #[arg(
        long,
        conflicts_with = "trust_root",
        required_unless_present = "trust_root"
    )]
    pub pubkey: Option<PathBuf>,
    /// Trust signing certificates endorsed by this root (PEM; may hold several roots).
    #[arg(long)]
    pub trust_root: Option<PathBuf>,
    /// A root-signed CRL (PEM or DER) to check revocation against (repeatable). Without
    /// one, revocation is not checked and a warning says so.
    #[arg(long, conflicts_with = "pubkey")]
    pub crl: Vec<PathBuf>,
    /// Longest validity, in days, accepted for the signing certificate (policy; at most 90).
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u64).range(1..=90), conflicts_with = "pubkey")]
    pub max_signing_days: u64,
    /// The signature is raw (as `openssl dgst -sha256 -sign` makes it); needs --pubkey.
    #[arg(long, conflicts_with = "trust_root")]
    pub raw: bool,
}

/// Runs `verify`: a verdict on stdout with `--json`.
pub fn run(a: VerifyArgs, json: bool) -> Outcome {
    let result = verify(&a);
    if json {
        let verdict = match &result {
            Ok(details) => {
                json!({ "verified": true, "path": a.path, "signature": a.signature, "details": details })
            }
            Err(f) => json!({
                "verified": false,
                "path": a.path,
                "signature": a.signature,
                "error": f.message,
                "kind": if f.code == crate::outcome::REJECTED { "rejected" } else { "operator-error" },
            }),
        };
        print_json(&verdict);
    } else if result.is_ok() {
        println!("verified {}", a.path.display());
    }
    result.map(|_| ()).map_err(|mut f| {
        f.reported = true;
        f
    })
}

fn verify(a: &VerifyArgs) -> Result<Value, Failure> {
    let limit = if a.raw {
        MAX_RAW_SIGNATURE_BYTES
    } else {
        MAX_BUNDLE_BYTES
    };
    let size = std::fs::metadata(&a.signature)
        .map_err(|e| Failure::operator(format!("{}: {e}", a.signature.display())))?
        .len();
    if size > limit as u64 {
        return Err(Failure::rejected(format!(
            "{}: {size} bytes is larger than any {} signature ({limit} bytes at most)",
            a.signature.display(),
            if a.raw { "raw" } else { "bundle" }
        )));
    }
    let signature = read_operator_file(&a.signature)?;
    let bar = Bar::new("verifying");
    if a.raw {
        let key = load_pubkey(a)?;
        raw_signing::verify_file(&a.path, &key, &signature, &bar)?;
        return Ok(
            json!({ "format": "raw", "key": key.fingerprint(), "algorithm": key.algorithm() }),
        );
    }
    let bundle = Bundle::parse(&signature).map_err(|e| {
        let hint = if signature.first() == Some(&b'{') {
            ""
        } else {
            " (not JSON: if this is a raw signature, verify it with --raw)"
        };
        Failure::rejected(format!("{}: {e}{hint}", a.signature.display()))
    })?;
    let (roots, crls);
    let pubkey;
    let trust = match &a.trust_root {
        Some(root_path) => {
            roots = pem::parse_labelled(&read_operator_file(root_path)?, "CERTIFICATE")
                .map_err(|e| Failure::operator(format!("{}: {e}", root_path.display())))?;
            crls = a
                .crl
                .iter()
                .map(|p| load_crl(p))
                .collect::<Result<Vec<_>, _>>()?;
            if crls.is_empty() {
                eprintln!(
                    "warning: no --crl given: revocation of the signing certificate is not checked"
                );
            }
            Trust::Roots {
                roots: &roots,
                crls: &crls,
                policy: Policy {
                    max_signing_validity_secs: a.max_signing_days * 86_400,
                },
            }
        }
        None => {
            pubkey = load_pubkey(a)?;
            Trust::PublicKey(&pubkey)
        }
    };
    let signature_inside: Vec<String> = relative_to(&a.path, &a.signature).into_iter().collect();
    let verified = bundle_signing::verify_path(
        &a.path,
        &bundle,
        &trust,
        unix_now(),
        &signature_inside,
        &bar,
    )?;
    let mut details = describe(&verified);
    if a.trust_root.is_some() {
        details["revocation_checked"] = json!(!a.crl.is_empty());
    }
    Ok(details)
}

fn describe(v: &Verified) -> Value {
    let m = &v.statement.manifest;
    let files: std::collections::BTreeSet<&str> = m.items.keys().map(|k| k.path.as_str()).collect();
    json!({
        "format": "bundle",
        "key": v.key.fingerprint(),
        "algorithm": v.key.algorithm(),
        "model_name": m.model_name,
        "files": files.len() + m.empty_files.len(),
        "items": m.items.len(),
        "signed_at": v.statement.signed_at.map(|t| edgeward_core::civil::format_unix(t as i64)),
        "certificate": v.certificate.as_ref().map(|c| json!({
            "subject": c.subject,
            "serial": c.serial,
            "not_after": edgeward_core::civil::format_unix(c.not_after),
        })),
    })
}

fn load_pubkey(a: &VerifyArgs) -> Result<PublicKey, Failure> {
    let path = a.pubkey.as_ref().ok_or_else(|| {
        Failure::operator("--raw needs --pubkey (a raw signature carries no certificate)")
    })?;
    PublicKey::from_pem(&read_operator_file(path)?)
        .map_err(|e| Failure::operator(format!("{}: {e}", path.display())))
}

fn load_crl(path: &Path) -> Result<Vec<u8>, Failure> {
    let bytes = read_operator_file(path)?;
    let der = if bytes.starts_with(b"-----") || bytes.windows(8).any(|w| w == b"X509 CRL") {
        pem::parse_labelled(&bytes, "X509 CRL")
            .map_err(|e| Failure::operator(format!("{}: {e}", path.display())))?
            .swap_remove(0)
    } else {
        bytes
    };
    edgeward_core::chain::check_crl_der(&der)
        .map_err(|e| Failure::operator(format!("{}: {e}", path.display())))?;
    Ok(der)
}
