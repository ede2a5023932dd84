//! Command builders: pure functions that return the argv and environment of one `terraform`
//! invocation. Nothing here runs a process; [`super::runner::Runner`] does that.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which Terraform operation a command performs (used for progress, logs and error messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    Version,
    Init,
    Plan,
    Show,
    Apply,
    Output,
    StatePull,
    ForceUnlock,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Version => "version",
            Op::Init => "init",
            Op::Plan => "plan",
            Op::Show => "show",
            Op::Apply => "apply",
            Op::Output => "output",
            Op::StatePull => "state pull",
            Op::ForceUnlock => "force-unlock",
        }
    }
}

/// One fully described invocation: `program args...` in `dir` with `env` added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TfCommand {
    pub op: Op,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub dir: PathBuf,
    /// stdout carries machine output that may hold secrets (show -json, output -json, state
    /// pull): it is captured in memory only, never streamed to the log or progress callback.
    pub secret_stdout: bool,
    /// stdout is Terraform's machine-readable UI (`-json`): one JSON object per line. The
    /// runner logs and streams the human text of each line and keeps the JSON for parsing.
    pub json_stream: bool,
}

impl TfCommand {
    /// The command as a person would type it, for logs and messages: no environment values,
    /// and the values of `-var NAME=VALUE` hidden (they may be secrets).
    pub fn display(&self) -> String {
        let mut s = self.program.display().to_string();
        let mut after_var = false;
        for a in &self.args {
            s.push(' ');
            if std::mem::take(&mut after_var) {
                let name = a.split('=').next().unwrap_or("");
                s.push_str(&format!("{name}=(hidden)"));
                continue;
            }
            after_var = a == "-var";
            if a.contains(' ') || a.is_empty() {
                s.push_str(&format!("{a:?}"));
            } else {
                s.push_str(a);
            }
        }
        s
    }
}

/// Everything the builders need that comes from the environment, resolved once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TfContext {
    /// The terraform executable (from `CALOPS_TERRAFORM`, else `terraform` on PATH).
    pub program: PathBuf,
    /// The root module directory.
    pub dir: PathBuf,
    /// Environment added to every invocation.
    pub env: BTreeMap<String, String>,
}

/// The parts of the process environment the driver reads, captured so resolution stays pure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvSnapshot {
    /// `CALOPS_TERRAFORM`: a path (or name on PATH) to use instead of `terraform`.
    pub terraform_override: Option<String>,
    /// `TF_PLUGIN_CACHE_DIR` as the user set it.
    pub plugin_cache_dir: Option<String>,
    /// `TF_CLI_CONFIG_FILE` as the user set it.
    pub cli_config_file: Option<String>,
    /// `dirs::cache_dir()`.
    pub cache_dir: Option<PathBuf>,
    /// `dirs::home_dir()` (for the default `~/.terraformrc`).
    pub home_dir: Option<PathBuf>,
    /// Added to every invocation, e.g. the OCI provider's credentials (the caller sets it).
    pub extra: ExtraEnv,
}

/// Environment variables added to every invocation. `Debug` shows the names only: values may be
/// secrets (a key's pass phrase). The runner never logs environment values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ExtraEnv(pub BTreeMap<String, String>);

impl std::fmt::Debug for ExtraEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl EnvSnapshot {
    pub fn from_process() -> EnvSnapshot {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        EnvSnapshot {
            terraform_override: var("CALOPS_TERRAFORM"),
            plugin_cache_dir: var("TF_PLUGIN_CACHE_DIR"),
            cli_config_file: var("TF_CLI_CONFIG_FILE"),
            cache_dir: dirs::cache_dir(),
            home_dir: dirs::home_dir(),
            extra: ExtraEnv::default(),
        }
    }

    /// The CLI configuration file Terraform will read.
    pub fn cli_config_path(&self) -> Option<PathBuf> {
        match &self.cli_config_file {
            Some(p) => Some(PathBuf::from(p)),
            None => self.home_dir.as_ref().map(|h| h.join(".terraformrc")),
        }
    }
}

