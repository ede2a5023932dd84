//! Filesystem helpers shared by the service and the CLI (a neutral low-level module: it uses no
//! other module of the crate).

use std::io::Write;
use std::path::Path;

/// Write a file atomically and durably: a temp file in the same directory, fsync, rename. A
/// reader sees the old content or the new, never a half-written file.
pub fn write_atomic(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(body)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
