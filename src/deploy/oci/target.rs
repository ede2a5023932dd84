//! The OCI target: blue/green container slots through Terraform, verified through OCI APIs.
//!
//! - provision: apply the stack with the slots as they are (profile changes only; the destroy
//!   guard stops a plan that would delete or replace the database, cache or bucket).
//! - start: the new image goes into the idle slot (`active`) with the profile's current settings
//!   frozen into its record, so only that slot and its backends change — or, for a rollback whose
//!   release still runs in a drained slot, a flip (a load balancer change only).
//! - every apply: the plan guard refuses a plan that would replace or delete the instances or
//!   backends of a slot that stays ([`crate::deploy::slots::kept_slots`]); live slots are given
//!   their recorded settings, so a profile change cannot reach them.
//! - verify: the container instance ACTIVE, its backend OK (signed OCI calls, what is pending
//!   shown on the spinner), then `GET <lb>/health` answering from the new image.
//! - switch: the old slot drains, `/health` must then answer only from the new image, and the
//!   old slot goes `absent` unless the profile keeps the previous release for instant rollback.
//! - discard / interrupt: the slots go back to what they were before, so traffic returns to the
//!   old slot.

use super::registry::manifest_exists;
use super::stack::{image_digest, StackOutputs, StackWriter};
use super::watch::{get_health, health_client, poll_slot, Fatal};
use crate::deploy::ledger::Release;
use crate::deploy::pipeline::{Artifact, Target, VerifyFailure};
use crate::deploy::slots::{
    kept_slots, plan_abort, plan_deploy, plan_flip, plan_retire, Phase, SlotSpec, SlotState, Slots,
};
use crate::deploy::steps::{StatusLine, Steps};
use crate::image::pipeline::ImageBuildOptions;
use crate::oci::client::OciClient;
use crate::terraform::PlanOptions;
use crate::ui::Ui;
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where the image to deploy comes from.
pub enum ImageSource {
    /// Already pushed, pinned by digest (`--image host/ns/repo@sha256:...`).
    Pinned(String),
    /// Built and pushed from the profile's `[image]` section.
    Build(Box<ImageBuildOptions>),
    /// A rollback: the image recorded with the release rolled back to.
    Recorded,
}

pub struct OciTargetOptions {
    /// The Terraform root module directory (written by the stack writer).
    pub workdir: PathBuf,
    pub plan: PlanOptions,
    pub image: ImageSource,
    /// Keep the previous release's slot drained (instant rollback) instead of removing it.
    pub keep_previous: bool,
    /// How long a new slot may take to serve (instance ACTIVE, backend OK, /health).
    pub health_timeout: Duration,
    /// How long one Terraform apply may take.
    pub apply_timeout: Duration,
    pub poll_interval: Duration,
    /// Ask this base URL for `/health` instead of the stack's `lb_url` output.
    pub health_url: Option<String>,
    /// Consecutive `/health` answers from the new release required once the old one drains.
    pub settle_checks: u32,
    /// How long requests in flight on a drained slot may take before it is removed.
    pub drain_wait: Duration,
}

impl OciTargetOptions {
    pub fn new(workdir: PathBuf, image: ImageSource) -> OciTargetOptions {
        OciTargetOptions {
            workdir,
            plan: PlanOptions::default(),
            image,
            keep_previous: true,
            health_timeout: Duration::from_secs(300),
            apply_timeout: Duration::from_secs(1800),
            poll_interval: Duration::from_secs(5),
            health_url: None,
            settle_checks: 3,
            drain_wait: Duration::from_secs(30),
        }
    }
}

/// Called with the name of each step and apply phase as it begins (progress, tests).
pub type Observer = Arc<dyn Fn(&str) + Send + Sync>;

/// One Terraform run of the target: the phase, the `slots` input, and whether it changed
/// anything.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppliedPhase {
    pub phase: String,
    pub slots: Slots,
    pub changed: bool,
}

pub struct Candidate {
    pub slot: String,
    pub image: String,
    /// The slots before this release changed anything: where an abort returns.
    pub before: Slots,
    /// Phases left for the switch (drain, retire).
    pub rest: Vec<Phase>,
    /// A rollback by a load balancer change only.
    pub flip: bool,
}

