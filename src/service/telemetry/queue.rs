//! The bounded queue between the snapshots and the poster: drops the oldest metric data when
//! full, and says how many it dropped.

use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Mutex;

/// Metric streams waiting to be posted; never more than its capacity.
#[derive(Debug)]
pub struct Queue {
    items: Mutex<VecDeque<Value>>,
    capacity: usize,
}

impl Queue {
    pub fn new(capacity: usize) -> Queue {
        Queue {
            items: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Value>> {
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add `items`; returns how many of the oldest were dropped to make room.
    pub fn push(&self, items: Vec<Value>) -> u64 {
        let mut q = self.lock();
        q.extend(items);
        let over = q.len().saturating_sub(self.capacity);
        q.drain(..over);
        over as u64
    }

    /// Take up to `n` of the oldest.
    pub fn take(&self, n: usize) -> Vec<Value> {
        let mut q = self.lock();
        let n = n.min(q.len());
        q.drain(..n).collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts_them() {
        let q = Queue::new(5);
        assert_eq!(q.push((0..3).map(|i| json!(i)).collect()), 0);
        assert_eq!(q.push((3..8).map(|i| json!(i)).collect()), 3);
        assert_eq!(q.len(), 5);
        assert_eq!(q.take(2), vec![json!(3), json!(4)]);
        assert_eq!(q.take(10), vec![json!(5), json!(6), json!(7)]);
        assert!(q.is_empty());
    }
}
