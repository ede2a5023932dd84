//! Reproducible layer tarballs: sorted entries, fixed mtime and owners, deterministic gzip.
//!
//! `build_layer` is pure (entries in, bytes and digests out); `entries_from_dir` reads a
//! directory tree into entries for base images assembled from extracted packages.

use super::spec::{sha256_digest, Descriptor, MT_OCI_LAYER_GZIP};
use anyhow::Context;
use flate2::{Compression, GzBuilder};
use std::io::Write;
use std::path::Path;

/// The uid/gid distroless calls `nonroot`.
pub const NONROOT_ID: u64 = 65532;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
}

/// One tar entry. `path` is relative, with `/` separators and no leading `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEntry {
    pub path: String,
    pub kind: EntryKind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

impl LayerEntry {
    pub fn dir(path: &str) -> LayerEntry {
        LayerEntry {
            path: path.trim_matches('/').to_string(),
            kind: EntryKind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
        }
    }

    pub fn file(path: &str, data: Vec<u8>, mode: u32) -> LayerEntry {
        LayerEntry {
            path: path.trim_matches('/').to_string(),
            kind: EntryKind::File(data),
            mode,
            uid: 0,
            gid: 0,
        }
    }

    pub fn symlink(path: &str, target: &str) -> LayerEntry {
        LayerEntry {
            path: path.trim_matches('/').to_string(),
            kind: EntryKind::Symlink(target.to_string()),
            mode: 0o777,
            uid: 0,
            gid: 0,
        }
    }

    pub fn owned_by(mut self, uid: u64, gid: u64) -> LayerEntry {
        self.uid = uid;
        self.gid = gid;
        self
    }
}

/// A finished layer: the gzip bytes, their descriptor, and the uncompressed tar's digest.
#[derive(Debug, Clone)]
pub struct Layer {
    pub gz: Vec<u8>,
    pub descriptor: Descriptor,
    pub diff_id: String,
}

/// The entries for a single executable at `dest` (parent directories included, root-owned).
pub fn binary_entries(dest: &str, data: Vec<u8>) -> Vec<LayerEntry> {
    let dest = dest.trim_matches('/');
    let mut out = Vec::new();
    let mut prefix = String::new();
    let parts: Vec<&str> = dest.split('/').collect();
    for p in &parts[..parts.len().saturating_sub(1)] {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(p);
        out.push(LayerEntry::dir(&prefix));
    }
    out.push(LayerEntry::file(dest, data, 0o755));
    out
}

/// Build the layer. Entries are sorted by path, every mtime is `mtime`, and gzip's header has
/// no name and no timestamp, so the same entries always give the same digest.
pub fn build_layer(mut entries: Vec<LayerEntry>, mtime: u64) -> anyhow::Result<Layer> {
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    entries.dedup_by(|a, b| a.path == b.path);
    let mut tar = tar::Builder::new(Vec::new());
    for e in &entries {
        anyhow::ensure!(
            !e.path.is_empty() && !e.path.split('/').any(|c| c == ".." || c.is_empty()),
            "invalid path `{}` for an image layer entry",
            e.path
        );
        let mut h = tar::Header::new_ustar();
        h.set_mode(e.mode & 0o7777);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mtime(mtime);
        match &e.kind {
            EntryKind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                tar.append_data(&mut h, format!("{}/", e.path), std::io::empty())?;
            }
            EntryKind::File(data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                tar.append_data(&mut h, &e.path, data.as_slice())?;
            }
            EntryKind::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                tar.append_link(&mut h, &e.path, target)?;
            }
        }
    }
    let tar_bytes = tar.into_inner()?;
    let diff_id = sha256_digest(&tar_bytes);
    let mut gz = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), Compression::default());
    gz.write_all(&tar_bytes)?;
    let gz = gz.finish()?;
    Ok(Layer {
        descriptor: Descriptor::of(MT_OCI_LAYER_GZIP, &gz),
        gz,
        diff_id,
    })
}

