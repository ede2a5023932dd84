//! clap types only: no logic lives here.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "calops",
    version = crate::VERSION_LINE,
    about = "Deploy and operate a self-hosted scheduling service on Oracle Cloud (OCI)",
    long_about = None,
    propagate_version = true,
    after_help = "Exit codes: 0 ok / no changes, 1 error, 2 changes present (plan --detailed-exitcode), 130 interrupted."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Profile name (looked up in ./profiles, then $CALOPS_PROFILE_DIR) or path to a profile TOML file.
    #[arg(long, global = true, env = "CALOPS_PROFILE", value_name = "NAME|PATH")]
    pub profile: Option<String>,
    /// Print one JSON document on stdout; human output and progress go to stderr.
    #[arg(long, global = true)]
    pub json: bool,
    /// More detail (repeat for more): -v shows where every profile value came from.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Do not draw progress bars or spinners.
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// When to use colour in human output.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a shell completion script.
    Completions(CompletionsArgs),
    /// Plan an already-rendered Terraform directory: summary, destroy guard, cost estimate.
    #[command(hide = true)]
    TfPlan(TfPlanArgs),
    /// Apply an already-rendered Terraform directory if (and only if) its plan has changes.
    #[command(hide = true)]
    TfApply(TfApplyArgs),
}

/// Options shared by `tf-plan` and `tf-apply`.
#[derive(Debug, Clone, Args)]
pub struct TfCommonArgs {
    /// The Terraform root module directory (already rendered).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Let the plan delete or replace this protected resource (repeatable).
    #[arg(long = "allow-destroy", value_name = "ADDRESS")]
    pub allow_destroy: Vec<String>,
    /// Also protect this resource type or address (repeatable), besides the database, cache,
    /// bucket, load balancer and anything with prevent_destroy.
    #[arg(long, value_name = "TYPE|ADDRESS")]
    pub protect: Vec<String>,
    /// Price table (TOML, same format as the bundled one) for the cost estimate.
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,
    /// How long to wait for the state lock.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    pub lock_timeout: std::time::Duration,
    /// Terraform variable files (repeatable).
    #[arg(long = "var-file", value_name = "FILE")]
    pub var_files: Vec<PathBuf>,
    /// Write the full Terraform log here (default: .calops/<dir name>/logs/<timestamp>-<op>.log).
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TfPlanArgs {
    #[command(flatten)]
    pub common: TfCommonArgs,
    /// Write a Markdown summary for a PR comment (under 60,000 characters).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Exit 2 when there are changes (0 none, 1 error), as terraform plan -detailed-exitcode.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Save the plan file here (default: .terraform/calops.tfplan in the directory).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TfApplyArgs {
    #[command(flatten)]
    pub common: TfCommonArgs,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to generate completions for.
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Path of a file given on the command line, kept as given for messages.
pub type CliPath = PathBuf;
