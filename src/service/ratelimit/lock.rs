//! A Redis lock in front of booking one slot, to spare PostgreSQL a crowd of conflicting
//! inserts. It is never the guarantee (the exclusion constraint is): without Redis, or when
//! Redis fails, bookings go straight to the database.
//!
//! The first request for a host's slot takes `SET key token NX PX ttl` and books; the others
//! wait (polling Redis, holding no database connection) until that key is gone, then try their
//! insert, which the constraint now refuses at once instead of blocking on the first request's
//! open transaction. Waiters do not queue behind each other: once the first has finished they
//! all proceed at once. The lock is released with a
//! compare-and-delete script, so an expired holder never deletes a later holder's key.

use super::redis_conn::SharedRedis;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a lock lives if its holder never releases it (crash, lost connection).
pub const LOCK_TTL: Duration = Duration::from_secs(5);
/// The longest a request waits for another's lock before going to the database anyway.
pub const MAX_WAIT: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(10);

const RELEASE_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
else
  return 0
end
"#;

/// The Redis key of a host's slot `[start, end)` (Unix seconds).
pub fn slot_key(org_id: i64, host: &str, start: i64, end: i64) -> String {
    format!("calops:booking-lock:{org_id}:{host}:{start}-{end}")
}

/// What acquiring ended in.
#[derive(Debug)]
pub enum Acquired {
    /// This request holds the lock; release it when the booking is decided.
    Held(LockGuard),
    /// Another request held it and has released it (or it expired, or waiting took too long):
    /// go on to the database, which now refuses at once if that request took the slot.
    WaitedForOther,
    /// No Redis (absent, down, slow): go straight to the database.
    NoLock,
}

impl Acquired {
    /// The guard to release, when this request holds the lock.
    pub fn into_guard(self) -> Option<LockGuard> {
        match self {
            Acquired::Held(g) => Some(g),
            Acquired::WaitedForOther | Acquired::NoLock => None,
        }
    }
}

#[derive(Clone)]
pub struct BookingLocks {
    redis: Option<Arc<SharedRedis>>,
    release: Arc<redis::Script>,
}

impl BookingLocks {
    pub fn new(redis: Option<Arc<SharedRedis>>) -> BookingLocks {
        BookingLocks {
            redis,
            release: Arc::new(redis::Script::new(RELEASE_SCRIPT)),
        }
    }

    pub async fn acquire(&self, key: &str) -> Acquired {
        let Some(redis) = &self.redis else {
            return Acquired::NoLock;
        };
        let token = uuid::Uuid::new_v4().to_string();
        let ttl_ms = LOCK_TTL.as_millis() as u64;
        let set = |key: String, token: String| {
            redis.run(move |mut conn| async move {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms)
                    .query_async::<Option<String>>(&mut conn)
                    .await
            })
        };
        match set(key.to_string(), token.clone()).await {
            None => return Acquired::NoLock,
            Some(Some(_)) => {
                return Acquired::Held(LockGuard {
                    key: key.to_string(),
                    token,
                    locks: Some(self.clone()),
                })
            }
            Some(None) => {}
        }
        let deadline = Instant::now() + MAX_WAIT;
        while Instant::now() < deadline {
            let jitter = Duration::from_micros(rand::random::<u64>() % 10_000);
            tokio::time::sleep(POLL + jitter).await;
            let k = key.to_string();
            let exists = redis
                .run(move |mut conn| async move {
                    redis::cmd("EXISTS")
                        .arg(&k)
                        .query_async::<i64>(&mut conn)
                        .await
                })
                .await;
            match exists {
                Some(1) => continue,
                Some(_) => return Acquired::WaitedForOther,
                None => return Acquired::NoLock,
            }
        }
        Acquired::WaitedForOther
    }

    async fn release(&self, key: String, token: String) {
        let Some(redis) = &self.redis else {
            return;
        };
        let script = self.release.clone();
        let _ = redis
            .run(move |mut conn| async move {
                script
                    .key(key)
                    .arg(token)
                    .invoke_async::<i64>(&mut conn)
                    .await
            })
            .await;
    }
}

/// A held lock. `release` it; if dropped unreleased (the request was cancelled), it is
/// released in the background.
pub struct LockGuard {
    key: String,
    token: String,
    locks: Option<BookingLocks>,
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard").field("key", &self.key).finish()
    }
}

impl LockGuard {
    pub async fn release(mut self) {
        if let Some(locks) = self.locks.take() {
            locks
                .release(
                    std::mem::take(&mut self.key),
                    std::mem::take(&mut self.token),
                )
                .await;
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(locks) = self.locks.take() {
            let (key, token) = (
                std::mem::take(&mut self.key),
                std::mem::take(&mut self.token),
            );
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { locks.release(key, token).await });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_org_host_and_window() {
        assert_eq!(
            slot_key(3, "et:9", 1_000, 2_800),
            "calops:booking-lock:3:et:9:1000-2800"
        );
    }

    #[tokio::test]
    async fn without_redis_there_is_no_lock() {
        let locks = BookingLocks::new(None);
        assert!(matches!(locks.acquire("k").await, Acquired::NoLock));
    }
}
