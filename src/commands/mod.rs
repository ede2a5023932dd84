//! One thin file per subcommand, gluing the library modules together.

use crate::cli::{Cli, Command};
use crate::ui::Ui;

pub mod completions;
pub mod image;

/// Run the parsed command; returns the process exit code.
pub fn run(cli: Cli, ui: &Ui) -> anyhow::Result<i32> {
    match cli.command {
        Command::Completions(args) => completions::run(&args),
        Command::Image(cmd) => image::run(cmd, ui),
    }
}
