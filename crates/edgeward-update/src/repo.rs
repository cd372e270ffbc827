//! The repository side: creating and updating a TUF repository in a directory.
//!
//! Layout (consistent snapshots, so a static HTTP server can serve it while it is being
//! updated): `metadata/N.root.json`, `metadata/N.targets.json`, `metadata/N.ROLE.json`
//! for delegated roles, `metadata/N.snapshot.json`, `metadata/timestamp.json`, and
//! `targets/DIR/SHA256.NAME` for target `DIR/NAME`. Every file is written atomically, and
//! the timestamp last, so a client never sees a timestamp naming files not yet there.
//!
//! Keys follow Edgeward's hierarchy: the root role is the hierarchy's root key (offline),
//! the targets role the online signing key, snapshot and timestamp the server's online
//! keys. Delegated roles are path-scoped (a model team signs `models/*` with its own key).
//! A new root version is signed by the old and the new root keys.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::fsio;
use crate::tuf::envelope::Envelope;
use crate::tuf::metadata::{path_matches, Root, Snapshot, Targets, Timestamp};
use crate::tuf::signer::{sign_metadata, SignError, SigningKey};

/// Why the repository could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The repository's own metadata is not valid.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The directory already holds a repository.
    #[error("{0} already holds a TUF repository")]
    Exists(String),
    /// A key does not belong to the role it is used for.
    #[error("key {keyid} is not a key of role {role} in the current root")]
    WrongKey {
        /// Role name.
        role: String,
        /// The key's id.
        keyid: String,
    },
    /// The role is not a targets role of this repository.
    #[error("no targets role {0:?} in this repository")]
    NoRole(String),
    /// A target path outside what the role is delegated.
    #[error("role {role} is not delegated target path {path:?} (its paths: {paths:?})")]
    OutsidePaths {
        /// Role name.
        role: String,
        /// Target path.
        path: String,
        /// The role's delegated patterns.
        paths: Vec<String>,
    },
    /// A target path that is not a clean relative path.
    #[error("target path {0:?} must be relative, with no empty, `.` or `..` component")]
    BadPath(String),
    /// Signing failed.
    #[error(transparent)]
    Sign(#[from] SignError),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RepoError + '_ {
    move |source| RepoError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn invalid(path: &Path, reason: impl Into<String>) -> RepoError {
    RepoError::Invalid {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

/// How long each role's metadata stays valid when it is (re-)signed, in days.
#[derive(Debug, Clone, Copy)]
pub struct Expiry {
    /// Root: one year (the offline key signs rarely).
    pub root: i64,
    /// Targets and delegated roles: 90 days, the signing key's rotation period.
    pub targets: i64,
    /// Snapshot: one week.
    pub snapshot: i64,
    /// Timestamp: one day (the server re-signs it).
    pub timestamp: i64,
}

impl Default for Expiry {
    fn default() -> Self {
        Expiry {
            root: 365,
            targets: 90,
            snapshot: 7,
            timestamp: 1,
        }
    }
}

/// The public keys of the four top-level roles, for a new repository.
pub struct RootKeys<'a> {
    /// Root role keys (threshold: all of them).
    pub root: Vec<&'a SigningKey>,
    /// The online signing key.
    pub targets: &'a SigningKey,
    /// Snapshot key.
    pub snapshot: &'a SigningKey,
    /// Timestamp key.
    pub timestamp: &'a SigningKey,
}

/// A TUF repository in a directory, loaded for editing.
pub struct Repository {
    dir: PathBuf,
    expiry: Expiry,
    now: i64,
    root: Value,
    /// Targets roles (top-level `targets` and delegated ones) by name.
    roles: BTreeMap<String, Value>,
    snapshot: Value,
    timestamp: Value,
    /// Targets roles edited since loading.
    dirty: Vec<String>,
}

fn expires(now: i64, days: i64) -> Result<String, RepoError> {
    let t = OffsetDateTime::from_unix_timestamp(now + days * 86_400)
        .map_err(|e| invalid(Path::new("(clock)"), e.to_string()))?;
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.format(&f)
        .map_err(|e| invalid(Path::new("(clock)"), e.to_string()))
}

fn common(kind: &str, expires: String) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("_type".into(), json!(kind));
    m.insert("spec_version".into(), json!("1.0.31"));
    m.insert("version".into(), json!(1));
    m.insert("expires".into(), json!(expires));
    m
}

fn version_of(v: &Value) -> u64 {
    v["version"].as_u64().unwrap_or(0)
}

/// Checks that `path` is a clean relative target path.
fn check_target_path(path: &str) -> Result<(), RepoError> {
    if path.is_empty()
        || path.starts_with('/')
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(RepoError::BadPath(path.to_string()));
    }
    Ok(())
}

