//! Writing the hierarchy's files safely: private keys 0600, every file replaced atomically
//! (written beside, fsynced, renamed) so a crash never leaves half a key or half a CRL.

use std::{
    fs::{self, OpenOptions},
    io::Write,
    path::Path,
};

/// Writes `data` to `path` atomically; `secret` files get mode 0600.
pub fn write_atomic(path: &Path, data: &[u8], secret: bool) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp-edgeward");
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)
}
