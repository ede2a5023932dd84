//! The mail outbox (migrations 10, 13, 14): the booking's own transaction writes one
//! `mail_events` row per change; this module expands events into one outbox row per message and
//! recipient, claims those for the workers (`FOR UPDATE SKIP LOCKED` with a lease, as webhook
//! deliveries), records how each attempt ended, and reports the backlog.

use super::{Result, Store};
use jiff::Timestamp;
use serde_json::Value;
use uuid::Uuid;

/// The LISTEN/NOTIFY channel the triggers notify when they queue a booking change.
pub const CHANNEL: &str = "calops_mail";
/// The channel an expansion notifies when it has queued messages.
pub const QUEUED_CHANNEL: &str = "calops_mail_queued";

/// One message to one recipient, claimed by one worker, with what it needs to be written.
#[derive(Debug, Clone)]
pub struct ClaimedMail {
    pub id: i64,
    /// Unique per (event, recipient): the Message-ID is made from it.
    pub uid: Uuid,
    pub kind: String,
    pub reminder_minutes: i32,
    pub recipient: String,
    pub role: String,
    pub lang: Option<String>,
    /// The `SEQUENCE` of the calendar when the event happened.
    pub sequence: i32,
    pub attempt: i32,
    pub booking_uid: Uuid,
    pub ical_uid: Uuid,
    pub booking_status: String,
    pub start: Timestamp,
    pub end: Timestamp,
    pub updated_at: Timestamp,
    pub title: String,
    pub host_name: String,
    pub host_email: String,
    pub host_time_zone: String,
    pub attendee: Value,
    pub guests: Value,
    pub org_id: i64,
    pub org_name: String,
    pub sender_name: Option<String>,
    pub reply_to: Option<String>,
    pub cancellation_reason: Option<String>,
}

/// What the mail workers still have to do, across replicas (for /metrics).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MailBacklog {
    /// Messages due (or in flight) and not yet sent, and booking events not yet expanded into
    /// their messages (each one or more messages).
    pub pending: i64,
    pub oldest_pending_seconds: f64,
    /// Messages given up on (refused, or out of attempts).
    pub dead: i64,
    /// Reminders waiting for their time.
    pub scheduled: i64,
}

/// The earliest due message, in the order of the `mail_outbox_next` index (migration 13), so
/// the claim reads the first unlocked entry and stops whatever the backlog. A message whose
/// booking no longer exists (its organization was deleted) is marked `skipped` by its claim and
/// not returned.
const CLAIM: &str = "WITH due AS (
    SELECT id, booking_id FROM mail_outbox
    WHERE status = 'pending' AND next_attempt_at <= now()
    ORDER BY next_attempt_at, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
  ), claimed AS (
    UPDATE mail_outbox m SET attempts = m.attempts + 1,
      next_attempt_at = now() + make_interval(secs => $1),
      status = CASE WHEN b.id IS NULL THEN 'skipped' ELSE 'pending' END,
      last_error = CASE WHEN b.id IS NULL THEN 'the booking no longer exists' ELSE m.last_error END
    FROM due LEFT JOIN bookings b ON b.id = due.booking_id
    WHERE m.id = due.id
    RETURNING m.id, m.uid, m.kind, m.reminder_minutes, m.recipient, m.role, m.lang,
      m.ical_sequence, m.attempts, m.booking_id, m.status
  )
  SELECT c.id, c.uid, c.kind, c.reminder_minutes, c.recipient, c.role, c.lang, c.ical_sequence,
    c.attempts, b.uid, b.ical_uid, b.status, b.start_at, b.end_at, b.updated_at,
    COALESCE(b.title, e.title), u.name, u.email, u.time_zone, b.attendee, b.guests, b.org_id,
    o.name, o.mail_sender_name, o.mail_reply_to, b.cancellation_reason
  FROM claimed c JOIN bookings b ON b.id = c.booking_id
  JOIN event_types e ON e.id = b.event_type_id
  JOIN users u ON u.id = b.host_user_id
  JOIN organizations o ON o.id = b.org_id
  WHERE c.status = 'pending'";

