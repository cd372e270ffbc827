//! Rate limits (GCRA, see `edgeward_proto::gcra`) and the v2 nonce cache, kept in process on
//! the embedded default or in Redis so that every replica sees the same state.

use std::{collections::HashMap, sync::Mutex};

use edgeward_proto::gcra::{self, Decision, Quota};

/// A failure of the shared store. The caller fails closed (refuses the request).
#[derive(Debug, thiserror::Error)]
#[error("rate-limit store: {0}")]
pub struct StoreError(String);

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        StoreError(e.to_string())
    }
}

/// GCRA in Redis, atomically, with Redis's own clock (so replicas need not agree on time);
/// `ARGV[3]` is the request's cost (1, or the KiB of a download: see `gcra::check_n`).
/// Times are microseconds: Lua numbers are doubles, exact only below 2^53.
const GCRA_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local period = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new = tat + period * cost
if new - now > tolerance + period then
  return {0, new - now - tolerance - period}
end
redis.call('SET', KEYS[1], new, 'PX', math.ceil((new - now) / 1000) + 1000)
return {1, new}
";

/// How long a Redis call may take. While Redis is down its connection manager keeps trying
/// to reconnect, and a call would wait with it; past this the call fails, so the request is
/// refused (503) at once rather than left hanging.
pub const REDIS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Longest wait, in milliseconds, between two attempts to reach Redis again.
pub const REDIS_RETRY_DELAY_MS: u64 = 250;

/// `call`'s answer, or a [`StoreError`] if Redis fails or takes longer than [`REDIS_TIMEOUT`].
async fn answer_in_time<T>(
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(REDIS_TIMEOUT, call).await {
        Ok(answer) => Ok(answer?),
        Err(_) => Err(StoreError(format!(
            "Redis did not answer within {} ms",
            REDIS_TIMEOUT.as_millis()
        ))),
    }
}

/// Keys with the time (ns) from which they may be forgotten: a GCRA key once its
/// theoretical arrival time has passed (an absent key means the same), a nonce once the
/// token window has.
#[derive(Default)]
pub struct Expiring {
    map: HashMap<String, u64>,
    sweep_above: usize,
}

/// Entries held before the first sweep.
const FIRST_SWEEP: usize = 100_000;

impl Expiring {
    /// Forgets what has expired at `now_ns` once the map has grown to twice what the last
    /// sweep left (and at least `FIRST_SWEEP`), so that even a flood of live keys costs each
    /// call amortized constant time rather than a sweep per call.
    fn sweep(&mut self, now_ns: u64) {
        if self.map.len() > self.sweep_above.max(FIRST_SWEEP) {
            self.map.retain(|_, until| *until > now_ns);
            self.sweep_above = 2 * self.map.len();
        }
    }
}

/// Where limit and nonce state lives.
pub enum Store {
    /// In this process.
    Memory {
        /// Key → theoretical arrival time (ns).
        tats: Mutex<Expiring>,
        /// Nonce → expiry (ns).
        nonces: Mutex<Expiring>,
    },
    /// In Redis, shared by every replica.
    Redis(redis::aio::ConnectionManager),
}

impl Store {
    /// In-process state.
    pub fn memory() -> Self {
        Store::Memory {
            tats: Mutex::default(),
            nonces: Mutex::default(),
        }
    }

    /// State in the Redis server at `url`. When the connection drops, the manager connects
    /// again in the background, at most [`REDIS_RETRY_DELAY_MS`] (plus jitter) apart and each
    /// attempt bounded by [`REDIS_TIMEOUT`]: with the crate's defaults (a factor of 100 on a
    /// 1 s step, capped at 60 s) a Redis back after a restart went unused for minutes.
    pub async fn redis(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_factor(2)
            .set_max_delay(REDIS_RETRY_DELAY_MS)
            .set_connection_timeout(REDIS_TIMEOUT)
            .set_response_timeout(REDIS_TIMEOUT);
        Ok(Store::Redis(
            redis::aio::ConnectionManager::new_with_config(client, config).await?,
        ))
    }

    /// Checks and counts one request against `quota` for `key` at `now_ns`.
    pub async fn check(
        &self,
        key: &str,
        quota: &Quota,
        now_ns: u64,
    ) -> Result<Decision, StoreError> {
        self.check_n(key, quota, now_ns, 1).await
    }

