//! `backup` and `restore` for OCI profiles: the managed database's own backups.

use crate::backup::pgconf::RecoveryTarget;
use crate::cli::RestoreArgs;
use crate::profile::Profile;
use crate::ui::Ui;

pub fn now(_p: &Profile, _label: &str, _ui: &Ui) -> anyhow::Result<i32> {
    anyhow::bail!("not yet")
}

pub fn list(_p: &Profile, _ui: &Ui) -> anyhow::Result<i32> {
    anyhow::bail!("not yet")
}

pub fn restore(_p: &Profile, _a: &RestoreArgs, _t: RecoveryTarget, _ui: &Ui) -> anyhow::Result<i32> {
    anyhow::bail!("not yet")
}
