use crate::cli::GlobalArgs;
use crate::doctor::{checks, Status};
use crate::error::{Exit, EXIT_ERROR};
use crate::ui::{Style, Ui};

pub fn run(g: &GlobalArgs, ui: &Ui) -> anyhow::Result<i32> {
    let profile = match &g.profile {
        Some(_) => Some(super::load_profile(g, ui)?),
        None => None,
    };
    let report = checks::run(profile.as_ref());
    ui.result(
        &serde_json::json!({ "ok": report.passed(), "report": report }),
        || {
            let mut out = String::new();
            if let Some(p) = &report.profile {
                out.push_str(&format!(
                    "doctor: profile {p} (target {})\n",
                    report.target.as_deref().unwrap_or("?")
                ));
            }
            for c in &report.checks {
                let (tag, style) = match c.status {
                    Status::Ok => ("ok  ", Style::Ok),
                    Status::Warn => ("warn", Style::Warn),
                    Status::Fail => ("FAIL", Style::Fail),
                };
                let req = if c.required { "" } else { " (optional)" };
                out.push_str(&format!(
                    "{} {}{req}: {}",
                    ui.paint(tag, style),
                    c.name,
                    c.detail
                ));
                if let Some(p) = &c.path {
                    out.push_str(&format!(" [{p}]"));
                }
                out.push('\n');
                if let Some(f) = &c.fix {
                    if c.status != Status::Ok {
                        out.push_str(&format!("     fix: {f}\n"));
                    }
                }
            }
            out.push_str(if report.passed() {
                "all required checks passed\n"
            } else {
                "some required checks failed\n"
            });
            out
        },
    );
    if report.passed() {
        Ok(0)
    } else {
        Err(Exit {
            code: EXIT_ERROR,
            message: None,
        }
        .into())
    }
}
