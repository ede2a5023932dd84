//! A saved plan read without running Terraform: the plan file's `tfplan` entry (protobuf)
//! holds every planned change, with the values before and after, the attributes that force a
//! replacement (`required_replace`), the sensitive paths, create-before-destroy and the action
//! reasons; its `tfstate` entry holds the refreshed prior state ([`super::planfile`]).
//!
//! [`read_plan`] turns them into the plan JSON `terraform show -json PLANFILE` would print
//! (the parts calops reads) and parses that with [`super::plan_json`], so the summary, the
//! destroy guard and the cost estimate see exactly what they would see after `show -json`,
//! without the second Terraform process (which loads every provider's schema: about a second
//! with the OCI provider). The rules follow Terraform's own `jsonplan` package: values per
//! action, unknown values left out of `after` and flagged in `after_unknown`, sensitive paths
//! as `*_sensitive` masks, data source deletions hidden, changes in Terraform's address order,
//! planned values for everything not deleted.
//!
//! The message layout (field numbers) is Terraform's `planfile.proto`, format version 3 (used
//! by Terraform 1.x); only the fields calops reads are declared. A plan file of another format
//! version is refused with an error, and the caller falls back to `terraform show -json`.

use super::address;
use super::cty::{self, Cty, Step};
use super::plan_json::{self, Plan};
use super::planfile;
use super::stream::ChangeCounts;
use anyhow::Context;
use prost::Message;
use serde_json::{json, Map, Value};
use std::path::Path;

/// The `tfplan` format version this reader understands.
pub const FORMAT_VERSION: u64 = 3;

