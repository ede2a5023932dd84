//! Taking a base backup: `pg_basebackup` streams a tar of the cluster (over the replication
//! protocol, so it works from wherever the service runs), calops compresses it with zstd and
//! stores it in parts as it arrives (memory stays at about one part), then writes the
//! manifest once the WAL up to the backup's end is archived. Only one base backup runs at a
//! time per cluster: whoever takes one holds a PostgreSQL advisory lock.

use super::catalog::{self, BaseBackup, Part};
use super::codec::sha256_hex;
use super::config::BackupConfig;
use super::store::BackupStore;
use super::tarscan::TarScan;
use super::wal;
use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use indicatif::ProgressBar;
use sha2::Digest;
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};

/// The advisory lock key every calops base backup takes (`calops` + 0x0001 as bytes).
pub const LOCK_KEY: i64 = 0x6361_6c6f_7073_0001;

/// How `pg_basebackup` reaches the server.
#[derive(Clone)]
pub struct Source {
    pub bindir: PathBuf,
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Passed as `PGPASSWORD`, never on the command line.
    pub password: Option<String>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Source({}@{}:{})", self.user, self.host, self.port)
    }
}

impl Source {
    /// From a `postgres://` URL (TCP hosts only).
    pub fn from_url(url: &str, bindir: PathBuf) -> Result<Source> {
        let c: tokio_postgres::Config = url.parse().context("the database URL is not valid")?;
        let host = match c.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => bail!("base backups need a TCP database URL"),
        };
        Ok(Source {
            bindir,
            host,
            port: c.get_ports().first().copied().unwrap_or(5432),
            user: c.get_user().unwrap_or("postgres").to_string(),
            password: c
                .get_password()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
        })
    }
}

/// Take the advisory lock on `client`'s session: `wait` blocks for it, else `Ok(false)` when
/// another session holds it.
pub async fn lock(client: &tokio_postgres::Client, wait: bool) -> Result<bool> {
    if wait {
        client
            .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
            .await
            .context("waiting for the base backup lock")?;
        return Ok(true);
    }
    let row = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY])
        .await
        .context("taking the base backup lock")?;
    Ok(row.get(0))
}

pub async fn unlock(client: &tokio_postgres::Client) -> Result<()> {
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await?;
    Ok(())
}

