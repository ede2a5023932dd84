//! The contract between the OCI stack and the service it runs: what one container instance is
//! given, described once, in Rust.
//!
//! - [`env`]: [`env::ContainerEnv`], the typed list of environment variables a container gets
//!   (literal values, values only Terraform knows such as the database endpoint, and secrets
//!   as Vault references), the variable names, and the health endpoints the stack probes. The
//!   renderer writes it into the Terraform inputs; nothing in `templates/` or `iac/` names a
//!   service variable. `calops serve` reads the same names ([`env::var`]) and parses the
//!   database settings and secret references with the types here
//!   ([`env::DatabaseSettings`], [`env::Reference`]).
//! - [`slot`]: [`slot::Slot`], one blue/green deployment slot: its state, its image and the
//!   [`slot::SlotSpec`] frozen when it was staged (environment, shape, size, replicas), plus the
//!   Terraform-known values it was made with. The same type is planned
//!   ([`crate::deploy::slots`]), rendered ([`crate::render`]) and read back from the stack's
//!   outputs ([`crate::deploy::oci::stack`]).
//!
//! - [`telemetry`]: the metrics the service posts to OCI Monitoring (one list both the exporter
//!   and the rendered alarms use), the runbook's alarm thresholds and the alarms' queries.
//!
//! Pure: no I/O, and nothing of the crate outside this module (`tests/it/architecture.rs`).

pub mod env;
pub mod slot;
pub mod telemetry;

pub use env::{
    ContainerEnv, DatabaseSettings, DatabaseTarget, EnvValue, Pem, Reference, SslMode, StackValue,
    LIVENESS_PATH, READINESS_PATH,
};
pub use slot::{is_pinned_image, Bound, Slot, SlotSpec, SlotState, SLOT_NAMES};
