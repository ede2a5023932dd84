//! From an `oci` profile to a ready [`OciTarget`]: the signed client (with
//! `CALOPS_ENDPOINT_<SERVICE>` overrides), the state bootstrap, the rendered backend settings,
//! and where the lock and the releases live in the state bucket.

use super::bootstrap::{ensure_state_bucket, StateLocation};
use super::stack::ProfileStack;
use super::target::{ImageSource, OciTarget, OciTargetOptions};
use crate::deploy::ocistore::OciStore;
use crate::error::actionable;
use crate::image::pipeline::{Builder, ImageBuildOptions};
use crate::image::platform::Platform;
use crate::oci::client::OciClient;
use crate::profile::Profile;
use crate::terraform::PlanOptions;
use crate::ui::Ui;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Where the deploy lock and the release records of a profile live in the state bucket.
pub struct StateStore {
    pub store: OciStore,
    pub location: StateLocation,
    /// `<prefix>/deploy.lock`.
    pub lock_key: String,
    /// `<prefix>/` (records under `<prefix>/releases/`).
    pub ledger_prefix: String,
    pub client: Arc<OciClient>,
}

/// The lock key and ledger prefix for a state prefix.
pub fn keys(prefix: &str, profile: &str) -> (String, String) {
    let p = prefix.trim_matches('/');
    let p = if p.is_empty() { profile } else { p };
    (format!("{p}/deploy.lock"), format!("{p}/"))
}

fn oci_section(profile: &Profile) -> anyhow::Result<&crate::profile::model::OciSection> {
    if !profile.target.on_oci() {
        return Err(actionable(
            format!("profile `{}` is not an OCI profile", profile.name),
            "use `calops deploy --profile local` for the local target",
        ));
    }
    profile.oci.as_ref().ok_or_else(|| {
        actionable(
            format!("profile `{}` has no [oci] section", profile.name),
            "add [oci] with `region` and `compartment_id`",
        )
    })
}

/// The signed client for the profile's OCI config, in the profile's region.
pub fn client(profile: &Profile) -> anyhow::Result<Arc<OciClient>> {
    oci_section(profile)?;
    Ok(Arc::new(super::account::client(profile)?))
}

/// Find (or create) the state bucket and open the lock/ledger store on it.
pub async fn state_store(profile: &Profile) -> anyhow::Result<StateStore> {
    let oci = oci_section(profile)?;
    let client = client(profile)?;
    let location = ensure_state_bucket(
        &client,
        oci.object_storage_namespace.as_deref(),
        &profile.state.bucket,
        oci.compartment_id.as_str(),
    )
    .await?;
    let (lock_key, ledger_prefix) = keys(&profile.state.prefix, &profile.name);
    Ok(StateStore {
        store: OciStore::new(client.clone(), &location.namespace, &location.bucket),
        location,
        lock_key,
        ledger_prefix,
        client,
    })
}

/// Image build options from the profile's `[image]` section, building the calops sources in
/// the current directory and pushing to `[service] image_repository`.
pub fn build_options(profile: &Profile, source_dir: &Path) -> anyhow::Result<ImageBuildOptions> {
    let manifest = source_dir.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(actionable(
            format!(
                "no image given and {} does not exist, so there is nothing to build",
                manifest.display()
            ),
            "pass --image REPOSITORY@sha256:... (from `calops image build --push`), or run from the calops source directory",
        ));
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| source_dir.join("target"));
    let mut o = ImageBuildOptions::new(&profile.service.image_repository, manifest, target_dir);
    o.base = profile.image.base.clone();
    o.platforms = profile
        .image
        .platforms
        .iter()
        .map(|p| {
            p.parse::<Platform>().map_err(|e| {
                actionable(
                    format!("[image] platforms: {e}"),
                    "use linux/amd64 or linux/arm64",
                )
            })
        })
        .collect::<anyhow::Result<_>>()?;
    o.builder = if profile.image.builder == "buildx" {
        Builder::Buildx
    } else {
        Builder::Native
    };
    o.push = true;
    o.port = profile.service.port.get();
    o.source_date_epoch = crate::image::source_date_epoch()?;
    Ok(o)
}

