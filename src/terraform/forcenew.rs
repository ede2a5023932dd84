//! Which OCI provider attributes force a replacement (ForceNew), so a summary can say *why* a
//! resource is replaced and warn before a stateful resource is recreated.
//!
//! `forcenew.json` is derived from the shared `oci-provider-forcenew.json` (provider
//! oracle/oci 8.28.0): for each resource type calops renders, the attribute paths (nested
//! ones joined with `.`) whose schema declares `ForceNew`.

use super::plan_json::{schema_path, Action, ResourceChange};
use std::collections::BTreeMap;
use std::sync::OnceLock;

static FACTS: OnceLock<BTreeMap<String, Vec<String>>> = OnceLock::new();

fn facts() -> &'static BTreeMap<String, Vec<String>> {
    FACTS.get_or_init(|| serde_json::from_str(include_str!("forcenew.json")).unwrap_or_default())
}

/// True when changing `path` (plan form, indices allowed) of a `rtype` forces a new resource:
/// the path itself or any enclosing block is ForceNew.
pub fn is_force_new(rtype: &str, path: &str) -> bool {
    let Some(list) = facts().get(rtype) else {
        return false;
    };
    let sp = schema_path(path);
    let mut prefix = String::new();
    for (i, seg) in sp.split('.').enumerate() {
        if i > 0 {
            prefix.push('.');
        }
        prefix.push_str(seg);
        if list.binary_search(&prefix).is_ok() {
            return true;
        }
    }
    false
}

/// Whether calops knows the provider schema facts for this type.
pub fn knows(rtype: &str) -> bool {
    facts().contains_key(rtype)
}

/// The attributes that force this change to be a replacement: Terraform's own
/// `replace_paths`, plus changed attributes the provider declares ForceNew.
pub fn forcing_attributes(c: &ResourceChange) -> Vec<String> {
    if c.action != Action::Replace {
        return Vec::new();
    }
    let mut out = c.replace_paths.clone();
    // Attributes that merely become unknown (computed ones) do not force anything.
    for p in c
        .changed_paths
        .iter()
        .filter(|p| !c.unknown_paths.contains(p))
    {
        if is_force_new(&c.rtype, p) && !out.contains(p) {
            out.push(p.clone());
        }
    }
    out
}

/// Changed attributes of an in-place update that the provider declares ForceNew; non-empty
/// means the provider schema and the plan disagree (worth a warning).
pub fn unexpected_force_new(c: &ResourceChange) -> Vec<String> {
    if c.action != Action::Update {
        return Vec::new();
    }
    c.changed_paths
        .iter()
        .filter(|p| !c.unknown_paths.contains(p) && is_force_new(&c.rtype, p))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_load_and_match_nested_paths() {
        assert!(knows("oci_psql_db_system"));
        assert!(knows("oci_container_instances_container_instance"));
        let ci = "oci_container_instances_container_instance";
        assert!(is_force_new(ci, "containers[0].image_url"));
        assert!(is_force_new(
            ci,
            "containers[0].environment_variables.DATABASE_URL"
        ));
        assert!(!is_force_new(ci, "display_name"));
        assert!(is_force_new("oci_psql_db_system", "db_version"));
        assert!(!is_force_new("oci_psql_db_system", "instance_ocpu_count"));
        assert!(is_force_new("oci_load_balancer_backend", "ip_address"));
        assert!(is_force_new("oci_objectstorage_bucket", "name"));
        assert!(!is_force_new("terraform_data", "input"));
    }

    #[test]
    fn facts_are_sorted_for_binary_search() {
        for (t, list) in facts() {
            let mut s = list.clone();
            s.sort();
            assert_eq!(&s, list, "{t}");
        }
    }
}
