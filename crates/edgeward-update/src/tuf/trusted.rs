//! The set of metadata the client trusts, and the rules for replacing each piece.
//!
//! This is the heart of the TUF client workflow (specification §5.3–5.6): every update of
//! a role goes through one method here that checks, in the specification's order, the
//! referrer's length and hashes, the signature threshold, the version against the
//! referrer and against the trusted copy (rollback), and expiry against the one fixed
//! update start time. Nothing is admitted before every check has passed.

use std::collections::BTreeMap;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::envelope::Envelope;
use super::error::TufError;
use super::hash;
use super::keys::PublicKey;
use super::metadata::{Common, MetaFile, Role, Root, Snapshot, Targets, Timestamp};

/// Metadata that passed verification, with the exact bytes it came from.
#[derive(Debug, Clone)]
pub struct Verified<T> {
    /// The interpreted payload.
    pub meta: T,
    /// The envelope (raw bytes, canonical form, signatures).
    pub envelope: Envelope,
}

/// Whether a new timestamp replaced the trusted one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampUpdate {
    /// The new timestamp is trusted now (and should be persisted).
    Updated,
    /// The repository's timestamp has the trusted version: nothing changed.
    Unchanged,
}

/// Who vouches for a targets role: the keys and threshold its delegator lists.
#[derive(Debug, Clone)]
pub struct Delegator {
    /// Name of the delegating role (`root` for top-level targets).
    pub name: String,
    /// The delegated role's key ids and threshold.
    pub role: Role,
    /// Keys by key id.
    pub keys: BTreeMap<String, PublicKey>,
}

/// The trusted metadata of one update cycle.
#[derive(Debug)]
pub struct TrustedSet {
    now: i64,
    root: Verified<Root>,
    timestamp: Option<Verified<Timestamp>>,
    snapshot: Option<Verified<Snapshot>>,
    targets: BTreeMap<String, Verified<Targets>>,
}

fn rfc3339(t: i64) -> String {
    OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("@{t}"))
}

fn malformed(role: &str) -> impl FnOnce(super::metadata::MetadataError) -> TufError + '_ {
    move |source| TufError::Malformed {
        role: role.to_string(),
        source,
    }
}

fn check_threshold(
    envelope: &Envelope,
    role_name: &str,
    role: &Role,
    keys: &BTreeMap<String, PublicKey>,
    by: &'static str,
) -> Result<(), TufError> {
    let count = envelope.count_signatures(role, keys);
    if count.is_met() {
        Ok(())
    } else {
        Err(TufError::Threshold {
            role: role_name.to_string(),
            valid: count.valid,
            threshold: count.threshold,
            by,
        })
    }
}

fn check_meta(what: &str, raw: &[u8], meta: &MetaFile) -> Result<(), TufError> {
    hash::check(raw, meta.length, meta.hashes.as_ref()).map_err(|source| TufError::Hash {
        what: format!("{what} metadata"),
        source,
    })
}

impl TrustedSet {
    /// Starts a cycle at `now` (seconds since the epoch; fixed for every expiry check)
    /// from the locally trusted root, which must be signed by a threshold of its own keys.
    /// Its expiry does not matter yet: a newer root may replace it.
    pub fn new(root_bytes: Vec<u8>, now: i64) -> Result<Self, TufError> {
        let envelope = Envelope::parse(root_bytes).map_err(malformed("root"))?;
        let root = Root::from_signed(&envelope.signed).map_err(malformed("root"))?;
        let own = root.roles["root"].clone();
        check_threshold(&envelope, "root", &own, &root.keys, " by its own keys")?;
        Ok(TrustedSet {
            now,
            root: Verified {
                meta: root,
                envelope,
            },
            timestamp: None,
            snapshot: None,
            targets: BTreeMap::new(),
        })
    }

    /// The fixed start time of this cycle.
    pub fn now(&self) -> i64 {
        self.now
    }

    /// The trusted root.
    pub fn root(&self) -> &Verified<Root> {
        &self.root
    }

    /// The trusted timestamp, if any.
    pub fn timestamp(&self) -> Option<&Verified<Timestamp>> {
        self.timestamp.as_ref()
    }

    /// The trusted snapshot, if any.
    pub fn snapshot(&self) -> Option<&Verified<Snapshot>> {
        self.snapshot.as_ref()
    }

    /// A trusted targets role (top-level `targets` or delegated), if loaded.
    pub fn targets(&self, role: &str) -> Option<&Verified<Targets>> {
        self.targets.get(role)
    }

