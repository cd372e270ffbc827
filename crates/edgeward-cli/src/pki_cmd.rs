//! `edgeward pki …`: the key ceremony.

use edgeward_pki::{issue::KeyAlg, Hierarchy, RootKey};
use serde_json::json;
use time::OffsetDateTime;

use crate::{
    cli::{KeyType, PkiCommand},
    outcome::{print_json, Failure, Outcome},
    secrets::passphrase,
};

pub fn key_alg(k: KeyType) -> KeyAlg {
    match k {
        KeyType::P256 => KeyAlg::P256,
        KeyType::Ed25519 => KeyAlg::Ed25519,
    }
}

pub fn run(cmd: PkiCommand) -> Outcome {
    let now = OffsetDateTime::now_utc();
    match cmd {
        PkiCommand::Init(a) => {
            let pass = passphrase(&a.passphrase.passphrase_env, "Root key passphrase: ", true)?;
            let h = Hierarchy::init(&a.dir.dir, &a.org, &pass, a.days, key_alg(a.key_type), now)?;
            report(&h, now, a.dir.json, "created")
        }
        PkiCommand::Rotate(a) => {
            let h = Hierarchy::open(&a.dir.dir)?;
            let pass = passphrase(&a.passphrase.passphrase_env, "Root key passphrase: ", false)?;
            let root = RootKey {
                path: a.root_key.root_key.as_deref(),
                passphrase: &pass,
            };
            h.rotate(&root, a.days, key_alg(a.key_type), now)?;
            report(&h, now, a.dir.json, "rotated")
        }
        PkiCommand::Revoke(a) => {
            let h = Hierarchy::open(&a.dir.dir)?;
            let pass = passphrase(&a.passphrase.passphrase_env, "Root key passphrase: ", false)?;
            let root = RootKey {
                path: a.root_key.root_key.as_deref(),
                passphrase: &pass,
            };
            let mut extra = Vec::new();
            if !h.revoke(&root, &a.serial, now)? {
                extra.push(format!(
                    "serial {} is not a certificate in {}; it was added to the CRL anyway",
                    edgeward_pki::hierarchy::normalize_serial(&a.serial),
                    a.dir.dir.display()
                ));
            }
            report_with(&h, now, a.dir.json, "revoked", extra)
        }
        PkiCommand::Crl(a) => {
            let h = Hierarchy::open(&a.dir.dir)?;
            let pass = passphrase(&a.passphrase.passphrase_env, "Root key passphrase: ", false)?;
            let root = RootKey {
                path: a.root_key.root_key.as_deref(),
                passphrase: &pass,
            };
            h.refresh_crl(&root, now)?;
            report(&h, now, a.dir.json, "crl-refreshed")
        }
        PkiCommand::Show(a) => {
            let h = Hierarchy::open(&a.dir.dir)?;
            report(&h, now, a.dir.json, "shown")
        }
    }
}

fn report(h: &Hierarchy, now: OffsetDateTime, as_json: bool, action: &str) -> Outcome {
    report_with(h, now, as_json, action, Vec::new())
}

/// Prints the hierarchy (text or JSON) and every warning: `extra` ones from the command,
/// then those about the certificates (text: on stderr; JSON: in `warnings`).
fn report_with(
    h: &Hierarchy,
    now: OffsetDateTime,
    as_json: bool,
    action: &str,
    extra: Vec<String>,
) -> Outcome {
    let certs = h.show(now)?;
    let mut warnings = extra;
    warnings.extend(Hierarchy::warnings(&certs));
    if as_json {
        print_json(&json!({ "action": action, "certificates": certs, "warnings": warnings }));
        return Ok(());
    }
    for c in &certs {
        println!(
            "{:<17} {}\n                  serial {}  valid {} → {}  ({} days left){}",
            c.role,
            c.subject,
            c.serial,
            c.not_before,
            c.not_after,
            c.days_left,
            if c.revoked { "  REVOKED" } else { "" }
        );
    }
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    Ok(())
}

impl From<serde_json::Error> for Failure {
    fn from(e: serde_json::Error) -> Self {
        Failure::operator(e)
    }
}
