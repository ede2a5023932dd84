//! Test support for calops, shared by its unit tests, the integration tests (`tests/it`) and
//! the benchmarks. A dev-dependency only (like cargo's `cargo-test-support`): nothing here
//! ships in the calops library or binary.
//!
//! The rule: a test that needs a tool which is missing fails under `CI=true` and may skip
//! locally with a printed reason. It never skips silently.
//!
//! - this file: the rule ([`in_ci`], [`require_tool`], [`skip_or_fail`])
//! - `pg`: one private PostgreSQL cluster per test process, a fresh database per test, and
//!   TLS-only clusters ([`pg::TlsPostgres`])
//! - `service`: the scheduling service on a real listener at 127.0.0.1:0 ([`TestApp`])
//! - `bench`: what the HTTP benchmarks share (a JSON POST, a latency-measuring load loop)
//! - `caldav`: real CalDAV servers (Radicale, Xandikos) on 127.0.0.1 ([`caldav::TestCalDav`])
//! - `redis`: a private `redis-server` that tests can kill, pause and restart, plain or TLS-only
//!   ([`TestRedis`])

pub mod bench;
pub mod caldav;
pub mod pg;
pub mod redis;
pub mod service;

pub use pg::{fresh_database, have_pg, postgres_available};
pub use redis::TestRedis;
pub use service::api_version;
pub use service::{app_config, TestApp, BOOTSTRAP_TOKEN, PAGE_KEY};

use std::path::PathBuf;

/// True when running under CI (`CI=true` or `CI=1`).
pub fn in_ci() -> bool {
    matches!(
        std::env::var("CI").ok().as_deref(),
        Some("true") | Some("1") | Some("TRUE") | Some("True")
    )
}

/// Find `tool` on PATH (or at an absolute path). Under CI a missing tool panics with the reason;
/// locally it prints `SKIP <test>: <reason>` to stderr and returns `None`.
pub fn require_tool(test: &str, tool: &str) -> Option<PathBuf> {
    match which::which(tool) {
        Ok(p) => Some(p),
        Err(_) => {
            skip_or_fail(
                test,
                &format!("`{tool}` is not installed (run scripts/setup)"),
            );
            None
        }
    }
}

/// Skip locally with a printed reason, or fail under CI.
pub fn skip_or_fail(test: &str, reason: &str) {
    if in_ci() {
        panic!("{test}: required under CI=true but unavailable: {reason}");
    }
    eprintln!("SKIP {test}: {reason}");
}
