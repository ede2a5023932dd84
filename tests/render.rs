//! Terraform rendering: the provider-schema checker, the plain modules in `iac/modules`,
//! rendered root modules (goldens, determinism, security), and `terraform fmt` (real binary).

#[path = "support/schema_check.rs"]
mod schema_check;

use schema_check::{check_dir, check_text, Schema};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn schema() -> Schema {
    Schema::load(&root().join("tests/fixtures/render/oci-provider-schema.json"))
}

fn broken(name: &str) -> Vec<String> {
    let path = root().join("tests/fixtures/render/broken").join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    check_text(&schema(), name, &text)
        .into_iter()
        .map(|f| f.to_string())
        .collect()
}

/// Run `terraform fmt -check -recursive -diff` on `dir`; None when terraform is missing.
fn terraform_fmt_check(test: &str, dir: &Path) -> Option<(bool, String)> {
    let tf = calops::testkit::require_tool(test, "terraform")?;
    let out = Command::new(tf)
        .args(["fmt", "-check", "-recursive", "-diff"])
        .arg(dir)
        .output()
        .expect("run terraform fmt");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), text))
}

// ---------------------------------------------------------------------------------------------
// The checker proves itself on deliberately broken fixtures.

#[test]
fn checker_rejects_unknown_resource_type() {
    let f = broken("unknown_type.tf");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        f[0].contains("unknown resource type `oci_core_virtual_network_thing`"),
        "{f:#?}"
    );
}

#[test]
fn checker_rejects_unknown_attribute() {
    let f = broken("unknown_attribute.tf");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(f[0].contains("unknown attribute `cidr_blok`"), "{f:#?}");
}

#[test]
fn checker_rejects_missing_required_attribute() {
    let f = broken("missing_required.tf");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        f[0].contains("missing required attribute `vcn_id`"),
        "{f:#?}"
    );
}

#[test]
fn checker_rejects_too_many_blocks() {
    let f = broken("too_many_blocks.tf");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        f[0].contains("block `health_checker` appears 2 times, max_items is 1"),
        "{f:#?}"
    );
}

#[test]
fn checker_rejects_missing_required_block() {
    let f = broken("missing_block.tf");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        f[0].contains("block `services` appears 0 times, min_items is 1"),
        "{f:#?}"
    );
}

#[test]
fn checker_looks_inside_dynamic_content() {
    let f = broken("unknown_nested_in_dynamic.tf");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        f[0].contains("items.redirect_uri: unknown attribute `portt`"),
        "{f:#?}"
    );
}

#[test]
fn checker_rejects_computed_only_attribute() {
    let f = broken("computed_only.tf");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        f[0].contains("`primary_endpoint_ip_address` is computed-only"),
        "{f:#?}"
    );
}

#[test]
fn checker_accepts_a_valid_block() {
    let text = r#"
resource "oci_core_service_gateway" "x" {
  compartment_id = "c"
  vcn_id         = "v"
  services {
    service_id = "s"
  }
  lifecycle {
    create_before_destroy = true
  }
}
data "oci_objectstorage_namespace" "ns" {}
"#;
    let f = check_text(&schema(), "ok.tf", text);
    assert!(f.is_empty(), "{f:#?}");
}

#[test]
fn every_broken_fixture_fails_the_directory_check() {
    let dir = root().join("tests/fixtures/render/broken");
    let findings = check_dir(&schema(), &dir);
    let files: std::collections::BTreeSet<_> = findings.iter().map(|f| f.file.clone()).collect();
    let all: std::collections::BTreeSet<_> = schema_check::tf_files(&dir, true)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    assert_eq!(files, all, "every broken fixture must produce a finding");
}

#[test]
fn terraform_fmt_check_detects_misformatted_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.tf"),
        "resource \"a\" \"b\" {\nx=1\n    yy = 2\n}\n",
    )
    .unwrap();
    let Some((ok, out)) =
        terraform_fmt_check("terraform_fmt_check_detects_misformatted_files", dir.path())
    else {
        return;
    };
    assert!(
        !ok,
        "terraform fmt -check must fail on a misformatted file: {out}"
    );
    assert!(out.contains("bad.tf"), "{out}");
}

