//! Retry schedule and circuit breaker (pure): what to do after an attempt.

use std::time::Duration;

/// Exponential backoff with jitter: the delay before attempt `attempt + 1` after attempt
/// `attempt` (1-based) failed is `base * 2^(attempt-1)`, capped at `max`, then scaled by a
/// factor in [0.5, 1.0) from `jitter` (a number in [0, 1)), so that many failed deliveries
/// do not come back in lockstep.
pub fn backoff(base: Duration, max: Duration, attempt: u32, jitter: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let raw = base.saturating_mul(1u32 << exp).min(max);
    let factor = 0.5 + 0.5 * jitter.clamp(0.0, 0.999_999);
    raw.mul_f64(factor)
}

/// What happens to a delivery after one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Delivered,
    /// Try again after this long.
    Retry(Duration),
    /// That was the last attempt: dead letter.
    Dead,
}

/// The outcome of attempt number `attempt` (1-based) of a delivery allowed `max_attempts`.
pub fn after_attempt(
    ok: bool,
    attempt: u32,
    max_attempts: u32,
    base: Duration,
    max: Duration,
    jitter: f64,
) -> Next {
    if ok {
        Next::Delivered
    } else if attempt >= max_attempts {
        Next::Dead
    } else {
        Next::Retry(backoff(base, max, attempt, jitter))
    }
}

/// A subscriber's circuit breaker as stored with the subscription: the count of straight
/// failures and, while open, until when (milliseconds since the epoch).
///
/// Closed (failures below the threshold) lets deliveries through. `threshold` straight
/// failures open it for `cooldown`: no delivery to that subscriber is attempted meanwhile
/// (they wait, they are not used up). When the cooldown ends it is half-open: the next
/// attempt is a trial; a success closes it, a failure opens it again at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Breaker {
    pub failures: u32,
    pub open_until: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl Breaker {
    pub fn state(&self, now: i64, threshold: u32) -> BreakerState {
        match self.open_until {
            Some(u) if now < u => BreakerState::Open,
            _ if self.failures >= threshold => BreakerState::HalfOpen,
            _ => BreakerState::Closed,
        }
    }

    /// May a delivery be attempted now?
    pub fn allows(&self, now: i64, threshold: u32) -> bool {
        self.state(now, threshold) != BreakerState::Open
    }

    /// The breaker after an attempt that ended at `now`.
    pub fn record(self, ok: bool, now: i64, threshold: u32, cooldown: Duration) -> Breaker {
        if ok {
            return Breaker::default();
        }
        let failures = self.failures.saturating_add(1);
        let open_until = if failures >= threshold.max(1) {
            Some(now + cooldown.as_millis().clamp(1, i64::MAX as u128) as i64)
        } else {
            self.open_until
        };
        Breaker {
            failures,
            open_until,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn backoff_doubles_caps_and_jitters_downwards() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        assert_eq!(
            backoff(base, max, 1, 0.999_999),
            Duration::from_millis(100).mul_f64(0.9999995)
        );
        assert_eq!(backoff(base, max, 1, 0.0), Duration::from_millis(50));
        assert_eq!(backoff(base, max, 2, 0.0), Duration::from_millis(100));
        assert_eq!(backoff(base, max, 3, 0.0), Duration::from_millis(200));
        assert_eq!(backoff(base, max, 6, 0.0), Duration::from_millis(1000)); // capped at 2 s, halved
        assert_eq!(backoff(base, max, 500, 0.0), Duration::from_millis(1000));
        for a in 1..40 {
            let d = backoff(base, max, a, 0.5);
            assert!(d <= max && d >= Duration::from_millis(50), "{a}: {d:?}");
        }
    }

    #[test]
    fn the_last_failed_attempt_is_a_dead_letter() {
        let (b, m) = (S, 60 * S);
        assert_eq!(after_attempt(true, 3, 3, b, m, 0.0), Next::Delivered);
        assert_eq!(after_attempt(false, 1, 3, b, m, 0.0), Next::Retry(S / 2));
        assert_eq!(after_attempt(false, 2, 3, b, m, 0.0), Next::Retry(S));
        assert_eq!(after_attempt(false, 3, 3, b, m, 0.0), Next::Dead);
        assert_eq!(after_attempt(false, 1, 1, b, m, 0.0), Next::Dead);
    }

    #[test]
    fn breaker_opens_after_five_failures_half_opens_and_closes_on_success() {
        let cool = Duration::from_secs(60);
        let mut b = Breaker::default();
        for i in 0..4 {
            b = b.record(false, 100 + i, 5, cool);
            assert_eq!(b.state(100 + i, 5), BreakerState::Closed);
        }
        b = b.record(false, 110, 5, cool);
        assert_eq!(
            b,
            Breaker {
                failures: 5,
                open_until: Some(60_110)
            }
        );
        assert!(!b.allows(60_109, 5));
        assert_eq!(b.state(60_110, 5), BreakerState::HalfOpen);
        // A failed trial opens it again straight away.
        let again = b.record(false, 60_111, 5, cool);
        assert_eq!(again.state(60_111, 5), BreakerState::Open);
        assert_eq!(again.open_until, Some(120_111));
        // A successful trial closes it.
        let closed = again.record(true, 120_200, 5, cool);
        assert_eq!(closed, Breaker::default());
        assert_eq!(closed.state(240, 5), BreakerState::Closed);
        // A success in between resets the count.
        let b = Breaker::default()
            .record(false, 1, 5, cool)
            .record(false, 2, 5, cool)
            .record(true, 3, 5, cool);
        assert_eq!(b.failures, 0);
    }
}
