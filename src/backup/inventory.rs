//! Reading the store: the catalogue of backups and WAL, timeline histories, streaming a base
//! backup back (to check it or to unpack it), verifying objects, and applying retention.

use super::catalog::{self, BaseBackup, Chain, Retention, BASE_PREFIX};
use super::codec::{self, sha256_hex};
use super::store::{BackupStore, ObjectInfo};
use super::wal::{self, HistoryEntry, WalFile, WalObject, WAL_PREFIX};
use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use indicatif::ProgressBar;
use sha2::Digest;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// Everything in the store, parsed.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Complete base backups, oldest first.
    pub backups: Vec<BaseBackup>,
    pub wal: Vec<WalObject>,
    /// Every object under `base/`.
    pub base_objects: Vec<ObjectInfo>,
    /// Objects under `wal/` whose names calops does not recognise.
    pub unknown: Vec<String>,
    /// Timelines marked abandoned ([`catalog::ABANDONED_PREFIX`]).
    pub abandoned: std::collections::BTreeSet<u32>,
}

impl Inventory {
    pub fn backup(&self, name: &str) -> Option<&BaseBackup> {
        self.backups.iter().find(|b| b.name == name)
    }

    /// The newest complete backup finished at or before `t` (any time when `None`).
    pub fn newest_before(&self, t: Option<jiff::Timestamp>) -> Option<&BaseBackup> {
        self.backups
            .iter()
            .filter(|b| t.is_none_or(|t| b.finished_at <= t))
            .max_by_key(|b| b.finished_at)
    }
}

pub async fn load<S: BackupStore>(store: &S) -> Result<Inventory> {
    let base_objects = store
        .list(BASE_PREFIX)
        .await
        .map_err(|e| anyhow!("listing base backups in {}: {e}", store.describe()))?;
    let mut backups = Vec::new();
    for o in base_objects
        .iter()
        .filter(|o| o.key.ends_with(&format!("/{}", catalog::MANIFEST)))
    {
        let body = store
            .get(&o.key)
            .await
            .map_err(|e| anyhow!("reading {}: {e}", o.key))?
            .ok_or_else(|| anyhow!("{} disappeared while being read", o.key))?;
        let b: BaseBackup = serde_json::from_slice(&body)
            .with_context(|| format!("{} is not a base backup manifest", o.key))?;
        backups.push(b);
    }
    backups.sort_by_key(|b| b.finished_at);
    let mut wal = Vec::new();
    let mut unknown = Vec::new();
    for o in store
        .list(WAL_PREFIX)
        .await
        .map_err(|e| anyhow!("listing WAL in {}: {e}", store.describe()))?
    {
        match WalObject::from_key(&o.key, wal::DEFAULT_SEGMENT_SIZE) {
            Some(w) => wal.push(w),
            None => unknown.push(o.key),
        }
    }
    let abandoned = store
        .list(catalog::ABANDONED_PREFIX)
        .await
        .map_err(|e| anyhow!("listing abandoned timelines in {}: {e}", store.describe()))?
        .iter()
        .filter_map(|o| catalog::abandoned_from_key(&o.key))
        .collect();
    Ok(Inventory {
        backups,
        wal,
        base_objects,
        unknown,
        abandoned,
    })
}

/// Read an archived file back and check it; returns its content and its stored size.
async fn fetch_checked<S: BackupStore>(store: &S, w: &WalObject) -> Result<(Vec<u8>, u64)> {
    let body = store
        .get(&w.key)
        .await
        .map_err(|e| anyhow!("reading {}: {e}", w.key))?
        .ok_or_else(|| anyhow!("{} is missing", w.key))?;
    let raw = codec::decompress_checked(&body, &w.sha256)
        .map_err(|e| anyhow!("{} is damaged: {e}", w.key))?;
    Ok((raw, body.len() as u64))
}

/// Mark timeline `tli` abandoned: no restore follows it (or a timeline descending from it)
/// again. Idempotent.
pub async fn abandon<S: BackupStore>(store: &S, tli: u32) -> Result<()> {
    let key = catalog::abandoned_key(tli);
    let body = format!("timeline {tli} was made live by a restore and abandoned by switching back to the data it replaced\n");
    match store.put_new(&key, Bytes::from(body)).await {
        Ok(()) => Ok(()),
        Err(_) if store.get(&key).await.ok().flatten().is_some() => Ok(()),
        Err(e) => Err(anyhow!("writing {key} into {}: {e}", store.describe())),
    }
}

/// The parsed history file of every timeline that has one.
pub async fn histories<S: BackupStore>(
    store: &S,
    inv: &Inventory,
) -> Result<BTreeMap<u32, Vec<HistoryEntry>>> {
    let mut out = BTreeMap::new();
    for w in &inv.wal {
        if let WalFile::History { tli } = w.file {
            let (raw, _) = fetch_checked(store, w).await?;
            let h = wal::parse_history(&String::from_utf8_lossy(&raw))
                .map_err(|e| anyhow!("{}: {e}", w.key))?;
            out.insert(tli, h);
        }
    }
    Ok(out)
}

