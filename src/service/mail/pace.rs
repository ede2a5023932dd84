//! Mail yields to bookings. Sending one message costs about as much CPU as making one booking
//! (a claim, composing, a write, a record), and a booking makes three, so workers that send
//! flat out during a burst of bookings slow the bookings down. Instead, while this process is
//! making bookings (its count of bookings made moved within the last [`QUIET`]), the workers
//! wait before their next claim; for at most `max` from the start of that busy spell. After
//! that only the lead (one worker, and the expansion of booking changes) sends while the spell
//! goes on, the others join when it ends. So a burst delays mail until it ends, a steady stream
//! of bookings delays it by at most `max` and then gets one worker's share of the CPU, not all
//! of them, and the backlog always drains.
//!
//! Pure logic (the caller passes the count and the time), so it is tested without a server.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bookings this recent make the process busy.
pub const QUIET: Duration = Duration::from_millis(100);

/// The shared pacing state of one process's workers.
#[derive(Debug)]
pub struct Pace {
    max: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The booking count last seen, and when it last moved.
    seen: u64,
    moved: Option<Instant>,
    /// When the current busy spell began.
    spell: Option<Instant>,
}

impl Pace {
    /// `max` zero: never wait.
    pub fn new(max: Duration) -> Pace {
        Pace {
            max,
            state: Mutex::new(State::default()),
        }
    }

    /// How long a worker waits before its next claim, given the process's count of bookings
    /// made at `now`: `None` to claim at once. Past `max` into a busy spell, the `lead` claims
    /// and the others wait until the spell ends.
    pub fn wait(&self, bookings: u64, now: Instant, lead: bool) -> Option<Duration> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if bookings != s.seen {
            s.seen = bookings;
            s.moved = Some(now);
            s.spell.get_or_insert(now);
        }
        let since_moved = s.moved.map(|m| now.saturating_duration_since(m));
        match since_moved {
            Some(d) if d < QUIET && !self.max.is_zero() => {
                let spell = now.saturating_duration_since(s.spell.unwrap_or(now));
                let left = self.max.saturating_sub(spell);
                if left.is_zero() {
                    (!lead).then_some(QUIET - d)
                } else {
                    Some((QUIET - d).min(left))
                }
            }
            _ => {
                s.spell = None;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn workers_wait_while_bookings_are_made_then_send() {
        let p = Pace::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(p.wait(0, t0, true), None, "no bookings yet: send");
        assert_eq!(
            p.wait(5, t0, true),
            Some(QUIET),
            "a booking was just made: wait"
        );
        assert_eq!(p.wait(5, t0 + 40 * MS, true), Some(QUIET - 40 * MS));
        assert_eq!(
            p.wait(9, t0 + 60 * MS, true),
            Some(QUIET),
            "another: wait again"
        );
        assert_eq!(
            p.wait(9, t0 + 160 * MS, true),
            None,
            "quiet for QUIET: send"
        );
    }

    #[test]
    fn a_steady_stream_of_bookings_delays_mail_by_at_most_max() {
        let max = Duration::from_millis(500);
        let p = Pace::new(max);
        let t0 = Instant::now();
        let mut n = 0;
        let mut waited_until = None;
        for step in 0..100u32 {
            n += 1;
            let now = t0 + step * 10 * MS;
            if p.wait(n, now, true).is_none() {
                waited_until = Some(step * 10);
                break;
            }
        }
        assert_eq!(waited_until, Some(500), "sends once the spell is max long");
        assert_eq!(
            p.wait(n + 1, t0 + 1000 * MS, true),
            None,
            "and keeps sending"
        );
        // Quiet ends the spell: the next burst is waited out again.
        assert_eq!(p.wait(n + 1, t0 + 1200 * MS, true), None);
        assert_eq!(p.wait(n + 2, t0 + 1300 * MS, true), Some(QUIET));
    }

    #[test]
    fn past_max_only_the_lead_sends_while_bookings_go_on() {
        let p = Pace::new(100 * MS);
        let t0 = Instant::now();
        assert_eq!(p.wait(1, t0, false), Some(QUIET));
        assert_eq!(
            p.wait(2, t0 + 50 * MS, true),
            Some(50 * MS),
            "within max: all wait"
        );
        assert_eq!(
            p.wait(3, t0 + 100 * MS, true),
            None,
            "past max: the lead sends"
        );
        assert_eq!(
            p.wait(4, t0 + 120 * MS, false),
            Some(QUIET),
            "the others wait while bookings go on"
        );
        assert_eq!(p.wait(4, t0 + 200 * MS, false), Some(20 * MS));
        assert_eq!(p.wait(4, t0 + 220 * MS, false), None, "quiet: all send");
    }

    #[test]
    fn max_zero_never_waits() {
        let p = Pace::new(Duration::ZERO);
        let t0 = Instant::now();
        assert_eq!(p.wait(1, t0, true), None);
        assert_eq!(p.wait(2, t0 + MS, true), None);
    }
}
