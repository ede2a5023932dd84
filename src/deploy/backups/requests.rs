//! The operator's side of the VM's database jobs: `calops backup now` and `calops restore` on an
//! `oci-vm` profile write a request into the stack's bucket ([`crate::pull::Request`],
//! create-only), and wait for the agent's result with a progress line. A result that does not
//! come within the wait is not a failure of the job: the request stays queued (or running) on
//! the VM, the command exits [`EXIT_PENDING`] saying so, and `calops backup wait ID` picks the
//! wait up again.

use super::Report;
use crate::deploy::ocistore::OciStore;
use crate::deploy::store::ObjectStore;
use crate::error::{actionable, ExitWithDoc, EXIT_ERROR};
use crate::profile::Profile;
use crate::pull::{self as objects, Job, Request, RequestOutcome, RequestResult, Started};
use crate::ui::Ui;
use anyhow::{Context, Result};
use jiff::Timestamp;
use serde_json::json;
use std::time::{Duration, Instant};

/// The exit code of a request the agent has not answered within the wait: it is still queued
/// or running on the VM.
pub const EXIT_PENDING: i32 = 3;

/// Requests of one `oci-vm` profile, in its bucket, with the operator's API key.
pub struct Requests {
    store: OciStore,
    profile: String,
    bucket: String,
    /// How often the result is looked for.
    pub poll: Duration,
}

impl Requests {
    pub async fn open(profile: &Profile) -> Result<Requests> {
        let s = crate::deploy::oci::setup::state_store(profile).await?;
        let bucket = profile.storage.bucket_name.clone();
        Ok(Requests {
            store: OciStore::new(s.client.clone(), &s.location.namespace, &bucket),
            profile: profile.name.clone(),
            bucket,
            poll: Duration::from_millis(500),
        })
    }

    /// Write a new request for `job` (create-only, a new id).
    pub async fn submit(&self, job: Job) -> Result<Request> {
        let now = Timestamp::now();
        let r = Request {
            id: objects::new_request_id(now),
            requested_at: now,
            by: crate::deploy::lock::whoami(),
            job,
        };
        let key = objects::request_key(&r.id);
        self.store
            .create(&key, &serde_json::to_vec_pretty(&r)?)
            .await
            .with_context(|| format!("writing the request {key} into bucket {}", self.bucket))?;
        Ok(r)
    }

    /// True when request `id` is in the bucket.
    pub async fn exists(&self, id: &str) -> Result<bool> {
        Ok(self.store.get(&objects::request_key(id)).await?.is_some())
    }

    async fn read<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.store.get(key).await? {
            None => Ok(None),
            Some((b, _)) => Ok(Some(
                serde_json::from_slice(&b).with_context(|| format!("{key} is unreadable"))?,
            )),
        }
    }

    /// Wait up to `limit` for the agent's result on request `id` (`what`: for the progress
    /// line), showing whether it is queued or running. The command's report: the agent's own
    /// (the local target's) report, a failure with the agent's reason, or [`EXIT_PENDING`].
    pub async fn wait(&self, id: &str, what: &str, limit: Duration, ui: &Ui) -> Result<Report> {
        let pb = ui.spinner(format!(
            "{what}: request {id} queued for the agent on the VM"
        ));
        let deadline = Instant::now() + limit;
        let mut started: Option<Started> = None;
        let result = loop {
            if let Some(r) = self.read::<RequestResult>(&objects::result_key(id)).await? {
                break Some(r);
            }
            if started.is_none() {
                started = self.read(&objects::started_key(id)).await?;
                if let Some(s) = &started {
                    pb.set_message(format!(
                        "{what}: the agent ({}) is on it since {}",
                        s.agent, s.started_at
                    ));
                }
            }
            if Instant::now() >= deadline {
                break None;
            }
            tokio::time::sleep(
                self.poll
                    .min(deadline.saturating_duration_since(Instant::now())),
            )
            .await;
        };
        pb.finish_and_clear();
        match result {
            Some(r) => outcome(r),
            None => Err(self.pending(id, started.as_ref(), limit)),
        }
    }

    /// The error of a wait that ran out: still queued or running, and how to see it.
    fn pending(&self, id: &str, started: Option<&Started>, limit: Duration) -> anyhow::Error {
        let state = match started {
            None => "still queued: the agent has not taken it (is `calops agent` running on the VM? `calops status` shows its last report)".to_string(),
            Some(s) => format!("still running on the VM (the agent {} took it at {})", s.agent, s.started_at),
        };
        ExitWithDoc {
            code: EXIT_PENDING,
            message: format!(
                "no result from the agent within {} s: request {id} is {state}. It stays in the bucket and the agent will run it; \
                 wait for its result with `calops backup wait {id} --profile {}` (it will be {} in bucket {})",
                limit.as_secs(),
                self.profile,
                objects::result_key(id),
                self.bucket
            ),
            doc: json!({
                "request": id,
                "state": if started.is_some() { "running" } else { "queued" },
                "started": started,
                "result": null,
            }),
        }
        .into()
    }
}

/// The command's report from the agent's result.
fn outcome(r: RequestResult) -> Result<Report> {
    let request = json!({
        "id": r.id, "kind": r.kind, "outcome": r.outcome, "started_at": r.started_at,
        "finished_at": r.finished_at, "agent": r.agent,
    });
    match r.outcome {
        RequestOutcome::Ok => {
            let mut doc = match r.detail {
                serde_json::Value::Object(m) => serde_json::Value::Object(m),
                other => json!({ "detail": other }),
            };
            doc["request"] = request;
            Ok(Report { doc, text: r.text })
        }
        RequestOutcome::Failed => Err(ExitWithDoc {
            code: EXIT_ERROR,
            message: format!(
                "the agent on the VM answered request {} ({}) with a failure: {}",
                r.id,
                r.kind.as_deref().unwrap_or("unreadable"),
                r.error.as_deref().unwrap_or("no reason given")
            ),
            doc: json!({ "request": request, "error": r.error }),
        }
        .into()),
    }
}

/// `calops backup wait ID`: refuse what is not a request id before asking the bucket.
pub fn check_id(id: &str) -> Result<()> {
    if objects::request_id(&objects::request_key(id)).is_none() {
        return Err(actionable(
            format!("`{id}` is not a request id"),
            "use the id `calops backup now` or `calops restore` printed (e.g. 20261206T100102345Z-1a2b3c4d)",
        ));
    }
    Ok(())
}
