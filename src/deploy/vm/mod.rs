//! The `oci-vm` target (one compute instance, the Always Free profile `free-au`), deployed by
//! pull: [`target`] (the operator's `calops deploy`) puts the release in the stack's bucket
//! ([`objects`]); [`agent`] (`calops agent` on the VM, signed as the instance principal) takes
//! it and switches with the local target's verified switch. `backup now` and `restore` of the
//! VM's cluster are requests (`deploy::backups::requests`) the agent runs on the VM.

pub mod agent;
pub use crate::pull as objects;
pub mod target;