/// Read a directory tree into layer entries (root-owned, permissions kept, symlinks kept).
pub fn entries_from_dir(root: &Path) -> anyhow::Result<Vec<LayerEntry>> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd = std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?;
        for ent in rd {
            let ent = ent?;
            let path = ent.path();
            let rel = path
                .strip_prefix(root)?
                .to_str()
                .with_context(|| format!("non-UTF-8 path {}", path.display()))?
                .to_string();
            let meta = std::fs::symlink_metadata(&path)?;
            let mode = meta.permissions().mode();
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path)?;
                out.push(LayerEntry::symlink(&rel, &target.to_string_lossy()));
            } else if meta.is_dir() {
                out.push(LayerEntry {
                    mode,
                    ..LayerEntry::dir(&rel)
                });
                stack.push(path);
            } else if meta.is_file() {
                let data =
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                out.push(LayerEntry::file(&rel, data, mode));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn unpack(gz: &[u8]) -> Vec<(String, u64, u64, u64, u32)> {
        let mut tar_bytes = Vec::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_end(&mut tar_bytes)
            .unwrap();
        let mut a = tar::Archive::new(tar_bytes.as_slice());
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().to_string(),
                    h.mtime().unwrap(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    h.mode().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn same_entries_in_any_order_give_same_digest() {
        let a = vec![
            LayerEntry::file("usr/local/bin/calops", b"bin".to_vec(), 0o755),
            LayerEntry::dir("usr"),
            LayerEntry::dir("usr/local"),
            LayerEntry::dir("usr/local/bin"),
        ];
        let mut b = a.clone();
        b.reverse();
        let la = build_layer(a, 0).unwrap();
        let lb = build_layer(b, 0).unwrap();
        assert_eq!(la.descriptor.digest, lb.descriptor.digest);
        assert_eq!(la.diff_id, lb.diff_id);
        assert_eq!(la.gz, lb.gz);
        // gzip header: magic, deflate, no flags, mtime 0, OS unknown.
        assert_eq!(&la.gz[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
        let other =
            build_layer(binary_entries("usr/local/bin/calops", b"bin".to_vec()), 7).unwrap();
        assert_ne!(
            other.descriptor.digest, la.descriptor.digest,
            "mtime is in the digest"
        );
    }

    #[test]
    fn entries_are_sorted_with_fixed_mtime_and_owners() {
        let mut entries = binary_entries("/usr/local/bin/calops", b"x".to_vec());
        entries.push(LayerEntry::dir("home/nonroot").owned_by(NONROOT_ID, NONROOT_ID));
        entries.push(LayerEntry::dir("home"));
        let l = build_layer(entries, 1_700_000_000).unwrap();
        let got = unpack(&l.gz);
        let names: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "home/",
                "home/nonroot/",
                "usr/",
                "usr/local/",
                "usr/local/bin/",
                "usr/local/bin/calops"
            ]
        );
        assert!(got.iter().all(|g| g.1 == 1_700_000_000));
        assert_eq!((got[1].2, got[1].3), (NONROOT_ID, NONROOT_ID));
        assert_eq!((got[5].2, got[5].3, got[5].4), (0, 0, 0o755));
        assert_eq!(l.descriptor.size as usize, l.gz.len());
        assert_eq!(l.descriptor.digest, sha256_digest(&l.gz));
    }

    #[test]
    fn rejects_escaping_paths() {
        let e = build_layer(vec![LayerEntry::file("a/../../etc/x", vec![], 0o644)], 0).unwrap_err();
        assert!(e.to_string().contains("invalid path"));
    }

    #[test]
    fn reads_directory_trees_with_symlinks() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("lib/x")).unwrap();
        std::fs::write(d.path().join("lib/x/f"), b"hi").unwrap();
        std::os::unix::fs::symlink("x/f", d.path().join("lib/l")).unwrap();
        let mut e = entries_from_dir(d.path()).unwrap();
        e.sort_by(|a, b| a.path.cmp(&b.path));
        let paths: Vec<&str> = e.iter().map(|x| x.path.as_str()).collect();
        assert_eq!(paths, ["lib", "lib/l", "lib/x", "lib/x/f"]);
        assert_eq!(e[1].kind, EntryKind::Symlink("x/f".into()));
        assert_eq!(e[3].kind, EntryKind::File(b"hi".to_vec()));
    }
}