/// Expand up to `$1` of the oldest booking events into their messages, in one statement (so one
/// transaction): the events are deleted as they are read (`SKIP LOCKED`: replicas take
/// different ones), and each becomes one message to the attendee, each guest and the host, plus,
/// for a booking that is still accepted, one reminder per recipient and offset of its event type
/// whose time is after the event. The bookings are read `FOR SHARE`, so a cancellation in flight
/// is waited for (and then seen), and one that comes later waits for these rows and skips the
/// reminders among them. Nothing for an event type with mail off, or a booking that is gone.
/// The unique key makes a message that exists already (an event queued twice) a no-op.
const EXPAND: &str = "WITH ev AS (
    DELETE FROM mail_events WHERE id IN (
      SELECT id FROM mail_events ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
    RETURNING booking_id, kind, ical_sequence, at
  ), b AS (
    SELECT id, uid, org_id, status, start_at, attendee, guests, event_type_id, host_user_id
    FROM bookings WHERE id IN (SELECT booking_id FROM ev)
    FOR SHARE
  ), queued AS (
    INSERT INTO mail_outbox (org_id, booking_id, booking_uid, kind, reminder_minutes, recipient,
      role, lang, ical_sequence, next_attempt_at, due_at)
    SELECT b.org_id, b.id, b.uid, k.kind, k.minutes, r.recipient, r.role,
      b.attendee->>'language', ev.ical_sequence, k.due, k.due
    FROM ev JOIN b ON b.id = ev.booking_id
    JOIN event_types e ON e.id = b.event_type_id AND e.mail_enabled
    JOIN users u ON u.id = b.host_user_id
    CROSS JOIN LATERAL calops_mail_recipients(b.attendee, b.guests, u.email) r
    CROSS JOIN LATERAL (
      SELECT ev.kind, 0 AS minutes, ev.at AS due
      UNION ALL
      SELECT 'reminder', m, b.start_at - make_interval(mins => m)
      FROM unnest(e.mail_reminders) m
      WHERE ev.kind <> 'cancelled' AND b.status = 'accepted'
        AND b.start_at - make_interval(mins => m) > ev.at) k
    ON CONFLICT DO NOTHING
    RETURNING 1
  )
  SELECT (SELECT count(*) FROM ev), (SELECT count(*) FROM queued)";

impl Store {
    /// Expand up to `limit` booking events into messages (see [`EXPAND`]): (events, messages).
    /// New messages are notified on [`QUEUED_CHANNEL`], for the workers of every replica.
    pub async fn expand_mail_events(&self, limit: i64) -> Result<(i64, i64)> {
        let c = self.conn().await?;
        let stmt = c.prepare_cached(EXPAND).await?;
        let r = c.query_one(&stmt, &[&limit]).await?;
        let (events, messages): (i64, i64) = (r.get(0), r.get(1));
        if messages > 0 {
            c.execute(&format!("NOTIFY {QUEUED_CHANNEL}"), &[]).await?;
        }
        Ok((events, messages))
    }

    /// Whether the booking triggers queue messages (the service has a transport).
    pub async fn set_mail_enabled(&self, on: bool) -> Result<()> {
        let c = self.conn().await?;
        c.execute(
            "UPDATE mail_settings SET enabled = $1 WHERE enabled <> $1",
            &[&on],
        )
        .await?;
        Ok(())
    }

