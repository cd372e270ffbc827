//! The private channel between the agent and its inference worker: a socket pair that is the
//! worker's standard input. First the agent passes two descriptors (the encrypted model file
//! and the listening inference socket) with `SCM_RIGHTS`, so the worker needs no path at all;
//! then frames (4-byte big-endian length, a kind byte, the body):
//!
//! - agent → worker: [`Message::Start`] once (the released file key, whether the device is
//!   quarantined, the verified statement), then [`Message::Quarantine`] on every change;
//! - worker → agent: [`Message::Ready`] (the model's digest and shape) or
//!   [`Message::Failed`], once; then [`Message::Applied`] for every quarantine change, once
//!   the worker's request path sees it (so the agent knows when refusals begin).
//!
//! The key travels only here: never in arguments, the environment or a file. Buffers that
//! held it are zeroized.

use std::{
    io::{Read, Write},
    os::{fd::OwnedFd, unix::net::UnixStream},
};

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use zeroize::{Zeroize, Zeroizing};

/// Largest frame on the channel (a sharded statement of a large model is big).
pub const MAX_HANDOFF: usize = 16 << 20;
/// Longest failure message.
const MAX_FAILURE: usize = 1024;

const START: u8 = 0x01;
const QUARANTINE: u8 = 0x02;
const READY: u8 = 0x81;
const APPLIED: u8 = 0x82;
const FAILED: u8 = 0x8f;

/// One message on the channel.
pub enum Message {
    /// The model's file key (released by the element after the signature verified), the
    /// initial quarantine state and the verified statement (JSON) the plaintext must match.
    Start {
        /// The container's file key.
        file_key: Zeroizing<[u8; 32]>,
        /// Whether to refuse every request from the start.
        quarantined: bool,
        /// The signed statement.
        statement: Vec<u8>,
    },
    /// The device entered (true) or left (false) quarantine.
    Quarantine(bool),
    /// The worker decrypted and checked the model, is sandboxed and serves.
    Ready {
        /// SHA-256 of the plaintext model.
        sha256: [u8; 32],
        /// Inputs the model takes.
        inputs: u32,
        /// Outputs it gives.
        outputs: u32,
    },
    /// The worker applied a quarantine change: every request it reads from now on is
    /// refused (true) or served (false).
    Applied(bool),
    /// The worker could not start (and exits).
    Failed(String),
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Message::Start { quarantined, .. } => f
                .debug_struct("Start")
                .field("quarantined", quarantined)
                .finish_non_exhaustive(),
            Message::Quarantine(q) => write!(f, "Quarantine({q})"),
            Message::Ready {
                inputs, outputs, ..
            } => write!(f, "Ready({inputs}→{outputs})"),
            Message::Applied(q) => write!(f, "Applied({q})"),
            Message::Failed(m) => write!(f, "Failed({m:?})"),
        }
    }
}

/// Why the channel failed.
#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    /// The socket failed or closed.
    #[error("worker channel: {0}")]
    Io(#[from] std::io::Error),
    /// A frame did not have the expected shape.
    #[error("worker channel: {0}")]
    Malformed(String),
}

impl Message {
    /// Writes the message as one frame (the buffer is zeroized afterwards).
    pub fn write(&self, w: &mut impl Write) -> Result<(), HandoffError> {
        let mut body = Zeroizing::new(Vec::new());
        match self {
            Message::Start {
                file_key,
                quarantined,
                statement,
            } => {
                body.push(START);
                body.extend_from_slice(file_key.as_ref());
                body.push(u8::from(*quarantined));
                body.extend_from_slice(statement);
            }
            Message::Quarantine(q) => body.extend_from_slice(&[QUARANTINE, u8::from(*q)]),
            Message::Applied(q) => body.extend_from_slice(&[APPLIED, u8::from(*q)]),
            Message::Ready {
                sha256,
                inputs,
                outputs,
            } => {
                body.push(READY);
                body.extend_from_slice(sha256);
                body.extend_from_slice(&inputs.to_be_bytes());
                body.extend_from_slice(&outputs.to_be_bytes());
            }
            Message::Failed(m) => {
                body.push(FAILED);
                let mut end = m.len().min(MAX_FAILURE);
                while !m.is_char_boundary(end) {
                    end -= 1;
                }
                body.extend_from_slice(&m.as_bytes()[..end]);
            }
        }
        if body.len() > MAX_HANDOFF {
            return Err(HandoffError::Malformed(format!(
                "a {} byte frame is over the limit",
                body.len()
            )));
        }
        w.write_all(&(body.len() as u32).to_be_bytes())?;
        w.write_all(&body)?;
        w.flush()?;
        Ok(())
    }

