//! One private PostgreSQL cluster per test process (started on first use, removed when the
//! process ends, however it ends) and a fresh database per test.

use anyhow::{Context, Result};
use calops::pg::{Cluster, Options};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// Tests need no durability; this keeps database creation quick.
fn no_durability() -> Vec<(String, String)> {
    ["fsync", "synchronous_commit", "full_page_writes"]
        .into_iter()
        .map(|k| (k.to_string(), "off".to_string()))
        .collect()
}

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
                    settings: [
                        no_durability(),
                        vec![("max_connections".into(), "300".into())],
                    ]
                    .concat(),
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
            remove_when_process_exits(&cluster, std::process::id())?;
            cluster.start()?;
            Ok(Shared { cluster })
        };
        start().map(Mutex::new).map_err(|e| format!("{e:#}"))
    });
    r.as_ref()
        .map_err(|e| anyhow::anyhow!("the test PostgreSQL cluster could not start: {e}"))
}

/// Is the PostgreSQL server software installed (tests skip or fail via [`have_pg`] when not)?
pub fn postgres_available() -> bool {
    calops::pg::Binaries::locate().is_ok()
}

/// True when PostgreSQL is installed; otherwise fails under CI, or prints `SKIP <test>: ...`
/// and returns false.
pub fn have_pg(test: &str) -> bool {
    if postgres_available() {
        return true;
    }
    crate::skip_or_fail(
        test,
        "PostgreSQL server binaries are not installed (run scripts/setup)",
    );
    false
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

/// Leave a watchdog process that kills `cluster`'s server and removes its directory once
/// process `pid` is gone (for temporary clusters of tests and benchmarks, which may end by
/// panic or SIGKILL).
pub fn remove_when_process_exits(cluster: &Cluster, pid: u32) -> Result<()> {
    let script = r#"while kill -0 "$1" 2>/dev/null; do sleep 0.5; done
pm=$(head -n 1 "$2/data/postmaster.pid" 2>/dev/null)
if [ -n "$pm" ]; then kill -QUIT "$pm" 2>/dev/null; i=0; while kill -0 "$pm" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; fi
rm -rf "$3" "$2""#;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .arg("calops-pg-reaper")
        .arg(pid.to_string())
        .arg(cluster.dir())
        .arg(cluster.data_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.spawn()
        .context("starting the cluster clean-up watchdog")?;
    Ok(())
}

/// A private PostgreSQL cluster that serves TLS with the given certificate and accepts TCP
/// connections with TLS only (`hostssl`), as OCI Database with PostgreSQL does. Removed when
/// the test process ends.
pub struct TlsPostgres {
    pub cluster: Cluster,
    pub port: u16,
    /// The superuser's password (the secret a test puts in its stand-in Vault).
    pub password: String,
}

impl TlsPostgres {
    pub fn start(cert_pem: &str, key_pem: &str) -> Result<TlsPostgres> {
        let dir = tempfile::Builder::new()
            .prefix("calops-pgtls-")
            .tempdir()
            .context("creating a temporary directory")?
            .keep();
        let mut cluster = Cluster::init_or_open(
            &dir,
            Options {
                settings: no_durability(),
                tls: Some(calops::pg::ServerTls {
                    cert_pem: cert_pem.into(),
                    key_pem: key_pem.into(),
                }),
                ..Options::default()
            },
        )?;
        remove_when_process_exits(&cluster, std::process::id())?;
        let port = cluster.start()?;
        let url = url::Url::parse(&cluster.url("postgres")).context("the cluster's URL")?;
        let password = url.password().unwrap_or_default().to_string();
        Ok(TlsPostgres {
            cluster,
            port,
            password,
        })
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let _ = self.cluster.stop();
    }
}
