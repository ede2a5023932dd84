//! What several test modules share. The test support the benchmarks use too (the missing-tool
//! rule, `have_pg`, the PostgreSQL cluster, `TestApp`, `TestRedis`) is `calops_testkit`.
//!
//! - `api`: the HTTP client of the service tests
//! - `env`: the environment variables tests hand to calops by name, set before `main`
//! - `imds`: the instance metadata service and the auth service an instance principal uses
//! - `monitoring`: OCI Monitoring in the stand-in OCI (PostMetricData checked, faults)
//! - `mql`: a parser for the Monitoring Query Language the rendered alarms use
//! - `oci`: the stand-in OCI (signature-checking server) and the OCI signing vectors
//! - `ocistand`: what the stand-ins for OCI's APIs share (the signature check, answers, keys)
//! - `schema_check`: the OCI provider-schema checker for rendered Terraform
//! - `site`: a local deployment driven through the `calops` binary

pub mod api;
pub mod env;
pub mod imds;
pub mod monitoring;
pub mod mql;
pub mod oci;
pub mod ocistand;
pub mod schema_check;
pub mod site;

/// Run `q` (simple query protocol) on the PostgreSQL at `url`; every row's first column as text.
pub async fn sql(url: &str, q: &str) -> Vec<String> {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let t = tokio::spawn(conn);
    let rows = c
        .simple_query(q)
        .await
        .unwrap_or_else(|e| panic!("{q}: {e}"));
    drop(c);
    let _ = t.await;
    rows.into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap_or("").to_string()),
            _ => None,
        })
        .collect()
}

/// A `--json` command's output: (exit code, its one JSON document, stderr); a stdout that is
/// not one JSON document fails the test, naming `args`.
pub fn json_output(args: &[&str], out: &std::process::Output) -> (i32, serde_json::Value, String) {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: stdout is not one JSON document ({e}): {}\nstderr: {stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (out.status.code().unwrap_or(-1), doc, stderr)
}

/// The outcomes of `calops releases --json`'s releases, oldest first.
pub fn release_outcomes(doc: &serde_json::Value) -> Vec<String> {
    doc["releases"]
        .as_array()
        .unwrap_or_else(|| panic!("no releases in {doc}"))
        .iter()
        .map(|r| r["outcome"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A connection to the test database at `url` (its driver runs on the current runtime).
pub async fn db(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// A Python that can `imports` (e.g. `"import icalendar"`): $CALOPS_PYTHON, the venv that
/// scripts/setup makes (/opt/calops-venv), or python3 on PATH. `None` (after the missing-tool
/// rule: a failure under CI, a printed skip locally) when there is none.
pub fn python(test: &str, imports: &str) -> Option<std::path::PathBuf> {
    use std::process::{Command, Stdio};
    let mut candidates: Vec<std::path::PathBuf> = Vec::new();
    if let Ok(p) = std::env::var("CALOPS_PYTHON") {
        candidates.push(p.into());
    }
    candidates.push("/opt/calops-venv/bin/python3".into());
    if let Ok(p) = which::which("python3") {
        candidates.push(p);
    }
    for p in candidates {
        let ok = Command::new(&p)
            .args(["-c", imports])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            return Some(p);
        }
    }
    calops_testkit::skip_or_fail(
        test,
        &format!("no Python with `{imports}` (run scripts/setup, which makes /opt/calops-venv)"),
    );
    None
}

/// The webhook allow-list that lets deliveries reach receivers on 127.0.0.1 (tests set it
/// explicitly: by default deliveries go to public addresses only).
pub fn loopback_webhooks() -> calops::service::domain::webhooks::reach::AllowList {
    calops::service::domain::webhooks::reach::AllowList::parse("127.0.0.0/8").unwrap()
}

/// A service whose webhook deliveries may reach 127.0.0.1.
pub async fn app_with_loopback_webhooks() -> calops_testkit::TestApp {
    let mut config = calops_testkit::app_config(
        &calops_testkit::fresh_database().await.unwrap(),
        None,
        calops::service::ratelimit::policy::Limits::OFF,
    );
    config.webhooks.allow_private = loopback_webhooks();
    calops_testkit::TestApp::spawn_with(config).await.unwrap()
}

/// Every day of the week, as schedules name them.
pub const ALL_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Poll `f` until it returns `Some`, for up to `secs`; panics naming `what` after that.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < until,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
