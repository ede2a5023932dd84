//! OCI image JSON documents (descriptor, manifest, index, config) and digests. Pure: no I/O.

use super::platform::Platform;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;

pub const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MT_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MT_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// The `Accept` header for manifest requests: every manifest and index type we understand.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// `sha256:<hex>` of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The hex part of a `sha256:` digest, validated (it becomes a file name in OCI layouts).
pub fn digest_hex(digest: &str) -> anyhow::Result<&str> {
    match digest.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(h),
        _ => anyhow::bail!("unsupported or malformed digest `{digest}` (expected sha256:<64 hex>)"),
    }
}

/// A content descriptor: what a manifest or index points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl Descriptor {
    pub fn of(media_type: &str, bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest: sha256_digest(bytes),
            size: bytes.len() as u64,
            platform: None,
            annotations: None,
        }
    }
}

/// An image manifest (OCI or Docker v2 schema 2: they share this shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An image index (OCI) or manifest list (Docker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Either kind of document a registry returns for a manifest reference.
#[derive(Debug, Clone)]
pub enum ManifestOrIndex {
    Manifest(Manifest),
    Index(Index),
}

/// Parse a manifest response using its Content-Type, falling back to the `mediaType` field.
pub fn parse_manifest(content_type: Option<&str>, bytes: &[u8]) -> anyhow::Result<ManifestOrIndex> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| anyhow::anyhow!("registry returned a manifest that is not JSON: {e}"))?;
    let field = v
        .get("mediaType")
        .and_then(Value::as_str)
        .map(str::to_string);
    let ct = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
        .filter(|c| c.starts_with("application/vnd."));
    let mt = field.or(ct).unwrap_or_default();
    let is_index = mt == MT_OCI_INDEX
        || mt == MT_DOCKER_LIST
        || (mt.is_empty() && v.get("manifests").is_some());
    if is_index {
        Ok(ManifestOrIndex::Index(serde_json::from_value(v).map_err(
            |e| anyhow::anyhow!("malformed image index: {e}"),
        )?))
    } else if mt == MT_OCI_MANIFEST || mt == MT_DOCKER_MANIFEST || mt.is_empty() {
        Ok(ManifestOrIndex::Manifest(
            serde_json::from_value(v)
                .map_err(|e| anyhow::anyhow!("malformed image manifest: {e}"))?,
        ))
    } else {
        anyhow::bail!("unsupported manifest media type `{mt}` (need an OCI or Docker v2 image)")
    }
}

/// The OCI media type for a layer given possibly as a Docker one (the bytes are identical).
pub fn oci_layer_media_type(mt: &str) -> String {
    match mt {
        MT_DOCKER_LAYER_GZIP => MT_OCI_LAYER_GZIP.to_string(),
        "application/vnd.docker.image.rootfs.diff.tar" => {
            "application/vnd.oci.image.layer.v1.tar".to_string()
        }
        other => other.to_string(),
    }
}

/// Serialize a document canonically: compact JSON with sorted keys (same input, same digest).
pub fn canonical_json<T: Serialize>(doc: &T) -> Vec<u8> {
    let v = serde_json::to_value(doc).expect("image documents serialize");
    serde_json::to_vec(&sort_keys(v)).expect("JSON values serialize")
}

fn sort_keys(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<String, Value> =
                m.into_iter().map(|(k, v)| (k, sort_keys(v))).collect();
            Value::Object(sorted.into_iter().collect::<Map<String, Value>>())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sort_keys).collect()),
        other => other,
    }
}

/// What calops puts on top of a base image's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigChanges {
    pub entrypoint: Vec<String>,
    pub user: String,
    pub exposed_ports: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// RFC 3339 creation time (from SOURCE_DATE_EPOCH or the epoch).
    pub created: String,
    /// diff_id (sha256 of the uncompressed tar) of the layer added on top.
    pub layer_diff_id: String,
    pub history_comment: String,
}

/// Derive the image config from the base image's config JSON and our changes.
///
/// Unknown fields of the base config are kept; `Cmd` is cleared so the entrypoint is exact.
pub fn derive_config(base_config: &[u8], ch: &ConfigChanges) -> anyhow::Result<Vec<u8>> {
    let mut v: Value = serde_json::from_slice(base_config)
        .map_err(|e| anyhow::anyhow!("base image config is not JSON: {e}"))?;
    let root = v
        .as_object_mut()
        .ok_or_else(|| anyhow::anyhow!("base image config is not a JSON object"))?;
    root.insert("created".into(), json!(ch.created));
    let cfg = root
        .entry("config")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| anyhow::anyhow!("base image config has a non-object `config`"))?;
    cfg.insert("Entrypoint".into(), json!(ch.entrypoint));
    cfg.remove("Cmd");
    cfg.insert("User".into(), json!(ch.user));
    let ports = cfg.entry("ExposedPorts").or_insert_with(|| json!({}));
    if !ports.is_object() {
        *ports = json!({});
    }
    for p in &ch.exposed_ports {
        ports[p.as_str()] = json!({});
    }
    let labels = cfg.entry("Labels").or_insert_with(|| json!({}));
    if !labels.is_object() {
        *labels = json!({});
    }
    for (k, val) in &ch.labels {
        labels[k.as_str()] = json!(val);
    }
    let rootfs = root
        .entry("rootfs")
        .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
    match rootfs.get_mut("diff_ids").and_then(Value::as_array_mut) {
        Some(ids) => ids.push(json!(ch.layer_diff_id)),
        None => anyhow::bail!("base image config has no rootfs.diff_ids"),
    }
    let history = root.entry("history").or_insert_with(|| json!([]));
    if let Some(h) = history.as_array_mut() {
        h.push(json!({"created": ch.created, "created_by": ch.history_comment}));
    }
    Ok(canonical_json(&v))
}

