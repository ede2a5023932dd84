//! Writing a rendered root module to disk (the only side effect of rendering).
//!
//! Files are written atomically (temporary file + rename) so an interrupted render never
//! leaves a half-written file. A manifest (`.calops-render.json`) remembers which files calops
//! wrote, so files that a new render no longer produces are removed, while everything else in
//! the directory (`.terraform/`, `terraform.tfstate`, plan files) is left alone.

use super::Rendered;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const MANIFEST: &str = ".calops-render.json";

/// Write `rendered` into `dir` (created if needed). Returns the files written, sorted.
pub fn write_to(rendered: &Rendered, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| {
        crate::error::actionable(
            format!("cannot create {}: {e}", dir.display()),
            "choose another --out directory or fix its permissions",
        )
    })?;
    let previous: BTreeSet<String> = std::fs::read_to_string(dir.join(MANIFEST))
        .ok()
        .and_then(|t| serde_json::from_str::<Vec<String>>(&t).ok())
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut written = Vec::new();
    for (name, text) in &rendered.files {
        let path = dir.join(name);
        atomic_write(&path, text.as_bytes())?;
        written.push(path);
    }
    for stale in previous.iter().filter(|p| !rendered.files.contains_key(*p)) {
        // Only relative paths calops itself wrote (no `..`), never anything else.
        if !stale.contains("..") && !stale.starts_with('/') {
            let _ = std::fs::remove_file(dir.join(stale));
        }
    }
    let names: Vec<&String> = rendered.files.keys().collect();
    atomic_write(
        &dir.join(MANIFEST),
        serde_json::to_string_pretty(&names)?.as_bytes(),
    )?;
    Ok(written)
}

fn atomic_write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", parent.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(parent)
        .map_err(|e| anyhow::anyhow!("cannot write in {}: {e}", parent.display()))?;
    // No fsync: rendered files are regenerated from the profile at will; the rename is what
    // guarantees that a reader never sees a half-written file.
    tmp.write_all(bytes)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // NamedTempFile is 0600; rendered files hold no secrets and are meant to be reviewed.
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))?;
    }
    tmp.persist(path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(())
}
