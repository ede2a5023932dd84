//! Prometheus text exposition: request latency histograms by route, method and status, and
//! connection pool usage.

use crate::service::store::PoolStatus;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Upper bounds (seconds) of the latency buckets.
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), Histogram>>,
    /// 429 answers by rate-limit class.
    rate_limited: Mutex<BTreeMap<String, u64>>,
    /// Bookings made by `POST /v2/bookings`: in one statement, and in a transaction.
    booked_direct: std::sync::atomic::AtomicU64,
    booked_general: std::sync::atomic::AtomicU64,
    /// What this process's mail workers saw (`service::mail::delivery`).
    pub mail: MailStatus,
    /// What the OCI Monitoring exporter did (all zero when it is off).
    pub export: ExportCounters,
}

/// Mail sending in this process: counters for /metrics and the last transport error for
/// /health (degraded while the latest attempt failed).
#[derive(Debug, Default)]
pub struct MailStatus {
    /// Whether this process has a mail transport.
    pub configured: std::sync::atomic::AtomicBool,
    pub sent: std::sync::atomic::AtomicU64,
    pub failed: std::sync::atomic::AtomicU64,
    /// The error of the latest attempt, `None` after a success.
    pub last_error: Mutex<Option<String>>,
}

impl MailStatus {
    /// Record one attempt: `Ok` sent, `Err` why not.
    pub fn record(&self, outcome: Result<(), &str>) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut last = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
        match outcome {
            Ok(()) => {
                self.sent.fetch_add(1, Relaxed);
                *last = None;
            }
            Err(e) => {
                self.failed.fetch_add(1, Relaxed);
                *last = Some(e.to_string());
            }
        }
    }

    /// Count a message the server refused for good (or that could not be written): that
    /// recipient's problem, not the transport's, so health is not affected.
    pub fn refused(&self) {
        self.failed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The latest attempt's error, if it failed.
    pub fn failing(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The mail exposition text: this process's counters and the outbox across replicas.
    pub fn render(&self, b: Option<crate::service::store::mail::MailBacklog>) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let mut out = format!(
            "# HELP calops_mail_sent_total Messages this process handed to the mail transport.\n# TYPE calops_mail_sent_total counter\ncalops_mail_sent_total {}\n# HELP calops_mail_failures_total Send attempts of this process that failed.\n# TYPE calops_mail_failures_total counter\ncalops_mail_failures_total {}\n",
            self.sent.load(Relaxed),
            self.failed.load(Relaxed)
        );
        if let Some(b) = b {
            let _ = write!(
                out,
                "# HELP calops_mail_pending Messages due and not yet sent, and booking changes not yet made into messages (all replicas).\n# TYPE calops_mail_pending gauge\ncalops_mail_pending {}\n# HELP calops_mail_oldest_pending_seconds How long the oldest due message has waited.\n# TYPE calops_mail_oldest_pending_seconds gauge\ncalops_mail_oldest_pending_seconds {:.3}\n# HELP calops_mail_dead Messages given up on: refused by the server or out of attempts.\n# TYPE calops_mail_dead gauge\ncalops_mail_dead {}\n# HELP calops_mail_reminders_scheduled Reminders waiting for their time.\n# TYPE calops_mail_reminders_scheduled gauge\ncalops_mail_reminders_scheduled {}\n",
                b.pending, b.oldest_pending_seconds, b.dead, b.scheduled
            );
        }
        out
    }
}

/// The exporter's counters (`service::telemetry`), in `/metrics` as
/// `calops_metrics_export_*_total`.
#[derive(Debug, Default)]
pub struct ExportCounters {
    /// Metric streams posted and accepted.
    pub posted: std::sync::atomic::AtomicU64,
    /// Metric streams dropped: the queue was full, or Monitoring failed or did not answer.
    pub dropped: std::sync::atomic::AtomicU64,
    /// PostMetricData calls that failed or timed out.
    pub failures: std::sync::atomic::AtomicU64,
}

