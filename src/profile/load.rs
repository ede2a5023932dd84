//! Finding profile files, following `extends`, and applying environment overrides.

use super::model::{self, Profile, SECTIONS};
use super::node::{self, Node, Origin, Table, Value};
use super::reader::{Diagnostic, ProfileError, Section, Sink};
use super::types::did_you_mean;
use std::path::{Path, PathBuf};

/// Where `--profile NAME` is looked up, in order.
pub fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("profiles")];
    if let Some(d) = std::env::var_os("CALOPS_PROFILE_DIR") {
        dirs.push(PathBuf::from(d));
    }
    dirs
}

/// Every profile name found in the search directories, sorted.
pub fn available(dirs: &[PathBuf]) -> Vec<String> {
    let mut names: Vec<String> = dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let p = e.path();
            (p.extension().and_then(|x| x.to_str()) == Some("toml"))
                .then(|| p.file_stem().and_then(|s| s.to_str()).map(String::from))
                .flatten()
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

fn looks_like_path(s: &str) -> bool {
    s.contains('/') || s.ends_with(".toml")
}

/// Resolve a profile name or path to a file.
pub fn find(spec: &str, dirs: &[PathBuf]) -> Result<PathBuf, ProfileError> {
    if looks_like_path(spec) {
        let p = PathBuf::from(spec);
        if p.is_file() {
            return Ok(p);
        }
        return Err(single(
            spec,
            Origin::CommandLine,
            format!("profile file `{spec}` does not exist"),
            Some("check the path, or give a profile name from ./profiles".into()),
        ));
    }
    for d in dirs {
        let p = d.join(format!("{spec}.toml"));
        if p.is_file() {
            return Ok(p);
        }
    }
    let names = available(dirs);
    let refs: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    let searched = dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut help = if names.is_empty() {
        format!("no profiles found in {searched}; set CALOPS_PROFILE_DIR or pass a path")
    } else {
        format!("available profiles: {}", names.join(", "))
    };
    if let Some(best) = did_you_mean(spec, &refs) {
        help = format!("did you mean `{best}`? {help}");
    }
    Err(single(
        spec,
        Origin::CommandLine,
        format!("no profile named `{spec}` (searched {searched})"),
        Some(help),
    ))
}

fn single(profile: &str, origin: Origin, problem: String, help: Option<String>) -> ProfileError {
    ProfileError {
        profile: profile.to_string(),
        diagnostics: vec![Diagnostic {
            origin,
            path: String::new(),
            problem,
            help,
        }],
    }
}

/// Read one file and the chain it extends; returns the merged table and the files, outermost
/// (the one asked for) first.
fn load_chain(
    file: &Path,
    name: &str,
    dirs: &[PathBuf],
) -> Result<(Table, Vec<PathBuf>), ProfileError> {
    let mut chain: Vec<(PathBuf, Table)> = Vec::new();
    let mut current = file.to_path_buf();
    loop {
        let canon = current.canonicalize().unwrap_or_else(|_| current.clone());
        if chain
            .iter()
            .any(|(p, _)| p.canonicalize().unwrap_or_else(|_| p.clone()) == canon)
        {
            let cycle = chain
                .iter()
                .map(|(p, _)| p.display().to_string())
                .chain(std::iter::once(current.display().to_string()))
                .collect::<Vec<_>>()
                .join(" -> ");
            let origin = chain
                .last()
                .and_then(|(_, t)| t.get("extends"))
                .map(|n| n.origin.clone())
                .unwrap_or(Origin::Default);
            return Err(single(
                name,
                origin,
                format!("`extends` forms a cycle: {cycle}"),
                Some("remove one of the `extends` lines".into()),
            ));
        }
        let text = std::fs::read_to_string(&current).map_err(|e| {
            single(
                name,
                Origin::File {
                    path: current.clone(),
                    line: 1,
                    col: 1,
                },
                format!("cannot read profile file: {e}"),
                None,
            )
        })?;
        let table = node::parse(&text, &current).map_err(|e| {
            single(
                name,
                e.origin,
                format!("malformed TOML: {}", e.message),
                Some("fix the syntax at this position".into()),
            )
        })?;
        let parent = match table.get("extends") {
            None => None,
            Some(Node {
                value: Value::Str(s),
                origin,
            }) => Some((s.clone(), origin.clone())),
            Some(Node { value, origin }) => {
                return Err(single(
                    name,
                    origin.clone(),
                    format!(
                        "extends: expected a string (a profile name), found {}",
                        value.type_name()
                    ),
                    None,
                ))
            }
        };
        chain.push((current.clone(), table));
        let Some((parent, origin)) = parent else {
            break;
        };
        // Look next to the extending file first, then in the search path.
        let mut local_dirs = vec![current.parent().map(Path::to_path_buf).unwrap_or_default()];
        local_dirs.extend(dirs.iter().cloned());
        current = match find(&parent, &local_dirs) {
            Ok(p) => p,
            Err(mut e) => {
                for d in &mut e.diagnostics {
                    d.origin = origin.clone();
                    d.path = "extends".into();
                    d.problem = format!("`extends = \"{parent}\"`: {}", d.problem);
                }
                e.profile = name.to_string();
                return Err(e);
            }
        };
    }
    let files: Vec<PathBuf> = chain.iter().map(|(p, _)| p.clone()).collect();
    let mut merged = Table::default();
    for (_, t) in chain.into_iter().rev() {
        merged.merge(t);
    }
    Ok((merged, files))
}

/// An environment override `CALOPS_<SECTION>_<KEY>=value`.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvOverride {
    pub var: String,
    pub section: Option<String>,
    pub key: String,
    pub value: String,
}

