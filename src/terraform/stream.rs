//! Terraform's machine-readable UI (`plan -json`): one JSON object per line.
//!
//! calops plans with `-json` so one process gives it the live step and resource for the spinner
//! (`refresh_start`, `planned_change`...), Terraform's diagnostics (rendered back to the text
//! people know, for the log and error messages), and the planned changes themselves. When the
//! stream says everything the summary needs, `terraform show -json PLANFILE` (a second
//! Terraform process, as slow as the plan itself on small configurations) is skipped and the
//! [`Plan`] is built from the stream plus the prior state saved in the plan file
//! ([`super::planfile`]). [`show_needed`] decides; it errs on the side of running `show`.

use super::plan_json::{Action, OutputChange, Plan, ResourceChange, ResourceValues};
use serde_json::Value;
use std::collections::BTreeSet;

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
    /// an import): any of these makes [`show_needed`] ask for `terraform show -json`.
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
            "diagnostic" => {
                if v.pointer("/diagnostic/severity").and_then(Value::as_str) == Some("error") {
                    p.errors += 1;
                }
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

/// Why `terraform show -json` must run after this plan, or `None` when the stream and the
/// prior state say everything the summary, the guard and the cost estimate need.
/// `needs_values(type)`: whether pricing a resource of that type reads its attribute values.
pub fn show_needed(s: &StreamPlan, needs_values: impl Fn(&str) -> bool) -> Option<String> {
    if let Some(u) = s.unsupported.first() {
        return Some(format!(
            "the plan stream has something calops does not map ({u})"
        ));
    }
    let Some(counts) = s.counts else {
        return Some("the plan stream has no change summary".into());
    };
    if counts.import > 0 {
        return Some("the plan imports resources".into());
    }
    let managed: Vec<&StreamChange> = s.changes.iter().filter(|c| c.mode == "managed").collect();
    let n = |a: Action| managed.iter().filter(|c| c.action == a).count() as u64;
    // Terraform's own counts must match what was seen, or something was missed.
    if counts.add != n(Action::Create) + n(Action::Replace)
        || counts.change != n(Action::Update)
        || counts.remove != n(Action::Delete) + n(Action::Replace)
    {
        return Some(format!(
            "the plan stream's change summary ({}/{}/{}) does not match its planned changes",
            counts.add, counts.change, counts.remove
        ));
    }
    if let Some(c) = managed
        .iter()
        .find(|c| matches!(c.action, Action::Update | Action::Replace))
    {
        return Some(format!(
            "{} is {}d: the summary names the attributes that change",
            c.address,
            c.action.as_str()
        ));
    }
    if let Some(c) = managed
        .iter()
        .find(|c| c.action == Action::Create && needs_values(&c.rtype))
    {
        return Some(format!(
            "{} is created: its price depends on its planned size",
            c.address
        ));
    }
    None
}

/// The [`Plan`] the stream and the plan file's prior state describe (use only when
/// [`show_needed`] said `None`). Unchanged managed resources get no-op entries, like plan
/// JSON has; resources to be created have no values yet (`null`: only their type is known).
pub fn to_plan(s: &StreamPlan, prior: Vec<ResourceValues>) -> Plan {
    let changed: BTreeSet<&str> = s.changes.iter().map(|c| c.address.as_str()).collect();
    let prior_of = |addr: &str| {
        prior
            .iter()
            .find(|r| r.address == addr)
            .map(|r| r.values.clone())
            .unwrap_or(Value::Null)
    };
    let mut resource_changes: Vec<ResourceChange> = s
        .changes
        .iter()
        .map(|c| {
            let before = match c.action {
                Action::Create => Value::Null,
                _ => prior_of(&c.address),
            };
            let after = match c.action {
                Action::Delete | Action::Create => Value::Null,
                _ => before.clone(),
            };
            ResourceChange {
                address: c.address.clone(),
                module_address: c.module_address.clone(),
                mode: c.mode.clone(),
                rtype: c.rtype.clone(),
                name: c.name.clone(),
                action: c.action,
                create_before_destroy: false,
                action_reason: c.reason.clone(),
                replace_paths: Vec::new(),
                changed_paths: Vec::new(),
                unknown_paths: Vec::new(),
                sensitive_paths: Vec::new(),
                before,
                after,
            }
        })
        .collect();
    for r in prior
        .iter()
        .filter(|r| r.mode == "managed" && !changed.contains(r.address.as_str()))
    {
        let (module_address, name) = split_address(&r.address, &r.rtype);
        resource_changes.push(ResourceChange {
            address: r.address.clone(),
            module_address,
            mode: r.mode.clone(),
            rtype: r.rtype.clone(),
            name,
            action: Action::NoOp,
            create_before_destroy: false,
            action_reason: None,
            replace_paths: Vec::new(),
            changed_paths: Vec::new(),
            unknown_paths: Vec::new(),
            sensitive_paths: Vec::new(),
            before: r.values.clone(),
            after: r.values.clone(),
        });
    }
    resource_changes.sort_by(|a, b| a.address.cmp(&b.address));
    let deleted: BTreeSet<&str> = s
        .changes
        .iter()
        .filter(|c| c.action == Action::Delete)
        .map(|c| c.address.as_str())
        .collect();
    let mut planned: Vec<ResourceValues> = prior
        .iter()
        .filter(|r| !deleted.contains(r.address.as_str()))
        .cloned()
        .collect();
    for c in s.changes.iter().filter(|c| c.action == Action::Create) {
        planned.push(ResourceValues {
            address: c.address.clone(),
            rtype: c.rtype.clone(),
            mode: c.mode.clone(),
            values: Value::Null,
        });
    }
    let mut output_changes = s.outputs.clone();
    output_changes.sort_by(|a, b| a.name.cmp(&b.name));
    let has_changes = resource_changes
        .iter()
        .any(|c| c.mode == "managed" && !matches!(c.action, Action::NoOp | Action::Read))
        || output_changes.iter().any(|o| o.action != Action::NoOp);
    Plan {
        terraform_version: s.terraform_version.clone(),
        resource_changes,
        output_changes,
        prior,
        planned,
        applyable: has_changes,
        errored: s.errors > 0,
    }
}

/// `module.a.t.n[0]` -> (`Some("module.a")`, `n`).
fn split_address(address: &str, rtype: &str) -> (Option<String>, String) {
    let needle = format!("{rtype}.");
    match address.rfind(&needle) {
        Some(i) => {
            let module = address[..i].trim_end_matches('.');
            let module = module.strip_suffix(".data").unwrap_or(module);
            let name = address[i + needle.len()..]
                .split('[')
                .next()
                .unwrap_or("")
                .to_string();
            (
                (!module.is_empty() && module != "data").then(|| module.to_string()),
                name,
            )
        }
        None => (None, address.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::terraform::cost::{estimate, needs_values, PriceTable};
    use crate::terraform::guard::GuardPolicy;
    use crate::terraform::planfile::parse_state;
    use crate::terraform::summary::{render_human, render_markdown, summarize};

    fn fx(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/terraform/plans/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn table() -> PriceTable {
        PriceTable::bundled()
    }

    /// The summary (with cost and guard) from the stream path equals the one from
    /// `terraform show -json` for the same plan run.
    fn assert_same_summary(name: &str, guard: &GuardPolicy) {
        let shown = crate::terraform::plan_json::parse(&fx(&format!("{name}.json"))).unwrap();
        let s = parse(&fx(&format!("{name}.stream.jsonl")));
        assert_eq!(show_needed(&s, needs_values), None, "{name}");
        let ours = to_plan(
            &s,
            parse_state(&fx(&format!("{name}.tfstate.json"))).unwrap(),
        );
        let a = summarize(&shown, guard, Some(estimate(&shown, &table())));
        let b = summarize(&ours, guard, Some(estimate(&ours, &table())));
        assert_eq!(
            serde_json::to_value(&a).unwrap(),
            serde_json::to_value(&b).unwrap(),
            "{name}"
        );
        assert_eq!(render_human(&a), render_human(&b));
        assert_eq!(render_markdown(&a, 60_000), render_markdown(&b, 60_000));
        assert_eq!(shown.has_changes(), ours.has_changes());
        assert_eq!(shown.applyable, ours.applyable);
        assert_eq!(shown.terraform_version, ours.terraform_version);
        let addrs = |p: &Plan| {
            p.resource_changes
                .iter()
                .filter(|c| c.mode == "managed")
                .map(|c| (c.address.clone(), c.action, c.action_reason.clone()))
                .collect::<Vec<_>>()
        };
        let mut sa = addrs(&shown);
        sa.sort();
        assert_eq!(sa, addrs(&ours), "{name}");
        let outs = |p: &Plan| {
            let mut o: Vec<(String, Action, bool)> = p
                .output_changes
                .iter()
                .map(|o| (o.name.clone(), o.action, o.sensitive))
                .collect();
            o.sort_by(|a, b| a.0.cmp(&b.0));
            o
        };
        assert_eq!(outs(&shown), outs(&ours), "{name}");
    }

    #[test]
    fn noop_create_and_destroy_need_no_show_and_summarise_the_same() {
        let mut guard = GuardPolicy::default();
        guard.protect(&["terraform_data.db".into()]);
        for name in ["noop", "create", "destroy"] {
            assert_same_summary(name, &GuardPolicy::default());
            // The guard sees the same deletions (destroy refuses the protected db).
            assert_same_summary(name, &guard);
        }
        let s = parse(&fx("destroy.stream.jsonl"));
        let p = to_plan(&s, parse_state(&fx("destroy.tfstate.json")).unwrap());
        let refused = crate::terraform::guard::check(&p, &guard);
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].address, "terraform_data.db");
    }

    #[test]
    fn updates_and_replacements_need_show() {
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
        let why = show_needed(&s, needs_values).unwrap();
        assert!(why.contains("terraform_data."), "{why}");
        assert_eq!(
            s.counts,
            Some(ChangeCounts {
                add: 1,
                change: 1,
                import: 0,
                remove: 2
            })
        );
    }

    #[test]
    fn priced_creates_unknown_messages_and_bad_counts_need_show() {
        let line = |addr: &str, ty: &str, action: &str| {
            format!(
                r#"{{"type":"planned_change","@message":"m","change":{{"resource":{{"addr":"{addr}","module":"","resource":"{addr}","resource_type":"{ty}","resource_name":"x"}},"action":"{action}"}}}}"#
            )
        };
        let summary = |add: u64, remove: u64| {
            format!(
                r#"{{"type":"change_summary","changes":{{"add":{add},"change":0,"import":0,"remove":{remove}}}}}"#
            )
        };
        let ci = line(
            "oci_container_instances_container_instance.app",
            "oci_container_instances_container_instance",
            "create",
        );
        let s = parse(&format!("{ci}\n{}", summary(1, 0)));
        assert!(show_needed(&s, needs_values)
            .unwrap()
            .contains("price depends on its planned size"));
        let bucket = line(
            "oci_objectstorage_bucket.b",
            "oci_objectstorage_bucket",
            "create",
        );
        let s = parse(&format!("{bucket}\n{}", summary(1, 0)));
        assert_eq!(show_needed(&s, needs_values), None);
        let s = parse(&format!("{bucket}\n{}", summary(2, 0)));
        assert!(show_needed(&s, needs_values)
            .unwrap()
            .contains("does not match"));
        let s = parse(&bucket);
        assert!(show_needed(&s, needs_values).is_some());
        let s = parse(&format!("{}\n{}", line("t.a", "t", "move"), summary(0, 0)));
        assert!(show_needed(&s, needs_values)
            .unwrap()
            .contains("does not map"));
        // A data source read is not a managed change.
        let s = parse(&format!(
            "{}\n{}",
            line("data.t.a", "t", "read")
                .replace(r#""resource":"data.t.a""#, r#""resource":"data.t.a""#),
            summary(0, 0)
        ));
        assert_eq!(s.changes[0].mode, "data");
        assert_eq!(show_needed(&s, needs_values), None);
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

    #[test]
    fn addresses_split() {
        assert_eq!(
            split_address("module.a.t.n[0]", "t"),
            (Some("module.a".into()), "n".into())
        );
        assert_eq!(split_address("t.n", "t"), (None, "n".into()));
        assert_eq!(
            split_address("module.a.data.t.n", "t"),
            (Some("module.a".into()), "n".into())
        );
    }
}
