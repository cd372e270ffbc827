//! Exit statuses: 0 success or verified, 1 rejected (an untrusted or malformed artifact,
//! signature or chain), 2 operator error (bad flags, unreadable files, wrong passphrase).

use edgeward_artifact::ArtifactError;

/// Exit status for a rejected artifact or signature.
pub const REJECTED: u8 = 1;
/// Exit status for an operator error.
pub const OPERATOR: u8 = 2;

/// A command's failure: the one line to print on stderr and the exit status.
#[derive(Debug)]
pub struct Failure {
    /// Exit status.
    pub code: u8,
    /// One line saying what failed and why.
    pub message: String,
    /// The command already printed its own JSON verdict for this failure.
    pub reported: bool,
}

impl Failure {
    /// An operator error.
    pub fn operator(message: impl std::fmt::Display) -> Self {
        Failure {
            code: OPERATOR,
            message: message.to_string(),
            reported: false,
        }
    }

    /// A rejection.
    pub fn rejected(message: impl std::fmt::Display) -> Self {
        Failure {
            code: REJECTED,
            message: message.to_string(),
            reported: false,
        }
    }
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
pub type Outcome = Result<(), Failure>;

/// Reads a file the operator named; failure is an operator error.
pub fn read_operator_file(path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::operator(format!("{}: {e}", path.display())))
}

/// Prints a value as one line of JSON on stdout.
pub fn print_json(value: &serde_json::Value) {
    println!("{value}");
}
