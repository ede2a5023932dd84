//! The deploy lock: one deploy per profile at a time, with a lease that the running deploy
//! renews. A lease that has expired (its holder crashed or was killed) may be taken over, and
//! the takeover is reported. Built on [`ObjectStore`] conditional writes, so the same code
//! serves the local target (files) and the OCI target (Object Storage).

use super::store::{Etag, ObjectStore, StoreError};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Unique per acquisition (also makes every write's content distinct).
    pub id: String,
    /// `user@host`.
    pub owner: String,
    pub pid: u32,
    pub started_at: Timestamp,
    pub renewed_at: Timestamp,
    pub lease_expires_at: Timestamp,
    pub message: String,
}

impl LockInfo {
    pub fn expired(&self, now: Timestamp) -> bool {
        now >= self.lease_expires_at
    }

    /// True when the holder ran on this host and its process is gone (killed, crashed).
    pub fn holder_dead_here(&self) -> bool {
        let same_host = self.owner.split('@').nth(1) == whoami().split('@').nth(1);
        same_host
            && nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid as i32), None).is_err()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the deploy lock is held by {} (pid {}) since {}: \"{}\"; its lease runs until {}. Wait for it to finish, or if that deploy is dead run `calops lock release --force`", .0.owner, .0.pid, .0.started_at, .0.message, .0.lease_expires_at)]
    Held(Box<LockInfo>),
    #[error("the deploy lock was taken over by {} while this deploy held it; stopping", .0.owner)]
    Lost(Box<LockInfo>),
    #[error("deploy lock store: {0}")]
    Store(#[from] StoreError),
    #[error("deploy lock is corrupt ({0}); remove it with `calops lock release --force`")]
    Corrupt(String),
}

/// A lock this process holds.
#[derive(Debug, Clone)]
pub struct Held {
    pub info: LockInfo,
    etag: Etag,
    /// When the lock was taken over from an expired holder: who that was.
    pub took_over: Option<LockInfo>,
}

pub struct DeployLock<S> {
    store: S,
    key: String,
    pub lease: Duration,
}

/// `user@host` for the current process.
pub fn whoami() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.name)
        })
        .unwrap_or_else(|| "unknown".into());
    let host = hostname().unwrap_or_else(|| "localhost".into());
    format!("{user}@{host}")
}

fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8(buf[..end].to_vec())
        .ok()
        .filter(|h| !h.is_empty())
}

