//! Two probes:
//! - GET /health (readiness, [`crate::runtime::READINESS_PATH`], what the load balancer
//!   checks): each dependency's status and latency. 200 while the required ones (the database)
//!   are up, 503 otherwise; Redis and object storage are optional and only degrade.
//! - GET /livez (liveness, [`crate::runtime::LIVENESS_PATH`], what the container health check
//!   probes, failure action KILL): 200 whenever the process serves HTTP. It checks no
//!   dependency, so a database failover takes the service out of the load balancer without
//!   restarting it.

use crate::service::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The outcome of one dependency check.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    Up { latency_ms: f64 },
    Down { latency_ms: f64, error: String },
    NotConfigured,
}

impl Check {
    fn json(&self, required: bool) -> Value {
        match self {
            Check::Up { latency_ms } => {
                json!({"status": "up", "required": required, "latencyMs": round(*latency_ms)})
            }
            Check::Down { latency_ms, error } => json!({
                "status": "down", "required": required, "latencyMs": round(*latency_ms), "error": error
            }),
            Check::NotConfigured => json!({"status": "not_configured", "required": required}),
        }
    }
}

fn round(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// Overall status from the checks: `down` when the database is, `degraded` when an optional
/// dependency that is configured is down, else `ok`.
pub fn overall(db: &Check, optional: &[&Check]) -> &'static str {
    if !matches!(db, Check::Up { .. }) {
        "down"
    } else if optional.iter().any(|c| matches!(c, Check::Down { .. })) {
        "degraded"
    } else {
        "ok"
    }
}

async fn timed<F, E>(f: F) -> Check
where
    F: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let t = Instant::now();
    let r = tokio::time::timeout(CHECK_TIMEOUT, f).await;
    let latency_ms = t.elapsed().as_secs_f64() * 1000.0;
    match r {
        Ok(Ok(())) => Check::Up { latency_ms },
        Ok(Err(e)) => Check::Down {
            latency_ms,
            error: e.to_string(),
        },
        Err(_) => Check::Down {
            latency_ms,
            error: format!("no answer within {CHECK_TIMEOUT:?}"),
        },
    }
}

async fn check_redis(client: &Option<redis::Client>) -> Check {
    let Some(client) = client else {
        return Check::NotConfigured;
    };
    timed(async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        Ok::<_, redis::RedisError>(())
    })
    .await
}

/// Object storage through the same client the ICS writer uses: a writable directory, or a
/// signed HEAD of the bucket answered 2xx (wrong credentials or a missing bucket are "down").
async fn check_object_storage(
    objects: &Option<Result<std::sync::Arc<dyn crate::service::objstore::ObjectStore>, String>>,
) -> Check {
    match objects {
        None => Check::NotConfigured,
        Some(Err(e)) => Check::Down {
            latency_ms: 0.0,
            error: format!("unusable configuration: {e}"),
        },
        Some(Ok(o)) => timed(o.check()).await,
    }
}

/// Mail: down (the service degraded, not down) while the latest send attempt failed.
fn check_mail(m: &crate::service::metrics::MailStatus) -> Check {
    if !m.configured.load(std::sync::atomic::Ordering::Relaxed) {
        return Check::NotConfigured;
    }
    match m.failing() {
        None => Check::Up { latency_ms: 0.0 },
        Some(error) => Check::Down {
            latency_ms: 0.0,
            error,
        },
    }
}

/// GET /livez: the process is up and serving; nothing else is checked.
pub async fn live(State(state): State<AppState>) -> Response {
    let body = json!({
        "status": "alive",
        "version": env!("CARGO_PKG_VERSION"),
        "uptimeSeconds": round(state.started.elapsed().as_secs_f64()),
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// Connected calendars: `warn` when a selected calendar's last sync failed or is older than
/// `CALOPS_CALDAV_STALE_AFTER`, or a write-back was given up; slots and bookings keep using
/// the last known busy time meanwhile.
async fn calendars_json(state: &AppState) -> Value {
    let h = match tokio::time::timeout(CHECK_TIMEOUT, state.store.calendar_health()).await {
        Ok(Ok(h)) => h,
        _ => return json!({"status": "unknown", "required": false}),
    };
    if h.selected == 0 && h.writes_pending == 0 && h.writes_dead == 0 {
        return json!({"status": "not_configured", "required": false});
    }
    let stale = state.caldav.settings.stale_after.as_secs_f64();
    let mut warnings = Vec::new();
    if h.failing > 0 {
        warnings.push(format!(
            "{} calendar(s) failed their last sync; the last known busy time is in use",
            h.failing
        ));
    }
    if h.oldest_sync_age_seconds > stale {
        warnings.push(format!(
            "a calendar's busy time is {:.0} s old (CALOPS_CALDAV_STALE_AFTER is {stale:.0} s)",
            h.oldest_sync_age_seconds
        ));
    }
    if h.writes_dead > 0 {
        warnings.push(format!(
            "{} booking write-back(s) to calendars were given up",
            h.writes_dead
        ));
    }
    json!({
        "status": if warnings.is_empty() { "up" } else { "warn" },
        "required": false,
        "selected": h.selected,
        "failing": h.failing,
        "oldestSyncAgeSeconds": round(h.oldest_sync_age_seconds),
        "writesPending": h.writes_pending,
        "writesDead": h.writes_dead,
        "warnings": warnings,
    })
}

pub async fn handler(State(state): State<AppState>) -> Response {
    let store = state.store.clone();
    let (db, redis, storage) = tokio::join!(
        timed(async move { store.ping().await }),
        check_redis(&state.redis),
        check_object_storage(&state.objects),
    );
    let mail = check_mail(&state.metrics.mail);
    let calendars = calendars_json(&state).await;
    let mut status = overall(&db, &[&redis, &storage, &mail]);
    if status == "ok" && calendars["status"] == "warn" {
        status = "degraded";
    }
    let code = if status == "down" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    // Where rate limits are counted right now: Redis only when it is configured and answers.
    let limiter_backend = if matches!(redis, Check::Up { .. }) {
        "redis"
    } else {
        "in_process"
    };
    let mut body = json!({
        "status": status,
        "rateLimits": {"backend": limiter_backend},
        "version": env!("CARGO_PKG_VERSION"),
        "uptimeSeconds": round(state.started.elapsed().as_secs_f64()),
        "checks": {
            "database": db.json(true),
            "redis": redis.json(false),
            "objectStorage": storage.json(false),
            "mail": mail.json(false),
            "calendars": calendars,
        },
    });
    // On OCI each deployment slot runs with its image and slot name in the environment, so a
    // deploy can tell through the load balancer which release answered.
    for (field, var) in [("image", "CALOPS_IMAGE"), ("slot", "CALOPS_SLOT")] {
        if let Ok(v) = std::env::var(var) {
            body[field] = json!(v);
        }
    }
    (code, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_decides_and_optional_dependencies_only_degrade() {
        let up = Check::Up { latency_ms: 1.0 };
        let down = Check::Down {
            latency_ms: 1.0,
            error: "refused".into(),
        };
        assert_eq!(
            overall(&up, &[&Check::NotConfigured, &Check::NotConfigured]),
            "ok"
        );
        assert_eq!(overall(&up, &[&down, &Check::NotConfigured]), "degraded");
        assert_eq!(overall(&down, &[&up]), "down");
        assert_eq!(Check::NotConfigured.json(false)["status"], "not_configured");
    }
}
