//! Pure rate-limit logic: the settings (`60/min`), which requests count against which limit,
//! the fixed-window counter, and the decision with its response headers. No clocks or I/O:
//! callers pass the time in.
//!
//! Why a fixed window: one counter per API key and class, created by the first request of a
//! window and expiring with it. In Redis that is one key and one atomic round trip (INCR, and
//! PEXPIRE when the key is new, in one Lua script so a crash between the two cannot leave a
//! counter that never expires), and Redis's own TTL is the only clock, so replicas with skewed
//! clocks still agree on the window. `X-RateLimit-Reset` is exact (the key's TTL). The price is
//! the window edge: a client may send up to twice the limit in a short span around it. That is
//! acceptable for abuse protection; a sliding log would cost memory per request, and the
//! sliding-window estimate makes Remaining/Reset approximate.

use std::time::Duration;

/// `requests` per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub requests: u64,
    pub period: Duration,
}

/// The two limited classes of requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// `GET /v2/slots`
    Availability,
    /// Creating, rescheduling and cancelling bookings, and slot reservations.
    Bookings,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Availability => "availability",
            Class::Bookings => "bookings",
        }
    }
}

/// The configured limits; `None` turns a class off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub availability: Option<Limit>,
    pub bookings: Option<Limit>,
}

pub const DEFAULT_AVAILABILITY: Limit = Limit {
    requests: 60,
    period: Duration::from_secs(60),
};
pub const DEFAULT_BOOKINGS: Limit = Limit {
    requests: 20,
    period: Duration::from_secs(60),
};

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            availability: Some(DEFAULT_AVAILABILITY),
            bookings: Some(DEFAULT_BOOKINGS),
        }
    }
}

impl Limits {
    /// No limits at all (tests that hammer the service use this).
    pub const OFF: Limits = Limits {
        availability: None,
        bookings: None,
    };

    pub fn get(&self, class: Class) -> Option<Limit> {
        match class {
            Class::Availability => self.availability,
            Class::Bookings => self.bookings,
        }
    }
}

pub const MAX_REQUESTS: u64 = 1_000_000;
pub const MAX_PERIOD: Duration = Duration::from_secs(24 * 3600);

/// Parse `N/PERIOD` (`60/min`, `20/1m`, `5/s`, `1000/h`, `100/30s`) or `off`.
pub fn parse_limit(text: &str) -> Result<Option<Limit>, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let usage = "use N/PERIOD such as 60/min, 20/1m, 5/s or 1000/h (1 to 1000000 requests, a period of 1s to 24h), or off";
    let Some((n, p)) = t.split_once('/') else {
        return Err(format!("{t:?}: {usage}"));
    };
    let requests = match n.trim().parse::<u64>() {
        Ok(r) if (1..=MAX_REQUESTS).contains(&r) => r,
        _ => return Err(format!("{t:?}: {n:?} is not a request count; {usage}")),
    };
    let p = p.trim();
    let period = match p {
        "s" | "sec" | "second" => Some(Duration::from_secs(1)),
        "m" | "min" | "minute" => Some(Duration::from_secs(60)),
        "h" | "hour" => Some(Duration::from_secs(3600)),
        other => humantime::parse_duration(other).ok(),
    };
    match period {
        Some(d) if d >= Duration::from_secs(1) && d <= MAX_PERIOD && d.subsec_nanos() == 0 => {
            Ok(Some(Limit {
                requests,
                period: d,
            }))
        }
        _ => Err(format!("{t:?}: {p:?} is not a period; {usage}")),
    }
}

/// Which limit a request counts against, from its method and matched route.
pub fn classify(method: &str, route: &str) -> Option<Class> {
    match (method, route) {
        // Cal.com's older shape of the same questions counts alike.
        ("GET", "/v2/slots") | ("GET", "/v2/slots/available") => Some(Class::Availability),
        ("POST", "/v2/bookings")
        | ("POST", "/v2/bookings/{uid}/cancel")
        | ("POST", "/v2/bookings/{uid}/reschedule")
        | ("POST", "/v2/slots/reservations")
        | ("PATCH", "/v2/slots/reservations/{uid}")
        | ("POST", "/v2/slots/reserve") => Some(Class::Bookings),
        // Composite bookings (another part of the service) count as bookings too.
        ("POST", r) if r.starts_with("/v2/bookings/composite") => Some(Class::Bookings),
        _ => None,
    }
}

/// A counter's state after counting one request: the count in this window (including the
/// request) and how long until the window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub count: u64,
    pub reset_in: Duration,
}

/// The verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u64,
    pub remaining: u64,
    /// Whole seconds until the window resets (rounded up, at least 1).
    pub reset_secs: u64,
}

impl Decision {
    pub fn from_count(limit: Limit, c: Count) -> Decision {
        let ms = c.reset_in.as_millis() as u64;
        Decision {
            allowed: c.count <= limit.requests,
            limit: limit.requests,
            remaining: limit.requests.saturating_sub(c.count),
            reset_secs: ms.div_ceil(1000).clamp(1, limit.period.as_secs().max(1)),
        }
    }

