//! `edgeward verify`: exit 0 verified, 1 rejected, 2 operator error; `--json` verdict.

use edgeward_core::{
    bundle::Bundle,
    chain::Policy,
    keys::PublicKey,
    pem,
    verify::{Trust, Verified},
};
use edgeward_model::{artifact, raw};
use serde_json::{json, Value};

use crate::{
    cli::VerifyArgs,
    outcome::{print_json, read_operator_file, Failure, Outcome},
    progress::Bar,
    sign_cmd::unix_now,
};

pub fn run(a: VerifyArgs) -> Outcome {
    let result = verify(&a);
    if a.json {
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
    result.map(|_| ())
}

fn verify(a: &VerifyArgs) -> Result<Value, Failure> {
    let signature = read_operator_file(&a.signature)?;
    let bar = Bar::new("verifying");
    if a.raw {
        let key = load_pubkey(a)?;
        raw::verify_file(&a.path, &key, &signature, &bar)?;
        return Ok(
            json!({ "format": "raw", "key": key.fingerprint(), "algorithm": key.algorithm() }),
        );
    }
    let bundle = Bundle::parse(&signature)
        .map_err(|e| Failure::rejected(format!("{}: {e}", a.signature.display())))?;
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
            Trust::Roots {
                roots: &roots,
                crls: &crls,
                policy: Policy::default(),
            }
        }
        None => {
            pubkey = load_pubkey(a)?;
            Trust::PublicKey(&pubkey)
        }
    };
    let verified = artifact::verify_path(&a.path, &bundle, &trust, unix_now(), &bar)?;
    Ok(describe(&verified))
}

fn describe(v: &Verified) -> Value {
    let m = &v.statement.manifest;
    json!({
        "format": "bundle",
        "key": v.key.fingerprint(),
        "algorithm": v.key.algorithm(),
        "model_name": m.model_name,
        "items": m.items.len(),
        "bytes": m.covered_bytes(),
        "signed_at": v.statement.signed_at.map(|t| edgeward_core::civil::format_unix(t as i64)),
        "certificate": v.certificate.as_ref().map(|c| json!({
            "subject": c.subject,
            "serial": c.serial,
            "not_after": edgeward_core::civil::format_unix(c.not_after),
        })),
    })
}

fn load_pubkey(a: &VerifyArgs) -> Result<PublicKey, Failure> {
    let path = a
        .pubkey
        .as_ref()
        .ok_or_else(|| Failure::operator("--pubkey is required"))?;
    PublicKey::from_pem(&read_operator_file(path)?)
        .map_err(|e| Failure::operator(format!("{}: {e}", path.display())))
}

fn load_crl(path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    let bytes = read_operator_file(path)?;
    if bytes.starts_with(b"-----") || bytes.windows(8).any(|w| w == b"X509 CRL") {
        let mut blocks = pem::parse_labelled(&bytes, "X509 CRL")
            .map_err(|e| Failure::operator(format!("{}: {e}", path.display())))?;
        Ok(blocks.swap_remove(0))
    } else {
        Ok(bytes)
    }
}
