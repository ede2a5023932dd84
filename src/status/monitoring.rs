//! The OCI target's figures, from OCI Monitoring: MQL over the metrics the service's exporter
//! posts ([`crate::runtime::telemetry::METRICS`]), filtered on the live release's slot and
//! release dimensions, over the last [`WINDOW`]; and the stack's alarms that are firing.
//!
//! Counters are posted per interval (one datapoint a minute per replica), so a window's count
//! is the sum of its 1-minute sums; gauges are the newest 1-minute maximum; latency p95 is the
//! highest 1-minute p95 of the window (Monitoring keeps percentiles the exporter computed, not
//! histograms, so percentiles of different minutes cannot be combined exactly).

use super::figures::{Queue, StatusFigures, Traffic};
use crate::oci::client::OciClient;
use crate::oci::monitoring::{AlarmStatus, MetricData, SummarizeDetails};
use crate::runtime::telemetry as t;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// The window the figures cover.
pub const WINDOW: Duration = Duration::from_secs(300);

/// What one query's answer becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    /// Requests by status class and route group (sums).
    Requests,
    LatencyP95,
    BookingsCreated,
    /// By reason (sums).
    BookingsFailed,
    /// By queue (newest).
    QueueDepth,
    QueueOldest,
    CalendarSyncAge,
    CalendarsFailing,
    SlotCacheHit,
    DbPoolSaturation,
    /// A backup gauge (newest), by name.
    Backup(&'static str),
}

/// The live release's dimensions, as the exporter sets them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    pub slot: String,
    pub release: String,
}

impl Live {
    fn filter(&self, extra: &[(&str, &str)]) -> String {
        let mut parts = vec![
            format!("slot = \"{}\"", self.slot),
            format!("release = \"{}\"", self.release),
        ];
        parts.extend(extra.iter().map(|(k, v)| format!("{k} = \"{v}\"")));
        format!("{{{}}}", parts.join(", "))
    }
}

/// The MQL queries of the figures (no condition: metric queries, not alarms).
pub fn queries(live: &Live) -> Vec<(Figure, String)> {
    let q = |name: &str, extra: &[(&str, &str)], tail: &str| {
        format!("{name}[1m]{}{tail}", live.filter(extra))
    };
    let mut out = vec![
        (
            Figure::Requests,
            q(
                t::HTTP_REQUESTS,
                &[],
                ".groupBy(statusClass, routeGroup).sum()",
            ),
        ),
        (
            Figure::LatencyP95,
            q(t::HTTP_LATENCY, &[("percentile", "p95")], ".max()"),
        ),
        (
            Figure::BookingsCreated,
            q(t::BOOKINGS_CREATED, &[], ".sum()"),
        ),
        (
            Figure::BookingsFailed,
            q(t::BOOKINGS_FAILED, &[], ".groupBy(reason).sum()"),
        ),
        (
            Figure::QueueDepth,
            q(t::QUEUE_DEPTH, &[], ".groupBy(queue).max()"),
        ),
        (
            Figure::QueueOldest,
            q(t::QUEUE_OLDEST, &[], ".groupBy(queue).max()"),
        ),
        (
            Figure::CalendarSyncAge,
            q(t::CALENDAR_SYNC_AGE, &[], ".max()"),
        ),
        (
            Figure::CalendarsFailing,
            q(t::CALENDARS_FAILING, &[], ".max()"),
        ),
        (
            Figure::SlotCacheHit,
            q(t::SLOT_CACHE_HIT_PERCENT, &[], ".mean()"),
        ),
        (
            Figure::DbPoolSaturation,
            q(t::DB_POOL_SATURATION, &[], ".max()"),
        ),
    ];
    for name in t::BACKUP_GAUGES {
        out.push((Figure::Backup(name), q(name, &[], ".max()")));
    }
    out
}

fn sum(streams: &[MetricData]) -> f64 {
    streams
        .iter()
        .flat_map(|s| &s.aggregated_datapoints)
        .map(|p| p.value)
        .sum()
}

/// The value of the newest datapoint among `streams` (timestamps are RFC 3339 in UTC, so
/// their text sorts by time).
fn newest(streams: &[MetricData]) -> Option<f64> {
    streams
        .iter()
        .flat_map(|s| &s.aggregated_datapoints)
        .max_by(|a, b| a.timestamp.cmp(&b.timestamp))
        .map(|p| p.value)
}

fn highest(streams: &[MetricData]) -> Option<f64> {
    streams
        .iter()
        .flat_map(|s| &s.aggregated_datapoints)
        .map(|p| p.value)
        .reduce(f64::max)
}

