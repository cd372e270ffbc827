//! Repeated refusals go into the audit log as one entry with a count, so a flood of refused
//! enrollments or device calls cannot bury real entries under millions of rows. The first
//! refusal of a kind (same actor, action, device and detail) is written at once; the ones
//! that follow within the aggregation window are counted, and written as one entry (with
//! `count`) when the window closes.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// What makes two refusals the same: actor, action, device, detail.
type Key = (String, &'static str, Option<String>, String);

/// Most kinds of refusal counted at once; past it, further kinds are counted under one
/// overflow entry, so the map's size stays bounded whatever the refusals say.
const MAX_KINDS: usize = 10_000;

/// The detail of the overflow entry.
pub const OVERFLOW: &str = "refusals of kinds past the aggregation table's size";

/// Refusals counted since their kind's first entry was written.
struct Counted {
    since: Instant,
    repeats: u64,
}

/// Counts repeated refusals.
pub struct Aggregator {
    window: Duration,
    open: Mutex<HashMap<Key, Counted>>,
}

/// An entry to write: actor, action, device, detail, count.
pub type Entry = (String, &'static str, Option<String>, String, u64);

impl Aggregator {
    /// Aggregates over `window`.
    pub fn new(window: Duration) -> Self {
        Aggregator {
            window,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Records one refusal; returns the entry to write now, if any (the first of its kind
    /// in a window).
    pub fn refusal(
        &self,
        actor: &str,
        action: &'static str,
        device: Option<&str>,
        detail: &str,
    ) -> Option<Entry> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let mut key: Key = (
            actor.to_string(),
            action,
            device.map(str::to_string),
            detail.to_string(),
        );
        if !open.contains_key(&key) && open.len() >= MAX_KINDS {
            key = (actor.to_string(), action, None, OVERFLOW.to_string());
        }
        match open.get_mut(&key) {
            Some(counted) => {
                counted.repeats += 1;
                None
            }
            None => {
                open.insert(
                    key.clone(),
                    Counted {
                        since: Instant::now(),
                        repeats: 0,
                    },
                );
                let (actor, action, device, detail) = key;
                Some((actor, action, device, detail, 1))
            }
        }
    }

    /// Closes the windows that have ended (all of them if `all`): the repeats they counted,
    /// as entries to write.
    pub fn flush(&self, all: bool) -> Vec<Entry> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        open.retain(|key, counted| {
            if !all && counted.since.elapsed() < self.window {
                return true;
            }
            if counted.repeats > 0 {
                let (actor, action, device, detail) = key.clone();
                out.push((actor, action, device, detail, counted.repeats));
            }
            false
        });
        out
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_is_written_the_repeats_counted_and_flushed_as_one() {
        let a = Aggregator::new(Duration::from_secs(3600));
        let first = a.refusal(
            "enrollment",
            "enroll.refused",
            None,
            "unknown enrollment token",
        );
        assert_eq!(first.map(|e| e.4), Some(1));
        for _ in 0..999 {
            assert!(a
                .refusal(
                    "enrollment",
                    "enroll.refused",
                    None,
                    "unknown enrollment token"
                )
                .is_none());
        }
        assert!(a
            .refusal("enrollment", "enroll.refused", None, "expired")
            .is_some());
        assert!(a.flush(false).is_empty(), "the window is still open");
        let flushed = a.flush(true);
        assert_eq!(flushed.len(), 1, "only the kind with repeats: {flushed:?}");
        assert_eq!(flushed[0].3, "unknown enrollment token");
        assert_eq!(flushed[0].4, 999);
    }

    #[test]
    fn kinds_past_the_table_size_are_counted_under_one_entry() {
        let a = Aggregator::new(Duration::from_secs(3600));
        for i in 0..MAX_KINDS {
            a.refusal("x", "auth.refused", None, &i.to_string());
        }
        let first = a
            .refusal("x", "auth.refused", None, "new kind")
            .expect("first overflow");
        assert_eq!(first.3, OVERFLOW);
        assert!(a.refusal("x", "auth.refused", None, "another").is_none());
        assert_eq!(a.open.lock().expect("lock").len(), MAX_KINDS + 1);
    }
}
