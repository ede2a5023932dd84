//! Calendar (ICS) queries: the current state of a calendar (the newest booking of a reschedule
//! chain) and the pending object writes recorded by migration 4's triggers.

use super::{Result, Store};
use jiff::Timestamp;
use serde_json::Value;
use uuid::Uuid;

/// The newest booking of one calendar, with what its ICS shows.
#[derive(Debug, Clone)]
pub struct CalendarRow {
    pub org_id: i64,
    pub ical_uid: Uuid,
    pub sequence: i32,
    pub status: String,
    pub title: String,
    pub start: Timestamp,
    pub end: Timestamp,
    pub updated_at: Timestamp,
    pub host_name: String,
    pub host_email: String,
    pub attendee: Value,
    pub guests: Value,
    pub booking_uid: Uuid,
}

/// A pending write handed to one worker.
#[derive(Debug, Clone, Copy)]
pub struct PendingWrite {
    pub ical_uid: Uuid,
    pub org_id: i64,
    pub version: i64,
    pub attempts: i32,
}

const CALENDAR_SELECT: &str = "SELECT b.org_id, b.ical_uid, b.ical_sequence, b.status,
  COALESCE(b.title, e.title), b.start_at, b.end_at, b.updated_at, u.name, u.email, b.attendee,
  b.guests, b.uid
  FROM bookings b JOIN event_types e ON e.id = b.event_type_id JOIN users u ON u.id = b.host_user_id";

fn calendar(r: &tokio_postgres::Row) -> CalendarRow {
    CalendarRow {
        org_id: r.get(0),
        ical_uid: r.get(1),
        sequence: r.get(2),
        status: r.get(3),
        title: r.get(4),
        start: r.get(5),
        end: r.get(6),
        updated_at: r.get(7),
        host_name: r.get(8),
        host_email: r.get(9),
        attendee: r.get(10),
        guests: r.get(11),
        booking_uid: r.get(12),
    }
}

impl Store {
    /// The calendar of a booking of `org_id` (any booking of the chain), as it stands now, and
    /// whether a write of it to object storage is still pending.
    pub async fn calendar_of_booking(
        &self,
        org_id: i64,
        booking_uid: Uuid,
    ) -> Result<Option<(CalendarRow, bool)>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!(
                    "{CALENDAR_SELECT} WHERE b.ical_uid = (SELECT ical_uid FROM bookings
                       WHERE org_id = $1 AND uid = $2)
                     ORDER BY b.id DESC LIMIT 1"
                ),
                &[&org_id, &booking_uid],
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let cal = calendar(&row);
        let pending = c
            .query_opt(
                "SELECT 1 FROM ics_pending WHERE ical_uid = $1",
                &[&cal.ical_uid],
            )
            .await?
            .is_some();
        Ok(Some((cal, pending)))
    }

    /// The calendar `ical_uid` as it stands now.
    pub async fn calendar(&self, ical_uid: Uuid) -> Result<Option<CalendarRow>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!("{CALENDAR_SELECT} WHERE b.ical_uid = $1 ORDER BY b.id DESC LIMIT 1"),
                &[&ical_uid],
            )
            .await?;
        Ok(row.as_ref().map(calendar))
    }

    /// Take up to `limit` due writes for `lease_secs` (other workers skip them meanwhile).
    pub async fn claim_ics_writes(&self, limit: i64, lease_secs: f64) -> Result<Vec<PendingWrite>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                "UPDATE ics_pending p SET attempts = p.attempts + 1,
                   due_at = now() + make_interval(secs => $2)
                 FROM (SELECT ical_uid FROM ics_pending WHERE due_at <= now()
                       ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED) d
                 WHERE p.ical_uid = d.ical_uid
                 RETURNING p.ical_uid, p.org_id, p.version, p.attempts",
                &[&limit, &lease_secs],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| PendingWrite {
                ical_uid: r.get(0),
                org_id: r.get(1),
                version: r.get(2),
                attempts: r.get(3),
            })
            .collect())
    }

    /// The write of `version` landed: forget it unless the calendar changed meanwhile.
    pub async fn ics_written(&self, w: &PendingWrite) -> Result<()> {
        let c = self.conn().await?;
        c.execute(
            "DELETE FROM ics_pending WHERE ical_uid = $1 AND version = $2",
            &[&w.ical_uid, &w.version],
        )
        .await?;
        Ok(())
    }

    /// The write failed: try again after `retry_secs`, remembering why.
    pub async fn ics_failed(&self, w: &PendingWrite, error: &str, retry_secs: f64) -> Result<()> {
        let c = self.conn().await?;
        c.execute(
            "UPDATE ics_pending SET last_error = $3, due_at = now() + make_interval(secs => $4)
             WHERE ical_uid = $1 AND version = $2",
            &[&w.ical_uid, &w.version, &error, &retry_secs],
        )
        .await?;
        Ok(())
    }

    /// Without object storage there is nowhere to write: drop due writes (GET renders from the
    /// database). Returns how many were dropped.
    pub async fn drop_ics_writes(&self) -> Result<u64> {
        let c = self.conn().await?;
        Ok(
            c.execute("DELETE FROM ics_pending WHERE due_at <= now()", &[])
                .await?,
        )
    }
}
