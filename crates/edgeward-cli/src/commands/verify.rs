//! `edgeward verify`: exit 0 verified, 1 rejected, 2 operator error; `--json` verdict.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use edgeward_artifact::{bundle_signing, raw_signing};
use edgeward_core::{
    bundle::Bundle,
    cert_policy::Policy,
    civil::unix_now,
    keys::PublicKey,
    pem,
    raw_signature::MAX_RAW_SIGNATURE_BYTES,
    sigstore::{trusted_root::MAX_TRUSTED_ROOT_BYTES, KeylessPolicy, TrustedRoot},
    size_limits::MAX_BUNDLE_BYTES,
    statement::StatementVersion,
    verify::{Trust, Verified},
};
use serde_json::{json, Value};

use crate::{
    commands::sign::{relative_ignores, relative_to},
    hints,
    outcome::{print_json, read_operator_file, Failure, Outcome},
    progress::Bar,
};

/// Which rules a certificate chain is judged by (`--policy`).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CertPolicy {
    /// Edgeward's own: at most `--max-signing-days` of validity, the code-signing EKU, an
    /// end-entity signer, revocation against `--crl`.
    Edgeward,
    /// The upstream model_signing verifier's: a chain to the root, whatever the validity
    /// period and CA flags (for another organisation's PKI); no revocation.
    ModelSigning,
}

/// Arguments of `verify`.
#[derive(Args, Debug)]
pub(crate) struct VerifyArgs {
    /// The file or model directory to verify.
    pub(crate) path: PathBuf,
    /// The signature (bundle, or raw with --raw).
    #[arg(long)]
    pub(crate) signature: PathBuf,
    /// Trust exactly this public key (PEM public key or certificate).
    #[arg(long, conflicts_with_all = ["trust_root", "sigstore_trusted_root"])]
    pub(crate) pubkey: Option<PathBuf>,
    /// Trust signing certificates endorsed by this root (PEM; may hold several roots).
    #[arg(long, conflicts_with = "sigstore_trusted_root")]
    pub(crate) trust_root: Option<PathBuf>,
    /// The rules a certificate chain is judged by (with --trust-root; default edgeward).
    #[arg(long, value_enum, requires = "trust_root")]
    pub(crate) policy: Option<CertPolicy>,
    /// A root-signed CRL (PEM or DER) to check revocation against (repeatable). Without
    /// one, revocation is not checked and a warning says so.
    #[arg(long, conflicts_with_all = ["pubkey", "sigstore_trusted_root"])]
    pub(crate) crl: Vec<PathBuf>,
    /// Longest validity, in days, accepted for the signing certificate (policy; at most 90).
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u64).range(1..=90), conflicts_with_all = ["pubkey", "sigstore_trusted_root"])]
    pub(crate) max_signing_days: u64,
    /// The signature is raw (as `openssl dgst -sha256 -sign` makes it); needs --pubkey.
    #[arg(long, conflicts_with_all = ["trust_root", "sigstore_trusted_root"])]
    pub(crate) raw: bool,
    /// Keyless Sigstore: the trusted root (`trusted_root.json`) of the Sigstore instance,
    /// verified offline; needs --identity and --identity-provider.
    #[arg(long, value_name = "TRUSTED_ROOT_JSON")]
    pub(crate) sigstore_trusted_root: Option<PathBuf>,
    /// Keyless Sigstore: the signer's identity (e-mail or URI in the Fulcio certificate).
    #[arg(long, requires = "sigstore_trusted_root")]
    pub(crate) identity: Option<String>,
    /// Keyless Sigstore: the OIDC issuer that vouched for the identity.
    #[arg(long, value_name = "URL", requires = "sigstore_trusted_root")]
    pub(crate) identity_provider: Option<String>,
    /// Paths inside the model to leave out on disk (repeatable), for bundles that did not
    /// record what their signer ignored (model_signing before v1.1).
    #[arg(long = "ignore-paths")]
    pub(crate) ignore_paths: Vec<PathBuf>,
}

