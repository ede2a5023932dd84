//! Terraform's machine-readable UI (`plan -json`): one JSON object per line.
//!
//! calops plans with `-json` so one process gives it the live step and resource for the spinner
//! (`refresh_start`, `planned_change`...), Terraform's diagnostics (rendered back to the text
//! people know, for the log and error messages), and the planned changes and their counts.
//! The plan itself is read from the saved plan file ([`super::tfplan`]); [`check_counts`]
//! holds that reading to the counts Terraform printed.

use super::plan_json::{Action, OutputChange};
use serde_json::Value;

/// One `planned_change` message.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamChange {
    pub address: String,
    pub module_address: Option<String>,
    pub mode: String,
    pub rtype: String,
    pub name: String,
    pub action: Action,
    /// In plan JSON form (`replace_because_cannot_update`, `delete_because_count_index`...).
    pub reason: Option<String>,
}

/// `change_summary` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChangeCounts {
    pub add: u64,
    pub change: u64,
    pub import: u64,
    pub remove: u64,
}

/// What a plan's stream said.
#[derive(Debug, Clone, Default)]
pub struct StreamPlan {
    pub terraform_version: String,
    pub changes: Vec<StreamChange>,
    /// Addresses Terraform found changed outside of Terraform.
    pub drift: Vec<String>,
    pub outputs: Vec<OutputChange>,
    pub counts: Option<ChangeCounts>,
    /// Messages calops could not map exactly (an action or reason it does not know, a move,
    /// an import); informational (the plan is read from the plan file).
    pub unsupported: Vec<String>,
    pub errors: usize,
}

/// The text a person would have seen for one stream line: the message, or for a diagnostic
/// Terraform's usual block (`Error: ...`, `on FILE line N`, the source line, the detail).
/// Lines that are not JSON are passed through.
pub fn human_lines(line: &str) -> Vec<String> {
    let Ok(v) = serde_json::from_str::<Value>(line) else {
        return vec![line.to_string()];
    };
    if v.get("type").and_then(Value::as_str) == Some("diagnostic") {
        if let Some(d) = v.get("diagnostic") {
            return render_diagnostic(d);
        }
    }
    match v.get("@message").and_then(Value::as_str) {
        Some(m) => m.lines().map(String::from).collect(),
        None => vec![line.to_string()],
    }
}

/// A diagnostic as Terraform prints it without colour (framing dropped).
pub fn render_diagnostic(d: &Value) -> Vec<String> {
    let s = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("");
    let severity = match s("severity") {
        "warning" => "Warning",
        _ => "Error",
    };
    let mut out = vec![format!("{severity}: {}", s("summary")), String::new()];
    if let Some(r) = d.get("range") {
        let file = r.get("filename").and_then(Value::as_str).unwrap_or("?");
        let line = r
            .pointer("/start/line")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let context = d
            .pointer("/snippet/context")
            .and_then(Value::as_str)
            .map(|c| format!(", in {c}"))
            .unwrap_or_default();
        out.push(format!("  on {file} line {line}{context}:"));
        if let (Some(code), Some(start)) = (
            d.pointer("/snippet/code").and_then(Value::as_str),
            d.pointer("/snippet/start_line").and_then(Value::as_u64),
        ) {
            for (i, l) in code.lines().enumerate() {
                out.push(format!("  {:>3}: {l}", start + i as u64));
            }
        }
        for val in d
            .pointer("/snippet/values")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
        {
            let t = val.get("traversal").and_then(Value::as_str).unwrap_or("");
            let st = val.get("statement").and_then(Value::as_str).unwrap_or("");
            out.push(format!("    ├────────────────\n    │ {t} {st}"));
        }
        out.push(String::new());
    }
    if !s("detail").is_empty() {
        out.extend(s("detail").lines().map(String::from));
    }
    out.push(String::new());
    out
}

