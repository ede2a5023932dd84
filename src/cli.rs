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
    /// Check prerequisites for a profile: tools, toolchains, OCI configuration.
    Doctor(DoctorArgs),
    /// Validate profiles and show their resolved values.
    Profile(ProfileArgs),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
    /// Render the profile's Terraform root module (deterministic; prints files and a content hash).
    Render(RenderArgs),
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Directory to write the root module to [default: .calops/<profile>/terraform].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Service image pinned by digest (REPO@sha256:DIGEST); runs as the active `blue` slot.
    #[arg(long, value_name = "REF@DIGEST")]
    pub image: Option<String>,
    /// A deployment slot as NAME:STATE[:IMAGE] (STATE = active, draining or absent), e.g.
    /// `green:draining:syd.ocir.io/ns/app@sha256:...`. Repeatable; overrides --image for that slot.
    #[arg(long, value_name = "NAME:STATE[:IMAGE]")]
    pub slot: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {}

#[derive(Debug, Args)]
pub struct ProfileArgs {
    #[command(subcommand)]
    pub action: ProfileAction,
}

#[derive(Debug, Subcommand)]
pub enum ProfileAction {
    /// Validate the profile and print its resolved values (with -v, where each came from).
    Show,
    /// List the profiles that --profile can name.
    List,
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