/// Where the shared provider plugin cache goes, if calops should set one.
///
/// - `TF_PLUGIN_CACHE_DIR` set by the user: Terraform already uses it; calops sets nothing.
/// - the CLI config file (`TF_CLI_CONFIG_FILE` or `~/.terraformrc`) sets `plugin_cache_dir`:
///   the user chose a cache; calops sets nothing.
/// - otherwise: `<cache dir>/calops/plugin-cache`, shared by every profile so a second
///   profile's `init` links providers instead of downloading them.
pub fn plugin_cache_to_set(env: &EnvSnapshot, cli_config_text: Option<&str>) -> Option<PathBuf> {
    if env.plugin_cache_dir.is_some() {
        return None;
    }
    if let Some(text) = cli_config_text {
        let sets_cache = text.lines().any(|l| {
            let l = l.trim_start();
            !l.starts_with('#') && !l.starts_with("//") && l.starts_with("plugin_cache_dir")
        });
        if sets_cache {
            return None;
        }
    }
    env.cache_dir
        .as_ref()
        .map(|c| c.join("calops").join("plugin-cache"))
}

/// The terraform program to run: the override if given, else `terraform`.
pub fn program(env: &EnvSnapshot) -> PathBuf {
    PathBuf::from(env.terraform_override.as_deref().unwrap_or("terraform"))
}

/// Environment every invocation gets: non-interactive, no colour codes in parsed output, no
/// update check, and the plugin cache when calops manages it.
pub fn base_env(plugin_cache: Option<&Path>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("TF_IN_AUTOMATION".into(), "1".into());
    env.insert("TF_INPUT".into(), "0".into());
    env.insert("CHECKPOINT_DISABLE".into(), "1".into());
    if let Some(dir) = plugin_cache {
        env.insert("TF_PLUGIN_CACHE_DIR".into(), dir.display().to_string());
    }
    env
}

fn cmd(ctx: &TfContext, op: Op, args: Vec<String>, secret_stdout: bool) -> TfCommand {
    TfCommand {
        op,
        program: ctx.program.clone(),
        args,
        env: ctx.env.clone(),
        dir: ctx.dir.clone(),
        secret_stdout,
        json_stream: false,
    }
}

/// `terraform version -json`.
pub fn version(ctx: &TfContext) -> TfCommand {
    cmd(
        ctx,
        Op::Version,
        vec!["version".into(), "-json".into()],
        false,
    )
}

#[derive(Debug, Clone, Default)]
pub struct InitArgs {
    /// `-backend-config=KEY=VALUE` pairs (from the profile's state backend).
    pub backend_config: Vec<(String, String)>,
    /// `-backend-config=FILE` files (e.g. the Object Storage namespace found at run time).
    pub backend_config_files: Vec<PathBuf>,
    /// `-backend=false`: skip backend setup (validation-only uses).
    pub no_backend: bool,
    /// `-reconfigure`: ignore any saved backend configuration.
    pub reconfigure: bool,
    /// `-upgrade`: pick newer provider versions within constraints.
    pub upgrade: bool,
}

/// `terraform init -input=false -no-color [-backend-config=K=V]...`.
pub fn init(ctx: &TfContext, a: &InitArgs) -> TfCommand {
    let mut args = vec!["init".into(), "-input=false".into(), "-no-color".into()];
    if a.no_backend {
        args.push("-backend=false".into());
    }
    for (k, v) in &a.backend_config {
        args.push(format!("-backend-config={k}={v}"));
    }
    for f in &a.backend_config_files {
        args.push(format!("-backend-config={}", f.display()));
    }
    if a.reconfigure {
        args.push("-reconfigure".into());
    }
    if a.upgrade {
        args.push("-upgrade".into());
    }
    cmd(ctx, Op::Init, args, false)
}

#[derive(Debug, Clone)]
pub struct PlanArgs {
    /// The saved plan file (`-out=`).
    pub out: PathBuf,
    /// How long to wait for the state lock (`-lock-timeout=`).
    pub lock_timeout: Duration,
    /// `-var-file=` files, in order.
    pub var_files: Vec<PathBuf>,
    /// `-var NAME=VALUE` pairs. Avoid for secrets (they would show in `ps`); use var files or
    /// `TF_VAR_` environment variables.
    pub vars: Vec<(String, String)>,
    /// `-destroy`.
    pub destroy: bool,
    /// `-refresh=false`.
    pub no_refresh: bool,
    /// `-json`: the machine-readable UI on stdout (one JSON message per line).
    pub json: bool,
}

impl PlanArgs {
    pub fn new(out: impl Into<PathBuf>) -> PlanArgs {
        PlanArgs {
            out: out.into(),
            lock_timeout: Duration::from_secs(60),
            var_files: Vec::new(),
            vars: Vec::new(),
            destroy: false,
            no_refresh: false,
            json: false,
        }
    }
}

