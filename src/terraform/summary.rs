//! The plan summary people decide from: counts, one line per changed resource (with the
//! attributes that force a replacement), the destroy guard's verdict and the cost estimate.
//! Rendered as human text, JSON, and Markdown for a PR comment (bounded in size).
//!
//! Attribute *values* are never part of a summary: only addresses, actions and attribute
//! names. That keeps sensitive values out of every rendering by construction.

use super::cost::{CostReport, Priced};
use super::forcenew::{forcing_attributes, unexpected_force_new};
use super::guard::{GuardPolicy, Violation};
use super::plan_json::{Action, Plan};
use serde::Serialize;

/// GitHub rejects comments over 65,536 characters; stay well below.
pub const MARKDOWN_LIMIT: usize = 60_000;

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    pub create: usize,
    pub update: usize,
    pub delete: usize,
    pub replace: usize,
}

impl Counts {
    pub fn total(&self) -> usize {
        self.create + self.update + self.delete + self.replace
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ResourceLine {
    pub address: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub action: Action,
    /// For replacements: attributes that force it.
    pub forcing: Vec<String>,
    /// Why Terraform chose this action when not because of an attribute (tainted, count...).
    pub reason: Option<String>,
    /// Attribute names that change (values are never shown).
    pub changed: Vec<String>,
    pub create_before_destroy: bool,
    /// Set when the resource is protected by the destroy guard.
    pub protected: Option<String>,
    /// Update-in-place of attributes the provider declares ForceNew (plan and schema disagree).
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub has_changes: bool,
    pub counts: Counts,
    pub resources: Vec<ResourceLine>,
    pub outputs_changed: Vec<String>,
    /// Deletions/replacements of protected resources not named by `--allow-destroy`.
    pub refused: Vec<Violation>,
    pub cost: Option<CostReport>,
}

fn reason_text(r: &str) -> String {
    match r {
        "replace_because_tainted" => {
            "tainted: a previous apply failed or was interrupted while creating it".into()
        }
        "replace_by_request" => "replacement requested (-replace)".into(),
        "replace_because_cannot_update" => "a changed attribute cannot be updated in place".into(),
        "replace_by_triggers" => "replace_triggered_by fired".into(),
        "delete_because_no_resource_config" => "removed from the configuration".into(),
        "delete_because_count_index" => "count was lowered".into(),
        "delete_because_each_key" => "its for_each key was removed".into(),
        "delete_because_no_module" => "its module was removed".into(),
        "delete_because_wrong_repetition" => "count/for_each was added or removed".into(),
        other => other.replace('_', " "),
    }
}

/// Build the summary from a parsed plan.
pub fn summarize(plan: &Plan, guard: &GuardPolicy, cost: Option<CostReport>) -> Summary {
    let mut counts = Counts::default();
    let mut resources = Vec::new();
    for c in plan.effective_changes() {
        match c.action {
            Action::Create => counts.create += 1,
            Action::Update => counts.update += 1,
            Action::Delete => counts.delete += 1,
            Action::Replace => counts.replace += 1,
            Action::NoOp | Action::Read => {}
        }
        let forcing = forcing_attributes(c);
        let warnings = unexpected_force_new(c)
            .into_iter()
            .map(|p| format!("{p} is ForceNew in the provider schema but planned in place"))
            .collect();
        resources.push(ResourceLine {
            address: c.address.clone(),
            rtype: c.rtype.clone(),
            action: c.action,
            reason: c.action_reason.as_deref().map(reason_text),
            changed: c.changed_paths.clone(),
            create_before_destroy: c.create_before_destroy,
            protected: guard.protection(c),
            forcing,
            warnings,
        });
    }
    // Riskiest first: replace, delete, update, create; then by address.
    let rank = |a: Action| match a {
        Action::Replace => 0,
        Action::Delete => 1,
        Action::Update => 2,
        _ => 3,
    };
    resources.sort_by(|a, b| {
        rank(a.action)
            .cmp(&rank(b.action))
            .then_with(|| a.address.cmp(&b.address))
    });
    let outputs_changed = plan
        .output_changes
        .iter()
        .filter(|o| o.action != Action::NoOp)
        .map(|o| o.name.clone())
        .collect();
    Summary {
        has_changes: plan.has_changes(),
        counts,
        resources,
        outputs_changed,
        refused: super::guard::check(plan, guard),
        cost,
    }
}

fn symbol(a: Action) -> &'static str {
    match a {
        Action::Create => "+",
        Action::Update => "~",
        Action::Delete => "-",
        Action::Replace => "-/+",
        Action::NoOp | Action::Read => " ",
    }
}

fn money(x: f64) -> String {
    format!("{x:.2}")
}

fn signed(x: f64) -> String {
    if x >= 0.0 {
        format!("+{x:.2}")
    } else {
        format!("{x:.2}")
    }
}

fn counts_line(c: &Counts) -> String {
    format!(
        "{} to create, {} to update, {} to replace, {} to delete",
        c.create, c.update, c.replace, c.delete
    )
}

fn line_detail(r: &ResourceLine) -> String {
    let mut parts = Vec::new();
    if !r.forcing.is_empty() {
        parts.push(format!("forced by {}", r.forcing.join(", ")));
    } else if let Some(reason) = &r.reason {
        parts.push(reason.clone());
    }
    if r.action == Action::Update && !r.changed.is_empty() {
        parts.push(format!("changes {}", r.changed.join(", ")));
    }
    if r.create_before_destroy {
        parts.push("new one created first".into());
    }
    if let Some(p) = &r.protected {
        if r.action.destroys() {
            parts.push(format!("PROTECTED: {p}"));
        }
    }
    parts.extend(r.warnings.iter().cloned());
    parts.join("; ")
}

/// Human text for a terminal.
pub fn render_human(s: &Summary) -> String {
    let mut out = String::new();
    if !s.has_changes {
        out.push_str("No changes: the infrastructure matches the configuration.\n");
    } else {
        out.push_str(&format!("Plan: {}\n", counts_line(&s.counts)));
        for r in &s.resources {
            let d = line_detail(r);
            out.push_str(&format!(
                "  {:>3} {} ({}){}\n",
                symbol(r.action),
                r.address,
                r.action.as_str(),
                if d.is_empty() {
                    String::new()
                } else {
                    format!(": {d}")
                }
            ));
        }
        if !s.outputs_changed.is_empty() {
            out.push_str(&format!(
                "Outputs changing: {}\n",
                s.outputs_changed.join(", ")
            ));
        }
    }
    if !s.refused.is_empty() {
        out.push('\n');
        out.push_str(&super::guard::explain(&s.refused));
        out.push('\n');
    }
    if let Some(c) = &s.cost {
        out.push_str(&render_cost_human(c));
    }
    out
}

fn priced_text(p: &Option<Priced>, currency: &str) -> String {
    match p {
        None => "-".into(),
        Some(Priced::Monthly { amount, .. }) => format!("{} {currency}", money(*amount)),
        Some(Priced::Free) => "free".into(),
        Some(Priced::UsageBased { .. }) => "usage-based".into(),
        Some(Priced::Unknown { .. }) => "unknown".into(),
    }
}

fn priced_note(p: &Option<Priced>) -> Option<&str> {
    match p {
        Some(Priced::Monthly { basis, .. }) => Some(basis),
        Some(Priced::UsageBased { note }) | Some(Priced::Unknown { note }) => Some(note),
        _ => None,
    }
}

fn render_cost_human(c: &CostReport) -> String {
    let mut out = String::from("\nMonthly cost estimate (");
    out.push_str(&format!(
        "{} list prices as of {}):\n",
        c.currency, c.prices_as_of
    ));
    let rows: Vec<_> = c.resources.iter().filter(|r| !all_free(r)).collect();
    if rows.is_empty() {
        out.push_str("  (no billable OCI resources in this configuration)\n");
    }
    for r in rows {
        let note = priced_note(&r.after)
            .or(priced_note(&r.before))
            .map(|n| format!("  [{n}]"))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {:<50} {:>14} -> {:>14}{note}\n",
            r.address,
            priced_text(&r.before, &c.currency),
            priced_text(&r.after, &c.currency)
        ));
    }
    out.push_str(&format!(
        "  Total: {} {cur}/month now, {} {cur}/month after apply ({} {cur})\n",
        money(c.total_before),
        money(c.total_after),
        signed(c.delta),
        cur = c.currency
    ));
    for l in &c.not_always_free {
        out.push_str(&format!("  note: {l}\n"));
    }
    out.push_str(&format!("  {}\n", c.disclaimer));
    out
}

