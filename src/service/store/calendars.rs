//! Connected (CalDAV) calendars: connections and their calendars, the sync state and busy
//! intervals the background sync keeps (`external_busy`, migration 11), and the write-back
//! outbox (`caldav_pending`, filled by triggers in the booking's transaction).
//!
//! Every change of a host's busy intervals sends `h<host>` on the slot cache's channel in the
//! same transaction, and every change of which calendars count sends `c`, so every replica's
//! cache follows at commit.

use super::{Result, Store, StoreError};
use crate::service::domain::webhooks::secrets::Stored;
use jiff::Timestamp;
use uuid::Uuid;

/// One calendar of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectedCalendar {
    pub id: i64,
    pub connection_id: i64,
    pub user_id: i64,
    pub url: String,
    pub name: String,
    pub selected: bool,
    pub is_destination: bool,
    pub synced_at: Option<Timestamp>,
    pub failures: i32,
    pub last_error: Option<String>,
}

/// A connection with its calendars (the password is never read here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub id: i64,
    pub org_id: i64,
    pub user_id: i64,
    pub server_url: String,
    pub username: String,
    pub created_at: Timestamp,
    pub calendars: Vec<ConnectedCalendar>,
}

/// A calendar found at connect time.
#[derive(Debug, Clone)]
pub struct NewCalendar {
    pub url: String,
    pub name: String,
}

/// Where a new connection's server is and how it signs in.
#[derive(Debug, Clone, Copy)]
pub struct NewConnection<'a> {
    pub server_url: &'a str,
    pub home_url: &'a str,
    pub username: &'a str,
    pub password: &'a Stored,
}

/// What a connection needs to reach its server.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub org_id: i64,
    pub username: String,
    pub password: Stored,
}

/// A calendar whose busy time is due for a sync, taken by one replica.
#[derive(Debug, Clone)]
pub struct SyncJob {
    pub calendar_id: i64,
    pub host: i64,
    pub host_time_zone: String,
    pub url: String,
    pub sync_token: Option<String>,
    pub ctag: Option<String>,
    pub window: Option<(Timestamp, Timestamp)>,
    pub failures: i32,
    pub credentials: Credentials,
}

/// Busy intervals of one calendar object.
#[derive(Debug, Clone)]
pub struct ObjectRows {
    pub href: String,
    pub intervals: Vec<(Timestamp, Timestamp)>,
}

/// A pending write-back, taken by one worker.
#[derive(Debug, Clone)]
pub struct PendingCalDav {
    pub ical_uid: Uuid,
    pub calendar_id: i64,
    pub version: i64,
    pub attempts: i32,
}

/// Where a write-back goes.
#[derive(Debug, Clone)]
pub struct WriteTarget {
    pub calendar_url: String,
    pub credentials: Credentials,
    /// Where the event was written before, if it was.
    pub written: Option<String>,
}

/// How the sync and the outbox are doing, for /health and /metrics.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CalendarHealth {
    pub selected: i64,
    /// Selected calendars whose last sync failed.
    pub failing: i64,
    /// Seconds since the oldest selected calendar's last good sync (never synced: since it
    /// was connected... counted from now, 0).
    pub oldest_sync_age_seconds: f64,
    pub writes_pending: i64,
    pub writes_dead: i64,
}

const CAL_COLS: &str = "k.id, k.connection_id, k.user_id, k.url, k.name, k.selected,
  k.is_destination, k.synced_at, k.failures, k.last_error";

fn calendar(r: &tokio_postgres::Row) -> ConnectedCalendar {
    ConnectedCalendar {
        id: r.get(0),
        connection_id: r.get(1),
        user_id: r.get(2),
        url: r.get(3),
        name: r.get(4),
        selected: r.get(5),
        is_destination: r.get(6),
        synced_at: r.get(7),
        failures: r.get(8),
        last_error: r.get(9),
    }
}

