//! Background delivery workers.
//!
//! Each worker claims one due attempt at a time (`Store::claim_delivery`, `FOR UPDATE SKIP
//! LOCKED`, so replicas never take the same attempt), POSTs the stored body with both
//! signatures, and records the outcome with the retry policy and the subscriber's breaker.
//! Workers wake on `NOTIFY calops_webhooks` (sent by the committing transaction), on the
//! next due retry, or every `poll_interval` as a fallback when notifications are lost.

use super::Settings;
use crate::service::domain::webhooks::policy::{after_attempt, Breaker, Next};
use crate::service::domain::webhooks::secrets;
use crate::service::domain::webhooks::sign;
use crate::service::store::webhooks::{Claimed, Finished, CHANNEL};
use crate::service::store::Store;
use jiff::Timestamp;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// The running workers of one process.
pub struct Workers {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Stop taking new attempts; wait (up to `grace`) for attempts in flight to be recorded.
    /// An attempt cut off here is retried by any replica once its lease ends.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        let all = futures::future::join_all(self.tasks);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("webhook deliveries still in flight at shutdown; they will be retried");
        }
    }
}

/// Start `settings.workers` workers and a LISTEN connection to the store's database.
pub fn spawn(store: Store, settings: Settings) -> Workers {
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    if settings.workers == 0 {
        return Workers { stop, tasks };
    }
    let wake = Arc::new(Notify::new());
    tasks.push(tokio::spawn(listen(
        store.connector().clone(),
        wake.clone(),
        stopped.clone(),
    )));
    let http = super::guard::client(settings.timeout, &settings.allow_private);
    let settings = Arc::new(settings);
    tasks.push(tokio::spawn(purge(
        store.clone(),
        settings.clone(),
        stopped.clone(),
    )));
    for _ in 0..settings.workers {
        tasks.push(tokio::spawn(work(
            store.clone(),
            http.clone(),
            settings.clone(),
            wake.clone(),
            stopped.clone(),
        )));
    }
    Workers { stop, tasks }
}

/// Forward notifications on [`CHANNEL`] to the workers (polling covers any gap while the
/// connection is down).
async fn listen(
    connector: crate::pg::Connector,
    wake: Arc<Notify>,
    stopped: watch::Receiver<bool>,
) {
    use crate::service::store::notify::{self, Event};
    notify::listen(connector, &[CHANNEL], stopped, move |e| match e {
        // Catch anything committed before LISTEN took effect, too.
        Event::Listening | Event::Notification { .. } => wake.notify_waiters(),
        Event::Lost => {}
    })
    .await
}

