//! Object storage for the service (ICS files): a small trait with three backends, a local
//! directory (the local target), OCI Object Storage's native API signed as the container
//! instance's resource principal (the OCI stack), and an S3-compatible bucket (any S3 API,
//! OCI's Amazon S3 Compatibility API included).
//!
//! `CALOPS_OBJECT_STORAGE_URL` forms (parsed by [`Spec::parse`]):
//! - `file:///var/lib/calops/objects`
//! - `https://objectstorage.REGION.oraclecloud.com/n/NAMESPACE/b/BUCKET`: OCI's native API
//!   ([`oci`]), what the OCI stack renders
//! - `s3://BUCKET?endpoint=https://NS.compat.objectstorage.REGION.oraclecloud.com&region=REGION`
//! - `https://HOST/BUCKET` (path-style; the region from `?region=` or from an OCI host name)
//!
//! S3 credentials are references, never values: `access_key=env:NAME` and `secret_key=env:NAME`
//! in the query, defaulting to `env:AWS_ACCESS_KEY_ID` and `env:AWS_SECRET_ACCESS_KEY`.

pub mod oci;
pub mod s3;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;

/// What went wrong with a storage call (never holds a credential or a signed URL).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ObjError(pub String);

pub type ObjFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ObjError>> + Send + 'a>>;

/// A place to keep objects by key (`ics/42/<uid>.ics`).
pub trait ObjectStore: Send + Sync {
    /// Store `body` under `key`, replacing what was there; readers see old or new, never half.
    fn put<'a>(&'a self, key: &'a str, body: Vec<u8>, content_type: &'a str) -> ObjFuture<'a, ()>;
    /// The object under `key`, or `None` when there is none.
    fn get<'a>(&'a self, key: &'a str) -> ObjFuture<'a, Option<Vec<u8>>>;
    /// Can we write here right now? (for /health)
    fn check(&self) -> ObjFuture<'_, ()>;
    /// Where objects go, for logs (no credentials).
    fn describe(&self) -> String;
}

/// A checked storage setting, credentials resolved.
#[derive(Clone, PartialEq, Eq)]
pub enum Spec {
    Fs { root: PathBuf },
    Oci(oci::OciSpec),
    S3(s3::S3Spec),
}

impl std::fmt::Debug for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Spec::Fs { root } => write!(f, "Fs({})", root.display()),
            Spec::Oci(s) => write!(f, "{s:?}"),
            Spec::S3(s) => write!(f, "{s:?}"),
        }
    }
}

const USAGE: &str = "use file:///path, https://objectstorage.REGION.oraclecloud.com/n/NAMESPACE/b/BUCKET (OCI, as the resource principal), s3://BUCKET?endpoint=https://HOST&region=REGION or https://HOST/BUCKET?region=REGION";

impl Spec {
    /// Parse a storage URL; `env` resolves `env:NAME` credential references. The error says
    /// what to change and never repeats a query value (it might be a pasted secret).
    pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Spec, String> {
        let u = url::Url::parse(text.trim()).map_err(|e| format!("not a URL ({e}); {USAGE}"))?;
        match u.scheme() {
            "file" => {
                let root = u
                    .to_file_path()
                    .ok()
                    .filter(|p| p.is_absolute() && u.host().is_none())
                    .ok_or_else(|| {
                        format!("a file URL needs an absolute local path (file:///path); {USAGE}")
                    })?;
                Ok(Spec::Fs { root })
            }
            "https" if oci::OciSpec::parse(&u).is_some() => {
                if u.query().is_some() {
                    return Err(
                        "OCI's native URL takes no query: the resource principal signs the calls"
                            .into(),
                    );
                }
                Ok(Spec::Oci(oci::OciSpec::parse(&u).expect("checked above")))
            }
            "s3" | "http" | "https" => s3::S3Spec::parse(&u, env).map(Spec::S3),
            other => Err(format!("unsupported scheme {other:?}; {USAGE}")),
        }
    }
}

/// Open the store a spec describes; `oci` signs the native OCI API's calls.
pub fn open(
    spec: &Spec,
    oci: Option<&crate::oci::client::OciClient>,
) -> Result<Arc<dyn ObjectStore>, ObjError> {
    Ok(match spec {
        Spec::Fs { root } => Arc::new(FsStore::new(root.clone())),
        Spec::Oci(s) => {
            let client = oci.ok_or_else(|| {
                ObjError("OCI Object Storage's native API needs the container instance's resource principal (OCI_RESOURCE_PRINCIPAL_VERSION is not set)".into())
            })?;
            Arc::new(oci::OciStore::new(client.clone(), s))
        }
        Spec::S3(s) => Arc::new(s3::S3Store::new(s)?),
    })
}

