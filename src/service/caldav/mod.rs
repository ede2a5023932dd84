//! Connected calendars over CalDAV: busy time read from the host's calendars, bookings written
//! back to one of them.
//!
//! - `domain::icalendar`: the pure part (calendar objects into busy intervals)
//! - `xml`: WebDAV/CalDAV request bodies and `multistatus` answers (pure)
//! - `client`: the [`client::CalDav`] trait and its HTTP implementation
//! - `sync`: the background sync per replica (one replica per calendar at a time: a lease
//!   taken with `FOR UPDATE SKIP LOCKED`), sync-collection or ctag polling, busy intervals
//!   written to `external_busy` with a notification to every replica's slot cache
//! - `writeback`: the outbox worker (PUT with `If-None-Match: *`, update, DELETE; retries with
//!   backoff, then dead letter)
//!
//! A calendar server that is down, slow or answers nonsense never fails a booking or a slots
//! query: they read the last busy intervals from the database; `/health` warns and `/metrics`
//! counts failures and the age of the oldest sync.

pub mod client;
pub mod sync;
pub mod writeback;
pub mod xml;

use crate::service::domain::webhooks::secrets::{self, SecretKey, Stored};
use crate::service::problem::Problem;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Settings (environment variables `CALOPS_CALDAV_*`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Sync and write-back tasks per process; 0 turns both off in this process.
    pub workers: usize,
    /// How often each selected calendar is asked for changes.
    pub sync_interval: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
    /// How many days ahead busy time is kept.
    pub window_days: u32,
    /// Write-back attempts before a write is dead-lettered.
    pub max_attempts: u32,
    /// `/health` warns when a selected calendar's last good sync is older than this.
    pub stale_after: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            workers: 2,
            sync_interval: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            window_days: 120,
            max_attempts: 10,
            stale_after: Duration::from_secs(600),
        }
    }
}

impl Settings {
    /// Read `CALOPS_CALDAV_*` through `env`; every problem at once.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, Vec<Problem>> {
        let mut s = Settings::default();
        let mut r = crate::service::problem::EnvReader::new(env);
        let (mut workers, mut window, mut attempts) = (
            s.workers as u64,
            u64::from(s.window_days),
            u64::from(s.max_attempts),
        );
        r.int("CALOPS_CALDAV_WORKERS", 0, 64, &mut workers);
        r.int("CALOPS_CALDAV_WINDOW_DAYS", 7, 366, &mut window);
        r.int("CALOPS_CALDAV_MAX_ATTEMPTS", 1, 100, &mut attempts);
        (s.workers, s.window_days, s.max_attempts) =
            (workers as usize, window as u32, attempts as u32);
        let ms = Duration::from_millis;
        let day = ms(86_400_000);
        r.duration(
            "CALOPS_CALDAV_SYNC_INTERVAL",
            ms(100),
            day,
            &mut s.sync_interval,
        );
        r.duration(
            "CALOPS_CALDAV_TIMEOUT",
            ms(100),
            ms(300_000),
            &mut s.timeout,
        );
        r.duration(
            "CALOPS_CALDAV_STALE_AFTER",
            ms(1000),
            day * 7,
            &mut s.stale_after,
        );
        r.finish(s)
    }
}

/// Counters of this process, for /metrics.
#[derive(Debug, Default)]
pub struct Stats {
    pub syncs: AtomicU64,
    pub sync_failures: AtomicU64,
    pub writes: AtomicU64,
    pub write_failures: AtomicU64,
}

impl Stats {
    pub fn count(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// What the API and the workers share: settings, the client, the key sealing passwords, and
/// the counters.
#[derive(Clone)]
pub struct Runtime {
    pub settings: Settings,
    pub client: Arc<dyn client::CalDav>,
    pub secret_key: Option<SecretKey>,
    pub stats: Arc<Stats>,
}

impl Runtime {
    pub fn new(settings: Settings, secret_key: Option<SecretKey>) -> Runtime {
        Runtime {
            client: Arc::new(client::HttpCalDav::new(settings.timeout)),
            settings,
            secret_key,
            stats: Arc::default(),
        }
    }

    /// Seal a password of organization `org_id` for storage.
    pub fn seal(&self, org_id: i64, password: &str) -> Stored {
        secrets::seal_for(
            secrets::CALENDAR_PASSWORD,
            self.secret_key.as_ref(),
            org_id,
            password,
        )
    }

    /// The account of stored credentials.
    pub fn account(
        &self,
        c: &crate::service::store::calendars::Credentials,
    ) -> Result<client::Account, String> {
        let bytes = secrets::open_for(
            secrets::CALENDAR_PASSWORD,
            self.secret_key.as_ref(),
            c.org_id,
            &c.password,
        )?;
        Ok(client::Account {
            username: c.username.clone(),
            password: String::from_utf8(bytes).map_err(|_| "the password is not UTF-8")?,
        })
    }
}

/// The running sync and write-back tasks of one process.
pub struct Workers {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Workers {
    /// Stop; wait up to `grace` for work in flight (cut-off work is leased and retried).
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        let all = futures::future::join_all(self.tasks);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!(
                "calendar sync or write-back still in flight at shutdown; it will be retried"
            );
        }
    }
}

/// Start the sync and write-back tasks (`settings.workers` of each).
pub fn spawn(store: crate::service::store::Store, rt: Runtime) -> Workers {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for _ in 0..rt.settings.workers {
        tasks.push(tokio::spawn(sync::run(
            store.clone(),
            rt.clone(),
            stopped.clone(),
        )));
        tasks.push(tokio::spawn(writeback::run(
            store.clone(),
            rt.clone(),
            stopped.clone(),
        )));
    }
    Workers { stop, tasks }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_all_at_once() {
        let env = |k: &str| match k {
            "CALOPS_CALDAV_WORKERS" => Some("999".to_string()),
            "CALOPS_CALDAV_SYNC_INTERVAL" => Some("soon".to_string()),
            "CALOPS_CALDAV_WINDOW_DAYS" => Some("30".to_string()),
            _ => None,
        };
        let p = Settings::from_env(&env).unwrap_err();
        let names: Vec<&str> = p.iter().map(|p| p.setting).collect();
        assert_eq!(
            names,
            ["CALOPS_CALDAV_WORKERS", "CALOPS_CALDAV_SYNC_INTERVAL"]
        );
        let ok =
            Settings::from_env(&|k: &str| (k == "CALOPS_CALDAV_WINDOW_DAYS").then(|| "30".into()))
                .unwrap();
        assert_eq!(ok.window_days, 30);
    }
}