/// Markdown for a PR comment, never longer than `limit` characters: the resource list sits in
/// a collapsed `<details>` block and is cut with "... and N more" when it would not fit.
pub fn render_markdown(s: &Summary, limit: usize) -> String {
    let mut head = String::from("### calops plan\n\n");
    if !s.has_changes {
        head.push_str("**No changes.** The infrastructure matches the configuration.\n\n");
    } else {
        head.push_str(&format!(
            "| create | update | replace | delete |\n|---:|---:|---:|---:|\n| {} | {} | {} | {} |\n\n",
            s.counts.create, s.counts.update, s.counts.replace, s.counts.delete
        ));
    }
    if !s.refused.is_empty() {
        head.push_str(&format!(
            "> [!CAUTION]\n> **Refused:** this plan would destroy {} protected resource(s). Run again with `--allow-destroy ADDRESS` only if losing the data is intended.\n\n",
            s.refused.len()
        ));
        for v in &s.refused {
            let forced = if v.forcing.is_empty() {
                String::new()
            } else {
                format!(" — forced by `{}`", v.forcing.join("`, `"))
            };
            head.push_str(&format!(
                "- `{}` would be **{}**: {}{forced}\n",
                md_escape(&v.address),
                if v.action == Action::Replace {
                    "replaced"
                } else {
                    "deleted"
                },
                md_escape(&v.why_protected)
            ));
        }
        head.push('\n');
    }
    let mut tail = String::new();
    if let Some(c) = &s.cost {
        tail.push_str(&format!(
            "**Estimated monthly cost:** {} {cur} now → {} {cur} after apply ({} {cur}).\n",
            money(c.total_before),
            money(c.total_after),
            signed(c.delta),
            cur = c.currency
        ));
        for l in &c.not_always_free {
            tail.push_str(&format!("- {}\n", md_escape(l)));
        }
        tail.push_str(&format!(
            "\n_{}_ Prices: {} (as of {}).\n",
            md_escape(&c.disclaimer),
            md_escape(&c.prices_source),
            c.prices_as_of
        ));
    }
    // The cost table is optional detail: drop it before it would push us over the limit.
    let cost_table = s.cost.as_ref().map(render_cost_table).unwrap_or_default();

    let open = format!(
        "<details><summary>{} resource change(s)</summary>\n\n",
        s.resources.len()
    );
    let close = "\n</details>\n\n";
    let fixed = head.len() + tail.len() + open.len() + close.len();
    let mut budget = limit.saturating_sub(fixed + 200);
    let with_cost = fixed + cost_table.len() + 200 < limit;
    if with_cost {
        budget = budget.saturating_sub(cost_table.len());
    }
    let mut list = String::new();
    let mut shown = 0;
    for r in &s.resources {
        let d = line_detail(r);
        let line = format!(
            "- `{}` `{}` **{}**{}\n",
            symbol(r.action),
            md_escape(&r.address),
            r.action.as_str(),
            if d.is_empty() {
                String::new()
            } else {
                format!(" — {}", md_escape(&d))
            }
        );
        if list.len() + line.len() > budget {
            break;
        }
        list.push_str(&line);
        shown += 1;
    }
    if shown < s.resources.len() {
        list.push_str(&format!(
            "- ... and {} more (see the full plan log)\n",
            s.resources.len() - shown
        ));
    }
    let mut out = head;
    if !s.resources.is_empty() {
        out.push_str(&open);
        out.push_str(&list);
        out.push_str(close);
    }
    if with_cost && !cost_table.is_empty() {
        out.push_str(&cost_table);
    }
    out.push_str(&tail);
    if out.len() > limit {
        // Only reachable with a tiny limit: keep a valid prefix.
        let mut cut = limit.saturating_sub(20);
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("\n... (cut)\n");
    }
    out
}

