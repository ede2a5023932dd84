//! The image pipeline: check toolchains → resolve the base image → build binaries →
//! assemble per-platform images and the index → push (or write an OCI layout).

use super::auth::CredentialSource;
use super::layer::{binary_entries, build_layer, Layer};
use super::platform::Platform;
use super::reference::ImageReference;
use super::registry::{RegistryClient, StatsSnapshot};
use super::spec::{
    self, canonical_json, Descriptor, Manifest, ManifestOrIndex, MT_OCI_CONFIG, MT_OCI_INDEX,
    MT_OCI_MANIFEST,
};
use super::toolchain::{self, CargoBuild, CargoCommand, CrossPlan, Overrides};
use super::{buildx, BINARY_PATH};
use crate::error::actionable;
use crate::ui::Ui;
use bytes::Bytes;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Builder {
    /// calops cross-compiles and assembles the image itself (no Docker).
    Native,
    /// `docker buildx build` with the repository's Dockerfile.
    Buildx,
}

/// Where each platform's binary comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinarySource {
    /// Build it with cargo (cross-compiling where needed).
    Cargo(CargoBuild),
    /// Already built: one file per platform.
    Prebuilt(BTreeMap<Platform, PathBuf>),
}

/// Everything an image build needs. The profile fills this in; the CLI has flags for each.
#[derive(Debug, Clone)]
pub struct ImageBuildOptions {
    /// `registry/repository` to push to (no tag).
    pub repository: String,
    pub tag: Option<String>,
    /// Base image reference (default [`super::DEFAULT_BASE`]); pin it by digest.
    pub base: String,
    pub platforms: Vec<Platform>,
    /// Image labels: source revision, version, profile hash.
    pub labels: BTreeMap<String, String>,
    pub builder: Builder,
    pub credentials: CredentialSource,
    /// Plain HTTP for loopback registries (127.0.0.1, localhost) — for tests and local use.
    pub insecure_registry: bool,
    pub push: bool,
    pub binary: BinarySource,
    pub toolchain: Overrides,
    /// Also (or instead of pushing) write an OCI image layout here.
    pub layout_dir: Option<PathBuf>,
    /// Tar mtimes and `created`: SOURCE_DATE_EPOCH, or 0.
    pub source_date_epoch: Option<i64>,
    /// The port `calops serve` listens on (EXPOSE).
    pub port: u16,
    /// The user the container runs as (`65532:65532` is distroless `nonroot`).
    pub user: String,
}

impl ImageBuildOptions {
    /// Options with the defaults for `calops` itself, building from `manifest_path`.
    pub fn new(repository: &str, manifest_path: PathBuf, target_dir: PathBuf) -> ImageBuildOptions {
        ImageBuildOptions {
            repository: repository.to_string(),
            tag: None,
            base: super::DEFAULT_BASE.to_string(),
            platforms: vec![Platform::linux_amd64(), Platform::linux_arm64()],
            labels: BTreeMap::new(),
            builder: Builder::Native,
            credentials: CredentialSource::DockerConfig,
            insecure_registry: false,
            push: false,
            binary: BinarySource::Cargo(CargoBuild {
                manifest_path,
                bin: "calops".into(),
                profile: "release".into(),
                target_dir,
                locked: true,
            }),
            toolchain: Overrides::default(),
            layout_dir: None,
            source_date_epoch: None,
            port: 8080,
            user: format!("{0}:{0}", super::layer::NONROOT_ID),
        }
    }
}

/// One layer as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerInfo {
    pub digest: String,
    pub size: u64,
    pub media_type: String,
    /// `base` or `calops`.
    pub from: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlatformImage {
    pub platform: String,
    pub manifest_digest: String,
    pub config_digest: String,
    pub layers: Vec<LayerInfo>,
    /// How the binary was built (e.g. `native cargo build`, `/usr/bin/rustc with ... std`).
    pub built_with: String,
}

/// The result: what to deploy, pinned by digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageRef {
    pub repository: String,
    /// The index digest (`sha256:...`).
    pub digest: String,
    pub tag: Option<String>,
    pub platforms: Vec<PlatformImage>,
    /// The base image, resolved to the digest that was used.
    pub base: String,
    pub pushed: bool,
    pub layout_dir: Option<PathBuf>,
    pub uploads: Option<StatsSnapshot>,
    pub timings_ms: BTreeMap<String, u64>,
}