fn mean(streams: &[MetricData]) -> Option<f64> {
    let v: Vec<f64> = streams
        .iter()
        .flat_map(|s| &s.aggregated_datapoints)
        .map(|p| p.value)
        .collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// `streams` by the value of their dimension `dim`.
fn by(streams: &[MetricData], dim: &str) -> BTreeMap<String, Vec<MetricData>> {
    let mut out: BTreeMap<String, Vec<MetricData>> = BTreeMap::new();
    for s in streams {
        let k = s.dimensions.get(dim).cloned().unwrap_or_default();
        out.entry(k).or_default().push(s.clone());
    }
    out
}

/// The figures from the answers to [`queries`].
pub fn figures(answers: &[(Figure, Vec<MetricData>)], window: Duration) -> StatusFigures {
    let get = |f: Figure| {
        answers
            .iter()
            .filter(|(g, _)| *g == f)
            .flat_map(|(_, s)| s.iter().cloned())
            .collect::<Vec<_>>()
    };
    let (mut requests, mut errors) = (0u64, 0u64);
    for s in get(Figure::Requests) {
        if s.dimensions.get("routeGroup").map(String::as_str) == Some("probes") {
            continue;
        }
        let n = sum(std::slice::from_ref(&s)).round() as u64;
        requests += n;
        if s.dimensions.get("statusClass").map(String::as_str) == Some("5xx") {
            errors += n;
        }
    }
    let minutes = window.as_secs() / 60;
    let mut traffic = Traffic::new(
        format!("last {minutes}m"),
        window.as_secs_f64(),
        requests,
        errors,
    );
    traffic.latency_p95_seconds = highest(&get(Figure::LatencyP95));
    traffic.bookings_created = sum(&get(Figure::BookingsCreated)).round() as u64;
    traffic.bookings_failed = by(&get(Figure::BookingsFailed), "reason")
        .into_iter()
        .map(|(r, s)| (r, sum(&s).round() as u64))
        .filter(|(_, n)| *n > 0)
        .collect();
    let oldest = by(&get(Figure::QueueOldest), "queue");
    let queues = by(&get(Figure::QueueDepth), "queue")
        .into_iter()
        .filter_map(|(q, s)| {
            let depth = newest(&s)?;
            Some((
                q.clone(),
                Queue {
                    depth: depth.max(0.0).round() as u64,
                    oldest_seconds: oldest.get(&q).and_then(|s| newest(s)),
                },
            ))
        })
        .collect();
    StatusFigures {
        source: "monitoring",
        traffic: vec![traffic],
        queues,
        calendar_sync_age_seconds: newest(&get(Figure::CalendarSyncAge)),
        calendars_failing: newest(&get(Figure::CalendarsFailing)).map(|n| n.round() as u64),
        slot_cache_hit_percent: mean(&get(Figure::SlotCacheHit)),
        db_pool_saturation_percent: newest(&get(Figure::DbPoolSaturation)),
        backups: answers
            .iter()
            .filter_map(|(f, s)| match f {
                Figure::Backup(name) => Some((name.to_string(), newest(s)?)),
                _ => None,
            })
            .collect(),
    }
}

/// One of the stack's alarms that is firing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Firing {
    pub name: String,
    pub severity: String,
    pub since: Option<String>,
    pub summary: Option<String>,
}