    fn expired(&self, role: &str, common: &Common) -> Result<(), TufError> {
        if common.is_expired(self.now) {
            Err(TufError::Expired {
                role: role.to_string(),
                expires: rfc3339(common.expires),
                now: rfc3339(self.now),
            })
        } else {
            Ok(())
        }
    }

    /// §5.3.4–5.3.7: accepts root version N+1, signed by a threshold of the trusted root's
    /// keys and of its own.
    pub fn update_root(&mut self, bytes: Vec<u8>) -> Result<(), TufError> {
        let envelope = Envelope::parse(bytes).map_err(malformed("root"))?;
        let old = &self.root.meta;
        check_threshold(
            &envelope,
            "root",
            &old.roles["root"],
            &old.keys,
            " by the trusted root's keys",
        )?;
        let new = Root::from_signed(&envelope.signed).map_err(malformed("root"))?;
        let expected = old.common.version + 1;
        if new.common.version != expected {
            return Err(TufError::VersionMismatch {
                role: "root".into(),
                expected,
                got: new.common.version,
                by: "its file name",
            });
        }
        check_threshold(
            &envelope,
            "root",
            &new.roles["root"],
            &new.keys,
            " by its own keys",
        )?;
        self.root = Verified {
            meta: new,
            envelope,
        };
        Ok(())
    }

    /// §5.3.10: the final root must not have expired.
    pub fn check_root_fresh(&self) -> Result<(), TufError> {
        self.expired("root", &self.root.meta.common)
    }

    fn verify_top_level(&self, role: &str, bytes: Vec<u8>) -> Result<Envelope, TufError> {
        let envelope = Envelope::parse(bytes).map_err(malformed(role))?;
        let root = &self.root.meta;
        check_threshold(
            &envelope,
            role,
            &root.roles[role],
            &root.keys,
            " by the root's keys",
        )?;
        Ok(envelope)
    }

    /// Admits the locally stored timestamp as the reference for rollback checks, if it is
    /// signed by the current root's keys (its expiry is irrelevant here).
    pub fn load_local_timestamp(&mut self, bytes: Vec<u8>) -> Result<(), TufError> {
        let envelope = self.verify_top_level("timestamp", bytes)?;
        let meta = Timestamp::from_signed(&envelope.signed).map_err(malformed("timestamp"))?;
        self.timestamp = Some(Verified { meta, envelope });
        Ok(())
    }

    /// §5.4: a new timestamp from the repository.
    pub fn update_timestamp(&mut self, bytes: Vec<u8>) -> Result<TimestampUpdate, TufError> {
        self.check_root_fresh()?;
        let envelope = self.verify_top_level("timestamp", bytes)?;
        let new = Timestamp::from_signed(&envelope.signed).map_err(malformed("timestamp"))?;
        if let Some(old) = &self.timestamp {
            let (old_v, new_v) = (old.meta.common.version, new.common.version);
            if new_v < old_v {
                return Err(TufError::Rollback {
                    what: "timestamp".into(),
                    trusted: old_v,
                    new: new_v,
                });
            }
            if new_v == old_v {
                return Ok(TimestampUpdate::Unchanged);
            }
            if new.snapshot.version < old.meta.snapshot.version {
                return Err(TufError::Rollback {
                    what: "snapshot (in timestamp)".into(),
                    trusted: old.meta.snapshot.version,
                    new: new.snapshot.version,
                });
            }
        }
        self.expired("timestamp", &new.common)?;
        self.timestamp = Some(Verified {
            meta: new,
            envelope,
        });
        Ok(TimestampUpdate::Updated)
    }

    fn final_timestamp(&self) -> Result<&Verified<Timestamp>, TufError> {
        let ts = self
            .timestamp
            .as_ref()
            .ok_or_else(|| TufError::TrustedRoot("no trusted timestamp".into()))?;
        self.expired("timestamp", &ts.meta.common)?;
        Ok(ts)
    }

    /// What the trusted timestamp says snapshot must be (after checking the timestamp is
    /// fresh).
    pub fn snapshot_meta(&self) -> Result<MetaFile, TufError> {
        Ok(self.final_timestamp()?.meta.snapshot.clone())
    }

