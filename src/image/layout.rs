//! Write an OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/...`), the
//! format `skopeo copy oci:DIR` and other tools read.

use super::spec::{canonical_json, digest_hex, Descriptor, Index, MT_OCI_INDEX};
use anyhow::Context;
use std::collections::BTreeMap;
use std::path::Path;

/// Write `blobs` (digest → bytes) and a top-level `index.json` pointing at `image_index`
/// (tagged `tag`). The directory is written next to `dir` and renamed into place, so a failure
/// never leaves a half-written layout.
pub fn write_layout(
    dir: &Path,
    image_index: &Descriptor,
    tag: &str,
    blobs: &BTreeMap<String, bytes::Bytes>,
) -> anyhow::Result<()> {
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".calops-layout-")
        .tempdir_in(parent)
        .with_context(|| format!("creating a temporary directory in {}", parent.display()))?;
    let blob_dir = tmp.path().join("blobs").join("sha256");
    std::fs::create_dir_all(&blob_dir)?;
    for (digest, data) in blobs {
        std::fs::write(blob_dir.join(digest_hex(digest)?), data)?;
    }
    std::fs::write(
        tmp.path().join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let mut desc = image_index.clone();
    desc.platform = None;
    desc.annotations = Some(
        [(
            "org.opencontainers.image.ref.name".to_string(),
            tag.to_string(),
        )]
        .into_iter()
        .collect(),
    );
    let top = Index {
        schema_version: 2,
        media_type: Some(MT_OCI_INDEX.to_string()),
        manifests: vec![desc],
        annotations: None,
    };
    std::fs::write(tmp.path().join("index.json"), canonical_json(&top))?;
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("replacing the old layout at {}", dir.display()))?;
    }
    let tmp_path = tmp.keep();
    std::fs::rename(&tmp_path, dir)
        .with_context(|| format!("moving the layout into {}", dir.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::spec::MT_OCI_INDEX;

    #[test]
    fn writes_blobs_and_a_tagged_index() {
        let d = tempfile::tempdir().unwrap();
        let idx = bytes::Bytes::from_static(b"{}");
        let desc = Descriptor::of(MT_OCI_INDEX, &idx);
        let blobs = [(desc.digest.clone(), idx.clone())].into_iter().collect();
        let out = d.path().join("layout");
        write_layout(&out, &desc, "v1", &blobs).unwrap();
        let hex = digest_hex(&desc.digest).unwrap();
        assert_eq!(
            std::fs::read(out.join("blobs/sha256").join(hex)).unwrap(),
            b"{}"
        );
        let top: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
        assert_eq!(
            top["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
            "v1"
        );
        // Writing again replaces the layout cleanly.
        write_layout(&out, &desc, "v2", &blobs).unwrap();
        let n = std::fs::read_dir(d.path()).unwrap().count();
        assert_eq!(n, 1, "no temporary directories are left behind");
    }
}
