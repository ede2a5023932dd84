//! The release pipeline's building blocks shared by every target.

pub mod ledger;
pub mod local;
pub mod lock;
pub mod oci;
pub mod ocistore;
pub mod pipeline;
pub mod slots;
pub mod steps;
pub mod store;
