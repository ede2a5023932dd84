//! Two probes:
//! - GET /health (readiness, [`crate::runtime::READINESS_PATH`], what the load balancer
//!   checks): each dependency's status and latency. 200 while the required ones (the database)
//!   are up, 503 otherwise; Redis and object storage are optional and only degrade.
//! - GET /livez (liveness, [`crate::runtime::LIVENESS_PATH`], what the container health check
//!   probes, failure action KILL): 200 whenever the process serves HTTP. It checks no
//!   dependency, so a database failover takes the service out of the load balancer without
//!   restarting it.
//!
//! `/health` is unauthenticated and load balancers call it every few seconds, so it must be
//! cheap and quiet: a [`Probe`] checks the dependencies at most once per [`CACHE_FOR`] (callers
//! in between, or waiting while a check runs, get that result), over connections it keeps
//! (the database pool, one Redis connection, the object store's HTTP client). Raw dependency
//! errors (host names, addresses, driver messages) are shown only to trusted callers (the
//! private listener, or the bootstrap admin token); anyone else sees statuses.

use crate::service::metrics::MailStatus;
use crate::service::objstore::ObjectStore;
use crate::service::store::Store;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one round of checks answers `/health`.
pub const CACHE_FOR: Duration = Duration::from_secs(1);

/// The outcome of one dependency check.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    Up { latency_ms: f64 },
    Down { latency_ms: f64, error: String },
    NotConfigured,
}

impl Check {
    /// The check as `/health` shows it; `detailed` adds latency and the raw error.
    fn json(&self, required: bool, detailed: bool) -> Value {
        let mut v = match self {
            Check::Up { .. } => json!({"status": "up", "required": required}),
            Check::Down { .. } => json!({"status": "down", "required": required}),
            Check::NotConfigured => json!({"status": "not_configured", "required": required}),
        };
        if detailed {
            match self {
                Check::Up { latency_ms } => v["latencyMs"] = json!(round(*latency_ms)),
                Check::Down { latency_ms, error } => {
                    v["latencyMs"] = json!(round(*latency_ms));
                    v["error"] = json!(error);
                }
                Check::NotConfigured => {}
            }
        }
        v
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

/// One round of checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub database: Check,
    pub redis: Check,
    pub object_storage: Check,
    /// Mail delivery: down (the service degraded, not down) while the latest send failed.
    pub mail: Check,
    /// Connected calendars' sync and write-back (see `calendars_json`).
    pub calendars: Value,
}

impl Snapshot {
    pub fn status(&self) -> &'static str {
        match overall(
            &self.database,
            &[&self.redis, &self.object_storage, &self.mail],
        ) {
            "ok" if self.calendars["status"] == "warn" => "degraded",
            s => s,
        }
    }

    /// The `checks` object; `detailed` adds latencies and raw errors.
    pub fn checks_json(&self, detailed: bool) -> Value {
        json!({
            "database": self.database.json(true, detailed),
            "redis": self.redis.json(false, detailed),
            "objectStorage": self.object_storage.json(false, detailed),
            "mail": self.mail.json(false, detailed),
            "calendars": self.calendars,
        })
    }
}

/// The object store the service was given: none, unusable (why), or usable.
pub type Objects = Option<Result<Arc<dyn ObjectStore>, String>>;

/// Checks the dependencies, at most once per [`CACHE_FOR`], over kept connections.
pub struct Probe {
    redis: Option<redis::Client>,
    /// The Redis connection checks reuse; dropped after a failure (the next check reconnects).
    redis_conn: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    /// The last round and when it finished; the lock also makes concurrent callers wait for
    /// one round instead of each starting their own.
    last: tokio::sync::Mutex<Option<(Instant, Snapshot)>>,
    /// Rounds run so far (for tests and metrics).
    rounds: std::sync::atomic::AtomicU64,
}

impl Probe {
    pub fn new(redis_url: Option<&str>) -> Probe {
        Probe {
            redis: redis_url.and_then(|u| redis::Client::open(u).ok()),
            redis_conn: tokio::sync::Mutex::new(None),
            last: tokio::sync::Mutex::new(None),
            rounds: Default::default(),
        }
    }

