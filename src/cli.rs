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
    /// Talk to the OCI API directly with your ~/.oci/config credentials.
    Oci(OciArgs),
    /// Run the scheduling service (Cal.com API v2 compatible) in the foreground.
    Serve(ServeArgs),
    /// Render the profile's Terraform and plan it: summary, destroy guard, cost estimate.
    Plan(PlanArgs),
    /// Build, provision, start, verify and switch to a new release (any target).
    Deploy(DeployArgs),
    /// Go back to an earlier release, verified like a deploy (any target).
    Rollback(RollbackArgs),
    /// List the releases of a profile.
    Releases,
    /// Show the current release, its health, endpoints and live figures (local target: from its
    /// /metrics, and its backups; OCI: from OCI Monitoring, and the stack's firing alarms).
    #[command(
        after_help = "Exit codes: 0 healthy, or nothing deployed yet; 1 not healthy or unreachable, (OCI) an alarm of the stack is firing, or (local target) backups are behind: WAL waiting more than 15 minutes, or no base backup for two days. Figures that cannot be read are a note, not a failure."
    )]
    Status,
    /// Stop everything a profile runs; keeps data unless --purge.
    Destroy(DestroyArgs),
    /// Inspect or release the deploy lock.
    Lock(LockArgs),
    /// On the VM of an `oci-vm` profile: take the desired release from the bucket, switch to
    /// it with the local target's verified switch, and write a report (deploy by pull). Signs as
    /// the instance principal.
    #[command(
        after_help = "Exit codes: 0 stopped (SIGTERM), or with --once the release switched or nothing to do; 1 the bucket or the instance principal failed, or with --once the release was refused, rolled back or failed (the report says why)."
    )]
    Agent(AgentArgs),
    /// Plan an already-rendered Terraform directory: summary, destroy guard, cost estimate.
    #[command(hide = true)]
    TfPlan(TfPlanArgs),
    /// Apply an already-rendered Terraform directory if (and only if) its plan has changes.
    #[command(hide = true)]
    TfApply(TfApplyArgs),
    /// Render the profile's Terraform root module (deterministic; prints files and a content hash).
    Render(RenderArgs),
    /// Build (and push) the multi-arch service image without a Docker daemon.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Database backups: take one now, list them, verify that they restore.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Restore the database from its backups, to a point in time, into a new cluster (local
    /// target) or a new DB system (OCI); the live database is never touched unless asked.
    #[command(
        after_help = "Exit codes: 0 restored; 1 failed (no half-restored cluster is left running); 3 (oci-vm) no result from the agent within --wait: the request is still queued or running; 130 interrupted."
    )]
    Restore(RestoreArgs),
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Take a base backup now (local target: pg_basebackup into the archive, then retention;
    /// oci-vm: the same, run on the VM by its agent; OCI: ask the managed database for a
    /// manual backup).
    #[command(
        after_help = "Exit codes: 0 the base backup is stored; 1 it failed (oci-vm: the agent's reason is printed); 3 (oci-vm) no result from the agent within --wait: the request is still queued or running."
    )]
    Now(BackupNowArgs),
    /// List base backups and the archived WAL after them (OCI: the managed database's backups).
    List,
    /// oci-vm: wait for (or show) the agent's result on an earlier `backup now` or `restore`.
    #[command(
        after_help = "Exit codes: 0 the request succeeded; 1 it failed (the agent's reason is printed); 3 no result yet (still queued or running on the VM)."
    )]
    Wait(BackupWaitArgs),
    /// Download and check every object a restore would need (local target).
    #[command(
        after_help = "Exit codes: 0 every object checked out; 1 an object is missing or damaged (named in the message), or the store could not be read."
    )]
    Verify(BackupVerifyArgs),
    /// PostgreSQL's archive_command: store one WAL file (exit 0 only once it is durably stored).
    #[command(hide = true)]
    ArchiveWal(ArchiveWalArgs),
    /// PostgreSQL's restore_command: fetch one WAL file (exit 1 when the archive has none,
    /// 200 to stop recovery when the store fails or the object is damaged).
    #[command(hide = true)]
    RestoreWal(RestoreWalArgs),
}

