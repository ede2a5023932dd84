//! The `oci-vm` target (one compute instance, the Always Free profile `free-au`). Deploy by pull
//! (`calops agent` on the VM, releases in the bucket) is not implemented yet: every command that
//! would act on the VM or its bucket refuses with this error rather than half-work.

use crate::error::actionable;
use crate::profile::Profile;

/// The refusal for `command` on an `oci-vm` profile: what is missing and what works meanwhile.
pub fn not_yet(profile: &Profile, command: &str) -> anyhow::Error {
    actionable(
        format!(
            "profile `{}` has target = \"oci-vm\": `calops {command}` for the VM target needs deploy by pull (the `calops agent` on the VM taking releases from the bucket), which is not implemented yet; nothing was changed",
            profile.name
        ),
        format!(
            "meanwhile `calops plan --profile {}` shows the monthly estimate with the Always Free allowance, and `calops doctor --profile {}` checks the sizes against it; deploy an `oci` profile (e.g. prod-au) or the local target to run the service today",
            profile.name, profile.name
        ),
    )
}
