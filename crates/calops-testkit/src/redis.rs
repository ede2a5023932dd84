//! A private `redis-server` for a test.

use crate::service::app_config;
use anyhow::{Context, Result};
use calops::service::config::Config;
use calops::service::ratelimit::policy::Limits;
use std::time::Duration;

/// A private `redis-server` for a test: 127.0.0.1 on a free port, no persistence, killed when
/// dropped. `kill` (SIGKILL) and `restart` (same port) simulate an outage.
pub struct TestRedis {
    bin: std::path::PathBuf,
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
    /// Serving TLS only (`--port 0 --tls-port`), with `redis.crt`/`redis.key` in `dir`.
    tls: bool,
}

impl TestRedis {
    /// `None` (after `require_tool` printed SKIP, or panicked under CI) when redis-server is
    /// not installed.
    pub fn start(test: &str) -> Option<TestRedis> {
        let bin = crate::require_tool(test, "redis-server")?;
        let port = calops::pg::free_port().expect("a free port");
        let dir = tempfile::Builder::new()
            .prefix("calops-redis-")
            .tempdir()
            .expect("a temporary directory");
        let mut r = TestRedis {
            bin,
            port,
            dir,
            child: None,
            tls: false,
        };
        r.restart().expect("redis-server starts");
        Some(r)
    }

    /// Like [`TestRedis::start`], but listening for TLS only (as OCI Cache does), with this
    /// certificate and key (PEM). Debian's redis-server is built with TLS.
    pub fn start_tls(test: &str, cert_pem: &str, key_pem: &str) -> Option<TestRedis> {
        let bin = crate::require_tool(test, "redis-server")?;
        let port = calops::pg::free_port().expect("a free port");
        let dir = tempfile::Builder::new()
            .prefix("calops-redis-tls-")
            .tempdir()
            .expect("a temporary directory");
        std::fs::write(dir.path().join("redis.crt"), cert_pem).expect("writing the certificate");
        std::fs::write(dir.path().join("redis.key"), key_pem).expect("writing the key");
        let mut r = TestRedis {
            bin,
            port,
            dir,
            child: None,
            tls: true,
        };
        r.restart().expect("redis-server starts with TLS");
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
        let mut cmd = std::process::Command::new(&self.bin);
        if self.tls {
            let (crt, key) = (
                self.dir.path().join("redis.crt"),
                self.dir.path().join("redis.key"),
            );
            cmd.args(["--port", "0", "--tls-port", &self.port.to_string()])
                .arg("--tls-cert-file")
                .arg(&crt)
                .arg("--tls-key-file")
                .arg(&key)
                // No client certificates: the service authenticates the server only.
                .args(["--tls-auth-clients", "no"]);
        } else {
            cmd.args(["--port", &self.port.to_string()]);
        }
        let child = cmd
            .args(["--bind", "127.0.0.1"])
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
            // A TLS port is ready once it accepts connections (a plain PING cannot tell).
            let ready = if self.tls {
                std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            } else {
                calops::net::redis_ping(self.port)
            };
            if ready {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default();
        anyhow::bail!("redis-server did not answer on port {}: {log}", self.port)
    }

    /// A config like [`TestApp::spawn`]'s on `database_url`, with this Redis and `limits`.
    pub fn app_config(&self, database_url: &str, limits: Limits) -> Config {
        app_config(database_url, Some(self.url()), limits)
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
