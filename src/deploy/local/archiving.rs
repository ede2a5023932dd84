//! Continuous archiving of the local target's cluster: objects under
//! `.calops/<profile>/objects/backups/` (`wal/` writable by the server's OS user, who runs
//! `archive_command`), the backup configuration and commands under the cluster's server home,
//! archiving settings in `calops.conf`. `provision` sets it up; `deploy::backups` reads it.

use super::layout::Layout;
use crate::backup::config::{BackupConfig, VERSION};
use crate::backup::pgconf::{self, Commands};
use crate::backup::store::{AnyStore, FileStore};
use crate::pg::Cluster;
use crate::profile::Profile;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// Stored base backup parts are at most this big (compressed).
pub const PART_SIZE: u64 = 64 * 1024 * 1024;

pub fn store_root(layout: &Layout) -> PathBuf {
    let objects = layout.objects().join("backups");
    std::path::absolute(&objects).unwrap_or(objects)
}

pub fn store(layout: &Layout) -> AnyStore {
    AnyStore::File(FileStore::new(store_root(layout)))
}

/// The backup configuration a profile gives its local cluster: objects under the layout, or in
/// `store` (a [`crate::backup::store::open`] URL: the VM's bucket).
pub fn config(profile: &Profile, layout: &Layout, store: Option<&str>) -> BackupConfig {
    let url = match store {
        Some(s) => s.to_string(),
        None => url::Url::from_file_path(store_root(layout))
            .map(|u| u.to_string())
            .unwrap_or_else(|_| format!("file://{}", store_root(layout).display())),
    };
    BackupConfig {
        version: VERSION,
        profile: profile.name.clone(),
        store: url,
        compression_level: crate::backup::codec::DEFAULT_LEVEL,
        part_size: PART_SIZE,
        schedule: profile.database.backup_start.clone(),
        retention_days: profile.database.backup_retention_days,
        retention_count: profile.database.backup_retention_count,
        archive_timeout_seconds: profile.database.archive_timeout_seconds,
    }
}

/// Prepare the store and write the archiving settings for `cluster` (before it starts, or
/// followed by [`apply`] when it runs). `calops` is the binary archive_command runs.
pub fn configure(
    cluster: &Cluster,
    cfg: &BackupConfig,
    layout: &Layout,
    calops: &Path,
) -> Result<Commands> {
    let root = store_root(layout);
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    crate::pg::server_writable_dir(&root.join("wal"))?;
    let base = root.join("base");
    std::fs::create_dir_all(&base)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o700))?;
    }
    let cmds = crate::backup::install::install(&cluster.server_home(), cfg, calops)?;
    pgconf::write(
        &cluster.data_dir(),
        &pgconf::archiving(&cmds, cfg.archive_timeout_seconds),
    )?;
    Ok(cmds)
}

/// Make a running server use the settings: a restart when archiving was off (`archive_mode`
/// only changes at start), and in any case a reload. The reload matters after every start
/// too: PostgreSQL's checkpointer, which enforces `archive_timeout`, starts while the server
/// is still in startup and sleeps a whole `checkpoint_timeout` (5 minutes) before it first
/// looks at `archive_timeout`; the reload's SIGHUP wakes it. Returns true when it restarted.
pub async fn apply(cluster: &mut Cluster) -> Result<bool> {
    let mode = query_one(cluster, "SHOW archive_mode").await?;
    let restart = mode.as_deref() == Some("off");
    if restart {
        let port = cluster.port();
        cluster.stop()?;
        if let Some(p) = port {
            cluster.set_port(p);
        }
        cluster.start()?;
    }
    query_one(cluster, "SELECT pg_reload_conf()::text").await?;
    Ok(restart)
}

async fn query_one(cluster: &Cluster, sql: &str) -> Result<Option<String>> {
    let client = crate::pg::connect(&cluster.url("postgres"))
        .await
        .context("connecting to the local cluster")?;
    Ok(client.query_one(sql, &[]).await?.get(0))
}