fn credentials(r: &tokio_postgres::Row, at: usize) -> Credentials {
    Credentials {
        org_id: r.get(at),
        username: r.get(at + 1),
        password: Stored {
            bytes: r.get(at + 2),
            key_id: r.get(at + 3),
        },
    }
}

impl Store {
    /// Store a connection of host `user_id` (in `org_id`) with the calendars discovered.
    pub async fn create_connection(
        &self,
        org_id: i64,
        user_id: i64,
        new: NewConnection<'_>,
        calendars: &[NewCalendar],
    ) -> Result<Connection> {
        let NewConnection {
            server_url,
            home_url,
            username,
            password,
        } = new;
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let host = tx
            .query_opt(
                "SELECT 1 FROM users WHERE org_id = $1 AND id = $2",
                &[&org_id, &user_id],
            )
            .await?;
        if host.is_none() {
            return Err(StoreError::Invalid(format!(
                "user {user_id} not found in organization {org_id}"
            )));
        }
        let id: i64 = tx
            .query_one(
                "INSERT INTO calendar_connections (org_id, user_id, server_url, home_url, username,
                   password, password_key_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                &[
                    &org_id,
                    &user_id,
                    &server_url,
                    &home_url,
                    &username,
                    &password.bytes,
                    &password.key_id,
                ],
            )
            .await?
            .get(0);
        for cal in calendars {
            tx.execute(
                "INSERT INTO connected_calendars (connection_id, user_id, url, name)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[&id, &user_id, &cal.url, &cal.name],
            )
            .await?;
        }
        tx.commit().await?;
        self.connection(org_id, id)
            .await?
            .ok_or_else(|| StoreError::Invalid("the connection vanished".into()))
    }

