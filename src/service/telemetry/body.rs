//! Snapshot -> PostMetricData bodies: pure.
//!
//! The body is Monitoring's `PostMetricDataDetails` (oci-go-sdk `monitoring`): `metricData[]`
//! of `MetricDataDetails` (`namespace`, `compartmentId`, `name`, `dimensions`, `metadata`,
//! `datapoints[{timestamp, value}]`) and `batchAtomicity`. One call takes at most
//! [`MAX_STREAMS`] metric streams.

use crate::runtime::telemetry as t;
use crate::service::telemetry::snapshot::{Snapshot, FAILURE_REASONS};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::SystemTime;

/// PostMetricData's per-call limit of unique metric streams.
pub const MAX_STREAMS: usize = 50;

/// Where and as whom the metrics are posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub namespace: String,
    pub compartment_id: String,
    /// [`t::DIMENSIONS`]: the slot and the release.
    pub dimensions: BTreeMap<String, String>,
}

/// Monitoring's timestamp form: RFC 3339, UTC, milliseconds.
pub fn timestamp(at: SystemTime) -> String {
    jiff::Timestamp::try_from(at)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn percent(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| 100.0 * part as f64 / whole as f64)
}

/// One `MetricDataDetails` per metric stream of `s`, each with one datapoint.
pub fn metric_data(s: &Snapshot, ctx: &Context) -> Vec<Value> {
    let ts = timestamp(s.at);
    let mut out = Vec::new();
    let mut push = |name: &'static str, extra: &[(&str, &str)], value: f64| {
        let Some(metric) = t::metric(name) else {
            debug_assert!(false, "{name} is not in runtime::telemetry::METRICS");
            return;
        };
        if !value.is_finite() {
            return;
        }
        let mut dims = ctx.dimensions.clone();
        for (k, v) in extra {
            dims.insert(k.to_string(), v.to_string());
        }
        out.push(json!({
            "namespace": ctx.namespace,
            "compartmentId": ctx.compartment_id,
            "name": name,
            "dimensions": dims,
            "metadata": {"unit": metric.unit},
            "datapoints": [{"timestamp": ts, "value": value}],
        }));
    };
    for ((group, class), n) in &s.requests {
        push(
            t::HTTP_REQUESTS,
            &[("statusClass", class), ("routeGroup", group)],
            *n as f64,
        );
    }
    if let Some(p) = percent(s.errors.0, s.errors.1) {
        push(t::HTTP_5XX_PERCENT, &[], p);
    }
    if let Some(l) = s.latency {
        for (name, v) in ["p50", "p95", "p99"].into_iter().zip(l) {
            push(t::HTTP_LATENCY, &[("percentile", name)], v);
        }
    }
    let failed: u64 = s.bookings_failed.values().sum();
    let attempts = s.bookings_created + failed;
    if attempts > 0 {
        push(t::BOOKINGS_CREATED, &[], s.bookings_created as f64);
        for (reason, n) in &s.bookings_failed {
            push(t::BOOKINGS_FAILED, &[("reason", reason)], *n as f64);
        }
        let counted: u64 = FAILURE_REASONS
            .iter()
            .filter_map(|r| s.bookings_failed.get(r))
            .sum();
        if let Some(p) = percent(counted, attempts) {
            push(t::BOOKING_FAILURE_PERCENT, &[], p);
        }
    }
    let g = &s.gauges;
    for (queue, depth, oldest) in g.queues.iter().flatten() {
        push(t::QUEUE_DEPTH, &[("queue", queue)], *depth as f64);
        if let Some(age) = oldest {
            push(t::QUEUE_OLDEST, &[("queue", queue)], *age);
        }
    }
    if let Some((age, failing)) = g.calendars {
        push(t::CALENDAR_SYNC_AGE, &[], age);
        push(t::CALENDARS_FAILING, &[], failing as f64);
    }
    if let Some(p95) = g.webhook_latency_p95 {
        push(t::WEBHOOK_LATENCY_P95, &[], p95);
    }
    if let Some(p) = percent(s.cache_hits, s.cache_hits + s.cache_misses) {
        push(t::SLOT_CACHE_HIT_PERCENT, &[], p);
    }
    let in_use = g.pool.size.saturating_sub(g.pool.available) as u64;
    if let Some(p) = percent(in_use, g.pool.max_size as u64) {
        push(t::DB_POOL_SATURATION, &[], p);
    }
    push(t::DB_POOL_WAITING, &[], g.pool.waiting as f64);
    push(t::METRICS_DROPPED, &[], s.dropped as f64);
    for (name, v) in &g.backup {
        if let Some(name) = t::BACKUP_GAUGES.iter().find(|n| *n == name) {
            push(name, &[], *v);
        }
    }
    out
}