impl Repository {
    /// Creates a new repository in `dir` (which may exist but must hold no metadata),
    /// signs version 1 of every role and writes it.
    pub fn create(
        dir: &Path,
        keys: &RootKeys<'_>,
        expiry: Expiry,
        now: i64,
    ) -> Result<Self, RepoError> {
        let meta = dir.join("metadata");
        if meta.join("1.root.json").exists() {
            return Err(RepoError::Exists(dir.display().to_string()));
        }
        for d in [meta, dir.join("targets")] {
            std::fs::create_dir_all(&d).map_err(io_err(&d))?;
        }
        let mut root = common("root", expires(now, expiry.root)?);
        root.insert("consistent_snapshot".into(), json!(true));
        let mut all_keys = Map::new();
        let mut roles = Map::new();
        let mut role = |name: &str, ks: &[&SigningKey]| {
            for k in ks {
                all_keys.insert(k.keyid().to_string(), k.public_json());
            }
            let ids: Vec<&str> = ks.iter().map(|k| k.keyid()).collect();
            roles.insert(name.into(), json!({"keyids": ids, "threshold": ks.len()}));
        };
        role("root", &keys.root);
        role("targets", &[keys.targets]);
        role("snapshot", &[keys.snapshot]);
        role("timestamp", &[keys.timestamp]);
        root.insert("keys".into(), Value::Object(all_keys));
        root.insert("roles".into(), Value::Object(roles));
        let mut targets = common("targets", expires(now, expiry.targets)?);
        targets.insert("targets".into(), json!({}));
        let mut repo = Repository {
            dir: dir.to_path_buf(),
            expiry,
            now,
            root: Value::Object(root),
            roles: [("targets".to_string(), Value::Object(targets))].into(),
            snapshot: Value::Null,
            timestamp: Value::Null,
            dirty: vec!["targets".to_string()],
        };
        let root_bytes = sign_metadata(&repo.root, &keys.root)?;
        repo.write_meta("1.root.json", &root_bytes)?;
        repo.publish_with(
            &[("targets", &[keys.targets])],
            keys.snapshot,
            keys.timestamp,
            true,
        )?;
        Ok(repo)
    }

    /// Opens the repository in `dir`: the newest root, the targets roles snapshot lists,
    /// snapshot and timestamp. Every file must parse as the role it is.
    pub fn open(dir: &Path, expiry: Expiry, now: i64) -> Result<Self, RepoError> {
        let meta = dir.join("metadata");
        let mut n = 1;
        while meta.join(format!("{}.root.json", n + 1)).exists() {
            n += 1;
        }
        let root = read_signed(&meta.join(format!("{n}.root.json")))?;
        Root::from_signed(&root).map_err(|e| invalid(&meta, format!("root: {e}")))?;
        let timestamp = read_signed(&meta.join("timestamp.json"))?;
        let ts = Timestamp::from_signed(&timestamp)
            .map_err(|e| invalid(&meta, format!("timestamp: {e}")))?;
        let snapshot = read_signed(&meta.join(format!("{}.snapshot.json", ts.snapshot.version)))?;
        let snap = Snapshot::from_signed(&snapshot)
            .map_err(|e| invalid(&meta, format!("snapshot: {e}")))?;
        let mut roles = BTreeMap::new();
        for (file, m) in &snap.meta {
            let name = file.strip_suffix(".json").unwrap_or(file);
            let path = meta.join(format!(
                "{}.{}.json",
                m.version,
                crate::tuf::store::quote(name)
            ));
            let signed = read_signed(&path)?;
            Targets::from_signed(&signed).map_err(|e| invalid(&path, e.to_string()))?;
            roles.insert(name.to_string(), signed);
        }
        if !roles.contains_key("targets") {
            return Err(invalid(&meta, "snapshot does not list targets.json"));
        }
        Ok(Repository {
            dir: dir.to_path_buf(),
            expiry,
            now,
            root,
            roles,
            snapshot,
            timestamp,
            dirty: Vec::new(),
        })
    }

