//! Webhook subscriptions, the delivery outbox and attempts.
//!
//! Fan-out happens when the event is written: [`enqueue`] inserts one delivery row per active
//! subscription of the organization that asks for the trigger, inside the booking's own
//! transaction. Each row then has its own attempts, backoff and dead letter; a subscription
//! added later does not receive earlier events (as in Cal.com). The insert also queues a
//! `NOTIFY calops_webhooks`, which PostgreSQL delivers only when the transaction commits.

use super::{classify, Result, Store};
use crate::service::domain::webhooks::secrets::Stored;
use deadpool_postgres::GenericClient;
use jiff::Timestamp;
use tokio_postgres::Row;
use uuid::Uuid;

/// The LISTEN/NOTIFY channel that wakes delivery workers.
pub const CHANNEL: &str = "calops_webhooks";

/// A subscription (its secret stays in the database: only whether there is one is read here).
#[derive(Debug, Clone)]
pub struct Webhook {
    pub id: i64,
    pub org_id: i64,
    pub subscriber_url: String,
    pub triggers: Vec<String>,
    pub active: bool,
    pub has_secret: bool,
    pub consecutive_failures: i32,
    pub breaker_open_until: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

const WEBHOOK_COLS: &str = "id, org_id, subscriber_url, triggers, active,
  secret IS NOT NULL, consecutive_failures, breaker_open_until, created_at, updated_at";

impl Webhook {
    fn from_row(r: &Row) -> Webhook {
        Webhook {
            id: r.get(0),
            org_id: r.get(1),
            subscriber_url: r.get(2),
            triggers: r.get(3),
            active: r.get(4),
            has_secret: r.get(5),
            consecutive_failures: r.get(6),
            breaker_open_until: r.get(7),
            created_at: r.get(8),
            updated_at: r.get(9),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub org_id: i64,
    pub subscriber_url: String,
    pub triggers: Vec<String>,
    pub active: bool,
    pub secret: Option<Stored>,
}

/// Fields to change; `None` keeps the current value. `secret: Some(None)` removes it.
#[derive(Debug, Clone, Default)]
pub struct WebhookPatch {
    pub subscriber_url: Option<String>,
    pub triggers: Option<Vec<String>>,
    pub active: Option<bool>,
    pub secret: Option<Option<Stored>>,
}

/// One delivery of one event to one subscription, with its attempts.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: i64,
    pub uid: Uuid,
    pub webhook_id: i64,
    pub event_uid: Uuid,
    pub trigger_event: String,
    pub booking_uid: Option<Uuid>,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Timestamp,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub replay_of: Option<Uuid>,
    pub created_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
    pub history: Vec<Attempt>,
}

#[derive(Debug, Clone)]
pub struct Attempt {
    pub attempt: i32,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: Option<i32>,
}

const DELIVERY_COLS: &str = "d.id, d.uid, d.webhook_id, d.event_uid, d.trigger_event,
  d.booking_uid, d.status, d.attempts, d.next_attempt_at, d.last_status_code, d.last_error,
  (SELECT o.uid FROM webhook_deliveries o WHERE o.id = d.replay_of), d.created_at, d.delivered_at";

impl Delivery {
    fn from_row(r: &Row) -> Delivery {
        Delivery {
            id: r.get(0),
            uid: r.get(1),
            webhook_id: r.get(2),
            event_uid: r.get(3),
            trigger_event: r.get(4),
            booking_uid: r.get(5),
            status: r.get(6),
            attempts: r.get(7),
            next_attempt_at: r.get(8),
            last_status_code: r.get(9),
            last_error: r.get(10),
            replay_of: r.get(11),
            created_at: r.get(12),
            delivered_at: r.get(13),
            history: Vec::new(),
        }
    }
}

/// Filters of the delivery history.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub status: Option<String>,
    pub take: i64,
    pub skip: i64,
}

/// An attempt a worker has claimed: it alone makes attempt number `attempt`.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub delivery_id: i64,
    pub uid: Uuid,
    pub event_uid: Uuid,
    pub webhook_id: i64,
    pub org_id: i64,
    pub attempt: i32,
    pub body: String,
    pub trigger_event: String,
    pub subscriber_url: String,
    pub secret: Option<Stored>,
}

