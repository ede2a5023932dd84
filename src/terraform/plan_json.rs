//! `terraform show -json PLANFILE` parsed into our own small types.
//!
//! Sensitive values are masked while parsing (replaced by the string `(sensitive)` wherever
//! Terraform's `*_sensitive` masks say so), so no secret from the plan lives past this module.
//! Which attributes changed is computed from the raw values before masking, so a changed
//! secret still shows as a changed attribute path, without its value.

use serde::Serialize;
use serde_json::Value;

/// The placeholder that replaces a sensitive value.
pub const MASK: &str = "(sensitive)";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    #[serde(rename = "no-op")]
    NoOp,
    Read,
    Create,
    Update,
    Replace,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::NoOp => "no-op",
            Action::Read => "read",
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Delete => "delete",
        }
    }

    /// True for actions that destroy the existing object.
    pub fn destroys(self) -> bool {
        matches!(self, Action::Delete | Action::Replace)
    }
}

/// One resource's planned change.
#[derive(Debug, Clone, Serialize)]
pub struct ResourceChange {
    pub address: String,
    pub module_address: Option<String>,
    /// `managed` or `data`.
    pub mode: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub name: String,
    pub action: Action,
    /// For replacements: create the new object before destroying the old one.
    pub create_before_destroy: bool,
    /// Terraform's reason, e.g. `replace_because_cannot_update`, `delete_because_count_index`.
    pub action_reason: Option<String>,
    /// Attribute paths Terraform says force the replacement (`replace_paths`).
    pub replace_paths: Vec<String>,
    /// Attribute paths whose value changes (or becomes unknown until apply).
    pub changed_paths: Vec<String>,
    /// The subset of `changed_paths` only known after apply (often computed attributes).
    pub unknown_paths: Vec<String>,
    /// Attribute paths marked sensitive before or after.
    pub sensitive_paths: Vec<String>,
    /// Values with sensitive parts masked.
    pub before: Value,
    pub after: Value,
}

/// A resource's values in the prior state or the planned state (masked).
#[derive(Debug, Clone, Serialize)]
pub struct ResourceValues {
    pub address: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub mode: String,
    pub values: Value,
}

/// An output's planned change; the value itself is kept only when not sensitive.
#[derive(Debug, Clone, Serialize)]
pub struct OutputChange {
    pub name: String,
    pub action: Action,
    pub sensitive: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub terraform_version: String,
    pub resource_changes: Vec<ResourceChange>,
    pub output_changes: Vec<OutputChange>,
    /// Managed resources as they are now (refreshed prior state).
    pub prior: Vec<ResourceValues>,
    /// Managed resources as they will be after apply (unknown values are null).
    pub planned: Vec<ResourceValues>,
    /// Terraform says the plan can be applied.
    pub applyable: bool,
    pub errored: bool,
}

impl Plan {
    /// Changes that do something (not no-op, not data reads).
    pub fn effective_changes(&self) -> impl Iterator<Item = &ResourceChange> {
        self.resource_changes
            .iter()
            .filter(|c| c.mode == "managed" && !matches!(c.action, Action::NoOp | Action::Read))
    }

    pub fn has_changes(&self) -> bool {
        self.effective_changes().next().is_some()
            || self.output_changes.iter().any(|o| o.action != Action::NoOp)
    }
}

/// Parse the `terraform show -json` document.
pub fn parse(text: &str) -> anyhow::Result<Plan> {
    let doc: Value = serde_json::from_str(text).map_err(|e| {
        anyhow::anyhow!("terraform show -json printed something that is not JSON ({e})")
    })?;
    parse_value(&doc)
}

pub fn parse_value(doc: &Value) -> anyhow::Result<Plan> {
    let format = doc
        .get("format_version")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow::anyhow!("plan JSON has no format_version: is this really `terraform show -json PLANFILE` output?"))?;
    if !format.starts_with("1.") {
        anyhow::bail!("plan JSON format_version {format} is not supported (calops reads 1.x, Terraform >= 1.0)");
    }
    let mut resource_changes = Vec::new();
    for rc in arr(doc.get("resource_changes")) {
        resource_changes.push(parse_change(rc)?);
    }
    let mut output_changes = Vec::new();
    if let Some(Value::Object(outs)) = doc.get("output_changes") {
        for (name, ch) in outs {
            let actions = actions_of(ch.get("actions"))?;
            let sensitive = truthy(ch.get("before_sensitive")) || truthy(ch.get("after_sensitive"));
            output_changes.push(OutputChange {
                name: name.clone(),
                action: actions.0,
                sensitive,
            });
        }
    }
    let mut prior = Vec::new();
    if let Some(root) = doc.pointer("/prior_state/values/root_module") {
        collect_module(root, &mut prior);
    }
    let mut planned = Vec::new();
    if let Some(root) = doc.pointer("/planned_values/root_module") {
        collect_module(root, &mut planned);
    }
    Ok(Plan {
        terraform_version: doc
            .get("terraform_version")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        resource_changes,
        output_changes,
        prior,
        planned,
        applyable: doc
            .get("applyable")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        errored: doc.get("errored").and_then(Value::as_bool).unwrap_or(false),
    })
}