/// One request series' cumulative counts (see [`Metrics::totals`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub route: String,
    pub method: String,
    pub status: u16,
    /// Cumulative, per bucket of [`BUCKETS`].
    pub buckets: [u64; BUCKETS.len()],
    pub count: u64,
}

impl Metrics {
    /// Count a booking made by `POST /v2/bookings`, by the path it took.
    pub fn booked(&self, direct: bool) {
        let c = if direct {
            &self.booked_direct
        } else {
            &self.booked_general
        };
        c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Bookings made by `POST /v2/bookings` so far, both paths (mail pacing watches it move).
    pub fn bookings_made(&self) -> u64 {
        use std::sync::atomic::Ordering::Relaxed;
        self.booked_direct.load(Relaxed) + self.booked_general.load(Relaxed)
    }

    /// Every request series' cumulative counts, for the exporter's deltas.
    pub fn totals(&self) -> Vec<Series> {
        let map = self.requests.lock().map(|m| m.clone()).unwrap_or_default();
        map.into_iter()
            .map(|((route, method, status), h)| Series {
                route,
                method,
                status,
                buckets: h.counts,
                count: h.count,
            })
            .collect()
    }

    /// The exporter's counters as exposition text.
    pub fn render_export(&self) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let e = &self.export;
        format!(
            "# HELP calops_metrics_export_posted_total Metric streams posted to OCI Monitoring.\n# TYPE calops_metrics_export_posted_total counter\ncalops_metrics_export_posted_total {}\n# HELP calops_metrics_export_dropped_total Metric streams dropped (queue full, or Monitoring failed or did not answer in time).\n# TYPE calops_metrics_export_dropped_total counter\ncalops_metrics_export_dropped_total {}\n# HELP calops_metrics_export_failures_total PostMetricData calls that failed or timed out.\n# TYPE calops_metrics_export_failures_total counter\ncalops_metrics_export_failures_total {}\n",
            e.posted.load(Relaxed),
            e.dropped.load(Relaxed),
            e.failures.load(Relaxed)
        )
    }

    /// Count one request refused with 429 by the rate limiter.
    pub fn rate_limited(&self, class: &str) {
        if let Ok(mut m) = self.rate_limited.lock() {
            *m.entry(class.to_string()).or_default() += 1;
        }
    }

