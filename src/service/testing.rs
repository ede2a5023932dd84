//! Support for the service's integration tests and benchmark: one private PostgreSQL cluster
//! per process (started on first use, removed when the process ends, however it ends), a
//! fresh database per app, and the service on a real listener at 127.0.0.1:0.

use crate::pg::{Cluster, Options};
use crate::service::config::Config;
use crate::service::server::{self, Running};
use anyhow::{Context, Result};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The bootstrap admin token of every test app.
pub const BOOTSTRAP_TOKEN: &str = "test-bootstrap-token-0123456789abcdef";

struct Shared {
    cluster: Cluster,
}

fn shared() -> Result<&'static Mutex<Shared>> {
    static CELL: OnceLock<std::result::Result<Mutex<Shared>, String>> = OnceLock::new();
    let r = CELL.get_or_init(|| {
        let start = || -> Result<Shared> {
            let dir = tempfile::Builder::new()
                .prefix("calops-pg-")
                .tempdir()
                .context("creating a temporary directory")?
                .keep();
            let opened = Cluster::init_or_open(
                &dir,
                Options {
                    // Tests need no durability; this keeps database creation quick.
                    settings: vec![
                        ("fsync".into(), "off".into()),
                        ("synchronous_commit".into(), "off".into()),
                        ("full_page_writes".into(), "off".into()),
                        ("max_connections".into(), "300".into()),
                    ],
                    ..Options::default()
                },
            );
            let mut cluster = match opened {
                Ok(c) => c,
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    return Err(e);
                }
            };
            cluster.remove_when_process_exits(std::process::id())?;
            cluster.start()?;
            Ok(Shared { cluster })
        };
        start().map(Mutex::new).map_err(|e| format!("{e:#}"))
    });
    r.as_ref()
        .map_err(|e| anyhow::anyhow!("the test PostgreSQL cluster could not start: {e}"))
}

/// Is the PostgreSQL server software installed (tests skip or fail via testkit when not)?
pub fn postgres_available() -> bool {
    crate::pg::Binaries::locate().is_ok()
}

/// A new, empty database in the shared cluster; returns its URL.
pub async fn fresh_database() -> Result<String> {
    let shared = shared()?;
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let (url, admin_url) = {
        let s = shared.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        (s.cluster.url(&name), s.cluster.url("postgres"))
    };
    let (client, conn) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls).await?;
    let task = tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    drop(client);
    let _ = task.await;
    Ok(url)
}

/// A running service on its own database.
pub struct TestApp {
    pub running: Running,
    pub base: String,
    pub database_url: String,
}

impl TestApp {
    pub async fn spawn() -> Result<TestApp> {
        let database_url = fresh_database().await?;
        let config = Config {
            listen: "127.0.0.1:0".parse()?,
            database_url: database_url.clone(),
            redis_url: None,
            object_storage_url: None,
            admin_token: Some(BOOTSTRAP_TOKEN.into()),
            reuse_port: false,
            private_listen: None,
            db_pool_size: 16,
            shutdown_timeout: Duration::from_secs(5),
            webhooks: Default::default(),
        };
        Self::spawn_with(config).await
    }

    pub async fn spawn_with(config: Config) -> Result<TestApp> {
        let database_url = config.database_url.clone();
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
