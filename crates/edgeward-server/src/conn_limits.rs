//! What keeps connections from exhausting the server: a cap on the connections open at once
//! on a listener, overall and per source address (refused connections are closed at once,
//! before the TLS handshake), and each connection's activity, which the accept loop reads to
//! close connections idle longer than the idle timeout.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Instant,
};

/// Open connections of one listener, overall and by source address.
pub struct Caps {
    max: usize,
    max_per_address: usize,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The listener holds its maximum.
    Listener,
    /// The source address holds its maximum.
    Address,
}

impl Full {
    /// As a metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Full::Listener => "listener_full",
            Full::Address => "address_full",
        }
    }
}

/// An admitted connection; dropping it frees its place.
pub struct Slot {
    caps: Arc<Caps>,
    ip: IpAddr,
}

impl Caps {
    /// At most `max` connections, `max_per_address` of them from one address.
    pub fn new(max: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(Caps {
            max,
            max_per_address,
            open: Mutex::new(Open::default()),
        })
    }

    /// Admits a connection from `ip`, or says which cap it hit.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Full> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.total >= self.max {
            return Err(Full::Listener);
        }
        let n = open.by_address.entry(ip).or_insert(0);
        if *n >= self.max_per_address {
            return Err(Full::Address);
        }
        *n += 1;
        open.total += 1;
        Ok(Slot {
            caps: self.clone(),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().map(|o| o.total).unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.caps.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.by_address.remove(&self.ip);
            }
        }
    }
}

/// One connection's activity: requests in progress and when the last one began or ended.
pub struct Activity {
    start: Instant,
    in_progress: AtomicUsize,
    last_ms: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            start: Instant::now(),
            in_progress: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
        }
    }
}

impl Activity {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A request has begun.
    pub fn begin(&self) {
        self.in_progress.fetch_add(1, Ordering::AcqRel);
        self.last_ms.store(self.now_ms(), Ordering::Release);
    }

    /// A request has been answered.
    pub fn end(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Release);
        let _ = self
            .in_progress
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// How long the connection has had no request in progress (zero while one is).
    pub fn idle_ms(&self) -> u64 {
        if self.in_progress.load(Ordering::Acquire) > 0 {
            return 0;
        }
        self.now_ms()
            .saturating_sub(self.last_ms.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_per_address_and_overall_and_free_on_drop() {
        let caps = Caps::new(3, 2);
        let (a, b): (IpAddr, IpAddr) = (
            "10.0.0.1".parse().expect("ip"),
            "10.0.0.2".parse().expect("ip"),
        );
        let a1 = caps.admit(a).expect("first");
        let _a2 = caps.admit(a).expect("second");
        assert_eq!(caps.admit(a).err(), Some(Full::Address));
        let _b1 = caps.admit(b).expect("other address");
        assert_eq!(caps.admit(b).err(), Some(Full::Listener));
        drop(a1);
        assert_eq!(caps.open(), 2);
        let _a3 = caps.admit(a).expect("a place was freed");
    }
}
