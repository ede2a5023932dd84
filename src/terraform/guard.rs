//! The destroy guard: a plan that would delete or replace a protected resource (database,
//! cache, bucket, load balancer, anything with `prevent_destroy`) is refused unless
//! `--allow-destroy ADDRESS` names it.

use super::forcenew::forcing_attributes;
use super::plan_json::{Action, Plan, ResourceChange};
use serde::Serialize;
use std::path::Path;

/// Resource types that hold data or a public address people depend on.
pub const DEFAULT_PROTECTED_TYPES: &[(&str, &str)] = &[
    (
        "oci_psql_db_system",
        "the PostgreSQL database (all bookings)",
    ),
    ("oci_redis_redis_cluster", "the OCI Cache (Redis) cluster"),
    (
        "oci_core_instance",
        "the VM of an `oci-vm` stack (PostgreSQL's data on its boot volume)",
    ),
    (
        "oci_objectstorage_bucket",
        "an Object Storage bucket and its objects",
    ),
    (
        "oci_load_balancer_load_balancer",
        "the load balancer (its public IP changes)",
    ),
];

#[derive(Debug, Clone, Serialize)]
pub struct GuardPolicy {
    /// Protected resource types.
    pub protected_types: Vec<String>,
    /// Protected resource addresses (config or instance addresses).
    pub protected_addresses: Vec<String>,
    /// Addresses with `lifecycle { prevent_destroy = true }` in the configuration.
    pub prevent_destroy: Vec<String>,
    /// `--allow-destroy` addresses.
    pub allow_destroy: Vec<String>,
}

impl Default for GuardPolicy {
    fn default() -> Self {
        GuardPolicy {
            protected_types: DEFAULT_PROTECTED_TYPES
                .iter()
                .map(|(t, _)| t.to_string())
                .collect(),
            protected_addresses: Vec::new(),
            prevent_destroy: Vec::new(),
            allow_destroy: Vec::new(),
        }
    }
}

impl GuardPolicy {
    /// Add `--protect` entries: a resource type (`oci_core_vcn`) or an address (`x.y`,
    /// `module.m.x.y`). An entry with a `.` is an address.
    pub fn protect(&mut self, entries: &[String]) {
        for e in entries {
            if e.contains('.') {
                self.protected_addresses.push(e.clone());
            } else {
                self.protected_types.push(e.clone());
            }
        }
    }

    /// Why `c`'s resource is protected, if it is.
    pub fn protection(&self, c: &ResourceChange) -> Option<String> {
        if self
            .prevent_destroy
            .iter()
            .any(|a| address_matches(a, &c.address))
        {
            return Some("lifecycle.prevent_destroy is set in its configuration".into());
        }
        if let Some((_, what)) = DEFAULT_PROTECTED_TYPES
            .iter()
            .find(|(t, _)| *t == c.rtype && self.protected_types.iter().any(|p| p == t))
        {
            return Some(format!("it is {what}"));
        }
        if self.protected_types.contains(&c.rtype) {
            return Some(format!("resource type {} is protected", c.rtype));
        }
        if self
            .protected_addresses
            .iter()
            .any(|a| address_matches(a, &c.address))
        {
            return Some("its address is protected".into());
        }
        None
    }

    fn allowed(&self, address: &str) -> bool {
        self.allow_destroy
            .iter()
            .any(|a| address_matches(a, address))
    }
}

/// A refused deletion or replacement.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Violation {
    pub address: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub action: Action,
    pub why_protected: String,
    /// For replacements, the attributes that force it.
    pub forcing: Vec<String>,
}

/// `entry` names `address`: equal, or equal once instance keys (`[0]`, `["a"]`) are dropped.
pub fn address_matches(entry: &str, address: &str) -> bool {
    entry == address || entry == strip_instance_keys(address)
}

/// `module.a["x"].t.n[0]` -> `module.a.t.n`.
pub fn strip_instance_keys(address: &str) -> String {
    let mut out = String::with_capacity(address.len());
    let mut depth = 0usize;
    let mut in_str = false;
    let mut prev = '\0';
    for ch in address.chars() {
        if in_str {
            if ch == '"' && prev != '\\' {
                in_str = false;
            }
        } else if ch == '"' && depth > 0 {
            in_str = true;
        } else if ch == '[' {
            depth += 1;
        } else if ch == ']' {
            depth = depth.saturating_sub(1);
        } else if depth == 0 {
            out.push(ch);
        }
        prev = ch;
    }
    out
}

/// Every deletion or replacement of a protected resource that `--allow-destroy` does not name.
pub fn check(plan: &Plan, policy: &GuardPolicy) -> Vec<Violation> {
    plan.effective_changes()
        .filter(|c| c.action.destroys())
        .filter_map(|c| {
            let why = policy.protection(c)?;
            if policy.allowed(&c.address) {
                return None;
            }
            Some(Violation {
                address: c.address.clone(),
                rtype: c.rtype.clone(),
                action: c.action,
                why_protected: why,
                forcing: forcing_attributes(c),
            })
        })
        .collect()
}

/// The refusal, explained: what would be lost, why, and how to go ahead deliberately.
pub fn explain(violations: &[Violation]) -> String {
    let mut s = format!(
        "refusing: this plan would destroy {} protected resource{}:\n",
        violations.len(),
        if violations.len() == 1 { "" } else { "s" }
    );
    for v in violations {
        let verb = if v.action == Action::Replace {
            "be replaced (destroyed, then created empty)"
        } else {
            "be deleted"
        };
        s.push_str(&format!(
            "  - {} would {verb}: {}",
            v.address, v.why_protected
        ));
        if !v.forcing.is_empty() {
            s.push_str(&format!("; forced by a change to {}", v.forcing.join(", ")));
        }
        s.push('\n');
    }
    let allow: Vec<String> = violations
        .iter()
        .map(|v| format!("--allow-destroy '{}'", v.address))
        .collect();
    s.push_str(&format!(
        "  fix: revert the change that forces it, or if losing its data is intended, run again with {}",
        allow.join(" ")
    ));
    s
}

