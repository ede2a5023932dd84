//! Group commit for direct bookings ([`super::Store::book_directly`]): requests that arrive
//! while earlier ones are being written wait in a queue, and the writer takes everything queued
//! and inserts it with one statement, one transaction. The database's cost per transaction (planning-free but not free: executor
//! start, snapshot, commit record, the cache notification's commit lock, a round trip) is then
//! paid once per batch instead of once per booking.
//!
//! Nothing about the guarantee changes: the rows still go through the `occupancy` exclusion
//! constraint, and the batch queues for each hour it touches (`calops_lock_time`'s locks,
//! taken in ascending order like every other writer's). A booking the batch cannot take is
//! handed back, and its request books alone through the one-statement path, which gives the
//! exact answer (201, or 409 `booking_conflict` after dropping expired holds in the way):
//! - two bookings of one batch that overlap each other (the later ones go alone);
//! - a second booking of the batch with the same `Idempotency-Key`;
//! - a booking whose `Idempotency-Key` is already recorded (skipped by the batch: the lone
//!   statement replays the first result, or waits for the request that holds the key);
//! - any error of the batch statement (it overlaps a booking or hold committed before, the
//!   database is gone): then every booking of the batch goes alone.
//!
//! A batch waits for no lock longer than [`LOCK_TIMEOUT`] (another transaction holding an hour
//! it needs, or an idempotency key in flight): past that it fails and its bookings go alone,
//! so one blocked host never holds up the bookings of every other behind it.

use super::cache::SlotCache;
use crate::service::domain::booking::Booking;
use jiff::Timestamp;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// The most bookings one statement inserts.
const MAX_BATCH: usize = 64;
/// How long a batch waits for a lock before it gives its bookings back (`lock_timeout`).
pub const LOCK_TIMEOUT: &str = "500ms";
/// How long the writer waits for its connection.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// One booking to write, made ready by the caller (id, uid, time stamps, webhook body).
pub struct Job {
    pub booking: Booking,
    /// `[start - before buffer, end + after buffer)`: what the booking occupies.
    pub occupied: (Timestamp, Timestamp),
    pub event_uid: Uuid,
    pub body: String,
    /// The request's `Idempotency-Key`, recorded with the booking.
    pub idem: Option<Idem>,
    /// `Some` once stored; `None`: book alone.
    pub done: oneshot::Sender<Option<Booking>>,
}

/// An `Idempotency-Key` with its request's fingerprint and the response to replay.
pub struct Idem {
    pub key: String,
    pub request_hash: Vec<u8>,
    pub response: serde_json::Value,
}

/// Batches written and the bookings they stored, for /metrics.
#[derive(Debug, Default)]
pub struct Stats {
    pub batches: AtomicU64,
    pub stored: AtomicU64,
    pub handed_back: AtomicU64,
}

/// The queue and its writer (started on first use, ended when the last `Store` is dropped).
pub struct Batcher {
    database: crate::pg::Connector,
    queue: OnceLock<mpsc::Sender<Job>>,
    pub stats: Arc<Stats>,
}

impl Batcher {
    pub fn new(database: crate::pg::Connector) -> Batcher {
        Batcher {
            database,
            queue: OnceLock::new(),
            stats: Default::default(),
        }
    }

    /// Queue `job`; its answer arrives on the job's `done`. `false` (the job is dropped) only
    /// when the writer is gone.
    pub async fn submit(&self, cache: &Arc<SlotCache>, job: Job) -> bool {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(1024);
            let (db, cache, stats) = (self.database.clone(), cache.clone(), self.stats.clone());
            let started = std::thread::Builder::new()
                .name("calops-bookings".into())
                .spawn(move || {
                    match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt.block_on(writer(db, cache, rx, stats)),
                        // Without its runtime the queue closes: every booking books alone.
                        Err(e) => tracing::warn!(error = %e, "booking batch writer cannot start"),
                    }
                });
            if let Err(e) = started {
                tracing::warn!(error = %e, "booking batch writer cannot start");
            }
            tx
        });
        queue.send(job).await.is_ok()
    }
}

