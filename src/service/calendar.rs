//! Calendar files of bookings in object storage: what a booking's ICS says (from the
//! database), where it goes (`ics/<org id>/<calendar uid>.ics`), and the background writer that
//! works through the pending writes recorded with each booking change, retrying with backoff
//! while storage is down. A booking never waits for storage.

use crate::service::ics::{self, Event, Person};
use crate::service::objstore::ObjectStore;
use crate::service::store::ics::{CalendarRow, PendingWrite};
use crate::service::store::Store;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

pub const CONTENT_TYPE: &str = "text/calendar; charset=utf-8";

/// How often the writer looks for due writes.
pub const POLL: Duration = Duration::from_millis(500);
/// How long a claimed write is left to its worker before another may take it.
const LEASE_SECS: f64 = 60.0;
const BATCH: i64 = 32;

/// The object key of a calendar.
pub fn key(org_id: i64, ical_uid: Uuid) -> String {
    format!("ics/{org_id}/{ical_uid}.ics")
}

/// Seconds before retry `attempts` (1, 2, ...): 0.5 s doubling, at most 60 s.
pub fn backoff(attempts: i32) -> f64 {
    let exp = attempts.clamp(1, 16) - 1;
    (0.5 * f64::from(1u32 << exp)).min(60.0)
}

/// A JSON object's string field `k`, trimmed; `None` when absent or blank.
pub fn text(v: &Value, k: &str) -> Option<String> {
    v.get(k)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The ICS event of a calendar's current booking. `DTSTAMP` is the booking's last change, so
/// the same state always renders the same bytes (from storage or from the database).
pub fn event(row: &CalendarRow) -> Event {
    let mut attendees = Vec::new();
    if let Some(email) = text(&row.attendee, "email") {
        attendees.push(Person {
            name: text(&row.attendee, "name"),
            email,
        });
    }
    let required_attendees = attendees.len();
    if let Some(guests) = row.guests.as_array() {
        for g in guests.iter().filter_map(Value::as_str) {
            attendees.push(Person {
                name: None,
                email: g.trim().to_string(),
            });
        }
    }
    let with = attendees
        .first()
        .and_then(|a| a.name.clone())
        .unwrap_or_else(|| "attendee".into());
    Event {
        uid: row.ical_uid.to_string(),
        sequence: row.sequence,
        cancelled: row.status == "cancelled",
        stamp: row.updated_at,
        start: row.start,
        end: row.end,
        summary: format!("{} between {} and {with}", row.title, row.host_name),
        description: Some(format!("Booking {}", row.booking_uid)),
        organizer: Person {
            name: Some(row.host_name.clone()),
            email: row.host_email.clone(),
        },
        attendees,
        required_attendees,
    }
}

pub fn render(row: &CalendarRow) -> String {
    ics::render(&event(row))
}

/// Write one pending calendar; `Err` with a reason to retry.
async fn write_one(
    store: &Store,
    objects: &dyn ObjectStore,
    w: &PendingWrite,
) -> Result<(), String> {
    let Some(row) = store
        .calendar(w.ical_uid)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(()); // the bookings are gone (organization deleted): nothing to show
    };
    objects
        .put(
            &key(row.org_id, row.ical_uid),
            render(&row).into_bytes(),
            CONTENT_TYPE,
        )
        .await
        .map_err(|e| e.to_string())
}

/// Work through every due write once. Returns (written, failed).
pub async fn write_due(store: &Store, objects: &dyn ObjectStore) -> (usize, usize) {
    let (mut written, mut failed) = (0, 0);
    loop {
        let batch = match store.claim_ics_writes(BATCH, LEASE_SECS).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "ics writer: cannot read pending writes");
                return (written, failed);
            }
        };
        for w in &batch {
            match write_one(store, objects, w).await {
                Ok(()) => {
                    written += 1;
                    if let Err(e) = store.ics_written(w).await {
                        tracing::warn!(error = %e, "ics writer: cannot mark a write done");
                    }
                }
                Err(reason) => {
                    failed += 1;
                    let retry = backoff(w.attempts);
                    tracing::warn!(calendar = %w.ical_uid, attempts = w.attempts, retry_s = retry,
                        error = %reason, "ics write failed; will retry");
                    if let Err(e) = store.ics_failed(w, &reason, retry).await {
                        tracing::warn!(error = %e, "ics writer: cannot record a failure");
                    }
                }
            }
        }
        if (batch.len() as i64) < BATCH {
            return (written, failed);
        }
    }
}

/// Run the writer until `stop` turns true. Without object storage, pending writes are
/// dropped (GET /v2/bookings/{uid}/ics renders from the database); with storage configured
/// but unusable (`Some(Err)`, e.g. no credentials), they wait for a start that can write.
pub fn spawn_writer(
    store: Store,
    objects: Option<Result<Arc<dyn ObjectStore>, String>>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                r = stop.changed() => if r.is_err() { return },
            }
            if *stop.borrow() {
                return;
            }
            match &objects {
                Some(Ok(o)) => {
                    write_due(&store, o.as_ref()).await;
                }
                Some(Err(_)) => {}
                None => {
                    if let Err(e) = store.drop_ics_writes().await {
                        tracing::debug!(error = %e, "ics writer: cannot drop pending writes");
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        assert_eq!(backoff(1), 0.5);
        assert_eq!(backoff(2), 1.0);
        assert_eq!(backoff(5), 8.0);
        assert_eq!(backoff(9), 60.0);
        assert_eq!(backoff(1000), 60.0);
    }

    #[test]
    fn events_come_from_the_newest_booking_of_the_chain() {
        let uid = Uuid::new_v4();
        let row = CalendarRow {
            org_id: 7,
            ical_uid: uid,
            sequence: 1,
            status: "accepted".into(),
            title: "Call".into(),
            start: "2031-03-03T09:00:00Z".parse().unwrap(),
            end: "2031-03-03T09:30:00Z".parse().unwrap(),
            updated_at: "2031-03-01T00:00:00Z".parse().unwrap(),
            host_name: "Host".into(),
            host_email: "host@example.com".into(),
            attendee: json!({"name": "Ann", "email": "ann@example.com", "timeZone": "UTC"}),
            guests: json!(["g@example.com"]),
            booking_uid: Uuid::new_v4(),
        };
        let e = event(&row);
        assert_eq!(e.uid, uid.to_string());
        assert_eq!(e.attendees.len(), 2);
        assert_eq!(e.required_attendees, 1);
        assert!(!e.cancelled);
        assert_eq!(key(7, uid), format!("ics/7/{uid}.ics"));
        assert!(crate::service::objstore::valid_key(&key(7, uid)));
        let cancelled = CalendarRow {
            status: "cancelled".into(),
            ..row
        };
        assert!(render(&cancelled).contains("METHOD:CANCEL\r\n"));
    }
}
