//! Tamper response: a tamper input — a flag file, or a GPIO-style value file such as
//! `/sys/class/gpio/gpioN/value` — that reads anything but `0` makes the agent wipe the
//! secure element at once. A wiped element holds no root anchor, so the device refuses to
//! boot until it is re-provisioned.

use std::{
    io::Read,
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use edgeward_se::{SeError, SecureElement};

/// A tamper input.
#[derive(Debug, Clone)]
pub struct TamperInput {
    /// The file to watch.
    pub path: PathBuf,
}

impl TamperInput {
    /// Whether the input is tripped: the file exists and its first non-blank byte is not
    /// `0`. An unreadable existing file counts as tripped (fail closed).
    pub fn tripped(&self) -> bool {
        read_tripped(&self.path)
    }
}

fn read_tripped(path: &Path) -> bool {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
        Err(_) => return true,
    };
    let mut buf = [0u8; 16];
    match f.read(&mut buf) {
        Ok(n) => buf[..n]
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_none_or(|&b| b != b'0'),
        Err(_) => true,
    }
}

/// Checks `input` once; when tripped, wipes `se` and returns `true`.
pub fn respond(se: &dyn SecureElement, input: &TamperInput) -> Result<bool, SeError> {
    if !input.tripped() {
        return Ok(false);
    }
    se.wipe()?;
    Ok(true)
}

/// Polls `input` every `interval` until it trips (wiping `se`, returning `true`) or `stop`
/// is set (returning `false`).
pub fn watch(
    se: &dyn SecureElement,
    input: &TamperInput,
    interval: Duration,
    stop: &AtomicBool,
) -> Result<bool, SeError> {
    while !stop.load(Ordering::Relaxed) {
        if respond(se, input)? {
            return Ok(true);
        }
        std::thread::sleep(interval);
    }
    Ok(false)
}
