//! `plan` end to end for an already-rendered directory: init when needed, plan to a saved
//! file (with `-json`: live progress and diagnostics from one process), read the plan back,
//! summarise, price, and run the destroy guard.
//!
//! Reading the plan back: from the saved plan file itself ([`super::tfplan`]: planned values,
//! forcing attributes, sensitive paths, prior state), checked against the change counts of the
//! `-json` stream, so every kind of plan (no-op, create, update, replace, delete) is exactly one
//! Terraform process. `terraform show -json` runs only when asked (`always_show`) or when the
//! plan file cannot be read (e.g. a future plan format); the log says which and why.

use super::command::{EnvSnapshot, InitArgs, PlanArgs};
use super::cost::{estimate, PriceTable};
use super::driver::{default_planfile, Driver};
use super::errors::{needs_init, TfError};
use super::guard::{explain, scan_prevent_destroy, GuardPolicy};
use super::plan_json::Plan;
use super::progress;
use super::runner::{Invocation, Runner};
use super::stream::{check_counts, StreamPlan};
use super::summary::{summarize, Summary};
use super::tfplan::read_plan;
use crate::error::{EXIT_CHANGES, EXIT_OK};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Where to save the plan (default: `.terraform/calops.tfplan` in the directory).
    pub planfile: Option<PathBuf>,
    /// Append the full Terraform output here.
    pub log: Option<PathBuf>,
    pub lock_timeout: Duration,
    pub var_files: Vec<PathBuf>,
    /// Backend settings for `init` (from the profile).
    pub init: InitArgs,
    /// Run `init` even when the directory looks initialised.
    pub force_init: bool,
    pub guard: GuardPolicy,
    /// A price table to use instead of the bundled one.
    pub prices: Option<PathBuf>,
    /// Forward Ctrl-C to Terraform (commands); library callers and tests leave it off.
    pub handle_interrupts: bool,
    /// The environment to resolve terraform and the plugin cache from (default: the process).
    pub env: Option<EnvSnapshot>,
    /// Read the plan back with `terraform show -json` instead of from the plan file (a second
    /// Terraform process; for comparisons and as an escape hatch).
    pub always_show: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            planfile: None,
            log: None,
            lock_timeout: Duration::from_secs(60),
            var_files: Vec::new(),
            init: InitArgs::default(),
            force_init: false,
            guard: GuardPolicy::default(),
            prices: None,
            handle_interrupts: false,
            env: None,
            always_show: false,
        }
    }
}

#[derive(Debug)]
pub struct PlanOutcome {
    pub has_changes: bool,
    /// What `--detailed-exitcode` would exit with: 0 no changes, 2 changes.
    pub exit_code: i32,
    pub planfile: PathBuf,
    pub plan: Plan,
    pub summary: Summary,
    pub terraform_version: String,
    pub log: Option<PathBuf>,
    /// Every Terraform invocation made (op + argv).
    pub invocations: Vec<Invocation>,
}

impl PlanOutcome {
    /// An error explaining the refusal when the plan destroys a protected resource.
    pub fn ensure_allowed(&self) -> anyhow::Result<()> {
        if self.summary.refused.is_empty() {
            Ok(())
        } else {
            Err(anyhow::anyhow!(explain(&self.summary.refused)))
        }
    }
}

/// Build the driver for `workdir` from the options.
pub fn driver_for(workdir: &Path, opts: &PlanOptions) -> anyhow::Result<Driver> {
    let mut runner = Runner::new().handle_interrupts(opts.handle_interrupts);
    if let Some(log) = &opts.log {
        runner = runner.with_log(log)?;
    }
    let env = opts.env.clone().unwrap_or_else(EnvSnapshot::from_process);
    Driver::new(workdir, &env, runner)
}

/// Plan the Terraform root module in `workdir`. `progress` receives short messages (current
/// step and resource) for a spinner.
pub fn run_plan(
    workdir: &Path,
    opts: &PlanOptions,
    progress: impl Fn(&str),
) -> anyhow::Result<PlanOutcome> {
    let driver = driver_for(workdir, opts)?;
    plan_with(&driver, opts, &progress)
}