impl ImageRef {
    /// `repository@sha256:...`: what deploys reference.
    pub fn pinned(&self) -> String {
        format!("{}@{}", self.repository, self.digest)
    }
}

/// The base image for one platform: its manifest and config, and where its blobs live.
#[derive(Debug, Clone)]
pub struct BasePlatform {
    pub platform: Platform,
    pub manifest: Manifest,
    pub config: Bytes,
}

/// One assembled platform image (everything but base layer bytes, which stay in the registry).
#[derive(Debug, Clone)]
pub struct Assembled {
    pub platform: Platform,
    pub layer: Layer,
    pub config: Bytes,
    pub config_desc: Descriptor,
    pub base_layers: Vec<Descriptor>,
    pub manifest: Bytes,
    pub manifest_desc: Descriptor,
}

/// Assemble one platform image from its base and binary. Pure.
pub fn assemble(
    base: &BasePlatform,
    binary: Vec<u8>,
    opts: &ImageBuildOptions,
) -> anyhow::Result<Assembled> {
    let mtime = opts.source_date_epoch.unwrap_or(0).max(0) as u64;
    let layer = build_layer(binary_entries(BINARY_PATH, binary), mtime)?;
    let changes = spec::ConfigChanges {
        entrypoint: vec![BINARY_PATH.to_string(), "serve".to_string()],
        user: opts.user.clone(),
        exposed_ports: vec![format!("{}/tcp", opts.port)],
        labels: opts.labels.clone(),
        created: spec::created_time(opts.source_date_epoch),
        layer_diff_id: layer.diff_id.clone(),
        history_comment: format!("calops image build: COPY calops {BINARY_PATH}"),
    };
    let config = Bytes::from(spec::derive_config(&base.config, &changes)?);
    let config_desc = Descriptor::of(MT_OCI_CONFIG, &config);
    let base_layers: Vec<Descriptor> = base
        .manifest
        .layers
        .iter()
        .map(|l| Descriptor {
            media_type: spec::oci_layer_media_type(&l.media_type),
            digest: l.digest.clone(),
            size: l.size,
            platform: None,
            annotations: None,
        })
        .collect();
    let mut layers = base_layers.clone();
    layers.push(layer.descriptor.clone());
    let manifest = Bytes::from(canonical_json(&spec::build_manifest(
        config_desc.clone(),
        layers,
    )));
    let mut manifest_desc = Descriptor::of(MT_OCI_MANIFEST, &manifest);
    manifest_desc.platform = Some(base.platform.clone());
    Ok(Assembled {
        platform: base.platform.clone(),
        layer,
        config,
        config_desc,
        base_layers,
        manifest,
        manifest_desc,
    })
}

/// Assemble several platforms in parallel (layer compression dominates). Pure.
pub fn assemble_all(
    inputs: Vec<(&BasePlatform, Vec<u8>)>,
    opts: &ImageBuildOptions,
) -> anyhow::Result<Vec<Assembled>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = inputs
            .into_iter()
            .map(|(base, bin)| s.spawn(move || assemble(base, bin, opts)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("image assembly thread panicked"))?
            })
            .collect()
    })
}

/// The image index over assembled platforms. Pure.
pub fn assemble_index(images: &[Assembled]) -> (Bytes, Descriptor) {
    let idx = spec::build_index(images.iter().map(|a| a.manifest_desc.clone()).collect());
    let bytes = Bytes::from(canonical_json(&idx));
    let desc = Descriptor::of(MT_OCI_INDEX, &bytes);
    (bytes, desc)
}

