//! Time, injectable so tests can drive token windows and rate limits exactly.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

/// A source of the current time in nanoseconds since the Unix epoch.
pub trait Clock: Send + Sync {
    /// Now, in ns.
    fn now_ns(&self) -> u64;
    /// Now, in whole seconds.
    fn now_secs(&self) -> u64 {
        self.now_ns() / 1_000_000_000
    }
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ns(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that moves only when told (tests).
#[derive(Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock showing `ns`.
    pub fn at(ns: u64) -> Self {
        ManualClock(Arc::new(AtomicU64::new(ns)))
    }
    /// Moves the clock forward by `ns`.
    pub fn advance(&self, ns: u64) {
        self.0.fetch_add(ns, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}
