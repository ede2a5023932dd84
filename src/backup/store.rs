//! Where backups go: a small object-store trait with create-only writes, and its two
//! implementations — files in a directory (the local target's `.calops/<profile>/objects/`)
//! and OCI Object Storage (signed with the profile's API key; what a VM target uses).
//!
//! `put_new` returns only once the object is durably stored (files: written, fsynced,
//! linked into place and the directory fsynced; Object Storage: a 200 from PutObject), and it
//! never replaces an object: that is what lets `archive_command` exit 0 with confidence.

use crate::oci::client::{OciClient, OciError};
use crate::oci::objectstorage::PutCondition;
use bytes::Bytes;
use std::future::Future;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One stored object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    /// When it was last written, when the store says.
    pub modified: Option<jiff::Timestamp>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A create-only write found the key taken.
    #[error("object `{0}` already exists")]
    Exists(String),
    /// The key is not one this store accepts.
    #[error("invalid object key `{0}`")]
    InvalidKey(String),
    /// The store could not be reached or failed: the outcome of the call is unknown.
    #[error("{0}")]
    Unavailable(String),
}

/// The operations backups need. Keys are `/`-separated relative paths.
pub trait BackupStore: Send + Sync {
    /// A description for messages (a path or `oci://namespace/bucket/prefix`).
    fn describe(&self) -> String;
    /// Store `body` under `key` only if nothing is there; durable when it returns `Ok`.
    fn put_new(
        &self,
        key: &str,
        body: Bytes,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Read `key`; `None` when it does not exist.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>, StoreError>> + Send;
    /// Objects whose keys start with `prefix`, sorted by key.
    fn list(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<ObjectInfo>, StoreError>> + Send;
    /// Delete `key` (no error when it is already gone).
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

fn valid_key(key: &str) -> Result<(), StoreError> {
    let bad = key.is_empty()
        || key.split('/').any(|s| s.is_empty() || s.starts_with('.'))
        || key.contains('\\');
    if bad {
        Err(StoreError::InvalidKey(key.to_string()))
    } else {
        Ok(())
    }
}

/// Objects as files under a directory (mode 0600, directories 0700).
#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
}

fn io(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("{}: {e}", path.display()))
}

fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))
}

impl FileStore {
    pub fn new(root: impl Into<PathBuf>) -> FileStore {
        FileStore { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        valid_key(key)?;
        Ok(self.root.join(key))
    }

    fn put_new_sync(&self, key: &str, body: &[u8]) -> Result<(), StoreError> {
        let path = self.path(key)?;
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| io(&dir, e))?;
        if path.exists() {
            return Err(StoreError::Exists(key.to_string()));
        }
        let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
        let written = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(body)?;
            f.sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(&tmp, e));
        }
        // link() fails if the name is taken: an atomic create-only, with no lock to share
        // between the archiver (the server's OS user) and calops.
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => fsync_dir(&dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(StoreError::Exists(key.to_string()))
            }
            Err(e) => Err(io(&path, e)),
        }
    }

    fn list_sync(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        // Walk only below the deepest directory the prefix names.
        let start = match prefix.rfind('/') {
            Some(i) => self.root.join(&prefix[..i]),
            None => self.root.clone(),
        };
        let mut out = Vec::new();
        let mut stack = vec![start];
        while let Some(dir) = stack.pop() {
            let rd = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(&dir, e)),
            };
            for entry in rd {
                let entry = entry.map_err(|e| io(&dir, e))?;
                if entry.file_name().to_string_lossy().starts_with('.') {
                    continue;
                }
                let path = entry.path();
                // Follows symlinks: the WAL directory may be one (see pg::server_writable_dir).
                let meta = match std::fs::metadata(&path) {
                    Ok(m) => m,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io(&path, e)),
                };
                if meta.is_dir() {
                    stack.push(path);
                    continue;
                }
                let Ok(rel) = path.strip_prefix(&self.root) else {
                    continue;
                };
                let key = rel.to_string_lossy().into_owned();
                if key.starts_with(prefix) {
                    let modified = meta
                        .modified()
                        .ok()
                        .and_then(|t| jiff::Timestamp::try_from(t).ok());
                    out.push(ObjectInfo {
                        key,
                        size: meta.len(),
                        modified,
                    });
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

impl BackupStore for FileStore {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    async fn put_new(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        self.put_new_sync(key, &body)
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let path = self.path(key)?;
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(Bytes::from(b))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.list_sync(prefix)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path, e)),
        }
    }
}

