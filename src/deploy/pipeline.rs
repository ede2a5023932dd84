//! The release pipeline shared by every target:
//!
//! validate → lock → build (skipped when already built) → provision (skipped when unchanged) →
//! start the new release beside the old → verify → switch traffic → retire the old → record →
//! unlock. A failed verify discards the candidate, so traffic never leaves the old release
//! (that is the automatic rollback), and the record says which check failed.

use super::ledger::{Kind, Ledger, Outcome, Release};
use super::lock::{whoami, DeployLock, Held, LockError};
use super::steps::{Interrupt, StepError, Steps};
use super::store::ObjectStore;
use crate::error::{ExitWithDoc, EXIT_ERROR, EXIT_INTERRUPTED};
use crate::ui::Ui;
use anyhow::Result;
use jiff::Timestamp;
use std::sync::Arc;
use std::time::Duration;

/// The release artifact (a binary for the local target, an image for OCI).
#[derive(Debug, Clone, PartialEq)]
pub struct Artifact {
    /// `sha256:<hex>`.
    pub digest: String,
    /// Where it is: a path or an image reference.
    pub location: String,
}

/// Why a candidate failed verification: the check, and an excerpt of its log.
#[derive(Debug, Clone, thiserror::Error)]
#[error("verification failed: {check}")]
pub struct VerifyFailure {
    pub check: String,
    pub log_excerpt: String,
}

/// What a target must do; the pipeline decides when.
#[allow(async_fn_in_trait)]
pub trait Target {
    type Candidate;
    /// Build the artifact for the source being deployed, or find it already built.
    async fn build(&mut self, steps: &mut Steps<'_>) -> Result<(Artifact, bool)>;
    /// Everything that configures the release besides the artifact (no secret values), stored
    /// in the release record so that a rollback restores it.
    fn inputs(&self) -> serde_json::Value;
    /// Use the inputs recorded by an earlier release (for a rollback).
    fn restore_inputs(&mut self, inputs: &serde_json::Value) -> Result<()>;
    /// Make sure the infrastructure exists and matches the profile. True when it changed.
    async fn provision(&mut self, steps: &mut Steps<'_>) -> Result<bool>;
    /// True when `release` is what runs now, and it answers healthy.
    async fn is_serving(&self, release: &Release) -> bool;
    /// True when the artifact can still be started (for rollback).
    async fn artifact_available(&self, release: &Release) -> bool;
    /// Start `artifact` beside what runs now, without sending it traffic.
    async fn start(&mut self, artifact: &Artifact, release: &Release) -> Result<Self::Candidate>;
    /// Health, version and a smoke request against the candidate.
    async fn verify(
        &mut self,
        candidate: &Self::Candidate,
        release: &Release,
    ) -> Result<(), VerifyFailure>;
    /// Send traffic to the candidate and retire the previous release.
    async fn switch(&mut self, candidate: Self::Candidate) -> Result<()>;
    /// Stop a candidate that will not get traffic.
    async fn discard(&mut self, candidate: Self::Candidate) -> Result<()>;
    /// Facts for the release record (URL, slot, ...).
    fn details(&self) -> serde_json::Map<String, serde_json::Value>;
    /// How long verification may take.
    fn verify_timeout(&self) -> Duration;
    /// How long starting the candidate, and switching traffic, may take.
    fn start_timeout(&self) -> Duration {
        Duration::from_secs(120)
    }
    /// After an interrupt, while the lock is still held: stop anything half-started.
    async fn clean_up_interrupted(&mut self) {}
}

/// The hash of a release's inputs, as stored in its record.
pub fn inputs_hash(inputs: &serde_json::Value) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(inputs.to_string().as_bytes()))
}

pub struct Options {
    pub auto_rollback: bool,
    pub message: String,
    pub lock_lease: Duration,
    pub profile_hash: String,
}

/// The result of a pipeline run, printed with `--json`.
#[derive(Debug, serde::Serialize)]
pub struct RunResult {
    /// `deployed`, `unchanged`, `rolled_back`, `failed`.
    pub result: String,
    pub release: Option<Release>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub took_over_lock_from: Option<String>,
}

/// Take the lock and keep renewing it until dropped; a lost lock raises the interrupt.
struct LockGuard<S: ObjectStore + 'static> {
    lock: Arc<DeployLock<S>>,
    held: Arc<tokio::sync::Mutex<Held>>,
    renewer: tokio::task::JoinHandle<()>,
}

