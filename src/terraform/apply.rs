//! The idempotent apply used by `deploy`: plan; when nothing changes stop there (no apply
//! call at all); otherwise check the destroy guard, apply exactly the saved plan, and read the
//! outputs.

use super::driver::{Driver, Outputs};
use super::plan::{driver_for, plan_with, PlanOptions, PlanOutcome};
use super::progress;
use super::runner::Invocation;
use std::path::Path;

#[derive(Debug)]
pub struct ApplyOutcome {
    /// False when the plan had no changes and apply was never called.
    pub applied: bool,
    pub plan: PlanOutcome,
    pub outputs: Outputs,
    /// The state serial after the run (`None` without state).
    pub state_serial: Option<u64>,
    /// Every Terraform invocation made, plan and apply included.
    pub invocations: Vec<Invocation>,
}

/// Plan and apply `workdir` if (and only if) something changes.
pub fn apply_if_changed(
    workdir: &Path,
    opts: &PlanOptions,
    progress: impl Fn(&str),
) -> anyhow::Result<ApplyOutcome> {
    let driver = driver_for(workdir, opts)?;
    apply_with(&driver, opts, &progress)
}

pub fn apply_with(
    driver: &Driver,
    opts: &PlanOptions,
    progress: &dyn Fn(&str),
) -> anyhow::Result<ApplyOutcome> {
    let plan = plan_with(driver, opts, progress)?;
    apply_planned(driver, plan, opts, progress)
}

/// Apply a plan made earlier with the same driver (e.g. after showing its summary and asking
/// for confirmation): refused if the destroy guard objects, skipped when it has no changes,
/// otherwise exactly the saved plan file is applied. Outputs are read either way.
pub fn apply_planned(
    driver: &Driver,
    plan: PlanOutcome,
    opts: &PlanOptions,
    progress: &dyn Fn(&str),
) -> anyhow::Result<ApplyOutcome> {
    plan.ensure_allowed()?;
    let applied = if plan.has_changes {
        progress("apply");
        let mut on_line = |l: &str| {
            if let Some(m) = progress::message(super::command::Op::Apply, l) {
                progress(&m);
            }
        };
        driver.apply(&plan.planfile, opts.lock_timeout, &mut on_line)?;
        true
    } else {
        false
    };
    // The plan file is spent either way (apply consumed it, or it is an empty plan).
    std::fs::remove_file(&plan.planfile).ok();
    progress("reading outputs");
    let outputs = driver.outputs()?;
    let state_serial = driver.state_serial()?;
    Ok(ApplyOutcome {
        applied,
        plan,
        outputs,
        state_serial,
        invocations: driver.invocations(),
    })
}
