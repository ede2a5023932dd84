//! What the service posts to OCI Monitoring and what the stack alarms on, described once: the
//! exporter (`crate::service::telemetry`) posts exactly the metrics of [`METRICS`], and the
//! renderer writes the alarms of [`alarms`], whose queries name only those metrics
//! (`tests/it/render.rs` parses every rendered query and checks each name against this list).
//!
//! The container learns where to post from the contract's variables ([`var`]): the namespace
//! and the compartment, set by [`crate::runtime::env::ContainerEnv::for_oci`] (and, on the VM,
//! [`crate::runtime::env::vm_service_env`]). The region is the principal's; the dimensions are the slot and the release (the image digest), both
//! already in the container's environment. Locally none of these is set and nothing is posted.

use std::fmt::Write as _;

/// The namespace the stack's metrics live in (the IAM grant names it too).
pub const NAMESPACE: &str = "calops";

/// The variables of the exporter.
pub mod var {
    /// The OCI Monitoring namespace to post to; setting it (with the compartment) turns the
    /// exporter on.
    pub const NAMESPACE: &str = "CALOPS_METRICS_NAMESPACE";
    /// The compartment OCID the metrics belong to.
    pub const COMPARTMENT_ID: &str = "CALOPS_METRICS_COMPARTMENT_ID";
    /// How often a snapshot is taken (default 60s; tests use less).
    pub const INTERVAL: &str = "CALOPS_METRICS_INTERVAL";
}

/// Dimensions every posted metric carries (small cardinality: two slots, a few releases).
pub const DIMENSIONS: [&str; 2] = ["slot", "release"];

/// One metric the exporter posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    pub name: &'static str,
    /// Sent as the `unit` metadata.
    pub unit: &'static str,
    /// Dimensions beside [`DIMENSIONS`].
    pub dimensions: &'static [&'static str],
    pub help: &'static str,
}

const fn m(
    name: &'static str,
    unit: &'static str,
    dimensions: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric {
        name,
        unit,
        dimensions,
        help,
    }
}

pub const HTTP_REQUESTS: &str = "calops_http_requests";
pub const HTTP_5XX_PERCENT: &str = "calops_http_5xx_percent";
pub const HTTP_LATENCY: &str = "calops_http_latency_seconds";
pub const BOOKINGS_CREATED: &str = "calops_bookings_created";
pub const BOOKINGS_FAILED: &str = "calops_bookings_failed";
pub const BOOKING_FAILURE_PERCENT: &str = "calops_booking_failure_percent";
pub const QUEUE_DEPTH: &str = "calops_queue_depth";
pub const QUEUE_OLDEST: &str = "calops_queue_oldest_seconds";
pub const WEBHOOK_LATENCY_P95: &str = "calops_webhook_latency_p95_seconds";
pub const SLOT_CACHE_HIT_PERCENT: &str = "calops_slot_cache_hit_percent";
pub const DB_POOL_SATURATION: &str = "calops_db_pool_saturation_percent";
pub const DB_POOL_WAITING: &str = "calops_db_pool_waiting";
pub const METRICS_DROPPED: &str = "calops_metrics_dropped";
pub const CALENDAR_SYNC_AGE: &str = "calops_calendar_sync_age_seconds";
pub const CALENDARS_FAILING: &str = "calops_calendars_failing";
/// The backup schedule's gauges (`calops serve --backup-config`), posted under their
/// `/metrics` names when the process has them.
pub const BACKUP_PENDING_AGE: &str = "calops_backup_archive_pending_age_seconds";
pub const BACKUP_GAUGES: [&str; 4] = [
    BACKUP_PENDING_AGE,
    "calops_backup_last_archived_age_seconds",
    "calops_backup_archive_failures_total",
    "calops_backup_last_base_backup_age_seconds",
];

