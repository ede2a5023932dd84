//! The backup configuration of one cluster: one small JSON file that `archive_command`,
//! `restore_command`, the service's base backup schedule and the CLI all read. It holds no
//! secret (the server's OS user reads it), only where objects go and the policy.

use crate::fsutil::write_atomic;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The file's format version; readers refuse newer ones.
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupConfig {
    pub version: u32,
    /// The calops profile the cluster belongs to (for messages).
    pub profile: String,
    /// Where objects go (see [`crate::backup::store::open`]).
    pub store: String,
    /// zstd level.
    pub compression_level: i32,
    /// Base backups are stored in parts of at most this many (compressed) bytes.
    pub part_size: u64,
    /// Daily base backup start, `HH:MM` UTC.
    pub schedule: String,
    /// Keep base backups younger than this ...
    pub retention_days: u32,
    /// ... and always the newest this many.
    pub retention_count: u32,
    /// PostgreSQL's `archive_timeout`: the most data that can wait unarchived, in seconds.
    pub archive_timeout_seconds: u32,
}

impl BackupConfig {
    pub fn load(path: &Path) -> Result<BackupConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the backup configuration {}", path.display()))?;
        let c: BackupConfig = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a calops backup configuration", path.display()))?;
        if c.version > VERSION {
            anyhow::bail!(
                "{} has format version {}, newer than this calops understands ({VERSION}); use a newer calops",
                path.display(),
                c.version
            );
        }
        Ok(c)
    }

    /// Write it (atomically, mode 0644: the server's OS user reads it).
    pub fn write(&self, path: &Path) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        write_atomic(path, serde_json::to_string_pretty(self)?.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))?;
        Ok(())
    }
}