/// Pick the wanted platforms' manifests from a base image's index (or single manifest).
/// Pure: returns (wanted, manifest digest, actual platform) or an error naming what exists.
pub fn select_platforms(
    base_ref: &str,
    doc: &ManifestOrIndex,
    single_config_platform: Option<Platform>,
    wanted: &[Platform],
) -> anyhow::Result<Vec<(Platform, Option<String>)>> {
    let available: Vec<Platform> = match doc {
        ManifestOrIndex::Index(i) => i
            .manifests
            .iter()
            .filter_map(|d| d.platform.clone())
            .collect(),
        ManifestOrIndex::Manifest(_) => single_config_platform.clone().into_iter().collect(),
    };
    let mut out = Vec::new();
    for w in wanted {
        let found = match doc {
            ManifestOrIndex::Index(i) => i
                .manifests
                .iter()
                .find(|d| d.platform.as_ref().is_some_and(|p| w.matches(p)))
                .map(|d| {
                    (
                        d.platform.clone().unwrap_or_else(|| w.clone()),
                        Some(d.digest.clone()),
                    )
                }),
            ManifestOrIndex::Manifest(_) => single_config_platform
                .as_ref()
                .filter(|p| w.matches(p))
                .map(|p| (p.clone(), None)),
        };
        match found {
            Some(f) => out.push(f),
            None => {
                let have: Vec<String> = available.iter().map(|p| p.to_string()).collect();
                return Err(actionable(
                    format!(
                        "base image {base_ref} has no {w} image (it has: {})",
                        if have.is_empty() { "no platform information".to_string() } else { have.join(", ") }
                    ),
                    "use a multi-arch base image that includes every --platform, or drop the platform",
                ));
            }
        }
    }
    Ok(out)
}

struct Clients {
    base: Arc<RegistryClient>,
    target: Option<Arc<RegistryClient>>,
}

async fn client_for(
    r: &ImageReference,
    opts: &ImageBuildOptions,
) -> anyhow::Result<RegistryClient> {
    let plain = opts.insecure_registry && r.is_loopback();
    // Static credentials, or an OCIR token fetched with the OCI API key (see `ocir`).
    let (creds, from) = super::ocir::resolve(&opts.credentials, &r.registry, plain).await?;
    RegistryClient::new(&r.registry, r.api_host(), plain, creds, &from)
}

/// Fetch the base image's per-platform manifests and configs.
pub async fn resolve_base(
    client: &RegistryClient,
    base: &ImageReference,
    wanted: &[Platform],
) -> anyhow::Result<(String, Vec<BasePlatform>)> {
    let top = client
        .get_manifest(&base.repository, base.reference())
        .await?;
    let doc = spec::parse_manifest(top.content_type.as_deref(), &top.bytes)?;
    let mut single_platform = None;
    let mut single_config = None;
    if let ManifestOrIndex::Manifest(m) = &doc {
        let cfg = client.get_blob(&base.repository, &m.config.digest).await?;
        #[derive(serde::Deserialize)]
        struct P {
            os: Option<String>,
            architecture: Option<String>,
            variant: Option<String>,
        }
        let p: P = serde_json::from_slice(&cfg)
            .map_err(|e| anyhow::anyhow!("base image config is not JSON: {e}"))?;
        single_platform = Some(Platform {
            os: p.os.unwrap_or_default(),
            architecture: p.architecture.unwrap_or_default(),
            variant: p.variant,
        });
        single_config = Some(cfg);
    }
    let base_name = base.to_string();
    let picks = select_platforms(&base_name, &doc, single_platform, wanted)?;
    let mut out = Vec::new();
    for (platform, digest) in picks {
        let (manifest, config) = match (digest, &doc) {
            (Some(d), _) => {
                let m = client.get_manifest(&base.repository, &d).await?;
                let ManifestOrIndex::Manifest(m) =
                    spec::parse_manifest(m.content_type.as_deref(), &m.bytes)?
                else {
                    anyhow::bail!("base image {base_name}: {platform} entry {d} is an index, not an image manifest");
                };
                let cfg = client.get_blob(&base.repository, &m.config.digest).await?;
                (m, cfg)
            }
            (None, ManifestOrIndex::Manifest(m)) => {
                (m.clone(), single_config.clone().unwrap_or_default())
            }
            (None, ManifestOrIndex::Index(_)) => {
                unreachable!("index entries always carry a digest")
            }
        };
        out.push(BasePlatform {
            platform,
            manifest,
            config,
        });
    }
    let pinned = format!("{}@{}", base.name(), top.digest);
    Ok((pinned, out))
}

