//! A profile's deployment: its target (this machine, or OCI) and the state store that holds its
//! deploy lock and release records. The release commands open one here and run the pipeline
//! once, instead of each branching on the profile's target.

use super::ledger::{pick_rollback, Ledger, Release};
use super::local::{seed, target::LocalTarget};
use super::lock::DeployLock;
use super::oci::setup as oci_setup;
use super::oci::target::OciTarget;
use super::ocistore::OciStore;
use super::pipeline::{self, Options, RunResult};
use super::steps::Interrupt;
use super::store::{Etag, FsStore, ObjectStore, StoreError};
use super::vm::target::{BinarySource, VmTarget};
use crate::error::actionable;
use crate::profile::{self, Profile};
use crate::ui::Ui;
use std::time::Duration;

/// How long a deploy lock lasts without renewal.
pub const LOCK_LEASE: Duration = Duration::from_secs(60);
/// The local target's lock, in its state directory.
const LOCAL_LOCK_KEY: &str = "lock.json";

/// A state store of either target: files on this machine, or the OCI state bucket.
#[derive(Clone)]
pub enum StateStore {
    Local(FsStore),
    Oci(OciStore),
}

impl ObjectStore for StateStore {
    async fn create(&self, key: &str, body: &[u8]) -> Result<Etag, StoreError> {
        match self {
            StateStore::Local(s) => s.create(key, body).await,
            StateStore::Oci(s) => s.create(key, body).await,
        }
    }

    async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, Etag)>, StoreError> {
        match self {
            StateStore::Local(s) => s.get(key).await,
            StateStore::Oci(s) => s.get(key).await,
        }
    }

    async fn replace(&self, key: &str, body: &[u8], etag: &Etag) -> Result<Etag, StoreError> {
        match self {
            StateStore::Local(s) => s.replace(key, body, etag).await,
            StateStore::Oci(s) => s.replace(key, body, etag).await,
        }
    }

    async fn put(&self, key: &str, body: &[u8]) -> Result<Etag, StoreError> {
        match self {
            StateStore::Local(s) => s.put(key, body).await,
            StateStore::Oci(s) => s.put(key, body).await,
        }
    }

    async fn delete(&self, key: &str, etag: &Etag) -> Result<(), StoreError> {
        match self {
            StateStore::Local(s) => s.delete(key, etag).await,
            StateStore::Oci(s) => s.delete(key, etag).await,
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        match self {
            StateStore::Local(s) => s.list(prefix).await,
            StateStore::Oci(s) => s.list(prefix).await,
        }
    }
}

/// Where a profile's deploy lock and release records live.
pub struct State {
    pub store: StateStore,
    pub lock_key: String,
    pub ledger_prefix: String,
}

impl State {
    pub fn ledger(&self) -> Ledger<StateStore> {
        Ledger::new(self.store.clone(), self.ledger_prefix.clone())
    }

    pub fn lock(&self) -> DeployLock<StateStore> {
        DeployLock::new(self.store.clone(), self.lock_key.clone(), LOCK_LEASE)
    }

    /// The release a rollback goes to: `--to SEQ`, else the newest earlier success that differs
    /// from what runs now ([`pick_rollback`]).
    pub async fn rollback_choice(&self, to: Option<u64>) -> anyhow::Result<Release> {
        let ledger = self.ledger();
        let all = ledger.list().await?;
        let current = ledger.current().await?;
        pick_rollback(&all, current.as_ref(), to)
    }
}

/// The local target's state store (also the VM agent's, on the VM).
pub fn local_state(target: &LocalTarget) -> State {
    State {
        store: StateStore::Local(FsStore::new(target.layout.state())),
        lock_key: LOCAL_LOCK_KEY.into(),
        ledger_prefix: String::new(),
    }
}

/// The local target of a profile; `destroy` is the one command without an OCI counterpart.
pub fn open_local(profile: Profile) -> anyhow::Result<(LocalTarget, State)> {
    if profile.target != profile::Target::Local {
        return Err(actionable(
            format!("profile `{}` has target = \"{}\": `calops destroy` removes local deployments only", profile.name, profile.target.name()),
            format!("to remove the OCI stack, run `terraform destroy` in .calops/{}/terraform (the database and bucket are protected: review the plan)", profile.name),
        ));
    }
    let cwd = std::env::current_dir()?;
    let t = LocalTarget::new(profile, &cwd)?;
    let state = local_state(&t);
    Ok((t, state))
}

