//! The TUF client workflow (specification §5): refresh the top-level metadata, search the
//! delegation graph for a target, and fetch the target verified against its metadata.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use edgeward_fs::{Access, AtomicFile};

use super::error::TufError;
use super::hash::{self, HashCheck};
use super::metadata::{DelegatedRoles, Root, TargetFile};
use super::store::{quote, MetadataStore};
use super::transport::Transport;
use super::trusted::{Delegator, TimestampUpdate, TrustedSet};
use crate::fsio;

/// Application-chosen bounds of the workflow.
#[derive(Debug, Clone, Copy)]
pub struct ClientConfig {
    /// Most root versions fetched in one cycle (Y in §5.3.3).
    pub max_root_rotations: u64,
    /// Most delegated roles visited in one target search.
    pub max_delegations: usize,
    /// Cap on a root file (W).
    pub root_max: u64,
    /// Cap on the timestamp file (X).
    pub timestamp_max: u64,
    /// Cap on snapshot when the timestamp gives no length (Y).
    pub snapshot_max: u64,
    /// Cap on targets metadata when the snapshot gives no length (Z).
    pub targets_max: u64,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            max_root_rotations: 256,
            max_delegations: 32,
            root_max: 512 * 1024,
            timestamp_max: 16 * 1024,
            snapshot_max: 2 * 1024 * 1024,
            targets_max: 16 * 1024 * 1024,
        }
    }
}

/// A target found by the delegation search.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundTarget {
    /// Its target path.
    pub path: String,
    /// Its signed length, hashes and custom fields.
    pub file: TargetFile,
    /// The targets role that signed for it.
    pub role: String,
}

/// A TUF client bound to one metadata directory and one repository.
pub struct Updater<'t> {
    store: MetadataStore,
    metadata_url: String,
    transport: &'t dyn Transport,
    config: ClientConfig,
    trusted: TrustedSet,
    refreshed: bool,
}

fn with_slash(url: &str) -> String {
    if url.ends_with('/') {
        url.to_string()
    } else {
        format!("{url}/")
    }
}

impl<'t> Updater<'t> {
    /// Loads the trusted root from `store` and fixes the update's start time at `now`
    /// (seconds since the epoch). Nothing is fetched yet.
    pub fn new(
        store: MetadataStore,
        metadata_url: &str,
        transport: &'t dyn Transport,
        config: ClientConfig,
        now: i64,
    ) -> Result<Self, TufError> {
        let root = store.read("root", config.root_max)?.ok_or_else(|| {
            TufError::TrustedRoot(format!("no root.json in {}", store.dir().display()))
        })?;
        let trusted = TrustedSet::new(root, now)?;
        Ok(Updater {
            store,
            metadata_url: with_slash(metadata_url),
            transport,
            config,
            trusted,
            refreshed: false,
        })
    }

    /// The trusted metadata.
    pub fn trusted(&self) -> &TrustedSet {
        &self.trusted
    }

    fn metadata_url(&self, role: &str, version: Option<u64>) -> String {
        match version {
            Some(v) => format!("{}{v}.{}.json", self.metadata_url, quote(role)),
            None => format!("{}{}.json", self.metadata_url, quote(role)),
        }
    }

    /// URL of metadata whose version a referrer gave: versioned with consistent snapshots.
    fn snapshot_url(&self, role: &str, version: u64) -> String {
        let consistent = self.trusted.root().meta.consistent_snapshot;
        self.metadata_url(role, consistent.then_some(version))
    }

    /// §5.3–5.6: updates root, timestamp, snapshot and top-level targets. On error the
    /// metadata trusted before the failing step stays trusted (and stored).
    pub fn refresh(&mut self) -> Result<(), TufError> {
        self.refreshed = true;
        self.update_root()?;
        self.update_timestamp()?;
        self.update_snapshot()?;
        let delegator = self.trusted.root_delegator();
        self.load_targets("targets", &delegator)
    }

