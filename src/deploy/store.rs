//! A tiny object store with conditional writes: the one primitive the deploy lock and the
//! release ledger need. Both targets implement it: the local target on the filesystem
//! ([`FsStore`]), the OCI target on Object Storage (`If-None-Match: *` / `If-Match: <etag>`).
//!
//! Keeping the lock and ledger logic generic over this trait means one implementation of
//! leases, takeover and CAS renewal, tested once on real files and reused for OCI.

use std::future::Future;
use std::path::{Path, PathBuf};

/// An opaque version tag; a write with a stale one fails with [`StoreError::Conflict`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Etag(pub String);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object exists (create-only) or changed since it was read (compare-and-swap).
    #[error("conditional write failed: {0}")]
    Conflict(String),
    #[error("{0}")]
    Io(String),
}

pub trait ObjectStore: Send + Sync {
    /// Create `key` only if absent.
    fn create(
        &self,
        key: &str,
        body: &[u8],
    ) -> impl Future<Output = Result<Etag, StoreError>> + Send;
    /// Read `key`, with its etag.
    fn get(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<(Vec<u8>, Etag)>, StoreError>> + Send;
    /// Replace `key` only if its etag is still `etag`.
    fn replace(
        &self,
        key: &str,
        body: &[u8],
        etag: &Etag,
    ) -> impl Future<Output = Result<Etag, StoreError>> + Send;
    /// Write `key` unconditionally.
    fn put(&self, key: &str, body: &[u8]) -> impl Future<Output = Result<Etag, StoreError>> + Send;
    /// Delete `key` only if its etag is still `etag`.
    fn delete(&self, key: &str, etag: &Etag)
        -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Keys under `prefix`, sorted.
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
}

/// Objects as files under a directory. Conditional operations hold an exclusive `flock` on a
/// guard file, so they are atomic across processes. The etag is a hash of the content; callers
/// that need every write to be distinct (the lock) put a nonce in the body.
#[derive(Debug, Clone)]
pub struct FsStore {
    root: PathBuf,
}

impl FsStore {
    pub fn new(root: impl Into<PathBuf>) -> FsStore {
        FsStore { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        if key.is_empty()
            || key
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(StoreError::Io(format!("invalid object key `{key}`")));
        }
        Ok(self.root.join(key))
    }

    /// Run `f` while holding the store's exclusive guard lock.
    fn guarded<T>(&self, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        std::fs::create_dir_all(&self.root).map_err(|e| io_err(&self.root, e))?;
        let guard_path = self.root.join(".guard");
        let guard = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&guard_path)
            .map_err(|e| io_err(&guard_path, e))?;
        fs2::FileExt::lock_exclusive(&guard).map_err(|e| io_err(&guard_path, e))?;
        let r = f();
        let _ = fs2::FileExt::unlock(&guard);
        r
    }

    fn read(path: &Path) -> Result<Option<(Vec<u8>, Etag)>, StoreError> {
        match std::fs::read(path) {
            Ok(b) => {
                let tag = etag_of(&b);
                Ok(Some((b, tag)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(path, e)),
        }
    }

    fn write(path: &Path, body: &[u8]) -> Result<Etag, StoreError> {
        write_atomic(path, body).map_err(|e| io_err(path, e))?;
        Ok(etag_of(body))
    }
}

// Moved down to `fsutil` (the service uses it too); kept here so callers need not change.
pub use crate::fsutil::write_atomic;

fn io_err(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io(format!("{}: {e}", path.display()))
}

fn etag_of(b: &[u8]) -> Etag {
    use sha2::Digest;
    Etag(hex::encode(&sha2::Sha256::digest(b)[..16]))
}

impl ObjectStore for FsStore {
    async fn create(&self, key: &str, body: &[u8]) -> Result<Etag, StoreError> {
        let p = self.path(key)?;
        self.guarded(|| {
            if p.exists() {
                return Err(StoreError::Conflict(format!("`{key}` already exists")));
            }
            Self::write(&p, body)
        })
    }

    async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, Etag)>, StoreError> {
        let p = self.path(key)?;
        Self::read(&p)
    }

    async fn replace(&self, key: &str, body: &[u8], etag: &Etag) -> Result<Etag, StoreError> {
        let p = self.path(key)?;
        self.guarded(|| match Self::read(&p)? {
            Some((_, cur)) if &cur == etag => Self::write(&p, body),
            Some(_) => Err(StoreError::Conflict(format!(
                "`{key}` changed since it was read"
            ))),
            None => Err(StoreError::Conflict(format!("`{key}` no longer exists"))),
        })
    }

    async fn put(&self, key: &str, body: &[u8]) -> Result<Etag, StoreError> {
        let p = self.path(key)?;
        self.guarded(|| Self::write(&p, body))
    }

    async fn delete(&self, key: &str, etag: &Etag) -> Result<(), StoreError> {
        let p = self.path(key)?;
        self.guarded(|| match Self::read(&p)? {
            Some((_, cur)) if &cur == etag => std::fs::remove_file(&p).map_err(|e| io_err(&p, e)),
            Some(_) => Err(StoreError::Conflict(format!(
                "`{key}` changed since it was read"
            ))),
            None => Ok(()),
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let rd = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&dir, e)),
            };
            for entry in rd.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(rel) = path.strip_prefix(&self.root) {
                    let key = rel.to_string_lossy().replace('\\', "/");
                    let hidden = key.split('/').any(|s| s.starts_with('.'));
                    if !hidden && key.starts_with(prefix) {
                        out.push(key);
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conditional_operations() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStore::new(dir.path());
        let e1 = s.create("a/lock", b"one").await.unwrap();
        assert!(matches!(
            s.create("a/lock", b"two").await,
            Err(StoreError::Conflict(_))
        ));
        let e2 = s.replace("a/lock", b"two", &e1).await.unwrap();
        assert!(matches!(
            s.replace("a/lock", b"three", &e1).await,
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            s.delete("a/lock", &e1).await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(s.get("a/lock").await.unwrap().unwrap().0, b"two");
        s.put("a/releases/000002.json", b"x").await.unwrap();
        s.put("a/releases/000001.json", b"y").await.unwrap();
        assert_eq!(
            s.list("a/releases/").await.unwrap(),
            vec!["a/releases/000001.json", "a/releases/000002.json"]
        );
        s.delete("a/lock", &e2).await.unwrap();
        assert!(s.get("a/lock").await.unwrap().is_none());
        assert!(s.get("../etc/passwd").await.is_err());
    }

    #[test]
    fn create_is_exclusive_across_threads() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStore::new(dir.path());
        let wins: usize = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..16)
                .map(|i| {
                    let s = s.clone();
                    sc.spawn(move || {
                        let rt = tokio::runtime::Builder::new_current_thread()
                            .build()
                            .unwrap();
                        rt.block_on(s.create("lock", format!("{i}").as_bytes()))
                            .is_ok() as usize
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(wins, 1);
    }
}