/// Move what is queued into `pending`, up to a batch.
fn drain(queue: &mut mpsc::Receiver<Job>, pending: &mut Vec<Job>) {
    while pending.len() < MAX_BATCH {
        match queue.try_recv() {
            Ok(j) => pending.push(j),
            Err(_) => break,
        }
    }
}

/// One writer per replica, on a thread of its own with its own connection (kept while it
/// works; made again after an error): everything queued while a batch is written becomes the
/// next batch. Its own thread answers the database at once, without waiting behind the HTTP
/// tasks for a turn. (Measured on two cores by `benches/bookings.rs`: on its own thread, batches
/// of 9 at 4,900-6,400 bookings/s, median 6,000; as a task of the service's runtime, batches of
/// 13 at 5,300-6,200/s; two writers on two connections made batches half as big and
/// 4,400-4,900/s; two batches in flight on one connection, 5,100-5,200/s. Replicas scale out.)
async fn writer(
    database: crate::pg::Connector,
    cache: Arc<SlotCache>,
    mut queue: mpsc::Receiver<Job>,
    stats: Arc<Stats>,
) {
    let mut conn: Option<(tokio_postgres::Client, tokio_postgres::Statement)> = None;
    while let Some(first) = queue.recv().await {
        let mut pending = vec![first];
        drain(&mut queue, &mut pending);
        let c = match conn.take().filter(|(c, _)| !c.is_closed()) {
            Some(c) => c,
            None => match connect(&database).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "booking batch: no connection; each books alone");
                    hand_back(&stats, pending);
                    continue;
                }
            },
        };
        while !pending.is_empty() {
            write(&c, &cache, &stats, std::mem::take(&mut pending)).await;
            drain(&mut queue, &mut pending);
        }
        conn = Some(c);
    }
}

/// The writer's connection, with the batch statement prepared on it.
async fn connect(
    database: &crate::pg::Connector,
) -> Result<(tokio_postgres::Client, tokio_postgres::Statement), tokio_postgres::Error> {
    let database = database.adjusted(|database| {
        // Keep any options the database URL sets.
        let options = match database.get_options() {
            Some(o) => format!("{o} -c lock_timeout={LOCK_TIMEOUT}"),
            None => format!("-c lock_timeout={LOCK_TIMEOUT}"),
        };
        database.connect_timeout(CONNECT_TIMEOUT).options(options);
    });
    let (c, connection) = database.connect().await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "booking batch connection ended");
        }
    });
    let stmt = c.prepare(INSERT).await?;
    Ok((c, stmt))
}

fn hand_back(stats: &Stats, jobs: Vec<Job>) {
    stats
        .handed_back
        .fetch_add(jobs.len() as u64, Ordering::Relaxed);
    for j in jobs {
        let _ = j.done.send(None);
    }
}

/// What decides whether a booking can share a batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Claim<'a> {
    pub host: i64,
    pub from: Timestamp,
    pub to: Timestamp,
    /// Organization and `Idempotency-Key`, if any.
    pub key: Option<(i64, &'a str)>,
}

