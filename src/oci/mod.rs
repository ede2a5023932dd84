//! The OCI API client: `~/.oci/config`, API keys, request signing exact to Oracle's SDKs, an
//! HTTP client with retries and actionable errors, and the typed calls calops needs.
//!
//! Layers, each usable alone:
//! - [`config`]: find and parse the OCI config, resolve one profile ([`config::OciConfig::load`]).
//! - [`keys`]: load PEM keys, [`keys::fingerprint`], [`keys::check_permissions`],
//!   [`keys::check_fingerprint`] (what `calops doctor` checks).
//! - [`auth`]: profile -> [`signer::Signer`] (all the checks above, plus session tokens).
//! - [`principal`]: a container instance's resource principal (version 2.2), the signer of a
//!   service running on OCI.
//! - [`instance`]: a compute instance's instance principal (metadata service certificates
//!   exchanged for a session token), the signer of calops on the `oci-vm` target's VM.
//! - [`signer`]: the pure HTTP signature scheme.
//! - [`client`]: [`client::OciClient`], endpoints, retries, errors.
//! - typed calls: [`objectstorage`], [`registry`], [`loadbalancer`], [`containerinstances`],
//!   [`workrequests`], [`identity`] (the tenancy's home region), [`vault`] (secret bundles),
//!   [`monitoring`] (SummarizeMetricsData, ListAlarmsStatus).
//! - [`tfprovider`]: how the OCI Terraform provider finds its credentials, and the environment
//!   that makes it act as the same identity as calops.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use calops::oci::{client::OciClient, config::OciConfig};
//! let profile = OciConfig::load(None, None)?;
//! let client = OciClient::from_profile(&profile)?;
//! let ns = client.object_storage().namespace().await?;
//! println!("namespace {ns}");
//! # Ok(()) }
//! ```

pub mod auth;
pub mod client;
pub mod config;
pub mod containerinstances;
pub mod identity;
pub mod instance;
pub mod keys;
pub mod loadbalancer;
pub mod monitoring;
pub mod objectstorage;
pub mod principal;
pub mod psql;
pub mod raw;
pub mod registry;
pub mod signer;
pub mod tfprovider;
pub mod vault;
pub mod workrequests;

/// Split an error message from this module into what went wrong and the fix: messages end
/// with `\n  fix: ...` when there is one (handy for `calops doctor`'s detail/fix columns).
///
/// ```
/// let (what, fix) = calops::oci::split_fix("key too open\n  fix: chmod 600 k.pem");
/// assert_eq!((what, fix), ("key too open", Some("chmod 600 k.pem")));
/// ```
pub fn split_fix(message: &str) -> (&str, Option<&str>) {
    match message.split_once("\n  fix: ") {
        Some((what, fix)) => (what, Some(fix.trim_end())),
        None => (message, None),
    }
}
