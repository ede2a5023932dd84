//! `calops agent`: runs on the VM, signs as the instance principal, and makes the VM run the
//! desired release of the stack's bucket ([`super::objects`]).
//!
//! Each poll: read `desired.json`; if its id already has a report, nothing to do. Otherwise
//! download the binary by digest and check its sha256 (a mismatch is refused and reported,
//! nothing is switched), write the profile files it names, and run the local target's release
//! pipeline with that binary: the same verified zero-downtime switch, the same automatic
//! rollback on a failed check, under the local lock, recorded in the local ledger. Then write
//! the report.
//!
//! Restarted after a kill (even mid-switch) it converges: the report is written last, so the
//! same desired id is taken again; the local pipeline stops a half-started candidate before it
//! starts a new one (never two releases beside the current one on the port) and finds a
//! release that already serves unchanged. A local lock left by a killed agent on this host is
//! released first.

use super::objects::{
    self, Desired, Job, Report, ReportOutcome, Request, RequestOutcome, RequestResult, Started,
};
use crate::backup::store::{AnyStore, OciBackupStore};
use crate::deploy::deployment::{local_state, release_dead_lock, LOCK_LEASE};
use crate::deploy::local::target::LocalTarget;
use crate::deploy::ocistore::OciStore;
use crate::deploy::pipeline::{self, Options};
use crate::deploy::steps::Interrupt;
use crate::deploy::store::{ObjectStore, StoreError};
use crate::error::{actionable, ExitWithDoc};
use crate::oci::client::OciClient;
use crate::oci::instance::InstancePrincipal;
use crate::ui::Ui;
use anyhow::{Context, Result};
use jiff::Timestamp;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What the agent needs to know (from flags, or the environment cloud-init writes).
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The calops profile's name (the local layout's directory, the profile file's name).
    pub profile: String,
    /// The stack's bucket.
    pub bucket: String,
    /// The Object Storage namespace; `None`: asked from the API.
    pub namespace: Option<String>,
    /// How long to wait between polls.
    pub interval: Duration,
    /// Handle the desired release once, then exit.
    pub once: bool,
    /// Where the local layout lives (`.calops/<profile>/` under it).
    pub workdir: PathBuf,
    /// The agent's own binary: replaced by each release it switches to (then the agent exits
    /// for systemd to start the new one). `None`: never replaced.
    pub self_update: Option<PathBuf>,
    /// What runs a request's job (`deploy::backups::vm::run_job`: the local target's backup and
    /// restore code, which itself deploys through the pipeline, so it is handed in here).
    pub run_job: RunJob,
}

/// Runs one job on the VM's cluster (its local target) with the archive: the command's JSON
/// document and text.
pub type RunJob = for<'a> fn(
    &'a Job,
    LocalTarget,
    AnyStore,
    &'a Ui,
)
    -> futures::future::BoxFuture<'a, Result<(serde_json::Value, String)>>;

