//! One thin file per subcommand, gluing the library modules together.

use crate::cli::{Cli, Command};
use crate::ui::Ui;

pub mod agent;
pub mod backup;
pub mod completions;
pub mod deploy;
pub mod doctor;
pub mod image;
pub mod oci;
pub mod plan;
pub mod profile;
pub mod render;
pub mod serve;
pub mod tf;

/// Run the parsed command; returns the process exit code.
pub fn run(cli: Cli, ui: &Ui) -> anyhow::Result<i32> {
    let g = &cli.global;
    match cli.command {
        Command::Doctor(_) => doctor::run(g, ui),
        Command::Profile(args) => profile::run(g, &args, ui),
        Command::Completions(args) => completions::run(&args),
        Command::Render(args) => render::run(g, &args, ui),
        Command::Oci(args) => oci::run(&args, ui),
        Command::Serve(args) => serve::run(&args, ui),
        Command::Plan(args) => plan::run(g, &args, ui),
        Command::Deploy(args) => deploy::deploy(g, &args, ui),
        Command::Rollback(args) => deploy::rollback(g, &args, ui),
        Command::Releases => deploy::releases(g, ui),
        Command::Status => deploy::status(g, ui),
        Command::Destroy(args) => deploy::destroy(g, &args, ui),
        Command::Lock(args) => deploy::lock(g, &args, ui),
        Command::Agent(args) => agent::run(g, &args, ui),
        Command::TfPlan(args) => tf::plan(&args, ui),
        Command::TfApply(args) => tf::apply(&args, ui),
        Command::Image(cmd) => image::run(cmd, ui),
        Command::Backup(cmd) => backup::run(g, cmd, ui),
        Command::Restore(args) => backup::restore(g, &args, ui),
    }
}

/// Load the profile named by `--profile`, reporting overrides with `-v`.
pub fn load_profile(
    g: &crate::cli::GlobalArgs,
    ui: &Ui,
) -> anyhow::Result<crate::profile::Profile> {
    let spec = g.profile.as_deref().ok_or_else(|| {
        crate::error::actionable(
            "this command needs a profile",
            format!(
                "pass --profile NAME (available: {})",
                crate::profile::available(&crate::profile::search_dirs()).join(", ")
            ),
        )
    })?;
    let loaded = crate::profile::load(spec)?;
    for o in &loaded.overrides {
        let field = match &o.section {
            Some(s) => format!("{s}.{}", o.key),
            None => o.key.clone(),
        };
        ui.detail(format!("override: {field} from {}", o.var));
    }
    Ok(loaded.profile)
}