#[derive(Debug, Args)]
pub struct BackupNowArgs {
    /// A label stored with the backup.
    #[arg(long, default_value = "calops backup now")]
    pub label: String,
    /// oci-vm: how long to wait for the agent's result (the request stays queued after).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    pub wait: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct BackupWaitArgs {
    /// The request's id (printed by `backup now` or `restore` when they stopped waiting).
    pub id: String,
    /// How long to wait for the agent's result.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    pub wait: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct BackupVerifyArgs {
    /// The base backup to verify [default: the one a `restore --latest` would use].
    #[arg(long, value_name = "NAME")]
    pub backup: Option<String>,
}

#[derive(Debug, Args)]
pub struct ArchiveWalArgs {
    /// The backup configuration (`backup.json` beside the cluster).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The file to archive (PostgreSQL's %p, relative to the data directory).
    pub path: PathBuf,
    /// Its name (PostgreSQL's %f).
    pub name: String,
}

#[derive(Debug, Args)]
pub struct RestoreWalArgs {
    /// The backup configuration.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// The file wanted (PostgreSQL's %f).
    pub name: String,
    /// Where to write it (PostgreSQL's %p).
    pub path: PathBuf,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Recover to this instant (RFC 3339, e.g. 2025-03-01T09:30:00Z): every transaction
    /// committed at or before it, none after.
    #[arg(long, value_name = "TIME", conflicts_with = "latest")]
    pub to: Option<String>,
    /// Recover everything archived (the default).
    #[arg(long)]
    pub latest: bool,
    /// Restore from this base backup (local: a name from `calops backup list`; OCI: a backup OCID).
    #[arg(long, value_name = "NAME|OCID")]
    pub backup: Option<String>,
    /// Local target: restore into this directory [default: .calops/<profile>/restores/<time>].
    #[arg(long, value_name = "DIR")]
    pub into: Option<PathBuf>,
    /// Local target: make the restored cluster the live one and start the service on it.
    #[arg(long)]
    pub start: bool,
    /// With --start: replace the live database (it is moved aside, not deleted). oci-vm: make
    /// the restored cluster the VM's live database (no --start needed).
    #[arg(long)]
    pub yes: bool,
    /// Local target and oci-vm: how long WAL replay may take.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    pub timeout: std::time::Duration,
    /// oci-vm: how long to wait for the agent's result (the request stays queued after).
    #[arg(long, value_name = "DURATION", default_value = "2h", value_parser = humantime::parse_duration)]
    pub wait: std::time::Duration,
    /// OCI: the display name of the new DB system [default: <current name>-restored-<time>].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// OCI: return once OCI accepted the request instead of waiting for the new DB system.
    #[arg(long)]
    pub no_wait: bool,
    /// OCI: the DB system whose backups to use [default: the one tagged with this profile].
    #[arg(long, value_name = "OCID")]
    pub db_system: Option<String>,
    /// OCI: the subnet for the new DB system [default: the source DB system's].
    #[arg(long, value_name = "OCID")]
    pub subnet_id: Option<String>,
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

#[derive(Debug, Args)]
pub struct OciArgs {
    #[command(subcommand)]
    pub command: OciCommand,
}

#[derive(Debug, Subcommand)]
pub enum OciCommand {
    /// Send one signed request (like `oci raw-request`) and print status, headers and body.
    RawRequest(RawRequestArgs),
}

/// Which OCI config file and profile to use (not the calops --profile).
#[derive(Debug, Clone, Args)]
pub struct OciConfigArgs {
    /// OCI config file [default: $OCI_CLI_CONFIG_FILE, else ~/.oci/config].
    #[arg(long, value_name = "PATH")]
    pub oci_config: Option<PathBuf>,
    /// Profile in the OCI config file [default: $OCI_CLI_PROFILE, else DEFAULT].
    #[arg(long, value_name = "NAME")]
    pub oci_profile: Option<String>,
}

#[derive(Debug, Args)]
pub struct RawRequestArgs {
    /// HTTP method (GET, HEAD, DELETE, POST, PUT, PATCH).
    #[arg(long, value_name = "METHOD")]
    pub http_method: String,
    /// Full URL, e.g. https://objectstorage.ap-sydney-1.oraclecloud.com/n/
    #[arg(long, value_name = "URL")]
    pub target_uri: String,
    /// Request body: the text itself, or @FILE to read it from a file.
    #[arg(long, value_name = "TEXT|@FILE")]
    pub request_body: Option<String>,
    /// Extra headers as a JSON object, e.g. '{"opc-retry-token":"abc"}'. A `date` or
    /// `x-date` given here is signed as given.
    #[arg(long, value_name = "JSON")]
    pub request_headers: Option<String>,
    /// Print the signed request (method, URL, every header, body) as JSON without sending it.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub oci: OciConfigArgs,
}

/// `Debug` hides the passwords in the URLs (written by hand below).
#[derive(Args)]
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
    /// Object storage for ICS files (optional; reported by /health): file:///path,
    /// s3://BUCKET?endpoint=https://HOST&region=R or https://HOST/BUCKET?region=R; S3
    /// credentials by reference: &access_key=env:NAME&secret_key=env:NAME.
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
    /// Also listen here, privately (not shared with other releases), so a deploy can verify this
    /// release before it gets traffic.
    #[arg(long, env = "CALOPS_PRIVATE_LISTEN", value_name = "HOST:PORT")]
    pub private_listen: Option<String>,
    /// Largest number of database connections [default: 16].
    #[arg(long, env = "CALOPS_DB_POOL_SIZE", value_name = "N")]
    pub db_pool_size: Option<String>,
    /// How long in-flight requests may run after SIGTERM [default: 20s].
    #[arg(long, env = "CALOPS_SHUTDOWN_TIMEOUT", value_name = "DURATION")]
    pub shutdown_timeout: Option<String>,
    /// Requests to GET /v2/slots per API key: N/PERIOD (60/min, 5/s, 1000/h) or off [default: 60/min].
    #[arg(long, env = "CALOPS_RATE_LIMIT_AVAILABILITY", value_name = "N/PERIOD")]
    pub rate_limit_availability: Option<String>,
    /// Booking requests (create, reschedule, cancel, reservations) per API key: N/PERIOD or off [default: 20/min].
    #[arg(long, env = "CALOPS_RATE_LIMIT_BOOKINGS", value_name = "N/PERIOD")]
    pub rate_limit_bookings: Option<String>,
    /// Longest wait for Redis before rate limits fall back to in-process counters [default: 250ms].
    #[arg(long, env = "CALOPS_REDIS_TIMEOUT", value_name = "DURATION")]
    pub redis_timeout: Option<String>,
    /// Keep event types, hours and busy time in memory for slot queries, fresh through
    /// PostgreSQL notifications: on or off [default: on].
    #[arg(long, env = "CALOPS_SLOT_CACHE", value_name = "on|off")]
    pub slot_cache: Option<String>,
    /// Also serve /metrics on the public listener (it is always served on the private
    /// listener): on or off [default: off].
    #[arg(long, env = "CALOPS_METRICS_PUBLIC", value_name = "on|off")]
    pub metrics_public: Option<String>,
    /// Backups of a cluster calops runs itself: its `backup.json`. The service then takes the
    /// nightly base backup (one replica, under an advisory lock) and shows backup gauges.
    #[arg(long, env = "CALOPS_BACKUP_CONFIG", value_name = "FILE")]
    pub backup_config: Option<std::path::PathBuf>,
}