/// Take a base backup of the server `client` is connected to (the caller holds [`lock`]).
pub async fn take<S: BackupStore>(
    store: &S,
    cfg: &BackupConfig,
    src: &Source,
    client: &tokio_postgres::Client,
    label: &str,
    pb: &ProgressBar,
) -> Result<BaseBackup> {
    let row = client
        .query_one(
            "SELECT current_setting('archive_mode'), pg_size_bytes(current_setting('wal_segment_size')), \
                    current_setting('server_version'), (SELECT system_identifier::text FROM pg_control_system())",
            &[],
        )
        .await
        .context("reading the server's settings")?;
    let archive_mode: String = row.get(0);
    let segment_size = row.get::<_, i64>(1) as u64;
    let server_version: String = row.get(2);
    let system_identifier: String = row.get(3);
    if archive_mode == "off" {
        bail!("archive_mode is off on this server: a base backup without the WAL archived after it cannot be restored");
    }
    if segment_size != wal::DEFAULT_SEGMENT_SIZE {
        bail!(
            "the server uses {segment_size}-byte WAL segments; calops archives 16 MB segments only"
        );
    }
    let started_at = jiff::Timestamp::now();
    let mut cmd = tokio::process::Command::new(src.bindir.join("pg_basebackup"));
    cmd.args([
        "-h",
        &src.host,
        "-p",
        &src.port.to_string(),
        "-U",
        &src.user,
    ])
    .args([
        "-D", "-", "-F", "t", "-X", "none", "-c", "fast", "-w", "-l", label,
    ])
    .env("PGCONNECT_TIMEOUT", "10")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    match &src.password {
        Some(p) => cmd.env("PGPASSWORD", p),
        None => cmd.env_remove("PGPASSWORD"),
    };
    let mut child = cmd
        .spawn()
        .with_context(|| format!("running {}", src.bindir.join("pg_basebackup").display()))?;
    let stderr = child.stderr.take().context("pg_basebackup's stderr")?;
    let log_task = tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        let mut log = Vec::new();
        while let Ok(Some(l)) = lines.next_line().await {
            // The cluster's own unix socket lives in its data directory.
            if !l.contains("skipping special file") {
                log.push(l);
            }
        }
        log
    });
    let mut stdout = child.stdout.take().context("pg_basebackup's stdout")?;
    let mut enc = zstd::stream::Encoder::new(Vec::new(), cfg.compression_level)?;
    enc.include_checksum(true)?;
    let mut scan = TarScan::default();
    let mut tar_hash = sha2::Sha256::new();
    let mut tar_bytes = 0u64;
    let mut parts: Vec<Part> = Vec::new();
    let mut name: Option<String> = None;
    let mut buf = vec![0u8; 1 << 20];
    let part_size = cfg.part_size.max(1 << 16) as usize;
    let streamed: Result<()> = async {
        loop {
            let n = stdout
                .read(&mut buf)
                .await
                .context("reading pg_basebackup's output")?;
            if n == 0 {
                break;
            }
            scan.feed(&buf[..n]);
            tar_hash.update(&buf[..n]);
            tar_bytes += n as u64;
            pb.set_position(tar_bytes);
            enc.write_all(&buf[..n])?;
            if name.is_none() {
                // backup_label comes first: it names the backup.
                if let Some((lsn, tli)) = scan.start() {
                    let n = catalog::backup_name(tli, lsn);
                    pb.set_message(format!("base backup {n}"));
                    name = Some(n);
                }
            }
            if let Some(n) = &name {
                if enc.get_ref().len() >= part_size {
                    let body = std::mem::take(enc.get_mut());
                    parts.push(put_part(store, n, parts.len(), body).await?);
                }
            }
        }
        Ok(())
    }
    .await;
    if streamed.is_err() {
        // Stop reading means pg_basebackup would block on a full pipe: end it.
        let _ = child.start_kill();
    }
    let status = child.wait().await?;
    let log = log_task.await.unwrap_or_default();
    if let Err(e) = streamed {
        return Err(discarded(
            store,
            &parts,
            format!("base backup failed: {e:#}\n  {}", log.join("\n  ")),
        )
        .await);
    }
    if !status.success() {
        return Err(discarded(
            store,
            &parts,
            format!("pg_basebackup failed ({status}):\n  {}", log.join("\n  ")),
        )
        .await);
    }
    let (Some(name), Some((start_lsn, timeline)), Some(end_lsn)) = (name, scan.start(), scan.end())
    else {
        return Err(discarded(
            store,
            &parts,
            format!(
                "pg_basebackup's output has no backup_label or no backup_manifest with WAL ranges (label seen: {}, manifest seen: {})",
                scan.label.is_some(),
                scan.manifest_seen
            ),
        )
        .await);
    };
    let last = enc.finish()?;
    if !last.is_empty() || parts.is_empty() {
        parts.push(put_part(store, &name, parts.len(), last).await?);
    }
    let end_wal = wal::segment_name(timeline, end_lsn.segno(segment_size), segment_size);
    // pg_basebackup waits for the server to archive the last segment; check it is stored.
    let wait = Duration::from_secs(cfg.archive_timeout_seconds as u64 + 120);
    let deadline = Instant::now() + wait;
    let prefix = wal::object_prefix(&end_wal).expect("a segment name");
    loop {
        let found = store
            .list(&prefix)
            .await
            .map_err(|e| anyhow!("checking that {end_wal} is archived: {e}"))?;
        if found.iter().any(|o| {
            wal::WalObject::from_key(&o.key, segment_size).is_some_and(|w| w.file_name == end_wal)
        }) {
            break;
        }
        if Instant::now() > deadline {
            return Err(discarded(store, &parts, format!(
                "base backup {name}: WAL segment {end_wal}, where the backup ends, was not archived within {}s; \
                 is archiving failing? (see the server log and `calops status`)",
                wait.as_secs()
            ))
            .await);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let manifest = BaseBackup {
        format: 1,
        name: name.clone(),
        label: label.to_string(),
        timeline,
        start_lsn,
        end_lsn,
        start_wal: wal::segment_name(timeline, start_lsn.segno(segment_size), segment_size),
        end_wal,
        segment_size,
        started_at,
        finished_at: jiff::Timestamp::now(),
        server_version,
        system_identifier,
        tar_bytes,
        tar_sha256: hex::encode(tar_hash.finalize()),
        parts,
    };
    store
        .put_new(
            &catalog::manifest_key(&name),
            Bytes::from(serde_json::to_vec_pretty(&manifest)?),
        )
        .await
        .map_err(|e| anyhow!("storing the manifest of base backup {name}: {e}"))?;
    Ok(manifest)
}

/// Delete the parts of a failed backup (best effort; retention removes leftovers) and return
/// the error.
async fn discarded<S: BackupStore>(store: &S, parts: &[Part], why: String) -> anyhow::Error {
    for p in parts {
        let _ = store.delete(&p.key).await;
    }
    anyhow!(why)
}

async fn put_part<S: BackupStore>(store: &S, name: &str, n: usize, body: Vec<u8>) -> Result<Part> {
    let key = catalog::part_key(name, n);
    let part = Part {
        key: key.clone(),
        size: body.len() as u64,
        sha256: sha256_hex(&body),
    };
    store
        .put_new(&key, Bytes::from(body))
        .await
        .map_err(|e| anyhow!("storing {key}: {e}"))?;
    Ok(part)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_from_urls_keep_the_password_off_the_command_line() {
        let s = Source::from_url(
            "postgres://calops:s3cret@127.0.0.1:5544/calops",
            "/bin".into(),
        )
        .unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.user.as_str()),
            ("127.0.0.1", 5544, "calops")
        );
        assert_eq!(s.password.as_deref(), Some("s3cret"));
        assert!(!format!("{s:?}").contains("s3cret"));
    }
}
