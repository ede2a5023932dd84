//! The two commands PostgreSQL runs: `archive_command` pushes one finished WAL (or history)
//! file to the store, `restore_command` fetches one back during recovery.
//!
//! Their exit codes are PostgreSQL's contract:
//! - archive: 0 only once the object is durably stored (or an identical copy already is);
//!   anything else makes PostgreSQL keep the file and retry, so a segment is never recycled
//!   before it is safe.
//! - restore: 0 when the file was written, 1 when the archive has no such file (the normal end
//!   of recovery), and [`EXIT_ABORT_RECOVERY`] when the store cannot be read or the object is
//!   damaged: PostgreSQL treats an exit status above 125 as fatal and stops recovery, instead
//!   of taking the failure for "end of archive" and promoting a cluster with data missing.

use super::codec;
use super::store::{BackupStore, StoreError};
use super::wal::{self, WalObject};
use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use std::path::Path;

/// `restore_command`'s exit status when recovery must stop (PostgreSQL: > 125 is fatal).
pub const EXIT_ABORT_RECOVERY: i32 = 200;

/// The prefix of every `restore_command` failure line in the server log; `calops restore`
/// looks for it to name the object that stopped recovery.
pub const RESTORE_FAILURE_MARK: &str = "restore_command failed:";

/// What `push` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    Stored {
        key: String,
        bytes: u64,
    },
    /// An identical copy was there already (a retry after a lost answer, or a re-archive).
    AlreadyStored {
        key: String,
    },
}

/// Archived copies of `file_name` (normally zero or one).
async fn copies<S: BackupStore>(store: &S, file_name: &str) -> Result<Vec<WalObject>, StoreError> {
    let prefix = wal::object_prefix(file_name)
        .ok_or_else(|| StoreError::InvalidKey(file_name.to_string()))?;
    Ok(store
        .list(&prefix)
        .await?
        .into_iter()
        .filter_map(|o| WalObject::from_key(&o.key, wal::DEFAULT_SEGMENT_SIZE))
        .filter(|w| w.file_name == file_name)
        .collect())
}

/// Push `path` (named `file_name` by PostgreSQL) to the store.
pub async fn push<S: BackupStore>(
    store: &S,
    path: &Path,
    file_name: &str,
    level: i32,
) -> Result<Pushed> {
    if wal::object_prefix(file_name).is_none() {
        bail!("`{file_name}` is not a WAL, history or backup history file name");
    }
    let raw = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let (object, sha) = codec::compress(&raw, level).context("compressing")?;
    let key = wal::object_key(file_name, &sha).expect("checked above");
    let existing = copies(store, file_name)
        .await
        .map_err(|e| anyhow!("listing {} in {}: {e}", file_name, store.describe()))?;
    if existing.iter().any(|w| w.sha256 == sha) {
        return Ok(Pushed::AlreadyStored { key });
    }
    if let Some(other) = existing.first() {
        bail!(
            "{file_name} is already archived as {} with different content (sha256 {}, this file's is {sha}); \
             refusing to overwrite it. Two clusters may be archiving into {}: check the backup configuration",
            other.key,
            other.sha256,
            store.describe()
        );
    }
    let bytes = object.len() as u64;
    match store.put_new(&key, Bytes::from(object)).await {
        Ok(()) => Ok(Pushed::Stored { key, bytes }),
        Err(StoreError::Exists(_)) => Ok(Pushed::AlreadyStored { key }),
        Err(e) => Err(anyhow!("storing {key} in {}: {e}", store.describe())),
    }
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The archive has no such file: the normal end of recovery.
    #[error("{0} is not in the archive")]
    Missing(String),
    /// Anything else: recovery must stop.
    #[error("{RESTORE_FAILURE_MARK} {0}")]
    Fatal(String),
}

/// Fetch `file_name` from the store into `dest`, checking its checksum.
pub async fn fetch<S: BackupStore>(
    store: &S,
    file_name: &str,
    dest: &Path,
) -> Result<String, FetchError> {
    let fatal = |m: String| FetchError::Fatal(m);
    let found = copies(store, file_name).await.map_err(|e| {
        fatal(format!(
            "cannot list {file_name} in {}: {e}",
            store.describe()
        ))
    })?;
    let obj = match found.as_slice() {
        [] => return Err(FetchError::Missing(file_name.to_string())),
        [one] => one,
        many => {
            return Err(fatal(format!(
                "{file_name} is archived more than once with different content: {}",
                many.iter()
                    .map(|w| w.key.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    };
    let body = store
        .get(&obj.key)
        .await
        .map_err(|e| fatal(format!("cannot read WAL object {}: {e}", obj.key)))?
        .ok_or_else(|| {
            fatal(format!(
                "WAL object {} disappeared while being read",
                obj.key
            ))
        })?;
    let raw = codec::decompress_checked(&body, &obj.sha256)
        .map_err(|e| fatal(format!("WAL object {} is damaged: {e}", obj.key)))?;
    std::fs::write(dest, &raw).map_err(|e| fatal(format!("writing {}: {e}", dest.display())))?;
    Ok(obj.key.clone())
}

/// A runtime for one command PostgreSQL runs (a single thread: it does one thing).
fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// `archive_command`: push `path` (PostgreSQL's `%p`) named `file_name` (`%f`) to the store
/// that the backup configuration `config` names. `Ok` only once it is durably stored.
/// An instance principal's token is kept between runs ([`super::tokencache`]).
pub fn archive_command(config: &Path, path: &Path, file_name: &str) -> Result<Pushed> {
    let cfg = super::config::BackupConfig::load(config)?;
    let cache = super::tokencache::path_for(config);
    let (store, principal) = super::store::open_cached(&cfg.store, Some(&cache))?;
    let r = runtime()?.block_on(push(&store, path, file_name, cfg.compression_level));
    if let Some(p) = principal {
        super::tokencache::remember(&cache, &p);
    }
    r
}

/// `restore_command`: fetch `file_name` (`%f`) into `dest` (`%p`) from the store that
/// `config` names. A configuration or store that cannot be opened is fatal too.
pub fn restore_command(config: &Path, file_name: &str, dest: &Path) -> Result<String, FetchError> {
    let fatal = |e: anyhow::Error| FetchError::Fatal(format!("{e:#}"));
    let cfg = super::config::BackupConfig::load(config).map_err(fatal)?;
    let cache = super::tokencache::path_for(config);
    let (store, principal) = super::store::open_cached(&cfg.store, Some(&cache)).map_err(fatal)?;
    let r = runtime()
        .map_err(fatal)?
        .block_on(fetch(&store, file_name, dest));
    if let Some(p) = principal {
        super::tokencache::remember(&cache, &p);
    }
    r
}
