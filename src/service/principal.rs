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
pub struct KeyCache {
    ttl: Duration,
    map: Mutex<HashMap<[u8; 32], (Principal, Instant)>>,
}

impl KeyCache {
    pub fn new(ttl: Duration) -> KeyCache {
        KeyCache {
            ttl,
            map: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, h: &[u8; 32]) -> Option<Principal> {
        let map = self.map.lock().ok()?;
        let (p, at) = map.get(h)?;
        (at.elapsed() < self.ttl).then(|| p.clone())
    }

    pub fn put(&self, h: [u8; 32], p: Principal) {
        if let Ok(mut map) = self.map.lock() {
            if map.len() > 10_000 {
                map.clear();
            }
            map.insert(h, (p, Instant::now()));
        }
    }
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
