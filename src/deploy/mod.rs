//! The release pipeline's building blocks shared by every target.

pub mod ledger;
pub mod local;
pub mod lock;
pub mod store;
