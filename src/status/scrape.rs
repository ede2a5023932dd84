//! The local target's figures, from the running service's `/metrics` (Prometheus text on its
//! private listener).
//!
//! A counter only says what happened since the service started, so `status` reads `/metrics`
//! twice, [`GAP`] apart: the first reading gives the totals since start (and the average rate
//! over the uptime), the difference gives the last second's rate. Cheap (two local requests and
//! a one-second wait) and honest: no window the service does not keep is pretended. The
//! arithmetic is the exporter's ([`crate::service::telemetry::snapshot::between`]), so local
//! and OCI figures count the same things.

use super::figures::{Queue, StatusFigures, Traffic};
use crate::service::metrics::{Series, BUCKETS};
use crate::service::store::PoolStatus;
use crate::service::telemetry::exposition::{parse, Sample};
use crate::service::telemetry::snapshot::{self, Gauges, Totals};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// The time between the two readings.
pub const GAP: Duration = Duration::from_secs(1);

/// The request histograms of one reading, as the exporter reads them from memory.
fn series(samples: &[Sample]) -> Vec<Series> {
    let mut by: BTreeMap<(String, String, u16), Series> = BTreeMap::new();
    for s in samples {
        let histogram = match s.name.as_str() {
            "calops_http_request_duration_seconds_bucket" => true,
            "calops_http_request_duration_seconds_count" => false,
            _ => continue,
        };
        let l = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
        let Ok(status) = l("status").parse::<u16>() else {
            continue;
        };
        let e = by
            .entry((l("route"), l("method"), status))
            .or_insert_with(|| Series {
                route: l("route"),
                method: l("method"),
                status,
                buckets: [0; BUCKETS.len()],
                count: 0,
            });
        if !histogram {
            e.count = s.value as u64;
        } else if let Some(i) = s
            .labels
            .get("le")
            .and_then(|le| le.parse::<f64>().ok())
            .and_then(|le| BUCKETS.iter().position(|b| (b - le).abs() < 1e-12))
        {
            e.buckets[i] = s.value as u64;
        }
    }
    by.into_values().collect()
}

fn value(samples: &[Sample], name: &str) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && s.labels.is_empty())
        .map(|s| s.value)
        .filter(|v| v.is_finite())
}

fn totals(samples: &[Sample]) -> Totals {
    let n = |name| value(samples, name).unwrap_or(0.0) as u64;
    Totals {
        requests: series(samples),
        cache_hits: n("calops_slot_cache_hits_total"),
        cache_misses: n("calops_slot_cache_misses_total"),
        dropped: 0,
    }
}

/// The traffic of the interval between two readings (`prev` empty: since start).
fn traffic(window: &str, seconds: f64, prev: &Totals, cur: &Totals) -> Traffic {
    let no_gauges = Gauges {
        pool: PoolStatus {
            max_size: 0,
            size: 0,
            available: 0,
            waiting: 0,
        },
        queues: None,
        calendars: None,
        webhook_latency_p95: None,
        backup: Vec::new(),
    };
    let s = snapshot::between(prev, cur, no_gauges, SystemTime::UNIX_EPOCH);
    let mut t = Traffic::new(window, seconds, s.errors.1, s.errors.0);
    t.latency_p95_seconds = s.latency.map(|l| l[1]);
    t.bookings_created = s.bookings_created;
    t.bookings_failed = s
        .bookings_failed
        .into_iter()
        .map(|(r, n)| (r.to_string(), n))
        .collect();
    t
}

/// The figures from two readings of `/metrics` taken `gap` apart.
pub fn figures(first: &str, second: &str, gap: Duration) -> StatusFigures {
    let (a, b) = (parse(first), parse(second));
    let uptime = value(&a, "calops_uptime_seconds").unwrap_or(0.0);
    let (ta, tb) = (totals(&a), totals(&b));
    let gap_s = gap.as_secs_f64();
    let traffic = vec![
        traffic("since start", uptime, &Totals::default(), &ta),
        traffic(&format!("last {}s", gap.as_secs()), gap_s, &ta, &tb),
    ];
    // Gauges from the newer reading.
    let g = |name| value(&b, name);
    let mut queues = BTreeMap::new();
    for (queue, depth, oldest) in [
        (
            "webhooks",
            "calops_webhook_deliveries_pending",
            Some("calops_webhook_oldest_pending_seconds"),
        ),
        ("ics", "calops_ics_writes_pending", None),
        ("calendar_writes", "calops_calendar_writes_pending", None),
        // The mail outbox, when the service has one.
        (
            "mail",
            "calops_mail_pending",
            Some("calops_mail_oldest_pending_seconds"),
        ),
    ] {
        if let Some(d) = g(depth) {
            queues.insert(
                queue.to_string(),
                Queue {
                    depth: d.max(0.0) as u64,
                    oldest_seconds: oldest.and_then(g),
                },
            );
        }
    }
    let connected = g("calops_calendars_selected").is_some_and(|n| n > 0.0);
    let hits = tb.cache_hits + tb.cache_misses;
    let pool = (
        g("calops_db_pool_max_connections"),
        g("calops_db_pool_connections"),
        g("calops_db_pool_idle_connections"),
    );
    StatusFigures {
        source: "metrics",
        traffic,
        queues,
        calendar_sync_age_seconds: g("calops_calendar_sync_age_seconds").filter(|_| connected),
        calendars_failing: g("calops_calendars_failing")
            .filter(|_| connected)
            .map(|n| n as u64),
        slot_cache_hit_percent: (hits > 0).then(|| 100.0 * tb.cache_hits as f64 / hits as f64),
        db_pool_saturation_percent: match pool {
            (Some(max), Some(size), Some(idle)) if max > 0.0 => {
                Some(100.0 * (size - idle).max(0.0) / max)
            }
            _ => None,
        },
        backups: crate::runtime::telemetry::BACKUP_GAUGES
            .iter()
            .filter_map(|n| Some((n.to_string(), g(n)?)))
            .collect(),
    }
}