    /// Checks and counts a request costing `cost` units (at least 1) against `quota` for
    /// `key` at `now_ns`: all of it or nothing (see `gcra::check_n`).
    pub async fn check_n(
        &self,
        key: &str,
        quota: &Quota,
        now_ns: u64,
        cost: u32,
    ) -> Result<Decision, StoreError> {
        let cost = cost.max(1);
        match self {
            Store::Memory { tats, .. } => {
                let mut tats = tats
                    .lock()
                    .map_err(|_| StoreError("lock poisoned".into()))?;
                let decision = gcra::check_n(quota, tats.map.get(key).copied(), now_ns, cost);
                if let Decision::Allow { tat } = decision {
                    match tats.map.get_mut(key) {
                        Some(slot) => *slot = tat,
                        None => {
                            tats.map.insert(key.to_string(), tat);
                        }
                    }
                }
                tats.sweep(now_ns);
                Ok(decision)
            }
            Store::Redis(conn) => {
                let mut conn = conn.clone();
                let script = redis::Script::new(GCRA_LUA);
                let mut call = script.key(format!("edgeward:gcra:{key}"));
                call.arg(quota.emission_ns() / 1000)
                    .arg(quota.tolerance_ns() / 1000)
                    .arg(cost);
                let (allowed, value): (i64, i64) =
                    answer_in_time(call.invoke_async(&mut conn)).await?;
                Ok(if allowed == 1 {
                    Decision::Allow {
                        tat: u64::try_from(value).unwrap_or(0).saturating_mul(1000),
                    }
                } else {
                    Decision::Deny {
                        retry_after_ns: u64::try_from(value).unwrap_or(0).saturating_mul(1000),
                    }
                })
            }
        }
    }

    /// Records a v2 nonce for `ttl_secs`; false if it was seen before (a replay).
    pub async fn first_use(
        &self,
        nonce_key: &str,
        ttl_secs: u64,
        now_ns: u64,
    ) -> Result<bool, StoreError> {
        match self {
            Store::Memory { nonces, .. } => {
                let mut nonces = nonces
                    .lock()
                    .map_err(|_| StoreError("lock poisoned".into()))?;
                nonces.sweep(now_ns);
                match nonces.map.get(nonce_key) {
                    Some(expiry) if *expiry > now_ns => Ok(false),
                    _ => {
                        nonces.map.insert(
                            nonce_key.to_string(),
                            now_ns.saturating_add(ttl_secs.saturating_mul(1_000_000_000)),
                        );
                        Ok(true)
                    }
                }
            }
            Store::Redis(conn) => {
                let mut conn = conn.clone();
                let mut cmd = redis::cmd("SET");
                cmd.arg(format!("edgeward:nonce:{nonce_key}"))
                    .arg(1)
                    .arg("NX")
                    .arg("EX")
                    .arg(ttl_secs.max(1));
                let set: Option<String> = answer_in_time(cmd.query_async(&mut conn)).await?;
                Ok(set.is_some())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sweep forgets only what has expired, and the next one waits until the map has
    /// doubled, so a flood of live keys does not sweep on every call.
    #[test]
    fn sweeps_forget_only_expired_keys_and_are_amortized() {
        let mut e = Expiring::default();
        for i in 0..FIRST_SWEEP {
            e.map.insert(format!("old:{i}"), 10);
        }
        e.map.insert("live".into(), 1_000);
        e.sweep(500);
        assert_eq!(e.map.len(), 1, "expired keys are forgotten");
        assert_eq!(e.map.get("live"), Some(&1_000));

        for i in 0..=FIRST_SWEEP {
            e.map.insert(format!("live:{i}"), 1_000);
        }
        e.sweep(500);
        let after = e.map.len();
        assert_eq!(after, FIRST_SWEEP + 2, "live keys are all kept");
        assert_eq!(e.sweep_above, 2 * after);
        e.map.insert("one more".into(), 1_000);
        e.sweep(500);
        assert_eq!(
            e.sweep_above,
            2 * after,
            "no sweep until the map has doubled"
        );
    }
}
