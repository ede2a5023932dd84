//! One thin file per subcommand, gluing the library modules together.

use crate::cli::{Cli, Command};
use crate::ui::Ui;

pub mod completions;
pub mod oci;

/// Run the parsed command; returns the process exit code.
pub fn run(cli: Cli, _ui: &Ui) -> anyhow::Result<i32> {
    match cli.command {
        Command::Completions(args) => completions::run(&args),
        Command::Oci(args) => oci::run(&args, _ui),
    }
}