/// Replace the agent's binary `agent` with `release` when their contents differ; true when it
/// was replaced (atomically: a reader sees the old file or the new).
pub fn update_agent_binary(release: &Path, agent: &Path) -> Result<bool> {
    let new = crate::fsutil::file_digest(release)?;
    if crate::fsutil::file_digest(agent).ok().as_deref() == Some(new.as_str()) {
        return Ok(false);
    }
    let tmp = agent.with_extension("new");
    std::fs::copy(release, &tmp)
        .with_context(|| format!("copying {} to {}", release.display(), tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, agent).with_context(|| format!("replacing {}", agent.display()))?;
    Ok(true)
}

/// The agent's connection to the bucket.
pub struct Agent {
    pub config: AgentConfig,
    client: Arc<OciClient>,
    store: OciStore,
    namespace: String,
}

/// Where the VM's cluster archives: the stack's bucket, under `backups/`, signed as the
/// instance principal (by `archive_command` and the service's nightly base backup).
pub fn backup_store_url(namespace: &str, bucket: &str) -> String {
    format!("oci://{namespace}/{bucket}/{BACKUP_PREFIX}?auth=instance_principal")
}

pub use crate::pull::BACKUP_PREFIX;

impl Agent {
    /// Sign in as the instance principal (endpoints from `OCI_METADATA_BASE_URL`,
    /// `OCI_SDK_AUTH_CLIENT_REGION_URL`, `CALOPS_ENDPOINT_OBJECTSTORAGE` when set) and check
    /// that the bucket is there.
    pub async fn connect(config: AgentConfig) -> Result<Agent> {
        let principal = InstancePrincipal::from_env()
            .await
            .context("signing in as the instance principal")?;
        let client = OciClient::with_instance_principal(Arc::new(principal))?
            .with_endpoint_overrides(|k| std::env::var(k).ok())?;
        let os = client.object_storage();
        let namespace = match &config.namespace {
            Some(n) => n.clone(),
            None => os
                .namespace()
                .await
                .context("asking Object Storage for the namespace")?,
        };
        match os.get_bucket(&namespace, &config.bucket).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(actionable(
                    format!(
                        "the bucket `{}` does not exist in namespace {namespace} (or this instance may not read it)",
                        config.bucket
                    ),
                    "check CALOPS_BUCKET in /etc/calops/agent.env against the stack's [storage] bucket_name, and that the stack was applied (its policy lets the compartment's instances read that bucket)",
                ))
            }
            Err(e) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("reading the bucket `{}`", config.bucket)))
            }
        }
        let client = Arc::new(client);
        let store = OciStore::new(client.clone(), namespace.clone(), config.bucket.clone());
        Ok(Agent {
            config,
            client,
            store,
            namespace,
        })
    }

    /// Poll until stopped (SIGTERM/SIGINT), or once with `--once`. A failed poll is reported
    /// and retried at the next interval; with `--once` it is the error.
    pub async fn run(&self, ui: &Ui) -> Result<Option<Report>> {
        let interrupt = Interrupt::default();
        interrupt.install();
        loop {
            let polled = self.poll(ui, interrupt.clone()).await;
            // Requests wait for the desired release (never a backup beside a switch).
            match self.serve_requests(ui).await {
                Ok(done) => {
                    for r in done {
                        ui.note(format!(
                            "calops agent: request {} ({}): {:?}{}",
                            r.id,
                            r.kind.as_deref().unwrap_or("unreadable"),
                            r.outcome,
                            r.error.map(|e| format!(": {e}")).unwrap_or_default()
                        ));
                    }
                }
                Err(e) => ui.warn(format!("calops agent: requests: {e:#}")),
            }
            match polled {
                Ok(r) if self.config.once => return Ok(r),
                Err(e) if self.config.once => return Err(e),
                Ok(Some(r)) => ui.note(format!("calops agent: desired {}: {}", r.id, r.summary())),
                Ok(None) => {}
                Err(e) => ui.warn(format!("calops agent: {e:#}")),
            }
            if self.updated_itself(ui) {
                return Ok(None);
            }
            if interrupt.raised() {
                return Ok(None);
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.interval) => {}
                _ = interrupt.wait() => return Ok(None),
            }
        }
    }

    /// One poll: the report written, or `None` when there was nothing to do.
    pub async fn poll(&self, ui: &Ui, interrupt: Interrupt) -> Result<Option<Report>> {
        let Some((body, _)) = self.store.get(objects::DESIRED).await? else {
            return Ok(None);
        };
        let desired: Desired = serde_json::from_slice(&body).map_err(|e| {
            actionable(
                format!(
                    "{} is not a desired release document: {e}",
                    objects::DESIRED
                ),
                "deploy again with `calops deploy` (it rewrites the document)",
            )
        })?;
        let report_key = objects::report_key(&desired.id);
        if self.store.get(&report_key).await?.is_some() {
            return Ok(None);
        }
        let received_at = Timestamp::now();
        let (outcome, reason, serving) = self.take(&desired, ui, interrupt).await;
        let report = Report {
            id: desired.id.clone(),
            seq: desired.seq,
            digest: desired.digest.clone(),
            outcome,
            reason,
            received_at,
            finished_at: Timestamp::now(),
            agent: crate::deploy::lock::whoami(),
            serving,
        };
        self.store
            .put(&report_key, &serde_json::to_vec_pretty(&report)?)
            .await
            .with_context(|| format!("writing the report {report_key}"))?;
        Ok(Some(report))
    }

    /// After a switch: put the release that runs now in place of the agent's binary. True when
    /// it changed (the caller exits; systemd starts the new agent).
    fn updated_itself(&self, ui: &Ui) -> bool {
        let (Some(agent), Some(digest)) = (&self.config.self_update, self.serving()) else {
            return false;
        };
        let release = self
            .local_root()
            .join("releases")
            .join(digest.trim_start_matches("sha256:"))
            .join("calops");
        match update_agent_binary(&release, agent) {
            Ok(true) => {
                ui.note(format!(
                    "calops agent: {} is now release {digest}; exiting so that systemd starts it",
                    agent.display()
                ));
                true
            }
            Ok(false) => false,
            Err(e) => {
                ui.warn(format!("calops agent: could not update itself: {e:#}"));
                false
            }
        }
    }

    /// Where the profile files of the release taken last are.
    fn profile_dir(&self) -> PathBuf {
        self.local_root().join("agent").join("profile")
    }

    /// The VM's local target, with the profile of the release taken last and the bucket as its
    /// archive.
    fn local_target(&self) -> Result<LocalTarget> {
        let dir = self.profile_dir();
        if !dir.is_dir() {
            return Err(actionable(
                "no release was ever taken on this VM, so there is no database to work on",
                format!(
                    "deploy first: `calops deploy --profile {}`",
                    self.config.profile
                ),
            ));
        }
        // The VM's own settings: where the service listens ([local]); nothing else of the
        // operator's profile is overridden here.
        let local_only = crate::profile::env_overrides(std::env::vars())
            .into_iter()
            .filter(|o| o.section.as_deref() == Some("local"))
            .collect();
        let profile = crate::profile::load_with(&self.config.profile, &[dir], local_only)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .profile;
        let mut target = LocalTarget::new(profile, &self.config.workdir)?;
        target.backup_store = Some(backup_store_url(&self.namespace, &self.config.bucket));
        Ok(target)
    }

    /// The cluster's archive in the bucket, with the agent's own client (its token).
    fn backup_store(&self) -> AnyStore {
        AnyStore::Oci(OciBackupStore::new(
            self.client.clone(),
            &self.namespace,
            &self.config.bucket,
            BACKUP_PREFIX,
        ))
    }

    /// Requests without a result, oldest first.
    async fn pending_requests(&self) -> Result<Vec<String>> {
        let keys = self.store.list(objects::REQUESTS).await?;
        let answered: std::collections::BTreeSet<&str> = keys
            .iter()
            .filter_map(|k| {
                k.strip_prefix(objects::REQUESTS)?
                    .strip_suffix(".result.json")
            })
            .collect();
        let mut ids: Vec<String> = keys
            .iter()
            .filter_map(|k| objects::request_id(k))
            .filter(|id| !answered.contains(id))
            .map(String::from)
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Claim request `id` with its start marker: false when another live agent has it.
    async fn claim(&self, id: &str, started_at: Timestamp) -> Result<bool> {
        let marker = Started {
            id: id.to_string(),
            started_at,
            agent: crate::deploy::lock::whoami(),
            pid: std::process::id(),
        };
        let body = serde_json::to_vec_pretty(&marker)?;
        let key = objects::started_key(id);
        match self.store.create(&key, &body).await {
            Ok(_) => return Ok(true),
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
        // Taken before: by an agent of this host that is gone (killed mid-job), take it over.
        let Some((old, etag)) = self.store.get(&key).await? else {
            return Ok(false);
        };
        let Ok(old) = serde_json::from_slice::<Started>(&old) else {
            return Ok(false);
        };
        let same_host = old.agent.split('@').nth(1) == marker.agent.split('@').nth(1);
        let gone =
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(old.pid as i32), None).is_err();
        if !(same_host && gone) {
            return Ok(false);
        }
        match self.store.replace(&key, &body, &etag).await {
            Ok(_) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Run every pending request, one at a time (never two jobs on the cluster at once); the
    /// results written.
    pub async fn serve_requests(&self, ui: &Ui) -> Result<Vec<RequestResult>> {
        let mut done = Vec::new();
        for id in self.pending_requests().await? {
            done.extend(self.serve_request(&id, ui).await?);
        }
        Ok(done)
    }

    /// Claim, run and answer request `id`; `None` when another agent has it.
    async fn serve_request(&self, id: &str, ui: &Ui) -> Result<Option<RequestResult>> {
        let started_at = Timestamp::now();
        if !self.claim(id, started_at).await? {
            return Ok(None);
        }
        let parsed = match self.store.get(&objects::request_key(id)).await? {
            Some((b, _)) => Request::parse(id, &b),
            None => Err(format!("{} disappeared", objects::request_key(id))),
        };
        let kind = parsed.as_ref().ok().map(|r| r.job.kind().to_string());
        let outcome = match parsed {
            Ok(r) => self.run_job(&r.job, ui).await.map_err(|e| format!("{e:#}")),
            Err(why) => Err(why),
        };
        let (outcome, error, text, detail) = match outcome {
            Ok((doc, text)) => (RequestOutcome::Ok, None, text, doc),
            Err(e) => (
                RequestOutcome::Failed,
                Some(e.clone()),
                format!("{e}\n"),
                serde_json::Value::Null,
            ),
        };
        let result = RequestResult {
            id: id.to_string(),
            kind,
            outcome,
            error,
            text,
            detail,
            started_at,
            finished_at: Timestamp::now(),
            agent: crate::deploy::lock::whoami(),
        };
        let key = objects::result_key(id);
        self.store
            .put(&key, &serde_json::to_vec_pretty(&result)?)
            .await
            .with_context(|| format!("writing the result {key}"))?;
        Ok(Some(result))
    }

    /// One job on the VM's cluster, with the local target's code and the bucket's archive.
    async fn run_job(&self, job: &Job, ui: &Ui) -> Result<(serde_json::Value, String)> {
        let target = self.local_target()?;
        (self.config.run_job)(job, target, self.backup_store(), ui).await
    }

    fn local_root(&self) -> PathBuf {
        self.config
            .workdir
            .join(".calops")
            .join(&self.config.profile)
    }

    /// What runs now on this VM (the local target's record), for reports.
    fn serving(&self) -> Option<String> {
        let path = self.local_root().join("run").join("current.json");
        let text = std::fs::read_to_string(path).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["digest"].as_str().map(String::from)
    }

    /// Check, download and switch to `desired`: the outcome, why, and what serves after.
    async fn take(
        &self,
        desired: &Desired,
        ui: &Ui,
        interrupt: Interrupt,
    ) -> (ReportOutcome, Option<String>, Option<String>) {
        let refused = |why: String| (ReportOutcome::Refused, Some(why), self.serving());
        let problems = desired.problems();
        if !problems.is_empty() {
            return refused(format!(
                "{} is unusable: {}",
                objects::DESIRED,
                problems.join("; ")
            ));
        }
        if desired.profile != self.config.profile {
            return refused(format!(
                "desired.json is for profile `{}`, this agent runs `{}`",
                desired.profile, self.config.profile
            ));
        }
        let key = objects::release_key(&desired.digest);
        let bytes = match self.store.get(&key).await {
            Ok(Some((b, _))) => b,
            Ok(None) => return refused(format!("the binary {key} is not in the bucket")),
            Err(e) => {
                return (
                    ReportOutcome::Failed,
                    Some(format!("downloading {key}: {e}")),
                    self.serving(),
                )
            }
        };
        if let Err(why) = desired.check_binary(&bytes) {
            return refused(why);
        }
        match self.switch(desired, &bytes, ui, interrupt).await {
            Ok(()) => (ReportOutcome::Switched, None, self.serving()),
            Err(e) => {
                let (outcome, reason) = match e.downcast_ref::<ExitWithDoc>() {
                    Some(d) if d.doc["result"] == "rolled_back" => {
                        (ReportOutcome::RolledBack, d.message.clone())
                    }
                    Some(d) => (ReportOutcome::Failed, d.message.clone()),
                    None => (ReportOutcome::Failed, format!("{e:#}")),
                };
                // Nothing serving before means nothing to roll back to.
                let serving = self.serving();
                let outcome = if outcome == ReportOutcome::RolledBack && serving.is_none() {
                    ReportOutcome::Failed
                } else {
                    outcome
                };
                (outcome, Some(reason), serving)
            }
        }
    }

    /// The local target's release pipeline with the downloaded binary.
    async fn switch(
        &self,
        desired: &Desired,
        bytes: &[u8],
        ui: &Ui,
        interrupt: Interrupt,
    ) -> Result<()> {
        let agent_dir = self.local_root().join("agent");
        let binary = agent_dir
            .join("incoming")
            .join(desired.digest.trim_start_matches("sha256:"));
        crate::fsutil::write_atomic(&binary, bytes)?;
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755))?;
        let profile_dir = self.profile_dir();
        let _ = std::fs::remove_dir_all(&profile_dir);
        for f in &desired.profile_files {
            crate::fsutil::write_atomic(&profile_dir.join(&f.name), f.text.as_bytes())?;
        }
        let mut target = self
            .local_target()
            .map_err(|e| anyhow::anyhow!("the desired release's profile: {e:#}"))?;
        target.source_binary = binary.clone();
        let state = local_state(&target);
        release_dead_lock(&state, ui).await?;
        let opts = Options {
            auto_rollback: true,
            message: format!(
                "calops agent: desired {} (release #{})",
                desired.id, desired.seq
            ),
            lock_lease: LOCK_LEASE,
            profile_hash: target.profile.hash(),
        };
        let r = pipeline::run(
            &mut target,
            pipeline::Records {
                store: state.store.clone(),
                lock_key: &state.lock_key,
                ledger_prefix: &state.ledger_prefix,
            },
            &opts,
            None,
            ui,
            interrupt,
        )
        .await;
        let _ = std::fs::remove_file(&binary);
        r.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_binary_is_replaced_only_by_a_different_release() {
        let d = tempfile::tempdir().unwrap();
        let (agent, release) = (d.path().join("calops"), d.path().join("release"));
        std::fs::write(&agent, b"agent one").unwrap();
        std::fs::write(&release, b"agent one").unwrap();
        assert!(!update_agent_binary(&release, &agent).unwrap());
        std::fs::write(&release, b"agent two").unwrap();
        assert!(update_agent_binary(&release, &agent).unwrap());
        assert_eq!(std::fs::read(&agent).unwrap(), b"agent two");
        let mode = std::fs::metadata(&agent).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        assert!(!d.path().join("calops.new").exists());
        assert!(!update_agent_binary(&release, &agent).unwrap());
    }
}
