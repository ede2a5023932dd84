//! How the backups of a cluster stand: PostgreSQL's archiver (`pg_stat_archiver` and the
//! finished segments still waiting in `archive_status`) and the newest base backup. `calops
//! status` shows it and raises the alarm; the service's schedule turns it into gauges.

use super::catalog::BaseBackup;
use super::inventory;
use super::store::BackupStore;
use anyhow::{Context, Result};
use jiff::Timestamp;
use serde::Serialize;

/// Archiving falls behind the plan's 15 minutes of lost data at most: raise the alarm.
pub const ARCHIVE_LAG_ALARM_SECONDS: f64 = 900.0;

/// The nightly base backup missed twice: raise the alarm.
pub const BASE_BACKUP_STALE_SECONDS: u64 = 2 * 86_400;

/// The archiver's state, as the server reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Archiver {
    pub archived_count: i64,
    pub last_archived_wal: Option<String>,
    pub last_archived_time: Option<Timestamp>,
    pub failed_count: i64,
    pub last_failed_wal: Option<String>,
    pub last_failed_time: Option<Timestamp>,
    pub last_archived_age_seconds: Option<f64>,
    /// Finished segments waiting to be archived.
    pub pending_segments: i64,
    /// How long the oldest of them has waited (0: none waiting).
    pub oldest_pending_age_seconds: f64,
}

/// Read the archiver's state on the server `client` is connected to (as a superuser or a
/// member of `pg_monitor`).
pub async fn archiver(client: &tokio_postgres::Client) -> Result<Archiver> {
    let row = client
        .query_one(
            "SELECT archived_count, last_archived_wal, last_archived_time, failed_count, last_failed_wal, last_failed_time, \
                    EXTRACT(EPOCH FROM now() - last_archived_time)::float8, \
                    (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'), \
                    (SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(modification)), 0)::float8 \
                       FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready') \
             FROM pg_stat_archiver",
            &[],
        )
        .await
        .context("reading pg_stat_archiver")?;
    Ok(Archiver {
        archived_count: row.get(0),
        last_archived_wal: row.get(1),
        last_archived_time: row.get(2),
        failed_count: row.get(3),
        last_failed_wal: row.get(4),
        last_failed_time: row.get(5),
        last_archived_age_seconds: row.get(6),
        pending_segments: row.get(7),
        oldest_pending_age_seconds: row.get(8),
    })
}

/// The backups of a cluster, for `calops status` (its `backups` object).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Backups {
    pub last_base_backup: Option<String>,
    pub last_base_backup_age_seconds: Option<u64>,
    /// Absent when the server does not run.
    #[serde(flatten)]
    pub archiver: Option<Archiver>,
    /// WAL has waited longer than [`ARCHIVE_LAG_ALARM_SECONDS`], or the newest base backup is
    /// older than [`BASE_BACKUP_STALE_SECONDS`].
    pub archive_lag_alarm: bool,
}

impl Backups {
    /// Judge the newest base backup and the archiver at `now`.
    pub fn assess(
        newest: Option<&BaseBackup>,
        archiver: Option<Archiver>,
        now: Timestamp,
    ) -> Backups {
        let age = newest.map(|b| now.duration_since(b.finished_at).as_secs().max(0) as u64);
        let lag = archiver
            .as_ref()
            .map_or(0.0, |a| a.oldest_pending_age_seconds);
        // The first base backup is taken by the service shortly after the first deploy, so
        // "none yet" is not an alarm.
        let stale = age.is_some_and(|a| a > BASE_BACKUP_STALE_SECONDS);
        Backups {
            last_base_backup: newest.map(|b| b.name.clone()),
            last_base_backup_age_seconds: age,
            archiver,
            archive_lag_alarm: lag > ARCHIVE_LAG_ALARM_SECONDS || stale,
        }
    }

    /// The line `calops status` prints.
    pub fn line(&self) -> String {
        let a = self.archiver.as_ref();
        let ago =
            |s: Option<f64>| s.map_or_else(|| "-".into(), |s| format!("{}s ago", s.round() as i64));
        format!(
            "backups: last WAL archived {} ({}), {} waiting (oldest {}s), {} failure(s); last base backup {} ({}){}\n",
            a.and_then(|a| a.last_archived_wal.as_deref()).unwrap_or("none"),
            ago(a.and_then(|a| a.last_archived_age_seconds)),
            a.map_or(0, |a| a.pending_segments),
            a.map_or(0.0, |a| a.oldest_pending_age_seconds).round() as i64,
            a.map_or(0, |a| a.failed_count),
            self.last_base_backup.as_deref().unwrap_or("none"),
            ago(self.last_base_backup_age_seconds.map(|s| s as f64)),
            if self.archive_lag_alarm {
                " — BEHIND: run `calops backup now` and check the server log"
            } else {
                ""
            }
        )
    }
}

