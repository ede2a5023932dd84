//! The instance principal's token, kept between the commands PostgreSQL runs (one
//! `archive_command` or `restore_command` process per WAL file): without it each would sign in
//! afresh (metadata service, a new session key, `POST /v1/x509`), one federation call per
//! segment. The token and its session key are kept in `<server home>/backup/token/
//! instance-principal.json`, a directory of the server's OS user (mode 0700) and a file only it
//! can read (0600, written to a temporary file and renamed into place). A cached token is used
//! while it is more than [`REFRESH_WINDOW`](crate::oci::principal::REFRESH_WINDOW) from expiry; otherwise, or after a service refused
//! it (401, which the client answers with one renewal), the renewed token replaces it.
//!
//! A cache that cannot be read or written is never an error of the command: it signs in as
//! before (and says why on stderr, which PostgreSQL logs).

use crate::oci::instance::{CachedToken, Endpoints, InstancePrincipal};
use anyhow::{Context, Result};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The cache's directory, beside the backup configuration.
pub const DIR: &str = "token";
const FILE: &str = "instance-principal.json";

/// The cache file of the backup configuration at `config`.
pub fn path_for(config: &Path) -> PathBuf {
    config
        .parent()
        .unwrap_or(Path::new("."))
        .join(DIR)
        .join(FILE)
}

/// The cached token, when there is a readable one that only its owner can read.
pub fn load(path: &Path) -> Option<CachedToken> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.permissions().mode() & 0o077 != 0 {
        eprintln!(
            "calops: ignoring the cached token {}: others may read it (mode {:o})",
            path.display(),
            meta.permissions().mode() & 0o777
        );
        return None;
    }
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Write `token` to `path` (mode 0600, atomically; the directory made 0700 when missing).
pub fn save(path: &Path, token: &CachedToken) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    // A temporary file of mode 0600 (tempfile's), renamed into place.
    crate::fsutil::write_atomic(path, &serde_json::to_vec(token)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// The principal for one command: the cached token while it is fresh, else a new sign-in
/// (through the metadata and auth services at `endpoints`), which is cached.
pub async fn principal(cache: &Path, endpoints: Endpoints) -> Result<InstancePrincipal> {
    if let Some(c) = load(cache).filter(|c| c.fresh(SystemTime::now())) {
        match InstancePrincipal::from_cached(endpoints.clone(), &c) {
            Ok(p) => return Ok(p),
            Err(e) => eprintln!("calops: {e}; signing in again"),
        }
    }
    let p = InstancePrincipal::new(endpoints).await?;
    remember(cache, &p);
    Ok(p)
}

/// After a command: keep the token `p` holds now when it is not the cached one (it was
/// renewed after a 401, or near its expiry). Failures are reported, not returned.
pub fn remember(cache: &Path, p: &InstancePrincipal) {
    let Some(now) = p.cached() else { return };
    if load(cache).is_some_and(|c| c.token == now.token) {
        return;
    }
    if let Err(e) = save(cache, &now) {
        eprintln!(
            "calops: could not cache the instance principal's token ({e:#}); the next command signs in again"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(exp: u64) -> CachedToken {
        use base64::Engine as _;
        let b = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        CachedToken {
            region: "ap-sydney-1".into(),
            tenancy_id: "ocid1.tenancy.oc1..t".into(),
            token: format!(
                "{}.{}.c2ln",
                b(serde_json::json!({"alg": "RS256"})),
                b(serde_json::json!({"exp": exp}))
            ),
            session_key_pem: "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n".into(),
        }
    }

    #[test]
    fn the_cache_is_private_atomic_and_fresh_only_outside_the_window() {
        let d = tempfile::tempdir().unwrap();
        let path = path_for(&d.path().join("backup.json"));
        assert_eq!(path, d.path().join("token/instance-principal.json"));
        assert!(load(&path).is_none());
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let t = token(now + 3600);
        save(&path, &t).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&path), mode(path.parent().unwrap())), (0o600, 0o700));
        assert_eq!(load(&path).unwrap(), t);
        assert!(!format!("{t:?}").contains(&t.token));
        // Nothing but the file is left in the directory.
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
        assert!(t.fresh(SystemTime::now()));
        assert!(
            !token(now + crate::oci::principal::REFRESH_WINDOW.as_secs() - 10)
                .fresh(SystemTime::now())
        );
        assert!(!token(now - 1).fresh(SystemTime::now()));
        // A file others may read is not trusted.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load(&path).is_none());
    }
}