struct Shared {
    /// Held while Terraform runs, so a clean-up waits for an apply still in flight.
    gate: tokio::sync::Mutex<()>,
    outputs: Mutex<Option<StackOutputs>>,
    history: Mutex<Vec<AppliedPhase>>,
}

pub struct OciTarget {
    client: Arc<OciClient>,
    stack: Arc<dyn StackWriter>,
    opts: OciTargetOptions,
    ui: Ui,
    /// The pinned image being deployed (from build, or restored for a rollback).
    image: Option<String>,
    /// What the staged slot is made from: the profile's settings, or those recorded with the
    /// release a rollback restores. `None` until build (or restore) sets it.
    spec: Option<SlotSpec>,
    /// The slots found at provision time.
    before: Option<Slots>,
    shared: Arc<Shared>,
    observer: Option<Observer>,
    status: StatusLine,
    http: reqwest::Client,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl OciTarget {
    pub fn new(
        client: Arc<OciClient>,
        stack: Arc<dyn StackWriter>,
        opts: OciTargetOptions,
        ui: Ui,
    ) -> OciTarget {
        let image = match &opts.image {
            ImageSource::Pinned(i) => Some(i.clone()),
            ImageSource::Build(_) | ImageSource::Recorded => None,
        };
        OciTarget {
            client,
            stack,
            opts,
            ui,
            image,
            spec: None,
            before: None,
            shared: Arc::new(Shared {
                gate: tokio::sync::Mutex::new(()),
                outputs: Mutex::new(None),
                history: Mutex::new(Vec::new()),
            }),
            observer: None,
            status: StatusLine::default(),
            http: health_client(),
        }
    }

    pub fn with_observer(mut self, f: Observer) -> OciTarget {
        self.observer = Some(f);
        self
    }

    /// Every Terraform run so far, in order.
    pub fn history(&self) -> Vec<AppliedPhase> {
        lock(&self.shared.history).clone()
    }

    fn notify(&self, what: &str) {
        self.ui.detail(format!("oci: {what}"));
        if let Some(f) = &self.observer {
            f(what);
        }
    }

    fn known(&self) -> Option<StackOutputs> {
        lock(&self.shared.outputs).clone()
    }

    /// Write the stack for `slots`, plan, and apply when something changes (the destroy guard
    /// refuses protected deletions before apply). Runs on a blocking thread that finishes even
    /// when the caller is interrupted; [`Self::settle`] waits for it.
    async fn apply(&self, phase: &str, slots: Slots) -> Result<StackOutputs> {
        self.notify(&format!("apply {phase}"));
        let shared = self.shared.clone();
        let stack = self.stack.clone();
        let dir = self.opts.workdir.clone();
        let mut plan = self.opts.plan.clone();
        // The slots that stay keep their instances and backends: the guard refuses a plan that
        // would replace or delete them.
        let kept = self.kept_instances(&slots);
        let protected: Vec<String> = kept
            .iter()
            .flat_map(|(_, key)| stack.instance_addresses(key))
            .collect();
        plan.guard.protect(&protected);
        let kept_names: Vec<String> = {
            let mut n: Vec<String> = kept.into_iter().map(|(slot, _)| slot).collect();
            n.dedup();
            n
        };
        let status = self.status.clone();
        let phase = phase.to_string();
        let handle = tokio::task::spawn_blocking(move || {
            let _g = shared.gate.blocking_lock();
            stack.write(&dir, &slots)?;
            let out = crate::terraform::apply_if_changed(&dir, &plan, |m| {
                status.set(&format!("terraform ({phase}): {m}"))
            })
            .map_err(|e| {
                let refused = e.to_string().starts_with("refusing:");
                match refused && !kept_names.is_empty() {
                    true => e.context(format!(
                        "slot {} stays live in the {phase} phase: a plan may not replace or delete its container instances or backends (a changed profile setting reaches only the next staged slot; a stack-wide change such as the port or the subnet needs a planned outage)",
                        kept_names.join(" and ")
                    )),
                    false => e,
                }
            })
            .with_context(|| format!("terraform ({phase} phase)"))?;
            let outputs = StackOutputs::parse(&out.outputs)?;
            *lock(&shared.outputs) = Some(outputs.clone());
            lock(&shared.history).push(AppliedPhase {
                phase,
                slots,
                changed: out.applied,
            });
            Ok(outputs)
        });
        handle.await.context("the Terraform task panicked")?
    }

    /// (slot, instance key) of every instance whose slot runs now and stays unchanged in
    /// `next`, from the last outputs read.
    fn kept_instances(&self, next: &Slots) -> Vec<(String, String)> {
        let Some(outputs) = self.known() else {
            return Vec::new();
        };
        let current = outputs.slots();
        kept_slots(&current, next)
            .into_iter()
            .flat_map(|(name, _)| {
                outputs.slots[name]
                    .instances
                    .iter()
                    .map(move |i| (name.to_string(), i.key.clone()))
            })
            .collect()
    }

    /// What the stack runs now, from `terraform output -json` (init first when needed).
    pub async fn read_outputs(&self) -> Result<StackOutputs> {
        let shared = self.shared.clone();
        let stack = self.stack.clone();
        let dir = self.opts.workdir.clone();
        let plan = self.opts.plan.clone();
        tokio::task::spawn_blocking(move || {
            let _g = shared.gate.blocking_lock();
            let has_tf = std::fs::read_dir(&dir)
                .map(|rd| {
                    rd.flatten()
                        .any(|e| e.path().extension().is_some_and(|x| x == "tf"))
                })
                .unwrap_or(false);
            if !has_tf {
                std::fs::create_dir_all(&dir)?;
                stack.write(&dir, &Slots::default())?;
            }
            let driver = crate::terraform::plan::driver_for(&dir, &plan)?;
            if !dir.join(".terraform").is_dir() {
                driver.init(&plan.init, &mut |_| {})?;
            }
            let outputs = StackOutputs::parse(&driver.outputs()?)?;
            *lock(&shared.outputs) = Some(outputs.clone());
            Ok(outputs)
        })
        .await
        .context("the Terraform task panicked")?
    }

    /// Wait for any Terraform run still in flight (after an interrupt).
    async fn settle(&self) {
        drop(self.shared.gate.lock().await);
    }

    fn health_base(&self, outputs: &StackOutputs) -> Result<String> {
        self.opts
            .health_url
            .clone()
            .or_else(|| outputs.lb_url.clone())
            .context("the stack has no `lb_url` output to check /health through")
    }

    /// Poll until `slot` is ready and `/health` answers from `image`; on timeout, say what was
    /// still pending.
    async fn wait_serving(&self, slot: &str, image: &str) -> Result<(), VerifyFailure> {
        let deadline = Instant::now() + self.opts.health_timeout;
        let mut log: Vec<String> = Vec::new();
        let mut last_pending = String::new();
        let fail = |check: String, log: &[String]| VerifyFailure {
            check,
            log_excerpt: log
                .iter()
                .rev()
                .take(20)
                .rev()
                .cloned()
                .collect::<Vec<_>>()
                .join("\n"),
        };
        loop {
            let outputs = match self.known() {
                Some(o) => o,
                None => self
                    .read_outputs()
                    .await
                    .map_err(|e| fail(format!("reading the stack outputs: {e:#}"), &log))?,
            };
            let pending = match poll_slot(&self.client, &outputs, slot).await {
                Ok(p) => p,
                Err(e) if e.downcast_ref::<Fatal>().is_some() => {
                    return Err(fail(format!("slot {slot}: {e}"), &log))
                }
                Err(e) => vec![format!("OCI API: {e:#}")],
            };
            let waiting = if pending.is_empty() {
                let base = self
                    .health_base(&outputs)
                    .map_err(|e| fail(e.to_string(), &log))?;
                match get_health(&self.http, &base).await {
                    Ok(a) if a.from_image(image) => return Ok(()),
                    Ok(a) => format!(
                        "{base}/health answered {} (waiting for {image})",
                        a.describe()
                    ),
                    Err(e) => format!("{e:#}"),
                }
            } else {
                pending.join("; ")
            };
            if waiting != last_pending {
                self.status.set(&waiting);
                self.ui.detail(format!("  pending: {waiting}"));
                log.push(waiting.clone());
                last_pending = waiting.clone();
            }
            if Instant::now() >= deadline {
                return Err(fail(
                    format!(
                        "slot {slot} did not serve {image} within {} s: {waiting}",
                        self.opts.health_timeout.as_secs()
                    ),
                    &log,
                ));
            }
            tokio::time::sleep(self.opts.poll_interval).await;
        }
    }

    /// After the old slot drained: `settle_checks` consecutive `/health` answers from `image`.
    async fn wait_settled(&self, image: &str) -> Result<()> {
        let outputs = self.known().unwrap_or_default();
        let base = self.health_base(&outputs)?;
        let deadline = Instant::now() + self.opts.health_timeout;
        let mut streak = 0;
        loop {
            let last = match get_health(&self.http, &base).await {
                Ok(a) if a.from_image(image) => {
                    streak += 1;
                    if streak >= self.opts.settle_checks.max(1) {
                        return Ok(());
                    }
                    continue;
                }
                Ok(a) => a.describe(),
                Err(e) => format!("{e:#}"),
            };
            streak = 0;
            self.status.set(&format!(
                "waiting for {base}/health to answer only from {image} (last: {last})"
            ));
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "after the old slot drained, {base}/health did not answer from {image} (last answer: {last})"
                );
            }
            tokio::time::sleep(self.opts.poll_interval).await;
        }
    }

    /// Return to `before` (the old slot takes all traffic again; a new slot goes away).
    /// (Planned like every phase: when nothing differs, nothing is applied.)
    async fn restore(&self, before: &Slots, why: &str) -> Result<()> {
        self.notify(why);
        self.apply(why, plan_abort(before)).await.map(|_| ())
    }

    /// Apply a phase that starts the candidate; when it fails, return to `before` (a half-made
    /// slot must not linger, and the old slot keeps the traffic).
    async fn apply_or_restore(&self, phase: &str, slots: Slots, before: &Slots) -> Result<()> {
        if let Err(e) = self.apply(phase, slots).await {
            return Err(match self.restore(before, "abort").await {
                Ok(()) => e.context("the slots went back to their previous state"),
                Err(b) => e.context(format!(
                    "returning the slots to their previous state ALSO failed: {b:#}"
                )),
            });
        }
        Ok(())
    }

    fn image_for(&self, artifact: &Artifact) -> Result<String> {
        if !artifact.location.is_empty() {
            return Ok(artifact.location.clone());
        }
        self.image
            .clone()
            .context("no image reference to deploy (the release record has no `inputs.image`)")
    }
}

