//! Backups of an `oci-vm` profile's cluster. On the VM, the cluster archives its WAL, and the
//! service takes the nightly base backup, into the stack's bucket under `backups/`, signed as
//! the instance principal (the agent configures it: [`crate::deploy::vm::agent`]). From the
//! operator's machine, `backup list` and `backup verify` read that bucket directly with the
//! profile's API key (the same objects, the same checks as the local target's).

use super::{local, Report};
use crate::backup::store::{AnyStore, OciBackupStore};
use crate::deploy::vm::agent::BACKUP_PREFIX;
use crate::profile::Profile;
use crate::ui::Ui;

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
