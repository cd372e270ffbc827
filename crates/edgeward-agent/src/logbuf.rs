//! The agent's recent log lines, kept in memory for forensic bundles: the daemon's log
//! writer ([`Tee`]) copies every line to standard error and into a bounded ring (the last
//! [`MAX_LINES`] lines, each cut at [`MAX_LINE`] bytes), so an investigation gets what the
//! agent saw lately even on a device whose journal is volatile or was tampered with.

use std::{
    collections::VecDeque,
    io::Write,
    sync::{Mutex, OnceLock},
};

/// Lines kept.
pub const MAX_LINES: usize = 1000;
/// Longest line kept (bytes).
pub const MAX_LINE: usize = 2048;

fn ring() -> &'static Mutex<VecDeque<String>> {
    static RING: OnceLock<Mutex<VecDeque<String>>> = OnceLock::new();
    RING.get_or_init(|| Mutex::new(VecDeque::with_capacity(MAX_LINES)))
}

/// Appends a line to the ring, dropping the oldest beyond [`MAX_LINES`].
pub fn push(line: &str) {
    let mut line = line.trim_end().to_string();
    if line.len() > MAX_LINE {
        let mut cut = MAX_LINE;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
    }
    let mut r = ring().lock().unwrap_or_else(|p| p.into_inner());
    if r.len() == MAX_LINES {
        r.pop_front();
    }
    r.push_back(line);
}

/// The lines kept, oldest first.
pub fn recent() -> Vec<String> {
    ring()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .cloned()
        .collect()
}

/// A log writer that writes to standard error and keeps each line in the ring; give
/// `tracing_subscriber::fmt().with_writer(|| Tee::default())`.
#[derive(Debug, Default)]
pub struct Tee {
    buf: Vec<u8>,
}

impl Write for Tee {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        std::io::stderr().write_all(data)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl Drop for Tee {
    fn drop(&mut self) {
        for line in String::from_utf8_lossy(&self.buf).lines() {
            push(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_is_bounded_and_keeps_the_newest() {
        for i in 0..MAX_LINES + 5 {
            push(&format!("line {i}"));
        }
        push(&"é".repeat(MAX_LINE));
        let lines = recent();
        assert_eq!(lines.len(), MAX_LINES);
        assert_eq!(lines[0], "line 6");
        assert!(lines[MAX_LINES - 1].len() <= MAX_LINE);
    }
}
