//! Backups of the PostgreSQL clusters calops runs itself (the local target; a VM target can
//! use the same code with Object Storage): continuous WAL archiving, scheduled and on-demand
//! base backups, retention, verification and point-in-time restore. It knows clusters, stores
//! and configuration files, not profiles or targets: `deploy::local::archiving` sets it up for
//! the local target, `deploy::backups` runs the `backup` and `restore` commands on it (and on
//! OCI's managed database, through `oci::psql`).
//!
//! - [`wal`]: LSNs, WAL file names, timeline histories, object keys (pure)
//! - [`codec`]: zstd + sha256 of stored objects
//! - [`store`]: the object store trait, with files and OCI Object Storage
//! - [`config`]: the per-cluster backup configuration file every part reads
//! - [`install`], [`pgconf`]: the commands and settings PostgreSQL archives with
//! - [`archive`]: what `archive_command` and `restore_command` run
//! - [`catalog`]: base backup manifests, the WAL chain a restore needs, retention (pure)
//! - [`inventory`]: the catalogue read from a store; verify and prune
//! - [`basebackup`], [`tarscan`]: `pg_basebackup` streamed into stored parts
//! - [`restore`]: point-in-time restore into a new cluster
//! - [`schedule`]: the nightly base backup `calops serve` runs, and its gauges
//! - [`status`]: the archiver and the newest base backup, with the alarm
//! - [`tokencache`]: the instance principal's token kept between archive commands

pub mod archive;
pub mod basebackup;
pub mod catalog;
pub mod codec;
pub mod config;
pub mod install;
pub mod inventory;
pub mod pgconf;
pub mod restore;
pub mod schedule;
pub mod status;
pub mod store;
pub mod tarscan;
pub mod tokencache;
pub mod wal;