/// The PostMetricData body for up to [`MAX_STREAMS`] of [`metric_data`]'s items.
pub fn body(items: Vec<Value>) -> Value {
    debug_assert!(items.len() <= MAX_STREAMS);
    json!({"metricData": items, "batchAtomicity": "NON_ATOMIC"})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::store::PoolStatus;
    use crate::service::telemetry::snapshot::Gauges;

    fn ctx() -> Context {
        Context {
            namespace: "calops".into(),
            compartment_id: "ocid1.compartment.oc1..c".into(),
            dimensions: BTreeMap::from([
                ("slot".into(), "blue".into()),
                ("release".into(), "0123456789ab".into()),
            ]),
        }
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            at: SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_765_000_000_123),
            requests: BTreeMap::from([(("bookings", "2xx"), 97), (("bookings", "5xx"), 3)]),
            errors: (3, 100),
            latency: Some([0.01, 0.2, 0.9]),
            bookings_created: 90,
            bookings_failed: BTreeMap::from([("conflict", 2), ("invalid", 5), ("error", 3)]),
            cache_hits: 30,
            cache_misses: 10,
            dropped: 4,
            gauges: Gauges {
                pool: PoolStatus {
                    max_size: 16,
                    size: 8,
                    available: 4,
                    waiting: 1,
                },
                queues: Some(vec![("webhooks", 1200, Some(61.0)), ("ics", 2, None)]),
                calendars: Some((125.0, 1)),
                webhook_latency_p95: Some(6.5),
                backup: vec![("calops_backup_archive_pending_age_seconds".into(), 930.0)],
            },
        }
    }

    fn find<'a>(items: &'a [Value], name: &str, dim: Option<(&str, &str)>) -> &'a Value {
        items
            .iter()
            .find(|i| i["name"] == name && dim.is_none_or(|(k, v)| i["dimensions"][k] == v))
            .unwrap_or_else(|| panic!("no {name} {dim:?}"))
    }

    #[test]
    fn every_item_is_well_formed_and_named_in_the_shared_list() {
        let items = metric_data(&snapshot(), &ctx());
        for i in &items {
            let name = i["name"].as_str().unwrap();
            let m = t::metric(name).unwrap_or_else(|| panic!("{name} not in METRICS"));
            assert_eq!(i["namespace"], "calops");
            assert_eq!(i["compartmentId"], "ocid1.compartment.oc1..c");
            assert_eq!(i["dimensions"]["slot"], "blue");
            assert_eq!(i["dimensions"]["release"], "0123456789ab");
            let dims = i["dimensions"].as_object().unwrap();
            assert_eq!(dims.len(), 2 + m.dimensions.len(), "{i}");
            for d in m.dimensions {
                assert!(dims.contains_key(*d), "{name} lacks {d}");
            }
            assert_eq!(i["metadata"]["unit"], m.unit);
            let dp = &i["datapoints"][0];
            assert_eq!(dp["timestamp"], "2025-12-06T05:46:40.123Z");
            assert!(dp["value"].as_f64().unwrap().is_finite());
        }
        assert_eq!(
            find(&items, t::HTTP_5XX_PERCENT, None)["datapoints"][0]["value"],
            3.0
        );
        // Conflicts and errors count; bad input does not: 5 of 100 attempts.
        assert_eq!(
            find(&items, t::BOOKING_FAILURE_PERCENT, None)["datapoints"][0]["value"],
            5.0
        );
        assert_eq!(
            find(&items, t::HTTP_LATENCY, Some(("percentile", "p95")))["datapoints"][0]["value"],
            0.2
        );
        assert_eq!(
            find(&items, t::QUEUE_DEPTH, Some(("queue", "webhooks")))["datapoints"][0]["value"],
            1200.0
        );
        assert_eq!(
            find(&items, t::DB_POOL_SATURATION, None)["datapoints"][0]["value"],
            25.0
        );
        assert_eq!(
            find(&items, t::SLOT_CACHE_HIT_PERCENT, None)["datapoints"][0]["value"],
            75.0
        );
        assert_eq!(
            find(&items, t::METRICS_DROPPED, None)["datapoints"][0]["value"],
            4.0
        );
        assert_eq!(
            find(&items, t::BACKUP_PENDING_AGE, None)["datapoints"][0]["value"],
            930.0
        );
        let b = body(items[..MAX_STREAMS.min(items.len())].to_vec());
        assert_eq!(b["batchAtomicity"], "NON_ATOMIC");
    }

    #[test]
    fn a_quiet_interval_posts_no_ratio_it_cannot_compute() {
        let mut s = snapshot();
        s.requests.clear();
        s.errors = (0, 0);
        s.latency = None;
        s.bookings_created = 0;
        s.bookings_failed.clear();
        s.cache_hits = 0;
        s.cache_misses = 0;
        s.gauges.queues = None;
        let names: Vec<_> = metric_data(&s, &ctx())
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect();
        for absent in [
            t::HTTP_5XX_PERCENT,
            t::BOOKING_FAILURE_PERCENT,
            t::HTTP_LATENCY,
            t::SLOT_CACHE_HIT_PERCENT,
            t::QUEUE_DEPTH,
        ] {
            assert!(!names.iter().any(|n| n == absent), "{absent} in {names:?}");
        }
        assert!(names.iter().any(|n| n == t::DB_POOL_SATURATION));
    }
}
