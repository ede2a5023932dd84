//! Who is calling: the [`Principal`] behind an API key (or the bootstrap admin token), the
//! scopes a key can hold, key hashes, and the cache of recently verified keys. The HTTP side
//! (the `Authorization` extractor, 401/403 answers) is `api::auth`.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The scopes a key can hold.
pub const SCOPES: [&str; 5] = ["read", "book", "cancel", "reschedule", "admin"];

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Bootstrap,
    Key {
        key_id: i64,
        org_id: i64,
        scopes: Vec<String>,
        /// The user the key belongs to (as Cal.com's keys do); `None` for an organization key.
        user_id: Option<i64>,
    },
}

impl Principal {
    pub fn has_scope(&self, scope: &str) -> bool {
        match self {
            Principal::Bootstrap => true,
            Principal::Key { scopes, .. } => scopes.iter().any(|s| s == scope || s == "admin"),
        }
    }

    /// The user a user-scoped key belongs to.
    pub fn user(&self) -> Option<i64> {
        match self {
            Principal::Key { user_id, .. } => *user_id,
            Principal::Bootstrap => None,
        }
    }
}

pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Recently verified keys, so that a busy client costs one query per `ttl`, not per request.
///
/// A cached key never outlives its own expiry, and a revoked one stops working at once: the
/// database notifies every replica when API keys change (`store::cache::KEYS`) and the cache
/// drops everything. While that notification connection is down nothing is cached (every
/// request reads the database), as with the slot cache. A lookup that raced a change is not
/// kept: [`KeyCache::ticket`] is taken before the query and [`KeyCache::put`] refuses the
/// result when the cache was cleared after it.
pub struct KeyCache {
    ttl: Duration,
    inner: Mutex<Keys>,
}

#[derive(Default)]
struct Keys {
    /// In use (the notification connection listens).
    active: bool,
    /// Bumped by every clear; a ticket is its value.
    generation: u64,
    map: HashMap<[u8; 32], Cached>,
}

struct Cached {
    principal: Principal,
    at: Instant,
    expires_at: Option<jiff::Timestamp>,
}

/// Taken before a key is looked up in the database (see [`KeyCache`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyTicket(u64);

impl KeyCache {
    pub fn new(ttl: Duration) -> KeyCache {
        KeyCache {
            ttl,
            inner: Mutex::new(Keys::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Keys> {
        // Every change is a single assignment, insert or clear: a poisoned lock is consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The principal of a key verified less than `ttl` ago and not expired by `now`.
    pub fn get(&self, h: &[u8; 32], now: jiff::Timestamp) -> Option<Principal> {
        let keys = self.lock();
        let c = keys.map.get(h)?;
        let live = c.at.elapsed() < self.ttl && c.expires_at.is_none_or(|e| now < e);
        live.then(|| c.principal.clone())
    }

    /// A ticket for a lookup whose result may be kept; `None` while the cache is not in use.
    pub fn ticket(&self) -> Option<KeyTicket> {
        let keys = self.lock();
        keys.active.then_some(KeyTicket(keys.generation))
    }

    /// Keep a key looked up with `ticket`, unless the cache was cleared since.
    pub fn put(
        &self,
        ticket: KeyTicket,
        h: [u8; 32],
        p: Principal,
        expires_at: Option<jiff::Timestamp>,
    ) {
        let mut keys = self.lock();
        if !keys.active || keys.generation != ticket.0 {
            return;
        }
        if keys.map.len() > 10_000 {
            keys.map.clear();
        }
        keys.map.insert(
            h,
            Cached {
                principal: p,
                at: Instant::now(),
                expires_at,
            },
        );
    }

    /// Forget every key (API keys changed somewhere).
    pub fn clear(&self) {
        let mut keys = self.lock();
        keys.generation += 1;
        keys.map.clear();
    }

    /// Start (the notification connection listens) or stop (it was lost) caching; either
    /// way everything cached so far is dropped.
    pub fn set_active(&self, on: bool) {
        let mut keys = self.lock();
        keys.generation += 1;
        keys.map.clear();
        keys.active = on;
    }
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: i64) -> Principal {
        Principal::Key {
            key_id: id,
            org_id: 1,
            scopes: vec!["read".into()],
            user_id: None,
        }
    }

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_cached_key_never_outlives_its_expiry_or_a_revocation() {
        let c = KeyCache::new(Duration::from_secs(30));
        let now = ts("2030-01-01T12:00:00Z");
        assert!(
            c.ticket().is_none(),
            "nothing is cached before the cache listens"
        );
        c.set_active(true);
        let t = c.ticket().unwrap();
        c.put(t, [1; 32], key(1), Some(ts("2030-01-01T12:00:05Z")));
        c.put(t, [2; 32], key(2), None);
        assert_eq!(c.get(&[1; 32], now), Some(key(1)));
        assert_eq!(
            c.get(&[1; 32], ts("2030-01-01T12:00:05Z")),
            None,
            "expired while cached"
        );
        assert_eq!(c.get(&[2; 32], now), Some(key(2)));
        c.clear();
        assert_eq!(c.get(&[2; 32], now), None, "a key change drops every key");
    }

    #[test]
    fn a_lookup_that_raced_a_change_is_not_kept_and_nothing_is_kept_while_deaf() {
        let c = KeyCache::new(Duration::from_secs(30));
        let now = ts("2030-01-01T12:00:00Z");
        c.set_active(true);
        let t = c.ticket().unwrap();
        c.clear();
        c.put(t, [1; 32], key(1), None);
        assert_eq!(c.get(&[1; 32], now), None);
        let t = c.ticket().unwrap();
        c.set_active(false);
        c.put(t, [1; 32], key(1), None);
        assert_eq!(c.get(&[1; 32], now), None);
        assert!(c.ticket().is_none());
    }
}
