//! The service on a real listener at 127.0.0.1:0, on a fresh database of the shared cluster
//! (`crate::pg`).

use crate::pg::fresh_database;
use anyhow::Result;
use calops::service::config::Config;
use calops::service::ratelimit::policy::Limits;
use calops::service::server::{self, Running};
use std::time::Duration;

/// The bootstrap admin token of every test app.
pub const BOOTSTRAP_TOKEN: &str = "test-bootstrap-token-0123456789abcdef";

/// The booking-page key of every test app (so that tests can sign links themselves).
pub const PAGE_KEY: &str = "test-page-key-0123456789abcdef-0123456789";

/// A running service on its own database.
pub struct TestApp {
    pub running: Running,
    /// The public listener (`http://127.0.0.1:PORT`).
    pub base: String,
    /// The private listener, which serves `/metrics` and `/health`'s details (the public
    /// listener when the config has none).
    pub private_base: String,
    pub database_url: String,
}

impl TestApp {
    pub async fn spawn() -> Result<TestApp> {
        // Tests that hammer the service must not be throttled; rate-limit tests set limits.
        Self::spawn_with(app_config(&fresh_database().await?, None, Limits::OFF)).await
    }

    pub async fn spawn_with(config: Config) -> Result<TestApp> {
        let database_url = config.database.to_url();
        let running = server::start(&config).await?;
        let base = format!("http://{}", running.addr);
        let private_base = running
            .private_addr
            .map(|a| format!("http://{a}"))
            .unwrap_or_else(|| base.clone());
        Ok(TestApp {
            running,
            base,
            private_base,
            database_url,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A URL on the private listener (`/metrics`).
    pub fn private_url(&self, path: &str) -> String {
        format!("{}{}", self.private_base, path)
    }
}

/// The config [`TestApp::spawn`] uses, with a Redis URL and rate limits of your choice.
pub fn app_config(database_url: &str, redis_url: Option<String>, limits: Limits) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().expect("an address"),
        database: calops::pg::Connector::plain(database_url).expect("a PostgreSQL URL"),
        redis_url,
        object_storage_url: None,
        oci: None,
        admin_token: Some(BOOTSTRAP_TOKEN.into()),
        reuse_port: false,
        private_listen: Some("127.0.0.1:0".parse().expect("an address")),
        db_pool_size: 16,
        shutdown_timeout: Duration::from_secs(5),
        rate_limits: limits,
        redis_timeout: calops::service::ratelimit::redis_conn::DEFAULT_TIMEOUT,
        slot_cache: true,
        metrics_public: false,
        webhooks: Default::default(),
        telemetry: None,
        caldav: Default::default(),
        page_key: Some(PAGE_KEY.into()),
        mail: Default::default(),
    }
}

/// The `cal-api-version` calops' own clients send to `method url` (the newest shape of a
/// versioned route; `None` for the others): a full URL or just its path.
pub fn api_version(method: &str, url: &str) -> Option<&'static str> {
    let path = match url.find("://") {
        Some(i) => url[i + 3..].find('/').map_or("/", |j| &url[i + 3 + j..]),
        None => url,
    };
    calops::service::api::versions::newest_for(method, path)
}
