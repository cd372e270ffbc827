//! Where a payload is read from: memory or a file, by position. Decryption reads each chunk
//! straight into the buffer it is decrypted in (no whole-file staging copy), on every core
//! at once, and the failure diagnosis reads single chunks — so both only need positioned
//! reads, which a file answers without a shared cursor.

use std::{fs::File, io};

/// A payload readable at any position.
pub trait PayloadSource: Sync {
    /// The payload's length in bytes.
    fn len(&self) -> u64;

    /// Whether the payload is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills `buf` with the bytes at `offset`; fails if they run past the end.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
}

impl PayloadSource for &[u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let piece = usize::try_from(offset)
            .ok()
            .and_then(|start| self.get(start..start.checked_add(buf.len())?))
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(piece);
        Ok(())
    }
}

/// The payload of a container file: the bytes from `offset` to the file's end, as that
/// length was when the container was opened.
pub struct FilePayload<'f> {
    file: &'f File,
    offset: u64,
    len: u64,
}

impl<'f> FilePayload<'f> {
    /// The payload of `file` starting at `offset` and `len` bytes long.
    pub fn new(file: &'f File, offset: u64, len: u64) -> Self {
        FilePayload { file, offset, len }
    }
}

impl PayloadSource for FilePayload<'_> {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|end| end > self.len) {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        read_exact_at(self.file, self.offset + offset, buf)
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, offset: u64, buf: &mut [u8]) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut offset: u64, mut buf: &mut [u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, buf, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
