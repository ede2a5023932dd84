//! calops: deploy and operate a self-hosted scheduling service on Oracle Cloud.
//!
//! The binary is a thin shell over this library: `cli` holds clap types, `commands` glue one
//! subcommand each, and the modules below do the work so that tests can call them directly.

// The OpenAPI document (`service::api::openapi`) writes large `serde_json::json!` literals.
#![recursion_limit = "512"]

pub mod backup;
pub mod cli;
pub mod commands;
pub mod deploy;
pub mod doctor;
pub mod error;
pub mod fsutil;
pub mod image;
pub mod net;
pub mod oci;
pub mod pg;
pub mod profile;
pub mod pull;
pub mod render;
pub mod runtime;
pub mod service;
pub mod status;
pub mod terraform;
pub mod ui;

/// The version line printed by `calops --version`.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("CALOPS_BUILD_TARGET"),
    ")"
);