/// Runs `verify`: a verdict on stdout with `--json`.
pub(crate) fn run(a: VerifyArgs, json: bool) -> Outcome {
    let details = verify(&a).map_err(|f| {
        f.with_context(json!({ "verified": false, "path": a.path, "signature": a.signature }))
    })?;
    if json {
        print_json(
            &json!({ "verified": true, "path": a.path, "signature": a.signature, "details": details }),
        );
    } else {
        println!("verified {} ({})", a.path.display(), summary(&details));
    }
    Ok(())
}

/// The text result's parenthesis: the policy and who signed under it.
fn summary(details: &Value) -> String {
    let policy = details["policy"].as_str().unwrap_or("key");
    let key = details["key"].as_str().unwrap_or("");
    match policy {
        "sigstore" => format!(
            "policy sigstore: {} via {}, log entry {} of {}",
            details["sigstore"]["identity"].as_str().unwrap_or(""),
            details["sigstore"]["identity_provider"]
                .as_str()
                .unwrap_or(""),
            details["sigstore"]["log_index"],
            details["sigstore"]["log_url"].as_str().unwrap_or(""),
        ),
        "key" => format!("policy key: key {key}"),
        other => format!(
            "policy {other}: key {key}, certificate {}",
            details["certificate"]["subject"].as_str().unwrap_or("")
        ),
    }
}

/// What the operator told `verify` to trust, loaded.
enum Anchor {
    Key(PublicKey),
    Roots {
        roots: Vec<Vec<u8>>,
        crls: Vec<Vec<u8>>,
        policy: CertPolicy,
    },
    Sigstore {
        root: TrustedRoot,
        identity: String,
        issuer: String,
    },
}

impl Anchor {
    fn trust(&self, max_signing_days: u64) -> Trust<'_> {
        match self {
            Anchor::Key(k) => Trust::PublicKey(k),
            Anchor::Roots {
                roots,
                crls,
                policy: CertPolicy::Edgeward,
            } => Trust::Roots {
                roots,
                crls,
                policy: Policy {
                    max_signing_validity_secs: max_signing_days * 86_400,
                },
            },
            Anchor::Roots { roots, .. } => Trust::ModelSigningRoots { roots },
            Anchor::Sigstore {
                root,
                identity,
                issuer,
            } => Trust::Sigstore(KeylessPolicy {
                root,
                identity,
                issuer,
            }),
        }
    }
}

/// Loads what to trust from the flags; every missing or mismatched piece is an operator
/// error naming the flag to give.
fn load_anchor(a: &VerifyArgs) -> Result<Anchor, Failure> {
    if let Some(path) = &a.sigstore_trusted_root {
        let (Some(identity), Some(issuer)) = (&a.identity, &a.identity_provider) else {
            return Err(Failure::operator(
                "keyless verification needs the signer's --identity and --identity-provider: without them a signature by anyone with a Sigstore certificate would verify",
            ));
        };
        let bytes = read_bounded(path, MAX_TRUSTED_ROOT_BYTES, "Sigstore trusted root")?;
        let root = TrustedRoot::parse(&bytes)
            .map_err(|e| Failure::operator(format!("{}: {e}", path.display())))?;
        return Ok(Anchor::Sigstore {
            root,
            identity: identity.clone(),
            issuer: issuer.clone(),
        });
    }
    if let Some(root_path) = &a.trust_root {
        let policy = a.policy.unwrap_or(CertPolicy::Edgeward);
        if policy == CertPolicy::ModelSigning && !a.crl.is_empty() {
            return Err(Failure::operator(
                "--crl is not checked under --policy model-signing (the upstream verifier has no revocation); use --policy edgeward to check a CRL",
            ));
        }
        let bytes = read_operator_file(root_path)?;
        let roots = pem::parse_labelled(&bytes, "CERTIFICATE").map_err(|e| {
            Failure::operator(
                hints::pubkey_given_as_trust_root(root_path, &bytes)
                    .unwrap_or_else(|| format!("{}: {e}", root_path.display())),
            )
        })?;
        let crls = a
            .crl
            .iter()
            .map(|p| load_crl(p))
            .collect::<Result<Vec<_>, _>>()?;
        if crls.is_empty() && policy == CertPolicy::Edgeward {
            eprintln!(
                "warning: no --crl given: revocation of the signing certificate is not checked"
            );
        }
        return Ok(Anchor::Roots {
            roots,
            crls,
            policy,
        });
    }
    Ok(Anchor::Key(load_pubkey(a)?))
}