/// Check that every platform can be built, before any network or compile work.
pub fn plan_builds(
    opts: &ImageBuildOptions,
) -> anyhow::Result<Vec<(Platform, Option<CargoCommand>, String)>> {
    match &opts.binary {
        BinarySource::Prebuilt(map) => opts
            .platforms
            .iter()
            .map(|p| {
                let path = map.get(p).ok_or_else(|| {
                    actionable(
                        format!("no prebuilt binary given for {p}"),
                        format!("pass --binary {p}=PATH, or let calops build it"),
                    )
                })?;
                anyhow::ensure!(
                    path.is_file(),
                    "prebuilt binary {} for {p} does not exist",
                    path.display()
                );
                Ok((p.clone(), None, format!("prebuilt {}", path.display())))
            })
            .collect(),
        BinarySource::Cargo(build) => {
            let targets: Vec<&str> = opts
                .platforms
                .iter()
                .filter_map(|p| p.rust_target())
                .collect();
            let facts = toolchain::probe(&opts.toolchain, &targets);
            opts.platforms
                .iter()
                .map(|p| {
                    let target = p
                        .rust_target()
                        .ok_or_else(|| anyhow::anyhow!("unsupported platform {p}"))?;
                    let plan = toolchain::plan(target, &facts)?;
                    let cmd = toolchain::cargo_command(&plan, build);
                    let how = match &plan {
                        CrossPlan::Native => format!("native cargo build ({target})"),
                        other => other.describe(),
                    };
                    Ok((p.clone(), Some(cmd), how))
                })
                .collect()
        }
    }
}

fn validate(opts: &ImageBuildOptions) -> anyhow::Result<(ImageReference, ImageReference)> {
    anyhow::ensure!(!opts.platforms.is_empty(), "no --platform given");
    let mut seen = std::collections::BTreeSet::new();
    for p in &opts.platforms {
        anyhow::ensure!(seen.insert(p.clone()), "platform {p} given twice");
    }
    let target: ImageReference = opts.repository.parse().map_err(|e: String| {
        actionable(
            e,
            "pass --repo REGISTRY/REPOSITORY, e.g. syd.ocir.io/NAMESPACE/calops",
        )
    })?;
    anyhow::ensure!(
        target.tag.is_none() && target.digest.is_none(),
        "--repo {} must not carry a tag or digest; use --tag",
        opts.repository
    );
    if let Some(t) = &opts.tag {
        format!("{}:{t}", opts.repository)
            .parse::<ImageReference>()
            .map_err(|e| actionable(e, "use a tag of letters, digits, '_', '.', '-'"))?;
    }
    let base: ImageReference = opts
        .base
        .parse()
        .map_err(|e: String| actionable(e, "fix --base (or the profile's image.base)"))?;
    Ok((target, base))
}

/// Build (and optionally push) the image. Blocking; creates its own async runtime.
pub fn build_image(opts: &ImageBuildOptions, ui: &Ui) -> anyhow::Result<ImageRef> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(build_image_async(opts, ui))
}

