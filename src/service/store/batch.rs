//! Group commit for direct bookings ([`super::Store::book_directly`] without an
//! `Idempotency-Key`): requests that arrive while earlier ones are being written wait in a
//! queue, and a few writer tasks each take everything queued and insert it with one statement,
//! one transaction. The database's cost per transaction (planning-free but not free: executor
//! start, snapshot, commit record, the cache notification's commit lock, a round trip) is then
//! paid once per batch instead of once per booking.
//!
//! Nothing about the guarantee changes: the rows still go through the `occupancy` exclusion
//! constraint, and the batch queues for each hour it touches (`calops_lock_time`'s locks,
//! taken in ascending order like every other writer's). A booking the batch cannot take is
//! handed back, and its request books alone through the one-statement path, which gives the
//! exact answer (201, or 409 `booking_conflict` after dropping expired holds in the way):
//! - two bookings of one batch that overlap each other (the later ones go alone);
//! - a booking that overlaps a booking or hold already committed (skipped by the batch);
//! - any error of the batch statement (a booking committed by another writer meanwhile, the
//!   database gone): then every booking of the batch goes alone.

use super::bookings::Booking;
use super::cache::SlotCache;
use deadpool_postgres::Pool;
use jiff::Timestamp;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// The most bookings one statement inserts.
const MAX_BATCH: usize = 64;

/// One booking to write, made ready by the caller (id, uid, time stamps, webhook body).
pub struct Job {
    pub booking: Booking,
    /// `[start - before buffer, end + after buffer)`: what the booking occupies.
    pub occupied: (Timestamp, Timestamp),
    pub event_uid: Uuid,
    pub body: String,
    /// `Some` once stored; `None`: book alone.
    pub done: oneshot::Sender<Option<Booking>>,
}

/// Batches written and the bookings they stored, for /metrics.
#[derive(Debug, Default)]
pub struct Stats {
    pub batches: AtomicU64,
    pub stored: AtomicU64,
    pub handed_back: AtomicU64,
}

/// The queue and its writer (started on first use, ended when the last `Store` is dropped).
#[derive(Default)]
pub struct Batcher {
    queue: OnceLock<mpsc::Sender<Job>>,
    pub stats: Arc<Stats>,
}

impl Batcher {
    /// Queue `job`; its answer arrives on the job's `done`. `false` (the job is dropped) only
    /// when the writer is gone.
    pub async fn submit(&self, pool: &Pool, cache: &Arc<SlotCache>, job: Job) -> bool {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(1024);
            tokio::spawn(writer(pool.clone(), cache.clone(), rx, self.stats.clone()));
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

/// One writer per replica, on one connection while there is work: everything queued while a
/// batch is written becomes the next batch. (Measured on two cores by `benches/bookings.rs`:
/// 5,400-5,800 bookings/s in batches of 13; two writers on two connections made batches half
/// as big and 4,400-4,900/s; two batches in flight on one connection, 5,100-5,200/s.
/// Replicas scale out.)
async fn writer(
    pool: Pool,
    cache: Arc<SlotCache>,
    mut queue: mpsc::Receiver<Job>,
    stats: Arc<Stats>,
) {
    while let Some(first) = queue.recv().await {
        let mut pending = vec![first];
        drain(&mut queue, &mut pending);
        let c = match pool.get().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "booking batch: no connection; each books alone");
                hand_back(&stats, pending);
                continue;
            }
        };
        while !pending.is_empty() {
            write(&c, &cache, &stats, std::mem::take(&mut pending)).await;
            drain(&mut queue, &mut pending);
        }
    }
}

fn hand_back(stats: &Stats, jobs: Vec<Job>) {
    stats
        .handed_back
        .fetch_add(jobs.len() as u64, Ordering::Relaxed);
    for j in jobs {
        let _ = j.done.send(None);
    }
}

/// Which bookings can share a batch: those that overlap no earlier booking of the same host
/// in the batch (`(host, from, to)` each, in queue order).
pub fn fits(bookings: &[(i64, Timestamp, Timestamp)]) -> Vec<bool> {
    let mut kept: Vec<(i64, Timestamp, Timestamp)> = Vec::with_capacity(bookings.len());
    bookings
        .iter()
        .map(|&(host, from, to)| {
            let clash = kept
                .iter()
                .any(|&(h, f, t)| h == host && f < to && from < t);
            if !clash {
                kept.push((host, from, to));
            }
            !clash
        })
        .collect()
}