impl<S: ObjectStore> DeployLock<S> {
    pub fn new(store: S, key: impl Into<String>, lease: Duration) -> Self {
        DeployLock {
            store,
            key: key.into(),
            lease,
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    fn info(&self, message: &str, now: Timestamp, started: Option<Timestamp>) -> LockInfo {
        LockInfo {
            id: uuid::Uuid::new_v4().to_string(),
            owner: whoami(),
            pid: std::process::id(),
            started_at: started.unwrap_or(now),
            renewed_at: now,
            lease_expires_at: now
                + SignedDuration::try_from(self.lease).unwrap_or(SignedDuration::from_secs(60)),
            message: message.to_string(),
        }
    }

    fn parse(body: &[u8]) -> Result<LockInfo, LockError> {
        serde_json::from_slice(body).map_err(|e| LockError::Corrupt(e.to_string()))
    }

    /// Take the lock, or fail fast naming the holder. An expired lease is taken over.
    pub async fn acquire(&self, message: &str, now: Timestamp) -> Result<Held, LockError> {
        let info = self.info(message, now, None);
        let body = serde_json::to_vec_pretty(&info).expect("lock info serializes");
        match self.store.create(&self.key, &body).await {
            Ok(etag) => {
                return Ok(Held {
                    info,
                    etag,
                    took_over: None,
                })
            }
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let Some((cur, etag)) = self.store.get(&self.key).await? else {
            // Released between our create and get: try once more.
            let etag = self
                .store
                .create(&self.key, &body)
                .await
                .map_err(|e| match e {
                    StoreError::Conflict(m) => LockError::Corrupt(m),
                    e => e.into(),
                })?;
            return Ok(Held {
                info,
                etag,
                took_over: None,
            });
        };
        let holder = match Self::parse(&cur) {
            Ok(h) => h,
            Err(_) => return Err(LockError::Corrupt("unreadable lock object".into())),
        };
        if !holder.expired(now) {
            return Err(LockError::Held(Box::new(holder)));
        }
        match self.store.replace(&self.key, &body, &etag).await {
            Ok(etag) => Ok(Held {
                info,
                etag,
                took_over: Some(holder),
            }),
            // Someone else took it over first.
            Err(StoreError::Conflict(_)) => match self.store.get(&self.key).await? {
                Some((b, _)) => Err(LockError::Held(Box::new(Self::parse(&b)?))),
                None => Err(LockError::Corrupt("lock vanished during takeover".into())),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Extend the lease. Fails with [`LockError::Lost`] if someone else took the lock over.
    pub async fn renew(&self, held: &mut Held, now: Timestamp) -> Result<(), LockError> {
        let mut info = self.info(&held.info.message, now, Some(held.info.started_at));
        info.id = held.info.id.clone();
        // Keep bodies distinct so the etag changes on every renewal.
        info.renewed_at = now;
        let body = serde_json::to_vec_pretty(&info).expect("lock info serializes");
        match self.store.replace(&self.key, &body, &held.etag).await {
            Ok(etag) => {
                held.etag = etag;
                held.info = info;
                Ok(())
            }
            Err(StoreError::Conflict(_)) => match self.store.get(&self.key).await? {
                Some((b, _)) => Err(LockError::Lost(Box::new(Self::parse(&b)?))),
                None => Err(LockError::Lost(Box::new(held.info.clone()))),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Release a lock this process holds (only if it is still ours).
    pub async fn release(&self, held: &Held) -> Result<(), LockError> {
        match self.store.delete(&self.key, &held.etag).await {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict(_)) => {
                // Still our acquisition (a renewal whose answer was lost changed the etag)?
                // Then delete that version; otherwise it was taken over: not ours to delete.
                match self.store.get(&self.key).await? {
                    Some((b, etag)) if Self::parse(&b).is_ok_and(|i| i.id == held.info.id) => {
                        match self.store.delete(&self.key, &etag).await {
                            Ok(()) | Err(StoreError::Conflict(_)) => Ok(()),
                            Err(e) => Err(e.into()),
                        }
                    }
                    _ => Ok(()),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The current holder, if any.
    pub async fn status(&self) -> Result<Option<LockInfo>, LockError> {
        match self.store.get(&self.key).await? {
            Some((b, _)) => Ok(Some(Self::parse(&b)?)),
            None => Ok(None),
        }
    }

    /// Remove the lock whoever holds it. Returns who held it.
    pub async fn force_release(&self) -> Result<Option<LockInfo>, LockError> {
        let Some((b, etag)) = self.store.get(&self.key).await? else {
            return Ok(None);
        };
        self.store.delete(&self.key, &etag).await?;
        Ok(Self::parse(&b).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::store::FsStore;

    fn lock(dir: &std::path::Path) -> DeployLock<FsStore> {
        DeployLock::new(
            FsStore::new(dir),
            "local/lock.json",
            Duration::from_secs(60),
        )
    }

    #[tokio::test]
    async fn second_acquire_names_the_holder() {
        let d = tempfile::tempdir().unwrap();
        let l = lock(d.path());
        let now = Timestamp::now();
        let held = l.acquire("deploy 1", now).await.unwrap();
        let err = l.acquire("deploy 2", now).await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, LockError::Held(_)));
        assert!(msg.contains(&whoami()) && msg.contains("deploy 1"), "{msg}");
        l.release(&held).await.unwrap();
        assert!(l.status().await.unwrap().is_none());
        l.acquire("deploy 3", now).await.unwrap();
    }

    #[tokio::test]
    async fn expired_lease_is_taken_over_and_old_holder_loses_it() {
        let d = tempfile::tempdir().unwrap();
        let l = lock(d.path());
        let t0 = Timestamp::now();
        let mut old = l.acquire("crashed deploy", t0).await.unwrap();
        let later = t0 + SignedDuration::from_secs(61);
        let new = l.acquire("new deploy", later).await.unwrap();
        assert_eq!(new.took_over.as_ref().unwrap().message, "crashed deploy");
        // The old holder wakes up: its renewal fails, its release does not remove the new lock.
        assert!(matches!(
            l.renew(&mut old, later).await,
            Err(LockError::Lost(_))
        ));
        l.release(&old).await.unwrap();
        assert_eq!(l.status().await.unwrap().unwrap().message, "new deploy");
    }

    #[tokio::test]
    async fn renewal_extends_the_lease() {
        let d = tempfile::tempdir().unwrap();
        let l = lock(d.path());
        let t0 = Timestamp::now();
        let mut h = l.acquire("long deploy", t0).await.unwrap();
        let t1 = t0 + SignedDuration::from_secs(50);
        l.renew(&mut h, t1).await.unwrap();
        // At t0+61 the original lease would have expired, but the renewal moved it.
        let err = l
            .acquire("other", t0 + SignedDuration::from_secs(61))
            .await
            .unwrap_err();
        assert!(matches!(err, LockError::Held(_)));
        assert_eq!(h.info.started_at, t0);
    }

    #[tokio::test]
    async fn release_after_a_renewal_whose_answer_was_lost() {
        let d = tempfile::tempdir().unwrap();
        let l = lock(d.path());
        let t0 = Timestamp::now();
        let held = l.acquire("deploy", t0).await.unwrap();
        // A renewal that reached the store, but whose new etag this holder never saw.
        let mut renewed = held.clone();
        l.renew(&mut renewed, t0 + SignedDuration::from_secs(10))
            .await
            .unwrap();
        l.release(&held).await.unwrap();
        assert!(l.status().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn force_release() {
        let d = tempfile::tempdir().unwrap();
        let l = lock(d.path());
        l.acquire("stuck", Timestamp::now()).await.unwrap();
        assert_eq!(l.force_release().await.unwrap().unwrap().message, "stuck");
        assert!(l.status().await.unwrap().is_none());
    }
}
