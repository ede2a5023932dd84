//! Bookings, slot holds and idempotency keys. Overlaps are refused by PostgreSQL itself (the
//! `occupancy` exclusion constraint over accepted bookings and holds, migrations 2 and 6);
//! this module turns its SQLSTATE 23P01 into [`StoreError::BookingConflict`].

use super::{classify, Result, Store, StoreError};
use crate::service::domain::booking::Booking;
use crate::service::domain::webhooks::payload::Trigger;
use deadpool_postgres::GenericClient;
use jiff::Timestamp;
use serde_json::Value;
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;
use uuid::Uuid;

const BOOKING_SELECT: &str = "SELECT b.id, b.uid, b.org_id, b.event_type_id, e.slug,
  COALESCE(b.title, e.title), u.id, u.name, u.email, u.time_zone, b.start_at, b.end_at, b.status,
  b.attendee, b.guests, b.metadata, b.rescheduled_from_uid, b.rescheduled_to_uid,
  b.cancellation_reason, b.created_at, b.updated_at, u.username, b.location,
  b.booking_fields_responses, b.rescheduling_reason, COALESCE(b.ical_uid, b.uid)
  FROM bookings b JOIN event_types e ON e.id = b.event_type_id JOIN users u ON u.id = b.host_user_id";

/// The row mapping stays with the query that selects it.
impl Booking {
    fn from_row(r: &Row) -> Booking {
        Booking {
            id: r.get(0),
            uid: r.get(1),
            org_id: r.get(2),
            event_type_id: r.get(3),
            event_type_slug: r.get(4),
            title: r.get(5),
            host_id: r.get(6),
            host_name: r.get(7),
            host_email: r.get(8),
            host_time_zone: r.get(9),
            start: r.get(10),
            end: r.get(11),
            status: r.get(12),
            attendee: r.get(13),
            guests: r.get(14),
            metadata: r.get(15),
            rescheduled_from_uid: r.get(16),
            rescheduled_to_uid: r.get(17),
            cancellation_reason: r.get(18),
            created_at: r.get(19),
            updated_at: r.get(20),
            host_username: r.get(21),
            location: r.get(22),
            booking_fields_responses: r.get(23),
            rescheduling_reason: r.get(24),
            ical_uid: r.get(25),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewBooking {
    pub org_id: i64,
    pub event_type_id: i64,
    pub start: Timestamp,
    pub end: Timestamp,
    pub attendee: Value,
    pub guests: Value,
    pub metadata: Value,
    /// A hold of this very slot that the booking uses up.
    pub reservation_uid: Option<Uuid>,
    pub location: Option<String>,
    pub booking_fields_responses: Value,
}

/// An `Idempotency-Key` and a fingerprint of the request it came with.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_hash: Vec<u8>,
}

/// A stored first result.
#[derive(Debug, Clone)]
pub struct Replay {
    pub status: u16,
    pub body: Value,
}

#[derive(Debug, Clone)]
pub enum BookOutcome {
    Created(Box<Booking>),
    /// The key was used before; this is the first result.
    Replayed(Replay),
}

/// A slot hold.
#[derive(Debug, Clone)]
pub struct Reservation {
    pub uid: Uuid,
    pub event_type_id: i64,
    pub start: Timestamp,
    pub end: Timestamp,
    pub expires_at: Timestamp,
    pub created_at: Timestamp,
}

/// A move of a booking to `[start, end)`; the fields given replace the old booking's.
#[derive(Debug, Clone, Default)]
pub struct Reschedule {
    pub start: Timestamp,
    pub end: Timestamp,
    pub reason: Option<String>,
    pub reservation_uid: Option<Uuid>,
    pub attendee: Option<Value>,
    pub guests: Option<Value>,
    pub metadata: Option<Value>,
    pub location: Option<Option<String>>,
    pub booking_fields_responses: Option<Value>,
}

/// Filters, order and page of `GET /v2/bookings`.
#[derive(Debug, Clone, Default)]
pub struct BookingFilter {
    /// Stored statuses (`accepted`, `cancelled`, ...).
    pub statuses: Vec<String>,
    /// Cal.com's `upcoming`: active bookings that end after now.
    pub upcoming: bool,
    /// Cal.com's `past`: active bookings that ended.
    pub past: bool,
    /// The attendee's or a guest's e-mail address (case-insensitively).
    pub attendee_email: Option<String>,
    /// The attendee's name, exactly.
    pub attendee_name: Option<String>,
    pub booking_uid: Option<Uuid>,
    /// Any of these event types (none: all).
    pub event_type_ids: Vec<i64>,
    /// Bookings of any of these hosts (none: all).
    pub host_ids: Vec<i64>,
    /// Starting at or after.
    pub after_start: Option<Timestamp>,
    /// Ending at or before.
    pub before_end: Option<Timestamp>,
    pub after_created: Option<Timestamp>,
    pub before_created: Option<Timestamp>,
    pub after_updated: Option<Timestamp>,
    pub before_updated: Option<Timestamp>,
    /// Sort keys in order; by start time when empty. The booking id breaks ties.
    pub sort: Vec<(SortKey, bool)>,
    /// A filter no booking can match (bookings of teams, a uid calops never made).
    pub matches_nothing: bool,
    pub take: i64,
    pub skip: i64,
}

/// What `GET /v2/bookings` can sort by (`bool` in [`BookingFilter::sort`]: descending).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Start,
    End,
    Created,
    Updated,
}

impl SortKey {
    fn column(self) -> &'static str {
        match self {
            SortKey::Start => "b.start_at",
            SortKey::End => "b.end_at",
            SortKey::Created => "b.created_at",
            SortKey::Updated => "b.updated_at",
        }
    }
}