/// Resource addresses with `lifecycle { prevent_destroy = true }`, from the root module's
/// `.tf` files and, after `init`, every module Terraform installed
/// (`.terraform/modules/modules.json`). Files that do not parse are skipped: Terraform itself
/// reports their syntax errors.
pub fn scan_prevent_destroy(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    scan_module_dir(dir, "", &mut out);
    let manifest = dir.join(".terraform/modules/modules.json");
    if let Ok(text) = std::fs::read_to_string(&manifest) {
        if let Ok(doc) = serde_json::from_str::<serde_json::Value>(&text) {
            for m in doc["Modules"].as_array().into_iter().flatten() {
                let key = m["Key"].as_str().unwrap_or("");
                let mdir = m["Dir"].as_str().unwrap_or("");
                if key.is_empty() || mdir.is_empty() {
                    continue;
                }
                let prefix: String = key.split('.').map(|k| format!("module.{k}.")).collect();
                scan_module_dir(&dir.join(mdir), &prefix, &mut out);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn scan_module_dir(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "tf"))
        .collect();
    files.sort();
    for f in files {
        if let Ok(text) = std::fs::read_to_string(&f) {
            out.extend(
                prevent_destroy_in(&text)
                    .into_iter()
                    .map(|a| format!("{prefix}{a}")),
            );
        }
    }
}

/// `type.name` of every resource block in `text` with `prevent_destroy = true`.
pub fn prevent_destroy_in(text: &str) -> Vec<String> {
    let Ok(body) = hcl::parse(text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for block in body.blocks().filter(|b| b.identifier() == "resource") {
        let labels = block.labels();
        if labels.len() != 2 {
            continue;
        }
        let protected = block
            .body()
            .blocks()
            .filter(|b| b.identifier() == "lifecycle")
            .any(|lc| {
                lc.body().attributes().any(|a| {
                    a.key() == "prevent_destroy" && matches!(a.expr(), hcl::Expression::Bool(true))
                })
            });
        if protected {
            out.push(format!("{}.{}", labels[0].as_str(), labels[1].as_str()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::terraform::plan_json::parse;

    fn changes_plan() -> Plan {
        parse(
            &std::fs::read_to_string(format!(
                "{}/tests/fixtures/terraform/plans/changes.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn protected_address_replacement_is_refused_until_allowed() {
        let plan = changes_plan();
        let mut policy = GuardPolicy::default();
        assert!(check(&plan, &policy).is_empty());
        policy.protect(&["terraform_data.db".into(), "terraform_data.app".into()]);
        let v = check(&plan, &policy);
        // app is only updated in place: not a violation.
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].address, "terraform_data.db");
        assert_eq!(v[0].action, Action::Replace);
        assert_eq!(v[0].forcing, ["triggers_replace"]);
        let text = explain(&v);
        assert!(
            text.contains("--allow-destroy 'terraform_data.db'"),
            "{text}"
        );
        assert!(text.contains("triggers_replace"), "{text}");
        policy.allow_destroy.push("terraform_data.db".into());
        assert!(check(&plan, &policy).is_empty());
    }

    #[test]
    fn protected_type_and_instance_keys() {
        let plan = changes_plan();
        let mut policy = GuardPolicy::default();
        policy.protect(&["terraform_data".into()]);
        let v = check(&plan, &policy);
        let addrs: Vec<&str> = v.iter().map(|v| v.address.as_str()).collect();
        assert_eq!(addrs, ["terraform_data.db", "terraform_data.old[0]"]);
        policy.allow_destroy = vec!["terraform_data.old".into(), "terraform_data.db".into()];
        assert!(check(&plan, &policy).is_empty());
        assert_eq!(
            strip_instance_keys(r#"module.a["x[1]"].t.n[0]"#),
            "module.a.t.n"
        );
        assert!(address_matches("t.n", "t.n[3]"));
        assert!(!address_matches("t.n", "t.nn"));
    }

    #[test]
    fn prevent_destroy_scan() {
        let tf = r#"
resource "terraform_data" "keep" {
  input = 1
  lifecycle {
    prevent_destroy = true
  }
}
resource "terraform_data" "free" {
  lifecycle { prevent_destroy = false }
}
"#;
        assert_eq!(prevent_destroy_in(tf), ["terraform_data.keep"]);
        assert!(prevent_destroy_in("resource \"x\" {").is_empty());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.tf"), tf).unwrap();
        std::fs::create_dir_all(dir.path().join(".terraform/modules")).unwrap();
        std::fs::create_dir_all(dir.path().join("mods/db")).unwrap();
        std::fs::write(dir.path().join("mods/db/db.tf"), tf).unwrap();
        std::fs::write(
            dir.path().join(".terraform/modules/modules.json"),
            r#"{"Modules":[{"Key":"","Source":"","Dir":"."},{"Key":"db","Source":"./mods/db","Dir":"mods/db"}]}"#,
        )
        .unwrap();
        assert_eq!(
            scan_prevent_destroy(dir.path()),
            ["module.db.terraform_data.keep", "terraform_data.keep"]
        );
    }
}
