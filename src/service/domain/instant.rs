//! Instants that come from clients: the range the service accepts, and arithmetic on them that
//! reports instead of panicking.
//!
//! jiff's `Timestamp` ends at 9999-12-31, and `Timestamp + SignedDuration` panics past it: a
//! booking starting `9999-12-30T21:00:00Z` would overflow while its slot's margins are worked
//! out. Every client-given instant is checked against [`EARLIEST`]..[`LATEST`] where it enters
//! (a 400 naming the field); that leaves about a thousand years of headroom for everything the
//! service adds to it (lengths, buffers, margins of days), and that arithmetic still goes
//! through [`add`], so a future mistake is an error, not a panic.

use jiff::{SignedDuration, Timestamp};

/// The earliest instant accepted: 1970-01-01T00:00:00Z.
pub const EARLIEST: Timestamp = Timestamp::UNIX_EPOCH;
/// The first instant refused: 9000-01-01T00:00:00Z.
pub const LATEST: Timestamp = Timestamp::constant(221_845_392_000, 0);

/// Why an instant is refused (for a field error).
pub fn out_of_range_message() -> String {
    format!("must be from {EARLIEST} up to (not including) {LATEST}")
}

/// Is `t` in the range clients may use?
pub fn in_range(t: Timestamp) -> bool {
    EARLIEST <= t && t < LATEST
}

/// Is `second` (Unix time) in the range clients may use?
pub fn second_in_range(second: i64) -> bool {
    EARLIEST.as_second() <= second && second < LATEST.as_second()
}

/// `t + d`, or `None` when that leaves the instants jiff can represent.
pub fn add(t: Timestamp, d: SignedDuration) -> Option<Timestamp> {
    t.checked_add(d).ok()
}

/// `t` plus `minutes`, or `None` on overflow.
pub fn add_minutes(t: Timestamp, minutes: i64) -> Option<Timestamp> {
    add(t, SignedDuration::from_secs(minutes.checked_mul(60)?))
}

/// `t` plus `days` of 24 hours, or `None` on overflow.
pub fn add_days(t: Timestamp, days: i64) -> Option<Timestamp> {
    add(t, SignedDuration::from_secs(days.checked_mul(86_400)?))
}

/// The longest validity a new API key may be given, in days (100 years).
pub const MAX_KEY_DAYS: u32 = 36_500;

/// When a key created at `now` and valid for `days` expires: `None` when `days` is outside
/// 1..=[`MAX_KEY_DAYS`].
pub fn key_expiry(now: Timestamp, days: u32) -> Option<Timestamp> {
    if !(1..=MAX_KEY_DAYS).contains(&days) {
        return None;
    }
    add_days(now, i64::from(days))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn the_range_ends_with_room_for_arithmetic() {
        assert_eq!(LATEST, ts("9000-01-01T00:00:00Z"));
        assert!(in_range(ts("2031-03-03T09:00:00Z")));
        assert!(in_range(EARLIEST));
        assert!(!in_range(LATEST));
        assert!(!in_range(ts("9999-12-30T21:00:00Z")));
        assert!(!in_range(ts("1969-12-31T23:59:59Z")));
        assert!(second_in_range(LATEST.as_second() - 1));
        assert!(!second_in_range(LATEST.as_second()));
        // From the last accepted instant, the service's widest additions still fit.
        let last = ts("8999-12-31T23:59:00Z");
        assert!(add_days(last, 3650).is_some());
        assert!(out_of_range_message().contains("9000-01-01"));
    }

    #[test]
    fn arithmetic_past_the_end_reports_instead_of_panicking() {
        let t = ts("9999-12-30T21:00:00Z");
        assert_eq!(add_minutes(t, 30), Some(ts("9999-12-30T21:30:00Z")));
        assert_eq!(add(t, SignedDuration::from_hours(72)), None);
        assert_eq!(add_days(t, 2), None);
        assert_eq!(add_minutes(t, i64::MAX), None);
        assert_eq!(add_days(t, i64::MIN), None);
    }

    #[test]
    fn key_validity_is_bounded() {
        let now = ts("2030-01-01T00:00:00Z");
        assert_eq!(key_expiry(now, 1), Some(ts("2030-01-02T00:00:00Z")));
        assert!(key_expiry(now, MAX_KEY_DAYS).is_some());
        assert_eq!(key_expiry(now, 0), None);
        assert_eq!(key_expiry(now, MAX_KEY_DAYS + 1), None);
        // About 2.9 million days overflowed before the bound; now it is simply refused.
        assert_eq!(key_expiry(now, 3_000_000), None);
        assert_eq!(key_expiry(now, u32::MAX), None);
    }
}