/// Run `f` again (up to 8 times, with a short random pause) while it fails with a deadlock or
/// serialization failure. Concurrent inserts of overlapping ranges can deadlock while
/// PostgreSQL checks the exclusion constraint; the victim's transaction wrote nothing.
pub async fn retry_transient<T, F, Fut>(mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut attempt = 0;
    loop {
        match f().await {
            Err(StoreError::Transient(_)) if attempt < 7 => {
                attempt += 1;
                let ms = rand::random::<u64>() % (2 << attempt);
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            }
            other => return other,
        }
    }
}

/// 23P01 (an exclusion constraint said no) becomes a booking conflict.
fn conflict_or(e: tokio_postgres::Error, what: &str) -> StoreError {
    if e.code() == Some(&SqlState::EXCLUSION_VIOLATION) {
        StoreError::BookingConflict(format!(
            "{what} overlaps a booking or a held slot of the same host"
        ))
    } else {
        classify(e, what)
    }
}

/// Queue behind other writers of overlapping time of this host (see `calops_lock_time` in
/// migration 2): not the guarantee, it keeps overlapping inserts from deadlocking inside the
/// exclusion check.
async fn queue_for_time(
    c: &impl GenericClient,
    host: i64,
    start: Timestamp,
    end: Timestamp,
    before: i32,
    after: i32,
) -> Result<()> {
    c.execute(
        "SELECT calops_lock_time($1, calops_occupied($2, $3, $4, $5))",
        &[&host, &start, &end, &before, &after],
    )
    .await?;
    Ok(())
}

/// Holds that ran out no longer hold anything: drop those in the way of `[start, end)` widened.
/// Returns how many there were.
async fn drop_expired_holds(
    c: &impl GenericClient,
    host: i64,
    start: Timestamp,
    end: Timestamp,
    before: i32,
    after: i32,
) -> Result<u64> {
    Ok(c.execute(
        "DELETE FROM slot_reservations WHERE host_user_id = $1 AND expires_at <= now()
           AND occupied && calops_occupied($2, $3, $4, $5)",
        &[&host, &start, &end, &before, &after],
    )
    .await?)
}

/// The time zone of event type `e`'s host hours (its schedule, else the host's default one):
/// the zone whose local dates the per-day limit counts.
const HOST_TZ: &str =
    "COALESCE((SELECT s.time_zone FROM schedules s WHERE s.id = COALESCE(e.schedule_id,
   (SELECT d.id FROM schedules d WHERE d.user_id = e.user_id AND d.is_default LIMIT 1))), 'UTC')";