/// The stack's alarms (display names `<stack>-<key>`, as the monitoring module names them)
/// among `all` that are firing, by name.
pub fn firing(all: &[AlarmStatus], stack: &str) -> Vec<Firing> {
    let prefix = format!("{stack}-");
    let mut out: Vec<Firing> = all
        .iter()
        .filter(|a| a.display_name.starts_with(&prefix) && a.status == "FIRING")
        .map(|a| Firing {
            name: a.display_name.clone(),
            severity: a.severity.clone(),
            since: a.timestamp_triggered.clone(),
            summary: a.alarm_summary.clone(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Ask Monitoring for the figures of `live` over the last [`WINDOW`] (all queries at once).
pub async fn read(
    client: &OciClient,
    compartment_id: &str,
    namespace: &str,
    live: &Live,
) -> anyhow::Result<StatusFigures> {
    let end = SystemTime::now();
    let start = end - WINDOW;
    let ts = crate::service::telemetry::body::timestamp;
    let calls = queries(live).into_iter().map(|(figure, query)| {
        let details = SummarizeDetails {
            namespace: namespace.to_string(),
            query,
            start_time: ts(start),
            end_time: ts(end),
            resolution: "1m".into(),
        };
        async move {
            let answer = client
                .monitoring()
                .summarize(compartment_id, &details)
                .await
                .map_err(|e| anyhow::anyhow!("SummarizeMetricsData `{}`: {e}", details.query))?;
            Ok::<_, anyhow::Error>((figure, answer))
        }
    });
    let answers = futures::future::try_join_all(calls).await?;
    Ok(figures(&answers, WINDOW))
}

/// The stack's firing alarms (ListAlarmsStatus in the stack's compartment).
pub async fn read_alarms(
    client: &OciClient,
    compartment_id: &str,
    stack: &str,
) -> anyhow::Result<Vec<Firing>> {
    let all = client
        .monitoring()
        .alarms_status(compartment_id)
        .await
        .map_err(|e| anyhow::anyhow!("ListAlarmsStatus: {e}"))?;
    Ok(firing(&all, stack))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::monitoring::Datapoint;

    fn stream(name: &str, dims: &[(&str, &str)], points: &[(&str, f64)]) -> MetricData {
        MetricData {
            name: name.into(),
            dimensions: dims
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            aggregated_datapoints: points
                .iter()
                .map(|(t, v)| Datapoint {
                    timestamp: t.to_string(),
                    value: *v,
                })
                .collect(),
        }
    }

    #[test]
    fn queries_filter_on_the_live_slot_and_release_and_name_posted_metrics() {
        let live = Live {
            slot: "green".into(),
            release: "0123456789ab".into(),
        };
        let qs = queries(&live);
        assert_eq!(
            qs[0].1,
            "calops_http_requests[1m]{slot = \"green\", release = \"0123456789ab\"}.groupBy(statusClass, routeGroup).sum()"
        );
        for (_, q) in &qs {
            let name = q.split('[').next().unwrap();
            assert!(t::metric(name).is_some(), "{name} is not posted");
            assert!(
                q.contains("slot = \"green\", release = \"0123456789ab\""),
                "{q}"
            );
            assert!(
                !q.contains(['>', '<']),
                "a metric query has no condition: {q}"
            );
        }
    }

    #[test]
    fn counters_are_summed_and_gauges_are_the_newest_minute() {
        let m1 = "2026-12-06T07:01:00.000Z";
        let m2 = "2026-12-06T07:02:00.000Z";
        let answers = vec![
            (
                Figure::Requests,
                vec![
                    stream(
                        t::HTTP_REQUESTS,
                        &[("statusClass", "2xx"), ("routeGroup", "bookings")],
                        &[(m1, 40.0), (m2, 50.0)],
                    ),
                    stream(
                        t::HTTP_REQUESTS,
                        &[("statusClass", "5xx"), ("routeGroup", "bookings")],
                        &[(m2, 10.0)],
                    ),
                    stream(
                        t::HTTP_REQUESTS,
                        &[("statusClass", "2xx"), ("routeGroup", "probes")],
                        &[(m2, 500.0)],
                    ),
                ],
            ),
            (
                Figure::LatencyP95,
                vec![stream(t::HTTP_LATENCY, &[], &[(m1, 0.2), (m2, 0.05)])],
            ),
            (
                Figure::BookingsFailed,
                vec![
                    stream(
                        t::BOOKINGS_FAILED,
                        &[("reason", "conflict")],
                        &[(m1, 2.0), (m2, 1.0)],
                    ),
                    stream(t::BOOKINGS_FAILED, &[("reason", "invalid")], &[(m1, 0.0)]),
                ],
            ),
            (
                Figure::QueueDepth,
                vec![stream(
                    t::QUEUE_DEPTH,
                    &[("queue", "webhooks")],
                    &[(m2, 3.0), (m1, 900.0)],
                )],
            ),
            (
                Figure::QueueOldest,
                vec![stream(
                    t::QUEUE_OLDEST,
                    &[("queue", "webhooks")],
                    &[(m2, 12.0)],
                )],
            ),
            (
                Figure::SlotCacheHit,
                vec![stream("x", &[], &[(m1, 80.0), (m2, 90.0)])],
            ),
            (Figure::Backup(t::BACKUP_PENDING_AGE), vec![]),
        ];
        let f = figures(&answers, WINDOW);
        let tr = &f.traffic[0];
        assert_eq!(tr.window, "last 5m");
        assert_eq!(
            (tr.requests, tr.errors_5xx),
            (100, 10),
            "probes not counted"
        );
        assert_eq!(tr.error_percent, Some(10.0));
        assert_eq!(tr.latency_p95_seconds, Some(0.2), "the worst minute");
        assert_eq!(tr.bookings_failed, BTreeMap::from([("conflict".into(), 3)]));
        assert_eq!(f.queues["webhooks"].depth, 3, "the newest minute");
        assert_eq!(f.queues["webhooks"].oldest_seconds, Some(12.0));
        assert_eq!(f.slot_cache_hit_percent, Some(85.0));
        assert_eq!(f.calendar_sync_age_seconds, None);
        assert!(f.backups.is_empty(), "nothing posted, nothing shown");
    }

    #[test]
    fn only_the_stacks_firing_alarms_are_listed() {
        let a = |name: &str, status: &str| AlarmStatus {
            id: format!("ocid1.alarm..{name}"),
            display_name: name.into(),
            severity: "CRITICAL".into(),
            status: status.into(),
            timestamp_triggered: Some("2026-12-06T07:00:00Z".into()),
            alarm_summary: None,
        };
        let all = [
            a("calops-prod-au-service-5xx", "OK"),
            a("calops-prod-au-booking-failures", "FIRING"),
            a("calops-dev-booking-failures", "FIRING"),
            a("calops-prod-au-queue-depth", "SUSPENDED"),
        ];
        let f = firing(&all, "calops-prod-au");
        let names: Vec<&str> = f.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["calops-prod-au-booking-failures"]);
    }
}
