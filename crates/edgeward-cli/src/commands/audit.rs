//! `edgeward audit verify`: checks edgeward-server's audit log without trusting the server.
//! It fetches the signed checkpoint and every entry it covers, recomputes the Merkle tree,
//! checks the signature against the pinned verifier key, and checks that the log extends
//! the last checkpoint it accepted — kept in a state file outside the server, replaced
//! crash-safely — so an edited, dropped or reordered entry, a deleted tail and a rewritten
//! history are each caught and named.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use clap::{Args, Subcommand};
use edgeward_audit::{
    checkpoint::Checkpoint,
    log::{AuditError, Entry, LogVerifier},
    merkle,
    note::{NoteVerifier, MAX_NOTE_BYTES},
    proof::{ConsistencyProof, MAX_PROOF_BYTES},
};
use serde_json::{json, Value};

use crate::{
    commands::fleet::{Admin, ServerArgs},
    outcome::{print_json, Failure, Outcome},
};

/// Longest entries page accepted (1000 entries of bounded fields).
const MAX_PAGE_BYTES: u64 = 32 << 20;
/// Longest state file accepted.
const MAX_STATE_BYTES: u64 = 64 << 10;

/// `edgeward audit …`.
#[derive(Subcommand, Debug)]
pub(crate) enum AuditCommand {
    /// Verify the audit log against its signed checkpoint and the last one seen.
    Verify(VerifyArgs),
}

/// Arguments of `audit verify`.
#[derive(Args, Debug)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    pub(crate) server: ServerArgs,
    /// The log's verifier key, as `edgeward-server audit-key` prints it
    /// (`<origin>+<hash>+<key>`); pin it from the server's operator, not from the server.
    #[arg(long, env = "EDGEWARD_AUDIT_KEY")]
    pub(crate) key: String,
    /// The last checkpoint accepted: read if present, replaced after a successful check.
    /// Keep it where the server cannot write.
    #[arg(long)]
    pub(crate) state: PathBuf,
}

/// Runs `audit …`.
pub(crate) fn run(cmd: AuditCommand, json: bool) -> Outcome {
    let AuditCommand::Verify(a) = cmd;
    let key = NoteVerifier::parse(&a.key).map_err(|e| Failure::operator(format!("--key: {e}")))?;
    let trusted = read_state(&a.state)?;
    let admin = Admin::new(&a.server)?;
    let checkpoint = verify(&admin, &key, trusted.as_ref()).map_err(|e| match e {
        VerifyError::Audit(e) => Failure::rejected(format!("audit log: {e}"))
            .with_context(json!({ "audit_error": e.code() })),
        VerifyError::Fetch(f) => f,
    })?;
    write_state(&a.state, &checkpoint)?;
    let root = base64::engine::general_purpose::STANDARD.encode(checkpoint.root);
    let previous = trusted.as_ref().map(|t| t.size);
    if json {
        print_json(&json!({
            "ok": true,
            "origin": checkpoint.origin,
            "size": checkpoint.size,
            "root": root,
            "previous_size": previous,
        }));
    } else {
        println!(
            "audit log {} verified: {} entries, root {root}{}",
            checkpoint.origin,
            checkpoint.size,
            match previous {
                Some(p) => format!(", extends the {p} entries seen before"),
                None => " (first check: nothing seen before)".into(),
            }
        );
    }
    Ok(())
}

/// The whole check; the server's answers are untrusted, so every failure of theirs to add
/// up is an [`AuditError`].
fn verify(
    admin: &Admin,
    key: &NoteVerifier,
    trusted: Option<&Checkpoint>,
) -> Result<Checkpoint, VerifyError> {
    let note = admin.get_bounded(
        "/v1/admin/audit/checkpoint",
        "checkpoint",
        MAX_NOTE_BYTES as u64,
    )?;
    let note = String::from_utf8(note)
        .map_err(|_| Failure::rejected("checkpoint: the note is not UTF-8"))?;
    let mut v = LogVerifier::new(key, &note, trusted)?;
    let size = v.checkpoint().size;
    while v.size() < size {
        let body = admin.get_bounded(
            &format!("/v1/admin/audit/entries?start={}&end={size}", v.size()),
            "entries",
            MAX_PAGE_BYTES,
        )?;
        let page: Vec<Entry> = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|b| serde_json::from_value(b["entries"].clone()).ok())
            .ok_or_else(|| Failure::rejected("entries: the answer is not a page of entries"))?;
        if page.is_empty() {
            break;
        }
        for e in &page {
            v.push(e)?;
        }
    }
    let cp = v.finish()?;
    // The log's own consistency proof must agree with what the entries showed.
    if let Some(old) = trusted.filter(|t| t.size > 0 && t.size < cp.size) {
        let body = admin.get_bounded(
            &format!(
                "/v1/admin/audit/proof/consistency?old_size={}&size={}",
                old.size, cp.size
            ),
            "consistency proof",
            MAX_PROOF_BYTES as u64,
        )?;
        let p = ConsistencyProof::parse(&body)
            .map_err(|e| Failure::rejected(format!("consistency proof: {e}")))?;
        if p.old_size != old.size
            || p.size != cp.size
            || !merkle::verify_consistency(old.size, cp.size, &p.proof, &old.root, &cp.root)
        {
            return Err(AuditError::Proof("consistency").into());
        }
    }
    Ok(cp)
}

/// A failure of the check: the log's ([`AuditError`]) or getting its parts.
enum VerifyError {
    Audit(AuditError),
    Fetch(Failure),
}

impl From<AuditError> for VerifyError {
    fn from(e: AuditError) -> Self {
        VerifyError::Audit(e)
    }
}

impl From<Failure> for VerifyError {
    fn from(e: Failure) -> Self {
        VerifyError::Fetch(e)
    }
}

fn read_state(path: &Path) -> Result<Option<Checkpoint>, Failure> {
    let Some(bytes) = edgeward_fs::read_bounded(path, MAX_STATE_BYTES)
        .map_err(|e| Failure::operator(format!("{}: {e}", path.display())))?
    else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        Failure::operator(format!(
            "{}: not an audit state file ({e}); it holds the last checkpoint accepted",
            path.display()
        ))
    })
}

fn write_state(path: &Path, cp: &Checkpoint) -> Result<(), Failure> {
    let text = serde_json::to_vec_pretty(cp)
        .map_err(|e| Failure::operator(format!("{}: {e}", path.display())))?;
    edgeward_fs::write_atomic(path, &text, edgeward_fs::Access::Public)
        .map_err(|e| Failure::operator(format!("{}: {e}", path.display())))
}
