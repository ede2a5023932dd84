//! Background mail workers.
//!
//! A booking's transaction queues one event per change (`mail_events`); one task per process
//! expands events into their messages, one outbox row per message and recipient
//! (`Store::expand_mail_events`, one transaction each: an event is expanded once, even across a
//! kill -9). Each worker claims one due message at a time (`Store::claim_mail`, `FOR UPDATE SKIP
//! LOCKED`, so replicas never take the same attempt; the claim is a lease), writes and sends
//! it, and records the outcome: `sent`; `pending` again after a backoff (connection refused,
//! timeout, 4xx), `dead` after the last attempt or at once when the server refuses that
//! recipient for good (5xx); a reminder whose booking is no longer accepted is `skipped`.
//! Reminders are rows due at their time: the same claim picks them up, no cron job needed.
//! While this process is making bookings, the workers hold back (`pace`): up to
//! `yield_max`, so a burst of bookings is not slowed by its own mail; past that, one worker
//! sends until the spell ends.
//!
//! Exactly once per (event, recipient): the outbox has one row per pair (unique key) and only
//! the holder of a row's latest attempt may record it. What no database can make atomic is the
//! SMTP hand-over and the mark that follows: a process killed between the server's `250` and
//! the `UPDATE` sends that message again once the lease ends. The window is one message per
//! worker in flight at the kill, and the second copy has the same `Message-ID`
//! (`<row uid@domain>`), so mail clients and servers that dedupe by it show it once.

use super::compose::{self, Sender as From};
use super::transport::{SendError, Sender};
use super::Settings;
use crate::service::domain::webhooks::policy::{after_attempt, Next};
use crate::service::metrics::Metrics;
use crate::service::state::PageKey;
use crate::service::store::mail::{ClaimedMail, CHANNEL, QUEUED_CHANNEL};
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
    /// Stop taking new messages; wait (up to `grace`) for sends in flight to be recorded.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        let all = futures::future::join_all(self.tasks);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("mail still being sent at shutdown; it will be retried");
        }
    }
}

struct Ctx {
    store: Store,
    settings: Settings,
    pace: super::pace::Pace,
    /// The lead worker found nothing to send (for the expansion, while bookings go on).
    starved: Notify,
    sender: Sender,
    page_key: PageKey,
    metrics: Arc<Metrics>,
}

/// Tell the database whether to queue mail (a transport is configured), then start
/// `settings.workers` workers and a LISTEN connection to the store's database.
pub async fn spawn(
    store: Store,
    settings: Settings,
    page_key: PageKey,
    metrics: Arc<Metrics>,
    oci: Option<crate::oci::client::OciClient>,
) -> anyhow::Result<Workers> {
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    store.set_mail_enabled(settings.transport.is_some()).await?;
    let Some(transport) = &settings.transport else {
        return Ok(Workers { stop, tasks });
    };
    let sender = Sender::new(transport, settings.timeout, oci.as_ref())
        .map_err(|e| anyhow::anyhow!("mail transport: {e}"))?;
    metrics
        .mail
        .configured
        .store(true, std::sync::atomic::Ordering::Relaxed);
    if settings.workers == 0 {
        return Ok(Workers { stop, tasks });
    }
    // `events`: a booking changed (the triggers notify); `wake`: messages were queued.
    let (events, wake) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    {
        let (connector, stopped) = (store.connector().clone(), stopped.clone());
        let (events, wake) = (events.clone(), wake.clone());
        tasks.push(tokio::spawn(async move {
            use crate::service::store::notify::{self, Event};
            // Booking changes wake the expansion only: a worker woken by each booking would
            // find nothing to claim until the changes are expanded (and cost two statements a
            // booking for it); an expansion (this replica's or another's) wakes the workers.
            notify::listen(
                connector,
                &[CHANNEL, QUEUED_CHANNEL],
                stopped,
                move |e| match e {
                    Event::Listening => {
                        events.notify_waiters();
                        wake.notify_waiters();
                    }
                    Event::Notification { channel, .. } if channel == QUEUED_CHANNEL => {
                        wake.notify_waiters()
                    }
                    Event::Notification { .. } => events.notify_waiters(),
                    Event::Lost => {}
                },
            )
            .await
        }));
    }
    let ctx = Arc::new(Ctx {
        store,
        pace: super::pace::Pace::new(settings.yield_max),
        starved: Notify::new(),
        settings,
        sender,
        page_key,
        metrics,
    });
    tasks.push(tokio::spawn(purge(ctx.clone(), stopped.clone())));
    tasks.push(tokio::spawn(expand(
        ctx.clone(),
        events,
        wake.clone(),
        stopped.clone(),
    )));
    for i in 0..ctx.settings.workers {
        tasks.push(tokio::spawn(work(
            ctx.clone(),
            wake.clone(),
            stopped.clone(),
            i == 0,
        )));
    }
    Ok(Workers { stop, tasks })
}

