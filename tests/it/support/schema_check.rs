//! A static checker for Terraform files against the OCI provider's own schema
//! (`terraform providers schema -json`, provider v8.28.0, filtered to the types calops uses).
//!
//! For every `resource` and `data` block it checks that the type exists, that every attribute
//! and nested block exists at its level (and is not computed-only), that every required
//! attribute and every `min_items >= 1` block is present, and that block counts respect
//! `min_items`/`max_items`. `dynamic "x" { content { ... } }` blocks are checked through their
//! `content`. It also checks `module` calls with a local `source` against the called module's
//! variables (unknown arguments, missing required variables).

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Meta-arguments Terraform accepts on every resource/data block.
const META_ATTRS: &[&str] = &["count", "for_each", "depends_on", "provider"];
const META_BLOCKS: &[&str] = &[
    "lifecycle",
    "provisioner",
    "connection",
    "precondition",
    "postcondition",
];
const MODULE_META: &[&str] = &[
    "source",
    "version",
    "count",
    "for_each",
    "depends_on",
    "providers",
];

pub struct Schema {
    resources: serde_json::Map<String, Value>,
    data_sources: serde_json::Map<String, Value>,
}

impl Schema {
    pub fn load(path: &Path) -> Schema {
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let v: Value = serde_json::from_str(&text).expect("schema JSON");
        let p = &v["provider_schemas"]["registry.terraform.io/oracle/oci"];
        Schema {
            resources: p["resource_schemas"]
                .as_object()
                .expect("resource_schemas")
                .clone(),
            data_sources: p["data_source_schemas"]
                .as_object()
                .expect("data_source_schemas")
                .clone(),
        }
    }
}

/// One finding: `file:kind.type.name[.path]: message`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub file: String,
    pub at: String,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.at, self.message)
    }
}

/// Check one file's text. `file` is used in messages only.
pub fn check_text(schema: &Schema, file: &str, text: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let body = match hcl::parse(text) {
        Ok(b) => b,
        Err(e) => {
            out.push(Finding {
                file: file.into(),
                at: "-".into(),
                message: format!("HCL parse error: {e}"),
            });
            return out;
        }
    };
    for block in body.blocks() {
        let kind = block.identifier();
        let (map, kind_name) = match kind {
            "resource" => (&schema.resources, "resource"),
            "data" => (&schema.data_sources, "data"),
            _ => continue,
        };
        let labels: Vec<&str> = block.labels().iter().map(|l| l.as_str()).collect();
        if labels.len() != 2 {
            out.push(Finding {
                file: file.into(),
                at: kind.into(),
                message: format!("{kind} block needs 2 labels, has {}", labels.len()),
            });
            continue;
        }
        let at = format!("{kind_name}.{}.{}", labels[0], labels[1]);
        match map.get(labels[0]) {
            None => out.push(Finding {
                file: file.into(),
                at,
                message: format!(
                    "unknown {kind_name} type `{}` in provider oracle/oci 8.28.0",
                    labels[0]
                ),
            }),
            Some(s) => check_body(&s["block"], block.body(), file, &at, true, &mut out),
        }
    }
    out
}

