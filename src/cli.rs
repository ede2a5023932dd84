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
    /// Build (and push) the multi-arch service image without a Docker daemon.
    #[command(subcommand)]
    Image(ImageCommand),
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Cross-build calops for each platform, assemble an OCI image index, optionally push it.
    Build(ImageBuildArgs),
}

#[derive(Debug, Args)]
pub struct ImageBuildArgs {
    /// Repository to push to, without tag: REGISTRY/REPOSITORY (e.g. syd.ocir.io/ns/calops).
    #[arg(long, value_name = "REGISTRY/REPO")]
    pub repo: String,
    /// Tag for the image index (without it, the index is pushed by digest only).
    #[arg(long)]
    pub tag: Option<String>,
    /// Base image (multi-arch); pin it by digest for reproducible images.
    #[arg(
        long,
        value_name = "IMAGE",
        default_value = "gcr.io/distroless/cc-debian12:nonroot"
    )]
    pub base: String,
    /// Platform to build (repeatable); default linux/amd64 and linux/arm64.
    #[arg(long = "platform", value_name = "OS/ARCH")]
    pub platforms: Vec<String>,
    /// Push to the registry and report REPO@sha256:<index digest>.
    #[arg(long)]
    pub push: bool,
    /// Use plain HTTP for loopback registries (127.0.0.1, localhost).
    #[arg(long)]
    pub insecure_registry: bool,
    /// native: cross-compile and assemble without Docker; buildx: `docker buildx build`.
    #[arg(long, value_enum, default_value_t = ImageBuilderArg::Native)]
    pub builder: ImageBuilderArg,
    /// Write an OCI image layout here (default target/calops-image when not pushing).
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Extra image label KEY=VALUE (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Use a prebuilt binary for a platform instead of building: OS/ARCH=PATH (repeatable).
    #[arg(long = "binary", value_name = "OS/ARCH=PATH")]
    pub binaries: Vec<String>,
    /// Cargo.toml of the calops package to build.
    #[arg(long, value_name = "PATH", default_value = "Cargo.toml")]
    pub manifest_path: PathBuf,
    /// Cargo profile for the binaries.
    #[arg(long, default_value = "release")]
    pub cargo_profile: String,
    /// Name of the environment variable holding the registry username.
    #[arg(long, value_name = "VAR", requires = "password_env")]
    pub username_env: Option<String>,
    /// Name of the environment variable holding the registry password or token.
    #[arg(long, value_name = "VAR", requires = "username_env")]
    pub password_env: Option<String>,
    /// A docker config.json to read credentials from (default ~/.docker/config.json).
    #[arg(long, value_name = "PATH", conflicts_with = "username_env")]
    pub docker_config: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImageBuilderArg {
    Native,
    Buildx,
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