async fn purge(ctx: Arc<Ctx>, mut stopped: watch::Receiver<bool>) {
    let every = ctx.settings.poll_interval * 12;
    loop {
        match ctx
            .store
            .purge_mail(ctx.settings.retention.as_secs_f64(), 1000)
            .await
        {
            Ok(n) if n > 0 => tracing::info!(deleted = n, "purged old mail outbox rows"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "purging old mail outbox rows failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// What a background loop does next.
enum Turn {
    Go,
    /// Held back for bookings: look again.
    Wait,
    Stop,
}

/// The top of each round of the expansion and the workers: stop when told to; hold back while
/// this process is making bookings (`pace`; past its `yield_max` only the `lead` goes on).
/// `asked`: a hold that ends early when this is notified (the expansion, when the lead worker
/// has nothing left to send).
async fn turn(
    ctx: &Ctx,
    stopped: &mut watch::Receiver<bool>,
    lead: bool,
    asked: Option<&Notify>,
) -> Turn {
    if *stopped.borrow() {
        return Turn::Stop;
    }
    if let Some(hold) = ctx
        .pace
        .wait(ctx.metrics.bookings_made(), Instant::now(), lead)
    {
        let asked = async {
            match asked {
                Some(n) => n.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(hold) => return Turn::Wait,
            _ = asked => return Turn::Go,
            _ = stopped.changed() => return Turn::Stop,
        }
    }
    Turn::Go
}

/// How many booking events one expansion takes.
const EXPAND_BATCH: i64 = 100;
/// How long the expansion waits after a change is notified, for more to come.
const EXPAND_GATHER: Duration = Duration::from_millis(50);

/// Expand booking events into messages (`Store::expand_mail_events`) as they come, and wake the
/// workers when there are new messages. One per process; replicas take different events.
/// Through a long spell of bookings (past `yield_max`), it expands one batch whenever the lead
/// worker has sent everything (`Ctx::starved`), so that the changes are made into messages as
/// fast as that one worker sends them, not as fast as they come.
async fn expand(
    ctx: Arc<Ctx>,
    events: Arc<Notify>,
    wake: Arc<Notify>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        match turn(&ctx, &mut stopped, false, Some(&ctx.starved)).await {
            Turn::Stop => return,
            Turn::Wait => continue,
            Turn::Go => {}
        }
        let notified = events.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        match ctx.store.expand_mail_events(EXPAND_BATCH).await {
            Ok((n, messages)) => {
                if messages > 0 {
                    wake.notify_waiters();
                }
                if n == EXPAND_BATCH {
                    continue;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "queueing the messages of booking changes failed; retrying")
            }
        }
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(ctx.settings.poll_interval) => {}
            _ = stopped.changed() => return,
        }
        // Let a burst's changes gather, so that one expansion takes many (each booking's commit
        // notifies; expanding them one by one would cost a statement each).
        tokio::select! {
            _ = tokio::time::sleep(EXPAND_GATHER) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// One worker; the `lead` goes on sending through a long spell of bookings (`pace`).
async fn work(ctx: Arc<Ctx>, wake: Arc<Notify>, mut stopped: watch::Receiver<bool>, lead: bool) {
    let lease = ctx.settings.lease().as_secs_f64();
    loop {
        match turn(&ctx, &mut stopped, lead, None).await {
            Turn::Stop => return,
            Turn::Wait => continue,
            Turn::Go => {}
        }
        let notified = wake.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        let pause = match ctx.store.claim_mail(lease).await {
            Ok(Some(m)) => {
                attempt(&ctx, m).await;
                continue;
            }
            Ok(None) => {
                if lead {
                    ctx.starved.notify_one();
                }
                match ctx.store.next_mail_due().await {
                    Ok(Some(due)) => {
                        let ms = due.as_millisecond() - Timestamp::now().as_millisecond();
                        Duration::from_millis(ms.clamp(10, i64::MAX) as u64)
                            .min(ctx.settings.poll_interval)
                    }
                    _ => ctx.settings.poll_interval,
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "claiming mail failed; retrying");
                ctx.settings.poll_interval
            }
        };
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep(pause) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// Make one claimed attempt and record it.
async fn attempt(ctx: &Ctx, m: ClaimedMail) {
    if m.kind == "reminder" && m.booking_status != "accepted" {
        let _ = ctx
            .store
            .finish_mail(
                m.id,
                m.attempt,
                "skipped",
                None,
                Some("the booking is no longer accepted"),
            )
            .await;
        return;
    }
    let from = From {
        from: &ctx.settings.from,
        public_url: ctx.settings.public_url.as_deref(),
        page_key: ctx.page_key.bytes(),
    };
    let outcome = match compose::message(&m, &from) {
        Err(e) => Err(SendError::Permanent(e)),
        Ok(msg) => ctx.sender.send(msg, &m.uid.to_string()).await,
    };
    let (status, retry_at, error) = match &outcome {
        Ok(()) => ("sent", None, None),
        Err(SendError::Permanent(e)) => ("dead", None, Some(e.clone())),
        Err(SendError::Transient(e)) => {
            let s = &ctx.settings;
            match after_attempt(
                false,
                m.attempt.max(1) as u32,
                s.max_attempts,
                s.backoff_base,
                s.backoff_max,
                rand::random(),
            ) {
                Next::Retry(d) => (
                    "pending",
                    Timestamp::now()
                        .checked_add(jiff::SignedDuration::try_from(d).unwrap_or_default())
                        .ok(),
                    Some(e.clone()),
                ),
                _ => ("dead", None, Some(e.clone())),
            }
        }
    };
    // A refused recipient is that recipient's problem, not the transport's.
    match &outcome {
        Ok(()) => ctx.metrics.mail.record(Ok(())),
        Err(SendError::Transient(e)) => ctx.metrics.mail.record(Err(e)),
        Err(SendError::Permanent(_)) => ctx.metrics.mail.refused(),
    }
    let recorded = ctx
        .store
        .finish_mail(m.id, m.attempt, status, retry_at, error.as_deref())
        .await;
    match (&recorded, status) {
        (Ok(_), "sent") => tracing::info!(
            message = %m.uid, kind = %m.kind, role = %m.role, attempt = m.attempt, "mail sent"
        ),
        (Ok(_), _) => tracing::warn!(
            message = %m.uid, kind = %m.kind, role = %m.role, attempt = m.attempt,
            error = ?error, outcome = status, "mail attempt failed"
        ),
        (Err(e), _) => tracing::error!(
            message = %m.uid, error = %e,
            "could not record a mail attempt; it will be retried when its lease ends"
        ),
    }
}
