//! The release ledger: one record per deploy or rollback, numbered, kept per profile.

use super::store::{ObjectStore, StoreError};
use crate::error::actionable;
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

/// The release to roll back to: `--to SEQ`, else the newest earlier success that differs from
/// what runs now (artifact or inputs). Only succeeded releases qualify.
pub fn pick_rollback(
    all: &[Release],
    current: Option<&Release>,
    to: Option<u64>,
) -> anyhow::Result<Release> {
    let to = match to {
        Some(seq) => all.iter().find(|r| r.seq == seq).cloned().ok_or_else(|| {
            actionable(
                format!("there is no release #{seq}"),
                "list them with `calops releases`",
            )
        })?,
        None => {
            let cur = current.ok_or_else(|| {
                actionable(
                    "nothing is deployed, so there is nothing to roll back",
                    "deploy first with `calops deploy --profile ...`",
                )
            })?;
            all.iter()
                .rev()
                .find(|r| {
                    r.outcome == Outcome::Succeeded
                        && r.seq < cur.seq
                        && (r.artifact_digest != cur.artifact_digest
                            || r.inputs_hash != cur.inputs_hash)
                })
                .cloned()
                .ok_or_else(|| {
                    actionable(
                        format!(
                            "no earlier successful release differs from the current one (#{})",
                            cur.seq
                        ),
                        "list them with `calops releases`",
                    )
                })?
        }
    };
    if to.outcome != Outcome::Succeeded {
        return Err(actionable(format!("release #{} did not succeed ({:?}); rolling back to it would restore a broken release", to.seq, to.outcome), "pick a succeeded release from `calops releases`"));
    }
    Ok(to)
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

    /// Releases 1..=n with these outcomes and digests (inputs all the same).
    fn history(rows: &[(Outcome, &str)]) -> Vec<Release> {
        rows.iter()
            .enumerate()
            .map(|(i, (outcome, digest))| Release {
                seq: i as u64 + 1,
                outcome: *outcome,
                ..release(digest)
            })
            .collect()
    }

    fn err(r: anyhow::Result<Release>) -> String {
        format!("{:#}", r.unwrap_err())
    }

    #[test]
    fn rollback_goes_to_the_newest_earlier_success_that_differs() {
        use Outcome::*;
        let all = history(&[
            (Succeeded, "sha256:a"),
            (Succeeded, "sha256:b"),
            (Failed, "sha256:c"),
            (Succeeded, "sha256:b"),
        ]);
        // #4 runs b; #3 failed and #2 is b too: #1.
        assert_eq!(pick_rollback(&all, Some(&all[3]), None).unwrap().seq, 1);
        // Different inputs count as different even with the same artifact.
        let mut all2 = all.clone();
        all2[1].inputs_hash = "other".into();
        assert_eq!(pick_rollback(&all2, Some(&all2[3]), None).unwrap().seq, 2);
        // Nothing earlier differs.
        let e = err(pick_rollback(&all, Some(&all[0]), None));
        assert!(
            e.contains("no earlier successful release differs from the current one (#1)"),
            "{e}"
        );
        // Nothing deployed.
        let e = err(pick_rollback(&all, None, None));
        assert!(e.contains("nothing is deployed"), "{e}");
    }

    #[test]
    fn rollback_to_a_chosen_release_must_exist_and_have_succeeded() {
        use Outcome::*;
        let all = history(&[(Succeeded, "sha256:a"), (RolledBack, "sha256:b")]);
        assert_eq!(pick_rollback(&all, None, Some(1)).unwrap().seq, 1);
        let e = err(pick_rollback(&all, Some(&all[0]), Some(2)));
        assert!(e.contains("release #2 did not succeed (RolledBack)"), "{e}");
        let e = err(pick_rollback(&all, Some(&all[0]), Some(9)));
        assert!(e.contains("there is no release #9"), "{e}");
    }
}