/// Build (and optionally push) the image.
pub async fn build_image_async(opts: &ImageBuildOptions, ui: &Ui) -> anyhow::Result<ImageRef> {
    let (target_ref, base_ref) = validate(opts)?;
    if opts.builder == Builder::Buildx {
        return build_with_buildx(opts, &target_ref, ui).await;
    }
    let mut timings = BTreeMap::new();
    let t = Instant::now();
    let plans = plan_builds(opts)?;

    // Clients: one per registry, shared when base and target live on the same one.
    let base_client = Arc::new(client_for(&base_ref, opts).await?);
    let clients = Clients {
        target: if !opts.push {
            None
        } else if target_ref.registry == base_ref.registry {
            Some(base_client.clone())
        } else {
            Some(Arc::new(client_for(&target_ref, opts).await?))
        },
        base: base_client,
    };

    let sp = ui.spinner(format!("resolving base image {base_ref}"));
    let resolved = resolve_base(&clients.base, &base_ref, &opts.platforms).await;
    sp.finish_and_clear();
    let (base_pinned, bases) = resolved?;
    timings.insert("resolve_base".into(), ms(t.elapsed()));

    // Build binaries (blocking cargo runs).
    let mut binaries = BTreeMap::new();
    let mut built_with = BTreeMap::new();
    for (platform, cmd, how) in plans {
        let t = Instant::now();
        let path = match (cmd, &opts.binary) {
            (Some(cmd), _) => {
                ui.detail(format!("building {platform}: {}", cmd.display()));
                let sp = ui.spinner(format!("cargo build for {platform} ({how})"));
                let r = tokio::task::spawn_blocking(move || toolchain::run_cargo(&cmd)).await?;
                sp.finish_and_clear();
                r?
            }
            (None, BinarySource::Prebuilt(map)) => map[&platform].clone(),
            (None, BinarySource::Cargo(_)) => unreachable!("cargo builds always carry a command"),
        };
        timings.insert(format!("build_{platform}"), ms(t.elapsed()));
        binaries.insert(platform.clone(), path);
        built_with.insert(platform, how);
    }

    let t = Instant::now();
    let mut inputs = Vec::new();
    for (wanted, base) in opts.platforms.iter().zip(&bases) {
        let path = &binaries[wanted];
        let bin =
            std::fs::read(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        inputs.push((base, bin));
    }
    let images: Vec<(Platform, Assembled)> = opts
        .platforms
        .iter()
        .cloned()
        .zip(assemble_all(inputs, opts)?)
        .collect();
    let assembled: Vec<Assembled> = images.iter().map(|(_, a)| a.clone()).collect();
    let (index_bytes, index_desc) = assemble_index(&assembled);
    timings.insert("assemble".into(), ms(t.elapsed()));

    if let Some(dir) = &opts.layout_dir {
        let t = Instant::now();
        let mut blobs: BTreeMap<String, Bytes> = BTreeMap::new();
        for a in &assembled {
            for l in &a.base_layers {
                if !blobs.contains_key(&l.digest) {
                    let b = clients
                        .base
                        .get_blob(&base_ref.repository, &l.digest)
                        .await?;
                    blobs.insert(l.digest.clone(), b);
                }
            }
            blobs.insert(
                a.layer.descriptor.digest.clone(),
                Bytes::from(a.layer.gz.clone()),
            );
            blobs.insert(a.config_desc.digest.clone(), a.config.clone());
            blobs.insert(a.manifest_desc.digest.clone(), a.manifest.clone());
        }
        blobs.insert(index_desc.digest.clone(), index_bytes.clone());
        super::layout::write_layout(
            dir,
            &index_desc,
            opts.tag.as_deref().unwrap_or("latest"),
            &blobs,
        )?;
        timings.insert("write_layout".into(), ms(t.elapsed()));
    }

    let mut uploads = None;
    if let Some(target) = &clients.target {
        let t = Instant::now();
        push_all(
            target,
            &clients.base,
            &base_ref,
            &target_ref,
            &assembled,
            ui,
        )
        .await?;
        let reference = opts
            .tag
            .clone()
            .unwrap_or_else(|| index_desc.digest.clone());
        target
            .put_manifest(
                &target_ref.repository,
                &reference,
                MT_OCI_INDEX,
                index_bytes.clone(),
            )
            .await?;
        uploads = Some(target.stats.snapshot());
        timings.insert("push".into(), ms(t.elapsed()));
    }

    let platforms = images
        .iter()
        .map(|(wanted, a)| {
            let mut layers: Vec<LayerInfo> = a
                .base_layers
                .iter()
                .map(|l| LayerInfo {
                    digest: l.digest.clone(),
                    size: l.size,
                    media_type: l.media_type.clone(),
                    from: "base".into(),
                })
                .collect();
            layers.push(LayerInfo {
                digest: a.layer.descriptor.digest.clone(),
                size: a.layer.descriptor.size,
                media_type: a.layer.descriptor.media_type.clone(),
                from: "calops".into(),
            });
            PlatformImage {
                platform: a.platform.to_string(),
                manifest_digest: a.manifest_desc.digest.clone(),
                config_digest: a.config_desc.digest.clone(),
                layers,
                built_with: built_with.get(wanted).cloned().unwrap_or_default(),
            }
        })
        .collect();
    Ok(ImageRef {
        repository: target_ref.name(),
        digest: index_desc.digest,
        tag: opts.tag.clone(),
        platforms,
        base: base_pinned,
        pushed: opts.push,
        layout_dir: opts.layout_dir.clone(),
        uploads,
        timings_ms: timings,
    })
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// Push every blob (skipping what the target has, mounting what the base repository on the
/// same registry has) and every per-platform manifest. The index is put by the caller.
pub async fn push_all(
    target: &RegistryClient,
    base: &RegistryClient,
    base_ref: &ImageReference,
    target_ref: &ImageReference,
    images: &[Assembled],
    ui: &Ui,
) -> anyhow::Result<()> {
    let repo = &target_ref.repository;
    let same_registry = target.registry() == base.registry();
    let mut done = std::collections::BTreeSet::new();
    for a in images {
        for l in &a.base_layers {
            if !done.insert(l.digest.clone()) {
                continue;
            }
            if target.blob_exists(repo, &l.digest, true).await? {
                target
                    .stats
                    .blobs_skipped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                continue;
            }
            if same_registry
                && target
                    .mount_blob(repo, &base_ref.repository, &l.digest)
                    .await?
            {
                continue;
            }
            let data = base.get_blob(&base_ref.repository, &l.digest).await?;
            upload(target, repo, &l.digest, data, ui, "base layer").await?;
        }
        let ours = [
            (
                a.layer.descriptor.digest.clone(),
                Bytes::from(a.layer.gz.clone()),
                "calops layer",
            ),
            (a.config_desc.digest.clone(), a.config.clone(), "config"),
        ];
        for (digest, data, what) in ours {
            if !done.insert(digest.clone()) {
                continue;
            }
            if target.blob_exists(repo, &digest, true).await? {
                target
                    .stats
                    .blobs_skipped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                continue;
            }
            upload(target, repo, &digest, data, ui, what).await?;
        }
        target
            .put_manifest(
                repo,
                &a.manifest_desc.digest,
                MT_OCI_MANIFEST,
                a.manifest.clone(),
            )
            .await?;
    }
    Ok(())
}

async fn upload(
    target: &RegistryClient,
    repo: &str,
    digest: &str,
    data: Bytes,
    ui: &Ui,
    what: &str,
) -> anyhow::Result<()> {
    let short = &digest[7..19.min(digest.len())];
    let bar = ui.bytes_bar(data.len() as u64, format!("{what} {short}"));
    let len = data.len() as u64;
    target
        .upload_blob(repo, digest, data, &|sent| bar.set_position(sent))
        .await?;
    target
        .stats
        .bytes_uploaded
        .fetch_add(len, std::sync::atomic::Ordering::Relaxed);
    bar.finish_and_clear();
    Ok(())
}

async fn build_with_buildx(
    opts: &ImageBuildOptions,
    target_ref: &ImageReference,
    ui: &Ui,
) -> anyhow::Result<ImageRef> {
    let BinarySource::Cargo(build) = &opts.binary else {
        anyhow::bail!("--builder buildx builds from source; it cannot use prebuilt binaries");
    };
    let context = build
        .manifest_path
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let work = tempfile::tempdir()?;
    let tag = opts.tag.clone().unwrap_or_else(|| "latest".into());
    let bo = buildx::BuildxOptions {
        dockerfile: context.join("Dockerfile"),
        context,
        image: format!("{}:{tag}", target_ref.name()),
        platforms: opts.platforms.clone(),
        push: opts.push,
        metadata_file: work.path().join("metadata.json"),
        oci_output: opts
            .layout_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("calops-image.oci.tar")),
        build_args: [("BASE_IMAGE".to_string(), opts.base.clone())]
            .into_iter()
            .collect(),
        labels: opts.labels.clone(),
    };
    ui.detail(buildx::command(&bo).join(" "));
    let digest = tokio::task::spawn_blocking(move || buildx::run(&bo)).await??;
    Ok(ImageRef {
        repository: target_ref.name(),
        digest,
        tag: opts.tag.clone(),
        platforms: opts
            .platforms
            .iter()
            .map(|p| PlatformImage {
                platform: p.to_string(),
                manifest_digest: String::new(),
                config_digest: String::new(),
                layers: vec![],
                built_with: "docker buildx".into(),
            })
            .collect(),
        base: opts.base.clone(),
        pushed: opts.push,
        layout_dir: None,
        uploads: None,
        timings_ms: BTreeMap::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::spec::{Index, MT_DOCKER_LAYER_GZIP};

    fn base(platform: Platform) -> BasePlatform {
        let cfg = format!(
            r#"{{"architecture":"{}","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["sha256:{}"]}}}}"#,
            platform.architecture,
            "1".repeat(64)
        );
        let mut l = Descriptor::of(MT_DOCKER_LAYER_GZIP, b"base layer");
        l.platform = None;
        BasePlatform {
            platform,
            manifest: spec::build_manifest(Descriptor::of(MT_OCI_CONFIG, cfg.as_bytes()), vec![l]),
            config: Bytes::from(cfg),
        }
    }

    fn opts() -> ImageBuildOptions {
        ImageBuildOptions::new(
            "127.0.0.1:5000/calops",
            "Cargo.toml".into(),
            "target".into(),
        )
    }

    #[test]
    fn assembly_is_reproducible_and_layers_stack() {
        let b = base(Platform::linux_arm64());
        let a1 = assemble(&b, b"binary".to_vec(), &opts()).unwrap();
        let a2 = assemble(&b, b"binary".to_vec(), &opts()).unwrap();
        assert_eq!(a1.manifest_desc, a2.manifest_desc);
        let m: Manifest = serde_json::from_slice(&a1.manifest).unwrap();
        assert_eq!(m.layers.len(), 2);
        assert_eq!(
            m.layers[0].media_type,
            spec::MT_OCI_LAYER_GZIP,
            "docker types become OCI"
        );
        assert_eq!(m.layers[1], a1.layer.descriptor);
        let cfg: serde_json::Value = serde_json::from_slice(&a1.config).unwrap();
        assert_eq!(
            cfg["config"]["Entrypoint"],
            serde_json::json!([BINARY_PATH, "serve"])
        );
        assert_eq!(cfg["config"]["User"], "65532:65532");
        assert_eq!(cfg["rootfs"]["diff_ids"][1], a1.layer.diff_id.as_str());
        let a3 = assemble(&b, b"binary2".to_vec(), &opts()).unwrap();
        assert_ne!(a3.manifest_desc.digest, a1.manifest_desc.digest);
        let (idx, desc) = assemble_index(&[
            a1.clone(),
            assemble(&base(Platform::linux_amd64()), b"x".to_vec(), &opts()).unwrap(),
        ]);
        let i: Index = serde_json::from_slice(&idx).unwrap();
        assert_eq!(i.manifests.len(), 2);
        assert_eq!(desc.digest, spec::sha256_digest(&idx));
    }

    #[test]
    fn missing_base_platform_is_named() {
        let mut d = Descriptor::of(MT_OCI_MANIFEST, b"m");
        d.platform = Some(Platform::linux_amd64());
        let idx = ManifestOrIndex::Index(spec::build_index(vec![d]));
        let e = select_platforms(
            "r/base:1",
            &idx,
            None,
            &[Platform::linux_amd64(), Platform::linux_arm64()],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("base image r/base:1 has no linux/arm64 image (it has: linux/amd64)"),
            "{e}"
        );
        let ok = select_platforms("r/base:1", &idx, None, &[Platform::linux_amd64()]).unwrap();
        assert_eq!(ok[0].1.as_deref(), Some(spec::sha256_digest(b"m").as_str()));
    }

    #[test]
    fn validation_rejects_bad_references() {
        let mut o = opts();
        o.repository = "127.0.0.1:5000/calops:tag".into();
        assert!(validate(&o)
            .unwrap_err()
            .to_string()
            .contains("must not carry a tag"));
        let mut o = opts();
        o.base = "Bad Base".into();
        assert!(validate(&o)
            .unwrap_err()
            .to_string()
            .contains("invalid image reference"));
        let mut o = opts();
        o.platforms.push(Platform::linux_amd64());
        assert!(validate(&o)
            .unwrap_err()
            .to_string()
            .contains("given twice"));
    }
}
