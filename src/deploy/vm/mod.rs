//! The `oci-vm` target (one compute instance, the Always Free profile `free-au`), deployed by
//! pull: [`target`] (the operator's `calops deploy`) puts the release in the stack's bucket
//! ([`objects`]); [`agent`] (`calops agent` on the VM, signed as the instance principal) takes
//! it and switches with the local target's verified switch. Backups of the VM's cluster are not
//! wired yet: those commands refuse with [`not_yet`] rather than half-work.

pub mod agent;
pub use crate::pull as objects;
pub mod target;

use crate::error::actionable;
use crate::profile::Profile;

/// The refusal for `command` on an `oci-vm` profile: what is missing and what works meanwhile.
pub fn not_yet(profile: &Profile, command: &str) -> anyhow::Error {
    actionable(
        format!(
            "profile `{}` has target = \"oci-vm\": `calops {command}` is not implemented yet for the VM target; nothing was changed",
            profile.name
        ),
        format!(
            "`calops deploy/rollback/releases/status/lock --profile {}` work (deploy by pull); for the database, use the local target's commands on the VM meanwhile",
            profile.name
        ),
    )
}
