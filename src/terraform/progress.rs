//! Turning Terraform's output lines into short spinner messages: the current step and resource.

use super::command::Op;

/// A spinner message for `line` from a run of `op`, or `None` when the line says nothing new.
pub fn message(op: Op, line: &str) -> Option<String> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    if let Some(m) = line
        .strip_prefix("Ctrl-C: ")
        .or(line.strip_prefix("second Ctrl-C: "))
    {
        return Some(m.to_string());
    }
    // "<address>: <Verb>..." lines, as plan and apply print them.
    if let Some((addr, rest)) = line.split_once(": ") {
        if !addr.contains(' ') || addr.contains(" (") {
            let addr = addr.split(" (").next().unwrap_or(addr);
            let step = [
                ("Refreshing state", "refreshing"),
                ("Reading...", "reading"),
                ("Creating...", "creating"),
                ("Modifying...", "updating"),
                ("Destroying...", "destroying"),
                ("Still creating", "creating"),
                ("Still modifying", "updating"),
                ("Still destroying", "destroying"),
                ("Still reading", "reading"),
                ("Provisioning with", "provisioning"),
                ("Creation complete", "created"),
                ("Modifications complete", "updated"),
                ("Destruction complete", "destroyed"),
                ("Plan to create", "will create"),
                ("Plan to update", "will update"),
                ("Plan to replace", "will replace"),
                ("Plan to delete", "will delete"),
                ("Plan to read", "will read"),
                ("Drift detected", "drift in"),
            ]
            .iter()
            .find(|(p, _)| rest.starts_with(p))
            .map(|(_, s)| *s);
            if let Some(step) = step {
                let elapsed = rest
                    .find("elapsed]")
                    .and_then(|end| rest[..end].rfind('[').map(|s| rest[s + 1..end].trim()))
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default();
                return Some(format!("{}: {step} {addr}{elapsed}", op.name()));
            }
        }
    }
    let init_steps = [
        ("Initializing the backend", "init: backend"),
        ("Initializing modules", "init: modules"),
        ("Initializing provider plugins", "init: providers"),
        ("- Installing ", "init: installing"),
        ("- Using ", "init: using"),
        ("- Reusing ", "init: reusing"),
    ];
    for (p, m) in init_steps {
        if let Some(rest) = line.strip_prefix(p) {
            let what = rest.trim_end_matches("...").trim();
            return Some(if p.starts_with("- ") {
                format!("{m} {what}")
            } else {
                m.to_string()
            });
        }
    }
    if line.starts_with("Plan:") || line.starts_with("No changes.") {
        return Some(format!("plan: {line}"));
    }
    if line.starts_with("Apply complete!") {
        return Some(format!("apply: {line}"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_and_resource() {
        assert_eq!(
            message(Op::Plan, "terraform_data.db: Refreshing state... [id=a762]").as_deref(),
            Some("plan: refreshing terraform_data.db")
        );
        assert_eq!(
            message(
                Op::Apply,
                "module.db.oci_psql_db_system.main: Still creating... [10m0s elapsed]"
            )
            .as_deref(),
            Some("apply: creating module.db.oci_psql_db_system.main (10m0s)")
        );
        assert_eq!(
            message(
                Op::Apply,
                "terraform_data.slow: Provisioning with 'local-exec'..."
            )
            .as_deref(),
            Some("apply: provisioning terraform_data.slow")
        );
        assert_eq!(
            message(Op::Init, "- Installing oracle/oci v8.28.0...").as_deref(),
            Some("init: installing oracle/oci v8.28.0")
        );
        assert_eq!(
            message(Op::Plan, "Plan: 1 to add, 0 to change, 0 to destroy.").as_deref(),
            Some("plan: Plan: 1 to add, 0 to change, 0 to destroy.")
        );
        assert_eq!(
            message(Op::Plan, "terraform_data.db: Plan to replace").as_deref(),
            Some("plan: will replace terraform_data.db")
        );
        assert_eq!(message(Op::Plan, "  + id = (known after apply)"), None);
        assert_eq!(message(Op::Plan, "Error: something: bad"), None);
    }
}