/// Every metric the exporter posts. The exporter refuses to post a name not here (a debug
/// assertion and a unit test), and the alarms' queries name only these.
pub const METRICS: [Metric; 19] = [
    m(HTTP_REQUESTS, "count", &["statusClass", "routeGroup"], "Requests answered in the interval, by status class (2xx..5xx) and route group."),
    m(HTTP_5XX_PERCENT, "percent", &[], "Share of the interval's requests answered with a 5xx status."),
    m(HTTP_LATENCY, "seconds", &["percentile"], "Request latency percentiles (p50, p95, p99) over the interval."),
    m(BOOKINGS_CREATED, "count", &[], "Bookings created by POST /v2/bookings in the interval."),
    m(BOOKINGS_FAILED, "count", &["reason"], "POST /v2/bookings answered with an error, by reason (conflict, invalid, rate_limited, rejected, error)."),
    m(BOOKING_FAILURE_PERCENT, "percent", &[], "Share of the interval's POST /v2/bookings that failed with a conflict, a rate limit or a server error (bad input and refused keys do not count)."),
    m(QUEUE_DEPTH, "count", &["queue"], "Work waiting in a queue (webhooks, ics, calendar_writes), across replicas."),
    m(QUEUE_OLDEST, "seconds", &["queue"], "Age of the oldest waiting item of a queue."),
    m(WEBHOOK_LATENCY_P95, "seconds", &[], "95th percentile of the time from a booking event to its webhook's delivery, over the interval."),
    m(SLOT_CACHE_HIT_PERCENT, "percent", &[], "Slot contexts served from memory, of those asked for in the interval."),
    m(DB_POOL_SATURATION, "percent", &[], "Database connections in use, of the pool's maximum."),
    m(DB_POOL_WAITING, "count", &[], "Requests waiting for a database connection."),
    m(CALENDAR_SYNC_AGE, "seconds", &[], "Time since the least recently synced connected calendar's last good sync."),
    m(CALENDARS_FAILING, "count", &[], "Connected calendars whose last sync failed."),
    m(METRICS_DROPPED, "count", &[], "Metric data this replica dropped since its last post (queue full, or Monitoring failed or did not answer)."),
    m(BACKUP_GAUGES[0], "seconds", &[], "Age of the oldest WAL segment waiting to be archived (0: none waiting)."),
    m(BACKUP_GAUGES[1], "seconds", &[], "Time since a WAL segment was last archived."),
    m(BACKUP_GAUGES[2], "count", &[], "WAL archive attempts that failed since the service started."),
    m(BACKUP_GAUGES[3], "seconds", &[], "Time since the last base backup."),
];

/// The metric named `name`, if the exporter posts it.
pub fn metric(name: &str) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.name == name)
}

/// OCI's rule for a custom namespace: starts with a letter, then letters, digits and
/// underscores, and not `oci_` or `oracle_` (reserved for Oracle's services).
pub fn check_namespace(ns: &str) -> Result<(), String> {
    let lower = ns.to_ascii_lowercase();
    if ns.is_empty()
        || !ns.starts_with(|c: char| c.is_ascii_alphabetic())
        || !ns.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        || ns.len() > 255
    {
        return Err(format!("{ns:?} is not a Monitoring namespace: start with a letter, then use letters, digits and underscores"));
    }
    if lower.starts_with("oci_") || lower.starts_with("oracle_") {
        return Err(format!(
            "{ns:?} starts with a prefix OCI reserves (oci_, oracle_): use e.g. calops"
        ));
    }
    Ok(())
}

/// The runbook's thresholds (`[monitoring]` of the profile; these are its defaults).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// 5xx over this share of requests for 5 minutes.
    pub http_5xx_percent: f64,
    /// Booking failures over this share for 15 minutes.
    pub booking_failure_percent: f64,
    /// Webhook delivery latency p95 over this.
    pub webhook_latency_p95_seconds: f64,
    /// A queue deeper than this.
    pub queue_depth: u64,
    /// WAL waiting longer than this to be archived (targets where calops runs PostgreSQL).
    pub backup_archive_lag_seconds: u64,
    /// The least recently synced connected calendar's last good sync older than this.
    pub calendar_sync_age_seconds: u64,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            http_5xx_percent: 1.0,
            booking_failure_percent: 3.0,
            webhook_latency_p95_seconds: 5.0,
            queue_depth: 1000,
            backup_archive_lag_seconds: 900,
            calendar_sync_age_seconds: 1800,
        }
    }
}

/// One alarm on the service's own metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alarm {
    /// The alarm's key in the stack (`<name>-<key>` is its display name).
    pub key: &'static str,
    /// MQL; evaluated per metric stream (per slot and release).
    pub query: String,
    pub severity: &'static str,
    pub summary: String,
    /// How long the condition must hold (ISO 8601, `PT5M`).
    pub pending_duration: &'static str,
}