/// Read `/metrics` of the service whose private listener is `base` twice, [`GAP`] apart.
pub async fn read(http: &reqwest::Client, base: &str) -> anyhow::Result<StatusFigures> {
    let url = format!("{}/metrics", base.trim_end_matches('/'));
    let get = || async {
        let r = http
            .get(&url)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("GET {url}: {}", e.without_url()))?;
        if !r.status().is_success() {
            anyhow::bail!("GET {url}: {}", r.status());
        }
        Ok::<_, anyhow::Error>(r.text().await?)
    };
    let first = get().await?;
    tokio::time::sleep(GAP).await;
    let second = get().await?;
    Ok(figures(&first, &second, GAP))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::metrics::Metrics;

    fn render(m: &Metrics, uptime: f64, extra: &str) -> String {
        let pool = PoolStatus {
            max_size: 16,
            size: 6,
            available: 2,
            waiting: 0,
        };
        format!(
            "{}{}{}{extra}",
            m.render(pool, uptime),
            Metrics::render_slot_cache(crate::service::store::cache::Stats {
                active: true,
                hits: 30,
                misses: 10,
            }),
            Metrics::render_backlog(crate::service::store::webhooks::Backlog {
                webhook_pending: 4,
                webhook_oldest_pending_seconds: 61.5,
                ics_pending: 1,
            })
        )
    }

    /// The service's own exposition text, read back: totals since start, the last second's
    /// difference, gauges and backlogs, and the mail queue only when the service has one.
    #[test]
    fn figures_count_what_the_service_did() {
        let m = Metrics::default();
        m.observe("/v2/bookings", "POST", 201, 0.004);
        m.observe("/v2/bookings", "POST", 409, 0.002);
        m.observe("/health", "GET", 200, 0.001);
        let first = render(&m, 100.0, "");
        m.observe("/v2/bookings", "POST", 201, 0.004);
        m.observe("/v2/bookings", "POST", 500, 0.3);
        m.observe("/v2/slots", "GET", 200, 0.02);
        let second = render(
            &m,
            101.0,
            "calops_mail_pending 2\ncalops_mail_oldest_pending_seconds 30\n",
        );
        let f = figures(&first, &second, GAP);
        let [start, last] = &f.traffic[..] else {
            panic!("{f:?}")
        };
        assert_eq!(
            (start.window.as_str(), start.seconds),
            ("since start", 100.0)
        );
        assert_eq!(
            (start.requests, start.errors_5xx),
            (2, 0),
            "probes not counted"
        );
        assert_eq!(start.bookings_created, 1);
        assert_eq!(start.bookings_failed["conflict"], 1);
        assert_eq!(last.window, "last 1s");
        assert_eq!((last.requests, last.errors_5xx), (3, 1));
        assert_eq!(last.error_percent.map(|p| p.round()), Some(33.0));
        assert_eq!(last.bookings_created, 1);
        assert_eq!(last.bookings_failed["error"], 1);
        assert!(last.latency_p95_seconds.unwrap() > 0.25);
        assert_eq!(f.queues["webhooks"].depth, 4);
        assert_eq!(f.queues["webhooks"].oldest_seconds, Some(61.5));
        assert_eq!(f.queues["mail"].oldest_seconds, Some(30.0));
        assert_eq!(f.slot_cache_hit_percent, Some(75.0));
        assert_eq!(f.db_pool_saturation_percent, Some(25.0));
        assert_eq!(f.calendar_sync_age_seconds, None, "no calendar connected");
        // Without the mail metrics, no mail queue.
        let f = figures(&first, &first, GAP);
        assert!(!f.queues.contains_key("mail"));
        assert_eq!(f.traffic[1].requests, 0);
    }
}
