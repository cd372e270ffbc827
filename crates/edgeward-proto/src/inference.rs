//! The two local sockets of on-device inference, shared by the agent, its isolated worker and
//! the application (each of which may be written by someone else, so both directions are
//! parsed as hostile):
//!
//! - the inference socket, where the application asks the worker (the only process holding
//!   the decrypted weights) for an inference: [`Request`] in, [`Response`] out;
//! - the metrics socket, where the application reports what it measured (inferences per
//!   second, latency, the model it runs) for the agent to send with its telemetry:
//!   [`MetricsReport`].
//!
//! Every message is one frame: a 4-byte big-endian length (1 to [`MAX_FRAME`]) and that many
//! bytes, the first of which is the message kind. Numbers inside are little-endian `f32`.
//! Decoding never panics; every refusal is a typed [`ProtocolError`] (format in
//! `docs/agent.md`).

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

/// Largest frame body either side accepts (64 KiB).
pub const MAX_FRAME: usize = 64 * 1024;
/// Most `f32` values in one inference input or output.
pub const MAX_VALUES: usize = (MAX_FRAME - 1) / 4;
/// Longest error message in an error response.
pub const MAX_MESSAGE: usize = 256;

const KIND_INFER: u8 = 0x01;
const KIND_INFO: u8 = 0x02;
const KIND_OUTPUT: u8 = 0x81;
const KIND_MODEL: u8 = 0x82;
const KIND_ERROR: u8 = 0xEE;
const KIND_METRICS: u8 = 0x10;

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The length prefix is 0 or larger than the limit.
    #[error("frame length {0} is outside 1..={MAX_FRAME}")]
    Length(usize),
    /// The connection ended inside a frame.
    #[error("the connection ended inside a frame")]
    Truncated,
    /// The first byte names no message of this direction.
    #[error("unknown message kind 0x{0:02x}")]
    Kind(u8),
    /// The body does not fit its kind.
    #[error("malformed {what}: {why}")]
    Malformed {
        /// Which message.
        what: &'static str,
        /// What is wrong.
        why: String,
    },
    /// Reading or writing the socket failed.
    #[error("socket: {0}")]
    Io(String),
}

fn malformed(what: &'static str, why: impl Into<String>) -> ProtocolError {
    ProtocolError::Malformed {
        what,
        why: why.into(),
    }
}

/// What the application asks the worker.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Run the model on these inputs (finite numbers, 1 to [`MAX_VALUES`]).
    Infer(Vec<f32>),
    /// Describe the model being served.
    Info,
}

/// Why the worker refused a request (the code travels as one byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The device is quarantined: the worker serves nothing until it is released.
    Quarantined = 1,
    /// The request was not a well-formed frame.
    Malformed = 2,
    /// The input does not fit the model (its length).
    BadInput = 3,
    /// The worker failed (it says nothing more about its memory).
    Internal = 4,
}

impl ErrorCode {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => ErrorCode::Quarantined,
            2 => ErrorCode::Malformed,
            3 => ErrorCode::BadInput,
            4 => ErrorCode::Internal,
            _ => return None,
        })
    }
}

/// What the worker answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// The model's outputs.
    Output(Vec<f32>),
    /// The model being served.
    Model {
        /// SHA-256 of the plaintext model (what its signature covers).
        sha256: [u8; 32],
        /// Inputs the model takes.
        inputs: u32,
        /// Outputs it gives.
        outputs: u32,
    },
    /// A refusal.
    Error {
        /// Why.
        code: ErrorCode,
        /// Said to a human (at most [`MAX_MESSAGE`] bytes).
        message: String,
    },
}

/// What the application reports on the metrics socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsReport {
    /// Inferences per second over the application's last window (0 to 10⁶).
    pub inferences_per_sec: f64,
    /// Mean latency of one inference in milliseconds (0 to 10⁶).
    pub latency_ms: f64,
    /// SHA-256 of the model in use, 64 hex digits.
    pub model_sha256: String,
}