/// Which bookings can share a batch: those that overlap no earlier booking of the same host
/// in the batch and reuse no earlier one's idempotency key (in queue order).
pub fn fits(claims: &[Claim<'_>]) -> Vec<bool> {
    let mut kept: Vec<Claim<'_>> = Vec::with_capacity(claims.len());
    claims
        .iter()
        .map(|c| {
            let clash = kept.iter().any(|k| {
                (k.host == c.host && k.from < c.to && c.from < k.to)
                    || (c.key.is_some() && k.key == c.key)
            });
            if !clash {
                kept.push(*c);
            }
            !clash
        })
        .collect()
}

async fn write(
    (c, stmt): &(tokio_postgres::Client, tokio_postgres::Statement),
    cache: &SlotCache,
    stats: &Stats,
    jobs: Vec<Job>,
) {
    let fit = fits(
        &jobs
            .iter()
            .map(|j| Claim {
                host: j.booking.host_id,
                from: j.occupied.0,
                to: j.occupied.1,
                key: j.idem.as_ref().map(|k| (j.booking.org_id, k.key.as_str())),
            })
            .collect::<Vec<_>>(),
    );
    let (mut batch, mut alone) = (Vec::new(), Vec::new());
    for (j, fits) in jobs.into_iter().zip(fit) {
        if fits {
            batch.push(j)
        } else {
            alone.push(j)
        }
    }
    match insert(c, stmt, &batch).await {
        Ok(stored) => {
            stats.batches.fetch_add(1, Ordering::Relaxed);
            for j in batch {
                if stored.contains(&j.booking.id) {
                    // Before the answer: the client reads its own write from this replica.
                    cache.invalidate_host(j.booking.host_id);
                    stats.stored.fetch_add(1, Ordering::Relaxed);
                    let _ = j.done.send(Some(j.booking));
                } else {
                    alone.push(j);
                }
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, bookings = batch.len(), "booking batch failed; each books alone");
            alone.append(&mut batch);
        }
    }
    hand_back(stats, alone);
}

/// The batch statement. Rows arrive as arrays; the event type must still exist, belong to the
/// organization and have no per-day limit (else the booking goes alone, and the one-statement
/// path sends it on to the general path). Every hour the batch touches is locked first, in
/// ascending order; then the idempotency keys are recorded with their responses (a key already
/// there, or in flight, is skipped once its first request ends), and each booking without a
/// key or whose key went in is inserted, with its `BOOKING_CREATED` deliveries. Returns the
/// ids stored.
const INSERT: &str = "WITH r AS (
   SELECT * FROM unnest($1::int8[], $2::uuid[], $3::int8[], $4::int8[], $5::timestamptz[],
     $6::timestamptz[], $7::jsonb[], $8::jsonb[], $9::jsonb[], $10::timestamptz[], $11::uuid[],
     $12::text[], $14::text[], $15::bytea[], $16::jsonb[], $17::text[], $18::jsonb[])
     AS r(id, uid, org_id, et, start_at, end_at, attendee, guests, metadata, at, event_uid, body,
          key, request_hash, response, location, responses)),
 rows AS (
   SELECT r.*, e.user_id, e.before_event_buffer AS bb, e.after_event_buffer AS ab,
     calops_occupied(r.start_at, r.end_at, e.before_event_buffer, e.after_event_buffer) AS occ
   FROM r JOIN event_types e ON e.org_id = r.org_id AND e.id = r.et AND e.per_day_limit IS NULL),
 locks AS (
   SELECT count(pg_advisory_xact_lock(k)) AS n FROM (
     SELECT DISTINCT 4611686018427387904 + (user_id % 1073741824) * 16777216 + (h % 16777216) AS k
     FROM rows CROSS JOIN LATERAL generate_series(
       floor(extract(epoch FROM lower(occ)) / 3600)::bigint,
       floor((extract(epoch FROM upper(occ)) - 1) / 3600)::bigint) h
     ORDER BY 1) keys),
 idem AS (
   INSERT INTO idempotency_keys (org_id, key, request_hash, status, response)
   SELECT org_id, key, request_hash, 201, response FROM rows CROSS JOIN locks
   WHERE key IS NOT NULL
   ON CONFLICT DO NOTHING
   RETURNING org_id, key),
 ins AS (
   INSERT INTO bookings (id, uid, org_id, event_type_id, host_user_id, start_at, end_at, status,
     before_buffer_minutes, after_buffer_minutes, attendee, guests, metadata, created_at,
     updated_at, location, booking_fields_responses)
   SELECT id, uid, org_id, et, user_id, start_at, end_at, 'accepted', bb, ab, attendee, guests,
     metadata, at, at, location, responses
   FROM rows CROSS JOIN locks
   WHERE (rows.key IS NULL
          OR EXISTS (SELECT 1 FROM idem WHERE idem.org_id = rows.org_id AND idem.key = rows.key))
   RETURNING id, uid, org_id),
 wh AS (
   INSERT INTO webhook_deliveries (webhook_id, org_id, event_uid, trigger_event, booking_uid, body)
   SELECT w.id, w.org_id, r.event_uid, $13, ins.uid, r.body
   FROM ins JOIN r ON r.id = ins.id
   JOIN webhooks w ON w.org_id = ins.org_id AND w.active AND $13 = ANY(w.triggers)
   RETURNING pg_notify('calops_webhooks', ''))
 SELECT id FROM ins";

