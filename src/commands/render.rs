//! `calops render`: profile (+ image / slots) -> Terraform root module on disk.

use crate::cli::{GlobalArgs, RenderArgs};
use crate::error::actionable;
use crate::render::{self, RenderInput, Slot, SlotState, SLOT_NAMES};
use crate::ui::Ui;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Render `profile` with `slots` into `out` (default `.calops/<profile>/terraform/`), with the
/// warnings and notes the operator should see. Shared by `render` and `plan`. `account` is
/// the tenancy and home region when known (`plan` looks them up; `render` reads only the OCI
/// config, no network).
pub fn render_profile(
    profile: &crate::profile::Profile,
    slots: BTreeMap<String, Slot>,
    account: &crate::deploy::oci::stack::Account,
    out: Option<PathBuf>,
    ui: &Ui,
) -> anyhow::Result<(RenderInput, render::Rendered, PathBuf, Option<String>)> {
    let tf_version = installed_terraform_version();
    if tf_version.is_none() {
        ui.warn("terraform was not found on PATH: rendering for the S3-compatible state backend (works with every Terraform version)");
    }
    let mut input = RenderInput::from_profile(profile, slots, tf_version.clone())?;
    input.oci.tenancy_id = account.tenancy_id.clone();
    if input.oci.home_region.is_none() {
        input.oci.home_region = account.home_region.clone();
    }
    let rendered = render::render(&input)?;
    for w in &rendered.warnings {
        ui.warn(w);
    }
    let out = out.unwrap_or_else(|| {
        PathBuf::from(".calops")
            .join(&profile.name)
            .join("terraform")
    });
    render::write::write_to(&rendered, &out)?;
    Ok((input, rendered, out, tf_version))
}

/// Render an `oci-vm` profile (one VM, no slots) like [`render_profile`].
pub fn render_vm_profile(
    profile: &crate::profile::Profile,
    account: &crate::deploy::oci::stack::Account,
    out: Option<PathBuf>,
    ui: &Ui,
) -> anyhow::Result<(render::Rendered, PathBuf, Option<String>)> {
    let tf_version = installed_terraform_version();
    let mut input = render::vm::VmRenderInput::from_profile(profile, tf_version.clone())?;
    input.oci.tenancy_id = account.tenancy_id.clone();
    if input.oci.home_region.is_none() {
        input.oci.home_region = account.home_region.clone();
    }
    let rendered = render::vm::render_vm(&input)?;
    for w in &rendered.warnings {
        ui.warn(w);
    }
    for w in crate::terraform::freetier::outside_allowance(
        profile,
        &crate::terraform::cost::PriceTable::bundled().always_free,
    ) {
        ui.warn(w);
    }
    let out = out.unwrap_or_else(|| {
        PathBuf::from(".calops")
            .join(&profile.name)
            .join("terraform")
    });
    render::write::write_to(&rendered, &out)?;
    Ok((rendered, out, tf_version))
}

pub fn run(g: &GlobalArgs, args: &RenderArgs, ui: &Ui) -> anyhow::Result<i32> {
    let profile = super::load_profile(g, ui)?;
    if profile.target == crate::profile::Target::OciVm
        && (args.image.is_some() || !args.slot.is_empty())
    {
        return Err(actionable(
            format!("profile `{}` has target = \"oci-vm\", which has no deployment slots: --image and --slot do not apply", profile.name),
            "drop --image and --slot (the VM takes releases by pull, not from the Terraform stack)",
        ));
    }
    let slots = parse_slots(args.image.as_deref(), &args.slot)?;
    // The tenancy from the OCI config when there is one (no network: an unpinned home region
    // stays unknown, and the render says so).
    let account = crate::deploy::oci::account::signing_profile(&profile)
        .map(|p| crate::deploy::oci::stack::Account {
            tenancy_id: Some(p.tenancy),
            home_region: None,
        })
        .unwrap_or_default();
    let (slots, rendered, out, tf_version_doc) = if profile.target == crate::profile::Target::OciVm
    {
        let (r, out, v) = render_vm_profile(&profile, &account, args.out.clone(), ui)?;
        (json!({}), r, out, v)
    } else {
        let (input, r, out, v) = render_profile(&profile, slots, &account, args.out.clone(), ui)?;
        (json!(input.slots), r, out, v)
    };
    if !rendered.backend_init_config.is_empty() {
        ui.note(format!(
            "note: the state backend still needs {} at `terraform init` (-backend-config): pin [oci] object_storage_namespace (`oci os ns get` prints it) to write it into the files",
            rendered.backend_init_config.join(", ")
        ));
    }
    let hash = rendered.content_hash();
    let files: Vec<serde_json::Value> = rendered
        .files
        .iter()
        .map(|(name, text)| {
            json!({"path": name, "sha256": render::Rendered::file_hash(text), "bytes": text.len()})
        })
        .collect();
    let doc = json!({
        "profile": profile.name,
        "terraform_version": tf_version_doc,
        "out": out.display().to_string(),
        "content_hash": hash,
        "backend": rendered.backend,
        "backend_init_config": rendered.backend_init_config,
        "slots": slots,
        "warnings": rendered.warnings,
        "files": files,
    });
    ui.result(&doc, || {
        let mut s = format!(
            "rendered {} files for profile {} into {}\n",
            rendered.files.len(),
            profile.name,
            out.display()
        );
        for (name, text) in &rendered.files {
            s.push_str(&format!(
                "  {}  {name}\n",
                &render::Rendered::file_hash(text)[..12]
            ));
        }
        s.push_str(&format!("content hash: {hash}\n"));
        s
    });
    Ok(0)
}

/// `--image` makes `blue` active; each `--slot NAME:STATE[:IMAGE]` sets one slot.
pub fn parse_slots(
    image: Option<&str>,
    slots: &[String],
) -> anyhow::Result<BTreeMap<String, Slot>> {
    let mut out = BTreeMap::new();
    if let Some(img) = image {
        out.insert("blue".to_string(), Slot::active(img));
    }
    for spec in slots {
        let mut parts = spec.splitn(3, ':');
        let name = parts.next().unwrap_or_default();
        let state = parts.next().unwrap_or_default();
        let image = parts.next().filter(|s| !s.is_empty()).map(String::from);
        if !SLOT_NAMES.contains(&name) {
            return Err(actionable(
                format!("--slot {spec}: unknown slot `{name}`"),
                format!(
                    "slots are named {}; write NAME:STATE[:IMAGE]",
                    SLOT_NAMES.join(" and ")
                ),
            ));
        }
        let state = match state {
            "active" => SlotState::Active,
            "draining" => SlotState::Draining,
            "absent" => SlotState::Absent,
            other => {
                return Err(actionable(
                    format!("--slot {spec}: unknown state `{other}`"),
                    "use active, draining or absent: NAME:STATE[:IMAGE]",
                ))
            }
        };
        // A slot given without an image keeps the one --image gave it.
        let image = image.or_else(|| out.get(name).and_then(|s: &Slot| s.image.clone()));
        out.insert(
            name.to_string(),
            Slot {
                state,
                image,
                spec: None,
                bound: None,
            },
        );
    }
    Ok(out)
}

/// The installed Terraform's version (`terraform version -json`), if it runs.
fn installed_terraform_version() -> Option<String> {
    crate::doctor::tools::terraform_version_string()
}