    /// The rate-limit counters' exposition text: 429s by class (both classes always listed).
    pub fn render_rate_limits(&self, redis_fallbacks: u64) -> String {
        let mut out = String::from(
            "# HELP calops_rate_limited_total Requests refused with 429 by the rate limiter.\n# TYPE calops_rate_limited_total counter\n",
        );
        let snapshot = self
            .rate_limited
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default();
        for class in ["availability", "bookings"] {
            let n = snapshot.get(class).copied().unwrap_or(0);
            let _ = writeln!(out, "calops_rate_limited_total{{class=\"{class}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP calops_rate_limit_redis_fallbacks_total Rate-limit decisions made in-process because Redis did not answer.\n# TYPE calops_rate_limit_redis_fallbacks_total counter\ncalops_rate_limit_redis_fallbacks_total {redis_fallbacks}"
        );
        out
    }

    /// The outbox backlogs' exposition text (see `Store::backlog`).
    pub fn render_backlog(b: crate::service::store::webhooks::Backlog) -> String {
        format!(
            "# HELP calops_webhook_deliveries_pending Webhook deliveries not yet delivered or given up (all replicas).\n# TYPE calops_webhook_deliveries_pending gauge\ncalops_webhook_deliveries_pending {}\n# HELP calops_webhook_oldest_pending_seconds Age of the oldest pending webhook delivery.\n# TYPE calops_webhook_oldest_pending_seconds gauge\ncalops_webhook_oldest_pending_seconds {:.3}\n# HELP calops_ics_writes_pending Calendar files waiting to be written to object storage (all replicas).\n# TYPE calops_ics_writes_pending gauge\ncalops_ics_writes_pending {}\n",
            b.webhook_pending, b.webhook_oldest_pending_seconds, b.ics_pending
        )
    }

    /// The booking batches' exposition text (see `store::batch`): batches, the bookings they
    /// stored, and the bookings handed back to book alone.
    pub fn render_batches((batches, stored, handed_back): (u64, u64, u64)) -> String {
        format!(
            "# HELP calops_booking_batches_total Statements that wrote a batch of direct bookings.\n# TYPE calops_booking_batches_total counter\ncalops_booking_batches_total {batches}\n# HELP calops_booking_batched_total Bookings stored by batches.\n# TYPE calops_booking_batched_total counter\ncalops_booking_batched_total {stored}\n# HELP calops_booking_batch_handed_back_total Bookings a batch could not take (an overlap, a repeated or already recorded idempotency key, or a failed batch), booked alone instead.\n# TYPE calops_booking_batch_handed_back_total counter\ncalops_booking_batch_handed_back_total {handed_back}\n"
        )
    }

    /// The slot cache's exposition text (see `store::cache`).
    pub fn render_slot_cache(s: crate::service::store::cache::Stats) -> String {
        format!(
            "# HELP calops_slot_cache_active Whether slot queries are served from memory (1) or all read the database (0: off, or its notification connection is down).\n# TYPE calops_slot_cache_active gauge\ncalops_slot_cache_active {}\n# HELP calops_slot_cache_hits_total Slot contexts served from memory.\n# TYPE calops_slot_cache_hits_total counter\ncalops_slot_cache_hits_total {}\n# HELP calops_slot_cache_misses_total Slot contexts loaded from the database while the cache was in use.\n# TYPE calops_slot_cache_misses_total counter\ncalops_slot_cache_misses_total {}\n",
            u8::from(s.active),
            s.hits,
            s.misses
        )
    }

    pub fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let Ok(mut map) = self.requests.lock() else {
            return;
        };
        let h = map
            .entry((route.to_string(), method.to_string(), status))
            .or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// The exposition text.
    pub fn render(&self, pool: PoolStatus, uptime_seconds: f64) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP calops_http_request_duration_seconds Time to answer an HTTP request.\n",
        );
        out.push_str("# TYPE calops_http_request_duration_seconds histogram\n");
        let snapshot = self.requests.lock().map(|m| m.clone()).unwrap_or_default();
        for ((route, method, status), h) in &snapshot {
            let labels = format!(
                "route=\"{}\",method=\"{}\",status=\"{}\"",
                escape(route),
                escape(method),
                status
            );
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "calops_http_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "calops_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "calops_http_request_duration_seconds_sum{{{labels}}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "calops_http_request_duration_seconds_count{{{labels}}} {}",
                h.count
            );
        }
        let gauges = [
            (
                "calops_db_pool_max_connections",
                "Largest number of pooled database connections.",
                pool.max_size,
            ),
            (
                "calops_db_pool_connections",
                "Database connections currently open.",
                pool.size,
            ),
            (
                "calops_db_pool_idle_connections",
                "Open database connections not in use.",
                pool.available,
            ),
            (
                "calops_db_pool_waiting",
                "Requests waiting for a database connection.",
                pool.waiting,
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let _ = writeln!(
            out,
            "# HELP calops_bookings_created_total Bookings made by POST /v2/bookings, by path: direct (one statement; the exclusion constraint decides) or general (a transaction that reads busy time first).\n# TYPE calops_bookings_created_total counter\ncalops_bookings_created_total{{path=\"direct\"}} {}\ncalops_bookings_created_total{{path=\"general\"}} {}",
            self.booked_direct.load(std::sync::atomic::Ordering::Relaxed),
            self.booked_general.load(std::sync::atomic::Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP calops_uptime_seconds Seconds since the service started.\n# TYPE calops_uptime_seconds gauge\ncalops_uptime_seconds {uptime_seconds:.3}"
        );
        let _ = writeln!(
            out,
            "# HELP calops_build_info Version of the running service.\n# TYPE calops_build_info gauge\ncalops_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Exposition text contributed by the process that embeds the service (`calops serve` adds
/// the backup schedule's gauges); appended to `/metrics` as it is.
static EXTRA: std::sync::OnceLock<Box<dyn Fn() -> String + Send + Sync>> =
    std::sync::OnceLock::new();

/// Set the extra exposition text's source, once per process.
pub fn set_extra(f: Box<dyn Fn() -> String + Send + Sync>) {
    let _ = EXTRA.set(f);
}

pub fn extra() -> String {
    EXTRA.get().map(|f| f()).unwrap_or_default()
}

impl Metrics {
    /// Connected calendars: this process's sync and write-back counters, and (when the database
    /// answers) the selected calendars, failing ones, the oldest sync's age and the write-back
    /// backlog.
    pub fn render_calendars(
        stats: &crate::service::caldav::Stats,
        health: Option<crate::service::store::calendars::CalendarHealth>,
    ) -> String {
        use crate::service::caldav::Stats;
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "calops_calendar_syncs_total",
            "counter",
            "Calendar syncs that succeeded in this process.",
            Stats::get(&stats.syncs).to_string(),
        );
        metric(
            "calops_calendar_sync_failures_total",
            "counter",
            "Calendar syncs that failed in this process (server down, slow, nonsense).",
            Stats::get(&stats.sync_failures).to_string(),
        );
        metric(
            "calops_calendar_writes_total",
            "counter",
            "Booking write-backs to calendars that succeeded in this process.",
            Stats::get(&stats.writes).to_string(),
        );
        metric(
            "calops_calendar_write_failures_total",
            "counter",
            "Booking write-backs to calendars that failed in this process.",
            Stats::get(&stats.write_failures).to_string(),
        );
        if let Some(h) = health {
            metric(
                "calops_calendars_selected",
                "gauge",
                "Connected calendars that count for conflicts.",
                h.selected.to_string(),
            );
            metric(
                "calops_calendars_failing",
                "gauge",
                "Selected calendars whose last sync failed.",
                h.failing.to_string(),
            );
            metric(
                "calops_calendar_sync_age_seconds",
                "gauge",
                "Seconds since the least recently synced selected calendar's last good sync.",
                format!("{}", h.oldest_sync_age_seconds),
            );
            metric(
                "calops_calendar_writes_pending",
                "gauge",
                "Booking write-backs waiting (retrying included).",
                h.writes_pending.to_string(),
            );
            metric(
                "calops_calendar_writes_dead",
                "gauge",
                "Booking write-backs given up after the last attempt.",
                h.writes_dead.to_string(),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_labelled() {
        let m = Metrics::default();
        m.observe("/v2/slots", "GET", 200, 0.003);
        m.observe("/v2/slots", "GET", 200, 0.02);
        m.observe("/v2/slots", "GET", 400, 0.0001);
        let pool = PoolStatus {
            max_size: 16,
            size: 3,
            available: 2,
            waiting: 0,
        };
        let text = m.render(pool, 1.5);
        assert!(text.contains(
            "calops_http_request_duration_seconds_bucket{route=\"/v2/slots\",method=\"GET\",status=\"200\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "calops_http_request_duration_seconds_bucket{route=\"/v2/slots\",method=\"GET\",status=\"200\",le=\"0.025\"} 2"
        ));
        assert!(text.contains(
            "calops_http_request_duration_seconds_count{route=\"/v2/slots\",method=\"GET\",status=\"400\"} 1"
        ));
        assert!(text.contains("calops_db_pool_connections 3"));
        assert!(text.contains("calops_db_pool_max_connections 16"));
    }
}