    /// Admits the locally stored snapshot as the rollback reference if the current root's
    /// keys signed it; returns whether it is also the final snapshot (the version the
    /// timestamp names, not expired), so that it need not be downloaded again.
    pub fn load_local_snapshot(&mut self, bytes: Vec<u8>) -> Result<bool, TufError> {
        let envelope = self.verify_top_level("snapshot", bytes)?;
        let meta = Snapshot::from_signed(&envelope.signed).map_err(malformed("snapshot"))?;
        self.snapshot = Some(Verified { meta, envelope });
        Ok(self.check_snapshot_final().is_ok())
    }

    /// §5.5: a new snapshot from the repository.
    pub fn update_snapshot(&mut self, bytes: Vec<u8>) -> Result<(), TufError> {
        let expected = self.snapshot_meta()?;
        check_meta("snapshot", &bytes, &expected)?;
        let envelope = self.verify_top_level("snapshot", bytes)?;
        let new = Snapshot::from_signed(&envelope.signed).map_err(malformed("snapshot"))?;
        if new.common.version != expected.version {
            return Err(TufError::VersionMismatch {
                role: "snapshot".into(),
                expected: expected.version,
                got: new.common.version,
                by: "timestamp",
            });
        }
        if let Some(old) = &self.snapshot {
            for (name, old_meta) in &old.meta.meta {
                let Some(new_meta) = new.meta.get(name) else {
                    return Err(TufError::RemovedFromSnapshot(name.clone()));
                };
                if new_meta.version < old_meta.version {
                    return Err(TufError::Rollback {
                        what: format!("{name} (in snapshot)"),
                        trusted: old_meta.version,
                        new: new_meta.version,
                    });
                }
            }
        }
        self.expired("snapshot", &new.common)?;
        self.snapshot = Some(Verified {
            meta: new,
            envelope,
        });
        Ok(())
    }

    /// The trusted snapshot is the one the timestamp names and has not expired.
    pub fn check_snapshot_final(&self) -> Result<&Verified<Snapshot>, TufError> {
        let expected = self.snapshot_meta()?;
        let snapshot = self
            .snapshot
            .as_ref()
            .ok_or_else(|| TufError::TrustedRoot("no trusted snapshot".into()))?;
        if snapshot.meta.common.version != expected.version {
            return Err(TufError::VersionMismatch {
                role: "snapshot".into(),
                expected: expected.version,
                got: snapshot.meta.common.version,
                by: "timestamp",
            });
        }
        self.expired("snapshot", &snapshot.meta.common)?;
        Ok(snapshot)
    }

    /// What the final snapshot says `role`'s metadata must be.
    pub fn targets_meta(&self, role: &str) -> Result<MetaFile, TufError> {
        let file = format!("{role}.json");
        self.check_snapshot_final()?
            .meta
            .meta
            .get(&file)
            .cloned()
            .ok_or(TufError::NotInSnapshot(file))
    }

    /// The delegator of the top-level targets role: the root.
    pub fn root_delegator(&self) -> Delegator {
        Delegator {
            name: "root".into(),
            role: self.root.meta.roles["targets"].clone(),
            keys: self.root.meta.keys.clone(),
        }
    }

    /// §5.6 (and the same for delegated roles): targets metadata for `role`, from the
    /// repository or the local store, vouched for by `delegator`.
    pub fn update_targets(
        &mut self,
        role: &str,
        delegator: &Delegator,
        bytes: Vec<u8>,
    ) -> Result<(), TufError> {
        let expected = self.targets_meta(role)?;
        check_meta(role, &bytes, &expected)?;
        let envelope = Envelope::parse(bytes).map_err(malformed(role))?;
        check_threshold(
            &envelope,
            role,
            &delegator.role,
            &delegator.keys,
            " by its delegator's keys",
        )?;
        let new = Targets::from_signed(&envelope.signed).map_err(malformed(role))?;
        if new.common.version != expected.version {
            return Err(TufError::VersionMismatch {
                role: role.to_string(),
                expected: expected.version,
                got: new.common.version,
                by: "snapshot",
            });
        }
        self.expired(role, &new.common)?;
        self.targets.insert(
            role.to_string(),
            Verified {
                meta: new,
                envelope,
            },
        );
        Ok(())
    }

    /// Re-checks an already loaded role against another delegator, so that a role reached
    /// along a second delegation path cannot borrow the first path's authority.
    pub fn check_delegator(&self, role: &str, delegator: &Delegator) -> Result<(), TufError> {
        match self.targets.get(role) {
            Some(v) => check_threshold(
                &v.envelope,
                role,
                &delegator.role,
                &delegator.keys,
                " by its delegator's keys",
            ),
            None => Err(TufError::TrustedRoot(format!("{role} is not loaded"))),
        }
    }
}
