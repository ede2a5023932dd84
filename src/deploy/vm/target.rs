//! The operator's side of deploy by pull: the `oci-vm` target of the release pipeline.
//!
//! - build: the arm64 binary (cross-built like the image's, or `--binary`), uploaded to the
//!   stack's bucket by digest (skipped when that object is already there);
//! - start: write `desired.json` (with its etag as precondition) naming it;
//! - verify: wait for the agent's report on exactly that document, then for `/health` through
//!   the load balancer (`CALOPS_HEALTH_URL`, else `https://<[load_balancer] hostname>`);
//! - switch: nothing left to do (the agent switched on the VM with the local target's
//!   verified switch);
//! - discard (a failed report or health): write the previous desired release again, which the
//!   agent switches back to (or finds still serving), and wait for its report.
//!
//! Lock and ledger are the OCI target's, in the state bucket, run by the same pipeline.

use super::objects::{self, Desired, ProfileFile, Report, ReportOutcome};
use crate::deploy::ledger::Release;
use crate::deploy::oci::stack::{DnsRecord, StackOutputs};
use crate::deploy::ocistore::OciStore;
use crate::deploy::pipeline::{Artifact, Target, VerifyFailure};
use crate::deploy::steps::Steps;
use crate::deploy::store::{Etag, ObjectStore, StoreError};
use crate::error::actionable;
use crate::oci::client::OciClient;
use crate::oci::objectstorage::PutCondition;
use crate::profile::Profile;
use crate::ui::Ui;
use anyhow::{Context, Result};
use jiff::Timestamp;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where the binary comes from.
#[derive(Debug, Clone)]
pub enum BinarySource {
    /// This file (`calops deploy --binary PATH`).
    File(PathBuf),
    /// Cross-build calops for linux/arm64 from the sources in this directory.
    Build(PathBuf),
}

/// A desired release written, waiting for the agent.
pub struct Candidate {
    desired: Desired,
    previous: Option<Desired>,
    etag: Etag,
}

pub struct VmTarget {
    profile: Profile,
    client: Arc<OciClient>,
    namespace: String,
    bucket: String,
    store: OciStore,
    source: BinarySource,
    health_url: String,
    profile_files: Vec<ProfileFile>,
    /// How often the agent's report is looked for.
    pub poll: Duration,
    last_report: Option<Report>,
    /// The DKIM record the mail sender's domain must publish (the stack's `mail_dkim_cname`
    /// output, from its Terraform state), printed with the release.
    pub mail_dkim_cname: Option<DnsRecord>,
    ui: Ui,
}

/// The profile's files (it and what it extends), as the agent will read them.
pub fn profile_files(profile: &Profile) -> Result<Vec<ProfileFile>> {
    profile
        .files
        .iter()
        .map(|p| {
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .context("a profile file has no name")?
                .to_string();
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading profile file {}", p.display()))?;
            Ok(ProfileFile { name, text })
        })
        .collect()
}

/// The DKIM record of the `oci-vm` stack that sends mail (`[service] mail_sender`): its
/// `mail_dkim_cname` output, read from the Terraform state in the state bucket (`[state]
/// backend = "oci"`; the operator applies this stack, calops reads it). `None` without a
/// sender, with a local state, or before the stack is applied; a state that cannot be read is
/// a warning, never a failed deploy.
pub async fn mail_dkim_cname(profile: &Profile, state: &OciStore, ui: &Ui) -> Option<DnsRecord> {
    if profile.service.mail_sender.is_none() || profile.state.backend != "oci" {
        return None;
    }
    let key = crate::render::state_key(&profile.state.prefix);
    let read = match state.get(&key).await {
        Ok(Some((body, _))) => StackOutputs::from_state(&body),
        Ok(None) => return None,
        Err(e) => Err(anyhow::anyhow!("{e}")),
    };
    match read {
        Ok(o) => o.mail_dkim_cname,
        Err(e) => {
            ui.warn(format!(
                "could not read the stack's mail_dkim_cname output from the Terraform state ({key}): {e:#}; `terraform output mail_dkim_cname` in the rendered directory shows it"
            ));
            None
        }
    }
}

