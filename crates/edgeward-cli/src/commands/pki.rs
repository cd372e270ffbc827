//! `edgeward pki …`: the key ceremony.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use edgeward_core::keys::KeyAlgorithm;
use edgeward_pki::{Hierarchy, RootKey};
use serde_json::json;
use time::OffsetDateTime;

use crate::{
    outcome::{print_json, Failure, Outcome},
    secrets::passphrase,
};

/// `edgeward pki …`.
#[derive(Subcommand, Debug)]
pub(crate) enum PkiCommand {
    /// Create the hierarchy: root CA (encrypted key), signing certificate, device CA, empty CRL.
    Init(PkiInitArgs),
    /// Issue the next signing certificate; the current one is kept in previous/ until it expires.
    Rotate(PkiRotateArgs),
    /// Add a certificate to the root-signed CRL.
    Revoke(PkiRevokeArgs),
    /// Print the hierarchy with validity and days left; warn about a signing certificate near expiry.
    Show(PkiShowArgs),
    /// Re-sign the CRL with fresh dates (same entries), e.g. before its next-update date.
    Crl(PkiCrlArgs),
}

/// The hierarchy directory.
#[derive(Args, Debug)]
pub(crate) struct PkiDir {
    /// The hierarchy directory.
    #[arg(long)]
    pub(crate) dir: PathBuf,
}

/// Where the root key's passphrase comes from.
#[derive(Args, Debug)]
pub(crate) struct PassphraseArg {
    /// Environment variable holding the root key's passphrase (prompted on a TTY if unset).
    #[arg(long, default_value = "EDGEWARD_ROOT_PASSPHRASE")]
    pub(crate) passphrase_env: String,
}

/// Where the root key is.
#[derive(Args, Debug)]
pub(crate) struct RootKeyArg {
    /// The encrypted root key, if it is kept offline rather than in --dir (e.g. on a
    /// removable drive plugged in for the ceremony). Default: DIR/root.key.
    #[arg(long)]
    pub(crate) root_key: Option<PathBuf>,
}

/// Arguments of `pki init`.
#[derive(Args, Debug)]
pub(crate) struct PkiInitArgs {
    #[command(flatten)]
    pub(crate) dir: PkiDir,
    #[command(flatten)]
    pub(crate) passphrase: PassphraseArg,
    /// Organisation name put in every certificate's subject.
    #[arg(long, default_value = "Edgeward")]
    pub(crate) org: String,
    /// Validity of the first signing certificate in days (at most 90).
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(i64).range(1..=90))]
    pub(crate) days: i64,
    /// Key type of the signing certificate.
    #[arg(long, value_enum, default_value_t = KeyAlgorithm::P256)]
    pub(crate) key_type: KeyAlgorithm,
    /// Replace an existing hierarchy: its files move aside to NAME.old-TIMESTAMP first.
    #[arg(long)]
    pub(crate) force: bool,
}

/// Arguments of `pki rotate`.
#[derive(Args, Debug)]
pub(crate) struct PkiRotateArgs {
    #[command(flatten)]
    pub(crate) dir: PkiDir,
    #[command(flatten)]
    pub(crate) passphrase: PassphraseArg,
    #[command(flatten)]
    pub(crate) root_key: RootKeyArg,
    /// Validity of the new signing certificate in days (at most 90).
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(i64).range(1..=90))]
    pub(crate) days: i64,
    /// Key type of the new signing certificate.
    #[arg(long, value_enum, default_value_t = KeyAlgorithm::P256)]
    pub(crate) key_type: KeyAlgorithm,
}

/// Arguments of `pki revoke`.
#[derive(Args, Debug)]
pub(crate) struct PkiRevokeArgs {
    #[command(flatten)]
    pub(crate) dir: PkiDir,
    #[command(flatten)]
    pub(crate) passphrase: PassphraseArg,
    #[command(flatten)]
    pub(crate) root_key: RootKeyArg,
    /// Serial number of the certificate to revoke, hex (as `pki show` or `openssl x509 -serial` print it).
    #[arg(long)]
    pub(crate) serial: String,
}

/// Arguments of `pki show`.
#[derive(Args, Debug)]
pub(crate) struct PkiShowArgs {
    #[command(flatten)]
    pub(crate) dir: PkiDir,
}

/// Arguments of `pki crl`.
#[derive(Args, Debug)]
pub(crate) struct PkiCrlArgs {
    #[command(flatten)]
    pub(crate) dir: PkiDir,
    #[command(flatten)]
    pub(crate) passphrase: PassphraseArg,
    #[command(flatten)]
    pub(crate) root_key: RootKeyArg,
}

/// Refuses a ceremony, before asking for the passphrase, when no `--root-key` was given and
/// `DIR/root.key` is gone (the root key is kept offline once the ceremony is over).
fn root_key_present(dir: &Path, arg: &RootKeyArg) -> Outcome {
    let default = dir.join(edgeward_pki::files::ROOT_KEY);
    if arg.root_key.is_none() && !default.exists() {
        return Err(Failure::operator(format!(
            "{} is not there (the root key is kept offline?): pass --root-key PATH to the encrypted root key",
            default.display()
        )));
    }
    Ok(())
}

pub(crate) fn run(cmd: PkiCommand, json: bool) -> Outcome {
    let now = OffsetDateTime::now_utc();
    match cmd {
        PkiCommand::Init(a) => {
            let pass = passphrase(&a.passphrase.passphrase_env, "Root key passphrase: ", true)?;
            let (dir, alg) = (&a.dir.dir, a.key_type);
            let h = if a.force {
                let (h, moved) = Hierarchy::init_replacing(dir, &a.org, &pass, a.days, alg, now)?;
                for (from, to) in moved {
                    eprintln!("moved {} aside to {}", from.display(), to.display());
                }
                h
            } else {
                Hierarchy::init(dir, &a.org, &pass, a.days, alg, now)?
            };
            report(&h, now, json, "created")
        }
        PkiCommand::Rotate(a) => {
            let h = Hierarchy::open(&a.dir.dir)?;
            root_key_present(&a.dir.dir, &a.root_key)?;
            let pass = passphrase(&a.passphrase.passphrase_env, "Root key passphrase: ", false)?;
            let root = RootKey {
                path: a.root_key.root_key.as_deref(),
                passphrase: &pass,
            };
            h.rotate(&root, a.days, a.key_type, now)?;
            report(&h, now, json, "rotated")
        }
        PkiCommand::Revoke(a) => {
            let h = Hierarchy::open(&a.dir.dir)?;
            root_key_present(&a.dir.dir, &a.root_key)?;
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
            report_with(&h, now, json, "revoked", extra)
        }
        PkiCommand::Crl(a) => {
            let h = Hierarchy::open(&a.dir.dir)?;
            root_key_present(&a.dir.dir, &a.root_key)?;
            let pass = passphrase(&a.passphrase.passphrase_env, "Root key passphrase: ", false)?;
            let root = RootKey {
                path: a.root_key.root_key.as_deref(),
                passphrase: &pass,
            };
            h.refresh_crl(&root, now)?;
            report(&h, now, json, "crl-refreshed")
        }
        PkiCommand::Show(a) => {
            let h = Hierarchy::open(&a.dir.dir)?;
            report(&h, now, json, "shown")
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