fn arr(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Object(m)) => m.values().any(|v| truthy(Some(v))),
        Some(Value::Array(a)) => a.iter().any(|v| truthy(Some(v))),
        _ => false,
    }
}

fn str_field(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}

/// Terraform's action list -> (action, create_before_destroy).
fn actions_of(v: Option<&Value>) -> anyhow::Result<(Action, bool)> {
    let list: Vec<&str> = arr(v).iter().filter_map(Value::as_str).collect();
    Ok(match list.as_slice() {
        ["no-op"] | [] => (Action::NoOp, false),
        ["read"] => (Action::Read, false),
        ["create"] => (Action::Create, false),
        ["update"] => (Action::Update, false),
        ["delete"] | ["forget"] => (Action::Delete, false),
        ["delete", "create"] => (Action::Replace, false),
        ["create", "delete"] => (Action::Replace, true),
        other => anyhow::bail!("unknown action list in plan JSON: {other:?}"),
    })
}

fn parse_change(rc: &Value) -> anyhow::Result<ResourceChange> {
    let address = str_field(rc, "address");
    let change = rc
        .get("change")
        .ok_or_else(|| anyhow::anyhow!("resource change {address} has no `change` object"))?;
    let (action, cbd) = actions_of(change.get("actions"))
        .map_err(|e| anyhow::anyhow!("resource {address}: {e}"))?;
    let before_raw = change.get("before").cloned().unwrap_or(Value::Null);
    let after_raw = change.get("after").cloned().unwrap_or(Value::Null);
    let before_s = change
        .get("before_sensitive")
        .cloned()
        .unwrap_or(Value::Null);
    let after_s = change
        .get("after_sensitive")
        .cloned()
        .unwrap_or(Value::Null);
    let after_unknown = change.get("after_unknown").cloned().unwrap_or(Value::Null);
    let mut changed_paths = Vec::new();
    let mut unknown_paths = Vec::new();
    if matches!(action, Action::Update | Action::Replace) {
        diff_paths(
            &before_raw,
            &after_raw,
            &after_unknown,
            &mut Vec::new(),
            &mut changed_paths,
        );
        collect_true_paths(&after_unknown, &mut Vec::new(), &mut unknown_paths);
        unknown_paths.retain(|p| changed_paths.contains(p));
    }
    let mut sensitive_paths = Vec::new();
    collect_true_paths(&before_s, &mut Vec::new(), &mut sensitive_paths);
    collect_true_paths(&after_s, &mut Vec::new(), &mut sensitive_paths);
    sensitive_paths.sort();
    sensitive_paths.dedup();
    let replace_paths = arr(change.get("replace_paths"))
        .iter()
        .map(|p| format_path(arr(Some(p))))
        .collect();
    Ok(ResourceChange {
        module_address: rc
            .get("module_address")
            .and_then(Value::as_str)
            .map(String::from),
        mode: str_field(rc, "mode"),
        rtype: str_field(rc, "type"),
        name: str_field(rc, "name"),
        action,
        create_before_destroy: cbd,
        action_reason: rc
            .get("action_reason")
            .and_then(Value::as_str)
            .map(String::from),
        replace_paths,
        changed_paths,
        unknown_paths,
        sensitive_paths,
        before: mask(&before_raw, &before_s),
        after: mask(&after_raw, &after_s),
        address,
    })
}

fn collect_module(m: &Value, out: &mut Vec<ResourceValues>) {
    for r in arr(m.get("resources")) {
        let values = r.get("values").cloned().unwrap_or(Value::Null);
        let sens = r.get("sensitive_values").cloned().unwrap_or(Value::Null);
        out.push(ResourceValues {
            address: str_field(r, "address"),
            rtype: str_field(r, "type"),
            mode: str_field(r, "mode"),
            values: mask(&values, &sens),
        });
    }
    for c in arr(m.get("child_modules")) {
        collect_module(c, out);
    }
}