    fn update_root(&mut self) -> Result<(), TufError> {
        let original = self.trusted.root().meta.clone();
        let start = original.common.version;
        for version in start + 1..=start.saturating_add(self.config.max_root_rotations) {
            let url = self.metadata_url("root", Some(version));
            let bytes = match self.transport.fetch_bytes(&url, self.config.root_max) {
                Ok(b) => b,
                Err(e) if e.is_not_found() => break,
                Err(e) => return Err(e.into()),
            };
            self.trusted.update_root(bytes)?;
            self.store
                .write("root", &self.trusted.root().envelope.raw)?;
        }
        self.trusted.check_root_fresh()?;
        // §5.3.11: after a timestamp or snapshot key rotation, forget those files so a
        // fast-forwarded version cannot block the recovered repository.
        let now = &self.trusted.root().meta;
        if keys_changed(&original, now, "timestamp") || keys_changed(&original, now, "snapshot") {
            tracing::info!("timestamp or snapshot keys rotated: forgetting both");
            self.store.remove("timestamp")?;
            self.store.remove("snapshot")?;
        }
        Ok(())
    }

    fn update_timestamp(&mut self) -> Result<(), TufError> {
        if let Some(local) = self.store.read("timestamp", self.config.timestamp_max)? {
            if let Err(e) = self.trusted.load_local_timestamp(local) {
                tracing::debug!(error = %e, "stored timestamp not usable");
            }
        }
        let url = self.metadata_url("timestamp", None);
        let bytes = self
            .transport
            .fetch_bytes(&url, self.config.timestamp_max)?;
        if self.trusted.update_timestamp(bytes)? == TimestampUpdate::Updated {
            let raw = &self
                .trusted
                .timestamp()
                .map(|t| t.envelope.raw.clone())
                .unwrap_or_default();
            self.store.write("timestamp", raw)?;
        }
        Ok(())
    }