/// [`run_plan`] with a driver the caller made (to reuse it, e.g. for apply).
pub fn plan_with(
    driver: &Driver,
    opts: &PlanOptions,
    progress: &dyn Fn(&str),
) -> anyhow::Result<PlanOutcome> {
    let on_line = |op| {
        move |l: &str| {
            if let Some(m) = progress::message(op, l) {
                progress(&m);
            }
        }
    };
    if opts.force_init || !driver.dir().join(".terraform").is_dir() {
        progress("init");
        driver
            .init(&opts.init, &mut on_line(super::command::Op::Init))
            .map_err(|e| explain_version(driver, e))?;
    }
    // Terraform runs inside the directory: paths given relative to ours must be made absolute.
    let planfile = absolute(
        &opts
            .planfile
            .clone()
            .unwrap_or_else(|| default_planfile(driver.dir())),
    );
    if let Some(parent) = planfile.parent() {
        std::fs::create_dir_all(parent).ok();
    }
    let mut args = PlanArgs::new(&planfile);
    args.lock_timeout = opts.lock_timeout;
    args.var_files = opts.var_files.iter().map(|f| absolute(f)).collect();
    progress("plan");
    let (has_changes, stream) =
        match driver.plan_streamed(&args, &mut on_line(super::command::Op::Plan)) {
            Ok(c) => c,
            // A directory initialised before a module or backend change: init once, plan again.
            Err(e)
                if e.downcast_ref::<TfError>()
                    .is_some_and(|t| needs_init(&t.message)) =>
            {
                progress("init (the directory needs it)");
                driver.init(&opts.init, &mut on_line(super::command::Op::Init))?;
                progress("plan");
                driver.plan_streamed(&args, &mut on_line(super::command::Op::Plan))?
            }
            Err(e) => return Err(explain_version(driver, e)),
        };
    // The -json stream has no attribute-level diff; say where to see it.
    driver.runner.note(&format!(
        "attribute-level diff of this plan: {} -chdir={} show {}",
        driver.ctx.program.display(),
        driver.dir().display(),
        planfile.display()
    ));
    progress("reading the plan");
    let plan = read_back(driver, opts, &stream, &planfile)?;
    let table = match &opts.prices {
        Some(p) => PriceTable::load(p)?,
        None => PriceTable::bundled(),
    };
    let mut guard = opts.guard.clone();
    guard
        .prevent_destroy
        .extend(scan_prevent_destroy(driver.dir()));
    let summary = summarize(&plan, &guard, Some(estimate(&plan, &table)));
    let terraform_version = plan.terraform_version.clone();
    Ok(PlanOutcome {
        has_changes,
        exit_code: if has_changes { EXIT_CHANGES } else { EXIT_OK },
        planfile,
        plan,
        summary,
        terraform_version,
        log: driver.runner.log_path().map(Path::to_path_buf),
        invocations: driver.invocations(),
    })
}

/// The plan as [`Plan`]: read from the plan file and checked against the stream's counts, or
/// (asked for, or when that fails) from `terraform show -json`. The choice goes to the log.
fn read_back(
    driver: &Driver,
    opts: &PlanOptions,
    stream: &StreamPlan,
    planfile: &Path,
) -> anyhow::Result<Plan> {
    let why = if opts.always_show {
        "always_show is set".to_string()
    } else {
        match read_plan(planfile).and_then(|s| check_counts(stream, &s.counts).map(|()| s.plan)) {
            Ok(plan) => {
                driver
                    .runner
                    .note("plan read from the saved plan file (no `terraform show -json` needed)");
                return Ok(plan);
            }
            Err(e) => format!("the saved plan could not be read by calops ({e:#})"),
        }
    };
    driver.runner.note(&format!(
        "reading the plan with `terraform show -json`: {why}"
    ));
    driver.show_plan(planfile)
}

/// The version is checked only when Terraform failed (a separate `terraform version` run on
/// every plan would cost a process start; the plan JSON carries the version anyway): a too-old
/// Terraform turns the failure into "upgrade Terraform".
fn explain_version(driver: &Driver, err: anyhow::Error) -> anyhow::Error {
    if err.downcast_ref::<TfError>().is_none() {
        return err;
    }
    match driver.version() {
        Err(version_err) => version_err.context(err.to_string()),
        Ok(_) => err,
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