/// What a range replay did.
#[derive(Debug)]
pub enum Replayed {
    /// New deliveries, one per original event in the range.
    Sent(Vec<Delivery>),
    /// The range holds more original events than one replay may send; nothing was sent.
    TooMany,
}

/// How an attempt ended, as the worker decided with [`crate::service::domain::webhooks::policy`].
#[derive(Debug, Clone)]
pub struct Finished {
    pub status_code: Option<i32>,
    pub error: Option<String>,
    /// `None` when no HTTP answer came (how long a connection took to fail would tell a
    /// closed port from a filtered one).
    pub duration_ms: Option<i32>,
    /// `delivered`, `pending` (retry at `next_attempt_at`) or `dead`.
    pub status: &'static str,
    pub next_attempt_at: Option<Timestamp>,
}

/// Write the outbox rows of one event inside the caller's transaction: one delivery per
/// active subscription of `org_id` asking for `trigger`. Returns how many.
pub async fn enqueue(
    c: &impl GenericClient,
    org_id: i64,
    trigger: &str,
    booking_uid: Uuid,
    body: &str,
) -> Result<u64> {
    let stmt = c
        .prepare_cached(
            "INSERT INTO webhook_deliveries (webhook_id, org_id, event_uid, trigger_event,
               booking_uid, body)
             SELECT id, org_id, $3, $2, $4, $5 FROM webhooks
             WHERE org_id = $1 AND active AND $2 = ANY(triggers)
             RETURNING pg_notify('calops_webhooks', '')::text",
        )
        .await?;
    Ok(c.execute(
        &stmt,
        &[&org_id, &trigger, &Uuid::new_v4(), &booking_uid, &body],
    )
    .await?)
}

/// What a reschedule moved away from: (id, start, end) of booking `uid`.
pub async fn previous_booking(
    c: &impl GenericClient,
    uid: Uuid,
) -> Result<Option<(i64, Timestamp, Timestamp)>> {
    Ok(c.query_opt(
        "SELECT id, start_at, end_at FROM bookings WHERE uid = $1",
        &[&uid],
    )
    .await?
    .map(|r| (r.get(0), r.get(1), r.get(2))))
}

