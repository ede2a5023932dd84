//! The Docker path: `docker buildx build` over the repository's Dockerfile. The argv is built
//! by a pure function; `run` executes it and reads the pushed digest from the metadata file.

use super::platform::Platform;
use crate::error::actionable;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildxOptions {
    /// Build context (the repository root) and Dockerfile path.
    pub context: PathBuf,
    pub dockerfile: PathBuf,
    /// `registry/repository:tag`.
    pub image: String,
    pub platforms: Vec<Platform>,
    pub push: bool,
    /// Where buildx writes its metadata JSON (holds `containerimage.digest`).
    pub metadata_file: PathBuf,
    /// Without `push`: the OCI archive to write instead.
    pub oci_output: PathBuf,
    pub build_args: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

/// The argv (program first) for `docker buildx build`.
pub fn command(o: &BuildxOptions) -> Vec<String> {
    let platforms: Vec<String> = o.platforms.iter().map(|p| p.to_string()).collect();
    let mut argv: Vec<String> = ["docker", "buildx", "build"]
        .into_iter()
        .map(String::from)
        .collect();
    argv.push(format!("--platform={}", platforms.join(",")));
    argv.push("--provenance=false".into());
    argv.push(format!("--file={}", o.dockerfile.display()));
    argv.push(format!("--tag={}", o.image));
    for (k, v) in &o.build_args {
        argv.push(format!("--build-arg={k}={v}"));
    }
    for (k, v) in &o.labels {
        argv.push(format!("--label={k}={v}"));
    }
    if o.push {
        argv.push("--push".into());
    } else {
        argv.push(format!("--output=type=oci,dest={}", o.oci_output.display()));
    }
    argv.push(format!("--metadata-file={}", o.metadata_file.display()));
    argv.push(o.context.display().to_string());
    argv
}

/// The image (index) digest from buildx's metadata file.
pub fn parse_metadata(text: &str) -> anyhow::Result<String> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| anyhow::anyhow!("buildx metadata file is not JSON: {e}"))?;
    let d = v
        .get("containerimage.digest")
        .and_then(|d| d.as_str())
        .ok_or_else(|| anyhow::anyhow!("buildx metadata has no containerimage.digest"))?;
    super::spec::digest_hex(d)?;
    Ok(d.to_string())
}

/// Run buildx; returns the index digest.
pub fn run(o: &BuildxOptions) -> anyhow::Result<String> {
    let docker = which::which("docker").map_err(|_| {
        actionable(
            "`docker` is not installed, so --builder buildx cannot run",
            "install Docker with the buildx plugin, or use --builder native (no Docker needed)",
        )
    })?;
    let argv = command(o);
    let status = std::process::Command::new(docker)
        .args(&argv[1..])
        .status()
        .map_err(|e| anyhow::anyhow!("cannot run docker: {e}"))?;
    if !status.success() {
        return Err(actionable(
            format!("`{}` failed ({status})", argv.join(" ")),
            "read buildx's output above; `docker buildx ls` shows whether a multi-platform builder exists (`docker buildx create --use`)",
        ));
    }
    let text = std::fs::read_to_string(&o.metadata_file).map_err(|e| {
        anyhow::anyhow!("reading buildx metadata {}: {e}", o.metadata_file.display())
    })?;
    parse_metadata(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> BuildxOptions {
        BuildxOptions {
            context: ".".into(),
            dockerfile: "Dockerfile".into(),
            image: "syd.ocir.io/ns/calops:1.0".into(),
            platforms: vec![Platform::linux_amd64(), Platform::linux_arm64()],
            push: true,
            metadata_file: "/tmp/m.json".into(),
            oci_output: "/tmp/o.tar".into(),
            build_args: [(
                "BASE_IMAGE".to_string(),
                "gcr.io/distroless/cc-debian12:nonroot".to_string(),
            )]
            .into_iter()
            .collect(),
            labels: [(
                "org.opencontainers.image.revision".to_string(),
                "abc".to_string(),
            )]
            .into_iter()
            .collect(),
        }
    }

    #[test]
    fn builds_the_multi_platform_push_command() {
        assert_eq!(
            command(&opts()).join(" "),
            "docker buildx build --platform=linux/amd64,linux/arm64 --provenance=false --file=Dockerfile --tag=syd.ocir.io/ns/calops:1.0 --build-arg=BASE_IMAGE=gcr.io/distroless/cc-debian12:nonroot --label=org.opencontainers.image.revision=abc --push --metadata-file=/tmp/m.json ."
        );
        let mut o = opts();
        o.push = false;
        let argv = command(&o);
        assert!(argv.contains(&"--output=type=oci,dest=/tmp/o.tar".to_string()));
        assert!(!argv.contains(&"--push".to_string()));
    }

    #[test]
    fn reads_the_digest_from_metadata() {
        let d = format!("sha256:{}", "ab".repeat(32));
        let text = format!(r#"{{"containerimage.digest":"{d}","image.name":"x"}}"#);
        assert_eq!(parse_metadata(&text).unwrap(), d);
        assert!(parse_metadata("{}")
            .unwrap_err()
            .to_string()
            .contains("containerimage.digest"));
        assert!(parse_metadata(r#"{"containerimage.digest":"md5:1"}"#).is_err());
    }
}