/// The WAL chain for `backup` (see [`catalog::chain`]).
pub async fn chain_for<S: BackupStore>(
    store: &S,
    inv: &Inventory,
    backup: &BaseBackup,
) -> Result<Chain> {
    let h = histories(store, inv).await?;
    Ok(catalog::chain(backup, &inv.wal, &h, &inv.abandoned)?)
}

/// A reader over parts handed in through a channel (the async side downloads them).
struct PartReader {
    rx: std::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Read for PartReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.recv() {
                Ok(b) => self.current = b,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// Hashes and counts what passes through.
struct Hashing<R> {
    inner: R,
    hasher: sha2::Sha256,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Read a base backup back, part by part (each checked against its sha256), through zstd and
/// tar; with `unpack_into`, the files are written there. The tar stream's size and sha256
/// must match the manifest. Errors name the object at fault.
pub async fn stream_base<S: BackupStore>(
    store: &S,
    backup: &BaseBackup,
    unpack_into: Option<&Path>,
    pb: &ProgressBar,
) -> Result<u64> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Bytes>(1);
    let dest = unpack_into.map(Path::to_path_buf);
    let want = (backup.tar_bytes, backup.tar_sha256.clone());
    let name = backup.name.clone();
    let worker = tokio::task::spawn_blocking(move || -> Result<u64> {
        let reader = PartReader {
            rx,
            current: Bytes::new(),
        };
        let dec = zstd::stream::Decoder::new(reader)?;
        let mut hashing = Hashing {
            inner: dec,
            hasher: sha2::Sha256::new(),
            bytes: 0,
        };
        let mut files = 0u64;
        {
            let mut ar = tar::Archive::new(&mut hashing);
            ar.set_preserve_permissions(true);
            ar.set_preserve_ownerships(false);
            ar.set_overwrite(false);
            for entry in ar.entries().context("reading the tar stream")? {
                let mut entry = entry.context("reading the tar stream")?;
                match &dest {
                    Some(d) => {
                        if !entry.unpack_in(d).with_context(|| {
                            format!("unpacking {:?}", entry.path().unwrap_or_default())
                        })? {
                            bail!(
                                "the backup has an entry outside the data directory: {:?}",
                                entry.path().unwrap_or_default()
                            );
                        }
                    }
                    None => {
                        std::io::copy(&mut entry, &mut std::io::sink())?;
                    }
                }
                files += 1;
            }
        }
        // The rest of the stream (tar's end blocks) counts for the checksum too.
        std::io::copy(&mut hashing, &mut std::io::sink())?;
        let got = hex::encode(hashing.hasher.finalize());
        if (hashing.bytes, got.as_str()) != (want.0, want.1.as_str()) {
            bail!(
                "base backup {name}: the tar stream is {} bytes with sha256 {got}, the manifest says {} bytes with {}",
                hashing.bytes,
                want.0,
                want.1
            );
        }
        Ok(files)
    });
    let mut failure = None;
    for p in &backup.parts {
        let body = match store.get(&p.key).await {
            Ok(Some(b)) => b,
            Ok(None) => {
                failure = Some(anyhow!("base backup object {} is missing", p.key));
                break;
            }
            Err(e) => {
                failure = Some(anyhow!("reading base backup object {}: {e}", p.key));
                break;
            }
        };
        let got = sha256_hex(&body);
        if got != p.sha256 {
            failure = Some(anyhow!(
                "base backup object {} is damaged: sha256 {got}, recorded {}",
                p.key,
                p.sha256
            ));
            break;
        }
        pb.inc(body.len() as u64);
        if tx.send(body).is_err() {
            break;
        }
    }
    drop(tx);
    let result = worker
        .await
        .map_err(|e| anyhow!("the unpacking thread failed: {e}"))?;
    if let Some(f) = failure {
        return Err(f);
    }
    result.map_err(|e| {
        anyhow!(
            "base backup {} ({} part(s), last {}) does not read back: {e:#}",
            backup.name,
            backup.parts.len(),
            backup.parts.last().map(|p| p.key.as_str()).unwrap_or("-")
        )
    })
}

/// One object that failed verification.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Problem {
    pub object: String,
    pub problem: String,
}

/// What `verify` checked.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verified {
    pub backup: String,
    pub objects: usize,
    pub bytes: u64,
    pub wal_segments: usize,
    pub first_wal: Option<String>,
    pub last_wal: Option<String>,
    pub latest_timeline: u32,
    pub problems: Vec<Problem>,
}