    /// `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (seconds until the
    /// window resets), plus `Retry-After` when refused.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![
            ("x-ratelimit-limit", self.limit.to_string()),
            ("x-ratelimit-remaining", self.remaining.to_string()),
            ("x-ratelimit-reset", self.reset_secs.to_string()),
        ];
        if !self.allowed {
            h.push(("retry-after", self.reset_secs.to_string()));
        }
        h
    }
}

/// One fixed window held in memory (the in-process backend): the same rules as the Redis
/// script. `now` is any monotonic time in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub count: u64,
    pub ends_at_ms: u64,
}

impl Window {
    /// Count one request at `now_ms`, starting a new window when the old one has ended.
    pub fn hit(state: Option<Window>, now_ms: u64, period: Duration) -> Window {
        match state {
            Some(w) if now_ms < w.ends_at_ms => Window {
                count: w.count.saturating_add(1),
                ends_at_ms: w.ends_at_ms,
            },
            _ => Window {
                count: 1,
                ends_at_ms: now_ms + period.as_millis() as u64,
            },
        }
    }

    pub fn count_at(&self, now_ms: u64) -> Count {
        Count {
            count: self.count,
            reset_in: Duration::from_millis(self.ends_at_ms.saturating_sub(now_ms)),
        }
    }

    pub fn expired(&self, now_ms: u64) -> bool {
        now_ms >= self.ends_at_ms
    }
}

/// The Redis key of a counter: class and API key id, never the key itself.
pub fn counter_key(class: Class, who: &str) -> String {
    format!("calops:ratelimit:{}:{who}", class.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_and_bad_ones_say_what_to_write() {
        let min = Duration::from_secs(60);
        assert_eq!(
            parse_limit("60/min").unwrap(),
            Some(Limit {
                requests: 60,
                period: min
            })
        );
        assert_eq!(parse_limit(" 20/1m ").unwrap().unwrap().period, min);
        assert_eq!(
            parse_limit("5/s").unwrap().unwrap().period,
            Duration::from_secs(1)
        );
        assert_eq!(
            parse_limit("100/30s").unwrap().unwrap().period,
            Duration::from_secs(30)
        );
        assert_eq!(parse_limit("OFF").unwrap(), None);
        for bad in [
            "60",
            "0/min",
            "x/min",
            "60/fortnight",
            "5/500ms",
            "1/2d",
            "2000000/s",
        ] {
            let e = parse_limit(bad).unwrap_err();
            assert!(e.contains("N/PERIOD"), "{bad}: {e}");
        }
    }

    #[test]
    fn routes_are_classified() {
        assert_eq!(classify("GET", "/v2/slots"), Some(Class::Availability));
        assert_eq!(classify("POST", "/v2/bookings"), Some(Class::Bookings));
        assert_eq!(
            classify("POST", "/v2/bookings/{uid}/reschedule"),
            Some(Class::Bookings)
        );
        assert_eq!(
            classify("POST", "/v2/slots/reservations"),
            Some(Class::Bookings)
        );
        assert_eq!(classify("GET", "/v2/bookings"), None);
        assert_eq!(classify("GET", "/health"), None);
        assert_eq!(classify("DELETE", "/v2/slots/reservations/{uid}"), None);
    }

    #[test]
    fn windows_count_reset_and_decide() {
        let limit = Limit {
            requests: 3,
            period: Duration::from_secs(60),
        };
        let mut w = None;
        let mut decisions = Vec::new();
        for t in [0, 1_000, 2_000, 59_000] {
            let next = Window::hit(w, t, limit.period);
            decisions.push(Decision::from_count(limit, next.count_at(t)));
            w = Some(next);
        }
        let allowed: Vec<bool> = decisions.iter().map(|d| d.allowed).collect();
        assert_eq!(allowed, [true, true, true, false]);
        assert_eq!(decisions[0].remaining, 2);
        assert_eq!(decisions[0].reset_secs, 60);
        assert_eq!(decisions[3].remaining, 0);
        assert_eq!(decisions[3].reset_secs, 1);
        let h = decisions[3].headers();
        assert!(h.contains(&("retry-after", "1".into())));
        assert!(h.contains(&("x-ratelimit-limit", "3".into())));
        assert!(!decisions[0]
            .headers()
            .iter()
            .any(|(k, _)| *k == "retry-after"));
        // The window ends at 60 s: a new one starts with the next request.
        let fresh = Window::hit(w, 60_000, limit.period);
        assert_eq!(fresh.count, 1);
        assert_eq!(fresh.ends_at_ms, 120_000);
        assert!(w.unwrap().expired(60_000));
        // Partial seconds round up, never to zero.
        let d = Decision::from_count(
            limit,
            Count {
                count: 9,
                reset_in: Duration::from_millis(1),
            },
        );
        assert_eq!((d.allowed, d.remaining, d.reset_secs), (false, 0, 1));
    }

    #[test]
    fn counter_keys_name_class_and_key_id() {
        assert_eq!(
            counter_key(Class::Bookings, "key:7"),
            "calops:ratelimit:bookings:key:7"
        );
    }
}
