//! Point-in-time restore into a new cluster directory: fetch a base backup, unpack it, let
//! PostgreSQL replay the archived WAL up to the target (its `restore_command` is calops'),
//! wait until it promotes, then stop it. Nothing here touches a live cluster; making the
//! restored one live is a separate step ([`swap_into`]).
//!
//! Whatever fails, the new directory is removed and its server stopped: no half-restored
//! cluster is left, let alone running.

use super::archive::RESTORE_FAILURE_MARK;
use super::catalog::BaseBackup;
use super::config::BackupConfig;
use super::inventory;
use super::pgconf::{self, RecoveryTarget};
use super::store::BackupStore;
use crate::pg::{self, Cluster};
use anyhow::{anyhow, bail, Context, Result};
use indicatif::ProgressBar;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to restore, and where. `Debug` shows whether a password is set, never the password.
#[derive(Clone)]
pub struct Request {
    pub target: RecoveryTarget,
    /// Restore from this base backup instead of the newest one that fits the target.
    pub backup: Option<String>,
    /// The new cluster directory (must not exist, or be empty).
    pub into: PathBuf,
    /// The calops binary `restore_command` runs.
    pub calops: PathBuf,
    /// The backup configuration (its store is where WAL comes from).
    pub config: BackupConfig,
    /// The superuser password to give the restored cluster (a new one when `None`).
    pub password: Option<String>,
    /// How long replay may take.
    pub timeout: Duration,
    /// Archive from the promotion on (the restored cluster is going to be the live one).
    pub archive: bool,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("target", &self.target)
            .field("backup", &self.backup)
            .field("into", &self.into)
            .field("calops", &self.calops)
            .field("config", &self.config)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("archive", &self.archive)
            .finish()
    }
}

/// A restored (and stopped) cluster.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Restored {
    pub dir: PathBuf,
    pub data_dir: PathBuf,
    pub backup: String,
    pub backup_finished_at: jiff::Timestamp,
    pub target: String,
    /// The commit time of the last transaction replayed.
    pub recovered_to: Option<jiff::Timestamp>,
    /// The timeline the restored cluster continues on.
    pub timeline: u32,
    pub wal_segments_available: usize,
}

fn describe(t: RecoveryTarget) -> String {
    match t {
        RecoveryTarget::Latest => "latest".into(),
        RecoveryTarget::Time(t) => t.to_string(),
    }
}

/// Pick the base backup for a target: the named one, or the newest finished before it.
pub fn choose<'a>(
    inv: &'a inventory::Inventory,
    target: RecoveryTarget,
    name: Option<&str>,
) -> Result<&'a BaseBackup> {
    let before = match target {
        RecoveryTarget::Time(t) => Some(t),
        RecoveryTarget::Latest => None,
    };
    if let Some(n) = name {
        let b = inv.backup(n).ok_or_else(|| {
            crate::error::actionable(
                format!("there is no complete base backup named {n}"),
                "list them with `calops backup list`",
            )
        })?;
        if before.is_some_and(|t| b.finished_at > t) {
            bail!("base backup {n} finished at {}, after the target time: it cannot be rolled back to an earlier time", b.finished_at);
        }
        return Ok(b);
    }
    inv.newest_before(before)
        .ok_or_else(|| match (before, inv.backups.first()) {
            (_, None) => crate::error::actionable(
                "there is no complete base backup to restore from",
                "take one with `calops backup now`",
            ),
            (Some(t), Some(oldest)) => crate::error::actionable(
                format!(
                    "no base backup finished before {t}; the oldest finished at {}",
                    oldest.finished_at
                ),
                "pick a later --to time (retention may have deleted older backups)",
            ),
            (None, Some(_)) => anyhow!("no base backup found"),
        })
}

