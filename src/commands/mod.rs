//! One thin file per subcommand, gluing the library modules together.

use crate::cli::{Cli, Command};
use crate::ui::Ui;

pub mod completions;
pub mod tf;

/// Run the parsed command; returns the process exit code.
pub fn run(cli: Cli, ui: &Ui) -> anyhow::Result<i32> {
    match cli.command {
        Command::Completions(args) => completions::run(&args),
        Command::TfPlan(args) => tf::plan(&args, ui),
        Command::TfApply(args) => tf::apply(&args, ui),
    }
}