/// The image reference recorded for `release`.
fn recorded_image(release: &Release) -> Option<String> {
    release
        .details
        .get("inputs")
        .and_then(|i| i.get("image"))
        .and_then(|v| v.as_str())
        .map(String::from)
}

impl Target for OciTarget {
    type Candidate = Candidate;

    async fn build(&mut self, steps: &mut Steps<'_>) -> Result<(Artifact, bool)> {
        self.notify("build");
        // What the new slot will be made from, fixed before anything runs.
        self.spec = Some(self.stack.next_spec()?);
        match &self.opts.image {
            ImageSource::Pinned(image) => {
                let image = image.clone();
                let digest = image_digest(&image)
                    .filter(|d| d.starts_with("sha256:"))
                    .with_context(|| {
                        format!("--image `{image}` is not pinned by digest (REPOSITORY@sha256:...)")
                    })?
                    .to_string();
                let client = self.client.clone();
                let img = image.clone();
                let found = steps
                    .run(
                        "build",
                        "checking that the registry has the image",
                        Duration::from_secs(60),
                        async move { manifest_exists(&client, &img).await },
                    )
                    .await?;
                if !found {
                    return Err(crate::error::actionable(
                        format!("the registry has no image {image}"),
                        "push it first (`calops image build --push`), or pass the digest `calops image build` printed",
                    ));
                }
                self.image = Some(image.clone());
                Ok((
                    Artifact {
                        digest,
                        location: image,
                    },
                    true,
                ))
            }
            ImageSource::Recorded => Err(crate::error::actionable(
                "no image to deploy: this target was set up for a rollback",
                "pass --image REPOSITORY@sha256:..., or let calops build one",
            )),
            ImageSource::Build(opts) => {
                let opts = (**opts).clone();
                let ui = self.ui.clone();
                let r = steps
                    .run(
                        "build",
                        "building and pushing the multi-arch image",
                        Duration::from_secs(3600),
                        async move { crate::image::pipeline::build_image_async(&opts, &ui).await },
                    )
                    .await?;
                let pinned = r.pinned();
                self.image = Some(pinned.clone());
                Ok((
                    Artifact {
                        digest: r.digest.clone(),
                        location: pinned,
                    },
                    false,
                ))
            }
        }
    }