/// Restore into `req.into`. On failure the directory is gone and no server runs on it.
pub async fn restore<S: BackupStore>(
    store: &S,
    req: &Request,
    pb: &ProgressBar,
) -> Result<Restored> {
    let inv = inventory::load(store).await?;
    let backup = choose(&inv, req.target, req.backup.as_deref())?.clone();
    // Every segment from the backup to the end of the archive must be there: PostgreSQL would
    // take a gap for the end of the archive and promote with the rest missing.
    let chain = inventory::chain_for(store, &inv, &backup).await?;
    if req.into.exists() && std::fs::read_dir(&req.into)?.next().is_some() {
        return Err(crate::error::actionable(
            format!("{} already exists and is not empty", req.into.display()),
            "restore into a new directory (--into DIR)",
        ));
    }
    let result = run(store, req, &backup, &chain, pb).await;
    if result.is_err() {
        if let Err(e) = pg::discard(&req.into) {
            tracing::warn!(
                "could not remove the failed restore in {}: {e:#}",
                req.into.display()
            );
        }
    }
    result
}

async fn run<S: BackupStore>(
    store: &S,
    req: &Request,
    backup: &BaseBackup,
    chain: &super::catalog::Chain,
    pb: &ProgressBar,
) -> Result<Restored> {
    let segments = chain.segments.len();
    let (data, home) = pg::prepare_data_dir(&req.into)?;
    pb.set_length(backup.stored_bytes());
    pb.set_message(format!("fetching base backup {}", backup.name));
    inventory::stream_base(store, backup, Some(&data), pb).await?;
    pg::hand_to_server(&data)?;
    let password = req.password.clone().unwrap_or_else(|| pg::random_token(32));
    if !password.bytes().all(|b| b.is_ascii_alphanumeric()) {
        bail!("the superuser password must be letters and digits");
    }
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(req.into.join("superuser.password"))?;
        f.write_all(password.as_bytes())?;
    }
    let cmds = super::install::install(&home, &req.config, &req.calops)?;
    let archive = req.archive.then_some(req.config.archive_timeout_seconds);
    pgconf::write(
        &data,
        &pgconf::recovery(&cmds, req.target, chain.latest_tli, archive),
    )?;
    for f in ["recovery.signal", "standby.signal"] {
        let _ = std::fs::remove_file(data.join(f));
    }
    std::fs::write(data.join("recovery.signal"), "")?;
    pg::hand_to_server(&data.join("recovery.signal"))?;
    let hba = super::install::dir(&home).join("restore-hba.conf");
    std::fs::write(
        &hba,
        "# calops restore: the socket is in the data directory (mode 0700)\nlocal all all trust\n",
    )?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hba, std::fs::Permissions::from_mode(0o644))?;
    }
    let mut cluster = Cluster::init_or_open(&req.into, pg::Options::default())?;
    pb.set_message(format!("replaying WAL to {}", describe(req.target)));
    cluster.start_private(&hba)?;
    let (recovered_to, timeline) = wait_promoted(&cluster, req.timeout, pb).await?;
    let cfg = cluster.private_config("postgres");
    let (client, conn) = cfg.connect(tokio_postgres::NoTls).await?;
    let task = tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "ALTER ROLE {} PASSWORD '{password}'",
            pg::SUPERUSER
        ))
        .await
        .context("setting the superuser password")?;
    drop(client);
    let _ = task.await;
    if !req.archive {
        pgconf::write(&data, &pgconf::quiet())?;
    }
    cluster.stop()?;
    let _ = std::fs::remove_file(&hba);
    Ok(Restored {
        dir: req.into.clone(),
        data_dir: data,
        backup: backup.name.clone(),
        backup_finished_at: backup.finished_at,
        target: describe(req.target),
        recovered_to,
        timeline,
        wal_segments_available: segments,
    })
}

