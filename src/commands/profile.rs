use crate::cli::{GlobalArgs, ProfileAction, ProfileArgs};
use crate::profile;
use crate::ui::Ui;
use serde_json::json;

pub fn run(g: &GlobalArgs, args: &ProfileArgs, ui: &Ui) -> anyhow::Result<i32> {
    match args.action {
        ProfileAction::List => {
            let dirs = profile::search_dirs();
            let names = profile::available(&dirs);
            ui.result(
                &json!({"profiles": names, "searched": dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>()}),
                || names.join("\n"),
            );
            Ok(0)
        }
        ProfileAction::Show => {
            let p = super::load_profile(g, ui)?;
            let mut doc = serde_json::to_value(&p)?;
            doc["hash"] = json!(p.hash());
            if ui.verbose > 0 {
                doc["origins"] = json!(p
                    .origins
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_string()))
                    .collect::<std::collections::BTreeMap<_, _>>());
            }
            ui.result(&doc, || {
                let mut out = format!(
                    "profile {} (target {}) is valid\nfiles: {}\nhash: {}\n",
                    p.name,
                    serde_json::to_value(p.target)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default(),
                    p.files
                        .iter()
                        .map(|f| f.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" <- "),
                    p.hash()
                );
                // TOML of the resolved values: readable, and secrets are references only.
                if let Ok(t) =
                    toml::Value::try_from(doc_without_meta(&doc)).and_then(|v| toml::to_string(&v))
                {
                    out.push('\n');
                    out.push_str(&t);
                }
                if ui.verbose > 0 {
                    out.push_str("\n# where each value came from\n");
                    for (k, v) in &p.origins {
                        out.push_str(&format!("# {k}: {v}\n"));
                    }
                }
                out
            });
            Ok(0)
        }
    }
}

fn doc_without_meta(doc: &serde_json::Value) -> serde_json::Value {
    let mut d = doc.clone();
    if let Some(o) = d.as_object_mut() {
        for k in ["name", "files", "hash", "origins"] {
            o.remove(k);
        }
    }
    strip_nulls(&mut d);
    d
}

/// TOML has no null: drop unset optional values before printing.
fn strip_nulls(v: &mut serde_json::Value) {
    if let Some(o) = v.as_object_mut() {
        o.retain(|_, x| !x.is_null());
        o.values_mut().for_each(strip_nulls);
    }
}
