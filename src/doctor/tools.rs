//! Finding tools and reading their versions. Parsing is pure; probing runs the tool.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A dotted version, compared numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// The first `N.N[.N]` in `text` (after an optional `v`).
pub fn parse_version(text: &str) -> Option<Version> {
    let re = regex::Regex::new(r"v?(\d+)\.(\d+)(?:\.(\d+))?").ok()?;
    let c = re.captures(text)?;
    let n = |i: usize| c.get(i).and_then(|m| m.as_str().parse().ok()).unwrap_or(0);
    Some(Version(n(1), n(2), n(3)))
}

/// `terraform version -json` prints `{"terraform_version": "1.11.4", ...}`.
pub fn parse_terraform_version(json: &str) -> Option<Version> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    parse_version(v.get("terraform_version")?.as_str()?)
}

/// `redis-server --version` prints `Redis server v=7.0.15 sha=...`.
pub fn parse_redis_version(text: &str) -> Option<Version> {
    let i = text.find("v=")?;
    parse_version(&text[i + 2..])
}

/// Run `tool args...` with a time limit; stdout+stderr on success.
pub fn run_version(tool: &Path, args: &[&str]) -> Option<String> {
    run_capture(tool, args).map(|(out, err)| out + &err)
}

/// Run `tool args...` with a time limit; (stdout, stderr) on success.
pub fn run_capture(tool: &Path, args: &[&str]) -> Option<(String, String)> {
    let mut child = Command::new(tool)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let out = child.wait_with_output().ok()?;
    if !out.status.success() {
        return None;
    }
    Some((
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Find a tool on PATH.
pub fn find(tool: &str) -> Option<PathBuf> {
    which::which(tool).ok()
}

/// The terraform binary: `CALOPS_TERRAFORM` if set, else `terraform` on PATH.
pub fn terraform() -> Option<PathBuf> {
    match std::env::var_os("CALOPS_TERRAFORM") {
        Some(p) => Some(PathBuf::from(p)).filter(|p| p.is_file()),
        None => find("terraform"),
    }
}

/// The installed terraform's version string (e.g. `1.11.4`), if terraform is found.
pub fn terraform_version_string() -> Option<String> {
    let (out, _) = run_capture(&terraform()?, &["version", "-json"])?;
    parse_terraform_version(&out).map(|v| v.to_string())
}

/// The directory holding `initdb`, `pg_ctl` and `postgres` (the same search as the local
/// target's PostgreSQL harness: PATH, `pg_config --bindir`, `/usr/lib/postgresql/*/bin`).
pub fn postgres_bin_dir() -> Option<PathBuf> {
    crate::pg::Binaries::locate().ok().map(|b| b.bindir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(
            parse_terraform_version(r#"{"terraform_version":"1.11.4","platform":"linux_amd64"}"#),
            Some(Version(1, 11, 4))
        );
        assert_eq!(
            parse_version("rustc 1.95.0 (59807616e 2026-04-14)"),
            Some(Version(1, 95, 0))
        );
        assert_eq!(
            parse_version("postgres (PostgreSQL) 15.18"),
            Some(Version(15, 18, 0))
        );
        assert_eq!(
            parse_version("github.com/docker/buildx v0.19.3 48d6a39"),
            Some(Version(0, 19, 3))
        );
        assert_eq!(
            parse_redis_version(
                "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64"
            ),
            Some(Version(7, 0, 15))
        );
        assert_eq!(parse_terraform_version("not json"), None);
        assert!(Version(1, 12, 0) > Version(1, 5, 9));
    }
}
