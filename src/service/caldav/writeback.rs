//! The write-back outbox worker. Triggers record a pending write per calendar `UID` in the
//! booking's own transaction (migration 11); this worker takes due writes (`FOR UPDATE SKIP
//! LOCKED`, leased), looks at the booking chain as it stands now, and makes the host's
//! calendar match: an accepted booking is PUT at `<calendar>/<uid>.ics` (created with
//! `If-None-Match: *`, replaced on reschedule), a cancelled one is deleted. The pending row
//! goes only if the booking did not change meanwhile; a failure retries with backoff and after
//! `max_attempts` stays as a dead letter (counted in /metrics, shown in /health).

use super::{Runtime, Stats};
use crate::service::store::calendars::PendingCalDav;
use crate::service::store::Store;
use std::time::Duration;
use tokio::sync::watch;

const BATCH: i64 = 16;

fn lease(rt: &Runtime) -> f64 {
    (rt.settings.timeout.as_secs_f64() * 3.0).max(30.0)
}

/// The URL of a booking's event in `calendar`.
pub fn event_url(calendar: &str, ical_uid: uuid::Uuid) -> String {
    let base = if calendar.ends_with('/') {
        calendar.to_string()
    } else {
        format!("{calendar}/")
    };
    format!("{base}{ical_uid}.ics")
}

/// Make the calendar match the booking of `w`: `Ok((url, etag))` where the event is now
/// (`None` when there is none).
async fn write_one(
    store: &Store,
    rt: &Runtime,
    w: &PendingCalDav,
) -> Result<(Option<String>, Option<String>), String> {
    let Some(target) = store.caldav_target(w).await.map_err(|e| e.to_string())? else {
        return Ok((None, None)); // the calendar was disconnected
    };
    let acct = rt
        .account(&target.credentials)
        .map_err(|e| format!("cannot open the stored password: {e}"))?;
    let row = store
        .calendar(w.ical_uid)
        .await
        .map_err(|e| e.to_string())?;
    match row {
        Some(row) if row.status == "accepted" => {
            let url = target
                .written
                .unwrap_or_else(|| event_url(&target.calendar_url, w.ical_uid));
            let body = crate::service::ics::render_resource(&crate::service::calendar::event(&row));
            let etag = rt
                .client
                .put(&url, &acct, &body)
                .await
                .map_err(|e| e.to_string())?;
            Ok((Some(url), etag))
        }
        _ => {
            if let Some(url) = target.written {
                rt.client
                    .delete(&url, &acct)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok((None, None))
        }
    }
}

/// Work through every due write once. Returns (written, failed).
pub async fn write_due(store: &Store, rt: &Runtime) -> Result<(usize, usize), String> {
    let (mut written, mut failed) = (0, 0);
    loop {
        let batch = store
            .claim_caldav_writes(BATCH, lease(rt))
            .await
            .map_err(|e| e.to_string())?;
        for w in &batch {
            match write_one(store, rt, w).await {
                Ok((url, etag)) => {
                    written += 1;
                    Stats::count(&rt.stats.writes);
                    store
                        .caldav_written(w, url.as_deref(), etag.as_deref())
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Err(reason) => {
                    failed += 1;
                    Stats::count(&rt.stats.write_failures);
                    let dead = w.attempts >= rt.settings.max_attempts.min(i32::MAX as u32) as i32;
                    let retry = crate::service::calendar::backoff(w.attempts);
                    tracing::warn!(calendar_uid = %w.ical_uid, attempts = w.attempts, dead,
                        retry_s = retry, error = %reason, "calendar write-back failed");
                    store
                        .caldav_failed(w, &reason, retry, dead)
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        if (batch.len() as i64) < BATCH {
            return Ok((written, failed));
        }
    }
}

/// Write back until `stopped`.
pub async fn run(store: Store, rt: Runtime, mut stopped: watch::Receiver<bool>) {
    loop {
        if let Err(e) = write_due(&store, &rt).await {
            tracing::warn!(error = %e, "calendar write-back: cannot use the database");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = stopped.changed() => return,
        }
        if *stopped.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn events_live_under_the_calendar_by_uid() {
        let u: uuid::Uuid = "6f1c2d4e-0000-4000-8000-000000000001".parse().unwrap();
        assert_eq!(
            super::event_url("http://h/u/cal/", u),
            "http://h/u/cal/6f1c2d4e-0000-4000-8000-000000000001.ics"
        );
        assert_eq!(
            super::event_url("http://h/u/cal", u),
            super::event_url("http://h/u/cal/", u)
        );
    }
}