/// Open the store of a storage URL, resolving credential references from the environment
/// (the configuration was checked at start; this says why when it no longer holds).
pub fn open_url(
    url: &str,
    oci: Option<&crate::oci::client::OciClient>,
) -> Result<Arc<dyn ObjectStore>, String> {
    let spec = Spec::parse(url, &|n| std::env::var(n).ok())?;
    open(&spec, oci).map_err(|e| e.0)
}

/// Is `key` a safe relative object key: segments of `[A-Za-z0-9._-]`, none `.` or `..`?
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 512
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

fn checked(key: &str) -> Result<(), ObjError> {
    if valid_key(key) {
        Ok(())
    } else {
        Err(ObjError(format!("invalid object key {key:?}")))
    }
}

/// Objects as files under a root directory; writes are atomic (temp file, fsync, rename).
pub struct FsStore {
    root: PathBuf,
}

impl FsStore {
    pub fn new(root: PathBuf) -> FsStore {
        FsStore { root }
    }

    pub fn path_of(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }
}

fn io(path: &Path, e: impl std::fmt::Display) -> ObjError {
    ObjError(format!("{}: {e}", path.display()))
}

impl ObjectStore for FsStore {
    fn put<'a>(&'a self, key: &'a str, body: Vec<u8>, _content_type: &'a str) -> ObjFuture<'a, ()> {
        Box::pin(async move {
            checked(key)?;
            let path = self.path_of(key);
            let root = self.root.clone();
            tokio::task::spawn_blocking(move || {
                // The root must exist already: creating it would hide a missing mount.
                if !root.is_dir() {
                    return Err(io(&root, "the storage directory does not exist"));
                }
                crate::fsutil::write_atomic(&path, &body).map_err(|e| io(&path, e))
            })
            .await
            .map_err(|e| ObjError(format!("write task failed: {e}")))?
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> ObjFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            checked(key)?;
            let path = self.path_of(key);
            match tokio::fs::read(&path).await {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io(&path, e)),
            }
        })
    }

    fn check(&self) -> ObjFuture<'_, ()> {
        Box::pin(async move {
            let meta = tokio::fs::metadata(&self.root)
                .await
                .map_err(|e| io(&self.root, e))?;
            if !meta.is_dir() {
                return Err(io(&self.root, "not a directory"));
            }
            nix::unistd::access(&self.root, nix::unistd::AccessFlags::W_OK)
                .map_err(|e| io(&self.root, format!("not writable: {e}")))
        })
    }

    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(n: &str) -> Option<String> {
        match n {
            "AWS_ACCESS_KEY_ID" | "KEY" => Some("AKIDEXAMPLE".into()),
            "AWS_SECRET_ACCESS_KEY" | "SECRET" => Some("wJalrXUtnFEMI/K7MDENG".into()),
            _ => None,
        }
    }

    #[test]
    fn keys_stay_inside_the_store() {
        assert!(valid_key("ics/42/0b8c6a52-6f0e-4a57-9d0f-2f3c2b8f1a11.ics"));
        for bad in [
            "",
            "/etc/passwd",
            "ics/../x",
            "ics//x",
            "ics/./x",
            "a b",
            "ics/x/",
        ] {
            assert!(!valid_key(bad), "{bad:?}");
        }
    }

    #[test]
    fn urls_parse_into_backends() {
        assert_eq!(
            Spec::parse("file:///var/lib/calops/objects", &env).unwrap(),
            Spec::Fs {
                root: "/var/lib/calops/objects".into()
            }
        );
        let e = Spec::parse("file://host/x", &env).unwrap_err();
        assert!(e.contains("absolute local path"), "{e}");
        let e = Spec::parse("ftp://x/y", &env).unwrap_err();
        assert!(e.contains("unsupported scheme"), "{e}");
        let e = Spec::parse("not a url", &env).unwrap_err();
        assert!(e.contains("file:///path"), "{e}");
    }

    #[tokio::test]
    async fn the_filesystem_backend_writes_atomically_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path().to_path_buf());
        store.check().await.unwrap();
        assert_eq!(store.get("ics/1/a.ics").await.unwrap(), None);
        store
            .put("ics/1/a.ics", b"one".to_vec(), "text/calendar")
            .await
            .unwrap();
        store
            .put("ics/1/a.ics", b"two".to_vec(), "text/calendar")
            .await
            .unwrap();
        assert_eq!(
            store.get("ics/1/a.ics").await.unwrap().as_deref(),
            Some(&b"two"[..])
        );
        // Nothing but the object is left behind (no temp files).
        let names: Vec<_> = std::fs::read_dir(dir.path().join("ics/1"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.ics"]);
        assert!(store
            .put("../x", b"x".to_vec(), "text/plain")
            .await
            .is_err());
        let gone = FsStore::new(dir.path().join("missing"));
        let e = gone.check().await.unwrap_err();
        assert!(e.0.contains("missing"), "{e}");
        let e = gone
            .put("ics/1/a.ics", b"x".to_vec(), "text/calendar")
            .await
            .unwrap_err();
        assert!(e.0.contains("does not exist"), "{e}");
    }
}
