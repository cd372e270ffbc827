//! The Generic Cell Rate Algorithm: one timestamp of state per key (the theoretical arrival
//! time, TAT) gives an exact burst and an exact sustained rate. The server keeps the TAT in
//! memory, or in Redis (with the same arithmetic in a Lua script) so that limits hold across
//! replicas. Time is passed in, so tests drive it with a controllable clock.

use std::time::Duration;

/// A rate limit: `burst` requests at once, then one every `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Time between requests at the sustained rate.
    pub period: Duration,
    /// Requests allowed at once (at least 1).
    pub burst: u32,
}

impl Quota {
    /// `per_second` requests a second on average, `burst` at once.
    pub fn per_second(per_second: u32, burst: u32) -> Self {
        Quota {
            period: Duration::from_nanos(1_000_000_000 / u64::from(per_second.max(1))),
            burst: burst.max(1),
        }
    }

    /// The emission interval T, in nanoseconds.
    pub fn emission_ns(&self) -> u64 {
        u64::try_from(self.period.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// The burst tolerance τ = T·(burst − 1), in nanoseconds.
    pub fn tolerance_ns(&self) -> u64 {
        self.emission_ns()
            .saturating_mul(u64::from(self.burst.saturating_sub(1)))
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allowed; store `tat` as the key's new state.
    Allow {
        /// The new theoretical arrival time, ns.
        tat: u64,
    },
    /// Refused; the earliest time a request would be allowed is `retry_after_ns` from now.
    Deny {
        /// Wait before retrying, ns.
        retry_after_ns: u64,
    },
}

/// Checks one request at `now_ns` against `quota`, given the key's stored `tat` (none for
/// a key never seen).
pub fn check(quota: &Quota, tat: Option<u64>, now_ns: u64) -> Decision {
    let tat = tat.unwrap_or(now_ns).max(now_ns);
    let ahead = tat - now_ns;
    if ahead > quota.tolerance_ns() {
        Decision::Deny {
            retry_after_ns: ahead - quota.tolerance_ns(),
        }
    } else {
        Decision::Allow {
            tat: tat.saturating_add(quota.emission_ns()),
        }
    }
}

/// Checks a request that costs `cost` units at once (`cost` consecutive requests of
/// [`check`], all or none): a download counted by the KiB it serves. A cost above the
/// burst is never allowed; the caller refuses it outright rather than have it wait.
pub fn check_n(quota: &Quota, tat: Option<u64>, now_ns: u64, cost: u32) -> Decision {
    let tat = tat.unwrap_or(now_ns).max(now_ns);
    let new = tat.saturating_add(quota.emission_ns().saturating_mul(u64::from(cost.max(1))));
    let allowed = quota.tolerance_ns().saturating_add(quota.emission_ns());
    let ahead = new - now_ns;
    if ahead > allowed {
        Decision::Deny {
            retry_after_ns: ahead - allowed,
        }
    } else {
        Decision::Allow { tat: new }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `n` requests at time `now` against state `tat`, returning how many were allowed.
    fn burst_at(quota: &Quota, tat: &mut Option<u64>, now: u64, n: u32) -> u32 {
        let mut allowed = 0;
        for _ in 0..n {
            if let Decision::Allow { tat: t } = check(quota, *tat, now) {
                *tat = Some(t);
                allowed += 1;
            }
        }
        allowed
    }

    #[test]
    fn exactly_the_burst_then_exactly_the_rate() {
        let quota = Quota::per_second(10, 5);
        let mut tat = None;
        let t0 = 1_000_000_000_000;
        assert_eq!(burst_at(&quota, &mut tat, t0, 100), 5, "the burst");
        // Each further 100 ms admits exactly one more.
        for step in 1..=50u64 {
            let now = t0 + step * 100_000_000;
            assert_eq!(burst_at(&quota, &mut tat, now, 10), 1, "step {step}");
        }
        // Retry-After names the exact wait.
        match check(&quota, tat, t0 + 50 * 100_000_000) {
            Decision::Deny { retry_after_ns } => assert_eq!(retry_after_ns, 100_000_000),
            d => panic!("{d:?}"),
        }
        // After a long idle time the full burst is back, no more.
        assert_eq!(burst_at(&quota, &mut tat, t0 + 3_600_000_000_000, 100), 5);
    }

    /// A weighted request is its cost in single requests, all or none.
    #[test]
    fn a_cost_of_n_is_n_requests_at_once() {
        let quota = Quota::per_second(10, 5);
        let t0 = 1_000_000_000_000;
        // One of cost 1 is exactly `check`.
        for tat in [
            None,
            Some(t0),
            Some(t0 + 300_000_000),
            Some(t0 + 500_000_000),
        ] {
            assert_eq!(
                check_n(&quota, tat, t0, 1),
                check(&quota, tat, t0),
                "{tat:?}"
            );
        }
        let mut tat = None;
        let Decision::Allow { tat: t } = check_n(&quota, tat, t0, 3) else {
            panic!("3 of a burst of 5");
        };
        tat = Some(t);
        // 2 left: a cost of 3 waits exactly one emission interval, a cost of 2 passes.
        assert_eq!(
            check_n(&quota, tat, t0, 3),
            Decision::Deny {
                retry_after_ns: 100_000_000
            }
        );
        assert!(matches!(
            check_n(&quota, tat, t0, 2),
            Decision::Allow { .. }
        ));
        // More than the burst never passes, even when idle.
        assert!(matches!(
            check_n(&quota, None, t0, 6),
            Decision::Deny { .. }
        ));
        assert!(matches!(
            check_n(&quota, None, t0, 5),
            Decision::Allow { .. }
        ));
    }
}