    /// How many rounds of checks have run.
    pub fn rounds(&self) -> u64 {
        self.rounds.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The current snapshot: the last one when it is younger than [`CACHE_FOR`], else a new
    /// round.
    pub async fn snapshot(
        &self,
        store: &Store,
        objects: &Objects,
        mail: &MailStatus,
        calendars_stale_after: Duration,
    ) -> Snapshot {
        let mut last = self.last.lock().await;
        if let Some((at, s)) = last.as_ref() {
            if at.elapsed() < CACHE_FOR {
                return s.clone();
            }
        }
        let (database, redis, object_storage, calendars) = tokio::join!(
            timed(store.ping()),
            self.check_redis(),
            check_object_storage(objects),
            calendars_json(store, calendars_stale_after),
        );
        self.rounds
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let s = Snapshot {
            database,
            redis,
            object_storage,
            mail: check_mail(mail),
            calendars,
        };
        *last = Some((Instant::now(), s.clone()));
        s
    }

    async fn check_redis(&self) -> Check {
        let Some(client) = &self.redis else {
            return Check::NotConfigured;
        };
        let mut conn = self.redis_conn.lock().await;
        timed(async {
            // A kept connection may have died with a Redis restart: then one fresh try.
            if let Some(c) = conn.as_mut() {
                if redis::cmd("PING").query_async::<String>(c).await.is_ok() {
                    return Ok(());
                }
                *conn = None;
            }
            let mut c = client.get_multiplexed_async_connection().await?;
            redis::cmd("PING").query_async::<String>(&mut c).await?;
            *conn = Some(c);
            Ok::<_, redis::RedisError>(())
        })
        .await
    }
}

/// Object storage through the same client the ICS writer uses: a writable directory, or a
/// signed HEAD of the bucket answered 2xx (wrong credentials or a missing bucket are "down").
async fn check_object_storage(objects: &Objects) -> Check {
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
fn check_mail(m: &MailStatus) -> Check {
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

/// Connected calendars: `warn` when a selected calendar's last sync failed or is older than
/// `stale_after` (`CALOPS_CALDAV_STALE_AFTER`), or a write-back was given up; slots and
/// bookings keep using the last known busy time meanwhile. Counts and warnings only, no raw
/// errors, so every caller may see it.
async fn calendars_json(store: &Store, stale_after: Duration) -> Value {
    let h = match tokio::time::timeout(CHECK_TIMEOUT, store.calendar_health()).await {
        Ok(Ok(h)) => h,
        _ => return json!({"status": "unknown", "required": false}),
    };
    if h.selected == 0 && h.writes_pending == 0 && h.writes_dead == 0 {
        return json!({"status": "not_configured", "required": false});
    }
    let stale = stale_after.as_secs_f64();
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

/// The `/health` body for `snapshot`; `detailed` shows latencies and raw errors.
pub fn body(snapshot: &Snapshot, detailed: bool, uptime_seconds: f64) -> Value {
    // Where rate limits are counted right now: Redis only when it is configured and answers.
    let limiter_backend = if matches!(snapshot.redis, Check::Up { .. }) {
        "redis"
    } else {
        "in_process"
    };
    let mut body = json!({
        "status": snapshot.status(),
        "rateLimits": {"backend": limiter_backend},
        "version": env!("CARGO_PKG_VERSION"),
        "uptimeSeconds": round(uptime_seconds),
        "checks": snapshot.checks_json(detailed),
    });
    // On OCI each deployment slot runs with its image and slot name in the environment, so a
    // deploy can tell through the load balancer which release answered.
    for (field, var) in [("image", "CALOPS_IMAGE"), ("slot", "CALOPS_SLOT")] {
        if let Ok(v) = std::env::var(var) {
            body[field] = json!(v);
        }
    }
    body
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
        assert_eq!(
            Check::NotConfigured.json(false, true)["status"],
            "not_configured"
        );
    }

    #[test]
    fn anonymous_callers_see_statuses_not_errors() {
        let s = Snapshot {
            database: Check::Up { latency_ms: 1.5 },
            redis: Check::Down {
                latency_ms: 2.0,
                error: "Connection refused (os error 111) at 10.0.3.7:6379".into(),
            },
            object_storage: Check::NotConfigured,
            mail: Check::NotConfigured,
            calendars: json!({"status": "not_configured", "required": false}),
        };
        let quiet = body(&s, false, 3.0);
        assert_eq!(quiet["status"], "degraded");
        assert_eq!(quiet["checks"]["redis"]["status"], "down");
        assert_eq!(quiet["rateLimits"]["backend"], "in_process");
        let text = quiet.to_string();
        assert!(
            !text.contains("10.0.3.7") && !text.contains("refused") && !text.contains("latencyMs"),
            "{text}"
        );
        let detailed = body(&s, true, 3.0);
        assert!(detailed["checks"]["redis"]["error"]
            .as_str()
            .unwrap()
            .contains("10.0.3.7"));
        assert_eq!(detailed["checks"]["database"]["latencyMs"], 1.5);
    }
}
