//! Backups of an `oci-vm` profile's cluster. On the VM, the cluster archives its WAL, and the
//! service takes the nightly base backup, into the stack's bucket under `backups/`, signed as
//! the instance principal (the agent configures it: [`crate::deploy::vm::agent`]). From the
//! operator's machine, `backup list` and `backup verify` read that bucket directly with the
//! profile's API key (the same objects, the same checks as the local target's); `backup now`
//! and `restore` are requests the agent runs on the VM with the local target's own code
//! ([`requests`]; [`run_job`] is what the agent runs for one).

use super::requests::{self, Requests};
use super::{local, Report, Restore};
use crate::backup::pgconf::RecoveryTarget;
use crate::backup::store::{AnyStore, OciBackupStore};
use crate::deploy::local::target::LocalTarget;
use crate::error::actionable;
use crate::profile::Profile;
use crate::pull::{Job, BACKUP_PREFIX};
use crate::ui::Ui;
use std::time::Duration;

/// The VM's backup store, read with the operator's API key.
async fn store(profile: &Profile) -> anyhow::Result<AnyStore> {
    let s = crate::deploy::oci::setup::state_store(profile).await?;
    Ok(AnyStore::Oci(OciBackupStore::new(
        s.client.clone(),
        &s.location.namespace,
        &profile.storage.bucket_name,
        BACKUP_PREFIX,
    )))
}

/// `backup list`: the base backups and archived WAL in the bucket (the archiver's own state is
/// on the VM: `calops status` there, or the archive-lag alarm).
pub async fn list(profile: Profile) -> anyhow::Result<Report> {
    local::list_store(&store(&profile).await?, None).await
}

/// `backup verify`: download and check everything a restore would read, from the bucket.
pub async fn verify(profile: Profile, name: Option<&str>, ui: &Ui) -> anyhow::Result<Report> {
    local::verify_store(&store(&profile).await?, name, ui).await
}

/// `backup now`: a request for a base backup, taken by the agent on the VM; waits up to `wait`.
pub async fn now(profile: Profile, label: &str, wait: Duration, ui: &Ui) -> anyhow::Result<Report> {
    let r = Requests::open(&profile).await?;
    let req = r
        .submit(Job::Backup {
            label: label.to_string(),
        })
        .await?;
    r.wait(&req.id, "base backup", wait, ui).await
}

/// `restore`: a request for a point-in-time restore on the VM, into a new directory there;
/// made live only with `--yes`.
pub async fn restore(profile: Profile, req: &Restore, ui: &Ui) -> anyhow::Result<Report> {
    if let Some(dir) = &req.into {
        return Err(actionable(
            format!(
                "--into {}: on an oci-vm profile the agent restores into a new directory on the VM (.calops/{}/restores/<time>)",
                dir.display(),
                profile.name
            ),
            "leave out --into; the result names the directory",
        ));
    }
    if req.start && !req.yes {
        return Err(actionable(
            "--start would replace the VM's live database (it would be kept aside, not deleted)",
            "add --yes to replace it, or restore without --start to check the copy first",
        ));
    }
    let r = Requests::open(&profile).await?;
    let sent = r
        .submit(Job::Restore {
            to: match req.target {
                RecoveryTarget::Time(t) => Some(t),
                RecoveryTarget::Latest => None,
            },
            backup: req.backup.clone(),
            yes: req.yes,
            timeout_seconds: req.timeout.as_secs().max(1),
        })
        .await?;
    r.wait(&sent.id, "restore", req.wait, ui).await
}

/// `backup wait ID`: the result of an earlier request, waiting up to `wait` for it.
pub async fn wait(profile: Profile, id: &str, wait: Duration, ui: &Ui) -> anyhow::Result<Report> {
    requests::check_id(id)?;
    let r = Requests::open(&profile).await?;
    if !r.exists(id).await? {
        return Err(actionable(
            format!(
                "there is no request {id} in bucket {}",
                profile.storage.bucket_name
            ),
            "use the id `calops backup now` or `calops restore` printed, with the same profile",
        ));
    }
    r.wait(id, "request", wait, ui).await
}

/// On the VM (the agent): run `job` on `target`'s cluster with the local target's own code, on
/// the archive `st` (the bucket); the command's JSON document and text.
pub fn run_job<'a>(
    job: &'a Job,
    target: LocalTarget,
    st: AnyStore,
    ui: &'a Ui,
) -> futures::future::BoxFuture<'a, anyhow::Result<(serde_json::Value, String)>> {
    Box::pin(async move {
        let r = match job {
            Job::Backup { label } => local::now_on(&target, &st, label, ui).await?,
            Job::Restore {
                to,
                backup,
                yes,
                timeout_seconds,
            } => {
                let state = crate::deploy::deployment::local_state(&target);
                crate::deploy::deployment::release_dead_lock(&state, ui).await?;
                let req = Restore {
                    target: match to {
                        Some(t) => RecoveryTarget::Time(*t),
                        None => RecoveryTarget::Latest,
                    },
                    backup: backup.clone(),
                    into: None,
                    start: *yes,
                    yes: *yes,
                    timeout: Duration::from_secs(*timeout_seconds),
                    wait: Duration::ZERO,
                    name: None,
                    no_wait: false,
                    db_system: None,
                    subnet_id: None,
                };
                local::restore_on(target, state, &st, &req, ui).await?
            }
        };
        Ok((r.doc, r.text))
    })
}