impl Store {
    pub async fn create_webhook(&self, w: &NewWebhook) -> Result<Webhook> {
        let c = self.conn().await?;
        let (secret, key_id) = split(w.secret.as_ref());
        let row = c
            .query_one(
                &format!(
                    "INSERT INTO webhooks (org_id, subscriber_url, triggers, active,
                       secret, secret_key_id)
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING {WEBHOOK_COLS}"
                ),
                &[
                    &w.org_id,
                    &w.subscriber_url,
                    &w.triggers,
                    &w.active,
                    &secret,
                    &key_id,
                ],
            )
            .await
            .map_err(|e| classify(e, "the webhook"))?;
        Ok(Webhook::from_row(&row))
    }

    pub async fn get_webhook(&self, org_id: i64, id: i64) -> Result<Option<Webhook>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!("SELECT {WEBHOOK_COLS} FROM webhooks WHERE org_id = $1 AND id = $2"),
                &[&org_id, &id],
            )
            .await?;
        Ok(row.as_ref().map(Webhook::from_row))
    }

    pub async fn list_webhooks(&self, org_id: i64, take: i64, skip: i64) -> Result<Vec<Webhook>> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {WEBHOOK_COLS} FROM webhooks WHERE org_id = $1
                     ORDER BY id LIMIT $2 OFFSET $3"
                ),
                &[&org_id, &take, &skip],
            )
            .await?;
        Ok(rows.iter().map(Webhook::from_row).collect())
    }

    pub async fn update_webhook(
        &self,
        org_id: i64,
        id: i64,
        p: &WebhookPatch,
    ) -> Result<Option<Webhook>> {
        let c = self.conn().await?;
        let set_secret = p.secret.is_some();
        let (secret, key_id) = split(p.secret.as_ref().and_then(|s| s.as_ref()));
        let row = c
            .query_opt(
                &format!(
                    "UPDATE webhooks SET
                       subscriber_url = COALESCE($3, subscriber_url),
                       triggers = COALESCE($4, triggers),
                       active = COALESCE($5, active),
                       secret = CASE WHEN $6 THEN $7 ELSE secret END,
                       secret_key_id = CASE WHEN $6 THEN $8 ELSE secret_key_id END,
                       -- A changed or re-enabled subscription starts with a closed breaker.
                       consecutive_failures = CASE WHEN $3 IS NOT NULL OR $5 THEN 0
                                                   ELSE consecutive_failures END,
                       breaker_open_until = CASE WHEN $3 IS NOT NULL OR $5 THEN NULL
                                                 ELSE breaker_open_until END,
                       updated_at = now()
                     WHERE org_id = $1 AND id = $2 RETURNING {WEBHOOK_COLS}"
                ),
                &[
                    &org_id,
                    &id,
                    &p.subscriber_url,
                    &p.triggers,
                    &p.active,
                    &set_secret,
                    &secret,
                    &key_id,
                ],
            )
            .await?;
        Ok(row.as_ref().map(Webhook::from_row))
    }

    /// Delete a subscription and its delivery history.
    pub async fn delete_webhook(&self, org_id: i64, id: i64) -> Result<Option<Webhook>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!(
                    "DELETE FROM webhooks WHERE org_id = $1 AND id = $2 RETURNING {WEBHOOK_COLS}"
                ),
                &[&org_id, &id],
            )
            .await?;
        Ok(row.as_ref().map(Webhook::from_row))
    }

    /// A page of a subscription's deliveries, newest first, with their attempts.
    pub async fn list_deliveries(
        &self,
        org_id: i64,
        webhook_id: i64,
        f: &DeliveryFilter,
    ) -> Result<(Vec<Delivery>, i64)> {
        let c = self.conn().await?;
        let filter = "WHERE d.org_id = $1 AND d.webhook_id = $2
                        AND ($3::text IS NULL OR d.status = $3)";
        let rows = c
            .query(
                &format!(
                    "SELECT {DELIVERY_COLS} FROM webhook_deliveries d {filter}
                     ORDER BY d.created_at DESC, d.id DESC LIMIT $4 OFFSET $5"
                ),
                &[&org_id, &webhook_id, &f.status, &f.take, &f.skip],
            )
            .await?;
        let total: i64 = c
            .query_one(
                &format!("SELECT count(*) FROM webhook_deliveries d {filter}"),
                &[&org_id, &webhook_id, &f.status],
            )
            .await?
            .get(0);
        let mut out: Vec<Delivery> = rows.iter().map(Delivery::from_row).collect();
        let ids: Vec<i64> = out.iter().map(|d| d.id).collect();
        let attempts = c
            .query(
                "SELECT delivery_id, attempt, started_at, finished_at, status_code, error,
                   duration_ms FROM webhook_attempts WHERE delivery_id = ANY($1)
                 ORDER BY delivery_id, attempt",
                &[&ids],
            )
            .await?;
        for r in &attempts {
            let id: i64 = r.get(0);
            if let Some(d) = out.iter_mut().find(|d| d.id == id) {
                d.history.push(Attempt {
                    attempt: r.get(1),
                    started_at: r.get(2),
                    finished_at: r.get(3),
                    status_code: r.get(4),
                    error: r.get(5),
                    duration_ms: r.get(6),
                });
            }
        }
        Ok((out, total))
    }

    /// Queue a fresh delivery of the same event (same body, same event uid) to the same
    /// subscription, due now. `None` when there is no such delivery.
    pub async fn replay_delivery(
        &self,
        org_id: i64,
        webhook_id: i64,
        delivery_uid: Uuid,
    ) -> Result<Option<Delivery>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!(
                    "WITH ins AS (
                       INSERT INTO webhook_deliveries (webhook_id, org_id, event_uid,
                         trigger_event, booking_uid, body, replay_of)
                       SELECT webhook_id, org_id, event_uid, trigger_event, booking_uid, body, id
                       FROM webhook_deliveries
                       WHERE org_id = $1 AND webhook_id = $2 AND uid = $3
                       RETURNING *, pg_notify('{CHANNEL}', '')::text AS n)
                     SELECT {DELIVERY_COLS} FROM ins d"
                ),
                &[&org_id, &webhook_id, &delivery_uid],
            )
            .await?;
        Ok(row.as_ref().map(Delivery::from_row))
    }

    /// Replay every original event delivered (or not) to a subscription with `created_at` in
    /// `[from, to)`: one fresh delivery each, when there are at most `max_rows` (else
    /// nothing is sent: [`Replayed::TooMany`]).
    pub async fn replay_range(
        &self,
        org_id: i64,
        webhook_id: i64,
        from: Timestamp,
        to: Timestamp,
        max_rows: i64,
    ) -> Result<Replayed> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let originals = "FROM webhook_deliveries
                       WHERE org_id = $1 AND webhook_id = $2 AND replay_of IS NULL
                         AND created_at >= $3 AND created_at < $4";
        let found: i64 = tx
            .query_one(
                &format!("SELECT count(*) FROM (SELECT 1 {originals} LIMIT $5::bigint + 1) x"),
                &[&org_id, &webhook_id, &from, &to, &max_rows],
            )
            .await?
            .get(0);
        if found > max_rows {
            return Ok(Replayed::TooMany);
        }
        let rows = tx
            .query(
                &format!(
                    "WITH ins AS (
                       INSERT INTO webhook_deliveries (webhook_id, org_id, event_uid,
                         trigger_event, booking_uid, body, replay_of)
                       SELECT webhook_id, org_id, event_uid, trigger_event, booking_uid, body, id
                       {originals}
                       ORDER BY created_at, id
                       RETURNING *, pg_notify('{CHANNEL}', '')::text AS n)
                     SELECT {DELIVERY_COLS} FROM ins d ORDER BY d.id"
                ),
                &[&org_id, &webhook_id, &from, &to],
            )
            .await?;
        tx.commit().await?;
        Ok(Replayed::Sent(
            rows.iter().map(Delivery::from_row).collect(),
        ))
    }

    /// Claim the next due attempt, if any: the delivery's attempt count goes up, its due time
    /// moves to the end of a lease of `lease_s` seconds (after which another worker may try
    /// again if this one died), and the attempt is recorded, all in one statement.
    /// `FOR UPDATE SKIP LOCKED` keeps concurrent claimers, in any process, off the same row;
    /// subscriptions whose breaker is open and inactive subscriptions are skipped.
    ///
    /// Subscriptions with a closed breaker are claimed from without locking the subscription
    /// row, so many workers can deliver to one subscriber at once. A half-open breaker
    /// (`breaker_threshold` straight failures, cooldown over) is claimed from with the
    /// subscription row locked too, and claiming closes the gate again for the lease, so that
    /// exactly one trial goes through until its outcome decides.
    pub async fn claim_delivery(
        &self,
        lease_s: f64,
        breaker_threshold: i32,
    ) -> Result<Option<Claimed>> {
        let c = self.conn().await?;
        for (gate, lock) in [("<", "d"), (">=", "d, w")] {
            let stmt = c.prepare_cached(&claim_sql(gate, lock)).await?;
            if let Some(r) = c.query_opt(&stmt, &[&lease_s, &breaker_threshold]).await? {
                return Ok(Some(claimed(&r)));
            }
        }
        Ok(None)
    }
}

