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

/// GCRA in Redis, atomically, with Redis's own clock (so replicas need not agree on time).
/// Times are microseconds: Lua numbers are doubles, exact only below 2^53.
const GCRA_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local period = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat - now > tolerance then
  return {0, tat - now - tolerance}
end
local new = tat + period
redis.call('SET', KEYS[1], new, 'PX', math.ceil((new - now) / 1000) + 1000)
return {1, new}
";

/// Where limit and nonce state lives.
pub enum Store {
    /// In this process.
    Memory {
        /// Key → theoretical arrival time (ns).
        tats: Mutex<HashMap<String, u64>>,
        /// Nonce → expiry (ns).
        nonces: Mutex<HashMap<String, u64>>,
    },
    /// In Redis, shared by every replica.
    Redis(redis::aio::ConnectionManager),
}

impl Store {
    /// In-process state.
    pub fn memory() -> Self {
        Store::Memory {
            tats: Mutex::new(HashMap::new()),
            nonces: Mutex::new(HashMap::new()),
        }
    }

    /// State in the Redis server at `url`.
    pub async fn redis(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)?;
        Ok(Store::Redis(
            redis::aio::ConnectionManager::new(client).await?,
        ))
    }

    /// Checks and counts one request against `quota` for `key` at `now_ns`.
    pub async fn check(
        &self,
        key: &str,
        quota: &Quota,
        now_ns: u64,
    ) -> Result<Decision, StoreError> {
        match self {
            Store::Memory { tats, .. } => {
                let mut tats = tats
                    .lock()
                    .map_err(|_| StoreError("lock poisoned".into()))?;
                let decision = gcra::check(quota, tats.get(key).copied(), now_ns);
                if let Decision::Allow { tat } = decision {
                    match tats.get_mut(key) {
                        Some(slot) => *slot = tat,
                        None => {
                            tats.insert(key.to_string(), tat);
                        }
                    }
                }
                if tats.len() > 100_000 {
                    tats.retain(|_, tat| *tat > now_ns);
                }
                Ok(decision)
            }
            Store::Redis(conn) => {
                let mut conn = conn.clone();
                let (allowed, value): (i64, i64) = redis::Script::new(GCRA_LUA)
                    .key(format!("edgeward:gcra:{key}"))
                    .arg(quota.emission_ns() / 1000)
                    .arg(quota.tolerance_ns() / 1000)
                    .invoke_async(&mut conn)
                    .await?;
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
                if nonces.len() > 100_000 {
                    nonces.retain(|_, expiry| *expiry > now_ns);
                }
                match nonces.get(nonce_key) {
                    Some(expiry) if *expiry > now_ns => Ok(false),
                    _ => {
                        nonces.insert(nonce_key.to_string(), now_ns + ttl_secs * 1_000_000_000);
                        Ok(true)
                    }
                }
            }
            Store::Redis(conn) => {
                let mut conn = conn.clone();
                let set: Option<String> = redis::cmd("SET")
                    .arg(format!("edgeward:nonce:{nonce_key}"))
                    .arg(1)
                    .arg("NX")
                    .arg("EX")
                    .arg(ttl_secs.max(1))
                    .query_async(&mut conn)
                    .await?;
                Ok(set.is_some())
            }
        }
    }
}
