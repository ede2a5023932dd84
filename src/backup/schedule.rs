//! The nightly base backup, run by `calops serve` wherever the service runs (no cron): every
//! minute each replica checks whether a backup is due — none finished since the last
//! scheduled time (`HH:MM` UTC), per the catalogue in the store, so restarts neither skip nor
//! repeat one — and the one that gets the PostgreSQL advisory lock takes it, then applies
//! retention. It also keeps the backup gauges `/metrics` shows.

use super::config::BackupConfig;
use super::store;
use super::{basebackup, inventory, status};
use jiff::Timestamp;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The most recent scheduled instant at or before `now`.
pub fn last_scheduled(now: Timestamp, schedule: &str) -> Option<Timestamp> {
    let (h, m) = schedule.split_once(':')?;
    let (h, m): (i8, i8) = (h.parse().ok()?, m.parse().ok()?);
    let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    let at = today
        .at(h, m, 0, 0)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()?
        .timestamp();
    Some(if at <= now {
        at
    } else {
        at - jiff::SignedDuration::from_hours(24)
    })
}

/// Due when no base backup finished since the last scheduled instant.
pub fn is_due(now: Timestamp, schedule: &str, newest: Option<Timestamp>) -> bool {
    match (newest, last_scheduled(now, schedule)) {
        (None, _) => true,
        (Some(f), Some(s)) => f < s,
        (Some(_), None) => false,
    }
}

/// Prometheus text with the backup gauges, refreshed by [`run`].
#[derive(Clone, Default)]
pub struct Gauges(Arc<Mutex<String>>);

impl Gauges {
    /// The current exposition text (empty before the first check).
    pub fn text(&self) -> String {
        self.0.lock().map(|t| t.clone()).unwrap_or_default()
    }

    fn set(&self, text: String) {
        if let Ok(mut g) = self.0.lock() {
            *g = text;
        }
    }
}

const CHECK_EVERY: Duration = Duration::from_secs(60);
const FIRST_CHECK: Duration = Duration::from_secs(2);

/// Start [`run`] on `rt` for the cluster that `config` (its `backup.json`) describes and
/// `database_url` reaches; returns the gauges it keeps.
pub fn spawn(rt: &tokio::runtime::Runtime, config: PathBuf, database_url: String) -> Gauges {
    let gauges = Gauges::default();
    rt.spawn(run(config, database_url, gauges.clone()));
    gauges
}

/// Check, back up when due, refresh the gauges; forever.
pub async fn run(config: PathBuf, database_url: String, gauges: Gauges) {
    tokio::time::sleep(FIRST_CHECK).await;
    loop {
        if let Err(e) = once(&config, &database_url, &gauges).await {
            tracing::warn!(error = %format!("{e:#}"), "base backup schedule");
        }
        tokio::time::sleep(CHECK_EVERY).await;
    }
}

async fn once(config: &std::path::Path, url: &str, gauges: &Gauges) -> anyhow::Result<()> {
    let cfg = BackupConfig::load(config)?;
    let st = store::open(&cfg.store)?;
    let client = crate::pg::connect(url).await?;
    let inv = inventory::load(&st).await?;
    let newest = inv.newest_before(None).map(|b| b.finished_at);
    refresh(&client, newest, gauges).await;
    if !is_due(Timestamp::now(), &cfg.schedule, newest) || !basebackup::lock(&client, false).await?
    {
        return Ok(());
    }
    let result = async {
        // Another replica may have just finished one.
        let newest = inventory::load(&st).await?.newest_before(None).map(|b| b.finished_at);
        if !is_due(Timestamp::now(), &cfg.schedule, newest) {
            return Ok(());
        }
        let bindir = crate::pg::Binaries::locate()?.bindir;
        let src = basebackup::Source::from_url(url, bindir)?;
        let b = basebackup::take(&st, &cfg, &src, &client, "calops nightly", &indicatif::ProgressBar::hidden()).await?;
        let pruned = inventory::retain(&st, &cfg).await;
        tracing::info!(backup = %b.name, bytes = b.stored_bytes(), pruned = ?pruned.as_ref().map(|p| (p.deleted_backups.len(), p.deleted_wal)).ok(), "base backup taken");
        refresh(&client, Some(b.finished_at), gauges).await;
        pruned.map(|_| ())
    }
    .await;
    let _ = basebackup::unlock(&client).await;
    result
}

/// Read the archiver's state and render the gauges.
async fn refresh(client: &tokio_postgres::Client, newest: Option<Timestamp>, gauges: &Gauges) {
    let Ok(a) = status::archiver(client).await else {
        return;
    };
    gauges.set(render(
        a.last_archived_age_seconds,
        a.oldest_pending_age_seconds,
        a.failed_count,
        newest.map(|t| Timestamp::now().duration_since(t).as_secs_f64()),
    ));
}

/// The exposition text of the backup gauges.
pub fn render(
    last_archived_age: Option<f64>,
    pending_age: f64,
    failures: i64,
    base_age: Option<f64>,
) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, v: Option<f64>| {
        if let Some(v) = v {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v:.3}\n"
            ));
        }
    };
    gauge(
        "calops_backup_last_archived_age_seconds",
        "Seconds since PostgreSQL last archived a WAL file.",
        "gauge",
        last_archived_age,
    );
    gauge("calops_backup_archive_pending_age_seconds", "How long the oldest finished WAL segment has waited to be archived (0: none waiting); alarm above 900.", "gauge", Some(pending_age));
    gauge(
        "calops_backup_archive_failures_total",
        "Failed archive_command runs since the statistics were reset.",
        "counter",
        Some(failures as f64),
    );
    gauge(
        "calops_backup_last_base_backup_age_seconds",
        "Seconds since the newest complete base backup finished.",
        "gauge",
        base_age,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn due_once_per_scheduled_day() {
        assert_eq!(
            last_scheduled(t("2025-03-02T09:00:00Z"), "02:00"),
            Some(t("2025-03-02T02:00:00Z"))
        );
        assert_eq!(
            last_scheduled(t("2025-03-02T01:00:00Z"), "02:00"),
            Some(t("2025-03-01T02:00:00Z"))
        );
        assert!(
            is_due(t("2025-03-02T09:00:00Z"), "02:00", None),
            "the first one right away"
        );
        assert!(is_due(
            t("2025-03-02T02:00:00Z"),
            "02:00",
            Some(t("2025-03-01T02:01:00Z"))
        ));
        assert!(!is_due(
            t("2025-03-02T09:00:00Z"),
            "02:00",
            Some(t("2025-03-02T02:01:00Z"))
        ));
        assert!(!is_due(
            t("2025-03-02T01:59:00Z"),
            "02:00",
            Some(t("2025-03-01T02:01:00Z"))
        ));
        assert!(last_scheduled(t("2025-03-02T01:59:00Z"), "nonsense").is_none());
    }

    #[test]
    fn gauges_render_as_prometheus_text() {
        let text = render(Some(12.5), 0.0, 3, None);
        assert!(text.contains("calops_backup_last_archived_age_seconds 12.500\n"));
        assert!(text.contains("# TYPE calops_backup_archive_failures_total counter\ncalops_backup_archive_failures_total 3.000\n"));
        assert!(!text.contains("last_base_backup"), "no backup, no gauge");
    }
}