impl<S: ObjectStore + 'static> LockGuard<S> {
    async fn take(
        lock: DeployLock<S>,
        message: &str,
        interrupt: Interrupt,
        ui: &Ui,
    ) -> Result<(Self, Option<String>)> {
        let held = lock.acquire(message, Timestamp::now()).await?;
        let took_over = held.took_over.as_ref().map(|t| {
            let s = format!(
                "{} (pid {}, started {}, \"{}\")",
                t.owner, t.pid, t.started_at, t.message
            );
            ui.warn(format!("took over an expired deploy lock from {s}"));
            s
        });
        let lock = Arc::new(lock);
        let held = Arc::new(tokio::sync::Mutex::new(held));
        let every = lock.lease / 3;
        let (l2, h2) = (lock.clone(), held.clone());
        let renewer = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let mut h = h2.lock().await;
                if let Err(LockError::Lost(_)) = l2.renew(&mut h, Timestamp::now()).await {
                    interrupt.raise();
                    return;
                }
            }
        });
        Ok((
            LockGuard {
                lock,
                held,
                renewer,
            },
            took_over,
        ))
    }

    async fn release(self) {
        // The renewer holds `held` while it renews: taking it first lets a renewal in flight
        // finish (and record its new etag) before the renewer stops.
        let h = self.held.lock().await;
        self.renewer.abort();
        let _ = self.lock.release(&h).await;
    }
}

/// Where a profile's deploy lock and release ledger live.
pub struct Records<'a, S> {
    pub store: S,
    /// The lock's object key.
    pub lock_key: &'a str,
    /// The ledger's key prefix.
    pub ledger_prefix: &'a str,
}

/// Deploy the current source (`rollback_to: None`) or an earlier release (`Some`).
pub async fn run<T: Target, S: ObjectStore + Clone + 'static>(
    target: &mut T,
    records: Records<'_, S>,
    opts: &Options,
    rollback_to: Option<&Release>,
    ui: &Ui,
    interrupt: Interrupt,
) -> Result<RunResult> {
    let Records {
        store,
        lock_key,
        ledger_prefix,
    } = records;
    let (guard, took_over) = LockGuard::take(
        DeployLock::new(store.clone(), lock_key, opts.lock_lease),
        &opts.message,
        interrupt.clone(),
        ui,
    )
    .await?;
    let result = run_locked(
        target,
        store,
        ledger_prefix,
        opts,
        rollback_to,
        ui,
        interrupt,
    )
    .await;
    guard.release().await;
    result.map(|mut r| {
        r.took_over_lock_from = took_over;
        r
    })
}

async fn run_locked<T: Target, S: ObjectStore + Clone + 'static>(
    target: &mut T,
    store: S,
    ledger_prefix: &str,
    opts: &Options,
    rollback_to: Option<&Release>,
    ui: &Ui,
    interrupt: Interrupt,
) -> Result<RunResult> {
    let ledger = Ledger::new(store, ledger_prefix);
    let mut steps = Steps::new(ui, interrupt.clone());
    let current = ledger.current().await?;

    // 1. The artifact: built (or found) for a deploy, the old one for a rollback.
    let artifact = match rollback_to {
        Some(r) => {
            if !target.artifact_available(r).await {
                return Err(crate::error::actionable(
                    format!(
                        "release #{} ({}) cannot be rolled back to: its artifact no longer exists",
                        r.seq, r.artifact_digest
                    ),
                    "pick another release with `calops releases`, or deploy again",
                ));
            }
            steps.skip("build", &format!("rolling back to release #{}", r.seq));
            if let Some(inputs) = r.details.get("inputs") {
                target.restore_inputs(inputs)?;
            }
            Artifact {
                digest: r.artifact_digest.clone(),
                location: String::new(),
            }
        }
        None => {
            let (a, reused) = match target.build(&mut steps).await {
                Ok(built) => built,
                // Ctrl-C during the build ends like Ctrl-C anywhere else: exit code 130.
                Err(e) if steps.interrupt.raised() => {
                    return Err(e.context(crate::error::Exit {
                        code: EXIT_INTERRUPTED,
                        message: Some("deploy interrupted before anything changed".into()),
                    }))
                }
                Err(e) => return Err(e),
            };
            if reused {
                ui.detail(format!("artifact {} was already built", a.digest));
            }
            a
        }
    };
    let inputs = target.inputs();
    let inputs_hash = inputs_hash(&inputs);

    // 2. Idempotence: the same artifact and inputs already serving means nothing to do.
    if let Some(cur) = &current {
        if rollback_to.is_none()
            && cur.artifact_digest == artifact.digest
            && cur.inputs_hash == inputs_hash
            && cur.profile_hash == opts.profile_hash
            && target.is_serving(cur).await
        {
            return Ok(RunResult {
                result: "unchanged".into(),
                message: format!(
                    "release #{} already runs this artifact and configuration; nothing to do",
                    cur.seq
                ),
                release: Some(cur.clone()),
                took_over_lock_from: None,
            });
        }
    }

    let mut record = ledger
        .begin(Release {
            seq: 0,
            id: uuid::Uuid::new_v4().to_string(),
            kind: if rollback_to.is_some() {
                Kind::Rollback
            } else {
                Kind::Deploy
            },
            time: Timestamp::now(),
            user: whoami(),
            artifact_digest: artifact.digest.clone(),
            profile_hash: opts.profile_hash.clone(),
            inputs_hash: inputs_hash.clone(),
            outcome: Outcome::InProgress,
            restores: rollback_to.map(|r| r.seq),
            failure: None,
            steps: Vec::new(),
            details: Default::default(),
        })
        .await?;

    let outcome = deploy_steps(
        target,
        &artifact,
        &mut record,
        &mut steps,
        opts,
        current.is_some(),
    )
    .await;
    record.steps = std::mem::take(&mut steps.timings);
    record.details = target.details();
    record.details.insert("inputs".into(), inputs);
    if steps.interrupt.raised() {
        target.clean_up_interrupted().await;
    }
    let (result, message, err) = match outcome {
        Ok(()) => {
            record.outcome = Outcome::Succeeded;
            let what = match rollback_to {
                Some(r) => format!(
                    "rolled back to release #{} as release #{}",
                    r.seq, record.seq
                ),
                None => format!("release #{} is live", record.seq),
            };
            ("deployed".to_string(), what, None)
        }
        Err(f) => {
            let rolled_back = f.kept_previous && current.is_some();
            record.outcome = if rolled_back {
                Outcome::RolledBack
            } else {
                Outcome::Failed
            };
            record.failure = Some(f.message.clone());
            let msg = if rolled_back {
                format!(
                    "release #{} failed and was rolled back: release #{} keeps serving.\n{}",
                    record.seq,
                    current.as_ref().map(|c| c.seq).unwrap_or(0),
                    f.message
                )
            } else {
                format!("release #{} failed.\n{}", record.seq, f.message)
            };
            (
                if rolled_back { "rolled_back" } else { "failed" }.to_string(),
                msg.clone(),
                Some((msg, f.interrupted)),
            )
        }
    };
    ledger.save(&record).await?;
    if let Some((msg, interrupted)) = err {
        let doc = serde_json::json!({"result": result, "release": record, "message": msg});
        return Err(ExitWithDoc {
            code: if interrupted {
                EXIT_INTERRUPTED
            } else {
                EXIT_ERROR
            },
            message: msg,
            doc,
        }
        .into());
    }
    Ok(RunResult {
        result,
        release: Some(record),
        message,
        took_over_lock_from: None,
    })
}