/// Free before and after (or free and absent on one side): not worth a row.
fn all_free(r: &super::cost::ResourceCost) -> bool {
    matches!(
        (&r.before, &r.after),
        (None, Some(Priced::Free))
            | (Some(Priced::Free), None)
            | (Some(Priced::Free), Some(Priced::Free))
    )
}

fn render_cost_table(c: &CostReport) -> String {
    let rows: Vec<_> = c.resources.iter().filter(|r| !all_free(r)).collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut t = format!(
        "<details><summary>Cost estimate per resource ({})</summary>\n\n| resource | now | after | basis |\n|---|---:|---:|---|\n",
        c.currency
    );
    for r in rows {
        t.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            md_escape(&r.address),
            priced_text(&r.before, &c.currency),
            priced_text(&r.after, &c.currency),
            md_escape(
                priced_note(&r.after)
                    .or(priced_note(&r.before))
                    .unwrap_or("")
            )
        ));
    }
    t.push_str("\n</details>\n\n");
    t
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::terraform::cost::{estimate, PriceTable};
    use crate::terraform::plan_json::parse;

    fn fixture(name: &str) -> Plan {
        parse(
            &std::fs::read_to_string(format!(
                "{}/tests/fixtures/terraform/plans/{name}.json",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn counts_and_forcing_attributes() {
        let p = fixture("changes");
        let s = summarize(&p, &GuardPolicy::default(), None);
        assert_eq!(
            s.counts,
            Counts {
                create: 0,
                update: 1,
                delete: 1,
                replace: 1
            }
        );
        assert_eq!(s.resources[0].address, "terraform_data.db");
        assert_eq!(s.resources[0].forcing, ["triggers_replace"]);
        let text = render_human(&s);
        assert!(
            text.contains("0 to create, 1 to update, 1 to replace, 1 to delete"),
            "{text}"
        );
        assert!(
            text.contains("-/+ terraform_data.db (replace): forced by triggers_replace"),
            "{text}"
        );
        assert!(
            text.contains("terraform_data.old[0] (delete): count was lowered"),
            "{text}"
        );
        assert!(
            text.contains("changes input.image, input.password, output"),
            "{text}"
        );
        let none = summarize(&fixture("noop"), &GuardPolicy::default(), None);
        assert!(!none.has_changes);
        assert!(render_human(&none).starts_with("No changes"));
    }

    #[test]
    fn no_secret_in_any_rendering() {
        for name in ["create", "changes", "noop", "destroy"] {
            let p = fixture(name);
            let mut g = GuardPolicy::default();
            g.protect(&["terraform_data".into()]);
            let s = summarize(&p, &g, Some(estimate(&p, &PriceTable::bundled())));
            for text in [
                render_human(&s),
                render_markdown(&s, MARKDOWN_LIMIT),
                serde_json::to_string(&s).unwrap(),
            ] {
                assert!(!text.contains("fixture-secret"), "{name}: {text}");
            }
        }
    }

    #[test]
    fn markdown_stays_under_the_limit_with_a_count_of_the_rest() {
        let p = fixture("changes");
        let mut s = summarize(
            &p,
            &GuardPolicy::default(),
            Some(estimate(&p, &PriceTable::bundled())),
        );
        let template = s.resources[0].clone();
        s.resources = (0..5000)
            .map(|i| {
                let mut r = template.clone();
                r.address = format!("module.big.terraform_data.item_with_a_long_name[{i}]");
                r
            })
            .collect();
        let md = render_markdown(&s, MARKDOWN_LIMIT);
        assert!(md.len() <= MARKDOWN_LIMIT, "{}", md.len());
        assert!(md.len() > MARKDOWN_LIMIT / 2);
        assert!(md.contains("<details><summary>5000 resource change(s)</summary>"));
        let re = regex::Regex::new(r"\.\.\. and (\d+) more").unwrap();
        let more: usize = re.captures(&md).unwrap()[1].parse().unwrap();
        let shown = md.matches("item_with_a_long_name[").count();
        assert_eq!(shown + more, 5000);
        assert!(md.contains("Estimated monthly cost"));
        // Small plans are shown whole.
        let small = render_markdown(
            &summarize(&p, &GuardPolicy::default(), None),
            MARKDOWN_LIMIT,
        );
        assert!(!small.contains("more (see"));
        assert!(
            small.contains("`terraform_data.db` **replace** — forced by triggers_replace"),
            "{small}"
        );
    }

    #[test]
    fn refused_plan_is_explained_everywhere() {
        let p = fixture("changes");
        let mut g = GuardPolicy::default();
        g.protect(&["terraform_data.db".into()]);
        let s = summarize(&p, &g, None);
        assert_eq!(s.refused.len(), 1);
        assert!(render_human(&s).contains("refusing: this plan would destroy 1 protected resource"));
        assert!(render_markdown(&s, MARKDOWN_LIMIT).contains("**Refused:**"));
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(j["refused"][0]["address"], "terraform_data.db");
        assert_eq!(j["counts"]["replace"], 1);
    }

    #[test]
    fn oci_plan_forcing_guard_and_cost() {
        let p = fixture("oci-mixed");
        assert!(!serde_json::to_string(&p)
            .unwrap()
            .contains("fixture-secret-oci"));
        let s = summarize(
            &p,
            &GuardPolicy::default(),
            Some(estimate(&p, &PriceTable::bundled())),
        );
        assert_eq!(
            s.counts,
            Counts {
                create: 1,
                update: 1,
                delete: 1,
                replace: 2
            }
        );
        let by = |a: &str| s.resources.iter().find(|r| r.address.ends_with(a)).unwrap();
        // Terraform's replace_paths first, then changed ForceNew attributes from the provider
        // facts (shape_config is ForceNew); computed attributes turning unknown are not listed.
        assert_eq!(
            by("container_instance.app").forcing,
            [
                "containers[0].image_url",
                "shape_config[0].memory_in_gbs",
                "shape_config[0].ocpus"
            ]
        );
        assert_eq!(by("redis_cluster.main").forcing, ["subnet_id"]);
        assert_eq!(
            by("psql_db_system.main").changed,
            ["instance_memory_size_in_gbs", "instance_ocpu_count"]
        );
        // Database updated in place: allowed. Cache replaced and bucket deleted: refused.
        let refused: Vec<&str> = s.refused.iter().map(|v| v.address.as_str()).collect();
        assert_eq!(
            refused,
            [
                "module.cache.oci_redis_redis_cluster.main",
                "module.storage.oci_objectstorage_bucket.media"
            ]
        );
        let c = s.cost.as_ref().unwrap();
        assert_eq!(c.total_before, 237.34);
        assert_eq!(c.total_after, 463.59);
        assert_eq!(c.delta, 226.25);
        assert_eq!(c.not_always_free.len(), 3);
        let human = render_human(&s);
        let md = render_markdown(&s, MARKDOWN_LIMIT);
        for text in [&human, &md] {
            assert!(!text.contains("fixture-secret-oci"));
            assert!(text.contains("outside OCI's Always Free tier"), "{text}");
        }
        assert!(
            human.contains("237.34 USD/month now, 463.59 USD/month after apply (+226.25 USD)"),
            "{human}"
        );
        assert!(
            human.contains("PROTECTED: it is the OCI Cache (Redis) cluster"),
            "{human}"
        );
        assert!(
            md.contains("| `module.db.oci_psql_db_system.main` | 202.96 USD | 405.93 USD |"),
            "{md}"
        );
        assert!(
            md.contains("`module.storage.oci_objectstorage_bucket.media` would be **deleted**"),
            "{md}"
        );
    }
}