#[test]
fn checker_rejects_bad_module_calls() {
    let dir = root().join("tests/fixtures/render/broken");
    let text = std::fs::read_to_string(dir.join("bad_module_call.tf")).unwrap();
    let f: Vec<String> = schema_check::check_module_calls("bad_module_call.tf", &dir, &text)
        .iter()
        .map(|f| f.to_string())
        .collect();
    assert!(
        f.iter().any(|m| m.contains("has no variable `no_such`")),
        "{f:#?}"
    );
    assert!(
        f.iter()
            .any(|m| m.contains("required variable `compartment_id`")),
        "{f:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The plain modules.

const MODULES: &[&str] = &[
    "network",
    "database",
    "cache",
    "storage",
    "registry",
    "container",
    "loadbalancer",
    "monitoring",
];

#[test]
fn iac_modules_are_valid_against_the_provider_schema() {
    let files = schema_check::tf_files(&root().join("iac"), true);
    assert_eq!(files.len(), MODULES.len() * 4, "{files:#?}");
    let findings = check_dir(&schema(), &root().join("iac"));
    assert!(
        findings.is_empty(),
        "{:#?}",
        findings.iter().map(|f| f.to_string()).collect::<Vec<_>>()
    );
}

#[test]
fn iac_modules_have_variables_main_outputs_and_readme() {
    for m in MODULES {
        for f in [
            "variables.tf",
            "main.tf",
            "outputs.tf",
            "README.md",
            "versions.tf",
        ] {
            let p = root().join("iac/modules").join(m).join(f);
            assert!(p.is_file(), "missing {}", p.display());
        }
    }
}

#[test]
fn iac_is_terraform_fmt_clean() {
    let Some((ok, out)) = terraform_fmt_check("iac_is_terraform_fmt_clean", &root().join("iac"))
    else {
        return;
    };
    assert!(ok, "terraform fmt -check -recursive iac/ failed:\n{out}");
}

// ---------------------------------------------------------------------------------------------
// Rendered root modules.

use calops::profile::{Profile, Target};
use calops::render::{self, RenderInput, Rendered, Slot, SlotState, StateBackend};
use std::collections::BTreeMap;

const DIGEST_BLUE: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const DIGEST_GREEN: &str = "2222222222222222222222222222222222222222222222222222222222222222";

fn image(digest: &str) -> String {
    format!("ap-sydney-1.ocir.io/calopsns/calops/scheduler@sha256:{digest}")
}

fn load_profile(name: &str) -> Profile {
    calops::profile::load_with(name, &[root().join("profiles")], vec![])
        .unwrap_or_else(|e| panic!("profile {name}: {e}"))
        .profile
}

/// Every shipped profile that targets OCI (base is abstract: it has no [oci] section).
fn oci_profiles() -> Vec<String> {
    let names = calops::profile::available(&[root().join("profiles")]);
    let oci: Vec<String> = names
        .into_iter()
        .filter(|n| {
            calops::profile::load_with(n, &[root().join("profiles")], vec![])
                .map(|l| l.profile.target == Target::Oci)
                .unwrap_or(false)
        })
        .collect();
    assert!(oci.contains(&"prod-au".to_string()), "{oci:?}");
    oci
}

/// The slots used for goldens: blue active, green draining (a release in progress).
fn showcase_slots() -> BTreeMap<String, Slot> {
    BTreeMap::from([
        ("blue".to_string(), Slot::active(&image(DIGEST_BLUE))),
        (
            "green".to_string(),
            Slot {
                image: Some(image(DIGEST_GREEN)),
                state: SlotState::Draining,
            },
        ),
    ])
}

fn input_for(name: &str, slots: BTreeMap<String, Slot>) -> RenderInput {
    RenderInput::from_profile(&load_profile(name), slots, Some("1.11.4".into())).unwrap()
}

fn write_rendered(r: &Rendered) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    render::write::write_to(r, dir.path()).unwrap();
    dir
}

fn findings(dir: &Path) -> Vec<String> {
    check_dir(&schema(), dir)
        .iter()
        .map(|f| f.to_string())
        .collect()
}

/// All combinations of slot states (including no slots at all).
fn slot_combinations() -> Vec<BTreeMap<String, Slot>> {
    let states = [SlotState::Active, SlotState::Draining, SlotState::Absent];
    let mut out = vec![BTreeMap::new()];
    for b in states {
        for g in states {
            out.push(BTreeMap::from([
                (
                    "blue".to_string(),
                    Slot {
                        image: Some(image(DIGEST_BLUE)),
                        state: b,
                    },
                ),
                (
                    "green".to_string(),
                    Slot {
                        image: Some(image(DIGEST_GREEN)),
                        state: g,
                    },
                ),
            ]));
        }
    }
    out
}

#[test]
fn rendered_profiles_are_valid_and_fmt_clean() {
    for name in oci_profiles() {
        for backend in [StateBackend::Oci, StateBackend::Local] {
            for tf in ["1.11.4", "1.12.1"] {
                let mut input = input_for(&name, showcase_slots());
                input.state.backend = backend;
                input.terraform_version = Some(tf.into());
                let r = render::render(&input).unwrap();
                let dir = write_rendered(&r);
                let f = findings(dir.path());
                assert!(f.is_empty(), "{name} {backend:?} {tf}: {f:#?}");
                if let Some((ok, out)) =
                    terraform_fmt_check("rendered_profiles_are_valid_and_fmt_clean", dir.path())
                {
                    assert!(
                        ok,
                        "{name} {backend:?} {tf}: terraform fmt -check failed:\n{out}"
                    );
                }
            }
        }
    }
}

#[test]
fn every_slot_combination_renders_valid_terraform() {
    let mut hashes = std::collections::BTreeSet::new();
    for slots in slot_combinations() {
        let r = render::render(&input_for("prod-au", slots.clone())).unwrap();
        let dir = write_rendered(&r);
        let f = findings(dir.path());
        assert!(f.is_empty(), "{slots:?}: {f:#?}");
        let tfvars: serde_json::Value =
            serde_json::from_str(&r.files["terraform.tfvars.json"]).unwrap();
        for name in ["blue", "green"] {
            let want = slots
                .get(name)
                .map(|s| s.state)
                .unwrap_or(SlotState::Absent);
            assert_eq!(tfvars["slots"][name]["state"], want.as_str(), "{slots:?}");
        }
        hashes.insert(r.content_hash());
    }
    // Every distinct slot set gives a distinct root module.
    assert_eq!(hashes.len(), slot_combinations().len());
}

#[test]
fn tfvars_match_the_root_variables() {
    let r = render::render(&input_for("prod-au", showcase_slots())).unwrap();
    let dir = write_rendered(&r);
    let vars = schema_check::module_variables(dir.path());
    let tfvars: serde_json::Value =
        serde_json::from_str(&r.files["terraform.tfvars.json"]).unwrap();
    let given: Vec<&String> = tfvars.as_object().unwrap().keys().collect();
    for k in &given {
        assert!(vars.contains_key(*k), "tfvars sets undeclared variable {k}");
    }
    for (v, has_default) in &vars {
        assert!(
            *has_default || given.contains(&v),
            "required root variable {v} missing from tfvars"
        );
    }
}