/// Replace every part of `v` that `sensitive` marks `true` with [`MASK`].
pub fn mask(v: &Value, sensitive: &Value) -> Value {
    match sensitive {
        Value::Bool(true) => {
            if v.is_null() {
                Value::Null
            } else {
                Value::String(MASK.into())
            }
        }
        Value::Object(sm) => match v {
            Value::Object(vm) => Value::Object(
                vm.iter()
                    .map(|(k, x)| {
                        (
                            k.clone(),
                            sm.get(k).map_or_else(|| x.clone(), |s| mask(x, s)),
                        )
                    })
                    .collect(),
            ),
            other => other.clone(),
        },
        Value::Array(sa) => match v {
            Value::Array(va) => Value::Array(
                va.iter()
                    .enumerate()
                    .map(|(i, x)| sa.get(i).map_or_else(|| x.clone(), |s| mask(x, s)))
                    .collect(),
            ),
            other => other.clone(),
        },
        _ => v.clone(),
    }
}

#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

fn render(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// Terraform's path form (`["shape_config", 0, "ocpus"]`) as `shape_config[0].ocpus`.
pub fn format_path(p: &[Value]) -> String {
    let segs: Vec<Seg> = p
        .iter()
        .map(|x| match x {
            Value::Number(n) => Seg::Index(n.as_u64().unwrap_or(0) as usize),
            Value::String(s) => Seg::Key(s.clone()),
            other => Seg::Key(other.to_string()),
        })
        .collect();
    render(&segs)
}

/// The schema form of a path: indices dropped (`shape_config[0].ocpus` -> `shape_config.ocpus`).
pub fn schema_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    let mut depth = 0;
    for c in p.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

fn collect_true_paths(s: &Value, path: &mut Vec<Seg>, out: &mut Vec<String>) {
    match s {
        Value::Bool(true) => out.push(render(path)),
        Value::Object(m) => {
            for (k, v) in m {
                path.push(Seg::Key(k.clone()));
                collect_true_paths(v, path, out);
                path.pop();
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                path.push(Seg::Index(i));
                collect_true_paths(v, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

/// Top-level-first attribute paths where `before` and `after` differ. Objects are compared key
/// by key; lists and scalars are reported whole at their own path (with the list's first
/// differing element for lists of objects, which are how nested blocks appear).
fn diff_paths(
    before: &Value,
    after: &Value,
    unknown: &Value,
    path: &mut Vec<Seg>,
    out: &mut Vec<String>,
) {
    if unknown == &Value::Bool(true) {
        if !before.is_null() || path.is_empty() {
            out.push(render(path));
        }
        return;
    }
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let bv = b.get(k).unwrap_or(&Value::Null);
                let av = a.get(k).unwrap_or(&Value::Null);
                let uk = unknown.get(k).unwrap_or(&Value::Null);
                path.push(Seg::Key(k.clone()));
                diff_paths(bv, av, uk, path, out);
                path.pop();
            }
        }
        (Value::Array(b), Value::Array(a))
            if b.len() == a.len() && a.iter().chain(b.iter()).all(Value::is_object) =>
        {
            for i in 0..a.len() {
                let uk = unknown.get(i).unwrap_or(&Value::Null);
                path.push(Seg::Index(i));
                diff_paths(&b[i], &a[i], uk, path, out);
                path.pop();
            }
        }
        _ => {
            if before != after && !path.is_empty() {
                out.push(render(path));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Plan {
        let p = format!(
            "{}/tests/fixtures/terraform/plans/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        parse(&std::fs::read_to_string(&p).unwrap()).unwrap()
    }

    fn change<'a>(p: &'a Plan, addr: &str) -> &'a ResourceChange {
        p.resource_changes
            .iter()
            .find(|c| c.address == addr)
            .unwrap_or_else(|| panic!("no change for {addr}"))
    }

    #[test]
    fn create_plan() {
        let p = fixture("create");
        assert_eq!(p.terraform_version, "1.11.4");
        assert_eq!(p.resource_changes.len(), 3);
        assert!(p
            .resource_changes
            .iter()
            .all(|c| c.action == Action::Create));
        assert!(p.has_changes());
        assert!(p.prior.is_empty());
        assert_eq!(p.planned.len(), 3);
        let app = change(&p, "terraform_data.app");
        assert_eq!(app.after["input"]["password"], MASK);
        assert_eq!(app.after["input"]["image"], "app:small");
        assert_eq!(app.sensitive_paths, ["input.password"]);
    }

    #[test]
    fn update_replace_delete_plan() {
        let p = fixture("changes");
        let app = change(&p, "terraform_data.app");
        assert_eq!(app.action, Action::Update);
        assert_eq!(
            app.changed_paths,
            ["input.image", "input.password", "output"]
        );
        let db = change(&p, "terraform_data.db");
        assert_eq!(db.action, Action::Replace);
        assert!(!db.create_before_destroy);
        assert_eq!(db.replace_paths, ["triggers_replace"]);
        assert_eq!(
            db.action_reason.as_deref(),
            Some("replace_because_cannot_update")
        );
        assert!(db.changed_paths.contains(&"triggers_replace".to_string()));
        let old = change(&p, "terraform_data.old[0]");
        assert_eq!(old.action, Action::Delete);
        assert_eq!(
            old.action_reason.as_deref(),
            Some("delete_because_count_index")
        );
        assert!(p
            .output_changes
            .iter()
            .any(|o| o.name == "password" && o.sensitive && o.action == Action::Update));
        assert_eq!(p.prior.len(), 3);
    }

    #[test]
    fn no_secret_survives_parsing() {
        for name in ["create", "changes", "noop", "destroy"] {
            let raw = std::fs::read_to_string(format!(
                "{}/tests/fixtures/terraform/plans/{name}.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap();
            assert!(
                raw.contains("fixture-secret-v"),
                "fixture {name} has the secret"
            );
            let p = parse(&raw).unwrap();
            // `output` of terraform_data echoes input without Terraform marking it sensitive;
            // everything Terraform marks is masked.
            for c in &p.resource_changes {
                let b = serde_json::to_string(&c.before["input"]).unwrap();
                let a = serde_json::to_string(&c.after["input"]).unwrap();
                assert!(!b.contains("fixture-secret"), "{name} {}: {b}", c.address);
                assert!(!a.contains("fixture-secret"), "{name} {}: {a}", c.address);
            }
            for r in p.prior.iter().chain(&p.planned) {
                let v = serde_json::to_string(&r.values["input"]).unwrap();
                assert!(!v.contains("fixture-secret"), "{name} {}: {v}", r.address);
            }
        }
    }

    #[test]
    fn noop_and_destroy_plans() {
        let p = fixture("noop");
        assert!(!p.has_changes());
        assert!(p.resource_changes.iter().all(|c| c.action == Action::NoOp));
        let d = fixture("destroy");
        assert_eq!(d.effective_changes().count(), 3);
        assert!(d.effective_changes().all(|c| c.action == Action::Delete));
    }

    #[test]
    fn actions_and_paths() {
        use serde_json::json;
        assert_eq!(
            actions_of(Some(&json!(["create", "delete"]))).unwrap(),
            (Action::Replace, true)
        );
        assert!(actions_of(Some(&json!(["explode"]))).is_err());
        assert_eq!(
            format_path(&[json!("shape_config"), json!(0), json!("ocpus")]),
            "shape_config[0].ocpus"
        );
        assert_eq!(
            schema_path("containers[1].health_checks[0].port"),
            "containers.health_checks.port"
        );
        let m = mask(
            &json!({"a": [1, 2], "b": {"c": "s", "d": "x"}, "e": null}),
            &json!({"a": [false, true], "b": {"c": true}, "e": true}),
        );
        assert_eq!(
            m,
            json!({"a": [1, MASK], "b": {"c": MASK, "d": "x"}, "e": null})
        );
    }

    #[test]
    fn nested_block_diff_points_at_the_field() {
        use serde_json::json;
        let mut out = Vec::new();
        diff_paths(
            &json!({"shape_config": [{"ocpus": 1, "memory_in_gbs": 4}], "tags": {"a": "1"}}),
            &json!({"shape_config": [{"ocpus": 2, "memory_in_gbs": 4}], "tags": {"a": "1"}}),
            &json!({"shape_config": [{}]}),
            &mut Vec::new(),
            &mut out,
        );
        assert_eq!(out, ["shape_config[0].ocpus"]);
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("not json").is_err());
        assert!(parse("{}").is_err());
        assert!(parse(r#"{"format_version":"2.0"}"#).is_err());
    }
}