fn values(body: &[u8], what: &'static str) -> Result<Vec<f32>, ProtocolError> {
    if body.is_empty() || !body.len().is_multiple_of(4) {
        return Err(malformed(
            what,
            format!("{} bytes is not 1 or more f32 values", body.len()),
        ));
    }
    let v: Vec<f32> = body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if v.iter().any(|x| !x.is_finite()) {
        return Err(malformed(what, "a value is not finite"));
    }
    Ok(v)
}

fn encode_values(kind: u8, v: &[f32]) -> Vec<u8> {
    let mut body = Vec::with_capacity(1 + v.len() * 4);
    body.push(kind);
    for x in v {
        body.extend_from_slice(&x.to_le_bytes());
    }
    body
}

impl Request {
    /// Parses a frame body (without its length prefix).
    pub fn decode(body: &[u8]) -> Result<Self, ProtocolError> {
        let (&kind, rest) = body.split_first().ok_or(ProtocolError::Length(0))?;
        match kind {
            KIND_INFER => values(rest, "inference input").map(Request::Infer),
            KIND_INFO if rest.is_empty() => Ok(Request::Info),
            KIND_INFO => Err(malformed("info request", "it has a body")),
            other => Err(ProtocolError::Kind(other)),
        }
    }

    /// The frame body.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Request::Infer(v) => encode_values(KIND_INFER, v),
            Request::Info => vec![KIND_INFO],
        }
    }
}

impl Response {
    /// Parses a frame body (without its length prefix).
    pub fn decode(body: &[u8]) -> Result<Self, ProtocolError> {
        let (&kind, rest) = body.split_first().ok_or(ProtocolError::Length(0))?;
        match kind {
            KIND_OUTPUT => values(rest, "inference output").map(Response::Output),
            KIND_MODEL => {
                if rest.len() != 40 {
                    return Err(malformed("model description", "not 40 bytes"));
                }
                let mut sha256 = [0u8; 32];
                sha256.copy_from_slice(&rest[..32]);
                let n = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                Ok(Response::Model {
                    sha256,
                    inputs: n(&rest[32..36]),
                    outputs: n(&rest[36..40]),
                })
            }
            KIND_ERROR => {
                let (&code, message) = rest
                    .split_first()
                    .ok_or_else(|| malformed("error", "no code"))?;
                let code = ErrorCode::from_byte(code)
                    .ok_or_else(|| malformed("error", format!("unknown code {code}")))?;
                if message.len() > MAX_MESSAGE {
                    return Err(malformed("error", "message too long"));
                }
                let message = std::str::from_utf8(message)
                    .map_err(|_| malformed("error", "message is not UTF-8"))?
                    .to_string();
                Ok(Response::Error { code, message })
            }
            other => Err(ProtocolError::Kind(other)),
        }
    }

    /// The frame body (an error message is cut at [`MAX_MESSAGE`] bytes).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Response::Output(v) => encode_values(KIND_OUTPUT, v),
            Response::Model {
                sha256,
                inputs,
                outputs,
            } => {
                let mut body = vec![KIND_MODEL];
                body.extend_from_slice(sha256);
                body.extend_from_slice(&inputs.to_be_bytes());
                body.extend_from_slice(&outputs.to_be_bytes());
                body
            }
            Response::Error { code, message } => {
                let mut end = message.len().min(MAX_MESSAGE);
                while !message.is_char_boundary(end) {
                    end -= 1;
                }
                let mut body = vec![KIND_ERROR, *code as u8];
                body.extend_from_slice(&message.as_bytes()[..end]);
                body
            }
        }
    }
}

impl MetricsReport {
    /// Parses a frame body: the kind byte, then the report as JSON.
    pub fn decode(body: &[u8]) -> Result<Self, ProtocolError> {
        let (&kind, json) = body.split_first().ok_or(ProtocolError::Length(0))?;
        if kind != KIND_METRICS {
            return Err(ProtocolError::Kind(kind));
        }
        let r: MetricsReport =
            serde_json::from_slice(json).map_err(|e| malformed("metrics report", e.to_string()))?;
        for (name, v) in [
            ("inferences_per_sec", r.inferences_per_sec),
            ("latency_ms", r.latency_ms),
        ] {
            if !(0.0..=1e6).contains(&v) {
                return Err(malformed("metrics report", format!("{name} out of range")));
            }
        }
        if r.model_sha256.len() != 64 || !r.model_sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed(
                "metrics report",
                "model_sha256 is not 64 hex digits",
            ));
        }
        Ok(r)
    }

    /// The frame body.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = vec![KIND_METRICS];
        // Serializing plain numbers and a string cannot fail.
        body.extend_from_slice(&serde_json::to_vec(self).unwrap_or_default());
        body
    }
}

