//! Local-target release timings: cold first deploy, unchanged re-deploy, changed deploy and
//! rollback, each the median of several runs, using the calops binary built for this bench.
//!
//! `cargo bench --bench deploy` (release build). Under `cargo test --all-targets` it runs once
//! per phase as a smoke test. Needs the PostgreSQL server binaries (scripts/setup).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_calops");

fn calops(dir: &Path, port: u16, args: &[&str]) -> Duration {
    let t = Instant::now();
    let out = Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .args(["--profile", "local", "--no-progress", "--json"])
        .env("CALOPS_LOCAL_PORT", port.to_string())
        .output()
        .expect("run calops");
    let took = t.elapsed();
    assert!(
        out.status.success(),
        "calops {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn site() -> (tempfile::TempDir, u16) {
    let dir = tempfile::tempdir().unwrap();
    let profiles = dir.path().join("profiles");
    std::fs::create_dir(&profiles).unwrap();
    for p in ["base", "local"] {
        std::fs::copy(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("profiles/{p}.toml")),
            profiles.join(format!("{p}.toml")),
        )
        .unwrap();
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    (dir, port)
}

fn mark(dir: &Path, n: usize) {
    let p = dir.join("profiles/local.toml");
    let text: String = std::fs::read_to_string(&p)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("BENCH_MARK"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(p, format!("{text}BENCH_MARK = \"{n}\"\n")).unwrap();
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if calops::doctor::tools::postgres_bin_dir().is_none() {
        calops_testkit::skip_or_fail(
            "bench deploy",
            "PostgreSQL server binaries are not installed",
        );
        return;
    }
    let quick = !std::env::args().any(|a| a == "--bench");
    let runs = if quick { 1 } else { 5 };
    let (mut cold, mut unchanged, mut changed, mut rollback) = (vec![], vec![], vec![], vec![]);
    for _ in 0..runs {
        let (dir, port) = site();
        cold.push(calops(dir.path(), port, &["deploy"]));
        for _ in 0..runs {
            unchanged.push(calops(dir.path(), port, &["deploy"]));
        }
        for i in 0..runs {
            mark(dir.path(), i);
            changed.push(calops(dir.path(), port, &["deploy"]));
            rollback.push(calops(dir.path(), port, &["rollback"]));
        }
        let _ = Command::new(BIN)
            .current_dir(dir.path())
            .args(["destroy", "--yes", "--profile", "local"])
            .env("CALOPS_LOCAL_PORT", port.to_string())
            .output();
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "local target, medians ({runs} site(s), {} samples per phase after the first):",
        unchanged.len()
    );
    println!(
        "  cold first deploy   {:>8.0} ms  (n={})",
        ms(median(cold.clone())),
        cold.len()
    );
    println!(
        "  unchanged re-deploy {:>8.0} ms  (n={})  goal < 2000 ms",
        ms(median(unchanged.clone())),
        unchanged.len()
    );
    println!(
        "  changed deploy      {:>8.0} ms  (n={})",
        ms(median(changed.clone())),
        changed.len()
    );
    println!(
        "  rollback            {:>8.0} ms  (n={})  goal < 5000 ms",
        ms(median(rollback.clone())),
        rollback.len()
    );
}
