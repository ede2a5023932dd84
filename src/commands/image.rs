//! `calops image build [--push]`: flags → [`ImageBuildOptions`] → [`build_image`] → report.

use crate::cli::{ImageBuildArgs, ImageBuilderArg, ImageCommand};
use crate::error::actionable;
use crate::image::auth::CredentialSource;
use crate::image::toolchain::CargoBuild;
use crate::image::{build_image, BinarySource, Builder, ImageBuildOptions, ImageRef, Platform};
use crate::ui::Ui;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub fn run(cmd: ImageCommand, ui: &Ui) -> anyhow::Result<i32> {
    match cmd {
        ImageCommand::Build(args) => build(&args, ui),
    }
}

fn build(args: &ImageBuildArgs, ui: &Ui) -> anyhow::Result<i32> {
    let opts = options(args)?;
    if opts.insecure_registry {
        for r in [&opts.repository, &opts.base] {
            if let Ok(r) = r.parse::<crate::image::reference::ImageReference>() {
                if !r.is_loopback() {
                    ui.warn(format!(
                        "--insecure-registry applies to loopback registries only; {} stays on HTTPS",
                        r.registry
                    ));
                }
            }
        }
    }
    let image = build_image(&opts, ui)?;
    let doc = serde_json::json!({ "status": "ok", "image": image, "pinned": image.pinned() });
    ui.result(&doc, || human(&image));
    Ok(0)
}

fn human(i: &ImageRef) -> String {
    let mut s = String::new();
    for p in &i.platforms {
        let size: u64 = p.layers.iter().map(|l| l.size).sum();
        s.push_str(&format!(
            "{:<14} {}  {} layers, {:.1} MB  ({})\n",
            p.platform,
            p.manifest_digest,
            p.layers.len(),
            size as f64 / 1e6,
            p.built_with
        ));
    }
    s.push_str(&format!("base   {}\n", i.base));
    if let Some(u) = &i.uploads {
        s.push_str(&format!(
            "uploaded {} blobs ({:.1} MB), {} already present, {} mounted\n",
            u.blobs_uploaded,
            u.bytes_uploaded as f64 / 1e6,
            u.blobs_skipped,
            u.blobs_mounted
        ));
    }
    if let Some(d) = &i.layout_dir {
        s.push_str(&format!("OCI layout written to {}\n", d.display()));
    }
    if i.pushed {
        s.push_str(&format!("pushed {}\n", i.pinned()));
    } else {
        s.push_str(&format!("built {} (not pushed)\n", i.pinned()));
    }
    s
}

/// Turn flags into options. Every value is checked here, so the pipeline trusts them.
pub fn options(a: &ImageBuildArgs) -> anyhow::Result<ImageBuildOptions> {
    let manifest_path = absolute(&a.manifest_path)?;
    if !manifest_path.is_file() {
        return Err(actionable(
            format!("{} does not exist", manifest_path.display()),
            "run from the calops source directory or pass --manifest-path PATH/Cargo.toml",
        ));
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_path.with_file_name("target"));
    let mut o = ImageBuildOptions::new(&a.repo, manifest_path.clone(), target_dir.clone());
    o.tag = a.tag.clone();
    o.base = a.base.clone();
    if !a.platforms.is_empty() {
        o.platforms = a
            .platforms
            .iter()
            .map(|p| {
                p.parse::<Platform>().map_err(|e| {
                    actionable(e, "use --platform linux/amd64 or --platform linux/arm64")
                })
            })
            .collect::<anyhow::Result<_>>()?;
    }
    o.push = a.push;
    o.insecure_registry = a.insecure_registry;
    o.builder = match a.builder {
        ImageBuilderArg::Native => Builder::Native,
        ImageBuilderArg::Buildx => Builder::Buildx,
    };
    if let BinarySource::Cargo(b) = &mut o.binary {
        *b = CargoBuild {
            profile: a.cargo_profile.clone(),
            ..b.clone()
        };
    }
    if !a.binaries.is_empty() {
        let mut map = BTreeMap::new();
        for spec in &a.binaries {
            let (p, path) = spec.split_once('=').ok_or_else(|| {
                actionable(
                    format!("--binary `{spec}` is not OS/ARCH=PATH"),
                    "e.g. --binary linux/arm64=target/aarch64-unknown-linux-gnu/release/calops",
                )
            })?;
            let p: Platform = p
                .parse()
                .map_err(|e: String| actionable(e, "use linux/amd64 or linux/arm64"))?;
            map.insert(p, absolute(Path::new(path))?);
        }
        o.binary = BinarySource::Prebuilt(map);
    }
    o.labels = default_labels(&manifest_path);
    for l in &a.labels {
        let (k, v) = l
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| {
                actionable(
                    format!("--label `{l}` is not KEY=VALUE"),
                    "e.g. --label io.calops.profile-hash=abc123",
                )
            })?;
        o.labels.insert(k.to_string(), v.to_string());
    }
    o.credentials = match (&a.username_env, &a.password_env, &a.docker_config) {
        _ if a.oci_profile.is_some() => {
            CredentialSource::OciApiKey(crate::image::ocir::OciKeySource {
                config_file: a.oci_config.clone(),
                profile: a.oci_profile.clone(),
                token_endpoint: None,
            })
        }
        (Some(u), Some(p), _) => CredentialSource::Env {
            username_var: u.clone(),
            password_var: p.clone(),
        },
        (_, _, Some(path)) => CredentialSource::DockerConfigAt(path.clone()),
        _ => CredentialSource::DockerConfig,
    };
    o.source_date_epoch = crate::image::source_date_epoch()?;
    o.layout_dir = match (&a.output, a.push) {
        (Some(d), _) => Some(absolute(d)?),
        (None, false) => Some(target_dir.join("calops-image")),
        (None, true) => None,
    };
    Ok(o)
}