    /// The image and the settings its slot is made from: a rollback restores both.
    fn inputs(&self) -> serde_json::Value {
        serde_json::json!({ "image": self.image, "spec": self.spec })
    }

    fn restore_inputs(&mut self, inputs: &serde_json::Value) -> Result<()> {
        let image = inputs
            .get("image")
            .and_then(|v| v.as_str())
            .context("the release record has no image reference (inputs.image)")?;
        self.image = Some(image.to_string());
        // A release recorded before slots froze their settings has none: the profile's.
        self.spec = match inputs.get("spec").filter(|v| !v.is_null()) {
            Some(v) => Some(
                serde_json::from_value(v.clone())
                    .context("the release record's inputs.spec is not a slot spec")?,
            ),
            None => Some(self.stack.next_spec()?),
        };
        Ok(())
    }

    async fn provision(&mut self, steps: &mut Steps<'_>) -> Result<bool> {
        self.status = steps.status.clone();
        self.notify("provision");
        let this = &*self;
        let (before, changed) = steps
            .run(
                "provision",
                "applying the profile's infrastructure (slots unchanged)",
                this.opts.apply_timeout,
                async move {
                    let before = this.read_outputs().await?.slots();
                    this.apply("provision", before.clone()).await?;
                    let changed = lock(&this.shared.history)
                        .last()
                        .map(|h| h.changed)
                        .unwrap_or(false);
                    Ok((before, changed))
                },
            )
            .await?;
        self.before = Some(before);
        Ok(changed)
    }

