//! The state every handler, middleware and background task of the service shares (the
//! crates.io server's `App`): the store, metrics, caches, rate limits and settings. It lives
//! apart from `api` so that nothing needs the HTTP layer to name it.

use crate::service::metrics::Metrics;
use crate::service::principal::{hash_key, KeyCache};
use crate::service::store::Store;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub keys: Arc<KeyCache>,
    pub bootstrap_hash: Option<[u8; 32]>,
    /// The dependency checks behind `/health` (cached for a second, over kept connections).
    pub health: Arc<crate::service::health::Probe>,
    pub object_storage_url: Option<String>,
    /// The object store `object_storage_url` names: `None` when there is none, `Err` (why)
    /// when it is configured but unusable.
    pub objects: Option<Result<Arc<dyn crate::service::objstore::ObjectStore>, String>>,
    pub http: reqwest::Client,
    pub started: Instant,
    /// Rate limits per API key (Redis-shared when configured; see `service::ratelimit`).
    pub rate_limiter: Arc<crate::service::ratelimit::RateLimiter>,
    /// The Redis lock in front of booking (a no-op without Redis).
    pub booking_locks: crate::service::ratelimit::lock::BookingLocks,
    /// Webhook settings (the key that seals secrets at rest, the breaker threshold).
    pub webhooks: crate::service::webhooks::Settings,
    /// Connected calendars: settings, the CalDAV client, the key sealing passwords, counters.
    pub caldav: crate::service::caldav::Runtime,
    /// The key the booking pages sign self-service links and form tokens with.
    pub page_key: PageKey,
}

/// The server key of the booking pages (`CALOPS_PAGE_KEY_REF`). Never shown.
#[derive(Clone)]
pub struct PageKey(Arc<[u8]>);

impl PageKey {
    pub fn new(bytes: &[u8]) -> PageKey {
        PageKey(Arc::from(bytes))
    }

    /// A random key, for a service started without one: its links stop working when it
    /// restarts and are not valid on other replicas.
    pub fn random() -> PageKey {
        use rand::RngCore;
        let mut k = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut k);
        PageKey::new(&k)
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for PageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageKey(***)")
    }
}

impl AppState {
    /// `oci` signs the calls of OCI's native Object Storage (the resource principal's client).
    pub fn new(
        store: Store,
        bootstrap_token: Option<&str>,
        redis_url: Option<&str>,
        object_storage_url: Option<String>,
        oci: Option<&crate::oci::client::OciClient>,
    ) -> AppState {
        AppState {
            store,
            metrics: Arc::new(Metrics::default()),
            keys: Arc::new(KeyCache::new(Duration::from_secs(30))),
            bootstrap_hash: bootstrap_token.map(hash_key),
            health: Arc::new(crate::service::health::Probe::new(redis_url)),
            objects: object_storage_url
                .as_deref()
                .map(|u| crate::service::objstore::open_url(u, oci)),
            object_storage_url,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap_or_default(),
            started: Instant::now(),
            rate_limiter: Arc::new(crate::service::ratelimit::RateLimiter::new(
                crate::service::ratelimit::policy::Limits::OFF,
                None,
            )),
            booking_locks: crate::service::ratelimit::lock::BookingLocks::new(None),
            webhooks: Default::default(),
            caldav: crate::service::caldav::Runtime::new(Default::default(), None),
            page_key: PageKey::random(),
        }
    }

    /// Rate limits and the booking lock, shared through Redis at `redis_url` when given.
    pub fn with_rate_limits(
        mut self,
        limits: crate::service::ratelimit::policy::Limits,
        redis_url: Option<&str>,
        redis_timeout: Duration,
    ) -> AppState {
        let redis = redis_url
            .and_then(|u| crate::service::ratelimit::redis_conn::SharedRedis::new(u, redis_timeout))
            .map(Arc::new);
        self.rate_limiter = Arc::new(crate::service::ratelimit::RateLimiter::new(
            limits,
            redis.clone(),
        ));
        self.booking_locks = crate::service::ratelimit::lock::BookingLocks::new(redis);
        self
    }
}