    fn update_snapshot(&mut self) -> Result<(), TufError> {
        let meta = self.trusted.snapshot_meta()?;
        if let Some(local) = self.store.read("snapshot", self.config.snapshot_max)? {
            match self.trusted.load_local_snapshot(local) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => tracing::debug!(error = %e, "stored snapshot not usable"),
            }
        }
        let url = self.snapshot_url("snapshot", meta.version);
        let bytes = self
            .transport
            .fetch_bytes(&url, meta.length.unwrap_or(self.config.snapshot_max))?;
        self.trusted.update_snapshot(bytes)?;
        let raw = self
            .trusted
            .snapshot()
            .map(|s| s.envelope.raw.clone())
            .unwrap_or_default();
        self.store.write("snapshot", &raw)
    }

    /// Loads `role` (from the store if still current, else from the repository), vouched
    /// for by `delegator`. A role already loaded is re-checked against this delegator.
    fn load_targets(&mut self, role: &str, delegator: &Delegator) -> Result<(), TufError> {
        if self.trusted.targets(role).is_some() {
            return self.trusted.check_delegator(role, delegator);
        }
        let meta = self.trusted.targets_meta(role)?;
        let limit = meta.length.unwrap_or(self.config.targets_max);
        if let Some(local) = self.store.read(role, limit)? {
            match self.trusted.update_targets(role, delegator, local) {
                Ok(()) => return Ok(()),
                Err(e) => tracing::debug!(role, error = %e, "stored metadata not current"),
            }
        }
        let url = self.snapshot_url(role, meta.version);
        let bytes = self.transport.fetch_bytes(&url, limit)?;
        self.trusted.update_targets(role, delegator, bytes)?;
        let raw = self
            .trusted
            .targets(role)
            .map(|t| t.envelope.raw.clone())
            .unwrap_or_default();
        self.store.write(role, &raw)
    }

    /// §5.6.7: pre-order depth-first search of the delegation graph for `path`, from the
    /// top-level targets role. Roles are visited in order of appearance; a role is only
    /// entered when its delegation covers `path`; a terminating delegation ends the search
    /// below it; the search stops at the first role that lists the target.
    pub fn find_target(&mut self, path: &str) -> Result<FoundTarget, TufError> {
        if !self.refreshed {
            self.refresh()?;
        }
        let mut stack = vec![("targets".to_string(), self.trusted.root_delegator())];
        let mut visited = BTreeSet::new();
        while let Some((role, delegator)) = stack.pop() {
            if visited.len() > self.config.max_delegations {
                tracing::info!(
                    path,
                    "delegation search gave up after {} roles",
                    visited.len()
                );
                break;
            }
            if visited.contains(&role) {
                continue;
            }
            self.load_targets(&role, &delegator)?;
            let Some(targets) = self.trusted.targets(&role) else {
                break;
            };
            if let Some(file) = targets.meta.targets.get(path) {
                return Ok(FoundTarget {
                    path: path.to_string(),
                    file: file.clone(),
                    role,
                });
            }
            visited.insert(role.clone());
            let Some(delegations) = &targets.meta.delegations else {
                continue;
            };
            let mut children = Vec::new();
            match &delegations.roles {
                DelegatedRoles::List(roles) => {
                    for child in roles.iter().filter(|d| d.scope.contains(path)) {
                        children.push((
                            child.name.clone(),
                            Delegator {
                                name: role.clone(),
                                role: child.role.clone(),
                                keys: delegations.keys.clone(),
                            },
                        ));
                        if child.terminating {
                            stack.clear();
                            break;
                        }
                    }
                }
                DelegatedRoles::Succinct(bins) => {
                    stack.clear();
                    children.push((
                        bins.bin_for(path),
                        Delegator {
                            name: role.clone(),
                            role: bins.role.clone(),
                            keys: delegations.keys.clone(),
                        },
                    ));
                }
            }
            stack.extend(children.into_iter().rev());
        }
        Err(TufError::TargetNotFound(path.to_string()))
    }

    /// The URL of `target` under `base_url`: with consistent snapshots, the file name is
    /// prefixed with one of its hashes (SHA-256 when listed).
    pub fn target_url(&self, base_url: &str, target: &FoundTarget) -> String {
        let base = with_slash(base_url);
        if !self.trusted.root().meta.consistent_snapshot {
            return format!("{base}{}", target.path);
        }
        let digest = target
            .file
            .hashes
            .get("sha256")
            .or_else(|| target.file.hashes.values().next())
            .cloned()
            .unwrap_or_default();
        match target.path.rsplit_once('/') {
            Some((dir, name)) => format!("{base}{dir}/{digest}.{name}"),
            None => format!("{base}{digest}.{}", target.path),
        }
    }

    /// Fetches `target` into `dir` (file name: the percent-encoded target path) unless a
    /// file matching its signed length and hashes is already there. The bytes are checked
    /// while they arrive into a temporary file, which is renamed into place only after the
    /// length and every hash matched; a mismatch leaves the previous file untouched.
    pub fn download_target(
        &self,
        target: &FoundTarget,
        base_url: &str,
        dir: &Path,
    ) -> Result<PathBuf, TufError> {
        let dest = dir.join(quote(&target.path));
        let what = format!("target {}", target.path);
        if let Some(existing) = fsio::read_bounded(&dest, target.file.length).ok().flatten() {
            if hash::check(
                &existing,
                Some(target.file.length),
                Some(&target.file.hashes),
            )
            .is_ok()
            {
                return Ok(dest);
            }
        }
        let mut check = HashCheck::new(&target.file.hashes).map_err(|source| TufError::Hash {
            what: what.clone(),
            source,
        })?;
        let storage = |source| TufError::Storage {
            path: dest.display().to_string(),
            source,
        };
        // Dropped on any failure, the temporary file is removed and `dest` left untouched.
        let mut file = AtomicFile::create(&dest, Access::Public).map_err(storage)?;
        let url = self.target_url(base_url, target);
        let fetched = self
            .transport
            .fetch(&url, 0, target.file.length, &mut |chunk| {
                check.update(chunk);
                file.write_all(chunk)
            });
        let verified = fetched.map_err(TufError::from).and_then(|_| {
            check
                .finish(Some(target.file.length))
                .map_err(|source| TufError::Hash { what, source })
        });
        verified?;
        file.commit().map_err(storage)?;
        Ok(dest)
    }
}

/// Whether `role`'s keys or threshold differ between two roots.
fn keys_changed(old: &Root, new: &Root, role: &str) -> bool {
    let (Some(a), Some(b)) = (old.roles.get(role), new.roles.get(role)) else {
        return true;
    };
    if a.threshold != b.threshold {
        return true;
    }
    let set = |root: &Root, r: &super::metadata::Role| -> BTreeSet<Vec<u8>> {
        r.keyids
            .iter()
            .map(|k| {
                root.keys
                    .get(k)
                    .and_then(|key| key.identity())
                    .map(<[u8]>::to_vec)
                    .unwrap_or_else(|| k.as_bytes().to_vec())
            })
            .collect()
    };
    set(old, a) != set(new, b)
}