/// Reads a file the operator named, refusing one larger than `limit` before reading it.
fn read_bounded(path: &Path, limit: usize, what: &str) -> Result<Vec<u8>, Failure> {
    let size = std::fs::metadata(path)
        .map_err(|e| Failure::operator(format!("{}: {e}", path.display())))?
        .len();
    if size > limit as u64 {
        return Err(Failure::operator(format!(
            "{}: {size} bytes is larger than any {what} ({limit} bytes at most)",
            path.display()
        )));
    }
    read_operator_file(path)
}

fn verify(a: &VerifyArgs) -> Result<Value, Failure> {
    if a.pubkey.is_none() && a.trust_root.is_none() && a.sigstore_trusted_root.is_none() {
        return Err(Failure::operator(NOTHING_TO_TRUST));
    }
    if let Some(hint) = hints::directory_as_signature(&a.signature) {
        return Err(Failure::operator(hint));
    }
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
        raw_signing::verify_file(&a.path, &key, &signature, &bar)
            .map_err(|e| with_pubkey_hint(a, Failure::from(e)))?;
        return Ok(json!({
            "format": "raw",
            "policy": "key",
            "key": key.fingerprint(),
            "algorithm": key.algorithm(),
        }));
    }
    let bundle = Bundle::parse(&signature).map_err(|e| {
        let hint = if signature.first() == Some(&b'{') {
            ""
        } else {
            " (not JSON: if this is a raw signature, verify it with --raw)"
        };
        Failure::rejected(format!("{}: {e}{hint}", a.signature.display()))
    })?;
    let anchor = load_anchor(a)?;
    let trust = anchor.trust(a.max_signing_days);
    let mut ignores = relative_ignores(&a.path, &a.ignore_paths)?;
    ignores.extend(relative_to(&a.path, &a.signature));
    let verified =
        bundle_signing::verify_path(&a.path, &bundle, &trust, unix_now(), &ignores, &bar)
            .map_err(|e| with_pubkey_hint(a, Failure::from(e)))?;
    let mut details = describe(&verified);
    if let Anchor::Roots {
        policy: CertPolicy::Edgeward,
        ..
    } = anchor
    {
        details["revocation_checked"] = json!(!a.crl.is_empty());
    }
    if let (Anchor::Sigstore { issuer, .. }, Some(k)) = (&anchor, &verified.keyless) {
        details["sigstore"] = json!({
            "identity": k.identity.names.first(),
            "identity_provider": issuer,
            "certificate_authority": k.certificate_authority,
            "log_url": k.log_url,
            "log_index": k.log_index,
            "integrated_time": edgeward_core::civil::format_unix(k.integrated_time as i64),
            "inclusion_proof_checked": k.inclusion_proof_checked,
        });
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
        "policy": v.policy,
        "statement": match v.statement_version {
            StatementVersion::V1 => "v1.0",
            StatementVersion::V0_2 => "v0.2",
        },
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
        Failure::operator(if a.raw {
            "--raw needs --pubkey (a raw signature carries no certificate)"
        } else {
            NOTHING_TO_TRUST
        })
    })?;
    PublicKey::from_pem(&read_operator_file(path)?)
        .map_err(|e| Failure::operator(format!("{}: {e}", path.display())))
}

/// The refusal when no trust flag is given: it names every one.
const NOTHING_TO_TRUST: &str = "nothing to trust: give --pubkey PUB (exactly this signer's public key) or --trust-root ROOT (signing certificates this root endorses), or --sigstore-trusted-root for a keyless Sigstore bundle";

/// Adds the "use --trust-root" hint to a refusal when `--pubkey` was a root certificate.
fn with_pubkey_hint(a: &VerifyArgs, mut f: Failure) -> Failure {
    let hint = a.pubkey.as_deref().and_then(|path| {
        let bytes = std::fs::read(path).ok()?;
        hints::root_given_as_pubkey(path, &bytes)
    });
    if let Some(hint) = hint {
        f.message = format!("{} ({hint})", f.message);
    }
    f
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
    edgeward_core::cert_policy::check_crl_der(&der)
        .map_err(|e| Failure::operator(format!("{}: {e}", path.display())))?;
    Ok(der)
}