/// The stream's `reason` in plan JSON's `action_reason` form.
fn reason_of(r: &str) -> Option<String> {
    Some(match r {
        "" => return None,
        "tainted" => "replace_because_tainted".into(),
        "requested" => "replace_by_request".into(),
        "cannot_update" => "replace_because_cannot_update".into(),
        "replace_triggered_by" => "replace_by_triggers".into(),
        other if other.starts_with("delete_because_") || other.starts_with("read_because_") => {
            other.into()
        }
        _ => return None,
    })
}

fn action_of(a: &str) -> Option<Action> {
    Some(match a {
        "noop" => Action::NoOp,
        "create" => Action::Create,
        "read" => Action::Read,
        "update" => Action::Update,
        "replace" => Action::Replace,
        "delete" | "remove" => Action::Delete,
        _ => return None,
    })
}

/// Parse a whole `plan -json` stdout.
pub fn parse(stdout: &str) -> StreamPlan {
    let mut p = StreamPlan::default();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            p.unsupported.push(format!("not JSON: {line}"));
            continue;
        };
        let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "version" => {
                p.terraform_version = v
                    .get("terraform")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
            }
            "planned_change" => {
                let c = v.get("change").unwrap_or(&Value::Null);
                match parse_change(c) {
                    Ok(ch) => p.changes.push(ch),
                    Err(why) => p.unsupported.push(why),
                }
            }
            "resource_drift" => {
                if let Some(a) = v.pointer("/change/resource/addr").and_then(Value::as_str) {
                    p.drift.push(a.to_string());
                }
            }
            "change_summary" => {
                let c = v.get("changes").unwrap_or(&Value::Null);
                let n = |k: &str| c.get(k).and_then(Value::as_u64).unwrap_or(0);
                p.counts = Some(ChangeCounts {
                    add: n("add"),
                    change: n("change"),
                    import: n("import"),
                    remove: n("remove"),
                });
            }
            "outputs" => {
                if let Some(Value::Object(outs)) = v.get("outputs") {
                    for (name, o) in outs {
                        let a = o.get("action").and_then(Value::as_str).unwrap_or("");
                        match action_of(a) {
                            Some(action) => p.outputs.push(OutputChange {
                                name: name.clone(),
                                action,
                                sensitive: o
                                    .get("sensitive")
                                    .and_then(Value::as_bool)
                                    .unwrap_or(false),
                            }),
                            None => p.unsupported.push(format!("output {name}: action {a:?}")),
                        }
                    }
                }
            }
            "diagnostic"
                if v.pointer("/diagnostic/severity").and_then(Value::as_str) == Some("error") =>
            {
                p.errors += 1;
            }
            _ => {}
        }
    }
    p
}

fn parse_change(c: &Value) -> Result<StreamChange, String> {
    let r = c.get("resource").unwrap_or(&Value::Null);
    let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let address = s("addr");
    let raw = c.get("action").and_then(Value::as_str).unwrap_or("");
    let action = action_of(raw).ok_or_else(|| format!("{address}: action {raw:?}"))?;
    let reason_raw = c.get("reason").and_then(Value::as_str).unwrap_or("");
    let reason = reason_of(reason_raw);
    if reason.is_none() && !reason_raw.is_empty() {
        return Err(format!("{address}: reason {reason_raw:?}"));
    }
    if c.get("previous_resource").is_some() {
        return Err(format!("{address}: moved"));
    }
    if c.get("importing").is_some() {
        return Err(format!("{address}: imported"));
    }
    let module = s("module");
    let mode = if s("resource").starts_with("data.") {
        "data"
    } else {
        "managed"
    };
    Ok(StreamChange {
        address,
        module_address: (!module.is_empty()).then_some(module),
        mode: mode.into(),
        rtype: s("resource_type"),
        name: s("resource_name"),
        action,
        reason,
    })
}