/// Reads one frame body (bounded by [`MAX_FRAME`]); `Ok(None)` when the peer closed the
/// connection between frames.
pub fn read_frame(r: &mut impl Read) -> Result<Option<Vec<u8>>, ProtocolError> {
    let mut prefix = [0u8; 4];
    let mut got = 0;
    while got < prefix.len() {
        match r.read(&mut prefix[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(ProtocolError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ProtocolError::Io(e.to_string())),
        }
    }
    let len = frame_len(prefix)?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => ProtocolError::Truncated,
        _ => ProtocolError::Io(e.to_string()),
    })?;
    Ok(Some(body))
}

/// The body length a prefix announces, checked against the bounds.
pub fn frame_len(prefix: [u8; 4]) -> Result<usize, ProtocolError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len == 0 || len > MAX_FRAME {
        return Err(ProtocolError::Length(len));
    }
    Ok(len)
}

/// Writes one frame (the body must be 1 to [`MAX_FRAME`] bytes).
pub fn write_frame(w: &mut impl Write, body: &[u8]) -> Result<(), ProtocolError> {
    if body.is_empty() || body.len() > MAX_FRAME {
        return Err(ProtocolError::Length(body.len()));
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(body);
    w.write_all(&frame)
        .and_then(|()| w.flush())
        .map_err(|e| ProtocolError::Io(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        for r in [Request::Infer(vec![1.0, -2.5, 0.0]), Request::Info] {
            assert_eq!(Request::decode(&r.encode()), Ok(r));
        }
        for r in [
            Response::Output(vec![0.25; 10]),
            Response::Model {
                sha256: [7; 32],
                inputs: 64,
                outputs: 10,
            },
            Response::Error {
                code: ErrorCode::Quarantined,
                message: "quarantined".into(),
            },
        ] {
            assert_eq!(Response::decode(&r.encode()), Ok(r));
        }
        let m = MetricsReport {
            inferences_per_sec: 29.5,
            latency_ms: 3.25,
            model_sha256: "ab".repeat(32),
        };
        assert_eq!(MetricsReport::decode(&m.encode()), Ok(m));
        let mut wire = Vec::new();
        write_frame(&mut wire, &Request::Info.encode()).expect("write");
        assert_eq!(read_frame(&mut &wire[..]), Ok(Some(Request::Info.encode())));
    }

    #[test]
    fn hostile_frames_are_refused_by_kind() {
        assert_eq!(
            frame_len((MAX_FRAME as u32 + 1).to_be_bytes()),
            Err(ProtocolError::Length(MAX_FRAME + 1))
        );
        assert_eq!(frame_len([0; 4]), Err(ProtocolError::Length(0)));
        assert_eq!(
            read_frame(&mut &[0u8, 0, 0, 9, 1, 2][..]),
            Err(ProtocolError::Truncated)
        );
        assert_eq!(Request::decode(&[0x42]), Err(ProtocolError::Kind(0x42)));
        assert!(matches!(
            Request::decode(&[KIND_INFER, 1, 2, 3]),
            Err(ProtocolError::Malformed { .. })
        ));
        let nan = encode_values(KIND_INFER, &[f32::NAN]);
        assert!(matches!(
            Request::decode(&nan),
            Err(ProtocolError::Malformed { .. })
        ));
        assert!(matches!(
            Response::decode(&[KIND_ERROR, 9]),
            Err(ProtocolError::Malformed { what: "error", why }) if why == "unknown code 9"
        ));
        assert!(matches!(
            MetricsReport::decode(
                b"\x10{\"inferences_per_sec\":-1,\"latency_ms\":1,\"model_sha256\":\"\"}"
            ),
            Err(ProtocolError::Malformed { what: "metrics report", why })
                if why == "inferences_per_sec out of range"
        ));
    }
}
