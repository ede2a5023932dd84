//! Rate limits per API key, shared through Redis with an in-process fallback, and the Redis
//! lock in front of booking.
//!
//! - `policy`: pure logic (settings, classes of requests, fixed windows, decisions, headers)
//! - `local`: in-process counters
//! - `redis_conn`: the shared Redis connection with short timeouts and a breaker
//! - `lock`: `SET NX PX` per host slot, released by compare-and-delete (never the guarantee)
//!
//! The HTTP side (the middleware and its 429 answer) is `api::ratelimit`.

pub mod local;
pub mod lock;
pub mod policy;
pub mod redis_conn;

use policy::{Class, Count, Decision, Limits};
use redis_conn::SharedRedis;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Counts fixed windows atomically: INCR, and PEXPIRE when the key has no expiry yet (a new
/// window, or one left without TTL by anything else). Returns the count and the ms left.
const COUNT_SCRIPT: &str = r#"
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
"#;

/// Where the last decision was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Redis,
    InProcess,
}

pub struct RateLimiter {
    limits: Limits,
    redis: Option<Arc<SharedRedis>>,
    local: local::LocalCounters,
    script: redis::Script,
    fallbacks: AtomicU64,
}

impl RateLimiter {
    pub fn new(limits: Limits, redis: Option<Arc<SharedRedis>>) -> RateLimiter {
        RateLimiter {
            limits,
            redis,
            local: local::LocalCounters::default(),
            script: redis::Script::new(COUNT_SCRIPT),
            fallbacks: AtomicU64::new(0),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Decisions made in-process although Redis is configured (Redis down or slow).
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    pub fn redis_configured(&self) -> bool {
        self.redis.is_some()
    }

    /// Count one request of `class` by `who`; `None` when the class is not limited.
    pub async fn check(&self, class: Class, who: &str) -> Option<(Decision, Backend)> {
        let limit = self.limits.get(class)?;
        let key = policy::counter_key(class, who);
        if let Some(redis) = &self.redis {
            let period_ms = limit.period.as_millis() as u64;
            let script = &self.script;
            let counted = redis
                .run(|mut conn| {
                    let key = key.clone();
                    async move {
                        let (n, ttl): (u64, i64) = script
                            .key(key)
                            .arg(period_ms)
                            .invoke_async(&mut conn)
                            .await?;
                        Ok(Count {
                            count: n,
                            reset_in: Duration::from_millis(ttl.max(0) as u64),
                        })
                    }
                })
                .await;
            if let Some(c) = counted {
                return Some((Decision::from_count(limit, c), Backend::Redis));
            }
            self.fallbacks.fetch_add(1, Ordering::Relaxed);
        }
        // Fail open: a poisoned lock never blocks traffic.
        let c = self.local.hit(&key, limit.period)?;
        Some((Decision::from_count(limit, c), Backend::InProcess))
    }
}
