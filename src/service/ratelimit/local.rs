//! The in-process backend: fixed windows in a map, used when Redis is not configured or not
//! answering. Each replica counts on its own then.

use super::policy::{Count, Window};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Above this many counters, expired ones are dropped on the next hit.
const PRUNE_ABOVE: usize = 10_000;

pub struct LocalCounters {
    epoch: Instant,
    windows: Mutex<HashMap<String, Window>>,
}

impl Default for LocalCounters {
    fn default() -> Self {
        LocalCounters {
            epoch: Instant::now(),
            windows: Mutex::new(HashMap::new()),
        }
    }
}

impl LocalCounters {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Count one request against `key`; `None` only if the map's lock is poisoned (callers
    /// then let the request through).
    pub fn hit(&self, key: &str, period: Duration) -> Option<Count> {
        let now = self.now_ms();
        let mut map = self.windows.lock().ok()?;
        if map.len() > PRUNE_ABOVE {
            map.retain(|_, w| !w.expired(now));
        }
        let next = Window::hit(map.get(key).copied(), now, period);
        map.insert(key.to_string(), next);
        Some(next.count_at(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_key() {
        let c = LocalCounters::default();
        let p = Duration::from_secs(60);
        assert_eq!(c.hit("a", p).unwrap().count, 1);
        assert_eq!(c.hit("a", p).unwrap().count, 2);
        let b = c.hit("b", p).unwrap();
        assert_eq!(b.count, 1);
        assert!(b.reset_in <= p && b.reset_in > Duration::from_secs(59));
    }
}