    /// Connections of the organization (of one host when `user_id` is given).
    pub async fn connections(&self, org_id: i64, user_id: Option<i64>) -> Result<Vec<Connection>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                "SELECT id, org_id, user_id, server_url, username, created_at
                 FROM calendar_connections
                 WHERE org_id = $1 AND ($2::bigint IS NULL OR user_id = $2) ORDER BY id",
                &[&org_id, &user_id],
            )
            .await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        let cals = c
            .query(
                &format!(
                    "SELECT {CAL_COLS} FROM connected_calendars k
                     WHERE k.connection_id = ANY($1) ORDER BY k.id"
                ),
                &[&ids],
            )
            .await?;
        let cals: Vec<ConnectedCalendar> = cals.iter().map(calendar).collect();
        Ok(rows
            .iter()
            .map(|r| {
                let id: i64 = r.get(0);
                Connection {
                    id,
                    org_id: r.get(1),
                    user_id: r.get(2),
                    server_url: r.get(3),
                    username: r.get(4),
                    created_at: r.get(5),
                    calendars: cals
                        .iter()
                        .filter(|k| k.connection_id == id)
                        .cloned()
                        .collect(),
                }
            })
            .collect())
    }

    pub async fn connection(&self, org_id: i64, id: i64) -> Result<Option<Connection>> {
        Ok(self
            .connections(org_id, None)
            .await?
            .into_iter()
            .find(|c| c.id == id))
    }

    /// Remove a connection, its calendars and busy time. False when it is not in the org.
    pub async fn delete_connection(&self, org_id: i64, id: i64) -> Result<bool> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                "WITH gone AS (DELETE FROM calendar_connections WHERE org_id = $1 AND id = $2
                               RETURNING user_id)
                 SELECT pg_notify('calops_cache', 'h' || user_id), pg_notify('calops_cache', 'c')
                 FROM gone",
                &[&org_id, &id],
            )
            .await?;
        Ok(row.is_some())
    }

    /// Change whether a calendar counts for conflicts and/or is where bookings are written
    /// (one destination per host). `None` when the calendar is not in the organization.
    pub async fn update_calendar(
        &self,
        org_id: i64,
        calendar_id: i64,
        selected: Option<bool>,
        destination: Option<bool>,
    ) -> Result<Option<ConnectedCalendar>> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let host: Option<i64> = tx
            .query_opt(
                "SELECT k.user_id FROM connected_calendars k
                 JOIN calendar_connections n ON n.id = k.connection_id
                 WHERE n.org_id = $1 AND k.id = $2 FOR UPDATE OF k",
                &[&org_id, &calendar_id],
            )
            .await?
            .map(|r| r.get(0));
        let Some(host) = host else { return Ok(None) };
        if let Some(sel) = selected {
            tx.execute(
                "UPDATE connected_calendars SET selected = $2,
                   due_at = CASE WHEN $2 THEN now() ELSE due_at END,
                   sync_token = CASE WHEN $2 THEN sync_token ELSE NULL END,
                   ctag = CASE WHEN $2 THEN ctag ELSE NULL END,
                   window_from = CASE WHEN $2 THEN window_from ELSE NULL END,
                   window_to = CASE WHEN $2 THEN window_to ELSE NULL END
                 WHERE id = $1",
                &[&calendar_id, &sel],
            )
            .await?;
            if !sel {
                tx.execute(
                    "DELETE FROM external_busy WHERE calendar_id = $1",
                    &[&calendar_id],
                )
                .await?;
            }
        }
        if let Some(dest) = destination {
            if dest {
                tx.execute(
                    "UPDATE connected_calendars SET is_destination = false
                     WHERE user_id = $1 AND is_destination AND id <> $2",
                    &[&host, &calendar_id],
                )
                .await?;
            }
            tx.execute(
                "UPDATE connected_calendars SET is_destination = $2 WHERE id = $1",
                &[&calendar_id, &dest],
            )
            .await?;
        }
        tx.execute(
            "SELECT pg_notify('calops_cache', 'h' || $1::bigint), pg_notify('calops_cache', 'c')",
            &[&host],
        )
        .await?;
        let row = tx
            .query_one(
                &format!("SELECT {CAL_COLS} FROM connected_calendars k WHERE k.id = $1"),
                &[&calendar_id],
            )
            .await?;
        tx.commit().await?;
        Ok(Some(calendar(&row)))
    }

    /// Take the selected calendar most overdue for a sync, for `lease_secs` (other replicas
    /// skip it meanwhile; a replica that dies leaves it due again when the lease ends).
    pub async fn claim_calendar_sync(&self, lease_secs: f64) -> Result<Option<SyncJob>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                "WITH due AS (
                   SELECT id FROM connected_calendars WHERE selected AND due_at <= now()
                   ORDER BY due_at LIMIT 1 FOR UPDATE SKIP LOCKED)
                 UPDATE connected_calendars k SET due_at = now() + make_interval(secs => $1)
                 FROM due, calendar_connections n, users u
                 WHERE k.id = due.id AND n.id = k.connection_id AND u.id = k.user_id
                 RETURNING k.id, k.user_id, u.time_zone, k.url, k.sync_token, k.ctag,
                   k.window_from, k.window_to, k.failures,
                   n.org_id, n.username, n.password, n.password_key_id",
                &[&lease_secs],
            )
            .await?;
        Ok(row.map(|r| SyncJob {
            calendar_id: r.get(0),
            host: r.get(1),
            host_time_zone: r.get(2),
            url: r.get(3),
            sync_token: r.get(4),
            ctag: r.get(5),
            window: r
                .get::<_, Option<Timestamp>>(6)
                .zip(r.get::<_, Option<Timestamp>>(7)),
            failures: r.get(8),
            credentials: credentials(&r, 9),
        }))
    }

    /// When the next calendar sync is due (for the worker to sleep until then).
    pub async fn next_calendar_sync_due(&self) -> Result<Option<Timestamp>> {
        let c = self.conn().await?;
        Ok(c.query_one(
            "SELECT min(due_at) FROM connected_calendars WHERE selected",
            &[],
        )
        .await?
        .get(0))
    }

    /// Which of `uids` are calendar UIDs of the host's own bookings (written back by calops:
    /// their time is busy through the booking already).
    pub async fn own_booking_uids(&self, host: i64, uids: &[String]) -> Result<Vec<String>> {
        let parsed: Vec<Uuid> = uids.iter().filter_map(|u| u.parse().ok()).collect();
        if parsed.is_empty() {
            return Ok(Vec::new());
        }
        let c = self.conn().await?;
        let rows = c
            .query(
                "SELECT DISTINCT ical_uid FROM bookings
                 WHERE host_user_id = $1 AND ical_uid = ANY($2)",
                &[&host, &parsed],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| r.get::<_, Uuid>(0).to_string())
            .collect())
    }

    /// Record a sync of `job`: with `full`, every busy row of the calendar is replaced by
    /// `objects`; otherwise the rows of `removed` and of each of `objects` are. The new sync
    /// state is kept, the next sync is due in `next_secs`, and the slot cache is told.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_calendar_sync(
        &self,
        job: &SyncJob,
        full: bool,
        removed: &[String],
        objects: &[ObjectRows],
        sync_token: Option<&str>,
        ctag: Option<&str>,
        window: (Timestamp, Timestamp),
        next_secs: f64,
    ) -> Result<()> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        if full {
            tx.execute(
                "DELETE FROM external_busy WHERE calendar_id = $1",
                &[&job.calendar_id],
            )
            .await?;
        } else {
            let mut gone: Vec<&str> = removed.iter().map(String::as_str).collect();
            gone.extend(objects.iter().map(|o| o.href.as_str()));
            if !gone.is_empty() {
                tx.execute(
                    "DELETE FROM external_busy WHERE calendar_id = $1 AND href = ANY($2)",
                    &[&job.calendar_id, &gone],
                )
                .await?;
            }
        }
        let (mut hrefs, mut starts, mut ends) = (Vec::new(), Vec::new(), Vec::new());
        for o in objects {
            for (s, e) in &o.intervals {
                hrefs.push(o.href.as_str());
                starts.push(*s);
                ends.push(*e);
            }
        }
        if !hrefs.is_empty() {
            tx.execute(
                "INSERT INTO external_busy (calendar_id, host_user_id, href, start_at, end_at)
                 SELECT $1, $2, h, s, e FROM unnest($3::text[], $4::timestamptz[], $5::timestamptz[])
                   AS t(h, s, e)",
                &[&job.calendar_id, &job.host, &hrefs, &starts, &ends],
            )
            .await?;
        }
        tx.execute(
            "UPDATE connected_calendars SET sync_token = $2, ctag = $3, window_from = $4,
               window_to = $5, synced_at = now(), failures = 0, last_error = NULL,
               due_at = now() + make_interval(secs => $6)
             WHERE id = $1",
            &[
                &job.calendar_id,
                &sync_token,
                &ctag,
                &window.0,
                &window.1,
                &next_secs,
            ],
        )
        .await?;
        tx.execute(
            "SELECT pg_notify('calops_cache', 'h' || $1::bigint)",
            &[&job.host],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Nothing changed: the busy rows stand; the next sync is due in `next_secs`.
    pub async fn calendar_unchanged(&self, job: &SyncJob, next_secs: f64) -> Result<()> {
        let c = self.conn().await?;
        c.execute(
            "UPDATE connected_calendars SET synced_at = now(), failures = 0, last_error = NULL,
               due_at = now() + make_interval(secs => $2) WHERE id = $1",
            &[&job.calendar_id, &next_secs],
        )
        .await?;
        Ok(())
    }

    /// The sync failed: the last known busy rows stand; try again in `retry_secs`.
    pub async fn calendar_sync_failed(
        &self,
        job: &SyncJob,
        error: &str,
        retry_secs: f64,
    ) -> Result<()> {
        let c = self.conn().await?;
        c.execute(
            "UPDATE connected_calendars SET failures = failures + 1, last_error = $2,
               due_at = now() + make_interval(secs => $3) WHERE id = $1",
            &[&job.calendar_id, &error, &retry_secs],
        )
        .await?;
        Ok(())
    }

    /// Take up to `limit` due write-backs for `lease_secs`.
    pub async fn claim_caldav_writes(
        &self,
        limit: i64,
        lease_secs: f64,
    ) -> Result<Vec<PendingCalDav>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                "UPDATE caldav_pending p SET attempts = p.attempts + 1,
                   due_at = now() + make_interval(secs => $2)
                 FROM (SELECT ical_uid FROM caldav_pending WHERE NOT dead AND due_at <= now()
                       ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED) d
                 WHERE p.ical_uid = d.ical_uid
                 RETURNING p.ical_uid, p.calendar_id, p.version, p.attempts",
                &[&limit, &lease_secs],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| PendingCalDav {
                ical_uid: r.get(0),
                calendar_id: r.get(1),
                version: r.get(2),
                attempts: r.get(3),
            })
            .collect())
    }

    /// Where write-back `w` goes. `None` when its calendar is gone.
    pub async fn caldav_target(&self, w: &PendingCalDav) -> Result<Option<WriteTarget>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                "SELECT k.url, (SELECT url FROM caldav_events WHERE ical_uid = $2),
                   n.org_id, n.username, n.password, n.password_key_id
                 FROM connected_calendars k JOIN calendar_connections n ON n.id = k.connection_id
                 WHERE k.id = $1",
                &[&w.calendar_id, &w.ical_uid],
            )
            .await?;
        Ok(row.map(|r| WriteTarget {
            calendar_url: r.get(0),
            written: r.get(1),
            credentials: credentials(&r, 2),
        }))
    }

    /// The event of `w` is at `url` now (`None`: removed); the pending row goes unless the
    /// booking changed meanwhile.
    pub async fn caldav_written(
        &self,
        w: &PendingCalDav,
        url: Option<&str>,
        etag: Option<&str>,
    ) -> Result<()> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        match url {
            Some(url) => {
                tx.execute(
                    "INSERT INTO caldav_events (ical_uid, calendar_id, url, etag)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (ical_uid) DO UPDATE
                       SET calendar_id = $2, url = $3, etag = $4",
                    &[&w.ical_uid, &w.calendar_id, &url, &etag],
                )
                .await?
            }
            None => {
                tx.execute(
                    "DELETE FROM caldav_events WHERE ical_uid = $1",
                    &[&w.ical_uid],
                )
                .await?
            }
        };
        tx.execute(
            "DELETE FROM caldav_pending WHERE ical_uid = $1 AND version = $2",
            &[&w.ical_uid, &w.version],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The write-back failed: retry in `retry_secs`, or keep it as dead when `dead`.
    pub async fn caldav_failed(
        &self,
        w: &PendingCalDav,
        error: &str,
        retry_secs: f64,
        dead: bool,
    ) -> Result<()> {
        let c = self.conn().await?;
        c.execute(
            "UPDATE caldav_pending SET last_error = $3, dead = $5,
               due_at = now() + make_interval(secs => $4)
             WHERE ical_uid = $1 AND version = $2",
            &[&w.ical_uid, &w.version, &error, &retry_secs, &dead],
        )
        .await?;
        Ok(())
    }

    /// How syncs and write-backs are doing.
    pub async fn calendar_health(&self) -> Result<CalendarHealth> {
        let c = self.conn().await?;
        let r = c
            .query_one(
                "SELECT count(*) FILTER (WHERE selected),
                        count(*) FILTER (WHERE selected AND failures > 0),
                        COALESCE(max(extract(epoch FROM now() - synced_at)) FILTER (WHERE selected), 0)::float8,
                        (SELECT count(*) FROM caldav_pending WHERE NOT dead),
                        (SELECT count(*) FROM caldav_pending WHERE dead)
                 FROM connected_calendars",
                &[],
            )
            .await?;
        Ok(CalendarHealth {
            selected: r.get(0),
            failing: r.get(1),
            oldest_sync_age_seconds: r.get(2),
            writes_pending: r.get(3),
            writes_dead: r.get(4),
        })
    }
}
