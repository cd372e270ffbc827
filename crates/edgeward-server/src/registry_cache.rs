//! A cache of device records for the device API's hot path. It is used only where this
//! process is the registry's only writer (the embedded default: SQLite without Redis), and
//! every status change made here invalidates the entry, so quarantine and revocation still
//! take effect on the next request. With PostgreSQL or Redis (several replicas) every
//! request reads the registry.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use crate::db::{Db, DbError, Device};

/// Devices by id, when caching is safe.
pub struct RegistryCache {
    enabled: bool,
    devices: RwLock<HashMap<String, Arc<Device>>>,
}

/// Most entries kept.
const MAX_ENTRIES: usize = 100_000;

impl RegistryCache {
    /// A cache that is active only if `enabled`.
    pub fn new(enabled: bool) -> Self {
        RegistryCache {
            enabled,
            devices: RwLock::new(HashMap::new()),
        }
    }

    /// The device `id`, from the cache or the registry (shared: a hit copies nothing).
    pub async fn device(&self, db: &Db, id: &str) -> Result<Option<Arc<Device>>, DbError> {
        if self.enabled {
            if let Some(d) = self.devices.read().ok().and_then(|m| m.get(id).cloned()) {
                return Ok(Some(d));
            }
        }
        let d = db.device(id).await?.map(Arc::new);
        if let (true, Some(d)) = (self.enabled, &d) {
            if let Ok(mut m) = self.devices.write() {
                if m.len() >= MAX_ENTRIES {
                    m.clear();
                }
                m.insert(id.to_string(), d.clone());
            }
        }
        Ok(d)
    }

    /// Forgets `id` (call after changing its record).
    pub fn invalidate(&self, id: &str) {
        if let Ok(mut m) = self.devices.write() {
            m.remove(id);
        }
    }
}