/// Delete finished deliveries past the retention, a batch every 12 poll intervals.
async fn purge(store: Store, settings: Arc<Settings>, mut stopped: watch::Receiver<bool>) {
    let every = settings.poll_interval * 12;
    loop {
        loop {
            match store
                .purge_deliveries(settings.retention.as_secs_f64(), 1000)
                .await
            {
                Ok(1000) => continue,
                Ok(n) => {
                    if n > 0 {
                        tracing::info!(deleted = n, "purged old webhook deliveries");
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "purging old webhook deliveries failed");
                    break;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopped.changed() => return,
        }
    }
}

async fn work(
    store: Store,
    http: reqwest::Client,
    settings: Arc<Settings>,
    wake: Arc<Notify>,
    mut stopped: watch::Receiver<bool>,
) {
    let lease = settings.lease().as_secs_f64();
    loop {
        if *stopped.borrow() {
            return;
        }
        // Register for a wake-up before looking, so a notification in between is not lost.
        let notified = wake.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        let threshold = settings.breaker_threshold.min(i32::MAX as u32) as i32;
        let pause = match store.claim_delivery(lease, threshold).await {
            Ok(Some(c)) => {
                attempt(&store, &http, &settings, c).await;
                continue;
            }
            Ok(None) => match store.next_delivery_due().await {
                Ok(Some(due)) => {
                    // Something due but nothing claimed means another worker holds it (or
                    // its subscription) this instant: look again shortly, not in a spin.
                    let ms = due.as_millisecond() - Timestamp::now().as_millisecond();
                    Duration::from_millis(ms.clamp(10, i64::MAX) as u64).min(settings.poll_interval)
                }
                _ => settings.poll_interval,
            },
            Err(e) => {
                tracing::warn!(error = %e, "claiming webhook deliveries failed; retrying");
                settings.poll_interval
            }
        };
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(pause) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// What one HTTP attempt gave: a status code, or the error to store and (for the log) its
/// cause.
async fn post(
    http: &reqwest::Client,
    allow: &crate::service::domain::webhooks::reach::AllowList,
    c: &Claimed,
    secret: Option<&[u8]>,
) -> (Option<u16>, Option<String>, Option<String>) {
    if let Err(refused) = super::guard::check_literal(&c.subscriber_url, allow) {
        return (None, Some(refused.0), None);
    }
    let body = c.body.as_bytes();
    let mut rq = http
        .post(&c.subscriber_url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Calops-Delivery", c.uid.to_string())
        .header("X-Calops-Event", c.event_uid.to_string())
        .header("X-Calops-Attempt", c.attempt.to_string())
        .header("X-Calops-Trigger", &c.trigger_event);
    rq = match secret {
        Some(s) => rq
            .header(sign::CAL_SIGNATURE_HEADER, sign::cal_signature(s, body))
            .header(
                sign::TIMESTAMPED_HEADER,
                sign::timestamped_signature(s, Timestamp::now().as_second(), body),
            ),
        None => rq.header(sign::CAL_SIGNATURE_HEADER, sign::NO_SECRET),
    };
    match rq.body(c.body.clone()).send().await {
        Ok(res) => {
            let code = res.status().as_u16();
            // The body is not needed; dropping the response closes or reuses the connection.
            let err = (!(200..300).contains(&code)).then(|| format!("HTTP {code}"));
            (Some(code), err, None)
        }
        Err(e) => {
            // Without the URL: it may carry a token in its query string.
            let e = e.without_url();
            // The operator's log gets the cause; the stored error does not say whether the
            // port was closed, filtered or not speaking HTTP.
            let cause = format!("{e:?}");
            (None, Some(super::guard::stored_error(&e)), Some(cause))
        }
    }
}

/// Make one claimed attempt and record it.
async fn attempt(store: &Store, http: &reqwest::Client, settings: &Settings, c: Claimed) {
    let started = Instant::now();
    let secret = match &c.secret {
        None => Ok(None),
        Some(s) => secrets::open(settings.secret_key.as_ref(), c.org_id, s).map(Some),
    };
    let (code, error, cause) = match &secret {
        Ok(s) => post(http, &settings.allow_private, &c, s.as_deref()).await,
        Err(e) => (None, Some(format!("cannot sign: {e}")), None),
    };
    let ok = error.is_none();
    let duration_ms = code.map(|_| started.elapsed().as_millis().min(i32::MAX as u128) as i32);
    let threshold = settings.breaker_threshold;
    let cooldown = settings.breaker_cooldown;
    let jitter: f64 = rand::random();
    let recorded = store
        .finish_attempt(
            &c,
            |failures, until, now| {
                let b = Breaker {
                    failures: failures.max(0) as u32,
                    open_until: until.map(|t| t.as_millisecond()),
                }
                .record(ok, now.as_millisecond(), threshold, cooldown);
                (
                    b.failures.min(i32::MAX as u32) as i32,
                    b.open_until
                        .and_then(|ms| Timestamp::from_millisecond(ms).ok()),
                )
            },
            |now| {
                let next = after_attempt(
                    ok,
                    c.attempt.max(1) as u32,
                    settings.max_attempts,
                    settings.backoff_base,
                    settings.backoff_max,
                    jitter,
                );
                let (status, next_attempt_at) = match next {
                    Next::Delivered => ("delivered", None),
                    Next::Dead => ("dead", None),
                    Next::Retry(d) => (
                        "pending",
                        now.checked_add(jiff::SignedDuration::try_from(d).unwrap_or_default())
                            .ok(),
                    ),
                };
                Finished {
                    status_code: code.map(i32::from),
                    error: error.clone(),
                    duration_ms,
                    status,
                    next_attempt_at,
                }
            },
        )
        .await;
    match recorded {
        Ok(f) if f.status == "delivered" => tracing::info!(
            delivery = %c.uid, webhook_id = c.webhook_id, attempt = c.attempt,
            status_code = ?code, duration_ms = ?duration_ms, "webhook delivered"
        ),
        Ok(f) => tracing::warn!(
            delivery = %c.uid, webhook_id = c.webhook_id, attempt = c.attempt,
            status_code = ?code, error = ?f.error, cause = ?cause, outcome = f.status,
            "webhook attempt failed"
        ),
        Err(e) => tracing::error!(
            delivery = %c.uid, error = %e,
            "could not record a webhook attempt; it will be retried when its lease ends"
        ),
    }
}