    /// The current root's `signed` object.
    pub fn root(&self) -> &Value {
        &self.root
    }

    /// The targets of `role` (path → `{length, hashes, custom}`).
    pub fn targets(&self, role: &str) -> Option<&Map<String, Value>> {
        self.roles.get(role)?["targets"].as_object()
    }

    /// Names of the targets roles, top-level first.
    pub fn role_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .roles
            .keys()
            .filter(|n| *n != "targets")
            .cloned()
            .collect();
        names.insert(0, "targets".to_string());
        names
    }

    /// The key ids `role` is signed by in the current root.
    pub fn root_role_keyids(&self, role: &str) -> Vec<String> {
        self.root["roles"][role]["keyids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|k| k.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The delegated patterns of `role` (`None` for the top-level targets role).
    fn delegated_paths(&self, role: &str) -> Result<Option<Vec<String>>, RepoError> {
        if role == "targets" {
            return Ok(None);
        }
        for delegator in self.roles.values() {
            for d in delegator["delegations"]["roles"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if d["name"] == role {
                    let paths = d["paths"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|p| p.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    return Ok(Some(paths));
                }
            }
        }
        Err(RepoError::NoRole(role.to_string()))
    }

    /// Adds (or replaces) target `path` in `role` with the content of `source`, copied to
    /// `targets/DIR/SHA256.NAME`, and `custom` as its custom object. A delegated role may
    /// only hold paths its delegation covers.
    pub fn add_target(
        &mut self,
        role: &str,
        path: &str,
        source: &Path,
        custom: Option<Value>,
    ) -> Result<Value, RepoError> {
        check_target_path(path)?;
        if !self.roles.contains_key(role) {
            return Err(RepoError::NoRole(role.to_string()));
        }
        if let Some(paths) = self.delegated_paths(role)? {
            if !paths.iter().any(|p| path_matches(path, p)) {
                return Err(RepoError::OutsidePaths {
                    role: role.to_string(),
                    path: path.to_string(),
                    paths,
                });
            }
        }
        let (length, sha256, sha512) = hash_file(source)?;
        let (dir, name) = match path.rsplit_once('/') {
            Some((d, n)) => (self.dir.join("targets").join(d), n),
            None => (self.dir.join("targets"), path),
        };
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let dest = dir.join(format!("{sha256}.{name}"));
        if !dest.exists() {
            copy_durably(source, &dest)?;
        }
        let mut entry = json!({"length": length, "hashes": {"sha256": sha256, "sha512": sha512}});
        if let Some(c) = custom {
            entry["custom"] = c;
        }
        self.roles
            .get_mut(role)
            .ok_or_else(|| RepoError::NoRole(role.to_string()))?["targets"][path] = entry.clone();
        self.mark(role);
        Ok(entry)
    }

    /// Removes target `path` from `role` (its file stays, for clients mid-download).
    pub fn remove_target(&mut self, role: &str, path: &str) -> Result<bool, RepoError> {
        let r = self
            .roles
            .get_mut(role)
            .ok_or_else(|| RepoError::NoRole(role.to_string()))?;
        let removed = r["targets"]
            .as_object_mut()
            .and_then(|t| t.remove(path))
            .is_some();
        if removed {
            self.mark(role);
        }
        Ok(removed)
    }

    /// Delegates target paths matching `paths` from the top-level targets role to a new
    /// role `name`, signed by `keys` (threshold `threshold`).
    pub fn delegate(
        &mut self,
        name: &str,
        paths: &[&str],
        keys: &[&SigningKey],
        threshold: u64,
    ) -> Result<(), RepoError> {
        if crate::tuf::metadata::TOP_LEVEL_ROLES.contains(&name) || self.roles.contains_key(name) {
            return Err(invalid(&self.dir, format!("role name {name:?} is taken")));
        }
        let targets = self
            .roles
            .get_mut("targets")
            .ok_or_else(|| RepoError::NoRole("targets".into()))?;
        if targets.get("delegations").is_none() {
            targets["delegations"] = json!({"keys": {}, "roles": []});
        }
        for k in keys {
            targets["delegations"]["keys"][k.keyid()] = k.public_json();
        }
        let ids: Vec<&str> = keys.iter().map(|k| k.keyid()).collect();
        if let Some(list) = targets["delegations"]["roles"].as_array_mut() {
            list.push(json!({"name": name, "keyids": ids, "threshold": threshold,
                             "terminating": true, "paths": paths}));
        }
        let mut role = common("targets", expires(self.now, self.expiry.targets)?);
        role.insert("targets".into(), json!({}));
        self.roles.insert(name.to_string(), Value::Object(role));
        self.mark("targets");
        self.mark(name);
        Ok(())
    }

    fn mark(&mut self, role: &str) {
        if !self.dirty.iter().any(|r| r == role) {
            self.dirty.push(role.to_string());
        }
    }

    /// Signs and writes every edited targets role (new version, fresh expiry) with its
    /// keys from `signers` (role name → keys), then a new snapshot and timestamp.
    pub fn publish(
        &mut self,
        signers: &[(&str, &[&SigningKey])],
        snapshot_key: &SigningKey,
        timestamp_key: &SigningKey,
    ) -> Result<(), RepoError> {
        self.publish_with(signers, snapshot_key, timestamp_key, false)
    }

    fn publish_with(
        &mut self,
        signers: &[(&str, &[&SigningKey])],
        snapshot_key: &SigningKey,
        timestamp_key: &SigningKey,
        first: bool,
    ) -> Result<(), RepoError> {
        self.check_keys("snapshot", &[snapshot_key])?;
        self.check_keys("timestamp", &[timestamp_key])?;
        let dirty = std::mem::take(&mut self.dirty);
        for role in &dirty {
            let keys = signers
                .iter()
                .find(|(r, _)| r == role)
                .map(|(_, k)| *k)
                .ok_or_else(|| invalid(&self.dir, format!("no key given for role {role}")))?;
            if role == "targets" {
                self.check_keys("targets", keys)?;
            }
            let expiry = expires(self.now, self.expiry.targets)?;
            let signed = self
                .roles
                .get_mut(role)
                .ok_or_else(|| RepoError::NoRole(role.clone()))?;
            if !first || role != "targets" {
                let v = version_of(signed);
                signed["version"] = json!(if first { 1 } else { v + 1 });
            }
            signed["expires"] = json!(expiry);
            let bytes = sign_metadata(signed, keys)?;
            let version = version_of(signed);
            self.write_meta(
                &format!("{version}.{}.json", crate::tuf::store::quote(role)),
                &bytes,
            )?;
        }
        let mut meta = Map::new();
        for (name, signed) in &self.roles {
            meta.insert(
                format!("{name}.json"),
                json!({"version": version_of(signed)}),
            );
        }
        let snapshot_version = if first {
            1
        } else {
            version_of(&self.snapshot) + 1
        };
        let mut snapshot = common("snapshot", expires(self.now, self.expiry.snapshot)?);
        snapshot.insert("version".into(), json!(snapshot_version));
        snapshot.insert("meta".into(), Value::Object(meta));
        self.snapshot = Value::Object(snapshot);
        let snap_bytes = sign_metadata(&self.snapshot, &[snapshot_key])?;
        self.write_meta(&format!("{snapshot_version}.snapshot.json"), &snap_bytes)?;
        let digest = hex::encode(crate::tuf::hash::sha256(&snap_bytes));
        let timestamp_version = if first {
            1
        } else {
            version_of(&self.timestamp) + 1
        };
        let mut timestamp = common("timestamp", expires(self.now, self.expiry.timestamp)?);
        timestamp.insert("version".into(), json!(timestamp_version));
        timestamp.insert(
            "meta".into(),
            json!({"snapshot.json": {"version": snapshot_version, "length": snap_bytes.len(),
                                     "hashes": {"sha256": digest}}}),
        );
        self.timestamp = Value::Object(timestamp);
        let ts_bytes = sign_metadata(&self.timestamp, &[timestamp_key])?;
        self.write_meta("timestamp.json", &ts_bytes)
    }

    /// Checks that `keys` are keys of top-level `role` in the current root.
    fn check_keys(&self, role: &str, keys: &[&SigningKey]) -> Result<(), RepoError> {
        let ids = self.root_role_keyids(role);
        for k in keys {
            if !ids.iter().any(|i| i == k.keyid()) {
                return Err(RepoError::WrongKey {
                    role: role.to_string(),
                    keyid: k.keyid().to_string(),
                });
            }
        }
        Ok(())
    }

    /// Writes the next root version with new keys for the roles in `replace` (role name →
    /// its new keys; threshold: all of them), signed by `old_root` (the current root
    /// keys) and by the new root keys. Revoking a key is replacing it this way. The
    /// targets role is re-signed by its new key when that changes, and snapshot and
    /// timestamp are re-published with `snapshot_key` / `timestamp_key` (the new ones if
    /// they were replaced).
    #[allow(clippy::too_many_arguments)]
    pub fn rotate(
        &mut self,
        old_root: &[&SigningKey],
        replace: &[(&str, Vec<&SigningKey>)],
        targets_key: &SigningKey,
        snapshot_key: &SigningKey,
        timestamp_key: &SigningKey,
    ) -> Result<u64, RepoError> {
        self.check_keys("root", old_root)?;
        let mut root = self.root.clone();
        let mut new_root_keys: Vec<&SigningKey> = Vec::new();
        for (role, keys) in replace {
            if !crate::tuf::metadata::TOP_LEVEL_ROLES.contains(role) {
                return Err(RepoError::NoRole((*role).to_string()));
            }
            for k in keys {
                root["keys"][k.keyid()] = k.public_json();
            }
            let ids: Vec<&str> = keys.iter().map(|k| k.keyid()).collect();
            root["roles"][*role] = json!({"keyids": ids, "threshold": keys.len()});
            if *role == "root" {
                new_root_keys = keys.clone();
            }
        }
        // Drop keys no role uses any more.
        let used: Vec<String> = root["roles"]
            .as_object()
            .into_iter()
            .flat_map(|r| r.values())
            .flat_map(|r| r["keyids"].as_array().cloned().unwrap_or_default())
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect();
        if let Some(keys) = root["keys"].as_object_mut() {
            keys.retain(|id, _| used.contains(id));
        }
        let version = version_of(&root) + 1;
        root["version"] = json!(version);
        root["expires"] = json!(expires(self.now, self.expiry.root)?);
        let mut signers: Vec<&SigningKey> = old_root.to_vec();
        for k in new_root_keys {
            if !signers.iter().any(|s| s.keyid() == k.keyid()) {
                signers.push(k);
            }
        }
        let bytes = sign_metadata(&root, &signers)?;
        self.write_meta(&format!("{version}.root.json"), &bytes)?;
        self.root = root;
        self.mark("targets");
        self.publish(&[("targets", &[targets_key])], snapshot_key, timestamp_key)?;
        Ok(version)
    }

    fn write_meta(&self, name: &str, bytes: &[u8]) -> Result<(), RepoError> {
        let path = self.dir.join("metadata").join(name);
        fsio::write_atomic(&path, bytes).map_err(io_err(&path))
    }
}

/// Reads a metadata file written by this repository and returns its `signed` object.
fn read_signed(path: &Path) -> Result<Value, RepoError> {
    let bytes = fsio::read_bounded(path, 64 << 20)
        .map_err(io_err(path))?
        .ok_or_else(|| invalid(path, "missing"))?;
    let env = Envelope::parse(bytes).map_err(|e| invalid(path, e.to_string()))?;
    Ok(env.signed)
}

/// Length, SHA-256 and SHA-512 (hex) of a file, streamed.
fn hash_file(path: &Path) -> Result<(u64, String, String), RepoError> {
    use aws_lc_rs::digest;
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut a = digest::Context::new(&digest::SHA256);
    let mut b = digest::Context::new(&digest::SHA512);
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        a.update(&buf[..n]);
        b.update(&buf[..n]);
        len += n as u64;
    }
    Ok((len, hex::encode(a.finish()), hex::encode(b.finish())))
}

/// Copies `source` to `dest` through edgeward-fs's atomic file (fsync, rename, fsync of
/// the directory): a served target is never seen half-written.
fn copy_durably(source: &Path, dest: &Path) -> Result<(), RepoError> {
    let mut from = File::open(source).map_err(io_err(source))?;
    let mut to =
        edgeward_fs::AtomicFile::create(dest, edgeward_fs::Access::Public).map_err(io_err(dest))?;
    io::copy(&mut from, &mut to).map_err(io_err(dest))?;
    to.commit().map_err(io_err(dest))
}
