//! Putting what PostgreSQL's archive and restore commands run where the server's OS user can
//! reach it: `<server home>/backup/` holds `backup.json` and `calops`, a symlink to a calops
//! binary. The link is replaced atomically (a new link renamed over the old one), so a new
//! release never breaks an archive command in flight: a running one keeps the binary it
//! started, the next one starts the new. The link points to a release artifact, which calops
//! never rewrites; when the server's user cannot reach it (a project under /root), to a copy
//! named by the binary's digest.

use super::config::BackupConfig;
use super::pgconf::Commands;
use anyhow::{Context, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub const DIR: &str = "backup";
pub const CONFIG: &str = "backup.json";
const BINARY: &str = "calops";

pub fn dir(server_home: &Path) -> PathBuf {
    server_home.join(DIR)
}

pub fn config_path(server_home: &Path) -> PathBuf {
    dir(server_home).join(CONFIG)
}

/// True when `path` is reachable by other users (every ancestor searchable).
fn reachable(path: &Path) -> bool {
    path.ancestors().skip(1).all(|a| {
        std::fs::metadata(a)
            .map(|m| m.permissions().mode() & 0o001 != 0)
            .unwrap_or(false)
    })
}

/// Replace `link` with a symlink to `target`, atomically.
fn relink(link: &Path, target: &Path) -> Result<()> {
    if std::fs::read_link(link).ok().as_deref() == Some(target) {
        return Ok(());
    }
    let tmp = link.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)
        .with_context(|| format!("linking {} to {}", tmp.display(), target.display()))?;
    std::fs::rename(&tmp, link).with_context(|| format!("replacing {}", link.display()))?;
    Ok(())
}

/// Write the configuration and link the binary under `server_home`; returns the commands.
pub fn install(server_home: &Path, cfg: &BackupConfig, calops: &Path) -> Result<Commands> {
    let d = dir(server_home);
    std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))?;
    let config = d.join(CONFIG);
    cfg.write(&config)?;
    // Where archive_command keeps the instance principal's token: the server's OS user's only.
    let token = d.join(super::tokencache::DIR);
    std::fs::create_dir_all(&token).with_context(|| format!("creating {}", token.display()))?;
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o700))?;
    crate::pg::hand_to_server(&token)?;
    let calops = std::path::absolute(calops).unwrap_or_else(|_| calops.to_path_buf());
    let running_as_root = nix::unistd::Uid::effective().is_root();
    let target = if !running_as_root || reachable(&calops) {
        calops
    } else {
        let digest = crate::fsutil::file_digest(&calops)?;
        let hex = digest.trim_start_matches("sha256:");
        let copy = d.join(format!("calops-{}", &hex[..16]));
        if !copy.is_file() {
            let tmp = d.join(".calops.copy");
            std::fs::copy(&calops, &tmp)
                .with_context(|| format!("copying {} to {}", calops.display(), tmp.display()))?;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
            std::fs::rename(&tmp, &copy)?;
        }
        copy
    };
    let link = d.join(BINARY);
    relink(&link, &target)?;
    // Older copies are no longer linked (a process still running one keeps its inode).
    if let Ok(rd) = std::fs::read_dir(&d) {
        for e in rd.flatten() {
            let p = e.path();
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("calops-") && p != target {
                let _ = std::fs::remove_file(p);
            }
        }
    }
    Ok(Commands {
        calops: link,
        config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_follows_the_newest_binary_and_stays_valid() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        std::fs::write(&a, "#!/bin/sh\necho a\n").unwrap();
        std::fs::write(&b, "#!/bin/sh\necho b\n").unwrap();
        let cfg = BackupConfig {
            version: 1,
            profile: "t".into(),
            store: "file:///x".into(),
            compression_level: 3,
            part_size: 1 << 20,
            schedule: "02:00".into(),
            retention_days: 7,
            retention_count: 2,
            archive_timeout_seconds: 60,
        };
        let home = d.path().join("home");
        let c1 = install(&home, &cfg, &a).unwrap();
        assert_eq!(std::fs::read_link(&c1.calops).unwrap(), a);
        let c2 = install(&home, &cfg, &b).unwrap();
        assert_eq!(c1, c2, "the same paths, so archive_command does not change");
        assert_eq!(std::fs::read_link(&c2.calops).unwrap(), b);
        assert_eq!(BackupConfig::load(&c2.config).unwrap(), cfg);
        let names: Vec<_> = std::fs::read_dir(dir(&home))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 3, "no temporary links left: {names:?}");
        // The instance principal's token cache: the server's OS user's only.
        let token = dir(&home).join(crate::backup::tokencache::DIR);
        assert_eq!(
            std::fs::metadata(&token).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }
}