/// Pick the overrides out of an environment. Only `CALOPS_TARGET` and variables naming a known
/// section count; other `CALOPS_*` variables (e.g. `CALOPS_PROFILE_DIR`) are not overrides.
pub fn env_overrides(vars: impl IntoIterator<Item = (String, String)>) -> Vec<EnvOverride> {
    let mut sections: Vec<&str> = SECTIONS.to_vec();
    sections.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = Vec::new();
    for (var, value) in vars {
        let Some(rest) = var.strip_prefix("CALOPS_") else {
            continue;
        };
        let lower = rest.to_ascii_lowercase();
        if lower == "target" {
            out.push(EnvOverride {
                var: var.clone(),
                section: None,
                key: "target".into(),
                value,
            });
            continue;
        }
        for s in &sections {
            if let Some(key) = lower.strip_prefix(&format!("{s}_")) {
                if !key.is_empty() {
                    out.push(EnvOverride {
                        var: var.clone(),
                        section: Some(s.to_string()),
                        key: key.to_string(),
                        value: value.clone(),
                    });
                }
                break;
            }
        }
    }
    out.sort_by(|a, b| a.var.cmp(&b.var));
    out
}

fn apply_overrides(root: &mut Table, overrides: &[EnvOverride]) {
    for o in overrides {
        let node = Node {
            value: Value::EnvText(o.value.clone()),
            origin: Origin::Env { var: o.var.clone() },
        };
        match &o.section {
            None => {
                root.entries.insert(o.key.clone(), node);
            }
            Some(s) => {
                let entry = root.entries.entry(s.clone()).or_insert_with(|| Node {
                    value: Value::Table(Table::default()),
                    origin: Origin::Env { var: o.var.clone() },
                });
                if let Value::Table(t) = &mut entry.value {
                    t.entries.insert(o.key.clone(), node);
                }
            }
        }
    }
}

/// The result of loading: the profile and the overrides that were applied.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub profile: Profile,
    pub overrides: Vec<EnvOverride>,
}

/// Load a profile by name or path, with `extends` and the given environment overrides.
pub fn load_with(
    spec: &str,
    dirs: &[PathBuf],
    overrides: Vec<EnvOverride>,
) -> Result<Loaded, ProfileError> {
    let file = find(spec, dirs)?;
    let name = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(spec)
        .to_string();
    let (mut merged, files) = load_chain(&file, &name, dirs)?;
    apply_overrides(&mut merged, &overrides);
    let sink = Sink::default();
    let root = Section::new(
        "",
        merged,
        Origin::File {
            path: file.clone(),
            line: 1,
            col: 1,
        },
        &sink,
    );
    let profile = model::read(&root, &name, files);
    root.finish();
    let diagnostics = sink.diagnostics.into_inner();
    match profile {
        Some(mut p) if diagnostics.is_empty() => {
            p.origins = sink.origins.into_inner();
            Ok(Loaded {
                profile: p,
                overrides,
            })
        }
        _ => Err(ProfileError {
            profile: name,
            diagnostics: if diagnostics.is_empty() {
                vec![Diagnostic {
                    origin: Origin::File {
                        path: file,
                        line: 1,
                        col: 1,
                    },
                    path: String::new(),
                    problem: "the profile could not be read".into(),
                    help: None,
                }]
            } else {
                diagnostics
            },
        }),
    }
}

/// Load a profile the way the CLI does: search dirs and overrides from the process environment.
pub fn load(spec: &str) -> Result<Loaded, ProfileError> {
    load_with(spec, &search_dirs(), env_overrides(std::env::vars()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_section_variables_are_overrides() {
        let vars = [
            ("CALOPS_DATABASE_OCPUS", "4"),
            ("CALOPS_LOAD_BALANCER_MAX_BANDWIDTH_MBPS", "100"),
            ("CALOPS_TARGET", "local"),
            // Other calops settings share the prefix but name no section.
            ("CALOPS_PROFILE", "prod-au"),
            ("CALOPS_PROFILE_DIR", "/x"),
            ("CALOPS_TERRAFORM", "/usr/bin/terraform"),
            ("CALOPS_ENDPOINT_OBJECTSTORAGE", "http://127.0.0.1:1"),
            ("CALOPS_SIGNING_VECTORS", "/x.json"),
            ("CALOPS_BUILD_TARGET", "x86_64-unknown-linux-gnu"),
            ("CALOPS_LISTEN", "0.0.0.0:3000"),
            ("CALOPS_DB_POOL_SIZE", "8"),
            ("PATH", "/bin"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let o = env_overrides(vars);
        let names: Vec<(Option<&str>, &str)> = o
            .iter()
            .map(|o| (o.section.as_deref(), o.key.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                (Some("database"), "ocpus"),
                (Some("load_balancer"), "max_bandwidth_mbps"),
                (None, "target")
            ]
        );
    }
}
