//! One shared Redis connection (a `ConnectionManager`, which reconnects by itself) behind a
//! short timeout and a breaker: a failed or slow call marks Redis down for
//! [`RETRY_AFTER_FAILURE`], during which callers get `None` at once and use their fallback.
//! No request ever waits on Redis longer than the configured timeout, and none fails because
//! of it. The connection is made lazily, so a service that starts while Redis is down picks
//! it up once it answers.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

/// How long Redis is left alone after a failure before it is tried again.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// The default for `--redis-timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);

pub struct SharedRedis {
    client: redis::Client,
    timeout: Duration,
    manager: RwLock<Option<ConnectionManager>>,
    connecting: AtomicBool,
    down_until: Mutex<Option<Instant>>,
    /// Whether the last call worked (for logging transitions once, and metrics).
    up: AtomicBool,
}

impl SharedRedis {
    /// `None` when the URL cannot be opened (config validation already refuses such URLs).
    pub fn new(url: &str, timeout: Duration) -> Option<SharedRedis> {
        let client = redis::Client::open(url).ok()?;
        Some(SharedRedis {
            client,
            timeout,
            manager: RwLock::new(None),
            connecting: AtomicBool::new(false),
            down_until: Mutex::new(None),
            up: AtomicBool::new(true),
        })
    }

    /// Did the last call succeed (true before the first call)?
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn breaker_open(&self) -> bool {
        match self.down_until.lock() {
            Ok(g) => g.is_some_and(|t| Instant::now() < t),
            Err(_) => true,
        }
    }

    fn failed(&self, what: &str) {
        if let Ok(mut g) = self.down_until.lock() {
            *g = Some(Instant::now() + RETRY_AFTER_FAILURE);
        }
        if self.up.swap(false, Ordering::Relaxed) {
            tracing::warn!(
                error = what,
                "Redis is not answering: rate limits fall back to in-process counters and bookings proceed without the Redis lock"
            );
        }
    }

    fn succeeded(&self) {
        if !self.up.swap(true, Ordering::Relaxed) {
            tracing::info!("Redis answers again: rate limits are shared through it again");
        }
    }

    async fn manager(&self) -> Option<ConnectionManager> {
        if let Some(m) = self.manager.read().ok()?.as_ref() {
            return Some(m.clone());
        }
        // One task connects; the others fall back meanwhile instead of queueing.
        if self.connecting.swap(true, Ordering::AcqRel) {
            return None;
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.timeout)
            .set_response_timeout(self.timeout)
            .set_number_of_retries(0)
            .set_max_delay(self.timeout.as_millis() as u64);
        let made = tokio::time::timeout(
            self.timeout * 2,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await;
        self.connecting.store(false, Ordering::Release);
        match made {
            Ok(Ok(m)) => {
                if let Ok(mut g) = self.manager.write() {
                    *g = Some(m.clone());
                }
                Some(m)
            }
            Ok(Err(e)) => {
                self.failed(&e.to_string());
                None
            }
            Err(_) => {
                self.failed("connecting timed out");
                None
            }
        }
    }

    /// Run `f` on the connection within the timeout; `None` when Redis is unavailable, the
    /// breaker is open, or the call failed or took too long.
    pub async fn run<T, F, Fut>(&self, f: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if self.breaker_open() {
            return None;
        }
        let m = self.manager().await?;
        match tokio::time::timeout(self.timeout, f(m)).await {
            Ok(Ok(v)) => {
                self.succeeded();
                Some(v)
            }
            Ok(Err(e)) => {
                self.failed(&e.to_string());
                None
            }
            Err(_) => {
                self.failed(&format!("no answer within {:?}", self.timeout));
                None
            }
        }
    }
}

/// Why Redis could not be used at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeError {
    /// Not answering (refused, timed out, not resolvable): it may come up later; the service
    /// starts and counts rate limits per replica meanwhile.
    Unreachable(String),
    /// Something answered but not as Redis at this URL would (TLS expected or not spoken, a
    /// certificate not trusted, a password refused): a configuration error.
    Misconfigured(String),
}

/// Connect to `url` and PING it within `timeout`, telling a Redis that is down from one that
/// is configured wrong: down when no TCP connection can be made (refused, timed out, a name
/// that does not resolve); configured wrong when the port takes the connection but the PING
/// fails (TLS expected or not spoken, a certificate not trusted, a password refused).
pub async fn probe(url: &str, timeout: Duration) -> Result<(), ProbeError> {
    let client = redis::Client::open(url).map_err(|e| ProbeError::Misconfigured(e.to_string()))?;
    let parsed = url::Url::parse(url).map_err(|e| ProbeError::Misconfigured(e.to_string()))?;
    let host = parsed.host_str().unwrap_or("localhost").to_string();
    let port = parsed.port().unwrap_or(6379);
    match tokio::time::timeout(
        timeout,
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    {
        Err(_) => {
            return Err(ProbeError::Unreachable(format!(
                "no connection within {timeout:?}"
            )))
        }
        Ok(Err(e)) => return Err(ProbeError::Unreachable(e.to_string())),
        Ok(Ok(_)) => {}
    }
    let ping = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(timeout, ping).await {
        Err(_) => Err(ProbeError::Unreachable(format!(
            "no answer within {timeout:?}"
        ))),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if e.is_connection_refusal() => Err(ProbeError::Unreachable(e.to_string())),
        Ok(Err(e)) => Err(ProbeError::Misconfigured(e.to_string())),
    }
}