    async fn is_serving(&self, release: &Release) -> bool {
        let Ok(outputs) = self.read_outputs().await else {
            return false;
        };
        let slots = outputs.slots();
        let Some(active) = slots.active() else {
            return false;
        };
        let image = slots.get(active).image.clone().unwrap_or_default();
        if image_digest(&image) != Some(release.artifact_digest.as_str()) {
            return false;
        }
        let Ok(base) = self.health_base(&outputs) else {
            return false;
        };
        matches!(get_health(&self.http, &base).await, Ok(a) if a.from_image(&image))
    }

    async fn artifact_available(&self, release: &Release) -> bool {
        if let Ok(o) = self.read_outputs().await {
            if o.slot_with_digest(&release.artifact_digest).is_some() {
                return true;
            }
        }
        match recorded_image(release) {
            Some(image) => match manifest_exists(&self.client, &image).await {
                Ok(found) => found,
                Err(e) => {
                    self.ui
                        .warn(format!("could not ask the registry for {image}: {e:#}"));
                    false
                }
            },
            None => false,
        }
    }

    async fn start(&mut self, artifact: &Artifact, _release: &Release) -> Result<Candidate> {
        self.notify("start");
        let image = self.image_for(artifact)?;
        let before = match &self.before {
            Some(b) => b.clone(),
            None => self.read_outputs().await?.slots(),
        };
        let spec = match &self.spec {
            Some(s) => s.clone(),
            None => self.stack.next_spec()?,
        };
        // A release that still runs, with the same settings, in a drained slot: flip the load
        // balancer.
        let drained_with_it = before.0.iter().find(|(_, s)| {
            s.state == SlotState::Draining
                && s.image.as_deref().and_then(image_digest) == Some(artifact.digest.as_str())
                && s.spec.as_ref().is_none_or(|have| *have == spec)
        });
        if let (Some((slot, _)), Some(flipped)) = (drained_with_it, plan_flip(&before)) {
            let slot = slot.clone();
            self.ui.note(format!(
                "  release {} still runs in slot {slot}: rolling back by a load balancer change only",
                artifact.digest
            ));
            self.apply_or_restore("flip", flipped.clone(), &before)
                .await?;
            let mut rest = Vec::new();
            if !self.opts.keep_previous {
                if let Some(old) = before.active() {
                    rest.push(Phase {
                        name: "retire",
                        slots: plan_retire(&flipped, old),
                        wait_for: "the old container instances to be deleted",
                    });
                }
            }
            return Ok(Candidate {
                slot,
                image,
                before,
                rest,
                flip: true,
            });
        }
        let mut phases = plan_deploy(&before, &image, Some(spec), self.opts.keep_previous);
        let stage = phases.remove(0);
        let slot = before.idle().to_string();
        self.apply_or_restore(stage.name, stage.slots, &before)
            .await?;
        Ok(Candidate {
            slot,
            image,
            before,
            rest: phases,
            flip: false,
        })
    }