/// Objects in an OCI Object Storage bucket, under a key prefix.
#[derive(Clone)]
pub struct OciBackupStore {
    client: Arc<OciClient>,
    namespace: String,
    bucket: String,
    /// Prepended to every key (empty or ending in `/`).
    prefix: String,
}

impl OciBackupStore {
    pub fn new(client: Arc<OciClient>, namespace: &str, bucket: &str, prefix: &str) -> Self {
        let p = prefix.trim_matches('/');
        OciBackupStore {
            client,
            namespace: namespace.to_string(),
            bucket: bucket.to_string(),
            prefix: if p.is_empty() {
                String::new()
            } else {
                format!("{p}/")
            },
        }
    }

    fn name(&self, key: &str) -> Result<String, StoreError> {
        valid_key(key)?;
        Ok(format!("{}{key}", self.prefix))
    }

    fn map(&self, key: &str, e: OciError) -> StoreError {
        if e.is_conflict() {
            StoreError::Exists(key.to_string())
        } else {
            StoreError::Unavailable(format!("object `{key}` in {}: {e}", self.describe()))
        }
    }
}

fn parse_time(s: &Option<String>) -> Option<jiff::Timestamp> {
    s.as_deref().and_then(|t| t.parse().ok())
}

impl BackupStore for OciBackupStore {
    fn describe(&self) -> String {
        format!("oci://{}/{}/{}", self.namespace, self.bucket, self.prefix)
    }

    async fn put_new(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        let name = self.name(key)?;
        self.client
            .object_storage()
            .put_object(
                &self.namespace,
                &self.bucket,
                &name,
                body,
                PutCondition::CreateOnly,
                Some("application/octet-stream"),
            )
            .await
            .map(|_| ())
            .map_err(|e| self.map(key, e))
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        let name = self.name(key)?;
        self.client
            .object_storage()
            .get_object(&self.namespace, &self.bucket, &name)
            .await
            .map(|o| o.map(|d| d.body))
            .map_err(|e| self.map(key, e))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let full = format!("{}{prefix}", self.prefix);
        let objects = self
            .client
            .object_storage()
            .list_all_objects(&self.namespace, &self.bucket, Some(&full))
            .await
            .map_err(|e| self.map(prefix, e))?;
        let mut out: Vec<ObjectInfo> = objects
            .into_iter()
            .filter_map(|o| {
                let key = o.name.strip_prefix(&self.prefix)?.to_string();
                Some(ObjectInfo {
                    key,
                    size: o.size.unwrap_or(0),
                    modified: parse_time(&o.time_modified).or_else(|| parse_time(&o.time_created)),
                })
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let name = self.name(key)?;
        self.client
            .object_storage()
            .delete_object(&self.namespace, &self.bucket, &name, None)
            .await
            .map(|_| ())
            .map_err(|e| self.map(key, e))
    }
}

/// Either store, chosen at run time from a URL (see [`open`]).
#[derive(Clone)]
pub enum AnyStore {
    File(FileStore),
    Oci(OciBackupStore),
}

impl std::fmt::Debug for AnyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AnyStore({})", self.describe())
    }
}