/// Insert an accepted booking inside `tx` and read it back; the event type's host and
/// buffers are copied. Every statement goes out in one pipeline (one round trip while the
/// time is queued for), in order: queue for the time, queue for the host's local date (only
/// with a per-day limit), drop expired holds in the way, use up the presented hold, insert
/// (only below the per-day limit), read back.
async fn insert_booking(
    tx: &deadpool_postgres::Transaction<'_>,
    b: &NewBooking,
    uid: Uuid,
    rescheduled: Option<(Uuid, Option<&str>)>,
) -> Result<Booking> {
    let (rescheduled_from, rescheduling_reason) = rescheduled.unzip();
    let rescheduling_reason = rescheduling_reason.flatten();
    let read_sql = format!("{BOOKING_SELECT} WHERE b.uid = $1");
    let day_lock_sql = format!(
        "SELECT pg_advisory_xact_lock(
           (e.user_id % 1073741824)::int4 + 1073741824,
           ((($3::timestamptz AT TIME ZONE {HOST_TZ})::date) - date '1970-01-01')::int4)
         FROM event_types e WHERE e.org_id = $1 AND e.id = $2 AND e.per_day_limit IS NOT NULL"
    );
    let insert_sql = format!(
        "INSERT INTO bookings (uid, org_id, event_type_id, host_user_id, start_at, end_at,
           status, before_buffer_minutes, after_buffer_minutes, attendee, guests, metadata,
           rescheduled_from_uid, location, booking_fields_responses, rescheduling_reason)
         SELECT $3, e.org_id, e.id, e.user_id, $4, $5, 'accepted', e.before_event_buffer,
           e.after_event_buffer, $6, $7, $8, $9, $10, $11, $12
         FROM event_types e WHERE e.org_id = $1 AND e.id = $2
           AND (e.per_day_limit IS NULL OR (
             SELECT count(*) FROM bookings o
             WHERE o.host_user_id = e.user_id AND o.event_type_id = e.id
               AND o.status = 'accepted'
               AND o.start_at > $4::timestamptz - interval '2 days'
               AND o.start_at < $4::timestamptz + interval '2 days'
               AND (o.start_at AT TIME ZONE {HOST_TZ})::date
                   = ($4::timestamptz AT TIME ZONE {HOST_TZ})::date) < e.per_day_limit)
         RETURNING id"
    );
    let (lock, day_lock, drop, use_hold, insert, read) = futures::try_join!(
        tx.prepare_cached(
            "SELECT calops_lock_time(user_id,
               calops_occupied($3, $4, before_event_buffer, after_event_buffer))
             FROM event_types WHERE org_id = $1 AND id = $2"
        ),
        tx.prepare_cached(&day_lock_sql),
        tx.prepare_cached(
            "DELETE FROM slot_reservations r USING event_types e
             WHERE e.org_id = $1 AND e.id = $2 AND r.host_user_id = e.user_id
               AND r.expires_at <= now()
               AND r.occupied && calops_occupied($3, $4, e.before_event_buffer, e.after_event_buffer)"
        ),
        tx.prepare_cached(
            "DELETE FROM slot_reservations WHERE uid = $1 AND org_id = $2
               AND event_type_id = $3 AND start_at = $4 AND end_at = $5"
        ),
        tx.prepare_cached(&insert_sql),
        tx.prepare_cached(&read_sql),
    )?;
    let hold = async {
        match b.reservation_uid {
            None => Ok(None),
            Some(r) => tx
                .execute(
                    &use_hold,
                    &[&r, &b.org_id, &b.event_type_id, &b.start, &b.end],
                )
                .await
                .map(|n| Some((r, n))),
        }
    };
    let (found, _, _, used, inserted, row) = futures::try_join!(
        async {
            tx.execute(&lock, &[&b.org_id, &b.event_type_id, &b.start, &b.end])
                .await
                .map_err(StoreError::from)
        },
        // Bookings of one host's local date queue here when the type has a per-day limit,
        // so the count in the insert sees every booking that went before.
        async {
            tx.execute(&day_lock, &[&b.org_id, &b.event_type_id, &b.start])
                .await
                .map_err(StoreError::from)
        },
        async {
            tx.execute(&drop, &[&b.org_id, &b.event_type_id, &b.start, &b.end])
                .await
                .map_err(StoreError::from)
        },
        async { hold.await.map_err(StoreError::from) },
        async {
            tx.query_opt(
                &insert,
                &[
                    &b.org_id,
                    &b.event_type_id,
                    &uid,
                    &b.start,
                    &b.end,
                    &b.attendee,
                    &b.guests,
                    &b.metadata,
                    &rescheduled_from,
                    &b.location,
                    &b.booking_fields_responses,
                    &rescheduling_reason,
                ],
            )
            .await
            .map_err(|e| conflict_or(e, "the booking"))
        },
        async { tx.query_opt(&read, &[&uid]).await.map_err(StoreError::from) },
    )?;
    if let Some((r, 0)) = used {
        return Err(StoreError::ReservationInvalid(format!(
            "reservation {r} does not exist (any more) or holds another slot"
        )));
    }
    match (inserted, row) {
        (Some(_), Some(row)) => Ok(Booking::from_row(&row)),
        (None, _) if found > 0 => Err(StoreError::BookingConflict(format!(
            "event type {} has reached its per-day booking limit on that date",
            b.event_type_id
        ))),
        _ => Err(StoreError::Invalid(format!(
            "event type {} not found",
            b.event_type_id
        ))),
    }
}