struct Failure {
    message: String,
    /// True when the previous release kept (or got back) the traffic.
    kept_previous: bool,
    interrupted: bool,
}

impl Failure {
    fn from_step(e: StepError, kept_previous: bool) -> Failure {
        let interrupted = matches!(e, StepError::Interrupted(_));
        Failure {
            message: format!("{e}"),
            kept_previous,
            interrupted,
        }
    }
}

async fn deploy_steps<T: Target>(
    target: &mut T,
    artifact: &Artifact,
    record: &mut Release,
    steps: &mut Steps<'_>,
    opts: &Options,
    has_previous: bool,
) -> Result<(), Failure> {
    // Provision: the target decides whether anything changed.
    let changed = target.provision(steps).await.map_err(|e| Failure {
        message: format!("provisioning failed: {e:#}"),
        kept_previous: true,
        interrupted: steps.interrupt.raised(),
    })?;
    if !changed {
        steps.ui().detail("infrastructure unchanged");
    }
    let candidate = steps
        .run(
            "start",
            "starting the new release beside the current one",
            target.start_timeout(),
            target.start(artifact, record),
        )
        .await
        .map_err(|e| Failure::from_step(e, true))?;
    let verify_timeout = target.verify_timeout();
    let verified = {
        let rec = record.clone();
        let fut = async {
            target
                .verify(&candidate, &rec)
                .await
                .map_err(|f| anyhow::anyhow!("{}\n--- log excerpt ---\n{}", f.check, f.log_excerpt))
        };
        steps
            .run(
                "verify",
                "waiting for health, version and a smoke request",
                verify_timeout,
                fut,
            )
            .await
    };
    if let Err(e) = verified {
        let interrupted = matches!(e, StepError::Interrupted(_));
        if opts.auto_rollback || interrupted || !has_previous {
            let _ = target.discard(candidate).await;
        } else {
            steps.ui().warn("--no-auto-rollback: the failed release is left running (without traffic) for inspection");
        }
        return Err(Failure::from_step(e, true));
    }
    steps
        .run(
            "switch",
            "moving traffic to the new release and retiring the old one",
            target.start_timeout(),
            target.switch(candidate),
        )
        .await
        .map_err(|e| Failure::from_step(e, false))?;
    Ok(())
}
