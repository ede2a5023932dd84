//! The Terraform driver: typed operations over the `terraform` CLI, the plan summary people
//! decide from, the destroy guard, and the cost estimate.
//!
//! - [`command`]: pure builders (argv + env) for version, init, plan, show, apply, output,
//!   state pull.
//! - [`runner`]: the one place that runs them (streams lines, logs, Ctrl-C, error mapping).
//! - [`driver`]: one method per operation (builder + runner + parsing).
//! - [`plan_json`]: `terraform show -json` parsed into our types, sensitive values masked.
//! - [`stream`]: `plan -json`'s machine-readable stream (progress, diagnostics, change counts).
//! - [`tfplan`]: the saved plan read without Terraform (planned changes from the plan file's
//!   protobuf, values via [`cty`], addresses via [`address`], prior state via [`planfile`]), so
//!   a plan is one Terraform process.
//! - [`summary`], [`guard`], [`cost`], [`forcenew`]: what the plan means for people.
//! - [`plan`] / [`apply`]: the library entry points `run_plan` and `apply_if_changed`.
//!
//! Environment: `CALOPS_TERRAFORM` overrides the terraform binary; `TF_PLUGIN_CACHE_DIR` and
//! `TF_CLI_CONFIG_FILE` are honoured; otherwise providers are cached in
//! `<user cache dir>/calops/plugin-cache`, shared by all profiles.

pub mod address;
pub mod apply;
pub mod command;
pub mod cost;
pub mod cty;
pub mod driver;
pub mod errors;
pub mod forcenew;
pub mod freetier;
pub mod guard;
pub mod interrupt;
pub mod plan;
pub mod plan_json;
pub mod planfile;
pub mod progress;
pub mod runner;
pub mod stream;
pub mod summary;
pub mod tfplan;

pub use apply::{apply_if_changed, ApplyOutcome};
pub use errors::{LockInfo, TfError};
pub use plan::{run_plan, PlanOptions, PlanOutcome};