async fn write(c: &deadpool_postgres::Client, cache: &SlotCache, stats: &Stats, jobs: Vec<Job>) {
    let keys: Vec<_> = jobs
        .iter()
        .map(|j| (j.booking.host_id, j.occupied.0, j.occupied.1))
        .collect();
    let (mut batch, mut alone) = (Vec::new(), Vec::new());
    for (j, fits) in jobs.into_iter().zip(fits(&keys)) {
        if fits {
            batch.push(j)
        } else {
            alone.push(j)
        }
    }
    match insert(c, &batch).await {
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
/// ascending order; then each booking that overlaps nothing committed is inserted, with its
/// `BOOKING_CREATED` deliveries. Returns the ids stored.
const INSERT: &str = "WITH r AS (
   SELECT * FROM unnest($1::int8[], $2::uuid[], $3::int8[], $4::int8[], $5::timestamptz[],
     $6::timestamptz[], $7::jsonb[], $8::jsonb[], $9::jsonb[], $10::timestamptz[], $11::uuid[],
     $12::text[])
     AS r(id, uid, org_id, et, start_at, end_at, attendee, guests, metadata, at, event_uid, body)),
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
 ins AS (
   INSERT INTO bookings (id, uid, org_id, event_type_id, host_user_id, start_at, end_at, status,
     before_buffer_minutes, after_buffer_minutes, attendee, guests, metadata, created_at,
     updated_at)
   SELECT id, uid, org_id, et, user_id, start_at, end_at, 'accepted', bb, ab, attendee, guests,
     metadata, at, at
   FROM rows CROSS JOIN locks
   WHERE locks.n >= 0
   RETURNING id, uid, org_id),
 wh AS (
   INSERT INTO webhook_deliveries (webhook_id, org_id, event_uid, trigger_event, booking_uid, body)
   SELECT w.id, w.org_id, r.event_uid, $13, ins.uid, r.body
   FROM ins JOIN r ON r.id = ins.id
   JOIN webhooks w ON w.org_id = ins.org_id AND w.active AND $13 = ANY(w.triggers)
   RETURNING pg_notify('calops_webhooks', ''))
 SELECT id FROM ins";

async fn insert(
    c: &deadpool_postgres::Client,
    batch: &[Job],
) -> Result<Vec<i64>, tokio_postgres::Error> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let stmt = c.prepare_cached(INSERT).await?;
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
    let ats: Vec<Timestamp> = batch.iter().map(|j| j.booking.created_at).collect();
    let events: Vec<Uuid> = batch.iter().map(|j| j.event_uid).collect();
    let bodies: Vec<&str> = batch.iter().map(|j| j.body.as_str()).collect();
    let trigger = crate::service::webhooks::payload::Trigger::BookingCreated.as_str();
    let rows = c
        .query(
            &stmt,
            &[
                &ids, &uids, &orgs, &types, &starts, &ends, &attendees, &guests, &metadata, &ats,
                &events, &bodies, &trigger,
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

    #[test]
    fn later_overlaps_of_one_host_go_alone() {
        let b = [
            (1, t(0), t(30)),
            (1, t(30), t(60)), // touches the first: fits
            (1, t(15), t(45)), // overlaps both: alone
            (2, t(0), t(30)),  // another host: fits
            (1, t(59), t(90)), // overlaps the second: alone
            (2, t(29), t(31)), // overlaps host 2's first: alone
            (1, t(60), t(61)), // fits
        ];
        assert_eq!(fits(&b), [true, true, false, true, false, false, true]);
    }

    #[test]
    fn a_booking_left_out_does_not_block_others() {
        // The second overlaps the first and is left out; the third overlaps only the second,
        // so it fits: what is written must not overlap, not what was asked for.
        let b = [(1, t(0), t(30)), (1, t(20), t(50)), (1, t(40), t(70))];
        assert_eq!(fits(&b), [true, false, true]);
    }
}