fn check_body(
    schema: &Value,
    body: &hcl::Body,
    file: &str,
    at: &str,
    top: bool,
    out: &mut Vec<Finding>,
) {
    let attrs = schema["attributes"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let blocks = schema["block_types"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut push = |m: String| {
        out.push(Finding {
            file: file.into(),
            at: at.into(),
            message: m,
        })
    };
    let mut set_attrs = BTreeSet::new();
    for hcl_attr in body.attributes() {
        let key = hcl_attr.key();
        set_attrs.insert(key.to_string());
        if top && META_ATTRS.contains(&key) {
            continue;
        }
        match attrs.get(key) {
            None if blocks.contains_key(key) => {
                push(format!("`{key}` is a block, not an attribute"))
            }
            None => push(format!("unknown attribute `{key}`")),
            Some(a) => {
                let settable =
                    a["required"].as_bool() == Some(true) || a["optional"].as_bool() == Some(true);
                if !settable {
                    push(format!(
                        "attribute `{key}` is computed-only and cannot be set"
                    ));
                }
                if key == "id" {
                    push("do not set `id`".to_string());
                }
                if let Some(problem) = literal_type_problem(&a["type"], hcl_attr.expr()) {
                    push(format!("attribute `{key}`: {problem}"));
                }
            }
        }
    }
    for (name, a) in &attrs {
        if a["required"].as_bool() == Some(true) && !set_attrs.contains(name) {
            push(format!("missing required attribute `{name}`"));
        }
    }
    // Count static and dynamic occurrences per nested block type.
    let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut nested: Vec<(String, hcl::Body)> = Vec::new();
    for b in body.blocks() {
        let id = b.identifier();
        if top && META_BLOCKS.contains(&id) {
            continue;
        }
        if id == "dynamic" {
            let Some(label) = b.labels().first().map(|l| l.as_str().to_string()) else {
                push("dynamic block without a label".into());
                continue;
            };
            let content: Vec<&hcl::Block> = b
                .body()
                .blocks()
                .filter(|c| c.identifier() == "content")
                .collect();
            if content.len() != 1 {
                push(format!(
                    "dynamic \"{label}\" needs exactly one content block"
                ));
                continue;
            }
            if !b.body().attributes().any(|a| a.key() == "for_each") {
                push(format!("dynamic \"{label}\" has no for_each"));
            }
            counts.entry(label.clone()).or_default().1 += 1;
            nested.push((label, content[0].body().clone()));
        } else {
            counts.entry(id.to_string()).or_default().0 += 1;
            nested.push((id.to_string(), b.body().clone()));
        }
    }
    for (name, (stat, dynamic)) in &counts {
        let Some(bt) = blocks.get(name) else {
            if attrs.contains_key(name) {
                push(format!(
                    "`{name}` is an attribute, not a block (write `{name} = ...`)"
                ));
            } else {
                push(format!("unknown block `{name}`"));
            }
            continue;
        };
        let max =
            bt["max_items"]
                .as_u64()
                .map(|m| m as usize)
                .or(match bt["nesting_mode"].as_str() {
                    Some("single") => Some(1),
                    _ => None,
                });
        if let Some(max) = max {
            // A dynamic block can expand to many; count it as at least one.
            if stat + dynamic > max {
                push(format!(
                    "block `{name}` appears {} times, max_items is {max}",
                    stat + dynamic
                ));
            }
        }
    }
    for (name, bt) in &blocks {
        let min = bt["min_items"].as_u64().unwrap_or(0) as usize;
        let (stat, dynamic) = counts.get(name).copied().unwrap_or((0, 0));
        if min > 0 && stat < min && dynamic == 0 {
            push(format!(
                "block `{name}` appears {stat} times, min_items is {min}"
            ));
        }
    }
    for (name, b) in nested {
        if let Some(bt) = blocks.get(&name) {
            check_body(&bt["block"], &b, file, &format!("{at}.{name}"), false, out);
        }
    }
}

/// Variables a module directory declares: name -> has a default.
pub fn module_variables(dir: &Path) -> BTreeMap<String, bool> {
    let mut vars = BTreeMap::new();
    for file in tf_files(dir, false) {
        let text = std::fs::read_to_string(&file).unwrap();
        let body = hcl::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for b in body.blocks().filter(|b| b.identifier() == "variable") {
            let name = b.labels()[0].as_str().to_string();
            let has_default = b.body().attributes().any(|a| a.key() == "default");
            vars.insert(name, has_default);
        }
    }
    vars
}

/// Check `module` calls with a local `source` in `text` (a file inside `dir`).
pub fn check_module_calls(file: &str, dir: &Path, text: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let Ok(body) = hcl::parse(text) else {
        return out;
    };
    for b in body.blocks().filter(|b| b.identifier() == "module") {
        let name = b.labels()[0].as_str();
        let at = format!("module.{name}");
        let source = b
            .body()
            .attributes()
            .find(|a| a.key() == "source")
            .map(|a| a.expr().clone());
        let Some(hcl::Expression::String(src)) = source else {
            out.push(Finding {
                file: file.into(),
                at,
                message: "module source must be a literal string".into(),
            });
            continue;
        };
        if !src.starts_with("./") && !src.starts_with("../") {
            continue;
        }
        let mdir = dir.join(&src);
        if !mdir.is_dir() {
            out.push(Finding {
                file: file.into(),
                at,
                message: format!("module source {src} does not exist"),
            });
            continue;
        }
        let vars = module_variables(&mdir);
        let given: BTreeSet<String> = b.body().attributes().map(|a| a.key().to_string()).collect();
        for g in &given {
            if !MODULE_META.contains(&g.as_str()) && !vars.contains_key(g) {
                out.push(Finding {
                    file: file.into(),
                    at: at.clone(),
                    message: format!("module {src} has no variable `{g}`"),
                });
            }
        }
        for (v, has_default) in &vars {
            if !has_default && !given.contains(v) {
                out.push(Finding {
                    file: file.into(),
                    at: at.clone(),
                    message: format!("required variable `{v}` of {src} is not set"),
                });
            }
        }
    }
    out
}

/// All `.tf` files under `dir` (recursively when asked), sorted.
pub fn tf_files(dir: &Path, recursive: bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                if recursive && p.file_name().is_some_and(|n| n != ".terraform") {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "tf") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Check every `.tf` file under `dir` (schema + module calls).
pub fn check_dir(schema: &Schema, dir: &Path) -> Vec<Finding> {
    let mut out = Vec::new();
    for f in tf_files(dir, true) {
        let text = std::fs::read_to_string(&f).unwrap();
        let name = f.strip_prefix(dir).unwrap_or(&f).display().to_string();
        out.extend(check_text(schema, &name, &text));
        out.extend(check_module_calls(&name, f.parent().unwrap(), &text));
    }
    out
}

/// For a literal value, whether it can convert to the attribute's schema type (Terraform's
/// conversions: numbers and bools to strings, numeric strings to numbers, "true"/"false" to
/// bools). Expressions that are not literals are left to Terraform.
pub fn literal_type_problem(ty: &Value, expr: &hcl::Expression) -> Option<String> {
    use hcl::Expression as E;
    let scalar = match expr {
        E::Null => return None,
        E::Bool(_) => "a bool",
        E::Number(_) => "a number",
        E::String(_) => "a string",
        E::Array(_) => "a list",
        E::Object(_) => "an object",
        _ => return None,
    };
    let bad = |want: &str| Some(format!("{scalar} cannot be used where {want} is expected"));
    match ty {
        Value::String(t) if t == "string" => match expr {
            E::Array(_) | E::Object(_) => bad("a string"),
            _ => None,
        },
        Value::String(t) if t == "number" => match expr {
            E::Number(_) => None,
            E::String(s) if s.trim().parse::<f64>().is_ok() => None,
            _ => bad("a number"),
        },
        Value::String(t) if t == "bool" => match expr {
            E::Bool(_) => None,
            E::String(s) if s == "true" || s == "false" => None,
            _ => bad("a bool"),
        },
        Value::Array(parts) if parts.len() == 2 => {
            let kind = parts[0].as_str().unwrap_or_default();
            match (kind, expr) {
                ("list" | "set", E::Array(items)) => items
                    .iter()
                    .find_map(|i| literal_type_problem(&parts[1], i))
                    .map(|p| format!("element: {p}")),
                ("list" | "set", _) => bad(&format!("a {kind}")),
                ("map", E::Object(obj)) => obj
                    .values()
                    .find_map(|v| literal_type_problem(&parts[1], v))
                    .map(|p| format!("map value: {p}")),
                ("object", E::Object(_)) => None,
                ("map" | "object", _) => bad(&format!("a {kind}")),
                _ => None,
            }
        }
        _ => None,
    }
}
