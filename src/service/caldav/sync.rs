//! The background sync: takes the selected calendar most overdue (a lease, so one replica
//! syncs a calendar at a time), asks its server what changed, and records the busy intervals.
//!
//! - Once per day (the window slides) and whenever there is no usable sync token, a full load:
//!   the calendar's ctag and sync token are read first, then REPORT calendar-query over the
//!   window; every busy row of the calendar is replaced.
//! - Otherwise sync-collection (RFC 6578) from the token: removed objects lose their rows,
//!   changed ones are read with calendar-multiget and their rows replaced. A server without
//!   sync tokens is polled by ctag: a changed ctag means a full load.
//! - Failures leave the last busy rows in place and retry with backoff (at most the sync
//!   interval); `external_busy` is what slots and bookings read, so they never wait for a
//!   calendar server.

use super::client::{CalDav, Error, Object};
use super::{Runtime, Stats};
use crate::service::domain::icalendar::busy::object_busy;
use crate::service::store::calendars::{ObjectRows, SyncJob};
use crate::service::store::Store;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use std::time::Duration;
use tokio::sync::watch;

/// How long a claimed sync is left to its replica (requests time out well before).
fn lease(rt: &Runtime) -> f64 {
    (rt.settings.timeout.as_secs_f64() * 6.0).max(30.0)
}

/// The window busy time is kept for at `now`: from the start of yesterday (UTC) for
/// `window_days` days; it moves once a day.
pub fn window(now: Timestamp, window_days: u32) -> (Timestamp, Timestamp) {
    let day = 86_400;
    let start = (now.as_second().div_euclid(day) - 1) * day;
    let end = start + (i64::from(window_days) + 1) * day;
    (
        Timestamp::from_second(start).unwrap_or(now),
        Timestamp::from_second(end).unwrap_or(now),
    )
}

/// Seconds before retry `failures` (1, 2, ...): 1 s doubling, at most the sync interval.
pub fn retry_after(failures: i32, interval: Duration) -> f64 {
    let exp = failures.clamp(1, 16) - 1;
    f64::from(1u32 << exp).min(interval.as_secs_f64().max(1.0))
}

/// What one sync found.
#[derive(Debug)]
enum Outcome {
    Unchanged {
        token: Option<String>,
    },
    Full {
        objects: Vec<ObjectRows>,
        token: Option<String>,
        ctag: Option<String>,
    },
    Changed {
        removed: Vec<String>,
        objects: Vec<ObjectRows>,
        token: String,
    },
}

/// Busy rows of `objects` over `window` in the host's zone; objects that are calops's own
/// bookings (by UID) are left out.
async fn rows(
    store: &Store,
    job: &SyncJob,
    objects: Vec<Object>,
    window: (Timestamp, Timestamp),
) -> Result<Vec<ObjectRows>, String> {
    let host = jiff::tz::db()
        .get(&job.host_time_zone)
        .unwrap_or(TimeZone::UTC);
    let mut read = Vec::new();
    let mut uids = Vec::new();
    for o in objects {
        match object_busy(&o.data, &host, window.0, window.1, &|_| false) {
            Ok(b) => {
                for w in &b.warnings {
                    tracing::info!(calendar = job.calendar_id, object = %o.url, warning = %w, "calendar object read with a fallback");
                }
                uids.extend(b.uids.iter().cloned());
                read.push((o.url, b));
            }
            Err(e) => {
                // One unreadable object does not stop the others; it blocks nothing.
                tracing::warn!(calendar = job.calendar_id, object = %o.url, error = %e, "unreadable calendar object");
                read.push((o.url, Default::default()));
            }
        }
    }
    let own = store
        .own_booking_uids(job.host, &uids)
        .await
        .map_err(|e| e.to_string())?;
    Ok(read
        .into_iter()
        .map(|(href, b)| {
            let mine = !b.uids.is_empty() && b.uids.iter().all(|u| own.contains(u));
            ObjectRows {
                href,
                intervals: if mine {
                    Vec::new()
                } else {
                    b.intervals.iter().map(|i| (i.start, i.end)).collect()
                },
            }
        })
        .collect())
}

async fn full(
    store: &Store,
    client: &dyn CalDav,
    job: &SyncJob,
    acct: &super::client::Account,
    window: (Timestamp, Timestamp),
) -> Result<Outcome, String> {
    let state = client
        .state(&job.url, acct)
        .await
        .map_err(|e| e.to_string())?;
    let objects = client
        .query(&job.url, acct, window.0, window.1)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Outcome::Full {
        objects: rows(store, job, objects, window).await?,
        token: state.sync_token,
        ctag: state.ctag,
    })
}