/// The plan read from the plan file must count what Terraform's own `change_summary` counted,
/// or calops misread it: an error then (the caller falls back to `terraform show -json`).
pub fn check_counts(s: &StreamPlan, read: &ChangeCounts) -> anyhow::Result<()> {
    match &s.counts {
        None => anyhow::bail!("the plan stream has no change summary to check the plan file against"),
        Some(c) if c == read => Ok(()),
        Some(c) => anyhow::bail!(
            "the plan file's changes ({} to add, {} to change, {} to remove, {} to import) differ from Terraform's summary ({}/{}/{}/{})",
            read.add, read.change, read.remove, read.import, c.add, c.change, c.remove, c.import
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fx(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/terraform/plans/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn planned_changes_and_counts_are_read() {
        let s = parse(&fx("changes.stream.jsonl"));
        assert_eq!(s.terraform_version, "1.11.4");
        let db = s
            .changes
            .iter()
            .find(|c| c.address == "terraform_data.db")
            .unwrap();
        assert_eq!(db.action, Action::Replace);
        assert_eq!(db.reason.as_deref(), Some("replace_because_cannot_update"));
        let old = s
            .changes
            .iter()
            .find(|c| c.address == "terraform_data.old[0]")
            .unwrap();
        assert_eq!(old.reason.as_deref(), Some("delete_because_count_index"));
        assert_eq!(old.name, "old");
        let counts = ChangeCounts {
            add: 1,
            change: 1,
            import: 0,
            remove: 2,
        };
        assert_eq!(s.counts, Some(counts));
        assert!(s.unsupported.is_empty(), "{:?}", s.unsupported);
        check_counts(&s, &counts).unwrap();
        let e = check_counts(&s, &ChangeCounts { add: 2, ..counts }).unwrap_err();
        assert!(
            format!("{e}").contains("differ from Terraform's summary"),
            "{e}"
        );
        assert!(check_counts(&StreamPlan::default(), &counts).is_err());
        let move_line = r#"{"type":"planned_change","change":{"resource":{"addr":"t.a","resource":"t.a","resource_type":"t","resource_name":"a"},"action":"move"}}"#;
        assert_eq!(parse(move_line).unsupported.len(), 1);
    }

    #[test]
    fn diagnostics_render_like_terraform() {
        let d = r#"{"@level":"error","@message":"Error: Invalid multi-line string","diagnostic":{"severity":"error","summary":"Invalid multi-line string","detail":"Quoted strings may not be split over multiple lines.","range":{"filename":"main.tf","start":{"line":2,"column":24,"byte":60},"end":{"line":3,"column":1,"byte":61}},"snippet":{"context":"resource \"terraform_data\" \"broken\"","code":"  input = \"unterminated","start_line":2,"highlight_start_offset":23,"highlight_end_offset":24,"values":[]}},"type":"diagnostic"}"#;
        let text = human_lines(d).join("\n");
        assert!(
            text.starts_with("Error: Invalid multi-line string\n\n  on main.tf line 2, in resource \"terraform_data\" \"broken\":\n    2:   input = \"unterminated\n\nQuoted strings"),
            "{text}"
        );
        let s = parse(d);
        assert_eq!(s.errors, 1);
        // The lock report keeps the lines the lock parser reads.
        let lock = r#"{"@level":"error","@message":"Error: Error acquiring the state lock","diagnostic":{"severity":"error","summary":"Error acquiring the state lock","detail":"Error message: resource temporarily unavailable\nLock Info:\n  ID:        ff4f-33\n  Path:      terraform.tfstate\n  Operation: OperationTypeApply\n  Who:       root@vm\n  Version:   1.11.4\n  Created:   2026-11-22 04:14:54 +0000 UTC\n  Info:      \n"},"type":"diagnostic"}"#;
        let text = human_lines(lock).join("\n");
        let l = crate::terraform::errors::parse_lock(
            &text,
            std::path::Path::new("terraform"),
            std::path::Path::new("/w"),
        )
        .unwrap();
        assert_eq!(l.id, "ff4f-33");
        assert_eq!(l.who.as_deref(), Some("root@vm"));
        assert_eq!(
            crate::terraform::errors::error_text("", &text),
            text.trim().to_string()
        );
        assert_eq!(
            human_lines(
                r#"{"@message":"terraform_data.db: Refreshing state... [id=1]","type":"refresh_start"}"#
            ),
            ["terraform_data.db: Refreshing state... [id=1]"]
        );
        assert_eq!(human_lines("plain text"), ["plain text"]);
    }
}