/// The state store of a profile, for the commands that only read or unlock it (`releases`,
/// `lock`, `status`). For OCI, this finds (or creates) the state bucket.
pub async fn open_state(profile: &Profile) -> anyhow::Result<State> {
    match profile.target {
        profile::Target::Oci | profile::Target::OciVm => {
            let s = oci_setup::state_store(profile).await?;
            Ok(State {
                store: StateStore::Oci(s.store),
                lock_key: s.lock_key,
                ledger_prefix: s.ledger_prefix,
            })
        }
        profile::Target::Local => Ok(open_local(profile.clone())?.1),
    }
}

/// What a deploy puts in place.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// This source (local: this calops binary; OCI: built and pushed; VM: cross-built for
    /// arm64), or the pinned `image` (OCI only), or the `binary` file (VM only).
    Current {
        image: Option<&'a str>,
        binary: Option<&'a std::path::Path>,
    },
    /// An earlier release (chosen with [`State::rollback_choice`]).
    Rollback,
}

/// A profile's target.
pub enum Target {
    Local(Box<LocalTarget>),
    Oci(Box<OciTarget>),
    Vm(Box<VmTarget>),
}

/// A profile's target and its state store, ready for the pipeline.
pub struct Deployment {
    pub target: Target,
    pub state: State,
}

/// Open the deployment of `profile`. For the local target, a deploy of the current source
/// first checks the prerequisites (`calops doctor`); for OCI, the state bucket is bootstrapped,
/// the backend settings rendered and the target built (see [`oci_setup::prepare`]).
pub async fn open(profile: Profile, source: Source<'_>, ui: &Ui) -> anyhow::Result<Deployment> {
    if profile.target == profile::Target::OciVm {
        return open_vm(profile, source, ui).await;
    }
    if let Source::Current {
        binary: Some(_), ..
    } = source
    {
        return Err(actionable(
            "--binary applies to oci-vm profiles (deploy by pull)",
            "drop --binary: the local target deploys this calops binary, OCI profiles an image",
        ));
    }
    if profile.target == profile::Target::Oci {
        let workdir = std::path::PathBuf::from(".calops")
            .join(&profile.name)
            .join("terraform");
        let (image, rollback) = match source {
            Source::Current { image, .. } => (image, false),
            Source::Rollback => (None, true),
        };
        let p = oci_setup::prepare(&profile, image, rollback, workdir, ui).await?;
        return Ok(Deployment {
            target: Target::Oci(Box::new(p.target)),
            state: State {
                store: StateStore::Oci(p.state.store),
                lock_key: p.state.lock_key,
                ledger_prefix: p.state.ledger_prefix,
            },
        });
    }
    if let Source::Current { image, .. } = source {
        if image.is_some() {
            return Err(actionable(
                "--image applies to OCI profiles; the local target deploys this calops binary",
                "drop --image, or deploy an OCI profile",
            ));
        }
        check_prerequisites(&profile)?;
    }
    let (target, state) = open_local(profile)?;
    Ok(Deployment {
        target: Target::Local(Box::new(target)),
        state,
    })
}

/// The `oci-vm` deployment: the state bucket's lock and ledger (as for OCI), and the release
/// put in the stack's bucket for the agent on the VM.
async fn open_vm(profile: Profile, source: Source<'_>, ui: &Ui) -> anyhow::Result<Deployment> {
    let binary = match source {
        Source::Current { image: Some(_), .. } => return Err(actionable(
            "--image applies to `oci` profiles; an oci-vm profile deploys the calops binary itself",
            "drop --image; pass --binary PATH (a linux/arm64 calops) or let calops cross-build it",
        )),
        Source::Current { binary, .. } => binary,
        Source::Rollback => None,
    };
    let bin = match binary {
        Some(p) => BinarySource::File(p.to_path_buf()),
        None => BinarySource::Build(std::env::current_dir()?),
    };
    let s = oci_setup::state_store(&profile).await?;
    if s.location.created {
        ui.note(format!(
            "created the private, versioned state bucket `{}` in namespace {}",
            s.location.bucket, s.location.namespace
        ));
    }
    let dkim = crate::deploy::vm::target::mail_dkim_cname(&profile, &s.store, ui).await;
    let mut target = VmTarget::new(
        profile,
        s.client.clone(),
        s.location.namespace.clone(),
        bin,
        ui.clone(),
    )?;
    target.mail_dkim_cname = dkim;
    Ok(Deployment {
        target: Target::Vm(Box::new(target)),
        state: State {
            store: StateStore::Oci(s.store),
            lock_key: s.lock_key,
            ledger_prefix: s.ledger_prefix,
        },
    })
}

