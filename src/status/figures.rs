//! What `calops status` shows of the running service, whichever source it came from: pure.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The figures of the live release.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusFigures {
    /// `metrics` (the service's `/metrics`) or `monitoring` (OCI Monitoring).
    pub source: &'static str,
    /// Requests and bookings, per time window (newest window last).
    pub traffic: Vec<Traffic>,
    /// Work waiting, by queue (`webhooks`, `ics`, `calendar_writes`, `mail` when the service
    /// has it).
    pub queues: BTreeMap<String, Queue>,
    /// Seconds since the least recently synced connected calendar's last good sync (`None`: no
    /// calendar connected, or not reported).
    pub calendar_sync_age_seconds: Option<f64>,
    pub calendars_failing: Option<u64>,
    /// Slot contexts served from memory, of those asked for.
    pub slot_cache_hit_percent: Option<f64>,
    /// Database connections in use, of the pool's maximum.
    pub db_pool_saturation_percent: Option<f64>,
    /// The backup schedule's gauges (`calops_backup_*`, seconds or counts), when reported.
    pub backups: BTreeMap<String, f64>,
}

/// Requests and bookings in one window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Traffic {
    /// What the window is (`since start`, `last 1s`, `last 5m`).
    pub window: String,
    pub seconds: f64,
    /// Requests answered, probes (`/health`, `/livez`, `/metrics`) not counted.
    pub requests: u64,
    /// Of those, answered with a 5xx status.
    pub errors_5xx: u64,
    pub error_percent: Option<f64>,
    pub requests_per_second: Option<f64>,
    /// Local: the window's p95 from the latency histogram; OCI: the highest 1-minute p95.
    pub latency_p95_seconds: Option<f64>,
    /// `POST /v2/bookings` answered with a success.
    pub bookings_created: u64,
    /// `POST /v2/bookings` answered with an error, by reason (`conflict`, `invalid`,
    /// `rate_limited`, `rejected`, `error`).
    pub bookings_failed: BTreeMap<String, u64>,
}

