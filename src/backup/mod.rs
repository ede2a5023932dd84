//! Backups of the PostgreSQL clusters calops runs itself (the local target; a VM target can
//! use the same code with Object Storage): continuous WAL archiving, scheduled and on-demand
//! base backups, retention, verification and point-in-time restore. For OCI's managed
//! database, [`managed`] lists OCI's own backups and restores one into a new DB system.
//!
//! - [`wal`]: LSNs, WAL file names, timeline histories, object keys (pure)
//! - [`codec`]: zstd + sha256 of stored objects
//! - [`store`]: the object store trait, with files and OCI Object Storage
//! - [`config`]: the per-cluster backup configuration file every part reads
//! - [`archive`]: what `archive_command` and `restore_command` run
//! - [`catalog`]: base backup manifests, the WAL chain a restore needs, retention (pure)

pub mod archive;
pub mod basebackup;
pub mod catalog;
pub mod codec;
pub mod config;
pub mod install;
pub mod inventory;
pub mod local;
pub mod pgconf;
pub mod restore;
pub mod schedule;
pub mod store;
pub mod tarscan;
pub mod wal;
