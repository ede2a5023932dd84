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
            // Tests that hammer the service must not be throttled; rate-limit tests set them.
            rate_limits: crate::service::ratelimit::policy::Limits::OFF,
            redis_timeout: crate::service::ratelimit::redis_conn::DEFAULT_TIMEOUT,
            slot_cache: true,
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

/// A private `redis-server` for a test: 127.0.0.1 on a free port, no persistence, killed when
/// dropped. `kill` (SIGKILL) and `restart` (same port) simulate an outage.
pub struct TestRedis {
    bin: std::path::PathBuf,
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl TestRedis {
    /// `None` (after `require_tool` printed SKIP, or panicked under CI) when redis-server is
    /// not installed.
    pub fn start(test: &str) -> Option<TestRedis> {
        let bin = crate::testkit::require_tool(test, "redis-server")?;
        let port = crate::pg::free_port().expect("a free port");
        let dir = tempfile::Builder::new()
            .prefix("calops-redis-")
            .tempdir()
            .expect("a temporary directory");
        let mut r = TestRedis {
            bin,
            port,
            dir,
            child: None,
        };
        r.restart().expect("redis-server starts");
        Some(r)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// SIGKILL the server and wait until it is gone.
    pub fn kill(&mut self) {
        self.resume();
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freeze the server (SIGSTOP): connections stay open but nothing answers.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Thaw a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, sig: libc::c_int) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on our own child's pid; no memory is involved.
            unsafe {
                libc::kill(c.id() as libc::pid_t, sig);
            }
        }
    }

    /// Start the server (again) on the same port and wait until it answers PING.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        let log = std::fs::File::create(self.dir.path().join("redis.log"))?;
        let child = std::process::Command::new(&self.bin)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting redis-server")?;
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if crate::net::redis_ping(self.port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default();
        anyhow::bail!("redis-server did not answer on port {}: {log}", self.port)
    }

    /// A config like [`TestApp::spawn`]'s on `database_url`, with this Redis and `limits`.
    pub fn app_config(
        &self,
        database_url: &str,
        limits: crate::service::ratelimit::policy::Limits,
    ) -> Config {
        app_config(database_url, Some(self.url()), limits)
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The config [`TestApp::spawn`] uses, with a Redis URL and rate limits of your choice.
pub fn app_config(
    database_url: &str,
    redis_url: Option<String>,
    limits: crate::service::ratelimit::policy::Limits,
) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().expect("an address"),
        database_url: database_url.to_string(),
        redis_url,
        object_storage_url: None,
        admin_token: Some(BOOTSTRAP_TOKEN.into()),
        reuse_port: false,
        private_listen: None,
        db_pool_size: 16,
        shutdown_timeout: Duration::from_secs(5),
        rate_limits: limits,
        redis_timeout: crate::service::ratelimit::redis_conn::DEFAULT_TIMEOUT,
        slot_cache: true,
        webhooks: Default::default(),
    }
}