impl Store {
    /// Insert an accepted booking of `event_type_id` at `[start, end)`, copying the type's
    /// buffers and host. Returns the booking's uid.
    pub async fn insert_accepted_booking(
        &self,
        org_id: i64,
        event_type_id: i64,
        start: Timestamp,
        end: Timestamp,
        attendee: &Value,
    ) -> Result<uuid::Uuid> {
        let c = self.conn().await?;
        let uid = uuid::Uuid::new_v4();
        let n = c
            .execute(
                "INSERT INTO bookings (uid, org_id, event_type_id, host_user_id, start_at, end_at,
                   status, before_buffer_minutes, after_buffer_minutes, attendee)
                 SELECT $1, org_id, id, user_id, $3, $4, 'accepted', before_event_buffer,
                   after_event_buffer, $5
                 FROM event_types WHERE org_id = $2 AND id = $6",
                &[&uid, &org_id, &start, &end, attendee, &event_type_id],
            )
            .await
            .map_err(|e| classify(e, "the booking"))?;
        self.cache.flush_all();
        if n == 0 {
            return Err(StoreError::Invalid(format!(
                "event type {event_type_id} not found in organization {org_id}"
            )));
        }
        Ok(uid)
    }

    /// A booking id from the sequence; they are taken 64 at a time.
    async fn next_booking_id(&self) -> Result<i64> {
        let mut ids = self.booking_ids.lock().await;
        if ids.is_empty() {
            let c = self.conn().await?;
            let rows = c
                .query(
                    "SELECT nextval('bookings_id_seq') FROM generate_series(1, 64)",
                    &[],
                )
                .await?;
            // Handed out from the end: ascending.
            ids.extend(rows.iter().rev().map(|r| r.get::<_, i64>(0)));
        }
        ids.pop()
            .ok_or_else(|| StoreError::Unavailable("the booking id sequence gave no ids".into()))
    }

    /// Book in one statement: record the idempotency key (if any) with its response, queue
    /// for the time, insert, and enqueue the `BOOKING_CREATED` webhook events, as one
    /// transaction. For a booking without a hold, of an event type without a per-day limit
    /// whose slot needs no busy time to check (`slots::busy_only_overlaps`): then the
    /// exclusion constraint decides alone. The booking's id is taken ahead and its time stamps
    /// come from here, so the webhook body and the response (`render`) are made before the
    /// insert, from `config` (the cached event type and host). The booking joins a batch of
    /// others ([`super::batch`]) and books alone only when the batch cannot take it (a key
    /// seen before, for one, is replayed by the lone statement). `Ok(None)` when the event
    /// type is gone or has a per-day limit now (the caller takes the general path).
    pub async fn book_directly(
        &self,
        config: &super::cache::Config,
        b: &NewBooking,
        idem: Option<&IdempotencyKey>,
        render: impl Fn(&Booking) -> Value,
    ) -> Result<Option<BookOutcome>> {
        let et = &config.event_type;
        let booking = self.direct_booking(config, b).await?;
        let body = crate::service::domain::webhooks::payload::body(
            Trigger::BookingCreated,
            &booking,
            None,
        )
        .to_string();
        let event_uid = Uuid::new_v4();
        // The response a key replays, made once for the batch and the lone statement alike.
        let response = idem.map(|_| render(&booking));
        use crate::service::domain::instant::add_minutes;
        let occupied = add_minutes(b.start, -i64::from(et.before_event_buffer))
            .zip(add_minutes(b.end, i64::from(et.after_event_buffer)))
            .ok_or_else(|| {
                StoreError::Invalid(
                    "the booking's buffers reach past the instants the service can represent"
                        .into(),
                )
            })?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = super::batch::Job {
            booking: booking.clone(),
            occupied,
            event_uid,
            body: body.clone(),
            idem: idem
                .zip(response.clone())
                .map(|(k, response)| super::batch::Idem {
                    key: k.key.clone(),
                    request_hash: k.request_hash.clone(),
                    response,
                }),
            done: tx,
        };
        if self.batcher.submit(&self.cache, job).await {
            if let Ok(Some(stored)) = rx.await {
                return Ok(Some(BookOutcome::Created(Box::new(stored))));
            }
        }
        self.book_alone(config, b, booking, body, event_uid, idem.zip(response))
            .await
    }

    /// Batches written by this replica: (batches, bookings stored by them, bookings handed
    /// back to book alone).
    pub fn batch_stats(&self) -> (u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let s = &self.batcher.stats;
        (
            s.batches.load(Relaxed),
            s.stored.load(Relaxed),
            s.handed_back.load(Relaxed),
        )
    }

    /// The booking `book_directly` would store: id taken ahead, time stamps from now, host and
    /// event type from `config`.
    async fn direct_booking(
        &self,
        config: &super::cache::Config,
        b: &NewBooking,
    ) -> Result<Booking> {
        let et = &config.event_type;
        let now = Timestamp::now();
        // Microseconds, as PostgreSQL keeps them: the response shows what is stored.
        let now = Timestamp::from_microsecond(now.as_microsecond()).unwrap_or(now);
        let uid = Uuid::new_v4();
        Ok(Booking {
            id: self.next_booking_id().await?,
            uid,
            ical_uid: uid,
            org_id: b.org_id,
            event_type_id: b.event_type_id,
            event_type_slug: et.slug.clone(),
            title: et.title.clone(),
            host_id: et.user_id,
            host_name: config.host.name.clone(),
            host_email: config.host.email.clone(),
            host_time_zone: config.host.time_zone.clone(),
            host_username: config.host.username.clone(),
            start: b.start,
            end: b.end,
            status: "accepted".into(),
            attendee: b.attendee.clone(),
            guests: b.guests.clone(),
            metadata: b.metadata.clone(),
            rescheduled_from_uid: None,
            rescheduled_to_uid: None,
            cancellation_reason: None,
            location: b.location.clone(),
            booking_fields_responses: b.booking_fields_responses.clone(),
            rescheduling_reason: None,
            created_at: now,
            updated_at: now,
        })
    }

    /// `book_directly` for one booking, in its own statement; `idem` with the response it
    /// records.
    async fn book_alone(
        &self,
        config: &super::cache::Config,
        b: &NewBooking,
        booking: Booking,
        body: String,
        event_uid: Uuid,
        idem: Option<(&IdempotencyKey, Value)>,
    ) -> Result<Option<BookOutcome>> {
        let (idem, response) = idem.unzip();
        let et = &config.event_type;
        let now = booking.created_at;
        // With a key, the key's row goes in first, under the same condition as the booking: a
        // key seen before (or in flight: ON CONFLICT waits for it) books nothing.
        let (idem_cte, idem_join) = match idem {
            Some(_) => (
                "idem AS (
                   INSERT INTO idempotency_keys (org_id, key, request_hash, status, response)
                   SELECT $1, $16, $17, 201, $18 FROM event_types e
                   WHERE e.org_id = $1 AND e.id = $2 AND e.per_day_limit IS NULL
                   ON CONFLICT DO NOTHING RETURNING 1),",
                "CROSS JOIN idem",
            ),
            None => ("idem AS (SELECT 1),", ""),
        };
        let sql = format!(
            "WITH {idem_cte}
             ins AS (
               INSERT INTO bookings (id, uid, org_id, event_type_id, host_user_id, start_at,
                 end_at, status, before_buffer_minutes, after_buffer_minutes, attendee,
                 guests, metadata, created_at, updated_at, location, booking_fields_responses)
               SELECT $3, $4, e.org_id, e.id, e.user_id, $5, $6, 'accepted',
                 e.before_event_buffer, e.after_event_buffer, $7, $8, $9, $10, $10, $14, $15
               FROM event_types e {idem_join}
               -- Queued for the time before the row exists: calops_lock_time's hour locks,
               -- written out (a PL/pgSQL call costs more than the booking's insert).
               CROSS JOIN LATERAL (
                 SELECT count(pg_advisory_xact_lock(4611686018427387904
                          + (e.user_id % 1073741824) * 16777216 + (h % 16777216)))
                 FROM generate_series(
                   floor(extract(epoch FROM $5::timestamptz
                     - make_interval(mins => e.before_event_buffer)) / 3600)::bigint,
                   floor((extract(epoch FROM $6::timestamptz
                     + make_interval(mins => e.after_event_buffer)) - 1) / 3600)::bigint) h) q
               WHERE e.org_id = $1 AND e.id = $2 AND e.per_day_limit IS NULL
               RETURNING id),
             wh AS (
               INSERT INTO webhook_deliveries (webhook_id, org_id, event_uid, trigger_event,
                 booking_uid, body)
               SELECT w.id, w.org_id, $11, $12, $4, $13 FROM webhooks w CROSS JOIN ins
               WHERE w.org_id = $1 AND w.active AND $12 = ANY(w.triggers)
               RETURNING pg_notify('calops_webhooks', ''))
             SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM idem)"
        );
        let c = self.conn().await?;
        let stmt = c.prepare_cached(&sql).await?;
        let trigger = Trigger::BookingCreated.as_str();
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![
            &b.org_id,
            &b.event_type_id,
            &booking.id,
            &booking.uid,
            &b.start,
            &b.end,
            &b.attendee,
            &b.guests,
            &b.metadata,
            &now,
            &event_uid,
            &trigger,
            &body,
            &b.location,
            &b.booking_fields_responses,
        ];
        if let (Some(k), Some(r)) = (idem, &response) {
            params.extend([
                &k.key as &(dyn tokio_postgres::types::ToSql + Sync),
                &k.request_hash,
                r,
            ]);
        }
        let mut dropped_holds = false;
        loop {
            match c.query_one(&stmt, &params).await {
                Ok(row) => {
                    if row.get::<_, i64>(0) == 1 {
                        self.cache.invalidate_host(et.user_id);
                        return Ok(Some(BookOutcome::Created(Box::new(booking))));
                    }
                    return match idem {
                        // The key was there first: its result.
                        Some(k) if row.get::<_, i64>(1) == 0 => match replay(&c, b.org_id, k).await? {
                            Some(r) => Ok(Some(BookOutcome::Replayed(r))),
                            None => Err(StoreError::Conflict(
                                "a request with this Idempotency-Key is still in progress; retry shortly"
                                    .into(),
                            )),
                        },
                        _ => Ok(None),
                    };
                }
                Err(e) if e.code() == Some(&SqlState::EXCLUSION_VIOLATION) && !dropped_holds => {
                    // Holds that ran out hold nothing: drop those in the way and try once more.
                    dropped_holds = true;
                    let n = drop_expired_holds(
                        &c,
                        et.user_id,
                        b.start,
                        b.end,
                        et.before_event_buffer,
                        et.after_event_buffer,
                    )
                    .await?;
                    if n == 0 {
                        return Err(conflict_or(e, "the booking"));
                    }
                }
                Err(e) => return Err(conflict_or(e, "the booking")),
            }
        }
    }

    /// The stored first result of an idempotency key, if its request finished.
    pub async fn idempotent_replay(
        &self,
        org_id: i64,
        k: &IdempotencyKey,
    ) -> Result<Option<Replay>> {
        let c = self.conn().await?;
        replay(&c, org_id, k).await
    }

    /// Book, honouring an idempotency key: a key seen before returns its first result (also
    /// when the first request is still running: the second waits for it). `render` gives the
    /// response body stored for replays.
    pub async fn create_booking(
        &self,
        b: &NewBooking,
        idem: Option<&IdempotencyKey>,
        render: impl Fn(&Booking) -> Value,
    ) -> Result<BookOutcome> {
        let mut c = self.conn().await?;
        if let Some(k) = idem {
            if let Some(r) = replay(&c, b.org_id, k).await? {
                return Ok(BookOutcome::Replayed(r));
            }
        }
        let tx = c.transaction().await?;
        if let Some(k) = idem {
            // Blocks while another request with this key is in flight.
            let fresh = tx
                .execute(
                    "INSERT INTO idempotency_keys (org_id, key, request_hash) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                    &[&b.org_id, &k.key, &k.request_hash],
                )
                .await?;
            if fresh == 0 {
                tx.rollback().await?;
                return match replay(&c, b.org_id, k).await? {
                    Some(r) => Ok(BookOutcome::Replayed(r)),
                    None => Err(StoreError::Conflict(
                        "a request with this Idempotency-Key is still in progress; retry shortly"
                            .into(),
                    )),
                };
            }
        }
        let booking = insert_booking(&tx, b, Uuid::new_v4(), None).await?;
        super::webhooks::booking_event(&tx, Trigger::BookingCreated, &booking).await?;
        if let Some(k) = idem {
            tx.execute(
                "UPDATE idempotency_keys SET status = 201, response = $3 WHERE org_id = $1 AND key = $2",
                &[&b.org_id, &k.key, &render(&booking)],
            )
            .await?;
        }
        tx.commit().await?;
        self.cache.invalidate_host(booking.host_id);
        Ok(BookOutcome::Created(Box::new(booking)))
    }

    pub async fn get_booking(&self, org_id: i64, uid: Uuid) -> Result<Option<Booking>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!("{BOOKING_SELECT} WHERE b.org_id = $1 AND b.uid = $2"),
                &[&org_id, &uid],
            )
            .await?;
        Ok(row.as_ref().map(Booking::from_row))
    }

    /// One page of an organization's bookings and the total count that match the filter.
    pub async fn list_bookings(
        &self,
        org_id: i64,
        f: &BookingFilter,
    ) -> Result<(Vec<Booking>, i64)> {
        if f.matches_nothing {
            return Ok((Vec::new(), 0));
        }
        let c = self.conn().await?;
        // Cal.com's `upcoming` and `past` are active bookings (accepted or pending) that end
        // after, or by, now; several status filters together mean any of them.
        let filtered = !f.statuses.is_empty() || f.upcoming || f.past;
        let filter = "WHERE b.org_id = $1
               AND (NOT $6 OR b.status = ANY($2)
                    OR ($7 AND b.status IN ('accepted', 'pending') AND b.end_at > now())
                    OR ($8 AND b.status IN ('accepted', 'pending') AND b.end_at <= now()))
               AND ($3::timestamptz IS NULL OR b.start_at >= $3)
               AND ($4::timestamptz IS NULL OR b.end_at <= $4)
               AND (cardinality($5::int8[]) = 0 OR b.event_type_id = ANY($5))
               AND ($9::text IS NULL OR lower(b.attendee->>'email') = lower($9)
                    OR EXISTS (SELECT 1 FROM jsonb_array_elements_text(b.guests) g
                               WHERE lower(g) = lower($9)))
               AND ($10::text IS NULL OR b.attendee->>'name' = $10)
               AND ($11::uuid IS NULL OR b.uid = $11)
               AND (cardinality($12::int8[]) = 0 OR b.host_user_id = ANY($12))
               AND ($13::timestamptz IS NULL OR b.created_at >= $13)
               AND ($14::timestamptz IS NULL OR b.created_at <= $14)
               AND ($15::timestamptz IS NULL OR b.updated_at >= $15)
               AND ($16::timestamptz IS NULL OR b.updated_at <= $16)";
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 16] = [
            &org_id,
            &f.statuses,
            &f.after_start,
            &f.before_end,
            &f.event_type_ids,
            &filtered,
            &f.upcoming,
            &f.past,
            &f.attendee_email,
            &f.attendee_name,
            &f.booking_uid,
            &f.host_ids,
            &f.after_created,
            &f.before_created,
            &f.after_updated,
            &f.before_updated,
        ];
        // Sort columns come from `SortKey`, never from input.
        let mut order: Vec<String> = f
            .sort
            .iter()
            .map(|(k, desc)| format!("{} {}", k.column(), if *desc { "DESC" } else { "ASC" }))
            .collect();
        if order.is_empty() {
            order.push("b.start_at ASC".into());
        }
        order.push("b.id ASC".into());
        let mut page = params.to_vec();
        page.extend([
            &f.take as &(dyn tokio_postgres::types::ToSql + Sync),
            &f.skip,
        ]);
        let rows = c
            .query(
                &format!(
                    "{BOOKING_SELECT} {filter} ORDER BY {} LIMIT $17 OFFSET $18",
                    order.join(", ")
                ),
                &page,
            )
            .await?;
        let total: i64 = c
            .query_one(
                &format!("SELECT count(*) FROM bookings b {filter}"),
                &params,
            )
            .await?
            .get(0);
        Ok((rows.iter().map(Booking::from_row).collect(), total))
    }

    /// Cancel an accepted booking. `None` when it is not in `org_id`.
    pub async fn cancel_booking(
        &self,
        org_id: i64,
        uid: Uuid,
        reason: Option<&str>,
    ) -> Result<Option<Booking>> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let Some(status) = lock_booking(&tx, org_id, uid).await? else {
            return Ok(None);
        };
        if status != "accepted" {
            return Err(StoreError::NotActive(format!(
                "booking {uid} is {status}; only accepted bookings can be cancelled"
            )));
        }
        tx.execute(
            "UPDATE bookings SET status = 'cancelled', cancellation_reason = $2, updated_at = now()
             WHERE uid = $1",
            &[&uid, &reason],
        )
        .await?;
        let row = tx
            .query_one(&format!("{BOOKING_SELECT} WHERE b.uid = $1"), &[&uid])
            .await?;
        let booking = Booking::from_row(&row);
        super::webhooks::booking_event(&tx, Trigger::BookingCancelled, &booking).await?;
        tx.commit().await?;
        self.cache.invalidate_host(booking.host_id);
        Ok(Some(booking))
    }

    /// Move an accepted booking to `[start, end)` in one transaction: the old booking is
    /// cancelled and linked to a new one; when the new time is taken nothing changes.
    /// Returns the new booking; `None` when the old one is not in `org_id`.
    pub async fn reschedule_booking(
        &self,
        org_id: i64,
        uid: Uuid,
        r: &Reschedule,
    ) -> Result<Option<Booking>> {
        let (start, end, reason) = (r.start, r.end, r.reason.as_deref());
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        // Queue for the old and the new time (and between) first, then lock the row.
        tx.execute(
            "SELECT calops_lock_time(host_user_id, range_merge(occupied,
               calops_occupied($3, $4, before_buffer_minutes, after_buffer_minutes)))
             FROM bookings WHERE org_id = $1 AND uid = $2",
            &[&org_id, &uid, &start, &end],
        )
        .await?;
        let Some(status) = lock_booking(&tx, org_id, uid).await? else {
            return Ok(None);
        };
        if status != "accepted" {
            return Err(StoreError::NotActive(format!(
                "booking {uid} is {status}; only accepted bookings can be rescheduled"
            )));
        }
        let old = tx
            .query_one(
                "SELECT event_type_id, attendee, guests, metadata, location, booking_fields_responses
                 FROM bookings WHERE uid = $1",
                &[&uid],
            )
            .await?;
        let new_uid = Uuid::new_v4();
        // Free the old time first, so the new time may overlap it.
        tx.execute(
            "UPDATE bookings SET status = 'cancelled', rescheduled_to_uid = $2,
               cancellation_reason = $3, updated_at = now() WHERE uid = $1",
            &[&uid, &new_uid, &reason],
        )
        .await?;
        // What the request does not change carries over from the old booking.
        let nb = NewBooking {
            org_id,
            event_type_id: old.get(0),
            start,
            end,
            attendee: r.attendee.clone().unwrap_or_else(|| old.get(1)),
            guests: r.guests.clone().unwrap_or_else(|| old.get(2)),
            metadata: r.metadata.clone().unwrap_or_else(|| old.get(3)),
            reservation_uid: r.reservation_uid,
            location: r.location.clone().unwrap_or_else(|| old.get(4)),
            booking_fields_responses: r
                .booking_fields_responses
                .clone()
                .unwrap_or_else(|| old.get(5)),
        };
        let booking = insert_booking(&tx, &nb, new_uid, Some((uid, reason))).await?;
        super::webhooks::booking_event(&tx, Trigger::BookingRescheduled, &booking).await?;
        tx.commit().await?;
        // The old booking had the same host (a reschedule keeps the event type).
        self.cache.invalidate_host(booking.host_id);
        Ok(Some(booking))
    }

    /// Hold `[start, end)` of an event type's host for `ttl_seconds`; with `replaces`, that
    /// live hold of the organization gives way to this one (which keeps its uid), in one
    /// transaction. `None` when the event type (or the hold to replace) is not there.
    pub async fn create_reservation(
        &self,
        org_id: i64,
        event_type_id: i64,
        start: Timestamp,
        end: Timestamp,
        ttl_seconds: i64,
        replaces: Option<Uuid>,
    ) -> Result<Option<Reservation>> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let mut old_host = None;
        if let Some(old) = replaces {
            let Some(row) = tx
                .query_opt(
                    "DELETE FROM slot_reservations WHERE org_id = $1 AND uid = $2
                       AND expires_at > now() RETURNING host_user_id",
                    &[&org_id, &old],
                )
                .await?
            else {
                return Ok(None);
            };
            old_host = Some(row.get::<_, i64>(0));
        }
        let Some(et) = tx
            .query_opt(
                "SELECT user_id, before_event_buffer, after_event_buffer FROM event_types
                 WHERE org_id = $1 AND id = $2",
                &[&org_id, &event_type_id],
            )
            .await?
        else {
            return Ok(None);
        };
        let (host, before, after): (i64, i32, i32) = (et.get(0), et.get(1), et.get(2));
        queue_for_time(&tx, host, start, end, before, after).await?;
        drop_expired_holds(&tx, host, start, end, before, after).await?;
        let uid = replaces.unwrap_or_else(Uuid::new_v4);
        let row = tx
            .query_one(
                "INSERT INTO slot_reservations (uid, org_id, event_type_id, host_user_id, start_at,
                   end_at, before_buffer_minutes, after_buffer_minutes, occupied, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, calops_occupied($5, $6, $7, $8),
                   now() + make_interval(secs => $9::bigint::double precision))
                 RETURNING expires_at, created_at",
                &[
                    &uid,
                    &org_id,
                    &event_type_id,
                    &host,
                    &start,
                    &end,
                    &before,
                    &after,
                    &ttl_seconds,
                ],
            )
            .await
            .map_err(|e| conflict_or(e, "the reservation"))?;
        tx.commit().await?;
        self.cache.invalidate_host(host);
        if let Some(h) = old_host.filter(|h| *h != host) {
            self.cache.invalidate_host(h);
        }
        Ok(Some(Reservation {
            uid,
            event_type_id,
            start,
            end,
            expires_at: row.get(0),
            created_at: row.get(1),
        }))
    }

    /// A live hold of the organization.
    pub async fn get_reservation(&self, org_id: i64, uid: Uuid) -> Result<Option<Reservation>> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                "SELECT uid, event_type_id, start_at, end_at, expires_at, created_at
                 FROM slot_reservations WHERE org_id = $1 AND uid = $2 AND expires_at > now()",
                &[&org_id, &uid],
            )
            .await?;
        Ok(row.map(|r| Reservation {
            uid: r.get(0),
            event_type_id: r.get(1),
            start: r.get(2),
            end: r.get(3),
            expires_at: r.get(4),
            created_at: r.get(5),
        }))
    }

    /// Release a hold early. `false` when there is none with this uid in `org_id`.
    pub async fn delete_reservation(&self, org_id: i64, uid: Uuid) -> Result<bool> {
        let c = self.conn().await?;
        let host: Option<i64> = c
            .query_opt(
                "DELETE FROM slot_reservations WHERE org_id = $1 AND uid = $2
                 RETURNING host_user_id",
                &[&org_id, &uid],
            )
            .await?
            .map(|r| r.get(0));
        if let Some(h) = host {
            self.cache.invalidate_host(h);
        }
        Ok(host.is_some())
    }
}

