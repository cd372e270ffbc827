//! Writing the hierarchy's files safely: private keys 0600 from the moment their temporary
//! file exists, every file replaced atomically so a crash never leaves half a key or half a
//! CRL. The one implementation is `edgeward-fs`; this names the hierarchy's choice.

use std::path::Path;

use edgeward_fs::Access;

/// Writes `data` to `path` atomically (see `edgeward_fs::write_atomic`); `secret` files get
/// mode 0600, others 0644.
pub fn write_atomic(path: &Path, data: &[u8], secret: bool) -> std::io::Result<()> {
    let access = if secret {
        Access::Private
    } else {
        Access::Public
    };
    edgeward_fs::write_atomic(path, data, access)
}
