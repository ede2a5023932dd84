//! The exporter's background tasks: one takes a snapshot every interval into the bounded
//! queue; the other posts the queue to Monitoring, [`body::MAX_STREAMS`] streams a call, each
//! call bounded by the settings' timeout. Requests only ever touch the in-memory counters.

use crate::oci::client::{OciClient, OciRequest, RetryPolicy, Service};
use crate::service::state::AppState;
use crate::service::telemetry::body::{self, Context};
use crate::service::telemetry::queue::Queue;
use crate::service::telemetry::snapshot::{self, Gauges, Totals};
use crate::service::telemetry::Settings;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{watch, Notify};

/// The path of PostMetricData on the ingestion endpoint.
pub const POST_PATH: &str = "/20180401/metrics";

/// How long the database gauges may take before the snapshot goes without them.
const GAUGE_TIMEOUT: Duration = Duration::from_secs(2);

/// Start both tasks; they stop when `stopped` turns true.
pub fn spawn(
    state: AppState,
    settings: Settings,
    client: OciClient,
    stopped: watch::Receiver<bool>,
) {
    let queue = Arc::new(Queue::new(settings.capacity));
    let ready = Arc::new(Notify::new());
    // One try per call: a retry would only hold the queue longer; the next minute comes soon.
    let client = client.with_retry_policy(RetryPolicy::none());
    let ctx = Context {
        namespace: settings.namespace.clone(),
        compartment_id: settings.compartment_id.clone(),
        dimensions: settings.dimensions.clone(),
    };
    tracing::info!(
        namespace = %ctx.namespace,
        interval_s = settings.interval.as_secs_f64(),
        "posting metrics to OCI Monitoring"
    );
    tokio::spawn(snapshots(
        state.clone(),
        settings.interval,
        ctx,
        queue.clone(),
        ready.clone(),
        stopped.clone(),
    ));
    tokio::spawn(poster(
        state,
        client,
        settings.timeout,
        queue,
        ready,
        stopped,
    ));
}

fn totals(state: &AppState) -> Totals {
    let cache = state.store.cache().stats();
    Totals {
        requests: state.metrics.totals(),
        cache_hits: cache.hits,
        cache_misses: cache.misses,
        dropped: state.metrics.export.dropped.load(Relaxed),
    }
}

async fn gauges(state: &AppState, interval: Duration) -> Gauges {
    let backlog = tokio::time::timeout(GAUGE_TIMEOUT, state.store.backlog()).await;
    let p95 = tokio::time::timeout(
        GAUGE_TIMEOUT,
        state.store.webhook_latency_p95(interval.as_secs_f64()),
    )
    .await;
    let calendars = tokio::time::timeout(GAUGE_TIMEOUT, state.store.calendar_health())
        .await
        .ok()
        .and_then(Result::ok);
    Gauges {
        pool: state.store.pool_status(),
        queues: match backlog {
            Ok(Ok(b)) => {
                let mut q = vec![
                    (
                        "webhooks",
                        b.webhook_pending,
                        Some(b.webhook_oldest_pending_seconds),
                    ),
                    ("ics", b.ics_pending, None),
                ];
                if let Some(c) = &calendars {
                    q.push(("calendar_writes", c.writes_pending, None));
                }
                Some(q)
            }
            _ => None,
        },
        calendars: calendars
            .filter(|c| c.selected > 0)
            .map(|c| (c.oldest_sync_age_seconds, c.failing)),
        webhook_latency_p95: p95.ok().and_then(Result::ok).flatten(),
        backup: snapshot::backup_gauges(&crate::service::metrics::extra()),
    }
}

async fn snapshots(
    state: AppState,
    interval: Duration,
    ctx: Context,
    queue: Arc<Queue>,
    ready: Arc<Notify>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut prev = totals(&state);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        let cur = totals(&state);
        let g = gauges(&state, interval).await;
        let snap = snapshot::between(&prev, &cur, g, SystemTime::now());
        prev = cur;
        let dropped = queue.push(body::metric_data(&snap, &ctx));
        if dropped > 0 {
            state.metrics.export.dropped.fetch_add(dropped, Relaxed);
            tracing::warn!(
                dropped,
                "metrics queue full: dropped the oldest metric data"
            );
        }
        ready.notify_one();
    }
}

async fn poster(
    state: AppState,
    client: OciClient,
    timeout: Duration,
    queue: Arc<Queue>,
    ready: Arc<Notify>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = ready.notified() => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        loop {
            let items = queue.take(body::MAX_STREAMS);
            if items.is_empty() {
                break;
            }
            let n = items.len() as u64;
            let outcome = tokio::time::timeout(timeout, post(&client, body::body(items))).await;
            let e = &state.metrics.export;
            match outcome {
                Ok(Ok(0)) => {
                    e.posted.fetch_add(n, Relaxed);
                }
                Ok(Ok(refused)) => {
                    let refused = refused.min(n);
                    e.posted.fetch_add(n - refused, Relaxed);
                    e.dropped.fetch_add(refused, Relaxed);
                    e.failures.fetch_add(1, Relaxed);
                    tracing::warn!(
                        dropped = refused,
                        "PostMetricData refused some metric streams"
                    );
                }
                Ok(Err(why)) => {
                    e.dropped.fetch_add(n, Relaxed);
                    e.failures.fetch_add(1, Relaxed);
                    tracing::warn!(dropped = n, error = %why, "PostMetricData failed: metrics dropped");
                }
                Err(_) => {
                    e.dropped.fetch_add(n, Relaxed);
                    e.failures.fetch_add(1, Relaxed);
                    tracing::warn!(
                        dropped = n,
                        timeout_s = timeout.as_secs_f64(),
                        "PostMetricData did not answer in time: metrics dropped"
                    );
                }
            }
        }
    }
}

/// Post one body; the number of streams Monitoring refused in an accepted call.
async fn post(client: &OciClient, body: serde_json::Value) -> Result<u64, String> {
    let url = client
        .url(Service::TelemetryIngestion, POST_PATH)
        .map_err(|e| e.to_string())?;
    let req = OciRequest::new(reqwest::Method::POST, url)
        .json(&body)
        .map_err(|e| e.to_string())?;
    let resp = client.send(req).await.map_err(|e| e.to_string())?;
    // A 200 can still list streams Monitoring refused (`failedMetricsCount`).
    Ok(resp
        .json::<serde_json::Value>()
        .ok()
        .and_then(|v| v["failedMetricsCount"].as_u64())
        .unwrap_or(0))
}
