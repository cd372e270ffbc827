//! Exit statuses: 0 success or verified, 1 rejected (an untrusted or malformed artifact,
//! signature or chain), 2 operator error (bad flags, unreadable files, wrong passphrase);
//! and the one JSON shape every command prints on failure with `--json` ([`failure_json`]).

use edgeward_artifact::ArtifactError;
use serde_json::{json, Map, Value};

/// Exit status for a rejected artifact or signature.
pub(crate) const REJECTED: u8 = 1;
/// Exit status for an operator error.
pub(crate) const OPERATOR: u8 = 2;

/// A command's failure: the one line to print on stderr, the exit status, and what the
/// command adds to its JSON error object.
#[derive(Debug)]
pub(crate) struct Failure {
    /// Exit status.
    pub(crate) code: u8,
    /// One line saying what failed and why.
    pub(crate) message: String,
    /// Fields the command adds beside `ok`, `exit_code` and `error` (e.g. `verify`'s `path`).
    pub(crate) context: Map<String, Value>,
}

impl Failure {
    /// An operator error.
    pub(crate) fn operator(message: impl std::fmt::Display) -> Self {
        Failure {
            code: OPERATOR,
            message: message.to_string(),
            context: Map::new(),
        }
    }

    /// A rejection.
    pub(crate) fn rejected(message: impl std::fmt::Display) -> Self {
        Failure {
            code: REJECTED,
            message: message.to_string(),
            context: Map::new(),
        }
    }

    /// Adds the fields of the JSON object `fields` to the failure's JSON.
    pub(crate) fn with_context(mut self, fields: Value) -> Self {
        if let Value::Object(fields) = fields {
            self.context.extend(fields);
        }
        self
    }

    /// `rejected` or `operator-error`.
    pub(crate) fn kind(&self) -> &'static str {
        if self.code == REJECTED {
            KIND_REJECTED
        } else {
            KIND_OPERATOR
        }
    }
}

/// `error.kind` of a rejection (exit 1).
pub(crate) const KIND_REJECTED: &str = "rejected";
/// `error.kind` of an operator error (exit 2).
pub(crate) const KIND_OPERATOR: &str = "operator-error";
/// `error.kind` of a command line the argument parser refused (exit 2).
pub(crate) const KIND_USAGE: &str = "usage";

/// The JSON object every command prints on failure with `--json`:
/// `{"ok":false,"exit_code":N,"error":{"kind":K,"message":M}, …context}`.
pub(crate) fn failure_json(
    kind: &str,
    message: &str,
    code: u8,
    context: &Map<String, Value>,
) -> Value {
    let mut out = context.clone();
    out.insert("ok".into(), json!(false));
    out.insert("exit_code".into(), json!(code));
    out.insert("error".into(), json!({ "kind": kind, "message": message }));
    Value::Object(out)
}

impl From<ArtifactError> for Failure {
    fn from(e: ArtifactError) -> Self {
        if e.is_rejection() {
            Failure::rejected(e)
        } else {
            Failure::operator(e)
        }
    }
}

impl From<edgeward_pki::PkiError> for Failure {
    fn from(e: edgeward_pki::PkiError) -> Self {
        Failure::operator(e)
    }
}

/// The result of a command.
pub(crate) type Outcome = Result<(), Failure>;

/// Reads a file the operator named; failure is an operator error.
pub(crate) fn read_operator_file(path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::operator(format!("{}: {e}", path.display())))
}

/// Prints a value as one line of JSON on stdout.
pub(crate) fn print_json(value: &Value) {
    println!("{value}");
}