async fn sync_one(
    store: &Store,
    client: &dyn CalDav,
    job: &SyncJob,
    acct: &super::client::Account,
    window: (Timestamp, Timestamp),
) -> Result<Outcome, String> {
    if job.window != Some(window) {
        return full(store, client, job, acct, window).await;
    }
    if let Some(token) = &job.sync_token {
        return match client.sync(&job.url, acct, token).await {
            Ok(ch) if ch.changed.is_empty() && ch.removed.is_empty() => Ok(Outcome::Unchanged {
                token: Some(ch.token),
            }),
            Ok(ch) => {
                let objects = client
                    .multiget(&job.url, acct, &ch.changed)
                    .await
                    .map_err(|e| e.to_string())?;
                // Changed members the server did not hand back count as removed.
                let mut removed = ch.removed;
                removed.extend(
                    ch.changed
                        .iter()
                        .filter(|u| !objects.iter().any(|o| &o.url == *u))
                        .cloned(),
                );
                Ok(Outcome::Changed {
                    removed,
                    objects: rows(store, job, objects, window).await?,
                    token: ch.token,
                })
            }
            Err(Error::TokenInvalid) => full(store, client, job, acct, window).await,
            Err(e) => Err(e.to_string()),
        };
    }
    let state = client
        .state(&job.url, acct)
        .await
        .map_err(|e| e.to_string())?;
    if state.ctag.is_some() && state.ctag == job.ctag && state.sync_token.is_none() {
        return Ok(Outcome::Unchanged { token: None });
    }
    full(store, client, job, acct, window).await
}

/// Sync one due calendar, if any. `Ok(false)` when none was due.
pub async fn sync_due(store: &Store, rt: &Runtime) -> Result<bool, String> {
    let Some(job) = store
        .claim_calendar_sync(lease(rt))
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(false);
    };
    let interval = rt.settings.sync_interval.as_secs_f64();
    let window = window(Timestamp::now(), rt.settings.window_days);
    let result = match rt.account(&job.credentials) {
        Ok(acct) => sync_one(store, rt.client.as_ref(), &job, &acct, window).await,
        Err(e) => Err(format!("cannot open the stored password: {e}")),
    };
    let recorded = match result {
        Ok(Outcome::Unchanged { token }) => {
            Stats::count(&rt.stats.syncs);
            match token.filter(|t| Some(t) != job.sync_token.as_ref()) {
                Some(t) => {
                    store
                        .record_calendar_sync(
                            &job,
                            false,
                            &[],
                            &[],
                            Some(&t),
                            job.ctag.as_deref(),
                            window,
                            interval,
                        )
                        .await
                }
                None => store.calendar_unchanged(&job, interval).await,
            }
        }
        Ok(Outcome::Full {
            objects,
            token,
            ctag,
        }) => {
            Stats::count(&rt.stats.syncs);
            store
                .record_calendar_sync(
                    &job,
                    true,
                    &[],
                    &objects,
                    token.as_deref(),
                    ctag.as_deref(),
                    window,
                    interval,
                )
                .await
        }
        Ok(Outcome::Changed {
            removed,
            objects,
            token,
        }) => {
            Stats::count(&rt.stats.syncs);
            store
                .record_calendar_sync(
                    &job,
                    false,
                    &removed,
                    &objects,
                    Some(&token),
                    job.ctag.as_deref(),
                    window,
                    interval,
                )
                .await
        }
        Err(e) => {
            Stats::count(&rt.stats.sync_failures);
            let retry = retry_after(job.failures + 1, rt.settings.sync_interval);
            tracing::warn!(calendar = job.calendar_id, failures = job.failures + 1, retry_s = retry,
                error = %e, "calendar sync failed; the last known busy time stays in use");
            store.calendar_sync_failed(&job, &e, retry).await
        }
    };
    recorded.map_err(|e| e.to_string())?;
    Ok(true)
}

/// Sync due calendars until `stopped`.
pub async fn run(store: Store, rt: Runtime, mut stopped: watch::Receiver<bool>) {
    loop {
        if *stopped.borrow() {
            return;
        }
        let pause = match sync_due(&store, &rt).await {
            Ok(true) => continue,
            Ok(false) => Duration::from_millis(500),
            Err(e) => {
                tracing::warn!(error = %e, "calendar sync: cannot use the database");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stopped.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_moves_once_a_day_and_retries_back_off_to_the_interval() {
        let a = window("2026-03-10T00:00:01Z".parse().unwrap(), 30);
        let b = window("2026-03-10T23:59:59Z".parse().unwrap(), 30);
        assert_eq!(a, b);
        assert_eq!(a.0.to_string(), "2026-03-09T00:00:00Z");
        assert_eq!(a.1.to_string(), "2026-04-09T00:00:00Z");
        assert_ne!(a, window("2026-03-11T00:00:00Z".parse().unwrap(), 30));
        let i = Duration::from_secs(60);
        assert_eq!(retry_after(1, i), 1.0);
        assert_eq!(retry_after(3, i), 4.0);
        assert_eq!(retry_after(20, i), 60.0);
    }
}
