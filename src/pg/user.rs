//! The unprivileged OS user PostgreSQL runs as when this process is root.

use anyhow::{bail, Result};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// The dedicated system user created for the server when running as root.
pub const SYSTEM_USER: &str = "calops-pg";

#[derive(Debug, Clone)]
pub struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl RunAs {
    /// `None` when not root (the server runs as us); otherwise `calops-pg` (created when
    /// missing), or `nobody` if it cannot be created.
    pub fn for_current_process() -> Result<Option<RunAs>> {
        if !nix::unistd::Uid::effective().is_root() {
            return Ok(None);
        }
        if let Some(u) = lookup(SYSTEM_USER) {
            return Ok(Some(u));
        }
        let created = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                SYSTEM_USER,
            ])
            .output();
        if let Some(u) = lookup(SYSTEM_USER) {
            return Ok(Some(u));
        }
        if let Some(u) = lookup("nobody") {
            return Ok(Some(u));
        }
        let why = match created {
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => e.to_string(),
        };
        bail!(
            "PostgreSQL refuses to run as root and no unprivileged user is available: \
             `useradd --system {SYSTEM_USER}` failed ({why}) and there is no `nobody` user; \
             create one of them or run calops as a normal user"
        )
    }
}

fn lookup(name: &str) -> Option<RunAs> {
    let u = nix::unistd::User::from_name(name).ok().flatten()?;
    Some(RunAs {
        name: name.to_string(),
        uid: u.uid.as_raw(),
        gid: u.gid.as_raw(),
    })
}

/// Make `cmd` run as `who` (with no supplementary groups) when given.
pub fn apply(cmd: &mut Command, who: Option<&RunAs>) {
    if let Some(u) = who {
        cmd.uid(u.uid)
            .gid(u.gid)
            .env("HOME", "/tmp")
            .env("USER", &u.name);
        // The server's user may not be able to read our working directory.
        cmd.current_dir("/");
    }
}
