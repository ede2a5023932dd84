//! `backup now|list|verify` and `restore` on a profile, whatever its target: the local
//! target's own archive ([`local`]: continuous WAL archiving into `.calops/<profile>/objects`,
//! base backups, point-in-time restore into a new cluster), or OCI's managed database
//! ([`managed`]: its own backups, restored into a new DB system), or the VM's archive in its
//! bucket ([`vm`]: `list` and `verify` from here, `now` and `restore` run by the VM's agent). The commands print the
//! [`Report`] these return and branch on nothing.

pub mod local;
pub mod managed;
pub mod requests;
pub mod vm;

use crate::backup::pgconf::RecoveryTarget;
use crate::error::actionable;
use crate::profile::{self, Profile};
use crate::ui::Ui;
use std::path::PathBuf;
use std::time::Duration;

/// What a backup command reports: its JSON document (`--json`) and its human text.
#[derive(Debug)]
pub struct Report {
    pub doc: serde_json::Value,
    pub text: String,
}

/// What `calops restore` asks for.
#[derive(Debug, Clone)]
pub struct Restore {
    pub target: RecoveryTarget,
    /// A base backup's name (local) or a backup's OCID (OCI), instead of the newest that fits.
    pub backup: Option<String>,
    /// Local: the new cluster's directory [default: `.calops/<profile>/restores/<time>`].
    pub into: Option<PathBuf>,
    /// Local: make the restored cluster the live one and start the current release on it.
    pub start: bool,
    /// Local, with `start`: replace the live database (it is moved aside, not deleted).
    pub yes: bool,
    /// Local and VM: how long WAL replay may take.
    pub timeout: Duration,
    /// VM: how long to wait for the agent's result.
    pub wait: Duration,
    /// OCI: the new DB system's display name.
    pub name: Option<String>,
    /// OCI: return once OCI accepted the request.
    pub no_wait: bool,
    /// OCI: the DB system whose backups to use [default: the one tagged with the profile].
    pub db_system: Option<String>,
    /// OCI: the new DB system's subnet [default: the source's].
    pub subnet_id: Option<String>,
}

/// `--to TIME` (RFC 3339 with a zone), else everything archived.
pub fn recovery_target(to: Option<&str>) -> anyhow::Result<RecoveryTarget> {
    let Some(s) = to else {
        return Ok(RecoveryTarget::Latest);
    };
    let t = s.trim().parse::<jiff::Timestamp>().map_err(|e| {
        actionable(
            format!("--to `{s}` is not an instant ({e})"),
            "write it in RFC 3339 with a zone, e.g. 2025-03-01T09:30:00Z",
        )
    })?;
    Ok(RecoveryTarget::Time(t))
}

/// `backup now`: a base backup (local), or a manual backup of the managed database (OCI).
pub async fn now(profile: Profile, label: &str, wait: Duration, ui: &Ui) -> anyhow::Result<Report> {
    match profile.target {
        profile::Target::Local => local::now(profile, label, ui).await,
        profile::Target::OciVm => vm::now(profile, label, wait, ui).await,
        profile::Target::Oci => managed::now(&profile, label).await,
    }
}

/// `backup wait ID`: the agent's result on an earlier request (`oci-vm` profiles only).
pub async fn wait(profile: Profile, id: &str, wait: Duration, ui: &Ui) -> anyhow::Result<Report> {
    match profile.target {
        profile::Target::OciVm => vm::wait(profile, id, wait, ui).await,
        _ => Err(actionable(
            format!("profile `{}` is not an oci-vm profile: its backup commands run here and finish before they return", profile.name),
            "`calops backup wait` follows requests to the agent of an oci-vm profile",
        )),
    }
}

/// `backup list`: base backups and archived WAL (local), or the managed database's backups.
pub async fn list(profile: Profile) -> anyhow::Result<Report> {
    match profile.target {
        profile::Target::Local => local::list(profile).await,
        profile::Target::OciVm => vm::list(profile).await,
        profile::Target::Oci => managed::list(&profile).await,
    }
}

/// `backup verify`: check every object a restore would read (local target only: OCI stores
/// and checks the managed database's backups itself).
pub async fn verify(profile: Profile, backup: Option<&str>, ui: &Ui) -> anyhow::Result<Report> {
    match profile.target {
        profile::Target::Local => local::verify(profile, backup, ui).await,
        profile::Target::OciVm => vm::verify(profile, backup, ui).await,
        profile::Target::Oci => Err(actionable(
            format!("profile `{}` uses OCI's managed database, whose backups OCI stores and checks itself", profile.name),
            "drill a restore instead: `calops restore --profile ... ` creates a new DB system from a backup",
        )),
    }
}

/// `restore`: into a new cluster, made live only with `start` (local), or into a new DB
/// system (OCI). The live database is never touched otherwise.
pub async fn restore(profile: Profile, req: &Restore, ui: &Ui) -> anyhow::Result<Report> {
    match profile.target {
        profile::Target::Local => local::restore(profile, req, ui).await,
        profile::Target::OciVm => vm::restore(profile, req, ui).await,
        profile::Target::Oci => managed::restore(&profile, req, ui).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_takes_an_instant_with_a_zone_and_says_how_to_write_one() {
        assert_eq!(recovery_target(None).unwrap(), RecoveryTarget::Latest);
        assert_eq!(
            recovery_target(Some(" 2025-03-01T09:30:00Z ")).unwrap(),
            RecoveryTarget::Time("2025-03-01T09:30:00Z".parse().unwrap())
        );
        let e = format!(
            "{:#}",
            recovery_target(Some("2025-03-01 09:30")).unwrap_err()
        );
        assert!(
            e.contains("2025-03-01 09:30") && e.contains("RFC 3339"),
            "{e}"
        );
    }
}