/// `CALOPS_HEALTH_URL`, else the load balancer's `https://<hostname>`.
pub fn health_url(profile: &Profile) -> Result<String> {
    if let Some(u) = std::env::var("CALOPS_HEALTH_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
    {
        return Ok(u.trim().to_string());
    }
    match &profile.load_balancer.hostname {
        Some(h) => Ok(format!("https://{}", h.as_str())),
        None => Err(actionable(
            format!(
                "profile `{}` has no [load_balancer] hostname, so calops cannot check /health through the load balancer",
                profile.name
            ),
            "set [load_balancer] hostname, or CALOPS_HEALTH_URL=https://<load balancer address>",
        )),
    }
}

impl VmTarget {
    pub fn new(
        profile: Profile,
        client: Arc<OciClient>,
        namespace: String,
        source: BinarySource,
        ui: Ui,
    ) -> Result<VmTarget> {
        let bucket = profile.storage.bucket_name.clone();
        let health_url = health_url(&profile)?;
        let profile_files = profile_files(&profile)?;
        let store = OciStore::new(client.clone(), namespace.clone(), bucket.clone());
        Ok(VmTarget {
            profile,
            client,
            namespace,
            bucket,
            store,
            source,
            health_url,
            profile_files,
            poll: Duration::from_millis(500),
            last_report: None,
            mail_dkim_cname: None,
            ui,
        })
    }

    pub fn health_url(&self) -> &str {
        &self.health_url
    }

    /// The stack's bucket, or a clear error when the stack is not applied.
    async fn check_bucket(&self) -> Result<()> {
        match self
            .client
            .object_storage()
            .get_bucket(&self.namespace, &self.bucket)
            .await?
        {
            Some(_) => Ok(()),
            None => Err(actionable(
                format!(
                    "the stack's bucket `{}` does not exist in namespace {}: deploy by pull puts the release there",
                    self.bucket, self.namespace
                ),
                format!(
                    "apply the stack first (`calops render --profile {}`, then `terraform apply` in the rendered directory), or fix [storage] bucket_name",
                    self.profile.name
                ),
            )),
        }
    }

    /// The binary to deploy: given, or cross-built for linux/arm64.
    async fn binary(&self, steps: &mut Steps<'_>) -> Result<PathBuf> {
        match &self.source {
            BinarySource::File(p) => {
                anyhow::ensure!(p.is_file(), "--binary {} does not exist", p.display());
                Ok(p.clone())
            }
            BinarySource::Build(dir) => {
                let mut o = crate::deploy::oci::setup::build_options(&self.profile, dir)?;
                o.platforms = vec!["linux/arm64".parse().map_err(|e| anyhow::anyhow!("{e}"))?];
                let plans = crate::image::pipeline::plan_builds(&o)?;
                let (_, cmd, how) = plans.into_iter().next().context("no build planned")?;
                let cmd = cmd.context("no cargo command for linux/arm64")?;
                let built = steps
                    .run(
                        "build",
                        &format!("cross-building calops for linux/arm64 ({how})"),
                        Duration::from_secs(3600),
                        async move {
                            tokio::task::spawn_blocking(move || {
                                crate::image::toolchain::run_cargo(&cmd)
                            })
                            .await?
                        },
                    )
                    .await?;
                Ok(built)
            }
        }
    }

    async fn desired(&self) -> Result<Option<(Desired, Etag)>> {
        match self.store.get(objects::DESIRED).await? {
            None => Ok(None),
            Some((b, etag)) => {
                let d = serde_json::from_slice(&b).with_context(|| {
                    format!(
                        "{} in bucket {} is unreadable",
                        objects::DESIRED,
                        self.bucket
                    )
                })?;
                Ok(Some((d, etag)))
            }
        }
    }

    async fn report(&self, id: &str) -> Result<Option<Report>> {
        match self.store.get(&objects::report_key(id)).await? {
            None => Ok(None),
            Some((b, _)) => Ok(Some(serde_json::from_slice(&b).with_context(|| {
                format!("the report {} is unreadable", objects::report_key(id))
            })?)),
        }
    }

    /// Write `desired` over the document with `etag` (none: create it).
    async fn write_desired(&self, desired: &Desired, etag: Option<&Etag>) -> Result<Etag> {
        let body = serde_json::to_vec_pretty(desired)?;
        let r = match etag {
            Some(e) => self.store.replace(objects::DESIRED, &body, e).await,
            None => self.store.create(objects::DESIRED, &body).await,
        };
        r.map_err(|e| match e {
            StoreError::Conflict(why) => actionable(
                format!(
                    "{} changed while this deploy wrote it ({why})",
                    objects::DESIRED
                ),
                "another deploy wrote it meanwhile: check `calops releases` and deploy again",
            ),
            other => anyhow::Error::new(other),
        })
    }

    /// Wait for the agent's report on `id`.
    async fn wait_report(&self, id: &str) -> Result<Report> {
        loop {
            if let Some(r) = self.report(id).await? {
                return Ok(r);
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// Wait until `/health` answers 2xx through the load balancer.
    async fn wait_health(&self) -> Result<(), String> {
        let http = crate::deploy::oci::watch::health_client();
        loop {
            match crate::deploy::oci::watch::get_health(&http, &self.health_url).await {
                Ok(a) if (200..300).contains(&a.status) => return Ok(()),
                _ => tokio::time::sleep(self.poll).await,
            }
        }
    }

    async fn object_size(&self, digest: &str) -> Option<u64> {
        self.client
            .object_storage()
            .head_object(&self.namespace, &self.bucket, &objects::release_key(digest))
            .await
            .ok()
            .flatten()
            .map(|m| m.content_length.unwrap_or(0))
    }
}

impl Target for VmTarget {
    type Candidate = Candidate;

    async fn build(&mut self, steps: &mut Steps<'_>) -> Result<(Artifact, bool)> {
        self.check_bucket().await?;
        let path = self.binary(steps).await?;
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let digest = objects::digest_of(&bytes);
        let artifact = Artifact {
            digest: digest.clone(),
            location: objects::release_key(&digest),
        };
        if self.object_size(&digest).await == Some(bytes.len() as u64) {
            return Ok((artifact, true));
        }
        let (client, ns, bucket, key) = (
            self.client.clone(),
            self.namespace.clone(),
            self.bucket.clone(),
            artifact.location.clone(),
        );
        let size = bytes.len();
        steps
            .run(
                "upload",
                &format!("uploading the binary ({size} bytes) to {bucket}/{key}"),
                Duration::from_secs(1800),
                async move {
                    client
                        .object_storage()
                        .put_object(
                            &ns,
                            &bucket,
                            &key,
                            bytes,
                            PutCondition::Any,
                            Some("application/octet-stream"),
                        )
                        .await
                        .map_err(anyhow::Error::new)
                },
            )
            .await?;
        Ok((artifact, false))
    }

    fn inputs(&self) -> serde_json::Value {
        serde_json::json!({ "profile_files": self.profile_files })
    }

    fn restore_inputs(&mut self, inputs: &serde_json::Value) -> Result<()> {
        if let Some(files) = inputs.get("profile_files") {
            self.profile_files = serde_json::from_value(files.clone())
                .context("the release's recorded profile files are unreadable")?;
        }
        Ok(())
    }

    async fn provision(&mut self, _steps: &mut Steps<'_>) -> Result<bool> {
        // The stack (VM, bucket, load balancer) is applied with Terraform from `calops render`;
        // a deploy only needs its bucket.
        self.check_bucket().await?;
        Ok(false)
    }

    async fn is_serving(&self, release: &Release) -> bool {
        let Ok(Some((d, _))) = self.desired().await else {
            return false;
        };
        if d.digest != release.artifact_digest || d.profile_files != self.profile_files {
            return false;
        }
        let switched =
            matches!(self.report(&d.id).await, Ok(Some(r)) if r.outcome == ReportOutcome::Switched);
        let http = crate::deploy::oci::watch::health_client();
        switched
            && matches!(crate::deploy::oci::watch::get_health(&http, &self.health_url).await, Ok(a) if (200..300).contains(&a.status))
    }

    async fn artifact_available(&self, release: &Release) -> bool {
        self.object_size(&release.artifact_digest).await.is_some()
    }

    async fn start(&mut self, artifact: &Artifact, release: &Release) -> Result<Candidate> {
        let current = self.desired().await?;
        let size = self.object_size(&artifact.digest).await.unwrap_or(0);
        let desired = Desired {
            id: release.id.clone(),
            seq: release.seq,
            digest: artifact.digest.clone(),
            size,
            profile: self.profile.name.clone(),
            profile_files: self.profile_files.clone(),
            written_at: Timestamp::now(),
            written_by: release.user.clone(),
            reason: match release.restores {
                Some(s) => format!("rollback to release #{s}"),
                None => "deploy".into(),
            },
        };
        let etag = self
            .write_desired(&desired, current.as_ref().map(|(_, e)| e))
            .await?;
        self.ui.detail(format!(
            "wrote {} (id {}); waiting for the agent on the VM",
            objects::DESIRED,
            desired.id
        ));
        Ok(Candidate {
            desired,
            previous: current.map(|(d, _)| d),
            etag,
        })
    }

    async fn verify(&mut self, c: &Candidate, _release: &Release) -> Result<(), VerifyFailure> {
        let fail = |check: String, excerpt: String| VerifyFailure {
            check,
            log_excerpt: excerpt,
        };
        let report = self
            .wait_report(&c.desired.id)
            .await
            .map_err(|e| fail(format!("reading the agent's report: {e:#}"), String::new()))?;
        self.last_report = Some(report.clone());
        if report.outcome != ReportOutcome::Switched {
            let reason = report.reason.clone().unwrap_or_default();
            return Err(fail(
                format!(
                    "the agent on the VM reported `{}` for release #{}",
                    serde_json::to_value(report.outcome)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default(),
                    c.desired.seq
                ),
                reason,
            ));
        }
        if report.serving.as_deref() != Some(c.desired.digest.as_str()) {
            return Err(fail(
                format!(
                    "the agent reported the switch, but {:?} serves, not {}",
                    report.serving, c.desired.digest
                ),
                String::new(),
            ));
        }
        self.wait_health().await.map_err(|e| {
            fail(
                format!(
                    "/health through {} did not answer 2xx: {e}",
                    self.health_url
                ),
                String::new(),
            )
        })
    }

    async fn switch(&mut self, _c: Candidate) -> Result<()> {
        Ok(())
    }

    async fn discard(&mut self, c: Candidate) -> Result<()> {
        let Some(prev) = c.previous else {
            return Ok(());
        };
        let restore = Desired {
            id: format!("{}-restore", c.desired.id),
            written_at: Timestamp::now(),
            written_by: crate::deploy::lock::whoami(),
            reason: format!("restore after release #{} failed", c.desired.seq),
            ..prev
        };
        self.write_desired(&restore, Some(&c.etag)).await?;
        let waited =
            tokio::time::timeout(self.verify_timeout(), self.wait_report(&restore.id)).await;
        match waited {
            Ok(Ok(r)) if r.outcome == ReportOutcome::Switched => Ok(()),
            Ok(Ok(r)) => {
                self.ui.warn(format!(
                    "the agent could not restore release #{}: {:?} {}",
                    restore.seq,
                    r.outcome,
                    r.reason.unwrap_or_default()
                ));
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => {
                self.ui.warn(format!(
                    "no report from the agent on restoring release #{} within {} s",
                    restore.seq,
                    self.verify_timeout().as_secs()
                ));
                Ok(())
            }
        }
    }

    fn details(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("url".into(), self.health_url.clone().into());
        m.insert("bucket".into(), self.bucket.clone().into());
        if let Some(r) = &self.last_report {
            m.insert(
                "agent_report".into(),
                serde_json::to_value(r).unwrap_or_default(),
            );
        }
        if let Some(r) = &self.mail_dkim_cname {
            m.insert(
                "mail_dkim_cname".into(),
                serde_json::to_value(r).unwrap_or_default(),
            );
        }
        m
    }

    fn verify_timeout(&self) -> Duration {
        Duration::from_secs(self.profile.deploy.health_timeout_seconds.max(1) as u64)
    }

    fn start_timeout(&self) -> Duration {
        Duration::from_secs(60)
    }
}
