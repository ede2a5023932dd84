//! `calops tf-plan` and `calops tf-apply`: plan or converge an already-rendered Terraform
//! directory. `calops plan --profile` and `deploy` build on the same library functions.

use crate::cli::{TfApplyArgs, TfCommonArgs, TfPlanArgs};
use crate::error::{Exit, EXIT_CHANGES, EXIT_ERROR, EXIT_OK};
use crate::terraform::summary::{render_human, render_markdown, MARKDOWN_LIMIT};
use crate::terraform::{apply_if_changed, run_plan, PlanOptions, PlanOutcome};
use crate::ui::Ui;
use anyhow::Context;
use serde_json::json;
use std::path::{Path, PathBuf};

/// `.calops/<name>/logs/<timestamp>-<op>.log`, relative to the current directory.
pub fn default_log_path(name: &str, op: &str) -> PathBuf {
    let ts = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    Path::new(".calops")
        .join(name)
        .join("logs")
        .join(format!("{ts}-{op}.log"))
}

fn options(c: &TfCommonArgs, op: &str) -> PlanOptions {
    let name = std::fs::canonicalize(&c.dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "default".into());
    let mut o = PlanOptions {
        log: Some(c.log.clone().unwrap_or_else(|| default_log_path(&name, op))),
        lock_timeout: c.lock_timeout,
        var_files: c.var_files.clone(),
        prices: c.prices.clone(),
        handle_interrupts: true,
        ..PlanOptions::default()
    };
    o.guard.protect(&c.protect);
    o.guard.allow_destroy = c.allow_destroy.clone();
    o
}

fn progress_fn(ui: &Ui, pb: &indicatif::ProgressBar) -> impl Fn(&str) {
    let pb = pb.clone();
    let ui = ui.clone();
    move |m: &str| {
        pb.set_message(m.to_string());
        if !ui.progress_enabled() {
            ui.detail(m);
        }
    }
}

pub fn plan(args: &TfPlanArgs, ui: &Ui) -> anyhow::Result<i32> {
    let mut opts = options(&args.common, "plan");
    opts.planfile = args.out.clone();
    let pb = ui.spinner("terraform plan");
    let res = run_plan(&args.common.dir, &opts, progress_fn(ui, &pb));
    pb.finish_and_clear();
    report_plan(ui, &res?, args.markdown.as_deref(), args.detailed_exitcode)
}

/// Print a plan outcome the way `plan` commands do (one JSON document with `--json`, else the
/// human summary), write the Markdown PR comment when asked, and return the exit code: 0, 2
/// for changes with `detailed_exitcode`, or an error (exit 1) when the destroy guard refused.
pub fn report_plan(
    ui: &Ui,
    outcome: &PlanOutcome,
    markdown: Option<&Path>,
    detailed_exitcode: bool,
) -> anyhow::Result<i32> {
    let s = &outcome.summary;
    if let Some(md) = markdown {
        std::fs::write(md, render_markdown(s, MARKDOWN_LIMIT))
            .with_context(|| format!("writing the Markdown summary to {}", md.display()))?;
    }
    let refused = !s.refused.is_empty();
    let code = if refused {
        EXIT_ERROR
    } else if detailed_exitcode && outcome.has_changes {
        EXIT_CHANGES
    } else {
        EXIT_OK
    };
    let status = if refused {
        "refused"
    } else if outcome.has_changes {
        "changes"
    } else {
        "no_changes"
    };
    let doc = json!({
        "status": status,
        "exit_code": code,
        "has_changes": outcome.has_changes,
        "summary": s,
        "planfile": outcome.planfile,
        "log": outcome.log,
        "terraform_version": outcome.terraform_version,
    });
    ui.result(&doc, || {
        let mut t = render_human(s);
        if let Some(log) = &outcome.log {
            t.push_str(&format!("Full Terraform log: {}\n", log.display()));
        }
        if outcome.has_changes && !refused {
            t.push_str(&format!("Saved plan: {}\n", outcome.planfile.display()));
        }
        t
    });
    if refused {
        // The summary above already explains the refusal and the fix.
        return Err(Exit {
            code: EXIT_ERROR,
            message: None,
        }
        .into());
    }
    Ok(code)
}

pub fn apply(args: &TfApplyArgs, ui: &Ui) -> anyhow::Result<i32> {
    let opts = options(&args.common, "apply");
    let pb = ui.spinner("terraform apply");
    let res = apply_if_changed(&args.common.dir, &opts, progress_fn(ui, &pb));
    pb.finish_and_clear();
    let outcome = res?;
    let doc = json!({
        "status": if outcome.applied { "applied" } else { "unchanged" },
        "applied": outcome.applied,
        "summary": outcome.plan.summary,
        "outputs": outcome.outputs,
        "state_serial": outcome.state_serial,
        "log": outcome.plan.log,
    });
    ui.result(&doc, || {
        let mut t = if outcome.applied {
            format!("Applied.\n{}", render_human(&outcome.plan.summary))
        } else {
            "No changes: nothing was applied.\n".to_string()
        };
        for (k, v) in &outcome.outputs {
            t.push_str(&format!(
                "output {k} = {}\n",
                serde_json::to_value(v)
                    .map(|j| j["value"].to_string())
                    .unwrap_or_default()
            ));
        }
        t
    });
    Ok(EXIT_OK)
}