/// The manifest for one platform: config plus base layers plus ours.
pub fn build_manifest(config: Descriptor, layers: Vec<Descriptor>) -> Manifest {
    Manifest {
        schema_version: 2,
        media_type: Some(MT_OCI_MANIFEST.to_string()),
        config,
        layers,
        annotations: None,
    }
}

/// The index over per-platform manifests, sorted by platform so the digest is stable.
pub fn build_index(mut manifests: Vec<Descriptor>) -> Index {
    manifests.sort_by(|a, b| a.platform.cmp(&b.platform));
    Index {
        schema_version: 2,
        media_type: Some(MT_OCI_INDEX.to_string()),
        manifests,
        annotations: None,
    }
}

/// RFC 3339 time for image metadata: SOURCE_DATE_EPOCH when given, else the Unix epoch.
pub fn created_time(source_date_epoch: Option<i64>) -> String {
    let secs = source_date_epoch.unwrap_or(0);
    jiff::Timestamp::from_second(secs)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes() -> ConfigChanges {
        ConfigChanges {
            entrypoint: vec!["/usr/local/bin/calops".into(), "serve".into()],
            user: "65532:65532".into(),
            exposed_ports: vec!["8080/tcp".into()],
            labels: [(
                "org.opencontainers.image.revision".to_string(),
                "abc".to_string(),
            )]
            .into_iter()
            .collect(),
            created: created_time(None),
            layer_diff_id: sha256_digest(b"layer"),
            history_comment: "calops image build".into(),
        }
    }

    #[test]
    fn digest_of_empty_is_the_well_known_one() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(digest_hex("sha256:../../etc").is_err());
        assert!(digest_hex(&sha256_digest(b"")).is_ok());
    }

    #[test]
    fn derives_config_keeping_base_fields() {
        let base = br#"{"architecture":"arm64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["sh"],"User":"0"},"rootfs":{"type":"layers","diff_ids":["sha256:1"]},"history":[{"created_by":"base"}]}"#;
        let out = derive_config(base, &changes()).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["architecture"], "arm64");
        assert_eq!(v["config"]["Env"][0], "PATH=/bin");
        assert!(v["config"].get("Cmd").is_none());
        assert_eq!(v["config"]["Entrypoint"][1], "serve");
        assert_eq!(v["config"]["User"], "65532:65532");
        assert!(v["config"]["ExposedPorts"]["8080/tcp"].is_object());
        assert_eq!(
            v["config"]["Labels"]["org.opencontainers.image.revision"],
            "abc"
        );
        assert_eq!(v["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
        assert_eq!(v["history"].as_array().unwrap().len(), 2);
        assert_eq!(v["created"], "1970-01-01T00:00:00Z");
        // Deterministic: the same input gives the same bytes.
        assert_eq!(out, derive_config(base, &changes()).unwrap());
    }

    #[test]
    fn config_without_diff_ids_is_an_error() {
        let e = derive_config(br#"{"rootfs":{}}"#, &changes()).unwrap_err();
        assert!(e.to_string().contains("diff_ids"));
        assert!(derive_config(b"[1]", &changes()).is_err());
    }

    #[test]
    fn index_is_sorted_and_canonical() {
        let mut a = Descriptor::of(MT_OCI_MANIFEST, b"a");
        a.platform = Some(Platform::linux_arm64());
        let mut b = Descriptor::of(MT_OCI_MANIFEST, b"b");
        b.platform = Some(Platform::linux_amd64());
        let i1 = canonical_json(&build_index(vec![a.clone(), b.clone()]));
        let i2 = canonical_json(&build_index(vec![b, a]));
        assert_eq!(i1, i2);
        let s = String::from_utf8(i1).unwrap();
        assert!(s.find("amd64").unwrap() < s.find("arm64").unwrap());
        assert!(s.starts_with(r#"{"manifests":"#), "{s}");
    }

    #[test]
    fn parses_manifest_kinds_by_media_type() {
        let idx = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}"#;
        assert!(matches!(
            parse_manifest(None, idx).unwrap(),
            ManifestOrIndex::Index(_)
        ));
        let m = br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:1","size":1},"layers":[]}"#;
        assert!(matches!(
            parse_manifest(Some(MT_OCI_MANIFEST), m).unwrap(),
            ManifestOrIndex::Manifest(_)
        ));
        let e = parse_manifest(
            None,
            br#"{"mediaType":"application/vnd.docker.distribution.manifest.v1+json"}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("unsupported manifest media type"));
        assert_eq!(
            oci_layer_media_type(MT_DOCKER_LAYER_GZIP),
            MT_OCI_LAYER_GZIP
        );
        assert_eq!(created_time(Some(86400)), "1970-01-02T00:00:00Z");
    }
}