    /// Claim the next due message, if any: its attempt count goes up and its due time moves to
    /// the end of a lease of `lease_s` seconds (after which another worker may try again if
    /// this one died).
    pub async fn claim_mail(&self, lease_s: f64) -> Result<Option<ClaimedMail>> {
        let c = self.conn().await?;
        let stmt = c.prepare_cached(CLAIM).await?;
        let Some(r) = c.query_opt(&stmt, &[&lease_s]).await? else {
            return Ok(None);
        };
        Ok(Some(ClaimedMail {
            id: r.get(0),
            uid: r.get(1),
            kind: r.get(2),
            reminder_minutes: r.get(3),
            recipient: r.get(4),
            role: r.get(5),
            lang: r.get(6),
            sequence: r.get(7),
            attempt: r.get(8),
            booking_uid: r.get(9),
            ical_uid: r.get(10),
            booking_status: r.get(11),
            start: r.get(12),
            end: r.get(13),
            updated_at: r.get(14),
            title: r.get(15),
            host_name: r.get(16),
            host_email: r.get(17),
            host_time_zone: r.get(18),
            attendee: r.get(19),
            guests: r.get(20),
            org_id: r.get(21),
            org_name: r.get(22),
            sender_name: r.get(23),
            reply_to: r.get(24),
            cancellation_reason: r.get(25),
        }))
    }

    /// Record how attempt `attempt` of message `id` ended: `status` is `sent`, `pending`
    /// (retry at `retry_at`), `dead` or `skipped`. Changes nothing when a newer attempt was
    /// claimed meanwhile (this worker's lease ran out) or the row is no longer pending.
    pub async fn finish_mail(
        &self,
        id: i64,
        attempt: i32,
        status: &str,
        retry_at: Option<Timestamp>,
        error: Option<&str>,
    ) -> Result<bool> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(
                "UPDATE mail_outbox SET status = $3,
                   next_attempt_at = COALESCE($4, next_attempt_at), last_error = $5,
                   sent_at = CASE WHEN $3 = 'sent' THEN now() ELSE sent_at END
                 WHERE id = $1 AND attempts = $2 AND status = 'pending'",
            )
            .await?;
        Ok(
            c.execute(&stmt, &[&id, &attempt, &status, &retry_at, &error])
                .await?
                == 1,
        )
    }

    /// The earliest due time of a pending message (for sleeping until then).
    pub async fn next_mail_due(&self) -> Result<Option<Timestamp>> {
        let c = self.conn().await?;
        Ok(c.query_one(
            "SELECT min(next_attempt_at) FROM mail_outbox WHERE status = 'pending'",
            &[],
        )
        .await?
        .get(0))
    }

    /// See [`MailBacklog`].
    pub async fn mail_backlog(&self) -> Result<MailBacklog> {
        let c = self.conn().await?;
        // One statement: the pending messages, the dead ones, and the booking changes not yet
        // expanded into their messages (counted as pending, aged from the change).
        let r = c
            .query_one(
                "SELECT o.due + e.n, GREATEST(o.age, e.age), o.scheduled, d.dead FROM
                   (SELECT count(*) FILTER (WHERE due_at <= now()) AS due,
                      COALESCE(extract(epoch FROM now() - min(due_at) FILTER (WHERE due_at <= now())), 0)::float8 AS age,
                      count(*) FILTER (WHERE due_at > now()) AS scheduled
                    FROM mail_outbox WHERE status = 'pending') o,
                   (SELECT count(*) AS dead FROM mail_outbox WHERE status = 'dead') d,
                   (SELECT count(*) AS n,
                      COALESCE(extract(epoch FROM now() - min(at)), 0)::float8 AS age
                    FROM mail_events) e",
                &[],
            )
            .await?;
        Ok(MailBacklog {
            pending: r.get(0),
            oldest_pending_seconds: r.get(1),
            scheduled: r.get(2),
            dead: r.get(3),
        })
    }

    /// Delete up to `limit` sent, dead or skipped messages created more than `retention_s`
    /// seconds ago; returns how many.
    pub async fn purge_mail(&self, retention_s: f64, limit: i64) -> Result<u64> {
        let c = self.conn().await?;
        Ok(c.execute(
            "DELETE FROM mail_outbox WHERE id IN (
               SELECT id FROM mail_outbox
               WHERE status <> 'pending' AND created_at < now() - make_interval(secs => $1)
               ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
            &[&retention_s, &limit],
        )
        .await?)
    }
}