/// Terraform's duration syntax for `-lock-timeout`: whole seconds.
pub fn tf_duration(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

/// `terraform plan [-json] -input=false -no-color -out=FILE -detailed-exitcode -lock-timeout=Ns`.
pub fn plan(ctx: &TfContext, a: &PlanArgs) -> TfCommand {
    let mut args: Vec<String> = vec!["plan".into()];
    if a.json {
        args.push("-json".into());
    }
    args.extend([
        "-input=false".into(),
        "-no-color".into(),
        format!("-out={}", a.out.display()),
        "-detailed-exitcode".into(),
        format!("-lock-timeout={}", tf_duration(a.lock_timeout)),
    ]);
    for f in &a.var_files {
        args.push(format!("-var-file={}", f.display()));
    }
    for (k, v) in &a.vars {
        args.push("-var".into());
        args.push(format!("{k}={v}"));
    }
    if a.destroy {
        args.push("-destroy".into());
    }
    if a.no_refresh {
        args.push("-refresh=false".into());
    }
    let mut c = cmd(ctx, Op::Plan, args, false);
    c.json_stream = a.json;
    c
}

/// `terraform show -json FILE` (the plan as JSON; holds sensitive values, so stdout is secret).
pub fn show_plan(ctx: &TfContext, planfile: &Path) -> TfCommand {
    cmd(
        ctx,
        Op::Show,
        vec![
            "show".into(),
            "-json".into(),
            "-no-color".into(),
            planfile.display().to_string(),
        ],
        true,
    )
}

/// `terraform apply -input=false -no-color -lock-timeout=Ns FILE`: applies exactly the saved
/// plan (Terraform refuses a stale plan file).
pub fn apply(ctx: &TfContext, planfile: &Path, lock_timeout: Duration) -> TfCommand {
    cmd(
        ctx,
        Op::Apply,
        vec![
            "apply".into(),
            "-input=false".into(),
            "-no-color".into(),
            "-auto-approve".into(),
            format!("-lock-timeout={}", tf_duration(lock_timeout)),
            planfile.display().to_string(),
        ],
        false,
    )
}

/// `terraform output -json` (may hold sensitive values).
pub fn output_json(ctx: &TfContext) -> TfCommand {
    cmd(
        ctx,
        Op::Output,
        vec!["output".into(), "-json".into(), "-no-color".into()],
        true,
    )
}

/// `terraform state pull` (the raw state: secrets in plain text, never logged).
pub fn state_pull(ctx: &TfContext) -> TfCommand {
    cmd(
        ctx,
        Op::StatePull,
        vec!["state".into(), "pull".into()],
        true,
    )
}

/// The exact command a person runs to release a stuck lock.
pub fn force_unlock_line(program: &Path, dir: &Path, lock_id: &str) -> String {
    format!(
        "{} -chdir={} force-unlock {}",
        program.display(),
        shell_quote(&dir.display().to_string()),
        shell_quote(lock_id)
    )
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> TfContext {
        TfContext {
            program: PathBuf::from("/opt/tf/terraform"),
            dir: PathBuf::from("/work/dir"),
            env: base_env(Some(Path::new("/cache/calops/plugin-cache"))),
        }
    }

    #[test]
    fn plan_has_out_detailed_exitcode_and_lock_timeout() {
        let mut a = PlanArgs::new("/tmp/x.tfplan");
        a.lock_timeout = Duration::from_secs(90);
        a.var_files.push("vars.tfvars.json".into());
        let c = plan(&ctx(), &a);
        assert_eq!(c.op, Op::Plan);
        assert_eq!(c.program, PathBuf::from("/opt/tf/terraform"));
        assert_eq!(
            c.args,
            [
                "plan",
                "-input=false",
                "-no-color",
                "-out=/tmp/x.tfplan",
                "-detailed-exitcode",
                "-lock-timeout=90s",
                "-var-file=vars.tfvars.json"
            ]
        );
        assert!(!c.secret_stdout);
        assert!(!c.json_stream);
        assert_eq!(c.env["TF_IN_AUTOMATION"], "1");
        assert_eq!(c.env["TF_PLUGIN_CACHE_DIR"], "/cache/calops/plugin-cache");
        assert_eq!(c.dir, PathBuf::from("/work/dir"));
    }

    #[test]
    fn plan_json_stream() {
        let mut a = PlanArgs::new("/tmp/x.tfplan");
        a.json = true;
        let c = plan(&ctx(), &a);
        assert_eq!(&c.args[..3], ["plan", "-json", "-input=false"]);
        assert!(c.args.contains(&"-detailed-exitcode".to_string()));
        assert!(c.json_stream);
        assert!(!c.secret_stdout);
    }

    #[test]
    fn display_hides_var_values() {
        let mut a = PlanArgs::new("p");
        a.vars.push(("db_password".into(), "hunter2".into()));
        let c = plan(&ctx(), &a);
        assert!(c.args.contains(&"db_password=hunter2".to_string()));
        let shown = c.display();
        assert!(shown.contains("-var db_password=(hidden)"), "{shown}");
        assert!(!shown.contains("hunter2"));
        assert!(shown.starts_with("/opt/tf/terraform plan -input=false"));
    }

    #[test]
    fn init_passes_backend_config_and_no_input() {
        let a = InitArgs {
            backend_config: vec![
                ("bucket".into(), "tfstate".into()),
                ("key".into(), "prod/terraform.tfstate".into()),
            ],
            ..Default::default()
        };
        let c = init(&ctx(), &a);
        assert_eq!(
            c.args,
            [
                "init",
                "-input=false",
                "-no-color",
                "-backend-config=bucket=tfstate",
                "-backend-config=key=prod/terraform.tfstate"
            ]
        );
    }

    #[test]
    fn secret_outputs_are_marked() {
        let c = ctx();
        assert!(show_plan(&c, Path::new("p.tfplan")).secret_stdout);
        assert!(output_json(&c).secret_stdout);
        assert!(state_pull(&c).secret_stdout);
        assert_eq!(
            show_plan(&c, Path::new("p.tfplan")).args,
            ["show", "-json", "-no-color", "p.tfplan"]
        );
        assert_eq!(state_pull(&c).args, ["state", "pull"]);
        assert_eq!(output_json(&c).args, ["output", "-json", "-no-color"]);
        assert_eq!(version(&c).args, ["version", "-json"]);
    }

    #[test]
    fn apply_uses_the_saved_plan_only() {
        let c = apply(&ctx(), Path::new("/tmp/p.tfplan"), Duration::from_secs(5));
        assert_eq!(c.args.last().unwrap(), "/tmp/p.tfplan");
        assert!(c.args.contains(&"-lock-timeout=5s".to_string()));
        assert!(!c.args.iter().any(|a| a.starts_with("-var")));
    }

    #[test]
    fn plugin_cache_respects_user_choices() {
        let mut env = EnvSnapshot {
            cache_dir: Some("/home/u/.cache".into()),
            home_dir: Some("/home/u".into()),
            ..Default::default()
        };
        assert_eq!(
            plugin_cache_to_set(&env, None),
            Some(PathBuf::from("/home/u/.cache/calops/plugin-cache"))
        );
        assert_eq!(
            plugin_cache_to_set(&env, Some("# plugin_cache_dir = \"/x\"\n")),
            Some(PathBuf::from("/home/u/.cache/calops/plugin-cache"))
        );
        assert_eq!(
            plugin_cache_to_set(&env, Some("plugin_cache_dir = \"/x\"\n")),
            None
        );
        env.plugin_cache_dir = Some("/mine".into());
        assert_eq!(plugin_cache_to_set(&env, None), None);
        assert_eq!(
            env.cli_config_path(),
            Some(PathBuf::from("/home/u/.terraformrc"))
        );
        env.cli_config_file = Some("/etc/tf.rc".into());
        assert_eq!(env.cli_config_path(), Some(PathBuf::from("/etc/tf.rc")));
    }

    #[test]
    fn program_override() {
        let mut env = EnvSnapshot::default();
        assert_eq!(program(&env), PathBuf::from("terraform"));
        env.terraform_override = Some("/usr/local/bin/tf-1.11".into());
        assert_eq!(program(&env), PathBuf::from("/usr/local/bin/tf-1.11"));
    }

    #[test]
    fn force_unlock_line_is_exact_and_quoted() {
        assert_eq!(
            force_unlock_line(Path::new("terraform"), Path::new("/a b/c"), "1f2e-33"),
            "terraform -chdir='/a b/c' force-unlock 1f2e-33"
        );
    }
}
