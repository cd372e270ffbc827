//! The agent's one error type: every failure names what was being done and why it failed.

use std::path::PathBuf;

use edgeward_se::SeError;

/// Why an agent operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The configuration file is missing, malformed or inconsistent.
    #[error("configuration: {0}")]
    Config(String),
    /// A file or directory operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The secure element refused or failed.
    #[error("secure element: {0}")]
    Element(#[from] SeError),
    /// The server could not be reached (connection, TLS or timeout).
    #[error("server unreachable: {0}")]
    Unreachable(String),
    /// The server answered with a refusal.
    #[error("server refused {what} ({status} {code}): {message}")]
    Refused {
        /// The call.
        what: String,
        /// HTTP status.
        status: u16,
        /// The server's error code (`unauthenticated`, `quarantined`, …).
        code: String,
        /// The server's message.
        message: String,
    },
    /// The server's answer or a stored file did not have the expected shape.
    #[error("protocol: {0}")]
    Protocol(String),
}

impl AgentError {
    /// An I/O failure on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        AgentError::Io {
            path: path.into(),
            source,
        }
    }
}