/// A threshold as MQL writes it (no exponent, no trailing zeros).
fn number(x: f64) -> String {
    let mut s = String::new();
    let _ = write!(s, "{x}");
    s
}

/// The alarms for thresholds `t`; the backups alarm only when `backup_archive_alarm` (the
/// targets where calops runs PostgreSQL and archives its WAL itself).
pub fn alarms(t: &Thresholds, backup_archive_alarm: bool) -> Vec<Alarm> {
    let mut a = vec![
        Alarm {
            key: "service-5xx",
            query: format!(
                "{HTTP_5XX_PERCENT}[1m].max() > {}",
                number(t.http_5xx_percent)
            ),
            severity: "CRITICAL",
            summary: format!(
                "More than {}% of requests answered 5xx for 5 minutes",
                number(t.http_5xx_percent)
            ),
            pending_duration: "PT5M",
        },
        Alarm {
            key: "booking-failures",
            query: format!(
                "{BOOKING_FAILURE_PERCENT}[1m].max() > {}",
                number(t.booking_failure_percent)
            ),
            severity: "CRITICAL",
            summary: format!(
                "More than {}% of bookings failed for 15 minutes",
                number(t.booking_failure_percent)
            ),
            pending_duration: "PT15M",
        },
        Alarm {
            key: "webhook-latency",
            query: format!(
                "{WEBHOOK_LATENCY_P95}[1m].max() > {}",
                number(t.webhook_latency_p95_seconds)
            ),
            severity: "WARNING",
            summary: format!(
                "Webhook delivery latency p95 above {} s",
                number(t.webhook_latency_p95_seconds)
            ),
            pending_duration: "PT5M",
        },
        Alarm {
            key: "queue-depth",
            query: format!("{QUEUE_DEPTH}[1m].max() > {}", t.queue_depth),
            severity: "WARNING",
            summary: format!("More than {} items waiting in a queue", t.queue_depth),
            pending_duration: "PT5M",
        },
        Alarm {
            key: "calendar-sync",
            query: format!(
                "{CALENDAR_SYNC_AGE}[1m].max() > {}",
                t.calendar_sync_age_seconds
            ),
            severity: "WARNING",
            summary: format!(
                "A connected calendar has not synced for more than {} minutes: its busy times may be stale",
                number(t.calendar_sync_age_seconds as f64 / 60.0)
            ),
            pending_duration: "PT5M",
        },
    ];
    if backup_archive_alarm {
        a.push(Alarm {
            key: "backup-archive-lag",
            query: format!(
                "{BACKUP_PENDING_AGE}[1m].max() > {}",
                t.backup_archive_lag_seconds
            ),
            severity: "CRITICAL",
            summary: format!(
                "WAL waiting more than {} s to be archived: point-in-time recovery falls behind",
                t.backup_archive_lag_seconds
            ),
            pending_duration: "PT1M",
        });
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_oci_rules_and_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for m in METRICS {
            assert!(seen.insert(m.name), "{} twice", m.name);
            assert!(m.name.starts_with(|c: char| c.is_ascii_alphabetic()));
            assert!(m
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-$".contains(c)));
            assert!(DIMENSIONS.len() + m.dimensions.len() <= 20);
        }
        check_namespace(NAMESPACE).unwrap();
        assert!(check_namespace("oci_calops").is_err());
        assert!(check_namespace("Oracle_x").is_err());
        assert!(check_namespace("1calops").is_err());
        assert!(check_namespace("cal-ops").is_err());
    }

    #[test]
    fn the_backup_alarm_is_rendered_only_when_asked() {
        let t = Thresholds::default();
        assert!(!alarms(&t, false)
            .iter()
            .any(|a| a.key == "backup-archive-lag"));
        let a = alarms(&t, true);
        let b = a.iter().find(|a| a.key == "backup-archive-lag").unwrap();
        assert_eq!(
            b.query,
            "calops_backup_archive_pending_age_seconds[1m].max() > 900"
        );
        assert_eq!(
            a[0].query, "calops_http_5xx_percent[1m].max() > 1",
            "the runbook's 1%"
        );
        assert_eq!(a[1].pending_duration, "PT15M");
        let c = a.iter().find(|a| a.key == "calendar-sync").unwrap();
        assert_eq!(
            c.query, "calops_calendar_sync_age_seconds[1m].max() > 1800",
            "30 minutes by default"
        );
    }
}