/// Download and check everything a restore from `backup` to the end of the archive needs.
pub async fn verify<S: BackupStore>(
    store: &S,
    inv: &Inventory,
    backup: &BaseBackup,
    pb: &ProgressBar,
) -> Result<Verified> {
    let mut problems = Vec::new();
    let chain = match chain_for(store, inv, backup).await {
        Ok(c) => Some(c),
        Err(e) => {
            let object = match e.downcast_ref::<catalog::ChainError>() {
                Some(catalog::ChainError::Gap { prefix, .. }) => format!("{prefix}*"),
                _ => String::new(),
            };
            problems.push(Problem {
                object,
                problem: format!("{e:#}"),
            });
            None
        }
    };
    let wal_objects: Vec<&WalObject> = chain
        .as_ref()
        .map(|c| c.segments.iter().chain(c.history.iter()).collect())
        .unwrap_or_default();
    pb.set_length(backup.stored_bytes());
    let mut bytes = 0u64;
    if let Err(e) = stream_base(store, backup, None, pb).await {
        let text = format!("{e:#}");
        let object = backup
            .parts
            .iter()
            .find(|p| text.contains(&p.key))
            .map(|p| p.key.clone())
            .unwrap_or_else(|| catalog::manifest_key(&backup.name));
        problems.push(Problem {
            object,
            problem: text,
        });
    } else {
        bytes += backup.stored_bytes();
    }
    for w in &wal_objects {
        match fetch_checked(store, w).await {
            Ok((_, stored)) => bytes += stored,
            Err(e) => problems.push(Problem {
                object: w.key.clone(),
                problem: format!("{e:#}"),
            }),
        }
        pb.inc(1);
    }
    Ok(Verified {
        backup: backup.name.clone(),
        objects: backup.parts.len() + wal_objects.len(),
        bytes,
        wal_segments: chain.as_ref().map(|c| c.segments.len()).unwrap_or(0),
        first_wal: chain
            .as_ref()
            .and_then(|c| c.segments.first())
            .map(|w| w.file_name.clone()),
        last_wal: chain
            .as_ref()
            .and_then(|c| c.last_segment())
            .map(|w| w.file_name.clone()),
        latest_timeline: chain
            .as_ref()
            .map(|c| c.latest_tli)
            .unwrap_or(backup.timeline),
        problems,
    })
}

/// What retention deleted.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Pruned {
    pub kept: Vec<String>,
    pub deleted_backups: Vec<String>,
    pub deleted_wal: usize,
    pub deleted_incomplete: Vec<String>,
}

/// Incomplete backups (no manifest) are deleted once their newest part is this old.
const INCOMPLETE_GRACE: jiff::SignedDuration = jiff::SignedDuration::from_hours(24);

/// [`prune`] by the configuration's policy, now. Run it under the base backup lock: a prune
/// while another base backup is in flight could delete the WAL that backup starts from.
pub async fn retain<S: BackupStore>(
    store: &S,
    cfg: &super::config::BackupConfig,
) -> Result<Pruned> {
    prune(
        store,
        cfg.retention_days,
        cfg.retention_count,
        jiff::Timestamp::now(),
    )
    .await
}

/// Apply retention: manifests go first (a backup without one is never restored from), then
/// its parts, then WAL no kept backup needs.
pub async fn prune<S: BackupStore>(
    store: &S,
    days: u32,
    count: u32,
    now: jiff::Timestamp,
) -> Result<Pruned> {
    let inv = load(store).await?;
    let keys: Vec<String> = inv.base_objects.iter().map(|o| o.key.clone()).collect();
    let in_flight = catalog::incomplete_backups(&keys);
    let Retention {
        keep,
        delete_backups,
        delete_wal,
    } = catalog::retention(&inv.backups, &in_flight, &inv.wal, now, days, count);
    let del = |k: String| async move {
        store
            .delete(&k)
            .await
            .map_err(|e| anyhow!("deleting {k}: {e}"))
    };
    for name in &delete_backups {
        del(catalog::manifest_key(name)).await?;
        for o in inv
            .base_objects
            .iter()
            .filter(|o| o.key.starts_with(&format!("{BASE_PREFIX}{name}/")))
        {
            del(o.key.clone()).await?;
        }
    }
    for k in &delete_wal {
        del(k.clone()).await?;
    }
    let mut deleted_incomplete = Vec::new();
    for name in in_flight {
        let prefix = format!("{BASE_PREFIX}{name}/");
        let objs: Vec<&ObjectInfo> = inv
            .base_objects
            .iter()
            .filter(|o| o.key.starts_with(&prefix))
            .collect();
        let newest = objs.iter().filter_map(|o| o.modified).max();
        if newest.is_some_and(|t| now.duration_since(t) > INCOMPLETE_GRACE) {
            for o in objs {
                del(o.key.clone()).await?;
            }
            deleted_incomplete.push(name);
        }
    }
    Ok(Pruned {
        kept: keep,
        deleted_backups: delete_backups,
        deleted_wal: delete_wal.len(),
        deleted_incomplete,
    })
}
