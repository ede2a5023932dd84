//! A private `redis-server` for the local target (and for tests): loopback only, no
//! persistence, started detached with a pidfile, found again by later runs.

use super::process::{self, Managed};
use crate::deploy::store::write_atomic;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct LocalRedis {
    pub port: u16,
    pub process: Managed,
}

impl LocalRedis {
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

fn port_file(dir: &Path) -> PathBuf {
    dir.join("port")
}

/// The running server under `dir`, if any.
pub fn running(dir: &Path) -> Option<LocalRedis> {
    let m = process::read_pidfile(&dir.join("redis.pid"), &dir.join("redis.log"))?;
    let port = std::fs::read_to_string(port_file(dir))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(LocalRedis { port, process: m })
}

/// Start `redis-server` under `dir` unless it already runs there. `Ok(None)` when
/// redis-server is not installed (Redis is optional).
pub fn ensure(dir: &Path) -> Result<Option<(LocalRedis, bool)>> {
    if let Some(r) = running(dir) {
        if ping(r.port) {
            return Ok(Some((r, false)));
        }
    }
    let Ok(bin) = which::which("redis-server") else {
        return Ok(None);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let port = process::free_port()?;
    let mut cmd = Command::new(bin);
    cmd.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
    ])
    .arg("--dir")
    .arg(dir);
    let m = process::spawn_detached(cmd, &dir.join("redis.pid"), &dir.join("redis.log"))?;
    write_atomic(&port_file(dir), format!("{port}\n").as_bytes())?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if ping(port) {
            return Ok(Some((LocalRedis { port, process: m }, true)));
        }
        if !m.alive() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let tail = m.log_tail(20);
    m.stop(Duration::from_secs(2));
    anyhow::bail!("redis-server did not start on port {port}; its log:\n{tail}")
}

// Moved down to `net` (test support for the service uses it too).
pub use crate::net::redis_ping as ping;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_once_and_is_found_again() {
        if calops_testkit::require_tool("deploy::local::redis", "redis-server").is_none() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let (r, started) = ensure(d.path()).unwrap().unwrap();
        assert!(started && ping(r.port));
        let (again, started_again) = ensure(d.path()).unwrap().unwrap();
        assert!(!started_again);
        assert_eq!(again.port, r.port);
        assert!(r.process.stop(Duration::from_secs(5)));
        assert!(!ping(r.port));
    }
}