#[derive(Clone, PartialEq, Message)]
pub struct RawPlan {
    #[prost(uint64, tag = "1")]
    pub version: u64,
    #[prost(message, repeated, tag = "3")]
    pub resource_changes: Vec<RawResourceChange>,
    #[prost(message, repeated, tag = "4")]
    pub output_changes: Vec<RawOutputChange>,
    #[prost(string, tag = "14")]
    pub terraform_version: String,
    #[prost(bool, tag = "20")]
    pub errored: bool,
    #[prost(bool, tag = "25")]
    pub applyable: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct RawResourceChange {
    #[prost(string, tag = "7")]
    pub deposed_key: String,
    #[prost(message, optional, tag = "9")]
    pub change: Option<RawChange>,
    #[prost(message, repeated, tag = "11")]
    pub required_replace: Vec<RawPath>,
    #[prost(int32, tag = "12")]
    pub action_reason: i32,
    #[prost(string, tag = "13")]
    pub addr: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct RawOutputChange {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub change: Option<RawChange>,
    #[prost(bool, tag = "3")]
    pub sensitive: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct RawChange {
    #[prost(int32, tag = "1")]
    pub action: i32,
    #[prost(message, repeated, tag = "2")]
    pub values: Vec<RawValue>,
    #[prost(message, repeated, tag = "3")]
    pub before_sensitive_paths: Vec<RawPath>,
    #[prost(message, repeated, tag = "4")]
    pub after_sensitive_paths: Vec<RawPath>,
    /// Present when the change imports the object.
    #[prost(message, optional, tag = "5")]
    pub importing: Option<RawImporting>,
}

/// Only its presence matters here.
#[derive(Clone, PartialEq, Message)]
pub struct RawImporting {}

/// A msgpack-encoded value ([`super::cty`]).
#[derive(Clone, PartialEq, Message)]
pub struct RawValue {
    #[prost(bytes = "vec", tag = "1")]
    pub msgpack: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RawPath {
    #[prost(message, repeated, tag = "1")]
    pub steps: Vec<RawStep>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RawStep {
    #[prost(oneof = "RawSelector", tags = "1, 2")]
    pub selector: Option<RawSelector>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum RawSelector {
    #[prost(string, tag = "1")]
    AttributeName(String),
    #[prost(message, tag = "2")]
    ElementKey(RawValue),
}

/// The planned actions, by their protobuf numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RawAction {
    NoOp,
    Create,
    Read,
    Update,
    Delete,
    DeleteThenCreate,
    CreateThenDelete,
    Forget,
    CreateThenForget,
}

impl RawAction {
    fn from_i32(n: i32) -> anyhow::Result<RawAction> {
        Ok(match n {
            0 => RawAction::NoOp,
            1 => RawAction::Create,
            2 => RawAction::Read,
            3 => RawAction::Update,
            5 => RawAction::Delete,
            6 => RawAction::DeleteThenCreate,
            7 => RawAction::CreateThenDelete,
            8 => RawAction::Forget,
            9 => RawAction::CreateThenForget,
            other => anyhow::bail!("unknown planned action {other}"),
        })
    }

    /// Plan JSON's `actions` list.
    fn json(self) -> Value {
        json!(match self {
            RawAction::NoOp => &["no-op"][..],
            RawAction::Create => &["create"],
            RawAction::Read => &["read"],
            RawAction::Update => &["update"],
            RawAction::Delete => &["delete"],
            RawAction::DeleteThenCreate => &["delete", "create"],
            RawAction::CreateThenDelete => &["create", "delete"],
            RawAction::Forget => &["forget"],
            RawAction::CreateThenForget => &["create", "forget"],
        })
    }

    /// Which of the stored values are `before` and `after` (Terraform stores one value for
    /// no-op, create, delete and forget, two otherwise).
    fn value_slots(self) -> (Option<usize>, Option<usize>) {
        match self {
            RawAction::NoOp => (Some(0), Some(0)),
            RawAction::Create => (None, Some(0)),
            RawAction::Delete | RawAction::Forget => (Some(0), None),
            _ => (Some(0), Some(1)),
        }
    }
}

/// Plan JSON's `action_reason`, by protobuf number.
fn action_reason(n: i32) -> anyhow::Result<Option<&'static str>> {
    Ok(Some(match n {
        0 => return Ok(None),
        1 => "replace_because_tainted",
        2 => "replace_by_request",
        3 => "replace_because_cannot_update",
        4 => "delete_because_no_resource_config",
        5 => "delete_because_wrong_repetition",
        6 => "delete_because_count_index",
        7 => "delete_because_each_key",
        8 => "delete_because_no_module",
        9 => "replace_by_triggers",
        10 => "read_because_config_unknown",
        11 => "read_because_dependency_pending",
        12 => "delete_because_no_move_target",
        13 => "read_because_check_nested",
        other => anyhow::bail!("unknown action reason {other}"),
    }))
}

fn paths(raw: &[RawPath]) -> anyhow::Result<Vec<Vec<Step>>> {
    raw.iter()
        .map(|p| {
            p.steps
                .iter()
                .map(|s| match &s.selector {
                    Some(RawSelector::AttributeName(a)) => Ok(Step::Attr(a.clone())),
                    Some(RawSelector::ElementKey(k)) => Ok(Step::Key(cty::decode(&k.msgpack)?)),
                    None => anyhow::bail!("a path step selects nothing"),
                })
                .collect()
        })
        .collect()
}

/// One change's values and their JSON forms, as `jsonplan` writes them.
struct Decoded {
    action: RawAction,
    after: Option<Cty>,
    change: Value,
}

fn decode_change(raw: Option<&RawChange>) -> anyhow::Result<Decoded> {
    let raw = raw.ok_or_else(|| anyhow::anyhow!("the change is missing"))?;
    let action = RawAction::from_i32(raw.action)?;
    let value = |slot: Option<usize>| -> anyhow::Result<Option<Cty>> {
        let Some(i) = slot else { return Ok(None) };
        let v = raw
            .values
            .get(i)
            .ok_or_else(|| anyhow::anyhow!("{} value(s) for {action:?}", raw.values.len()))?;
        Ok(Some(cty::decode(&v.msgpack)?))
    };
    let (b, a) = action.value_slots();
    // A create has no prior object and a deletion no new one: both show as null.
    let before = value(b)?.unwrap_or(Cty::Null);
    let after = value(a)?;
    let after_val = after.clone().unwrap_or(Cty::Null);
    let after_unknown = if after_val.is_wholly_known() {
        json!({})
    } else {
        after_val.unknown_as_bool()
    };
    let change = json!({
        "actions": action.json(),
        "before": before.known_json().unwrap_or(Value::Null),
        "after": after_val.known_json().unwrap_or(Value::Null),
        "after_unknown": after_unknown,
        "before_sensitive": cty::sensitive_tree(&before, &paths(&raw.before_sensitive_paths)?),
        "after_sensitive": cty::sensitive_tree(&after_val, &paths(&raw.after_sensitive_paths)?),
    });
    Ok(Decoded {
        action,
        after,
        change,
    })
}

/// The plan JSON document (the parts [`plan_json::parse_value`] reads) for a decoded
/// `tfplan`; prior state is added by [`read_plan`].
pub fn plan_document(raw: &RawPlan) -> anyhow::Result<Value> {
    if raw.version != FORMAT_VERSION {
        anyhow::bail!(
            "the plan file's format version is {} (calops reads {FORMAT_VERSION})",
            raw.version
        );
    }
    let mut changes = Vec::new();
    let mut planned = Vec::new();
    for rc in &raw.resource_changes {
        let addr = address::parse(&rc.addr)?;
        let d = decode_change(rc.change.as_ref()).with_context(|| rc.addr.clone())?;
        // Planned values: every current object that is not being deleted.
        if d.action != RawAction::Delete && rc.deposed_key.is_empty() {
            let values = d.after.as_ref().and_then(Cty::known_json);
            planned.push(json!({
                "address": rc.addr,
                "mode": addr.mode,
                "type": addr.rtype,
                "values": values.filter(|v| !v.is_null()),
                "sensitive_values": d.change["after_sensitive"],
            }));
        }
        // Data sources are "deleted" only to clean up state: plan JSON hides that.
        if addr.mode == "data" && d.action == RawAction::Delete {
            continue;
        }
        let mut change = d.change;
        let replace: Vec<Value> = paths(&rc.required_replace)
            .with_context(|| rc.addr.clone())?
            .iter()
            .map(|p| cty::path_json(p))
            .collect();
        if !replace.is_empty() {
            change["replace_paths"] = Value::Array(replace);
        }
        let mut doc = json!({
            "address": rc.addr,
            "mode": addr.mode,
            "type": addr.rtype,
            "name": addr.name,
            "change": change,
        });
        if !addr.module.is_empty() {
            doc["module_address"] = json!(addr.module);
        }
        if let Some(r) = action_reason(rc.action_reason).with_context(|| rc.addr.clone())? {
            doc["action_reason"] = json!(r);
        }
        if !rc.deposed_key.is_empty() {
            doc["deposed"] = json!(rc.deposed_key);
        }
        changes.push((addr, rc.deposed_key.clone(), doc));
    }
    changes.sort_by(|a, b| a.0.terraform_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    let mut outputs = Map::new();
    for oc in &raw.output_changes {
        let d = decode_change(oc.change.as_ref()).with_context(|| format!("output {}", oc.name))?;
        outputs.insert(
            oc.name.clone(),
            json!({
                "actions": d.change["actions"],
                "before_sensitive": oc.sensitive,
                "after_sensitive": oc.sensitive,
            }),
        );
    }
    Ok(json!({
        "format_version": "1.2",
        "terraform_version": raw.terraform_version,
        "planned_values": {"root_module": {"resources": planned}},
        "resource_changes": changes.into_iter().map(|c| c.2).collect::<Vec<_>>(),
        "output_changes": outputs,
        "applyable": raw.applyable,
        "errored": raw.errored,
    }))
}

/// What Terraform's `change_summary` counts for these changes (data source deletions left
/// out; a replacement adds one and removes one; forgetting counts as neither).
pub fn counts(raw: &RawPlan) -> anyhow::Result<ChangeCounts> {
    let mut c = ChangeCounts::default();
    for rc in &raw.resource_changes {
        let change = rc
            .change
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("{}: the change is missing", rc.addr))?;
        let action = RawAction::from_i32(change.action)?;
        if action == RawAction::Delete && address::parse(&rc.addr)?.mode == "data" {
            continue;
        }
        if change.importing.is_some() {
            c.import += 1;
        }
        match action {
            RawAction::Create => c.add += 1,
            RawAction::Delete => c.remove += 1,
            RawAction::Update => c.change += 1,
            RawAction::CreateThenDelete | RawAction::DeleteThenCreate => {
                c.add += 1;
                c.remove += 1;
            }
            _ => {}
        }
    }
    Ok(c)
}

/// A plan read from its file, with what Terraform would count in it.
#[derive(Debug)]
pub struct SavedPlan {
    pub plan: Plan,
    pub counts: ChangeCounts,
}

/// Decode a `tfplan` entry.
pub fn decode_raw(bytes: &[u8]) -> anyhow::Result<RawPlan> {
    RawPlan::decode(bytes).map_err(|e| anyhow::anyhow!("the plan is not valid protobuf ({e})"))
}

/// The plan saved at `path`, as [`plan_json::parse`] would read `terraform show -json` of it.
pub fn read_plan(path: &Path) -> anyhow::Result<SavedPlan> {
    let entries = planfile::read_entries(path, &["tfplan", "tfstate"])?;
    let inside = || format!("reading the planned changes inside {}", path.display());
    let raw = decode_raw(&entries[0]).with_context(inside)?;
    let doc = plan_document(&raw).with_context(inside)?;
    let counts = counts(&raw).with_context(inside)?;
    let mut plan = plan_json::parse_value(&doc).with_context(inside)?;
    let state = String::from_utf8(entries[1].clone())
        .map_err(|_| anyhow::anyhow!("the state inside {} is not UTF-8", path.display()))?;
    plan.prior = planfile::parse_state(&state)
        .with_context(|| format!("reading the prior state inside {}", path.display()))?;
    Ok(SavedPlan { plan, counts })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::terraform::cost::{estimate, PriceTable};
    use crate::terraform::guard::GuardPolicy;
    use crate::terraform::plan_json::ResourceValues;
    use crate::terraform::summary::{render_human, render_markdown, summarize};

    /// Every plan fixture: `generate.sh` saved each plan file next to `terraform show -json`
    /// of it and its `plan -json` stream.
    const FIXTURES: &[&str] = &[
        "create",
        "changes",
        "noop",
        "destroy",
        "rich-create",
        "rich-changes",
        "rich-destroy",
    ];

    fn dir() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/terraform/plans")
    }

    fn shown(name: &str) -> Plan {
        plan_json::parse(&std::fs::read_to_string(dir().join(format!("{name}.json"))).unwrap())
            .unwrap()
    }

    fn read(name: &str) -> SavedPlan {
        read_plan(&dir().join(format!("{name}.tfplan"))).unwrap()
    }

    fn sorted(v: &[ResourceValues]) -> Value {
        let mut v = v.to_vec();
        v.sort_by(|a, b| a.address.cmp(&b.address));
        serde_json::to_value(v).unwrap()
    }

    #[test]
    fn plan_files_read_exactly_as_show_json() {
        for name in FIXTURES {
            let (ours, theirs) = (read(name).plan, shown(name));
            // Changes in Terraform's order, every field (actions, reasons, forcing, changed,
            // unknown and sensitive paths, masked values) equal.
            assert_eq!(
                serde_json::to_value(&ours.resource_changes).unwrap(),
                serde_json::to_value(&theirs.resource_changes).unwrap(),
                "{name}"
            );
            assert_eq!(
                serde_json::to_value(&ours.output_changes).unwrap(),
                serde_json::to_value(&theirs.output_changes).unwrap(),
                "{name}"
            );
            assert_eq!(sorted(&ours.planned), sorted(&theirs.planned), "{name}");
            assert_eq!(sorted(&ours.prior), sorted(&theirs.prior), "{name}");
            assert_eq!(ours.terraform_version, theirs.terraform_version);
            assert_eq!(
                (ours.applyable, ours.errored),
                (theirs.applyable, theirs.errored)
            );
        }
    }

    #[test]
    fn summaries_guard_and_cost_equal_the_show_json_ones() {
        let mut guard = GuardPolicy::default();
        guard.protect(&["terraform_data.db".into(), "terraform_data.lb".into()]);
        let table = PriceTable::bundled();
        for name in FIXTURES {
            let (ours, theirs) = (read(name).plan, shown(name));
            for g in [&GuardPolicy::default(), &guard] {
                let a = summarize(&ours, g, Some(estimate(&ours, &table)));
                let b = summarize(&theirs, g, Some(estimate(&theirs, &table)));
                assert_eq!(
                    serde_json::to_value(&a).unwrap(),
                    serde_json::to_value(&b).unwrap(),
                    "{name}"
                );
                assert_eq!(render_human(&a), render_human(&b), "{name}");
                assert_eq!(render_markdown(&a, 60_000), render_markdown(&b, 60_000));
            }
        }
        // What the fixtures are there for, read from the plan file alone.
        let changes = summarize(&read("rich-changes").plan, &guard, None);
        let lb = changes
            .resources
            .iter()
            .find(|r| r.address == "terraform_data.lb")
            .unwrap();
        assert!(lb.create_before_destroy);
        assert_eq!(lb.forcing, ["triggers_replace"]);
        assert_eq!(changes.refused.len(), 1);
        assert_eq!(changes.refused[0].forcing, ["triggers_replace"]);
        let child = changes
            .resources
            .iter()
            .find(|r| r.address == "module.child[1].terraform_data.c")
            .unwrap();
        assert_eq!(child.changed, ["input.half", "input.n", "output"]);
    }

    #[test]
    fn values_numbers_sensitive_parts_and_order_survive() {
        let p = read("rich-create").plan;
        let lb = p
            .resource_changes
            .iter()
            .find(|c| c.address == "terraform_data.lb")
            .unwrap();
        // 0.1 and a number beyond int64 are stored as text; the type makes them numbers.
        assert_eq!(lb.after["input"]["ratio"], serde_json::json!(0.1));
        assert_eq!(
            lb.after["input"]["big"],
            serde_json::json!(12345678901234567890u64)
        );
        assert_eq!(lb.after["input"]["token"], plan_json::MASK);
        assert_eq!(lb.sensitive_paths, ["input.token"]);
        let text = serde_json::to_string(&p).unwrap();
        assert!(!text.contains("tok-1"), "the sensitive token leaked");
        let addrs: Vec<&str> = p
            .resource_changes
            .iter()
            .map(|c| c.address.as_str())
            .collect();
        assert_eq!(addrs[0], "data.terraform_remote_state.late");
        assert_eq!(addrs[2], r#"terraform_data.each["10"]"#);
        assert_eq!(addrs[3], r#"terraform_data.each["9"]"#);
        assert_eq!(addrs.last(), Some(&"module.child[1].terraform_data.c"));
    }

    #[test]
    fn counts_match_the_streams_change_summary() {
        for name in FIXTURES {
            let stream = crate::terraform::stream::parse(
                &std::fs::read_to_string(dir().join(format!("{name}.stream.jsonl"))).unwrap(),
            );
            crate::terraform::stream::check_counts(&stream, &read(name).counts)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn other_formats_and_broken_files_are_refused() {
        let bytes = &planfile::read_entries(&dir().join("noop.tfplan"), &["tfplan"]).unwrap()[0];
        let mut raw = decode_raw(bytes).unwrap();
        raw.version = 4;
        let e = plan_document(&raw).unwrap_err();
        assert!(format!("{e}").contains("format version is 4"), "{e}");
        raw.version = FORMAT_VERSION;
        raw.resource_changes[0].change.as_mut().unwrap().action = 42;
        assert!(plan_document(&raw).is_err());
        assert!(decode_raw(&[0xff, 0xff]).is_err());
        let e = read_plan(&dir().join("noop.json")).unwrap_err();
        assert!(format!("{e:#}").contains("not a zip archive"), "{e:#}");
    }
}
