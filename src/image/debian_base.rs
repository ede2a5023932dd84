//! A minimal glibc base image built from Debian packages (`libc6`, `libgcc-s1`,
//! `ca-certificates`), for machines that cannot reach gcr.io (tests, benchmarks, offline
//! local profiles). Uses `apt-get download` and `dpkg-deb -x`; writes an OCI image layout.

use super::layer::{build_layer, entries_from_dir, LayerEntry, NONROOT_ID};
use super::platform::Platform;
use super::spec::{self, canonical_json, Descriptor};
use anyhow::Context;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The packages that make a distroless/cc-like runtime.
pub const PACKAGES: [&str; 3] = ["libc6", "libgcc-s1", "ca-certificates"];

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?} (needs Debian's apt and dpkg)"))?;
    anyhow::ensure!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// Download (once, into `cache/debs/<arch>`) and extract the packages for `arch` (a Debian
/// architecture: amd64, arm64) into `cache/rootfs/<arch>`; returns the rootfs path.
pub fn rootfs(arch: &str, cache: &Path) -> anyhow::Result<PathBuf> {
    let debs = cache.join("debs").join(arch);
    let root = cache.join("rootfs").join(arch);
    if root.join("etc/passwd").exists() {
        return Ok(root);
    }
    std::fs::create_dir_all(&debs)?;
    if std::fs::read_dir(&debs)?.count() < PACKAGES.len() {
        let pkgs: Vec<String> = PACKAGES
            .iter()
            .map(|p| match *p {
                "ca-certificates" => p.to_string(),
                _ => format!("{p}:{arch}"),
            })
            .collect();
        run(Command::new("apt-get")
            .arg("download")
            .args(&pkgs)
            .current_dir(&debs))
        .with_context(|| {
            format!("downloading {pkgs:?}; for a foreign arch run `dpkg --add-architecture {arch} && apt-get update` first")
        })?;
    }
    let tmp = root.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(tmp.join("etc"))?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&debs)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.sort();
    for deb in files {
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tmp))?;
    }
    std::fs::write(
        tmp.join("etc/passwd"),
        "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
    )?;
    std::fs::write(tmp.join("etc/group"), "root:x:0:\nnonroot:x:65532:\n")?;
    let _ = std::fs::remove_dir_all(&root);
    std::fs::rename(&tmp, &root)?;
    Ok(root)
}

/// Write a multi-arch base image layout at `dir` (tag `base`): one layer per platform.
pub fn write_base_layout(dir: &Path, arches: &[&str], cache: &Path) -> anyhow::Result<Descriptor> {
    let mut blobs = BTreeMap::new();
    let mut manifests = Vec::new();
    for arch in arches {
        let mut entries = entries_from_dir(&rootfs(arch, cache)?)?;
        entries.push(LayerEntry::dir("home"));
        entries.push(LayerEntry::dir("home/nonroot").owned_by(NONROOT_ID, NONROOT_ID));
        let layer = build_layer(entries, 0)?;
        let config = canonical_json(&serde_json::json!({
            "architecture": arch,
            "os": "linux",
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "User": "0",
            },
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
            "history": [{"created": spec::created_time(None), "created_by": format!("debian packages {}", PACKAGES.join(" "))}],
        }));
        let cdesc = Descriptor::of(spec::MT_OCI_CONFIG, &config);
        let m = canonical_json(&spec::build_manifest(
            cdesc.clone(),
            vec![layer.descriptor.clone()],
        ));
        let mut mdesc = Descriptor::of(spec::MT_OCI_MANIFEST, &m);
        mdesc.platform = Some(Platform {
            os: "linux".into(),
            architecture: arch.to_string(),
            variant: None,
        });
        blobs.insert(layer.descriptor.digest.clone(), layer.gz.into());
        blobs.insert(cdesc.digest, config.into());
        blobs.insert(mdesc.digest.clone(), m.into());
        manifests.push(mdesc);
    }
    let idx = canonical_json(&spec::build_index(manifests));
    let idesc = Descriptor::of(spec::MT_OCI_INDEX, &idx);
    blobs.insert(idesc.digest.clone(), idx.into());
    super::layout::write_layout(dir, &idesc, "base", &blobs)?;
    Ok(idesc)
}
