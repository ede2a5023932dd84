//! The release pipeline's building blocks shared by every target.

pub mod ledger;
pub mod lock;
pub mod store;