/// Poll until the server has promoted; a server that exits instead is a failed recovery.
async fn wait_promoted(
    cluster: &Cluster,
    timeout: Duration,
    pb: &ProgressBar,
) -> Result<(Option<jiff::Timestamp>, u32)> {
    let deadline = Instant::now() + timeout;
    let cfg = cluster.private_config("postgres");
    // pg_ctl -W returns before the postmaster writes its pid file.
    let mut seen_running = false;
    loop {
        if cluster.running_pid().is_some() {
            seen_running = true;
        } else if seen_running || Instant::now() > deadline {
            return Err(recovery_failure(&cluster.log_file()));
        }
        if let Ok(Ok((client, conn))) =
            tokio::time::timeout(Duration::from_secs(5), cfg.connect(tokio_postgres::NoTls)).await
        {
            let task = tokio::spawn(conn);
            let state = async {
                let row = client
                    .query_one(
                        "SELECT pg_is_in_recovery(), pg_last_xact_replay_timestamp()",
                        &[],
                    )
                    .await?;
                let (in_recovery, at): (bool, Option<jiff::Timestamp>) = (row.get(0), row.get(1));
                let tli = if in_recovery {
                    None
                } else {
                    let name: String = client
                        .query_one("SELECT pg_walfile_name(pg_current_wal_lsn())", &[])
                        .await?
                        .get(0);
                    u32::from_str_radix(&name[..8.min(name.len())], 16).ok()
                };
                Ok::<_, tokio_postgres::Error>((at, tli))
            }
            .await;
            drop(client);
            let _ = task.await;
            match state {
                Ok((at, Some(tli))) => return Ok((at, tli)),
                Ok((Some(at), None)) => pb.set_message(format!("replaying WAL: at {at}")),
                _ => {}
            }
        }
        if Instant::now() > deadline {
            return Err(anyhow!(
                "recovery did not finish within {}s; the log is {}",
                timeout.as_secs(),
                cluster.log_file().display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Explain why recovery stopped, from the server log: calops' own restore_command failure
/// (which names the object) first, else PostgreSQL's FATAL lines.
fn recovery_failure(log: &Path) -> anyhow::Error {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    if let Some(line) = text.lines().find(|l| l.contains(RESTORE_FAILURE_MARK)) {
        let what = line
            .split(RESTORE_FAILURE_MARK)
            .nth(1)
            .unwrap_or(line)
            .trim();
        return anyhow!("recovery stopped: {what}");
    }
    let fatal: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.contains("FATAL") || l.contains("PANIC") || l.contains("DETAIL") || l.contains("HINT")
        })
        .collect();
    let tail: Vec<&str> = text
        .lines()
        .rev()
        .take(15)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    anyhow!(
        "recovery stopped (PostgreSQL exited):\n  {}",
        if fatal.is_empty() {
            tail.join("\n  ")
        } else {
            fatal.join("\n  ")
        }
    )
}

/// Make the restored cluster in `restored` the one in `live` (both cluster directories; the
/// live server must be stopped): the live data directory is kept beside it as
/// `data.replaced-<stamp>`, never deleted. Returns where the old data went.
pub fn swap_into(restored: &Path, live: &Path, stamp: &str) -> Result<Option<PathBuf>> {
    let from = restored.join("data");
    if std::fs::symlink_metadata(&from).is_err() {
        bail!("{} has no restored data directory", restored.display());
    }
    std::fs::create_dir_all(live)?;
    let to = live.join("data");
    let aside = if std::fs::symlink_metadata(&to).is_ok() {
        let a = live.join(format!("data.replaced-{stamp}"));
        std::fs::rename(&to, &a).with_context(|| format!("moving {} aside", to.display()))?;
        Some(a)
    } else {
        None
    };
    std::fs::rename(&from, &to)
        .with_context(|| format!("moving {} to {}", from.display(), to.display()))?;
    std::fs::copy(
        restored.join("superuser.password"),
        live.join("superuser.password"),
    )?;
    let _ = std::fs::remove_dir_all(restored);
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        let r = Request {
            target: RecoveryTarget::Latest,
            backup: None,
            into: "/x/restored".into(),
            calops: "/x/calops".into(),
            config: BackupConfig {
                version: 1,
                profile: "local".into(),
                store: "file:///x/objects/backups".into(),
                compression_level: 3,
                part_size: 1 << 20,
                schedule: "03:00".into(),
                retention_days: 7,
                retention_count: 2,
                archive_timeout_seconds: 60,
            },
            password: Some("s3cret-superuser-pw".into()),
            timeout: Duration::from_secs(60),
            archive: false,
        };
        let shown = format!("{r:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("<redacted>"),
            "{shown}"
        );
    }
}
