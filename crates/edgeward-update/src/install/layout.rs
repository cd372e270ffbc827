//! Where releases are installed: two A/B slots (files or block devices) for firmware and
//! OS images, or versioned directories with a `current` symbolic link for applications and
//! models. A slot is named `a`/`b`, or by its version directory; the state file names the
//! active one and this module maps names to paths and performs the switch.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::points;

/// How a component is laid out on the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Two slots: the release is written into the inactive one and the state file's
    /// `active` is the switch (the boot integration reads it).
    Slots {
        /// Slot `a` (a file or block device).
        a: PathBuf,
        /// Slot `b`.
        b: PathBuf,
    },
    /// `ROOT/versions/NAME/FILE` per release and `ROOT/current` → `versions/NAME`,
    /// switched by renaming a new link over it.
    Versions {
        /// The component's directory.
        root: PathBuf,
    },
}

/// Longest version text kept in a directory name.
const MAX_NAME_VERSION: usize = 64;

impl Layout {
    /// The active slot of a device the installer has never run on: `a`, or the version
    /// `current` links to ("" when there is none).
    pub fn initial(&self) -> String {
        match self {
            Layout::Slots { .. } => "a".into(),
            Layout::Versions { root } => fs::read_link(root.join("current"))
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_default(),
        }
    }

    /// The slot a release with `version` and id `id` is written to while `active` runs.
    pub fn inactive(&self, active: &str, version: &str, id: &str) -> String {
        match self {
            Layout::Slots { .. } => if active == "b" { "a" } else { "b" }.into(),
            Layout::Versions { .. } => {
                let v: String = version
                    .chars()
                    .take(MAX_NAME_VERSION)
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                let short: String = id.chars().take(12).collect();
                format!("v{v}-{short}")
            }
        }
    }

    /// The file (or device) holding `target` in `slot`; `None` for an unknown slot name.
    pub fn path(&self, slot: &str, target: &str) -> Option<PathBuf> {
        match self {
            Layout::Slots { a, b } => match slot {
                "a" => Some(a.clone()),
                "b" => Some(b.clone()),
                _ => None,
            },
            Layout::Versions { root } => {
                let file = target.rsplit('/').next().filter(|f| !f.is_empty())?;
                let ok = !slot.is_empty() && !slot.contains('/') && slot != "." && slot != "..";
                ok.then(|| root.join("versions").join(slot).join(file))
            }
        }
    }

    /// Makes `slot` ready to be written (creates a version directory).
    pub fn prepare(&self, slot: &str) -> io::Result<()> {
        if let Layout::Versions { root } = self {
            let versions = root.join("versions");
            fs::create_dir_all(versions.join(slot))?;
            edgeward_fs::sync_dir(&versions)?;
            points::reached("create the version directory");
        }
        Ok(())
    }

    /// Makes `slot` the one in use ("" for none). Slots: nothing to do (the state file is
    /// the switch). Versions: a new link renamed over `current`, then the directory synced.
    pub fn switch(&self, slot: &str) -> io::Result<()> {
        let Layout::Versions { root } = self else {
            return Ok(());
        };
        let current = root.join("current");
        if slot.is_empty() {
            return edgeward_fs::remove_durably(&current);
        }
        if fs::read_link(&current).ok() == Some(Path::new("versions").join(slot)) {
            return Ok(());
        }
        let tmp = root.join(".current.tmp");
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        std::os::unix::fs::symlink(Path::new("versions").join(slot), &tmp)?;
        points::reached("create the new link");
        fs::rename(&tmp, &current)?;
        points::reached("rename the link over current");
        edgeward_fs::sync_dir(root)?;
        points::reached("fsync the component directory");
        Ok(())
    }

    /// Removes version directories other than `keep` (old releases).
    pub fn clean(&self, keep: &[&str]) -> io::Result<()> {
        let Layout::Versions { root } = self else {
            return Ok(());
        };
        let versions = root.join("versions");
        let entries = match fs::read_dir(&versions) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !keep.contains(&name.as_str()) {
                fs::remove_dir_all(entry.path())?;
            }
        }
        edgeward_fs::sync_dir(&versions)
    }
}