impl BackupStore for AnyStore {
    fn describe(&self) -> String {
        match self {
            AnyStore::File(s) => s.describe(),
            AnyStore::Oci(s) => s.describe(),
        }
    }
    async fn put_new(&self, key: &str, body: Bytes) -> Result<(), StoreError> {
        match self {
            AnyStore::File(s) => s.put_new(key, body).await,
            AnyStore::Oci(s) => s.put_new(key, body).await,
        }
    }
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StoreError> {
        match self {
            AnyStore::File(s) => s.get(key).await,
            AnyStore::Oci(s) => s.get(key).await,
        }
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        match self {
            AnyStore::File(s) => s.list(prefix).await,
            AnyStore::Oci(s) => s.list(prefix).await,
        }
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self {
            AnyStore::File(s) => s.delete(key).await,
            AnyStore::Oci(s) => s.delete(key).await,
        }
    }
}

/// A client signing as this compute instance's instance principal (the `oci-vm` target's
/// archiver: `archive_command` and the service's nightly base backup run on the VM, where there is
/// no API key). The first token is fetched on a thread of its own, so this works inside and
/// outside a runtime; `OCI_METADATA_BASE_URL`, `OCI_SDK_AUTH_CLIENT_REGION_URL` and
/// `CALOPS_ENDPOINT_*` apply.
/// With `cache`, the token is taken from and kept in that file ([`super::tokencache`]).
fn instance_principal_client(
    cache: Option<&Path>,
) -> anyhow::Result<(OciClient, Arc<crate::oci::instance::InstancePrincipal>)> {
    use crate::oci::instance::{Endpoints, InstancePrincipal};
    let principal = std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let endpoints = Endpoints::from_env(&|k| std::env::var(k).ok())?;
            match cache {
                Some(c) => rt.block_on(super::tokencache::principal(c, endpoints)),
                None => rt
                    .block_on(InstancePrincipal::new(endpoints))
                    .map_err(anyhow::Error::new),
            }
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the instance principal's sign-in panicked"))?
    })?;
    let principal = Arc::new(principal);
    let client = OciClient::with_instance_principal(principal.clone())?
        .with_endpoint_overrides(|k| std::env::var(k).ok())?;
    Ok((client, principal))
}

/// Open a store from its URL: `file:///absolute/dir`,
/// `oci://NAMESPACE/BUCKET/PREFIX?config=PATH&profile=NAME[&endpoint=URL]` (the API key of an
/// OCI config file; `endpoint` overrides the Object Storage endpoint, as
/// `CALOPS_ENDPOINT_OBJECTSTORAGE` does), or `oci://NAMESPACE/BUCKET/PREFIX?auth=instance_principal`
/// (on an OCI compute instance: see [`instance_principal_client`]).
pub fn open(url: &str) -> anyhow::Result<AnyStore> {
    Ok(open_cached(url, None)?.0)
}

