//! Open device connections by device id, so quarantine and revocation can close them at
//! once instead of waiting for the client to reconnect.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
};

use tokio::sync::watch;

/// A connection's id and the sender that tells it to close.
type Handle = (u64, watch::Sender<bool>);

/// The registry of open device connections.
#[derive(Default)]
pub struct Connections {
    next: AtomicU64,
    open: Mutex<HashMap<String, Vec<Handle>>>,
}

/// A registered connection; dropping it unregisters it.
pub struct Registration<'a> {
    registry: &'a Connections,
    device: String,
    id: u64,
    /// Becomes `true` when the connection must close.
    pub closed: watch::Receiver<bool>,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if let Ok(mut open) = self.registry.open.lock() {
            if let Some(list) = open.get_mut(&self.device) {
                list.retain(|(id, _)| *id != self.id);
                if list.is_empty() {
                    open.remove(&self.device);
                }
            }
        }
    }
}

impl Connections {
    /// Registers a connection of `device`.
    pub fn register(&self, device: &str) -> Registration<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(false);
        if let Ok(mut open) = self.open.lock() {
            open.entry(device.to_string()).or_default().push((id, tx));
        }
        Registration {
            registry: self,
            device: device.to_string(),
            id,
            closed: rx,
        }
    }

    /// Closes every open connection of `device`; returns how many there were.
    pub fn close_all(&self, device: &str) -> usize {
        let list = self
            .open
            .lock()
            .ok()
            .and_then(|mut open| open.remove(device))
            .unwrap_or_default();
        for (_, tx) in &list {
            let _ = tx.send(true);
        }
        list.len()
    }

    /// How many connections are open.
    pub fn count(&self) -> usize {
        self.open
            .lock()
            .map(|o| o.values().map(Vec::len).sum())
            .unwrap_or(0)
    }
}