async fn replay(c: &impl GenericClient, org_id: i64, k: &IdempotencyKey) -> Result<Option<Replay>> {
    let row = c
        .query_opt(
            "SELECT request_hash, status, response FROM idempotency_keys
             WHERE org_id = $1 AND key = $2 AND status IS NOT NULL",
            &[&org_id, &k.key],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let hash: Vec<u8> = row.get(0);
    if hash != k.request_hash {
        return Err(StoreError::IdempotencyMismatch(
            "this Idempotency-Key was used with a different request; use a new key".into(),
        ));
    }
    let status: i32 = row.get(1);
    Ok(Some(Replay {
        status: u16::try_from(status).unwrap_or(200),
        body: row.get(2),
    }))
}

/// Lock a booking of `org_id` for the rest of the transaction; its status, or `None`.
async fn lock_booking(tx: &impl GenericClient, org_id: i64, uid: Uuid) -> Result<Option<String>> {
    Ok(tx
        .query_opt(
            "SELECT status FROM bookings WHERE org_id = $1 AND uid = $2 FOR UPDATE",
            &[&org_id, &uid],
        )
        .await?
        .map(|r| r.get(0)))
}

/// A composite booking failed at one segment (its index in the request).
#[derive(Debug)]
pub struct SegmentError {
    pub segment: usize,
    pub error: StoreError,
}

/// The result of a composite booking.
#[derive(Debug)]
pub enum CompositeOutcome {
    Created(Vec<Booking>),
    /// The Idempotency-Key was used before; this is the first result.
    Replayed(Replay),
}

impl Store {
    /// Book every segment in one transaction: all or nothing. Each segment goes through the
    /// same insert as a single booking (the exclusion constraint decides); the time of every
    /// segment is queued for first, in one global order (host, then time), so that composites
    /// sharing hosts wait for each other instead of deadlocking. A failure names its segment.
    /// An idempotency key works as for single bookings (`render` gives the stored response).
    pub async fn create_composite(
        &self,
        segments: &[NewBooking],
        idem: Option<&IdempotencyKey>,
        render: impl Fn(&[Booking]) -> Value,
    ) -> std::result::Result<CompositeOutcome, SegmentError> {
        let whole = |error: StoreError| SegmentError { segment: 0, error };
        let org_id = segments.first().map(|s| s.org_id).unwrap_or_default();
        let mut c = self.conn().await.map_err(whole)?;
        if let Some(k) = idem {
            if let Some(r) = replay(&c, org_id, k).await.map_err(whole)? {
                return Ok(CompositeOutcome::Replayed(r));
            }
        }
        let tx = c.transaction().await.map_err(|e| whole(e.into()))?;
        if let Some(k) = idem {
            // Blocks while another request with this key is in flight.
            let fresh = tx
                .execute(
                    "INSERT INTO idempotency_keys (org_id, key, request_hash) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                    &[&org_id, &k.key, &k.request_hash],
                )
                .await
                .map_err(|e| whole(e.into()))?;
            if fresh == 0 {
                tx.rollback().await.map_err(|e| whole(e.into()))?;
                return match replay(&c, org_id, k).await.map_err(whole)? {
                    Some(r) => Ok(CompositeOutcome::Replayed(r)),
                    None => Err(whole(StoreError::Conflict(
                        "a request with this Idempotency-Key is still in progress; retry shortly"
                            .into(),
                    ))),
                };
            }
        }
        let mut order = Vec::with_capacity(segments.len());
        for (i, s) in segments.iter().enumerate() {
            let et = tx
                .query_opt(
                    "SELECT user_id, before_event_buffer, after_event_buffer FROM event_types
                     WHERE org_id = $1 AND id = $2",
                    &[&s.org_id, &s.event_type_id],
                )
                .await
                .map_err(|e| SegmentError {
                    segment: i,
                    error: e.into(),
                })?
                .ok_or_else(|| SegmentError {
                    segment: i,
                    error: StoreError::Invalid(format!("event type {} not found", s.event_type_id)),
                })?;
            let (host, before, after): (i64, i32, i32) = (et.get(0), et.get(1), et.get(2));
            order.push((host, s.start, i, before, after));
        }
        order.sort();
        for (host, start, i, before, after) in &order {
            queue_for_time(&tx, *host, *start, segments[*i].end, *before, *after)
                .await
                .map_err(|error| SegmentError { segment: *i, error })?;
        }
        let mut booked = Vec::with_capacity(segments.len());
        for (i, s) in segments.iter().enumerate() {
            let b = insert_booking(&tx, s, Uuid::new_v4(), None)
                .await
                .map_err(|error| SegmentError { segment: i, error })?;
            // Each segment is a booking of its own for subscribers, in the same transaction.
            super::webhooks::booking_event(&tx, Trigger::BookingCreated, &b)
                .await
                .map_err(|error| SegmentError { segment: i, error })?;
            booked.push(b);
        }
        if let Some(k) = idem {
            tx.execute(
                "UPDATE idempotency_keys SET status = 201, response = $3 WHERE org_id = $1 AND key = $2",
                &[&org_id, &k.key, &render(&booked)],
            )
            .await
            .map_err(|e| whole(e.into()))?;
        }
        tx.commit().await.map_err(|e| whole(e.into()))?;
        for b in &booked {
            self.cache.invalidate_host(b.host_id);
        }
        Ok(CompositeOutcome::Created(booked))
    }
}