/// Everything a deploy or rollback of an `oci` profile needs.
pub struct Prepared {
    pub target: OciTarget,
    pub state: StateStore,
    pub workdir: PathBuf,
}

/// Bootstrap the state, render the backend settings, and build the target. `image` is a
/// pinned reference to deploy instead of building one; a `rollback` takes the image recorded
/// with the release it restores.
pub async fn prepare(
    profile: &Profile,
    image: Option<&str>,
    rollback: bool,
    workdir: PathBuf,
    ui: &Ui,
) -> anyhow::Result<Prepared> {
    // Bad input is refused before any call.
    if let Some(i) = image.filter(|i| !crate::render::is_pinned_image(i)) {
        return Err(actionable(
            format!("--image `{i}` is not pinned by digest"),
            "pass REPOSITORY@sha256:<64 hex> (what `calops image build --push` prints)",
        ));
    }
    let state = state_store(profile).await?;
    if state.location.created {
        ui.note(format!(
            "created the private, versioned state bucket `{}` in namespace {}",
            state.location.bucket, state.location.namespace
        ));
    }
    let oci = oci_section(profile)?;
    let tf_version = crate::doctor::tools::terraform_version_string();
    // One identity: Terraform acts as the OCI config profile calops signs with.
    let signing = super::account::signing_profile(profile)?;
    let provider_env = super::account::terraform_env(&signing)?;
    let account = super::account::account(profile, &signing, Some(&state.client)).await?;
    let stack = ProfileStack::new(profile.clone(), tf_version.clone(), account);
    // Slot warnings are about the render without slots done here, not about the deploy.
    for w in stack
        .warnings()?
        .into_iter()
        .filter(|w| !w.contains("slot"))
    {
        ui.warn(w);
    }
    let mut plan = PlanOptions {
        log: Some(
            Path::new(".calops")
                .join(&profile.name)
                .join("logs")
                .join("deploy.log"),
        ),
        env: Some(super::account::snapshot_with(&provider_env)),
        ..PlanOptions::default()
    };
    // The backend's namespace, when the profile does not pin it.
    let input = crate::render::RenderInput::from_profile(profile, Default::default(), tf_version)?;
    let rendered = crate::render::render(&input)?;
    if let Some(text) =
        crate::render::backend_init_file(&rendered, &state.location.namespace, oci.region.as_str())
    {
        std::fs::create_dir_all(&workdir)?;
        let file = workdir.join("calops.tfbackend");
        std::fs::write(&file, text)?;
        plan.init
            .backend_config_files
            .push(std::path::absolute(&file)?);
    }
    let source = match image {
        None if rollback => ImageSource::Recorded,
        Some(i) => ImageSource::Pinned(i.to_string()),
        None => ImageSource::Build(Box::new(build_options(profile, &std::env::current_dir()?)?)),
    };
    let mut opts = OciTargetOptions::new(workdir.clone(), source);
    opts.plan = plan;
    opts.keep_previous = profile.deploy.keep_previous;
    opts.drain_wait = Duration::from_secs(profile.service.graceful_shutdown_seconds as u64);
    opts.health_timeout = Duration::from_secs(profile.deploy.health_timeout_seconds.max(1) as u64);
    opts.health_url = std::env::var("CALOPS_HEALTH_URL")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let target = OciTarget::new(state.client.clone(), Arc::new(stack), opts, ui.clone());
    Ok(Prepared {
        target,
        state,
        workdir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_and_ledger_keys() {
        assert_eq!(
            keys("calops/prod-au/", "prod-au"),
            (
                "calops/prod-au/deploy.lock".into(),
                "calops/prod-au/".into()
            )
        );
        assert_eq!(keys("", "dev"), ("dev/deploy.lock".into(), "dev/".into()));
    }
}