/// The claim statement: `gate` compares straight failures with the threshold ($2), `lock`
/// names the tables locked (skipping rows other claimers hold).
fn claim_sql(gate: &str, lock: &str) -> String {
    format!(
        "WITH due AS (
                   SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
                   WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND w.active
                     AND w.consecutive_failures {gate} $2
                     AND (w.breaker_open_until IS NULL OR w.breaker_open_until <= now())
                   ORDER BY d.next_attempt_at, d.id
                   LIMIT 1
                   FOR UPDATE OF {lock} SKIP LOCKED
                 ), claimed AS (
                   UPDATE webhook_deliveries d SET attempts = d.attempts + 1,
                     next_attempt_at = now() + make_interval(secs => $1)
                   FROM due WHERE d.id = due.id
                   RETURNING d.id, d.uid, d.event_uid, d.webhook_id, d.org_id, d.attempts,
                     d.body, d.trigger_event
                 ), logged AS (
                   INSERT INTO webhook_attempts (delivery_id, attempt)
                   SELECT id, attempts FROM claimed
                 ), trial AS (
                   UPDATE webhooks w SET breaker_open_until = now() + make_interval(secs => $1)
                   FROM claimed c WHERE w.id = c.webhook_id AND w.consecutive_failures >= $2
                 )
                 SELECT c.id, c.uid, c.event_uid, c.webhook_id, c.org_id, c.attempts, c.body,
                   c.trigger_event, w.subscriber_url, w.secret, w.secret_key_id
                 FROM claimed c JOIN webhooks w ON w.id = c.webhook_id"
    )
}