/// The local target's prerequisites, all at once.
fn check_prerequisites(profile: &Profile) -> anyhow::Result<()> {
    let report = crate::doctor::checks::run(Some(profile));
    if report.passed() {
        return Ok(());
    }
    let failed: Vec<String> = report
        .checks
        .iter()
        .filter(|c| c.required && c.status == crate::doctor::Status::Fail)
        .map(|c| {
            format!(
                "{}: {} (fix: {})",
                c.name,
                c.detail,
                c.fix.clone().unwrap_or_default()
            )
        })
        .collect();
    Err(actionable(
        format!("prerequisites missing:\n  {}", failed.join("\n  ")),
        "fix them, then run `calops doctor --profile ...` to check",
    ))
}

impl Deployment {
    /// The release pipeline (deploy, or rollback to `rollback_to`) on this deployment's target,
    /// under its lock, recorded in its ledger. Ctrl-C is handled from here on.
    pub async fn run(
        &mut self,
        opts: &Options,
        rollback_to: Option<&Release>,
        ui: &Ui,
    ) -> anyhow::Result<RunResult> {
        let interrupt = Interrupt::default();
        interrupt.install();
        match &mut self.target {
            Target::Local(t) => {
                run_on(t.as_mut(), &self.state, opts, rollback_to, ui, interrupt).await
            }
            Target::Oci(t) => {
                run_on(t.as_mut(), &self.state, opts, rollback_to, ui, interrupt).await
            }
            Target::Vm(t) => {
                run_on(t.as_mut(), &self.state, opts, rollback_to, ui, interrupt).await
            }
        }
    }

    /// Where users reach the service after `r`.
    pub fn url(&self, r: &RunResult) -> String {
        match &self.target {
            Target::Local(t) => t.public_url(),
            Target::Vm(t) => t.health_url().to_string(),
            Target::Oci(_) => r
                .release
                .as_ref()
                .and_then(|rel| rel.details.get("url"))
                .and_then(|u| u.as_str())
                .unwrap_or_default()
                .to_string(),
        }
    }

    /// The local demo organization (created on the first deploy, its API key shown once);
    /// `None` on OCI.
    pub async fn demo(&self, url: &str) -> anyhow::Result<Option<seed::Demo>> {
        let Target::Local(target) = &self.target else {
            return Ok(None);
        };
        if let Some(d) = seed::existing(&target.layout, url) {
            return Ok(Some(d));
        }
        let Some(c) = target.current() else {
            return Ok(None);
        };
        let admin = super::local::target::stored_secret(&target.layout.secret("admin-token"))?;
        seed::ensure(
            &target.layout,
            &format!("http://127.0.0.1:{}", c.private_port),
            url,
            &admin,
        )
        .await
    }
}

/// The pipeline on `target`, with `state`'s lock and ledger.
async fn run_on<T: pipeline::Target>(
    target: &mut T,
    state: &State,
    opts: &Options,
    rollback_to: Option<&Release>,
    ui: &Ui,
    interrupt: Interrupt,
) -> anyhow::Result<RunResult> {
    pipeline::run(
        target,
        pipeline::Records {
            store: state.store.clone(),
            lock_key: &state.lock_key,
            ledger_prefix: &state.ledger_prefix,
        },
        opts,
        rollback_to,
        ui,
        interrupt,
    )
    .await
}

/// Release the local deploy lock when its holder was an agent killed on this host.
pub async fn release_dead_lock(state: &State, ui: &crate::ui::Ui) -> anyhow::Result<()> {
    let lock = state.lock();
    if let Ok(Some(info)) = lock.status().await {
        if info.holder_dead_here() {
            ui.warn(format!(
                "releasing the local deploy lock of pid {} (gone)",
                info.pid
            ));
            lock.force_release().await?;
        }
    }
    Ok(())
}