fn absolute(p: &Path) -> anyhow::Result<PathBuf> {
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    })
}

/// Labels every calops image carries: version, and the source revision when in a git checkout.
fn default_labels(manifest_path: &Path) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert(
        "org.opencontainers.image.version".to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    l.insert(
        "org.opencontainers.image.title".to_string(),
        "calops".to_string(),
    );
    let dir = manifest_path.parent().unwrap_or(Path::new("."));
    if let Ok(out) = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(dir)
        .output()
    {
        let rev = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && rev.len() == 40 {
            l.insert("org.opencontainers.image.revision".to_string(), rev);
        }
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    fn args(extra: &[&str]) -> ImageBuildArgs {
        let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let mut argv = vec![
            "calops",
            "image",
            "build",
            "--repo",
            "127.0.0.1:5000/calops",
            "--manifest-path",
            manifest,
        ];
        argv.extend(extra);
        match Cli::parse_from(argv).command {
            crate::cli::Command::Image(ImageCommand::Build(a)) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_become_options() {
        let o = options(&args(&[
            "--platform",
            "linux/arm64",
            "--label",
            "io.calops.profile-hash=abc",
            "--push",
            "--username-env",
            "U",
            "--password-env",
            "P",
            "--tag",
            "v1",
        ]))
        .unwrap();
        assert_eq!(o.platforms, vec![Platform::linux_arm64()]);
        assert_eq!(o.labels["io.calops.profile-hash"], "abc");
        assert_eq!(
            o.labels["org.opencontainers.image.version"],
            env!("CARGO_PKG_VERSION")
        );
        assert!(o.push && o.layout_dir.is_none());
        assert_eq!(
            o.credentials,
            CredentialSource::Env {
                username_var: "U".into(),
                password_var: "P".into()
            }
        );
        let o = options(&args(&[
            "--oci-profile",
            "CI",
            "--oci-config",
            "/etc/oci/config",
        ]))
        .unwrap();
        assert_eq!(
            o.credentials,
            CredentialSource::OciApiKey(crate::image::ocir::OciKeySource {
                config_file: Some("/etc/oci/config".into()),
                profile: Some("CI".into()),
                token_endpoint: None,
            })
        );
        let o = options(&args(&["--binary", "linux/amd64=/bin/true"])).unwrap();
        assert!(matches!(o.binary, BinarySource::Prebuilt(ref m) if m.len() == 1));
        assert!(
            o.layout_dir.unwrap().ends_with("calops-image"),
            "build without push writes a layout"
        );
    }

    #[test]
    fn bad_flags_say_what_to_type() {
        let e = options(&args(&["--label", "novalue"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--label `novalue` is not KEY=VALUE"), "{e}");
        let e = options(&args(&["--binary", "linux/arm64"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not OS/ARCH=PATH"), "{e}");
        let e = options(&args(&["--platform", "windows/amd64"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unsupported platform"), "{e}");
    }
}
