//! One interval's figures, from two readings of the cumulative counters: pure.

use crate::service::metrics::{Series, BUCKETS};
use crate::service::store::PoolStatus;
use std::collections::BTreeMap;
use std::time::SystemTime;

/// The cumulative counters at one moment (requests and the slot cache).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub requests: Vec<Series>,
    pub cache_hits: u64,
    pub cache_misses: u64,
    /// Metric streams the exporter dropped so far.
    pub dropped: u64,
}

/// Gauges read at the snapshot (the database ones may be unreadable: `None`).
#[derive(Debug, Clone, PartialEq)]
pub struct Gauges {
    pub pool: PoolStatus,
    /// (queue, depth, oldest item's age in seconds where known), across replicas.
    pub queues: Option<Vec<(&'static str, i64, Option<f64>)>>,
    /// (sync age of the least recently synced calendar, failing calendars), when any calendar
    /// is connected.
    pub calendars: Option<(f64, i64)>,
    pub webhook_latency_p95: Option<f64>,
    /// The backup schedule's gauges found in `/metrics` (name, value).
    pub backup: Vec<(String, f64)>,
}

/// What one interval saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub at: SystemTime,
    /// Requests by (route group, status class).
    pub requests: BTreeMap<(&'static str, &'static str), u64>,
    /// 5xx among the requests that are not probes, and those requests.
    pub errors: (u64, u64),
    /// p50, p95, p99 of the requests that are not probes (`None`: none).
    pub latency: Option<[f64; 3]>,
    pub bookings_created: u64,
    /// Failed `POST /v2/bookings` by reason.
    pub bookings_failed: BTreeMap<&'static str, u64>,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub dropped: u64,
    pub gauges: Gauges,
}

/// The route group of a matched route (few values: a dimension).
pub fn route_group(route: &str) -> &'static str {
    match route {
        "/health" | "/livez" | "/metrics" => "probes",
        r if r.starts_with("/v2/bookings") => "bookings",
        r if r.starts_with("/v2/slots") => "slots",
        r if r.starts_with("/v2/webhooks") => "webhooks",
        r if r.starts_with("/v2/") || r == "/openapi.json" => "api",
        "unmatched" => "unmatched",
        _ => "pages",
    }
}

pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Why a `POST /v2/bookings` failed, by its status.
pub fn booking_failure(status: u16) -> Option<&'static str> {
    match status {
        200..=399 => None,
        409 => Some("conflict"),
        429 => Some("rate_limited"),
        400 | 422 => Some("invalid"),
        400..=499 => Some("rejected"),
        _ => Some("error"),
    }
}

/// The reasons that count as booking failures for the alarm: the user did nothing wrong.
pub const FAILURE_REASONS: [&str; 3] = ["conflict", "rate_limited", "error"];

/// The interval between `prev` and `cur`.
pub fn between(prev: &Totals, cur: &Totals, gauges: Gauges, at: SystemTime) -> Snapshot {
    let before: BTreeMap<(&str, &str, u16), &Series> = prev
        .requests
        .iter()
        .map(|s| ((s.route.as_str(), s.method.as_str(), s.status), s))
        .collect();
    let mut requests = BTreeMap::new();
    let mut buckets = [0u64; BUCKETS.len()];
    let (mut errors, mut counted) = (0, 0);
    let (mut created, mut failed) = (0, BTreeMap::new());
    for s in &cur.requests {
        let p = before.get(&(s.route.as_str(), s.method.as_str(), s.status));
        let n = s.count.saturating_sub(p.map_or(0, |p| p.count));
        if n == 0 {
            continue;
        }
        let group = route_group(&s.route);
        *requests.entry((group, status_class(s.status))).or_default() += n;
        if group != "probes" {
            counted += n;
            if s.status >= 500 {
                errors += n;
            }
            for (i, b) in buckets.iter_mut().enumerate() {
                *b += s.buckets[i].saturating_sub(p.map_or(0, |p| p.buckets[i]));
            }
        }
        if s.route == "/v2/bookings" && s.method == "POST" {
            match booking_failure(s.status) {
                None => created += n,
                Some(r) => *failed.entry(r).or_default() += n,
            }
        }
    }
    let latency = (counted > 0).then(|| [0.5, 0.95, 0.99].map(|q| quantile(q, &buckets, counted)));
    Snapshot {
        at,
        requests,
        errors: (errors, counted),
        latency,
        bookings_created: created,
        bookings_failed: failed,
        cache_hits: cur.cache_hits.saturating_sub(prev.cache_hits),
        cache_misses: cur.cache_misses.saturating_sub(prev.cache_misses),
        dropped: cur.dropped.saturating_sub(prev.dropped),
        gauges,
    }
}