impl ServeArgs {
    /// The settings as given, for [`crate::service::config::RawConfig::validate`].
    pub fn raw_config(&self) -> crate::service::config::RawConfig {
        crate::service::config::RawConfig {
            listen: self.listen.clone(),
            database_url: self.database_url.clone(),
            redis_url: self.redis_url.clone(),
            object_storage_url: self.object_storage_url.clone(),
            admin_token_ref: self.admin_token_ref.clone(),
            reuse_port: self.reuse_port,
            private_listen: self.private_listen.clone(),
            db_pool_size: self.db_pool_size.clone(),
            shutdown_timeout: self.shutdown_timeout.clone(),
            rate_limit_availability: self.rate_limit_availability.clone(),
            rate_limit_bookings: self.rate_limit_bookings.clone(),
            redis_timeout: self.redis_timeout.clone(),
            slot_cache: self.slot_cache.clone(),
            metrics_public: self.metrics_public.clone(),
        }
    }
}

impl std::fmt::Debug for ServeArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The same settings as RawConfig, whose Debug hides the passwords in the URLs.
        f.debug_struct("ServeArgs")
            .field("config", &self.raw_config())
            .field("backup_config", &self.backup_config)
            .finish()
    }
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Exit 2 when the plan has changes, 0 when it has none (as Terraform does).
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Also write a Markdown summary for a pull-request comment (under 60,000 characters).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Save the plan file here [default: .terraform/calops.tfplan in the rendered directory].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Let the plan delete or replace this protected resource (repeatable).
    #[arg(long = "allow-destroy", value_name = "ADDRESS")]
    pub allow_destroy: Vec<String>,
    /// Price table (TOML, same format as the bundled one) for the cost estimate.
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,
    /// Plan with this image (pinned `repo@sha256:...`) in the blue slot.
    #[arg(long, value_name = "REF@DIGEST")]
    pub image: Option<String>,
    /// Set a container slot: NAME:STATE[:IMAGE] (repeatable).
    #[arg(long, value_name = "NAME:STATE[:IMAGE]")]
    pub slot: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Keep a release that fails verification running (without traffic) for inspection.
    #[arg(long)]
    pub no_auto_rollback: bool,
    /// A note stored in the deploy lock (shown to anyone who finds it held).
    #[arg(long, short, default_value = "calops deploy")]
    pub message: String,
    /// OCI profiles: deploy this pushed image (REPOSITORY@sha256:...) instead of building one.
    #[arg(long, value_name = "REPO@DIGEST")]
    pub image: Option<String>,
    /// oci-vm profiles: deploy this calops binary (linux/arm64) instead of cross-building one.
    #[arg(long, value_name = "PATH", conflicts_with = "image")]
    pub binary: Option<PathBuf>,
}

