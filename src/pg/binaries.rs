//! Finding the PostgreSQL server binaries (`initdb`, `pg_ctl`, `postgres`).

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Clone)]
pub struct Binaries {
    pub bindir: PathBuf,
}

impl Binaries {
    /// Look on PATH, then in `pg_config --bindir`, then in the newest
    /// `/usr/lib/postgresql/*/bin` (Debian keeps the server binaries off PATH).
    pub fn locate() -> Result<Binaries> {
        let mut tried = Vec::new();
        if let Ok(p) = which::which("initdb") {
            // A link on PATH (e.g. /usr/local/bin/initdb) stands for the real directory, which
            // also has the client tools (pg_basebackup) that backups use.
            let p = p.canonicalize().unwrap_or(p);
            if let Some(dir) = p.parent() {
                if complete(dir) {
                    return Ok(Binaries {
                        bindir: dir.to_path_buf(),
                    });
                }
                tried.push(dir.display().to_string());
            }
        } else {
            tried.push("PATH".into());
        }
        if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
            if out.status.success() {
                let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
                if complete(&dir) {
                    return Ok(Binaries { bindir: dir });
                }
                tried.push(dir.display().to_string());
            }
        }
        let mut candidates = debian_bindirs(Path::new("/usr/lib/postgresql"));
        candidates.retain(|d| complete(d));
        if let Some(dir) = candidates.pop() {
            return Ok(Binaries { bindir: dir });
        }
        tried.push("/usr/lib/postgresql/*/bin".into());
        bail!(
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found; looked in: {}. \
             Install them with `apt-get install postgresql` (or run scripts/setup)",
            tried.join(", ")
        )
    }

    pub fn path(&self, tool: &str) -> PathBuf {
        self.bindir.join(tool)
    }
}

fn complete(dir: &Path) -> bool {
    ["initdb", "pg_ctl", "postgres"]
        .iter()
        .all(|t| dir.join(t).is_file())
}

/// `/usr/lib/postgresql/<major>/bin` directories, oldest first (numeric order).
fn debian_bindirs(root: &Path) -> Vec<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((major, e.path().join("bin")))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_dirs_sort_numerically() {
        let root = tempfile::tempdir().unwrap();
        for v in ["9", "15", "13", "notaversion"] {
            std::fs::create_dir_all(root.path().join(v).join("bin")).unwrap();
        }
        let dirs = debian_bindirs(root.path());
        let names: Vec<String> = dirs
            .iter()
            .map(|d| {
                d.parent()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into()
            })
            .collect();
        assert_eq!(names, ["9", "13", "15"]);
    }

    #[test]
    fn a_directory_needs_all_three_tools() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("initdb"), "").unwrap();
        std::fs::write(d.path().join("pg_ctl"), "").unwrap();
        assert!(!complete(d.path()));
        std::fs::write(d.path().join("postgres"), "").unwrap();
        assert!(complete(d.path()));
    }
}