fn claimed(r: &Row) -> Claimed {
    let secret: Option<Vec<u8>> = r.get(9);
    Claimed {
        delivery_id: r.get(0),
        uid: r.get(1),
        event_uid: r.get(2),
        webhook_id: r.get(3),
        org_id: r.get(4),
        attempt: r.get(5),
        body: r.get(6),
        trigger_event: r.get(7),
        subscriber_url: r.get(8),
        secret: secret.map(|bytes| Stored {
            bytes,
            key_id: r.get(10),
        }),
    }
}

impl Store {
    /// Record how a claimed attempt ended and update the subscription's breaker, in one
    /// transaction. `breaker` gets (straight failures, open until, database now) and returns
    /// the new pair; `outcome` gets the database's now and returns what to store. The
    /// delivery row changes only if this attempt is still its latest (a worker whose lease
    /// ran out cannot overwrite a newer attempt).
    pub async fn finish_attempt(
        &self,
        claimed: &Claimed,
        breaker: impl FnOnce(i32, Option<Timestamp>, Timestamp) -> (i32, Option<Timestamp>),
        outcome: impl FnOnce(Timestamp) -> Finished,
    ) -> Result<Finished> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let w = tx
            .query_opt(
                "SELECT consecutive_failures, breaker_open_until, now() FROM webhooks
                 WHERE id = $1 FOR UPDATE",
                &[&claimed.webhook_id],
            )
            .await?;
        let now: Timestamp = match &w {
            Some(r) => r.get(2),
            None => tx.query_one("SELECT now()", &[]).await?.get(0),
        };
        let gate = w.as_ref().map(|r| breaker(r.get(0), r.get(1), now));
        let f = outcome(now);
        // The three writes go out in one pipeline (one round trip).
        let update_breaker = async {
            match gate {
                Some((failures, until)) => tx
                    .execute(
                        "UPDATE webhooks SET consecutive_failures = $2, breaker_open_until = $3
                         WHERE id = $1",
                        &[&claimed.webhook_id, &failures, &until],
                    )
                    .await
                    .map(|_| ()),
                None => Ok(()),
            }
        };
        let update_attempt = async {
            tx.execute(
                "UPDATE webhook_attempts SET finished_at = now(), status_code = $3, error = $4,
               duration_ms = $5 WHERE delivery_id = $1 AND attempt = $2",
                &[
                    &claimed.delivery_id,
                    &claimed.attempt,
                    &f.status_code,
                    &f.error,
                    &f.duration_ms,
                ],
            )
            .await
        };
        let update_delivery = async {
            tx.execute(
                "UPDATE webhook_deliveries SET status = $3,
               next_attempt_at = COALESCE($4, next_attempt_at),
               last_status_code = $5, last_error = $6,
               delivered_at = CASE WHEN $3 = 'delivered' THEN now() ELSE delivered_at END
             WHERE id = $1 AND attempts = $2 AND status = 'pending'",
                &[
                    &claimed.delivery_id,
                    &claimed.attempt,
                    &f.status,
                    &f.next_attempt_at,
                    &f.status_code,
                    &f.error,
                ],
            )
            .await
        };
        futures::try_join!(update_breaker, update_attempt, update_delivery)?;
        tx.commit().await?;
        Ok(f)
    }

    /// Delete up to `limit` delivered or dead deliveries created more than `retention_s`
    /// seconds ago (with their attempts); returns how many.
    pub async fn purge_deliveries(&self, retention_s: f64, limit: i64) -> Result<u64> {
        let c = self.conn().await?;
        Ok(c.execute(
            "DELETE FROM webhook_deliveries WHERE id IN (
               SELECT id FROM webhook_deliveries
               WHERE status <> 'pending' AND created_at < now() - make_interval(secs => $1)
               ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
            &[&retention_s, &limit],
        )
        .await?)
    }

    /// The earliest due time of a pending delivery whose subscription may be tried (for
    /// sleeping until then).
    pub async fn next_delivery_due(&self) -> Result<Option<Timestamp>> {
        let c = self.conn().await?;
        Ok(c.query_one(
            "SELECT min(GREATEST(d.next_attempt_at, COALESCE(w.breaker_open_until, d.next_attempt_at)))
             FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
             WHERE d.status = 'pending' AND w.active",
            &[],
        )
        .await?
        .get(0))
    }

    /// What the background writers still have to do, across replicas (for /metrics).
    pub async fn backlog(&self) -> Result<Backlog> {
        let c = self.conn().await?;
        let r = c
            .query_one(
                "SELECT (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'),
                        (SELECT COALESCE(extract(epoch FROM now() - min(created_at)), 0)::float8
                           FROM webhook_deliveries WHERE status = 'pending'),
                        (SELECT count(*) FROM ics_pending)",
                &[],
            )
            .await?;
        Ok(Backlog {
            webhook_pending: r.get(0),
            webhook_oldest_pending_seconds: r.get(1),
            ics_pending: r.get(2),
        })
    }

    /// The 95th percentile of the time from a booking event to its webhook's delivery, over
    /// the deliveries made in the last `window_s` seconds (`None`: none made).
    pub async fn webhook_latency_p95(&self, window_s: f64) -> Result<Option<f64>> {
        let c = self.conn().await?;
        Ok(c.query_one(
            "SELECT percentile_cont(0.95) WITHIN GROUP
                      (ORDER BY extract(epoch FROM delivered_at - created_at))::float8
             FROM webhook_deliveries
             WHERE status = 'delivered' AND delivered_at > now() - make_interval(secs => $1)",
            &[&window_s],
        )
        .await?
        .get(0))
    }
}