    /// Reads one frame; `Ok(None)` when the peer closed the channel between frames.
    pub fn read(r: &mut impl Read) -> Result<Option<Message>, HandoffError> {
        let mut prefix = [0u8; 4];
        match r.read_exact(&mut prefix) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let len = u32::from_be_bytes(prefix) as usize;
        if len == 0 || len > MAX_HANDOFF {
            return Err(HandoffError::Malformed(format!("frame length {len}")));
        }
        let mut body = Zeroizing::new(vec![0u8; len]);
        r.read_exact(&mut body)?;
        Self::decode(&body).map(Some)
    }

    fn decode(body: &[u8]) -> Result<Message, HandoffError> {
        let bad = |what: &str| HandoffError::Malformed(what.to_string());
        let (&kind, rest) = body.split_first().ok_or_else(|| bad("empty frame"))?;
        Ok(match kind {
            START if rest.len() > 33 => {
                let mut file_key = Zeroizing::new([0u8; 32]);
                file_key.copy_from_slice(&rest[..32]);
                Message::Start {
                    file_key,
                    quarantined: rest[32] != 0,
                    statement: rest[33..].to_vec(),
                }
            }
            QUARANTINE if rest.len() == 1 => Message::Quarantine(rest[0] != 0),
            APPLIED if rest.len() == 1 => Message::Applied(rest[0] != 0),
            READY if rest.len() == 40 => {
                let mut sha256 = [0u8; 32];
                sha256.copy_from_slice(&rest[..32]);
                let n = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                Message::Ready {
                    sha256,
                    inputs: n(&rest[32..36]),
                    outputs: n(&rest[36..40]),
                }
            }
            FAILED if rest.len() <= MAX_FAILURE => {
                Message::Failed(String::from_utf8_lossy(rest).into_owned())
            }
            other => return Err(HandoffError::Malformed(format!("frame kind 0x{other:02x}"))),
        })
    }
}

/// Sends the model file and the listening socket over the channel.
pub fn send_descriptors(
    channel: &UnixStream,
    model: &std::fs::File,
    listener: &std::os::unix::net::UnixListener,
) -> Result<(), HandoffError> {
    use std::os::fd::AsFd;
    let fds = [model.as_fd(), listener.as_fd()];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(HandoffError::Malformed(
            "no room for two descriptors".into(),
        ));
    }
    let sent = sendmsg(
        channel,
        &[std::io::IoSlice::new(b"F")],
        &mut control,
        SendFlags::empty(),
    )
    .map_err(std::io::Error::from)?;
    if sent != 1 {
        return Err(HandoffError::Malformed(
            "the descriptors were not sent".into(),
        ));
    }
    Ok(())
}

/// Receives the model file and the listening socket (in that order).
pub fn receive_descriptors(channel: &UnixStream) -> Result<(OwnedFd, OwnedFd), HandoffError> {
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    let got = recvmsg(
        channel,
        &mut [std::io::IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(std::io::Error::from)?;
    if got.bytes != 1 || byte != *b"F" {
        return Err(HandoffError::Malformed(
            "no descriptor message from the agent".into(),
        ));
    }
    let mut fds: Vec<OwnedFd> = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = message {
            fds.extend(rights);
        }
    }
    byte.zeroize();
    let mut fds = fds.into_iter();
    match (fds.next(), fds.next(), fds.next()) {
        (Some(model), Some(listener), None) => Ok((model, listener)),
        _ => Err(HandoffError::Malformed(
            "expected exactly two descriptors (model, socket)".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bad_ones_are_refused() {
        let mut wire = Vec::new();
        Message::Start {
            file_key: Zeroizing::new([9; 32]),
            quarantined: true,
            statement: b"{}".to_vec(),
        }
        .write(&mut wire)
        .expect("write");
        Message::Quarantine(false).write(&mut wire).expect("write");
        Message::Applied(true).write(&mut wire).expect("write");
        let mut r = &wire[..];
        match Message::read(&mut r).expect("read") {
            Some(Message::Start {
                file_key,
                quarantined,
                statement,
            }) => {
                assert_eq!(*file_key, [9; 32]);
                assert!(quarantined);
                assert_eq!(statement, b"{}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Message::read(&mut r),
            Ok(Some(Message::Quarantine(false)))
        ));
        assert!(matches!(
            Message::read(&mut r),
            Ok(Some(Message::Applied(true)))
        ));
        assert!(matches!(Message::read(&mut r), Ok(None)));
        assert!(matches!(
            Message::read(&mut &[0u8, 0, 0, 1, 0x55][..]),
            Err(HandoffError::Malformed(m)) if m == "frame kind 0x55"
        ));
        assert!(matches!(
            Message::read(&mut &[0xffu8, 0, 0, 1][..]),
            Err(HandoffError::Malformed(m)) if m == "frame length 4278190081"
        ));
    }
}