/// [`open`], with the instance principal's token taken from and kept in `cache` (see
/// [`super::tokencache`]); also returns the principal, for
/// [`super::tokencache::remember`] after the work.
pub fn open_cached(
    url: &str,
    cache: Option<&Path>,
) -> anyhow::Result<(
    AnyStore,
    Option<Arc<crate::oci::instance::InstancePrincipal>>,
)> {
    use anyhow::Context;
    let mut principal = None;
    let u = url::Url::parse(url).with_context(|| format!("backup store `{url}` is not a URL"))?;
    match u.scheme() {
        "file" => {
            let path = u
                .to_file_path()
                .map_err(|_| anyhow::anyhow!("backup store `{url}` is not an absolute file path"))?;
            Ok((AnyStore::File(FileStore::new(path)), None))
        }
        "oci" => {
            let namespace = u.host_str().unwrap_or_default().to_string();
            let mut segs = u.path().trim_start_matches('/').splitn(2, '/');
            let bucket = segs.next().unwrap_or_default().to_string();
            let prefix = segs.next().unwrap_or_default().to_string();
            if namespace.is_empty() || bucket.is_empty() {
                anyhow::bail!("backup store `{url}` needs oci://NAMESPACE/BUCKET[/PREFIX]");
            }
            let q: std::collections::HashMap<String, String> =
                u.query_pairs().into_owned().collect();
            let mut client = match q.get("auth").map(String::as_str) {
                Some("instance_principal") => {
                    let (client, p) = instance_principal_client(cache)?;
                    principal = Some(p);
                    client
                }
                Some(other) => anyhow::bail!(
                    "backup store `{url}`: auth={other} is not known; use auth=instance_principal, or config=PATH&profile=NAME for an API key"
                ),
                None => {
                    let cfg = crate::oci::config::OciConfig::load(
                        q.get("config").map(Path::new),
                        q.get("profile").map(String::as_str),
                    )?;
                    OciClient::from_profile(&cfg)?
                }
            };
            if let Some(e) = q.get("endpoint") {
                let base = url::Url::parse(e)
                    .with_context(|| format!("endpoint `{e}` in `{url}` is not a URL"))?;
                client = client.with_endpoint(crate::oci::client::Service::ObjectStorage, base);
            }
            Ok((
                AnyStore::Oci(OciBackupStore::new(
                    Arc::new(client),
                    &namespace,
                    &bucket,
                    &prefix,
                )),
                principal,
            ))
        }
        other => anyhow::bail!(
            "backup store `{url}` has scheme `{other}`; use file:///DIR or oci://NAMESPACE/BUCKET/PREFIX"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_store_is_create_only_and_lists_by_prefix() {
        let d = tempfile::tempdir().unwrap();
        let s = FileStore::new(d.path());
        s.put_new("wal/00000001/a.zst", Bytes::from_static(b"one"))
            .await
            .unwrap();
        assert!(matches!(
            s.put_new("wal/00000001/a.zst", Bytes::from_static(b"two"))
                .await,
            Err(StoreError::Exists(_))
        ));
        assert_eq!(
            s.get("wal/00000001/a.zst").await.unwrap().unwrap(),
            Bytes::from_static(b"one")
        );
        s.put_new("wal/00000002/b.zst", Bytes::from_static(b"x"))
            .await
            .unwrap();
        s.put_new("base/x/manifest.json", Bytes::from_static(b"{}"))
            .await
            .unwrap();
        let keys = |v: Vec<ObjectInfo>| v.into_iter().map(|o| o.key).collect::<Vec<_>>();
        assert_eq!(
            keys(s.list("wal/").await.unwrap()),
            ["wal/00000001/a.zst", "wal/00000002/b.zst"]
        );
        assert_eq!(
            keys(s.list("wal/00000001/a").await.unwrap()),
            ["wal/00000001/a.zst"]
        );
        assert!(s.list("nothing/").await.unwrap().is_empty());
        let listed = s.list("base/").await.unwrap();
        assert_eq!(listed[0].size, 2);
        assert!(listed[0].modified.is_some());
        // No temporary files are left behind, and objects are private.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.path().join("wal/00000001/a.zst"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_dir(d.path().join("wal/00000001"))
                .unwrap()
                .count(),
            1
        );
        s.delete("wal/00000001/a.zst").await.unwrap();
        s.delete("wal/00000001/a.zst").await.unwrap();
        assert!(s.get("wal/00000001/a.zst").await.unwrap().is_none());
        for bad in ["", "../x", "a//b", "a/.tmp", "/abs"] {
            assert!(
                matches!(s.get(bad).await, Err(StoreError::InvalidKey(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn store_urls() {
        let d = tempfile::tempdir().unwrap();
        let url = url::Url::from_file_path(d.path()).unwrap().to_string();
        match open(&url).unwrap() {
            AnyStore::File(f) => assert_eq!(f.root(), d.path()),
            _ => panic!("a file store"),
        }
        assert!(open("file://elsewhere/dir").is_err());
        assert!(open("s3://bucket")
            .unwrap_err()
            .to_string()
            .contains("scheme `s3`"));
        assert!(open("oci:///bucket").is_err());
    }
}