/// The `q` quantile of `count` observations in cumulative `buckets`, interpolated linearly
/// inside its bucket as Prometheus' `histogram_quantile` does; above the last bound, the last
/// bound.
pub fn quantile(q: f64, buckets: &[u64; BUCKETS.len()], count: u64) -> f64 {
    let rank = q * count as f64;
    let mut lower = (0.0, 0u64);
    for (i, &c) in buckets.iter().enumerate() {
        if c as f64 >= rank {
            let (lo, below) = lower;
            let inside = (c - below) as f64;
            if inside == 0.0 {
                return BUCKETS[i];
            }
            return lo + (BUCKETS[i] - lo) * (rank - below as f64) / inside;
        }
        lower = (BUCKETS[i], c);
    }
    BUCKETS[BUCKETS.len() - 1]
}

/// The backup schedule's gauges in exposition text (unlabelled samples of the names the
/// exporter posts).
pub fn backup_gauges(text: &str) -> Vec<(String, f64)> {
    super::exposition::parse(text)
        .into_iter()
        .filter(|s| {
            s.labels.is_empty()
                && s.value.is_finite()
                && crate::runtime::telemetry::BACKUP_GAUGES.contains(&s.name.as_str())
        })
        .map(|s| (s.name, s.value))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::metrics::Metrics;

    pub fn gauges() -> Gauges {
        Gauges {
            pool: PoolStatus {
                max_size: 16,
                size: 4,
                available: 1,
                waiting: 0,
            },
            queues: Some(vec![("webhooks", 3, Some(12.5)), ("ics", 0, None)]),
            calendars: None,
            webhook_latency_p95: Some(0.8),
            backup: vec![],
        }
    }

    #[test]
    fn an_interval_counts_only_what_happened_in_it() {
        let m = Metrics::default();
        m.observe("/v2/bookings", "POST", 201, 0.004);
        m.observe("/health", "GET", 200, 0.001);
        let prev = Totals {
            requests: m.totals(),
            ..Default::default()
        };
        m.observe("/v2/bookings", "POST", 201, 0.004);
        m.observe("/v2/bookings", "POST", 409, 0.002);
        m.observe("/v2/bookings", "POST", 500, 0.3);
        m.observe("/v2/bookings", "POST", 400, 0.001);
        m.observe("/v2/slots", "GET", 200, 0.02);
        m.observe("/health", "GET", 503, 0.001);
        let cur = Totals {
            requests: m.totals(),
            cache_hits: 9,
            cache_misses: 1,
            dropped: 0,
        };
        let s = between(&prev, &cur, gauges(), SystemTime::UNIX_EPOCH);
        assert_eq!(s.requests[&("bookings", "2xx")], 1);
        assert_eq!(s.requests[&("bookings", "4xx")], 2);
        assert_eq!(s.requests[&("bookings", "5xx")], 1);
        assert_eq!(s.requests[&("probes", "5xx")], 1);
        assert_eq!(s.requests[&("slots", "2xx")], 1);
        assert!(!s.requests.contains_key(&("probes", "2xx")), "nothing new");
        // Probes count in requests, not in the error share or the latency.
        assert_eq!(s.errors, (1, 5));
        assert_eq!(s.bookings_created, 1);
        assert_eq!(
            s.bookings_failed,
            BTreeMap::from([("conflict", 1), ("error", 1), ("invalid", 1)])
        );
        let [p50, p95, p99] = s.latency.unwrap();
        assert!(p50 > 0.001 && p50 <= 0.005, "{p50}");
        assert!(p95 > 0.25 && p95 <= 0.5, "{p95}");
        assert!(p99 >= p95);
        assert_eq!((s.cache_hits, s.cache_misses), (9, 1));
    }

    #[test]
    fn quantiles_interpolate_inside_their_bucket() {
        let mut b = [0u64; BUCKETS.len()];
        // 100 observations, all in (0.005, 0.01].
        for (i, x) in b.iter_mut().enumerate() {
            *x = if BUCKETS[i] >= 0.01 { 100 } else { 0 };
        }
        assert!((quantile(0.5, &b, 100) - 0.0075).abs() < 1e-9);
        assert!((quantile(0.95, &b, 100) - 0.00975).abs() < 1e-9);
        // Everything above the last bound: the last bound.
        assert_eq!(quantile(0.99, &[0; BUCKETS.len()], 10), 10.0);
    }

    #[test]
    fn backup_gauges_are_read_from_the_exposition_text() {
        let text = "# HELP calops_backup_archive_pending_age_seconds x\ncalops_backup_archive_pending_age_seconds 930.5\ncalops_backup_archive_failures_total 2\nother_metric 1\ncalops_backup_last_archived_age_seconds NaN\n";
        assert_eq!(
            backup_gauges(text),
            vec![
                ("calops_backup_archive_pending_age_seconds".into(), 930.5),
                ("calops_backup_archive_failures_total".into(), 2.0)
            ]
        );
    }
}