/// `calops agent`: deploy by pull, on the VM of an `oci-vm` profile (`--profile` names it).
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The stack's bucket, where releases and reports are.
    #[arg(long, env = "CALOPS_BUCKET", value_name = "NAME")]
    pub bucket: String,
    /// The Object Storage namespace [default: asked from the API].
    #[arg(long, env = "CALOPS_AGENT_NAMESPACE", value_name = "NS")]
    pub namespace: Option<String>,
    /// How long to wait between polls of the bucket.
    #[arg(long, env = "CALOPS_AGENT_INTERVAL", value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub interval: std::time::Duration,
    /// Handle the desired release once (print its report), then exit.
    #[arg(long)]
    pub once: bool,
    /// The agent's own binary: after a switch, replaced by the release that runs, and the
    /// agent exits for systemd to start it (cloud-init sets /opt/calops/bin/calops).
    #[arg(long, env = "CALOPS_AGENT_BINARY", value_name = "PATH")]
    pub self_update: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The release to go back to [default: the previous successful release].
    #[arg(long, value_name = "SEQ")]
    pub to: Option<u64>,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    /// Do not ask for the profile name.
    #[arg(long)]
    pub yes: bool,
    /// Also delete the data (database, objects, releases, history).
    #[arg(long)]
    pub purge: bool,
}

#[derive(Debug, Args)]
pub struct LockArgs {
    #[command(subcommand)]
    pub action: LockAction,
}

#[derive(Debug, Subcommand)]
pub enum LockAction {
    /// Who holds the deploy lock, since when, and until when its lease runs.
    Status,
    /// Release the lock when its holder is gone (expired lease, or a dead process on this host).
    Release {
        /// Release it whoever holds it.
        #[arg(long)]
        force: bool,
    },
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
    /// Authenticate to OCIR with a token fetched with this OCI config profile's API key
    /// (without it, OCIR hosts use ~/.oci/config when `docker login` has no entry).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["username_env", "docker_config"])]
    pub oci_profile: Option<String>,
    /// The OCI config file for --oci-profile (default $OCI_CLI_CONFIG_FILE or ~/.oci/config).
    #[arg(long, value_name = "PATH", requires = "oci_profile")]
    pub oci_config: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImageBuilderArg {
    Native,
    Buildx,
}