/// The backups in `store` and, when `client` is connected to the running server, its archiver.
/// Never fails: what cannot be read is left out.
pub async fn of<S: BackupStore>(store: &S, client: Option<&tokio_postgres::Client>) -> Backups {
    let newest = inventory::load(store)
        .await
        .ok()
        .and_then(|inv| inv.newest_before(None).cloned());
    let archiver = match client {
        Some(c) => archiver(c).await.ok(),
        None => None,
    };
    Backups::assess(newest.as_ref(), archiver, Timestamp::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archiver(pending_age: f64) -> Archiver {
        Archiver {
            archived_count: 7,
            last_archived_wal: Some("000000010000000000000007".into()),
            last_archived_time: None,
            failed_count: 0,
            last_failed_wal: None,
            last_failed_time: None,
            last_archived_age_seconds: Some(12.4),
            pending_segments: i64::from(pending_age > 0.0),
            oldest_pending_age_seconds: pending_age,
        }
    }

    fn backup(finished_at: &str) -> BaseBackup {
        let at: Timestamp = finished_at.parse().unwrap();
        BaseBackup {
            format: 1,
            name: "base_00000001_0000000002000028".into(),
            label: "t".into(),
            timeline: 1,
            start_lsn: crate::backup::wal::Lsn(0x200_0028),
            end_lsn: crate::backup::wal::Lsn(0x200_0100),
            start_wal: "000000010000000000000002".into(),
            end_wal: "000000010000000000000002".into(),
            segment_size: crate::backup::wal::DEFAULT_SEGMENT_SIZE,
            started_at: at,
            finished_at: at,
            server_version: "15".into(),
            system_identifier: "1".into(),
            tar_bytes: 1,
            tar_sha256: String::new(),
            parts: Vec::new(),
        }
    }

    #[test]
    fn the_alarm_rings_for_waiting_wal_and_a_stale_base_backup_only() {
        let now: Timestamp = "2025-03-05T12:00:00Z".parse().unwrap();
        let fresh = backup("2025-03-05T02:00:00Z");
        let ok = Backups::assess(Some(&fresh), Some(archiver(899.0)), now);
        assert!(!ok.archive_lag_alarm, "{ok:?}");
        assert_eq!(ok.last_base_backup_age_seconds, Some(10 * 3600));
        assert!(!ok.line().contains("BEHIND"), "{}", ok.line());

        let lagging = Backups::assess(Some(&fresh), Some(archiver(901.0)), now);
        assert!(lagging.archive_lag_alarm);
        assert!(lagging.line().contains("BEHIND"), "{}", lagging.line());

        let stale = backup("2025-03-03T11:59:00Z");
        assert!(Backups::assess(Some(&stale), Some(archiver(0.0)), now).archive_lag_alarm);
        assert!(
            !Backups::assess(None, None, now).archive_lag_alarm,
            "none yet is no alarm"
        );
    }

    #[test]
    fn the_document_keeps_the_archiver_fields_at_the_top() {
        let now: Timestamp = "2025-03-05T12:00:00Z".parse().unwrap();
        let doc = serde_json::to_value(Backups::assess(None, Some(archiver(0.0)), now)).unwrap();
        assert_eq!(doc["failed_count"], 0);
        assert_eq!(doc["last_archived_wal"], "000000010000000000000007");
        assert_eq!(doc["archive_lag_alarm"], false);
        assert!(doc["last_base_backup"].is_null());
        let line = Backups::assess(None, Some(archiver(0.0)), now).line();
        assert!(
            line.starts_with(
                "backups: last WAL archived 000000010000000000000007 (12s ago), 0 waiting"
            ),
            "{line}"
        );
        let doc = serde_json::to_value(Backups::assess(None, None, now)).unwrap();
        assert!(
            doc.get("failed_count").is_none(),
            "no server, no archiver: {doc}"
        );
    }
}
