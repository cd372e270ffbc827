//! A cache of device records for the device API's hot path. It is used only where this
//! process is the registry's only writer (the embedded default: SQLite without Redis), and
//! every status change made here invalidates the entry, so quarantine and revocation still
//! take effect on the next request. With PostgreSQL or Redis (several replicas) every
//! request reads the registry.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, RwLock,
    },
};

use crate::db::{Db, DbError, Device};

/// Devices by id, when caching is safe.
pub struct RegistryCache {
    enabled: bool,
    devices: RwLock<HashMap<String, Arc<Device>>>,
    /// Counts invalidations: a record read from the registry before one is not cached, so a
    /// lookup racing a status change cannot put the old status back.
    invalidations: AtomicU64,
}

/// Most entries kept.
const MAX_ENTRIES: usize = 100_000;

impl RegistryCache {
    /// A cache that is active only if `enabled`.
    pub fn new(enabled: bool) -> Self {
        RegistryCache {
            enabled,
            devices: RwLock::new(HashMap::new()),
            invalidations: AtomicU64::new(0),
        }
    }

    /// The device `id`, from the cache or the registry (shared: a hit copies nothing).
    pub async fn device(&self, db: &Db, id: &str) -> Result<Option<Arc<Device>>, DbError> {
        if !self.enabled {
            return Ok(db.device(id).await?.map(Arc::new));
        }
        if let Some(d) = self.devices.read().ok().and_then(|m| m.get(id).cloned()) {
            return Ok(Some(d));
        }
        let before = self.invalidations.load(Ordering::Acquire);
        let d = db.device(id).await?.map(Arc::new);
        if let Some(d) = &d {
            self.remember(id, d, before);
        }
        Ok(d)
    }

    /// Caches `device`, read from the registry when `invalidations` was `before`, unless an
    /// invalidation has come since.
    fn remember(&self, id: &str, device: &Arc<Device>, before: u64) {
        let Ok(mut m) = self.devices.write() else {
            return;
        };
        if self.invalidations.load(Ordering::Acquire) != before {
            return;
        }
        if m.len() >= MAX_ENTRIES {
            m.clear();
        }
        m.insert(id.to_string(), device.clone());
    }

    /// Forgets `id` (call after changing its record). Fails closed: even a poisoned lock
    /// gives the entry up.
    pub fn invalidate(&self, id: &str) {
        let mut m = self.devices.write().unwrap_or_else(|e| e.into_inner());
        self.invalidations.fetch_add(1, Ordering::AcqRel);
        m.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Change, DeviceStatus};

    /// A record read before a status change is not cached after it: otherwise a request
    /// racing a quarantine would bring the old status back until the next change.
    #[tokio::test]
    async fn a_record_read_before_an_invalidation_is_not_cached() {
        let dir = tempfile::tempdir().expect("tmp");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("r.db").display());
        let db = Db::connect(&url).await.expect("database");
        db.add_device("cam-1", "bench", 1).await.expect("add");
        let cache = RegistryCache::new(true);

        let before = cache.invalidations.load(Ordering::Acquire);
        let stale = Arc::new(db.device("cam-1").await.expect("read").expect("known"));
        db.transition("cam-1", Change::Revoke, 2)
            .await
            .expect("revoke");
        cache.invalidate("cam-1");
        cache.remember("cam-1", &stale, before);

        let now = cache.device(&db, "cam-1").await.expect("lookup");
        assert_eq!(now.expect("known").status, DeviceStatus::Revoked);
        let again = cache.device(&db, "cam-1").await.expect("cached lookup");
        assert_eq!(again.expect("known").status, DeviceStatus::Revoked);
    }
}