impl Traffic {
    /// A window of `seconds` with `requests` of which `errors_5xx`; the rates follow.
    pub fn new(window: impl Into<String>, seconds: f64, requests: u64, errors_5xx: u64) -> Traffic {
        Traffic {
            window: window.into(),
            seconds,
            requests,
            errors_5xx,
            error_percent: (requests > 0).then(|| 100.0 * errors_5xx as f64 / requests as f64),
            requests_per_second: (seconds > 0.0).then(|| requests as f64 / seconds),
            latency_p95_seconds: None,
            bookings_created: 0,
            bookings_failed: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Queue {
    pub depth: u64,
    /// Age of the oldest waiting item, where the service reports it.
    pub oldest_seconds: Option<f64>,
}

fn opt(v: Option<f64>, unit: &str) -> String {
    match v {
        Some(x) => format!("{}{unit}", round(x)),
        None => "-".into(),
    }
}

/// A figure with at most two decimals and no trailing zeros.
fn round(x: f64) -> String {
    let s = format!("{x:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// A duration in seconds as the table writes it (`42s`, `12m 5s`, `3h 2m`, `2d 4h`).
pub fn age(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

impl StatusFigures {
    /// The human table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "figures (from {}):", self.source);
        for t in &self.traffic {
            let failed: u64 = t.bookings_failed.values().sum();
            let reasons: Vec<String> = t
                .bookings_failed
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            let _ = writeln!(
                out,
                "  {:<12} requests {} ({}/s), 5xx {} ({}), p95 {}, bookings {} created / {} failed{}",
                format!("{}:", t.window),
                t.requests,
                opt(t.requests_per_second, ""),
                t.errors_5xx,
                opt(t.error_percent, "%"),
                opt(t.latency_p95_seconds.map(|s| s * 1000.0), " ms"),
                t.bookings_created,
                failed,
                if reasons.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", reasons.join(", "))
                }
            );
        }
        if !self.queues.is_empty() {
            let q: Vec<String> = self
                .queues
                .iter()
                .map(|(name, q)| match q.oldest_seconds {
                    Some(a) if q.depth > 0 => format!("{name} {} (oldest {})", q.depth, age(a)),
                    _ => format!("{name} {}", q.depth),
                })
                .collect();
            let _ = writeln!(out, "  backlog:     {}", q.join(", "));
        }
        let _ = writeln!(
            out,
            "  calendars:   {}",
            match (self.calendar_sync_age_seconds, self.calendars_failing) {
                (Some(a), f) => format!(
                    "oldest sync {} ago{}",
                    age(a),
                    f.filter(|f| *f > 0)
                        .map(|f| format!(", {f} failing"))
                        .unwrap_or_default()
                ),
                (None, _) => "none connected".into(),
            }
        );
        let _ = writeln!(
            out,
            "  slot cache:  {} hits; db pool: {} in use",
            opt(self.slot_cache_hit_percent, "%"),
            opt(self.db_pool_saturation_percent, "%")
        );
        if !self.backups.is_empty() {
            let b: Vec<String> = self
                .backups
                .iter()
                .map(|(name, v)| {
                    let short = name
                        .trim_start_matches("calops_backup_")
                        .trim_end_matches("_seconds");
                    if name.ends_with("_seconds") {
                        format!("{short} {}", age(*v))
                    } else {
                        format!("{short} {}", round(*v))
                    }
                })
                .collect();
            let _ = writeln!(out, "  backups:     {}", b.join(", "));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn example() -> StatusFigures {
        let mut t = Traffic::new("last 5m", 300.0, 200, 3);
        t.latency_p95_seconds = Some(0.0421);
        t.bookings_created = 40;
        t.bookings_failed = BTreeMap::from([("conflict".into(), 2)]);
        StatusFigures {
            source: "monitoring",
            traffic: vec![t],
            queues: BTreeMap::from([
                (
                    "webhooks".into(),
                    Queue {
                        depth: 12,
                        oldest_seconds: Some(125.0),
                    },
                ),
                (
                    "ics".into(),
                    Queue {
                        depth: 0,
                        oldest_seconds: None,
                    },
                ),
            ]),
            calendar_sync_age_seconds: Some(4000.0),
            calendars_failing: Some(1),
            slot_cache_hit_percent: Some(87.5),
            db_pool_saturation_percent: Some(25.0),
            backups: BTreeMap::from([(
                "calops_backup_last_base_backup_age_seconds".into(),
                7200.0,
            )]),
        }
    }

    #[test]
    fn the_table_shows_every_figure_with_its_unit() {
        let text = example().table();
        for want in [
            "figures (from monitoring):",
            "last 5m:     requests 200 (0.67/s), 5xx 3 (1.5%), p95 42.1 ms, bookings 40 created / 2 failed (conflict 2)",
            "backlog:     ics 0, webhooks 12 (oldest 2m 5s)",
            "calendars:   oldest sync 1h 6m ago, 1 failing",
            "slot cache:  87.5% hits; db pool: 25% in use",
            "backups:     last_base_backup_age 2h 0m",
        ] {
            assert!(text.contains(want), "{want:?} not in\n{text}");
        }
        let quiet = Traffic::new("last 1s", 1.0, 0, 0);
        assert_eq!(quiet.error_percent, None, "no requests: no share");
        assert_eq!(quiet.requests_per_second, Some(0.0));
    }

    #[test]
    fn the_json_shape_is_stable() {
        let v = serde_json::to_value(example()).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = vec![
            "backups",
            "calendar_sync_age_seconds",
            "calendars_failing",
            "db_pool_saturation_percent",
            "queues",
            "slot_cache_hit_percent",
            "source",
            "traffic",
        ];
        let mut got = keys.clone();
        got.sort();
        want.sort();
        assert_eq!(got, want);
        let t = v["traffic"][0].as_object().unwrap();
        let mut tk: Vec<&str> = t.keys().map(String::as_str).collect();
        tk.sort();
        assert_eq!(
            tk,
            [
                "bookings_created",
                "bookings_failed",
                "error_percent",
                "errors_5xx",
                "latency_p95_seconds",
                "requests",
                "requests_per_second",
                "seconds",
                "window"
            ]
        );
        assert_eq!(v["queues"]["webhooks"]["oldest_seconds"], 125.0);
    }
}
