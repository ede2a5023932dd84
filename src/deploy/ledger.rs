//! The release ledger: one record per deploy or rollback, numbered, kept per profile.

use super::store::{ObjectStore, StoreError};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    InProgress,
    Succeeded,
    Failed,
    /// Failed verification and traffic went back to the previous release.
    RolledBack,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Deploy,
    Rollback,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepTiming {
    pub name: String,
    pub millis: u64,
    /// `done`, `skipped` or `failed`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    pub seq: u64,
    pub id: String,
    pub kind: Kind,
    pub time: Timestamp,
    pub user: String,
    /// Digest of the deployed artifact (`sha256:...`).
    pub artifact_digest: String,
    pub profile_hash: String,
    /// Hash of everything rendered for this release (inputs of the infrastructure step).
    pub inputs_hash: String,
    pub outcome: Outcome,
    /// For a rollback: the sequence number it restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restores: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    #[serde(default)]
    pub steps: Vec<StepTiming>,
    /// Target-specific facts (URL, slot, ...).
    #[serde(default)]
    pub details: serde_json::Map<String, serde_json::Value>,
}

pub struct Ledger<S> {
    store: S,
    prefix: String,
}

impl<S: ObjectStore> Ledger<S> {
    /// Records live under `<prefix>releases/`.
    pub fn new(store: S, prefix: impl Into<String>) -> Self {
        Ledger {
            store,
            prefix: prefix.into(),
        }
    }

    fn key(&self, seq: u64) -> String {
        format!("{}releases/{seq:08}.json", self.prefix)
    }

    /// Every release, oldest first. Unreadable records are reported, not skipped silently.
    pub async fn list(&self) -> Result<Vec<Release>, StoreError> {
        let mut out = Vec::new();
        for key in self
            .store
            .list(&format!("{}releases/", self.prefix))
            .await?
        {
            if let Some((b, _)) = self.store.get(&key).await? {
                let r: Release = serde_json::from_slice(&b).map_err(|e| {
                    StoreError::Io(format!("release record {key} is unreadable: {e}"))
                })?;
                out.push(r);
            }
        }
        out.sort_by_key(|r| r.seq);
        Ok(out)
    }

    /// Start a record with the next sequence number (create-only, so numbers are never reused).
    pub async fn begin(&self, mut r: Release) -> Result<Release, StoreError> {
        let next = self.list().await?.last().map(|l| l.seq + 1).unwrap_or(1);
        for seq in next..next + 100 {
            r.seq = seq;
            let body = serde_json::to_vec_pretty(&r).expect("release serializes");
            match self.store.create(&self.key(seq), &body).await {
                Ok(_) => return Ok(r),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Io("could not allocate a release number".into()))
    }

    /// Save the final state of a record.
    pub async fn save(&self, r: &Release) -> Result<(), StoreError> {
        let body = serde_json::to_vec_pretty(r).expect("release serializes");
        self.store.put(&self.key(r.seq), &body).await.map(|_| ())
    }

    /// The newest release with outcome `succeeded`.
    pub async fn current(&self) -> Result<Option<Release>, StoreError> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .rev()
            .find(|r| r.outcome == Outcome::Succeeded))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::store::FsStore;

    fn release(digest: &str) -> Release {
        Release {
            seq: 0,
            id: uuid::Uuid::new_v4().to_string(),
            kind: Kind::Deploy,
            time: Timestamp::now(),
            user: "u@h".into(),
            artifact_digest: digest.into(),
            profile_hash: "p".into(),
            inputs_hash: "i".into(),
            outcome: Outcome::InProgress,
            restores: None,
            failure: None,
            steps: vec![],
            details: Default::default(),
        }
    }

    #[tokio::test]
    async fn numbering_and_current() {
        let d = tempfile::tempdir().unwrap();
        let l = Ledger::new(FsStore::new(d.path()), "local/");
        let mut a = l.begin(release("sha256:a")).await.unwrap();
        assert_eq!(a.seq, 1);
        a.outcome = Outcome::Succeeded;
        l.save(&a).await.unwrap();
        let mut b = l.begin(release("sha256:b")).await.unwrap();
        assert_eq!(b.seq, 2);
        b.outcome = Outcome::Failed;
        l.save(&b).await.unwrap();
        assert_eq!(
            l.current().await.unwrap().unwrap().artifact_digest,
            "sha256:a"
        );
        assert_eq!(l.list().await.unwrap().len(), 2);
    }
}
