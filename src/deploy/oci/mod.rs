//! The OCI target: blue/green container slots through Terraform, the deploy lock and release
//! ledger in Object Storage ([`crate::deploy::ocistore::OciStore`]), verification through OCI
//! APIs.
//!
//! - [`account`]: one identity for calops and Terraform; the tenancy and its home region.
//! - [`bootstrap`]: the namespace and the private, versioned state bucket.
//! - [`stack`]: writing the root module for a set of slots; reading what runs from outputs.
//! - [`watch`]: instance ACTIVE, backend OK, `/health` through the load balancer.
//! - [`registry`]: does the registry still have an image (for rollbacks).
//! - [`target`]: [`target::OciTarget`], the pipeline's `Target`.

pub mod account;
pub mod bootstrap;
pub mod registry;
pub mod setup;
pub mod stack;
pub mod target;
pub mod watch;
