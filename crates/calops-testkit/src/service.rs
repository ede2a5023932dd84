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
    pub base: String,
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
        Ok(TestApp {
            running,
            base,
            database_url,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
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
        private_listen: None,
        db_pool_size: 16,
        shutdown_timeout: Duration::from_secs(5),
        rate_limits: limits,
        redis_timeout: calops::service::ratelimit::redis_conn::DEFAULT_TIMEOUT,
        slot_cache: true,
        webhooks: Default::default(),
        telemetry: None,
        caldav: Default::default(),
        page_key: Some(PAGE_KEY.into()),
        mail: Default::default(),
    }
}
