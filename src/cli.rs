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
    /// Run the scheduling service (Cal.com API v2 compatible) in the foreground.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 0.0.0.0:3000].
    #[arg(long, env = "CALOPS_LISTEN", value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// PostgreSQL URL (required).
    #[arg(long, env = "DATABASE_URL", value_name = "URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Redis URL (optional; reported by /health).
    #[arg(long, env = "REDIS_URL", value_name = "URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Object storage URL: https://host/bucket or file:///path (optional; reported by /health).
    #[arg(
        long,
        env = "CALOPS_OBJECT_STORAGE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub object_storage_url: Option<String>,
    /// Where the bootstrap admin token is: env:NAME (the token itself never goes on the command line).
    #[arg(long, env = "CALOPS_ADMIN_TOKEN_REF", value_name = "env:NAME")]
    pub admin_token_ref: Option<String>,
    /// Set SO_REUSEPORT so that a new release can listen on the same port before the old one stops.
    #[arg(long, env = "CALOPS_REUSE_PORT")]
    pub reuse_port: bool,
    /// Largest number of database connections [default: 16].
    #[arg(long, env = "CALOPS_DB_POOL_SIZE", value_name = "N")]
    pub db_pool_size: Option<String>,
    /// How long in-flight requests may run after SIGTERM [default: 20s].
    #[arg(long, env = "CALOPS_SHUTDOWN_TIMEOUT", value_name = "DURATION")]
    pub shutdown_timeout: Option<String>,
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
