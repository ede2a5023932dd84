//! The release pipeline's building blocks shared by every target, [`deployment`], which
//! opens a profile's target and state store for the release commands, and [`backups`], the
//! `backup` and `restore` commands on either target.

pub mod backups;
pub mod deployment;
pub mod ledger;
pub mod local;
pub mod lock;
pub mod oci;
pub mod ocistore;
pub mod pipeline;
pub mod slots;
pub mod status;
pub mod steps;
pub mod store;
pub mod vm;