async fn insert(
    c: &tokio_postgres::Client,
    stmt: &tokio_postgres::Statement,
    batch: &[Job],
) -> Result<Vec<i64>, tokio_postgres::Error> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let col = |f: &dyn Fn(&Job) -> _| -> Vec<serde_json::Value> { batch.iter().map(f).collect() };
    let ids: Vec<i64> = batch.iter().map(|j| j.booking.id).collect();
    let uids: Vec<Uuid> = batch.iter().map(|j| j.booking.uid).collect();
    let orgs: Vec<i64> = batch.iter().map(|j| j.booking.org_id).collect();
    let types: Vec<i64> = batch.iter().map(|j| j.booking.event_type_id).collect();
    let starts: Vec<Timestamp> = batch.iter().map(|j| j.booking.start).collect();
    let ends: Vec<Timestamp> = batch.iter().map(|j| j.booking.end).collect();
    let attendees = col(&|j| j.booking.attendee.clone());
    let guests = col(&|j| j.booking.guests.clone());
    let metadata = col(&|j| j.booking.metadata.clone());
    let locations: Vec<Option<&str>> = batch
        .iter()
        .map(|j| j.booking.location.as_deref())
        .collect();
    let responses_given = col(&|j| j.booking.booking_fields_responses.clone());
    let ats: Vec<Timestamp> = batch.iter().map(|j| j.booking.created_at).collect();
    let events: Vec<Uuid> = batch.iter().map(|j| j.event_uid).collect();
    let bodies: Vec<&str> = batch.iter().map(|j| j.body.as_str()).collect();
    let trigger = crate::service::domain::webhooks::payload::Trigger::BookingCreated.as_str();
    let keys: Vec<Option<&str>> = batch
        .iter()
        .map(|j| j.idem.as_ref().map(|k| k.key.as_str()))
        .collect();
    let hashes: Vec<Option<&[u8]>> = batch
        .iter()
        .map(|j| j.idem.as_ref().map(|k| k.request_hash.as_slice()))
        .collect();
    let responses: Vec<Option<&serde_json::Value>> = batch
        .iter()
        .map(|j| j.idem.as_ref().map(|k| &k.response))
        .collect();
    let rows = c
        .query(
            stmt,
            &[
                &ids,
                &uids,
                &orgs,
                &types,
                &starts,
                &ends,
                &attendees,
                &guests,
                &metadata,
                &ats,
                &events,
                &bodies,
                &trigger,
                &keys,
                &hashes,
                &responses,
                &locations,
                &responses_given,
            ],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(m: i64) -> Timestamp {
        Timestamp::from_second(1_900_000_000 + m * 60).unwrap()
    }

    fn c(host: i64, from: i64, to: i64) -> Claim<'static> {
        Claim {
            host,
            from: t(from),
            to: t(to),
            key: None,
        }
    }

    #[test]
    fn later_overlaps_of_one_host_go_alone() {
        let b = [
            c(1, 0, 30),
            c(1, 30, 60), // touches the first: fits
            c(1, 15, 45), // overlaps both: alone
            c(2, 0, 30),  // another host: fits
            c(1, 59, 90), // overlaps the second: alone
            c(2, 29, 31), // overlaps host 2's first: alone
            c(1, 60, 61), // fits
        ];
        assert_eq!(fits(&b), [true, true, false, true, false, false, true]);
    }

    #[test]
    fn a_booking_left_out_does_not_block_others() {
        // The second overlaps the first and is left out; the third overlaps only the second,
        // so it fits: what is written must not overlap, not what was asked for.
        let b = [c(1, 0, 30), c(1, 20, 50), c(1, 40, 70)];
        assert_eq!(fits(&b), [true, false, true]);
    }

    #[test]
    fn a_key_is_used_once_per_batch_and_organization() {
        let keyed = |host, from, org, key| Claim {
            key: Some((org, key)),
            ..c(host, from, from + 30)
        };
        let b = [
            keyed(1, 0, 7, "k"),
            keyed(1, 60, 7, "k"),  // the same key again: alone
            keyed(1, 120, 8, "k"), // another organization's key: fits
            keyed(1, 180, 7, "j"), // another key: fits
            c(1, 240, 270),        // no key: fits
            c(1, 300, 330),
        ];
        assert_eq!(fits(&b), [true, false, true, true, true, true]);
    }
}
