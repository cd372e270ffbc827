//! Listing an artifact's files the way model-signing does: a single file is the resource
//! `.`; a directory contributes every regular file below it by its POSIX relative path;
//! ignore paths exclude themselves and everything under them; symbolic links and special
//! files are refused (Edgeward never follows links).

use std::{fs, path::Path, path::PathBuf};

use crate::ArtifactError;

/// The paths model-signing ignores by default (git metadata).
pub const DEFAULT_IGNORES: [&str; 4] = [".git", ".gitattributes", ".github", ".gitignore"];

/// One regular file of an artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Resource path (`.` for a single-file artifact).
    pub name: String,
    /// Where it is on disk.
    pub path: PathBuf,
    /// Its size when listed.
    pub len: u64,
}

/// Whether `name` is `ignore` or lies below it (component-wise, like `Path.is_relative_to`).
pub fn is_ignored(name: &str, ignores: &[String]) -> bool {
    ignores.iter().any(|ig| {
        name == ig
            || (name.len() > ig.len()
                && name.starts_with(ig.as_str())
                && name.as_bytes()[ig.len()] == b'/')
    })
}

/// Lists the files of the artifact at `root`, sorted by name.
pub fn list(root: &Path, ignores: &[String]) -> Result<Vec<Entry>, ArtifactError> {
    let meta = fs::symlink_metadata(root).map_err(|e| ArtifactError::io(root, e))?;
    if meta.file_type().is_symlink() {
        return Err(ArtifactError::Artifact(format!(
            "{} is a symbolic link; Edgeward does not follow links",
            root.display()
        )));
    }
    if meta.is_file() {
        return Ok(vec![Entry {
            name: ".".into(),
            path: root.to_path_buf(),
            len: meta.len(),
        }]);
    }
    if !meta.is_dir() {
        return Err(ArtifactError::Artifact(format!(
            "{} is neither a file nor a directory",
            root.display()
        )));
    }
    let mut out = Vec::new();
    walk_dir(root, "", ignores, &mut out)?;
    out.sort_by(|a, b| a.name.split('/').cmp(b.name.split('/')));
    Ok(out)
}

fn walk_dir(
    dir: &Path,
    prefix: &str,
    ignores: &[String],
    out: &mut Vec<Entry>,
) -> Result<(), ArtifactError> {
    let reader = fs::read_dir(dir).map_err(|e| ArtifactError::io(dir, e))?;
    for item in reader {
        let item = item.map_err(|e| ArtifactError::io(dir, e))?;
        let path = item.path();
        let file_name = item.file_name();
        let Some(file_name) = file_name.to_str() else {
            return Err(ArtifactError::Artifact(format!(
                "{} has a name that is not UTF-8",
                path.display()
            )));
        };
        let name = if prefix.is_empty() {
            file_name.to_string()
        } else {
            format!("{prefix}/{file_name}")
        };
        if is_ignored(&name, ignores) {
            continue;
        }
        let meta = fs::symlink_metadata(&path).map_err(|e| ArtifactError::io(&path, e))?;
        let kind = meta.file_type();
        if kind.is_symlink() {
            return Err(ArtifactError::Artifact(format!(
                "{name} is a symbolic link; Edgeward does not follow links"
            )));
        } else if kind.is_dir() {
            walk_dir(&path, &name, ignores, out)?;
        } else if kind.is_file() {
            out.push(Entry {
                name,
                path,
                len: meta.len(),
            });
        } else {
            return Err(ArtifactError::Artifact(format!(
                "{name} is a special file (device, socket or pipe)"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_is_component_wise() {
        let ig = vec![".git".to_string(), "a/b".to_string()];
        assert!(is_ignored(".git", &ig));
        assert!(is_ignored(".git/HEAD", &ig));
        assert!(!is_ignored(".gitx", &ig));
        assert!(is_ignored("a/b/c", &ig));
        assert!(!is_ignored("a/bc", &ig));
    }
}
