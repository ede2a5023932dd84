//! `calops plan --profile P`: render the profile's root module, init, plan, and summarise
//! (counts, replacements and what forces them, protected resources, monthly cost estimate).

use crate::cli::{GlobalArgs, PlanArgs};
use crate::error::actionable;
use crate::profile::Target;
use crate::terraform::{run_plan, PlanOptions};
use crate::ui::Ui;

pub fn run(g: &GlobalArgs, args: &PlanArgs, ui: &Ui) -> anyhow::Result<i32> {
    let profile = super::load_profile(g, ui)?;
    if profile.target == Target::OciVm {
        return vm_estimate(&profile, args, ui);
    }
    if profile.target != Target::Oci {
        return Err(actionable(
            format!("profile `{}` has target = \"local\", which has no Terraform to plan", profile.name),
            "plan an `oci` profile (e.g. --profile prod-au), or run `calops deploy --profile local`",
        ));
    }
    let slots = super::render::parse_slots(args.image.as_deref(), &args.slot)?;
    // One identity: Terraform acts as the OCI config profile calops signs with.
    let signing = crate::deploy::oci::account::signing_profile(&profile)?;
    let provider_env = crate::deploy::oci::account::terraform_env(&signing)?;
    let account = resolve_account(&profile, &signing)?;
    let (_, rendered, dir, _) = super::render::render_profile(&profile, slots, &account, None, ui)?;
    let mut opts = PlanOptions {
        log: Some(super::tf::default_log_path(&profile.name, "plan")),
        planfile: args.out.clone(),
        prices: args.prices.clone(),
        handle_interrupts: true,
        env: Some(crate::deploy::oci::account::snapshot_with(&provider_env)),
        ..PlanOptions::default()
    };
    opts.guard.allow_destroy = args.allow_destroy.clone();
    if !rendered.backend_init_config.is_empty() {
        let oci = profile
            .oci
            .as_ref()
            .expect("oci target has an [oci] section");
        let namespace = match &oci.object_storage_namespace {
            Some(ns) => ns.clone(),
            None => lookup_namespace(&profile)?,
        };
        if let Some(text) =
            crate::render::backend_init_file(&rendered, &namespace, oci.region.as_str())
        {
            let file = dir.join("calops.tfbackend");
            std::fs::write(&file, text)?;
            opts.init
                .backend_config_files
                .push(std::path::absolute(&file)?);
        }
    }
    ui.detail(format!(
        "full Terraform log: {}",
        opts.log
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    ));
    let pb = ui.spinner("terraform");
    let progress = {
        let (pb, ui) = (pb.clone(), ui.clone());
        move |m: &str| {
            pb.set_message(m.to_string());
            if !ui.progress_enabled() {
                ui.detail(m);
            }
        }
    };
    let outcome = run_plan(&dir, &opts, progress);
    pb.finish_and_clear();
    super::tf::report_plan(
        ui,
        &outcome?,
        args.markdown.as_deref(),
        args.detailed_exitcode,
    )
}

/// The tenancy and its home region: the `[oci] home_region` pin needs no API call; without it,
/// the Identity API is asked.
fn resolve_account(
    profile: &crate::profile::Profile,
    signing: &crate::oci::config::OciProfile,
) -> anyhow::Result<crate::deploy::oci::stack::Account> {
    let pinned = profile
        .oci
        .as_ref()
        .is_some_and(|o| o.home_region.is_some());
    let client = match pinned {
        true => None,
        false => Some(crate::oci::client::OciClient::from_profile(signing)?),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(crate::deploy::oci::account::account(
        profile,
        signing,
        client.as_ref(),
    ))
}

/// The Object Storage namespace of the profile's tenancy, from the OCI API.
fn lookup_namespace(profile: &crate::profile::Profile) -> anyhow::Result<String> {
    let client = crate::deploy::oci::account::client(profile)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(client.object_storage().namespace()).map_err(|e| {
        actionable(
            format!("could not look up the Object Storage namespace for the state backend: {e}"),
            "pin it in the profile: [oci] object_storage_namespace = \"...\" (`oci os ns get` prints it)",
        )
    })
}

/// `plan` of an `oci-vm` profile: the monthly estimate from its sizes with the Always Free
/// allowance assumed, and a warning per size that leaves it. Its Terraform is not rendered
/// yet, so there is no Terraform plan; exit code 0.
fn vm_estimate(profile: &crate::profile::Profile, args: &PlanArgs, ui: &Ui) -> anyhow::Result<i32> {
    use crate::terraform::{cost::PriceTable, freetier};
    let table = match &args.prices {
        Some(p) => PriceTable::load(p)?,
        None => PriceTable::bundled(),
    };
    let e = freetier::estimate(profile, &table);
    for w in &e.outside_allowance {
        ui.warn(w);
    }
    ui.warn(format!(
        "profile `{}` has target = \"oci-vm\": its Terraform stack is not rendered by this version, so this is an estimate from the profile's sizes, not a Terraform plan",
        profile.name
    ));
    ui.result(&serde_json::to_value(&e)?, || freetier::render_text(&e));
    Ok(crate::error::EXIT_OK)
}
