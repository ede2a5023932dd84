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

/// `sha256:<hex>` of a file's content, streamed.
pub fn file_digest(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let named = |e: std::io::Error| {
        std::io::Error::new(e.kind(), format!("reading {}: {e}", path.display()))
    };
    let mut f = std::fs::File::open(path).map_err(named)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(named)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}