/// See [`Store::backlog`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backlog {
    pub webhook_pending: i64,
    pub webhook_oldest_pending_seconds: f64,
    pub ics_pending: i64,
}

fn split(s: Option<&Stored>) -> (Option<Vec<u8>>, Option<String>) {
    match s {
        Some(s) => (Some(s.bytes.clone()), s.key_id.clone()),
        None => (None, None),
    }
}

/// The outbox rows of a booking event, inside the booking's transaction: builds the Cal.com
/// body (for a reschedule, with the booking it replaced) and enqueues it.
pub async fn booking_event(
    c: &impl GenericClient,
    trigger: crate::service::domain::webhooks::payload::Trigger,
    b: &crate::service::domain::booking::Booking,
) -> Result<u64> {
    use crate::service::domain::webhooks::payload::{body, Previous, Trigger};
    let previous = match (trigger, b.rescheduled_from_uid) {
        (Trigger::BookingRescheduled, Some(uid)) => {
            previous_booking(c, uid)
                .await?
                .map(|(id, start, end)| Previous {
                    uid,
                    id,
                    start,
                    end,
                })
        }
        _ => None,
    };
    let text = body(trigger, b, previous.as_ref()).to_string();
    enqueue(c, b.org_id, trigger.as_str(), b.uid, &text).await
}