    async fn verify(&mut self, c: &Candidate, _release: &Release) -> Result<(), VerifyFailure> {
        self.notify("verify");
        self.wait_serving(&c.slot, &c.image).await
    }

    async fn switch(&mut self, c: Candidate) -> Result<()> {
        self.notify("switch");
        for phase in &c.rest {
            match phase.name {
                "retire" => {
                    if !self.opts.drain_wait.is_zero() {
                        self.status.set(&format!(
                            "letting requests in flight on the drained slot finish ({} s)",
                            self.opts.drain_wait.as_secs()
                        ));
                        tokio::time::sleep(self.opts.drain_wait).await;
                    }
                    // Traffic is on the new slot already: a failed retire leaves the old slot
                    // drained (the next deploy reuses it), it does not fail the release.
                    if let Err(e) = self.apply(phase.name, phase.slots.clone()).await {
                        self.ui.warn(format!(
                            "the old slot could not be removed ({e:#}); it stays drained and the next deploy reuses it"
                        ));
                    }
                }
                name => {
                    let applied = self.apply(name, phase.slots.clone()).await;
                    let settled = match applied {
                        Ok(_) => self.wait_settled(&c.image).await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = settled {
                        let back = self.restore(&c.before, "abort").await;
                        return Err(match back {
                            Ok(()) => e.context("traffic went back to the previous slot"),
                            Err(b) => e.context(format!(
                                "returning traffic to the previous slot ALSO failed: {b:#}"
                            )),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    async fn discard(&mut self, c: Candidate) -> Result<()> {
        self.notify("discard");
        self.settle().await;
        let r = self.restore(&c.before, "abort").await;
        if let Err(e) = &r {
            self.ui.warn(format!(
                "could not return the slots to their previous state: {e:#}"
            ));
        }
        r
    }

    fn details(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        if let Some(o) = self.known() {
            let slots = o.slots();
            if let Some(a) = slots.active() {
                m.insert("slot".into(), a.into());
            }
            m.insert(
                "slots".into(),
                serde_json::to_value(&slots).unwrap_or_default(),
            );
            if let Some(u) = &o.lb_url {
                m.insert("url".into(), u.clone().into());
            }
            if let Some(r) = &o.mail_dkim_cname {
                m.insert(
                    "mail_dkim_cname".into(),
                    serde_json::to_value(r).unwrap_or_default(),
                );
            }
        }
        if let Some(i) = &self.image {
            m.insert("image".into(), i.clone().into());
        }
        m
    }

    fn verify_timeout(&self) -> Duration {
        // The target stops itself at health_timeout with what was pending; this is a backstop.
        self.opts.health_timeout + Duration::from_secs(30)
    }

    fn start_timeout(&self) -> Duration {
        self.opts.apply_timeout
    }

    async fn clean_up_interrupted(&mut self) {
        self.notify("clean up");
        self.settle().await;
        let Some(before) = self.before.clone() else {
            return;
        };
        let current = match self.read_outputs().await {
            Ok(o) => o.slots(),
            Err(e) => {
                self.ui.warn(format!(
                    "after the interrupt, the stack's state could not be read ({e:#}); check it with `calops status`"
                ));
                return;
            }
        };
        if current == before {
            return;
        }
        // Traffic goes back to the previous release while its slot still runs.
        let old_runs = before.active().is_some_and(|old| {
            let c = current.get(old);
            c.state != SlotState::Absent && c.image == before.get(old).image
        });
        if old_runs || before.active().is_none() {
            self.ui
                .note("  interrupted: returning traffic to the previous slot");
            if let Err(e) = self.restore(&before, "abort").await {
                self.ui.warn(format!(
                    "returning traffic to the previous slot failed: {e:#}; run `calops deploy` or `calops rollback` again"
                ));
            }
        } else {
            self.ui.warn(format!(
                "interrupted after the previous slot was removed: traffic stays on slot {}",
                current.active().unwrap_or("?")
            ));
        }
    }
}
