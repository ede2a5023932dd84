//! Terraform rendering: the provider-schema checker, the plain modules in `iac/modules`,
//! rendered root modules (goldens, determinism, security), and `terraform fmt` (real binary).

use crate::support::schema_check::{self, check_dir, check_text, Schema};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn schema() -> Schema {
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
pub(crate) fn terraform_fmt_check(test: &str, dir: &Path) -> Option<(bool, String)> {
    let tf = calops_testkit::require_tool(test, "terraform")?;
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
    "access",
    "email",
    "slots",
    "vm",
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
            Slot::active(&image(DIGEST_GREEN)).with_state(SlotState::Draining),
        ),
    ])
}

/// The tenancy every rendered test stack belongs to (calops takes it from the OCI config).
const TENANCY: &str =
    "ocid1.tenancy.oc1..aaaaaaaaexampletenancy00000000000000000000000000000000000";

fn input_for(name: &str, slots: BTreeMap<String, Slot>) -> RenderInput {
    let mut input =
        RenderInput::from_profile(&load_profile(name), slots, Some("1.11.4".into())).unwrap();
    // What `calops plan`/`deploy` resolve before rendering: the tenancy and its home region
    // (here one other than the stack's, so that the home-region provider is visible).
    input.oci.tenancy_id = Some(TENANCY.into());
    input.oci.home_region = Some("us-ashburn-1".into());
    input
}

fn write_rendered(r: &Rendered) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    render::write::write_to(r, dir.path()).unwrap();
    dir
}

pub(crate) fn findings(dir: &Path) -> Vec<String> {
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
                    Slot::active(&image(DIGEST_BLUE)).with_state(b),
                ),
                (
                    "green".to_string(),
                    Slot::active(&image(DIGEST_GREEN)).with_state(g),
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

// ---------------------------------------------------------------------------------------------
// Security properties of what is rendered, checked on the parsed HCL.

/// Every `resource` block in the rendered directory: (file, type, name, body).
pub(crate) fn resources(dir: &Path) -> Vec<(String, String, String, hcl::Body)> {
    let mut out = Vec::new();
    for f in schema_check::tf_files(dir, true) {
        let body = hcl::parse(&std::fs::read_to_string(&f).unwrap()).unwrap();
        for b in body.blocks().filter(|b| b.identifier() == "resource") {
            out.push((
                f.strip_prefix(dir).unwrap().display().to_string(),
                b.labels()[0].as_str().to_string(),
                b.labels()[1].as_str().to_string(),
                b.body().clone(),
            ));
        }
    }
    out
}

/// The body of `module "<name>"` in a parsed root module.
pub(crate) fn module_block(main: &hcl::Body, name: &str) -> hcl::Body {
    main.blocks()
        .find(|b| b.identifier() == "module" && b.labels()[0].as_str() == name)
        .unwrap_or_else(|| panic!("no module {name}"))
        .body()
        .clone()
}

/// An attribute's expression as HCL text.
pub(crate) fn attr(body: &hcl::Body, key: &str) -> Option<String> {
    body.attributes()
        .find(|a| a.key() == key)
        .map(|a| hcl::format::to_string(a.expr()).unwrap())
}

fn blocks<'a>(body: &'a hcl::Body, id: &'a str) -> impl Iterator<Item = &'a hcl::Body> + 'a {
    body.blocks()
        .filter(move |b| b.identifier() == id)
        .map(|b| b.body())
}

fn is_world(cidr: &str) -> bool {
    let c = cidr.trim_matches('"');
    c.ends_with("/0")
}

fn port_range(rule: &hcl::Body) -> Option<(String, String)> {
    let tcp = blocks(rule, "tcp_options").next()?;
    let r = blocks(tcp, "destination_port_range").next()?;
    Some((attr(r, "min")?, attr(r, "max")?))
}

/// The test's environment without CALOPS_* variables: calops reads CALOPS_<SECTION>_<KEY> as
/// profile overrides, and cargo or other test setups export unrelated CALOPS_* names
/// (e.g. CALOPS_SIGNING_VECTORS).
fn clean_env() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| !k.starts_with("CALOPS_"))
        .collect()
}

fn rendered_showcase() -> tempfile::TempDir {
    write_rendered(&render::render(&input_for("prod-au", showcase_slots())).unwrap())
}

#[test]
fn security_only_the_lb_accepts_internet_ingress_and_only_on_80_and_443() {
    let dir = rendered_showcase();
    let mut world_ports = Vec::new();
    let mut ingress_rules = 0;
    for (file, ty, name, body) in resources(dir.path()) {
        if ty == "oci_core_network_security_group_security_rule" {
            if attr(&body, "direction").as_deref() != Some("\"INGRESS\"") {
                continue;
            }
            ingress_rules += 1;
            let source = attr(&body, "source").unwrap_or_default();
            let nsg = attr(&body, "network_security_group_id").unwrap();
            if is_world(&source) {
                assert_eq!(
                    nsg, "oci_core_network_security_group.lb.id",
                    "{file} {name}"
                );
                let (min, max) = port_range(&body).expect("world ingress must be port-limited");
                assert_eq!(min, max, "{file} {name}: a single port");
                world_ports.push(min);
            } else {
                // Every other ingress comes from another NSG, never from a CIDR.
                assert_eq!(
                    attr(&body, "source_type").as_deref(),
                    Some("\"NETWORK_SECURITY_GROUP\""),
                    "{file} {name}"
                );
            }
        }
        if ty == "oci_core_security_list" {
            assert_eq!(
                blocks(&body, "ingress_security_rules").count(),
                0,
                "{file} {name}"
            );
            assert_eq!(blocks(&body, "dynamic").count(), 0, "{file} {name}");
        }
        if ty == "oci_core_subnet" {
            // No subnet falls back to the VCN's default security list (SSH from anywhere).
            assert!(attr(&body, "security_list_ids").is_some(), "{file} {name}");
        }
    }
    world_ports.sort();
    assert_eq!(world_ports, ["443", "80"]);
    assert_eq!(
        ingress_rules, 5,
        "lb 80, lb 443, app from lb, db from app, cache from app"
    );
    // Database and cache accept only their port, only from the app NSG.
    let res = resources(dir.path());
    for (rule, port) in [("db_ingress_app", "5432"), ("cache_ingress_app", "6379")] {
        let body = &res.iter().find(|r| r.2 == rule).unwrap().3;
        assert_eq!(
            attr(body, "source").unwrap(),
            "oci_core_network_security_group.app.id"
        );
        assert_eq!(
            port_range(body).unwrap(),
            (port.to_string(), port.to_string())
        );
    }
}

#[test]
fn security_database_cache_and_app_live_in_the_private_subnet_without_public_ips() {
    let dir = rendered_showcase();
    let main = hcl::parse(&std::fs::read_to_string(dir.path().join("main.tf")).unwrap()).unwrap();
    let module = |name: &str| module_block(&main, name);
    for m in ["database", "cache", "container"] {
        assert_eq!(
            attr(&module(m), "subnet_id").unwrap(),
            "module.network.private_subnet_id",
            "{m}"
        );
    }
    assert_eq!(
        attr(&module("loadbalancer"), "subnet_id").unwrap(),
        "module.network.public_subnet_id"
    );
    let res = resources(dir.path());
    let get = |ty: &str, name: &str| {
        res.iter()
            .find(|r| r.1 == ty && r.2 == name)
            .unwrap()
            .3
            .clone()
    };
    let private = get("oci_core_subnet", "private");
    assert_eq!(
        attr(&private, "prohibit_public_ip_on_vnic").unwrap(),
        "true"
    );
    assert_eq!(attr(&private, "prohibit_internet_ingress").unwrap(), "true");
    let ci = get("oci_container_instances_container_instance", "this");
    let vnic = blocks(&ci, "vnics").next().unwrap();
    assert_eq!(attr(vnic, "is_public_ip_assigned").unwrap(), "false");
    let db = get("oci_psql_db_system", "this");
    assert_eq!(
        attr(blocks(&db, "network_details").next().unwrap(), "subnet_id").unwrap(),
        "var.subnet_id"
    );
    let cache = get("oci_redis_redis_cluster", "this");
    assert_eq!(attr(&cache, "subnet_id").unwrap(), "var.subnet_id");
    // Neither module can be given a public subnet by accident: they have no such input.
    for m in ["database", "cache"] {
        let vars = schema_check::module_variables(&dir.path().join("modules").join(m));
        assert!(!vars.keys().any(|k| k.contains("public")), "{m}: {vars:?}");
    }
    let lb = get("oci_load_balancer_load_balancer", "this");
    assert_eq!(attr(&lb, "is_private").unwrap(), "false");
}

#[test]
fn security_bucket_and_registry_are_private_and_stateful_resources_are_protected() {
    let dir = rendered_showcase();
    let res = resources(dir.path());
    let get = |ty: &str| res.iter().find(|r| r.1 == ty).unwrap().3.clone();
    let bucket = get("oci_objectstorage_bucket");
    assert_eq!(attr(&bucket, "access_type").unwrap(), "\"NoPublicAccess\"");
    let repo = get("oci_artifacts_container_repository");
    assert_eq!(attr(&repo, "is_public").unwrap(), "false");
    for ty in ["oci_objectstorage_bucket", "oci_psql_db_system"] {
        let body = get(ty);
        let lc = blocks(&body, "lifecycle")
            .next()
            .unwrap_or_else(|| panic!("{ty} has no lifecycle"));
        assert_eq!(attr(lc, "prevent_destroy").unwrap(), "true", "{ty}");
    }
    let db = get("oci_psql_db_system");
    let cred = blocks(&db, "credentials").next().unwrap();
    let pw = blocks(cred, "password_details").next().unwrap();
    assert_eq!(attr(pw, "password_type").unwrap(), "\"VAULT_SECRET\"");
    assert!(attr(pw, "password").is_none(), "no password value");
    // ICS copies expire.
    let lcp = get("oci_objectstorage_object_lifecycle_policy");
    let rule = blocks(&lcp, "rules").next().unwrap();
    let filter = blocks(rule, "object_name_filter").next().unwrap();
    let prefixes: String = attr(filter, "inclusion_prefixes")
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(prefixes, "[\"ics/\"]");
    assert_eq!(attr(rule, "time_amount").unwrap(), "var.ics_retention_days");
}

/// Recursively collect (path, literal) for attributes whose name mentions a secret.
fn secret_literals(body: &hcl::Body, at: &str, out: &mut Vec<String>) {
    for a in body.attributes() {
        let k = a.key().to_ascii_lowercase();
        let secretish = ["password", "secret", "token", "private_key"]
            .iter()
            .any(|w| k.contains(w))
            && !k.ends_with("_id")
            && !k.ends_with("_type")
            && !k.ends_with("_version");
        if secretish
            && matches!(
                a.expr(),
                hcl::Expression::String(_) | hcl::Expression::TemplateExpr(_)
            )
        {
            out.push(format!("{at}.{}", a.key()));
        }
    }
    for b in body.blocks() {
        secret_literals(b.body(), &format!("{at}.{}", b.identifier()), out);
    }
}

#[test]
fn security_no_secret_value_in_any_rendered_file() {
    // Secret *values* in the environment, under the names the references point at and under
    // the names calops reads profile overrides from: rendering must never pick them up.
    let sentinel = "S3NTINEL-do-not-render-0a9f7c";
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tf");
    let assert = assert_cmd::Command::cargo_bin("calops")
        .unwrap()
        .current_dir(root())
        .env_clear()
        .envs(clean_env())
        .env("CALOPS_ADMIN_TOKEN", sentinel)
        .env("CALOPS_DB_PASSWORD", sentinel)
        .env("DATABASE_PASSWORD", sentinel)
        .env("TF_VAR_db_admin_password", sentinel)
        .args(["render", "--profile", "prod-au", "--json", "--out"])
        .arg(&out)
        .arg("--image")
        .arg(image(DIGEST_BLUE))
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).to_string();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).to_string();
    assert!(!stdout.contains(sentinel) && !stderr.contains(sentinel));
    let mut scanned = 0;
    let mut stack = vec![out.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            scanned += 1;
            assert!(
                !text.contains(sentinel),
                "{} contains a secret value",
                p.display()
            );
            // References reach the container as `<NAME>_REF = "vault:<secret OCID>"` in a slot's
            // environment, and appear nowhere else.
            let mut references = Vec::new();
            if p.file_name().is_some_and(|n| n == "terraform.tfvars.json") {
                json_strings(&serde_json::from_str(&text).unwrap(), "", &mut references);
            } else if text.contains("vault:") && p.extension().is_none_or(|x| x != "md") {
                references.push((p.display().to_string(), "vault:".to_string()));
            }
            for (at, value) in references.iter().filter(|(_, v)| v.contains("vault:")) {
                let in_env = at.starts_with("/slots/")
                    && at.contains("/environment/")
                    && at.ends_with("_REF");
                assert!(
                    in_env && value.starts_with("vault:ocid1.vaultsecret."),
                    "{}: reference syntax outside a container reference variable at {at}",
                    p.display()
                );
            }
            assert!(!text.contains("-----BEGIN"), "{}", p.display());
            if p.extension().is_some_and(|x| x == "tf") {
                let mut lits = Vec::new();
                secret_literals(
                    &hcl::parse(&text).unwrap(),
                    &p.display().to_string(),
                    &mut lits,
                );
                assert!(
                    lits.is_empty(),
                    "literal values in secret attributes: {lits:?}"
                );
            }
        }
    }
    assert!(scanned > 40, "scanned {scanned} files");
    // The references are there: the container gets <NAME>_REF = vault:<secret OCID>.
    let tfvars: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("terraform.tfvars.json")).unwrap())
            .unwrap();
    for var in ["CALOPS_ADMIN_TOKEN_REF", "CALOPS_DATABASE_PASSWORD_REF"] {
        assert!(
            tfvars["slots"]["blue"]["environment"][var]
                .as_str()
                .unwrap()
                .starts_with("vault:ocid1.vaultsecret."),
            "{var}"
        );
    }
    assert_eq!(tfvars["service_secret_ids"].as_array().unwrap().len(), 2);
    assert!(tfvars["db_admin_password_secret_id"]
        .as_str()
        .unwrap()
        .starts_with("ocid1.vaultsecret."));
}

/// Every string in `v` with its JSON pointer.
fn json_strings(v: &serde_json::Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::String(s) => out.push((at.to_string(), s.clone())),
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                json_strings(x, &format!("{at}/{i}"), out);
            }
        }
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                json_strings(x, &format!("{at}/{k}"), out);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Lookups and the state backend.

fn data_blocks(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for f in schema_check::tf_files(dir, true) {
        let body = hcl::parse(&std::fs::read_to_string(&f).unwrap()).unwrap();
        for b in body.blocks().filter(|b| b.identifier() == "data") {
            out.push(format!("{}: {}", f.display(), b.labels()[0].as_str()));
        }
    }
    out
}

fn backend_of(r: &Rendered) -> (String, hcl::Body) {
    let body = hcl::parse(&r.files["versions.tf"]).unwrap();
    let tf = body
        .blocks()
        .find(|b| b.identifier() == "terraform")
        .unwrap();
    let be = tf
        .body()
        .blocks()
        .find(|b| b.identifier() == "backend")
        .unwrap();
    (be.labels()[0].as_str().to_string(), be.body().clone())
}

/// A data source's type and how pinning its value changes the input.
type Pin = (&'static str, fn(&mut RenderInput));

#[test]
fn lookups_use_data_sources_unless_pinned() {
    let r = render::render(&input_for("prod-au", showcase_slots())).unwrap();
    let dir = write_rendered(&r);
    let d = data_blocks(dir.path());
    assert_eq!(d.len(), 4, "{d:#?}");
    for ty in [
        "oci_identity_availability_domains",
        "oci_objectstorage_namespace",
        "oci_core_services",
        // Not a lookup: what the database gives its clients (endpoint, port, CA), read once the
        // database exists.
        "oci_psql_db_system_connection_detail",
    ] {
        assert!(d.iter().any(|x| x.ends_with(ty)), "{ty} missing: {d:#?}");
    }
    // Pin one at a time: exactly that data source disappears.
    let pins: [Pin; 3] = [
        ("oci_identity_availability_domains", |i| {
            i.oci.availability_domains = vec!["Uocm:AP-SYDNEY-1-AD-1".into()]
        }),
        ("oci_objectstorage_namespace", |i| {
            i.oci.object_storage_namespace = Some("calopsns".into())
        }),
        ("oci_core_services", |i| {
            i.oci.services_gateway_service_id = Some("ocid1.service.oc1.ap-sydney-1.aaaa".into())
        }),
    ];
    for (ty, pin) in pins {
        let mut input = input_for("prod-au", showcase_slots());
        pin(&mut input);
        let r = render::render(&input).unwrap();
        let dir = write_rendered(&r);
        let d = data_blocks(dir.path());
        assert_eq!(d.len(), 3, "{ty}: {d:#?}");
        assert!(!d.iter().any(|x| x.ends_with(ty)), "{ty} still looked up");
        assert!(findings(dir.path()).is_empty());
    }
}

/// With everything pinned and local state, the configuration has no lookup, no remote state
/// and no remote backend: `terraform plan` on an empty state makes no OCI API call (resources
/// to create are planned from configuration alone; refresh has nothing to read). The one data
/// source left, the database's connection details, takes the id of a database that does not
/// exist yet, so Terraform reads it during apply, not plan.
#[test]
fn fully_pinned_local_state_needs_no_oci_api_call_to_plan() {
    let mut input = input_for("prod-au", showcase_slots());
    input.oci.availability_domains = vec!["Uocm:AP-SYDNEY-1-AD-1".into()];
    input.oci.object_storage_namespace = Some("calopsns".into());
    input.oci.services_gateway_service_id = Some("ocid1.service.oc1.ap-sydney-1.aaaa".into());
    input.state.backend = StateBackend::Local;
    let r = render::render(&input).unwrap();
    let dir = write_rendered(&r);
    let d = data_blocks(dir.path());
    assert_eq!(d.len(), 1, "{d:#?}");
    assert!(d[0].ends_with("modules/database/main.tf: oci_psql_db_system_connection_detail"));
    let database = std::fs::read_to_string(dir.path().join("modules/database/main.tf")).unwrap();
    assert!(database.contains("db_system_id = oci_psql_db_system.this.id"));
    let (kind, body) = backend_of(&r);
    assert_eq!(kind, "local");
    assert_eq!(attr(&body, "path").unwrap(), "\"terraform.tfstate\"");
    assert!(r.backend_init_config.is_empty());
    for (name, text) in &r.files {
        assert!(!text.contains("terraform_remote_state"), "{name}");
        if !name.starts_with("modules/database/") {
            assert!(!text.contains("data."), "{name} reads a data source");
        }
    }
    let tfvars: serde_json::Value =
        serde_json::from_str(&r.files["terraform.tfvars.json"]).unwrap();
    assert_eq!(tfvars["availability_domains"][0], "Uocm:AP-SYDNEY-1-AD-1");
    assert_eq!(tfvars["object_storage_namespace"], "calopsns");
}

#[test]
fn backend_is_native_oci_from_terraform_1_12_and_s3_compatible_before() {
    let mut input = input_for("prod-au", showcase_slots());
    input.oci.object_storage_namespace = Some("calopsns".into());
    input.terraform_version = Some("1.12.0".into());
    let r = render::render(&input).unwrap();
    let (kind, body) = backend_of(&r);
    assert_eq!(kind, "oci");
    assert_eq!(r.backend, render::BackendKind::OciNative);
    assert_eq!(attr(&body, "namespace").unwrap(), "\"calopsns\"");
    assert_eq!(attr(&body, "key").unwrap(), "\"prod-au/terraform.tfstate\"");
    assert_eq!(attr(&body, "config_file_profile").unwrap(), "\"DEFAULT\"");
    assert!(
        !r.warnings.iter().any(|w| w.contains("locking")),
        "{:?}",
        r.warnings
    );
    assert!(r.files["versions.tf"].contains("required_version = \">= 1.12.0\""));

    for old in [Some("1.11.4".to_string()), None] {
        input.terraform_version = old.clone();
        let r = render::render(&input).unwrap();
        let (kind, body) = backend_of(&r);
        assert_eq!(kind, "s3", "{old:?}");
        assert_eq!(r.backend, render::BackendKind::S3Compatible);
        assert!(
            r.warnings.iter().any(|w| w.contains("NO state locking")),
            "{:?}",
            r.warnings
        );
        assert!(r.files["versions.tf"].contains("NO state locking"));
        let endpoints = attr(&body, "endpoints").unwrap();
        assert!(
            endpoints.contains("https://calopsns.compat.objectstorage.ap-sydney-1.oraclecloud.com"),
            "{endpoints}"
        );
        assert_eq!(attr(&body, "use_path_style").unwrap(), "true");
        assert!(r.files["versions.tf"].contains("required_version = \">= 1.6.0\""));
    }

    // Without a pinned namespace the backend needs it at init time, and says so.
    input.oci.object_storage_namespace = None;
    input.terraform_version = Some("1.12.0".into());
    let r = render::render(&input).unwrap();
    assert_eq!(r.backend_init_config, ["namespace"]);
    assert!(attr(&backend_of(&r).1, "namespace").is_none());
    let file = render::backend_init_file(&r, "calopsns", "ap-sydney-1").unwrap();
    assert_eq!(file, "namespace = \"calopsns\"\n");
    input.terraform_version = Some("1.11.4".into());
    let r = render::render(&input).unwrap();
    assert_eq!(r.backend_init_config, ["endpoints"]);
    let file = render::backend_init_file(&r, "calopsns", "ap-sydney-1").unwrap();
    let parsed = hcl::parse(&file).unwrap();
    let endpoints = attr(&parsed, "endpoints").unwrap();
    assert!(
        endpoints.contains("https://calopsns.compat.objectstorage.ap-sydney-1.oraclecloud.com"),
        "{endpoints}"
    );
    // Pinned namespace or local state: nothing to add.
    input.state.backend = StateBackend::Local;
    assert!(render::backend_init_file(&render::render(&input).unwrap(), "x", "y").is_none());
}

// ---------------------------------------------------------------------------------------------
// Slots drive instances and backends.

#[test]
fn slots_drive_instances_and_backends() {
    let r = render::render(&input_for("prod-au", showcase_slots())).unwrap();
    let main = hcl::parse(&r.files["main.tf"]).unwrap();
    let module = |name: &str| module_block(&main, name);
    assert_eq!(attr(&module("slots"), "slots").unwrap(), "var.slots");
    let container = module("container");
    assert_eq!(
        attr(&container, "for_each").unwrap(),
        "module.slots.instances"
    );
    for (k, v) in [
        ("environment", "each.value.environment"),
        ("fault_domain", "each.value.fault_domain"),
        ("availability_domain", "each.value.availability_domain"),
        ("shape", "each.value.shape"),
        ("image", "each.value.image"),
        ("liveness_path", "each.value.liveness_path"),
    ] {
        assert_eq!(attr(&container, k).unwrap(), v, "{k}");
    }
    let backends = attr(&module("loadbalancer"), "backends").unwrap();
    assert!(backends.contains("module.slots.instances"), "{backends}");
    assert!(backends.contains("drain = instance.drain"), "{backends}");
    assert!(
        backends.contains("module.container[key].private_ip"),
        "{backends}"
    );
    // The LB module turns each entry into one backend with that drain flag.
    let dir = write_rendered(&r);
    let res = resources(dir.path());
    let be = &res
        .iter()
        .find(|r| r.1 == "oci_load_balancer_backend")
        .unwrap()
        .3;
    assert_eq!(attr(be, "for_each").unwrap(), "var.backends");
    assert_eq!(attr(be, "drain").unwrap(), "each.value.drain");
    // The container health check probes liveness, the load balancer readiness.
    let ci = &res
        .iter()
        .find(|r| r.1 == "oci_container_instances_container_instance")
        .unwrap()
        .3;
    let check = blocks(blocks(ci, "containers").next().unwrap(), "health_checks")
        .next()
        .unwrap();
    assert_eq!(attr(check, "path").unwrap(), "var.liveness_path");
    assert_eq!(attr(check, "failure_action").unwrap(), "\"KILL\"");
    let tfvars: serde_json::Value =
        serde_json::from_str(&r.files["terraform.tfvars.json"]).unwrap();
    assert_eq!(
        tfvars["service_readiness_path"],
        calops::runtime::READINESS_PATH
    );
    // Live slots without a recorded spec are made from the profile, with the contract's
    // environment and the liveness path.
    let green = &tfvars["slots"]["green"];
    assert_eq!(green["state"], "draining");
    assert_eq!(green["replicas"], 2, "prod-au runs two replicas");
    assert_eq!(green["shape"], "CI.Standard.A1.Flex");
    assert_eq!(green["ocpus"], 2);
    assert_eq!(green["liveness_path"], calops::runtime::LIVENESS_PATH);
    assert_eq!(green["environment"]["CALOPS_LISTEN"], "0.0.0.0:3000");
    assert_eq!(
        green["stack_environment"]["CALOPS_DATABASE_HOST"],
        "database_host"
    );
    assert_eq!(tfvars["slots"]["blue"]["state"], "active");
}

/// A live slot's record is given exactly as recorded, whatever the profile says now; only a
/// slot without one (being staged) takes the profile's settings.
#[test]
fn frozen_slots_ignore_profile_changes() {
    let mut input = input_for("prod-au", showcase_slots());
    let spec = input.profile_spec().unwrap();
    input.slots.get_mut("blue").unwrap().spec = Some(spec.clone());
    let before = render::render(&input).unwrap();
    input
        .service
        .environment
        .insert("RUST_LOG".into(), "debug".into());
    input.service.shape = "CI.Standard.E4.Flex".into();
    input.service.replicas = 3;
    input.oci.availability_domains = vec!["Uocm:AP-SYDNEY-1-AD-2".into()];
    let after = render::render(&input).unwrap();
    let slots = |r: &Rendered| {
        let v: serde_json::Value = serde_json::from_str(&r.files["terraform.tfvars.json"]).unwrap();
        v["slots"].clone()
    };
    assert_eq!(
        slots(&before)["blue"],
        slots(&after)["blue"],
        "blue is frozen"
    );
    assert_ne!(slots(&before)["green"], slots(&after)["green"]);
    assert_eq!(slots(&after)["green"]["replicas"], 3);
    assert_eq!(slots(&after)["green"]["environment"]["RUST_LOG"], "debug");
}

// ---------------------------------------------------------------------------------------------
// Bad input is refused with a specific message and a fix.

/// A bad input's name and how it changes a good input.
type BadInput = (&'static str, Box<dyn Fn(&mut RenderInput)>);

#[test]
fn bad_inputs_are_refused_with_a_fix() {
    let cases: Vec<BadInput> = vec![
        (
            "not pinned by digest",
            Box::new(|i| {
                i.slots.insert(
                    "blue".into(),
                    Slot::active("ap-sydney-1.ocir.io/ns/app:latest"),
                );
            }),
        ),
        (
            "has no image",
            Box::new(|i| {
                i.slots.insert(
                    "green".into(),
                    Slot {
                        image: None,
                        ..Slot::active("x")
                    },
                );
            }),
        ),
        (
            "unknown deployment slot `purple`",
            Box::new(|i| {
                i.slots
                    .insert("purple".into(), Slot::active(&image(DIGEST_BLUE)));
            }),
        ),
        (
            "`env:` reference",
            Box::new(|i| i.database.admin_password = "env:CALOPS_DB_PASSWORD".into()),
        ),
        (
            "`env:` reference",
            Box::new(|i| {
                i.service
                    .secrets
                    .insert("SMTP_PASSWORD".into(), "env:SMTP_PASSWORD".into());
            }),
        ),
        (
            "calops serve reads no secret of that name",
            Box::new(|i| {
                i.service.secrets.insert(
                    "SMTP_PASSWORD".into(),
                    "vault:ocid1.vaultsecret.oc1.ap-sydney-1.smtp".into(),
                );
            }),
        ),
        (
            "not a secret reference (the value is not shown)",
            Box::new(|i| i.database.admin_password = "hunter2-plain-value".into()),
        ),
        (
            "both a secret and a plain environment variable",
            Box::new(|i| {
                i.service
                    .environment
                    .insert("CALOPS_ADMIN_TOKEN".into(), "x".into());
            }),
        ),
        (
            "min_bandwidth_mbps (500) is above",
            Box::new(|i| i.load_balancer.min_bandwidth_mbps = 500),
        ),
        (
            "idle_timeout_seconds = 0",
            Box::new(|i| i.load_balancer.idle_timeout_seconds = 0),
        ),
        (
            "[service] replicas = 0 is outside 1..12",
            Box::new(|i| i.service.replicas = 0),
        ),
    ];
    for (want, change) in cases {
        let mut input = input_for("prod-au", showcase_slots());
        change(&mut input);
        let e = render::render(&input).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(want), "want {want:?} in {msg}");
        assert!(msg.contains("fix:"), "{msg}");
        assert!(
            !msg.contains("hunter2"),
            "the value must not be echoed: {msg}"
        );
    }
    let local = load_profile("local");
    let e = RenderInput::from_profile(&local, BTreeMap::new(), None).unwrap_err();
    assert!(e.to_string().contains("target = \"local\""), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Goldens and determinism.

/// Root-module files kept as goldens (the modules are checked against iac/ instead).
const ROOT_FILES: &[&str] = &[
    "versions.tf",
    "providers.tf",
    "lookups.tf",
    "variables.tf",
    "main.tf",
    "outputs.tf",
    "terraform.tfvars.json",
];

fn golden_input(name: &str) -> RenderInput {
    let mut input = input_for(name, showcase_slots());
    input.terraform_version = Some("1.12.0".into());
    input
}

/// Compare each shipped OCI profile's rendering with tests/golden/<profile>/.
/// `UPDATE_GOLDEN=1 cargo test --test render golden` rewrites them after a deliberate change.
#[test]
fn golden_snapshots_of_every_shipped_oci_profile() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for name in oci_profiles() {
        let r = render::render(&golden_input(&name)).unwrap();
        let gdir = root().join("tests/golden").join(&name);
        let mut expected: Vec<(String, String)> = ROOT_FILES
            .iter()
            .map(|f| (f.to_string(), r.files[*f].clone()))
            .collect();
        expected.push(("CONTENT_HASH".into(), format!("{}\n", r.content_hash())));
        for (file, text) in expected {
            let path = gdir.join(&file);
            if update {
                std::fs::create_dir_all(&gdir).unwrap();
                std::fs::write(&path, &text).unwrap();
                continue;
            }
            match std::fs::read_to_string(&path) {
                Ok(g) if g == text => {}
                Ok(g) => failures.push(format!(
                    "{name}/{file} differs from the golden (first differing line: {:?})",
                    g.lines().zip(text.lines()).find(|(a, b)| a != b)
                )),
                Err(e) => failures.push(format!("{}: {e}", path.display())),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{failures:#?}\nIf the change is intended: UPDATE_GOLDEN=1 cargo test --test render golden"
    );
}

#[test]
fn rendered_modules_are_the_iac_modules_byte_for_byte() {
    let r = render::render(&golden_input("prod-au")).unwrap();
    let mut n = 0;
    for (path, text) in &r.files {
        if let Some(rest) = path.strip_prefix("modules/") {
            let src = std::fs::read_to_string(root().join("iac/modules").join(rest)).unwrap();
            assert_eq!(&src, text, "{path}");
            n += 1;
        }
    }
    // Every module but `vm`, which only the `oci-vm` root module has (tests/it/freetier.rs).
    assert_eq!(n, (MODULES.len() - 1) * 5);
}

#[test]
fn rendering_is_deterministic() {
    let a = render::render(&golden_input("prod-au")).unwrap();
    // A fresh load of the profile, and a clone through serde, give the same bytes.
    let b = render::render(&golden_input("prod-au")).unwrap();
    let json = serde_json::to_string(&golden_input("prod-au")).unwrap();
    let c = render::render(&serde_json::from_str::<RenderInput>(&json).unwrap()).unwrap();
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(a.content_hash(), c.content_hash());
    let d1 = write_rendered(&a);
    let d2 = write_rendered(&b);
    for f in schema_check::tf_files(d1.path(), true) {
        let rel = f.strip_prefix(d1.path()).unwrap();
        assert_eq!(
            std::fs::read(&f).unwrap(),
            std::fs::read(d2.path().join(rel)).unwrap()
        );
    }
    // No timestamps or absolute paths sneak in: no date, time of day or Unix time of any
    // year (the pattern is checked against the present moment first, so it cannot miss it).
    let stamp = regex::Regex::new(r"\b\d{4}-\d{2}-\d{2}|\d{2}:\d{2}:\d{2}|\b1[6-9]\d{8}(\d{3})?\b")
        .unwrap();
    let now = jiff::Zoned::now();
    for present in [
        now.to_string(),
        now.timestamp().to_string(),
        now.timestamp().as_second().to_string(),
        now.timestamp().as_millisecond().to_string(),
    ] {
        assert!(stamp.is_match(&present), "the check misses {present}");
    }
    for (name, text) in &a.files {
        assert!(
            !text.contains("/tmp") && !text.contains(env!("CARGO_MANIFEST_DIR")),
            "{name}"
        );
        assert!(
            !stamp.is_match(text),
            "{name} holds a timestamp: {:?}",
            stamp.find(text).map(|m| m.as_str())
        );
    }
    // Any input change changes the hash.
    let mut other = golden_input("prod-au");
    other.monitoring.cpu_threshold_percent = 80;
    assert_ne!(
        render::render(&other).unwrap().content_hash(),
        a.content_hash()
    );
}

#[test]
fn rewriting_removes_stale_files_and_keeps_terraform_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = render::render(&golden_input("prod-au")).unwrap();
    let clean = r.clone();
    r.files
        .insert("old.tf".into(), "# from an earlier render\n".into());
    render::write::write_to(&r, dir.path()).unwrap();
    std::fs::write(dir.path().join("terraform.tfstate"), "{}").unwrap();
    assert!(dir.path().join("old.tf").exists());
    render::write::write_to(&clean, dir.path()).unwrap();
    assert!(
        !dir.path().join("old.tf").exists(),
        "stale rendered file kept"
    );
    assert!(
        dir.path().join("terraform.tfstate").exists(),
        "state must never be touched"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("main.tf")).unwrap(),
        clean.files["main.tf"]
    );
}

// ---------------------------------------------------------------------------------------------
// The command.

fn calops_in(cwd: &Path) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("calops").unwrap();
    c.current_dir(cwd)
        .env_clear()
        .envs(clean_env())
        .env("CALOPS_PROFILE_DIR", root().join("profiles"));
    c
}

#[test]
fn render_command_writes_the_default_dir_and_reports_files_and_hash() {
    let cwd = tempfile::tempdir().unwrap();
    let out = calops_in(cwd.path())
        // No OCI config: the tenancy and the (unpinned) home region stay unknown, loudly.
        .env("OCI_CLI_CONFIG_FILE", cwd.path().join("no-such-config"))
        .args(["render", "--profile", "prod-au", "--json", "--image"])
        .arg(image(DIGEST_BLUE))
        .args(["--slot", &format!("green:draining:{}", image(DIGEST_GREEN))])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let dir = cwd.path().join(".calops/prod-au/terraform");
    assert_eq!(doc["out"], ".calops/prod-au/terraform");
    assert!(dir.join("main.tf").is_file());
    assert_eq!(doc["slots"]["blue"]["state"], "active");
    assert_eq!(doc["slots"]["green"]["state"], "draining");
    let warnings = doc["warnings"].to_string();
    assert!(
        warnings.contains("home region is not known")
            && warnings.contains("tenancy OCID is not known"),
        "{warnings}"
    );
    // The hash is the library's, for the same input (same Terraform version as detected).
    let mut input = input_for("prod-au", showcase_slots());
    input.oci.tenancy_id = None;
    input.oci.home_region = None;
    input.terraform_version = doc["terraform_version"].as_str().map(String::from);
    let lib = render::render(&input).unwrap();
    assert_eq!(doc["content_hash"], lib.content_hash());
    let files = doc["files"].as_array().unwrap();
    assert_eq!(files.len(), lib.files.len());
    for f in files {
        let path = f["path"].as_str().unwrap();
        let text = std::fs::read_to_string(dir.join(path)).unwrap();
        assert_eq!(f["sha256"], Rendered::file_hash(&text), "{path}");
    }
    // Human output lists the files and the hash.
    let human = calops_in(cwd.path())
        .args(["render", "--profile", "prod-au", "--image"])
        .arg(image(DIGEST_BLUE))
        .args(["--slot", &format!("green:draining:{}", image(DIGEST_GREEN))])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("main.tf") && text.contains(&format!("content hash: {}", lib.content_hash())),
        "{text}"
    );
}

#[test]
fn render_command_refuses_bad_input_without_writing() {
    let cwd = tempfile::tempdir().unwrap();
    for (args, want) in [
        (
            vec!["--image", "ap-sydney-1.ocir.io/ns/app:latest"],
            "not pinned by digest",
        ),
        (vec!["--slot", "purple:active"], "unknown slot `purple`"),
        (vec!["--slot", "green:sleeping"], "unknown state `sleeping`"),
    ] {
        let out = calops_in(cwd.path())
            .args(["render", "--profile", "prod-au"])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(want) && err.contains("fix:"),
            "{args:?}: {err}"
        );
        assert!(
            !cwd.path().join(".calops").exists(),
            "nothing may be written on error"
        );
    }
    let out = calops_in(cwd.path())
        .args(["render", "--profile", "local"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no Terraform to render"));
}

// ---------------------------------------------------------------------------------------------
// Real Terraform loads every configuration. Providers cannot be downloaded here, so
// `terraform init -backend=false` runs against an empty provider mirror: it parses and loads the
// whole configuration (root, module calls, variable types and validations) and stops at
// provider installation. The only error allowed is that the provider is not in the mirror.

fn terraform_init_errors(test: &str, dir: &Path) -> Option<(Vec<String>, String)> {
    let tf = calops_testkit::require_tool(test, "terraform")?;
    let mirror = tempfile::tempdir().unwrap();
    let rc = mirror.path().join("terraformrc");
    std::fs::write(
        &rc,
        format!(
            "provider_installation {{\n  filesystem_mirror {{\n    path    = \"{}\"\n    include = [\"*/*/*\"]\n  }}\n}}\n",
            mirror.path().display()
        ),
    )
    .unwrap();
    let out = Command::new(tf)
        .args(["init", "-backend=false", "-input=false", "-no-color"])
        .current_dir(dir)
        .env("TF_CLI_CONFIG_FILE", &rc)
        .env("TF_IN_AUTOMATION", "1")
        .env_remove("TF_LOG")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let errors = text
        .lines()
        .filter_map(|l| {
            l.trim_start_matches(['│', ' ', '╷'])
                .strip_prefix("Error: ")
        })
        .map(|s| s.trim().to_string())
        .collect();
    Some((errors, text))
}

fn installed_terraform_version() -> Option<String> {
    let out = Command::new("terraform")
        .args(["version", "-json"])
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["terraform_version"].as_str().map(String::from)
}

const ONLY_PROVIDER_MISSING: &str = "Failed to query available provider packages";

#[test]
fn real_terraform_loads_every_rendered_profile_and_module() {
    let test = "real_terraform_loads_every_rendered_profile_and_module";
    let mut dirs = Vec::new();
    for name in oci_profiles() {
        for backend in [StateBackend::Oci, StateBackend::Local] {
            let mut input = input_for(&name, showcase_slots());
            input.state.backend = backend;
            // The backend flavour the installed Terraform understands.
            input.terraform_version = installed_terraform_version();
            dirs.push((
                format!("{name} {backend:?}"),
                write_rendered(&render::render(&input).unwrap()),
            ));
        }
    }
    // The `oci-vm` root module of free-au (cloud-init.yaml beside it, read by filebase64).
    for backend in [StateBackend::Oci, StateBackend::Local] {
        let p = load_profile("free-au");
        let mut input =
            render::vm::VmRenderInput::from_profile(&p, installed_terraform_version()).unwrap();
        input.state.backend = backend;
        input.oci.tenancy_id = Some(TENANCY.into());
        input.oci.home_region = Some("us-ashburn-1".into());
        dirs.push((
            format!("free-au {backend:?}"),
            write_rendered(&render::vm::render_vm(&input).unwrap()),
        ));
    }
    for m in MODULES {
        let d = tempfile::tempdir().unwrap();
        for f in ["versions.tf", "variables.tf", "main.tf", "outputs.tf"] {
            std::fs::copy(root().join("iac/modules").join(m).join(f), d.path().join(f)).unwrap();
        }
        dirs.push((format!("iac/modules/{m}"), d));
    }
    for (what, dir) in &dirs {
        let Some((errors, text)) = terraform_init_errors(test, dir.path()) else {
            return;
        };
        // The slots module is pure planning: no provider, so it initialises completely.
        if what == "iac/modules/slots" {
            assert_eq!(errors, Vec::<String>::new(), "{what}:\n{text}");
            continue;
        }
        assert!(
            text.contains("Finding oracle/oci versions matching \">= 8.0.0, < 9.0.0\""),
            "{what}:\n{text}"
        );
        assert_eq!(errors, [ONLY_PROVIDER_MISSING], "{what}:\n{text}");
    }
}

#[test]
fn real_terraform_check_catches_a_broken_configuration() {
    let r = render::render(&input_for("prod-au", showcase_slots())).unwrap();
    let dir = write_rendered(&r);
    let vars = dir.path().join("modules/cache/variables.tf");
    let mut text = std::fs::read_to_string(&vars).unwrap();
    text.push_str("\nvariable \"broken\" {\n  type = strnig\n}\n");
    std::fs::write(&vars, text).unwrap();
    let Some((errors, text)) = terraform_init_errors(
        "real_terraform_check_catches_a_broken_configuration",
        dir.path(),
    ) else {
        return;
    };
    assert!(
        errors.iter().any(|e| e == "Invalid type specification"),
        "{errors:?}\n{text}"
    );
}

#[test]
fn checker_rejects_literals_of_the_wrong_type() {
    let f = broken("wrong_literal_type.tf");
    assert_eq!(f.len(), 2, "{f:#?}");
    assert!(
        f.iter().any(|m| m.contains(
            "attribute `destinations`: a string cannot be used where a list is expected"
        )),
        "{f:#?}"
    );
    assert!(
        f.iter().any(|m| m
            .contains("attribute `is_enabled`: a string cannot be used where a bool is expected")),
        "{f:#?}"
    );
    // Terraform's own conversions are accepted.
    let ok = r#"
resource "oci_core_network_security_group_security_rule" "x" {
  network_security_group_id = "n"
  direction                 = "INGRESS"
  protocol                  = 6
  stateless                 = "false"
  tcp_options {
    destination_port_range {
      min = "443"
      max = 443
    }
  }
}
"#;
    let f = check_text(&schema(), "ok.tf", ok);
    assert!(f.is_empty(), "{f:#?}");
}

/// The addresses the OCI target protects for a live slot's instance are the rendered stack's
/// own: a plan replacing the container instance or deleting the backend of `blue-0` is refused
/// by the guard, and `--allow-destroy` names them.
#[test]
fn the_guard_refuses_replacing_a_rendered_live_slot() {
    use calops::deploy::oci::stack::{Account, ProfileStack, StackWriter};
    let r = render::render(&input_for("prod-au", showcase_slots())).unwrap();
    let dir = write_rendered(&r);
    let root_main = hcl::parse(&r.files["main.tf"]).unwrap();
    let module = |name: &str| module_block(&root_main, name);
    // module.container["<key>"] over the instance keys; one instance resource inside.
    assert_eq!(
        attr(&module("container"), "for_each").unwrap(),
        "module.slots.instances"
    );
    let res = resources(dir.path());
    let one = |file: &str, ty: &str, name: &str| {
        res.iter()
            .find(|r| r.0 == file && r.1 == ty && r.2 == name)
            .unwrap_or_else(|| panic!("{file}: no {ty}.{name}"))
            .3
            .clone()
    };
    let ci = one(
        "modules/container/main.tf",
        "oci_container_instances_container_instance",
        "this",
    );
    assert!(attr(&ci, "for_each").is_none() && attr(&ci, "count").is_none());
    // module.loadbalancer.oci_load_balancer_backend.slot["<key>"], keyed like the instances.
    let be = one(
        "modules/loadbalancer/main.tf",
        "oci_load_balancer_backend",
        "slot",
    );
    assert_eq!(attr(&be, "for_each").unwrap(), "var.backends");
    assert!(attr(&module("loadbalancer"), "for_each").is_none());
    assert!(attr(&module("loadbalancer"), "backends")
        .unwrap()
        .contains("for key, instance in module.slots.instances : key =>"));

    let stack = ProfileStack::new(
        load_profile("prod-au"),
        Some("1.11.4".into()),
        Account::default(),
    );
    let addresses = stack.instance_addresses("blue-0");
    let change = |address: &str, ty: &str, actions: &[&str]| {
        serde_json::json!({"address": address, "mode": "managed", "type": ty,
            "name": address.rsplit('.').next().unwrap(),
            "change": {"actions": actions, "before": {}, "after": {}, "replace_paths": [["containers"]]}})
    };
    let plan = serde_json::json!({
        "format_version": "1.2", "terraform_version": "1.11.4",
        "resource_changes": [
            change(&addresses[0], "oci_container_instances_container_instance", &["delete", "create"]),
            change(&addresses[1], "oci_load_balancer_backend", &["delete"]),
        ]
    });
    let plan = calops::terraform::plan_json::parse(&plan.to_string()).unwrap();
    let mut policy = calops::terraform::guard::GuardPolicy::default();
    assert!(calops::terraform::guard::check(&plan, &policy).is_empty());
    policy.protect(&addresses);
    let refused: Vec<String> = calops::terraform::guard::check(&plan, &policy)
        .into_iter()
        .map(|v| v.address)
        .collect();
    assert_eq!(refused, addresses);
    policy.allow_destroy = addresses.clone();
    assert!(calops::terraform::guard::check(&plan, &policy).is_empty());
}

#[test]
fn a_profile_without_a_certificate_says_it_serves_plain_http() {
    let dev = render::render(&input_for("dev", showcase_slots())).unwrap();
    assert!(
        dev.warnings.iter().any(|w| w == render::PLAIN_HTTP_WARNING),
        "{:?}",
        dev.warnings
    );
    let prod = render::render(&input_for("prod-au", showcase_slots())).unwrap();
    assert!(!prod.warnings.iter().any(|w| w.contains("PLAIN HTTP")));
}

pub(crate) mod iam {
    //! The rendered IAM, evaluated (HCL expressions computed with the rendered inputs) and
    //! parsed statement by statement.
    use super::*;
    use hcl::eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType};
    use hcl::Value;

    fn list(args: &FuncArgs) -> Vec<Value> {
        args.variadic_args()
            .flat_map(|a| a.as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// The Terraform functions the access module and its call use.
    fn context() -> Context<'static> {
        let mut ctx = Context::new();
        let f = |func| {
            FuncDef::builder()
                .variadic_param(ParamType::Any)
                .build(func)
        };
        ctx.declare_func("concat", f(|a| Ok(Value::Array(list(&a)))));
        ctx.declare_func(
            "distinct",
            f(|a| {
                let mut out: Vec<Value> = Vec::new();
                for v in list(&a) {
                    if !out.contains(&v) {
                        out.push(v);
                    }
                }
                Ok(Value::Array(out))
            }),
        );
        ctx.declare_func(
            "sort",
            f(|a| {
                let mut v: Vec<String> = list(&a)
                    .iter()
                    .map(|x| x.as_str().unwrap().to_string())
                    .collect();
                v.sort();
                Ok(Value::Array(v.into_iter().map(Value::from).collect()))
            }),
        );
        ctx
    }

    fn json_to_hcl(v: &serde_json::Value) -> Value {
        hcl::to_value(v).unwrap()
    }

    fn block<'a>(body: &'a hcl::Body, id: &str, labels: &[&str]) -> &'a hcl::Body {
        body.blocks()
            .find(|b| {
                b.identifier() == id
                    && b.labels()
                        .iter()
                        .map(|l| l.as_str())
                        .eq(labels.iter().copied())
            })
            .unwrap_or_else(|| panic!("no {id} {labels:?}"))
            .body()
    }

    fn expr<'a>(body: &'a hcl::Body, key: &str) -> &'a hcl::Expression {
        body.attributes()
            .find(|a| a.key() == key)
            .unwrap_or_else(|| panic!("no attribute {key}"))
            .expr()
    }

    fn parse_file(dir: &Path, file: &str) -> hcl::Body {
        hcl::parse(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap()
    }

    /// The `access` module of the rendered root module in `dir`, evaluated: its call in
    /// `main.tf` with `tfvars` (and `modules`, the other modules' outputs the call reads) over
    /// the module's defaults, then its locals, with `dg_ocid` as the dynamic group's id.
    pub(crate) struct AccessModule {
        /// The module's input variables.
        pub vars: serde_json::Map<String, serde_json::Value>,
        /// `modules/access/main.tf`.
        pub main: hcl::Body,
        ctx: Context<'static>,
    }

    impl AccessModule {
        pub(crate) fn evaluate(
            dir: &Path,
            tfvars: &serde_json::Value,
            modules: serde_json::Value,
            dg_ocid: &str,
        ) -> AccessModule {
            let root = parse_file(dir, "main.tf");
            let access = block(&root, "module", &["access"]);
            let mut ctx = context();
            ctx.declare_var("var", json_to_hcl(tfvars));
            ctx.declare_var("module", json_to_hcl(&modules));
            ctx.declare_var("local", json_to_hcl(&serde_json::json!({"tags": {}})));
            let mut vars = serde_json::Map::new();
            // The module's defaults, then what the call gives.
            let access_vars = parse_file(dir, "modules/access/variables.tf");
            for v in access_vars
                .blocks()
                .filter(|b| b.identifier() == "variable")
            {
                if let Some(d) = v.body().attributes().find(|a| a.key() == "default") {
                    let value = d.expr().evaluate(&ctx).unwrap();
                    vars.insert(
                        v.labels()[0].as_str().to_string(),
                        serde_json::to_value(value).unwrap(),
                    );
                }
            }
            for a in access.attributes() {
                if ["source", "providers"].contains(&a.key()) {
                    continue;
                }
                let v = a.expr().evaluate(&ctx).unwrap();
                vars.insert(a.key().to_string(), serde_json::to_value(v).unwrap());
            }
            let main = parse_file(dir, "modules/access/main.tf");
            let mut mctx = context();
            mctx.declare_var("var", json_to_hcl(&serde_json::Value::Object(vars.clone())));
            mctx.declare_var(
                "oci_identity_dynamic_group",
                json_to_hcl(&serde_json::json!({"containers": {"id": dg_ocid}})),
            );
            let mut local = serde_json::Map::new();
            for a in block(&main, "locals", &[]).attributes() {
                let mut lctx = mctx.clone();
                lctx.declare_var(
                    "local",
                    json_to_hcl(&serde_json::Value::Object(local.clone())),
                );
                let v = a.expr().evaluate(&lctx).unwrap();
                local.insert(a.key().to_string(), serde_json::to_value(v).unwrap());
            }
            mctx.declare_var("local", json_to_hcl(&serde_json::Value::Object(local)));
            AccessModule {
                vars,
                main,
                ctx: mctx,
            }
        }

        /// `key` of `body` (in the module), evaluated to a string.
        pub(crate) fn eval_str(&self, body: &hcl::Body, key: &str) -> String {
            expr(body, key)
                .evaluate(&self.ctx)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        }

        /// The statements of `oci_identity_policy.<policy>`, parsed.
        pub(crate) fn statements(&self, policy: &str) -> Vec<Statement> {
            let body = block(&self.main, "resource", &["oci_identity_policy", policy]);
            let v = expr(body, "statements").evaluate(&self.ctx).unwrap();
            v.as_array()
                .unwrap()
                .iter()
                .map(|s| parse_statement(s.as_str().unwrap()))
                .collect()
        }
    }

    /// One policy statement: `Allow <subject> to <verb> <resource> in <location> [where <cond>]`.
    #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
    pub struct Statement {
        pub subject: String,
        pub verb: String,
        pub resource: String,
        pub location: String,
        pub condition: Option<String>,
    }

    pub fn parse_statement(s: &str) -> Statement {
        let re = regex::Regex::new(
            r"^Allow (.+?) to (inspect|read|use|manage) (\S+) in (compartment id \S+|tenancy)(?: where (.+))?$",
        )
        .unwrap();
        let c = re
            .captures(s)
            .unwrap_or_else(|| panic!("not a policy statement: {s}"));
        Statement {
            subject: c[1].into(),
            verb: c[2].into(),
            resource: c[3].into(),
            location: c[4].into(),
            condition: c.get(5).map(|m| m.as_str().to_string()),
        }
    }

    /// `ALL {k = 'v', ...}` -> [(k, v)].
    fn parse_matching_rule(rule: &str) -> Vec<(String, String)> {
        let inner = rule
            .strip_prefix("ALL {")
            .and_then(|r| r.strip_suffix('}'))
            .unwrap_or_else(|| panic!("not an ALL {{...}} rule: {rule}"));
        inner
            .split(',')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (
                    k.trim().to_string(),
                    v.trim().trim_matches('\'').to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn the_stack_iam_is_least_privilege_in_the_home_region() {
        let mut input = input_for("prod-au", showcase_slots());
        // With e-mail through Email Delivery: one more grant, for that sender only.
        input.service.mail_sender = Some("bookings@example.com".into());
        let r = render::render(&input).unwrap();
        let dir = write_rendered(&r);
        let tfvars: serde_json::Value =
            serde_json::from_str(&r.files["terraform.tfvars.json"]).unwrap();
        let root = parse_file(dir.path(), "main.tf");

        // 1. Every oci_identity_* resource is in the access module, which gets the
        //    home-region provider; that provider is aliased to var.home_region.
        let identity: Vec<_> = resources(dir.path())
            .into_iter()
            .filter(|r| r.1.starts_with("oci_identity_"))
            .collect();
        assert_eq!(identity.len(), 3, "{identity:?}");
        for (file, ty, name, body) in &identity {
            assert!(file.starts_with("modules/access/"), "{ty}.{name} in {file}");
            assert!(attr(body, "provider").is_none(), "{ty}.{name}");
        }
        let access = block(&root, "module", &["access"]);
        assert_eq!(attr(access, "source").unwrap(), "\"./modules/access\"");
        let hcl::Expression::Object(providers) = expr(access, "providers") else {
            panic!("the access module's providers is not an object");
        };
        let providers: Vec<(String, String)> = providers
            .iter()
            .map(|(k, v)| {
                (
                    hcl::format::to_string(k).unwrap(),
                    hcl::format::to_string(v).unwrap(),
                )
            })
            .collect();
        assert_eq!(providers, [("oci".to_string(), "oci.home".to_string())]);
        let modules_calling_access: Vec<_> = root
            .blocks()
            .filter(|b| b.identifier() == "module")
            .filter(|b| attr(b.body(), "source").as_deref() == Some("\"./modules/access\""))
            .collect();
        assert_eq!(modules_calling_access.len(), 1);
        let providers_tf = parse_file(dir.path(), "providers.tf");
        let home = providers_tf
            .blocks()
            .find(|b| {
                b.identifier() == "provider"
                    && attr(b.body(), "alias").as_deref() == Some("\"home\"")
            })
            .expect("a home-region provider");
        assert_eq!(attr(home.body(), "region").unwrap(), "var.home_region");
        assert_eq!(tfvars["home_region"], "us-ashburn-1");
        for p in providers_tf.blocks() {
            assert!(
                attr(p.body(), "config_file_profile").is_none(),
                "credentials come from calops' environment, not a profile name"
            );
        }

        // 2. The module's inputs, evaluated with the rendered values (modules/slots reports
        //    the secrets every live slot's record reads), and 3. the module's own expressions.
        let mut slot_secrets: Vec<String> = tfvars["slots"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|s| s["secret_ids"].as_array().cloned().unwrap_or_default())
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        slot_secrets.sort();
        slot_secrets.dedup();
        let dg_ocid = "ocid1.dynamicgroup.oc1..stackcontainers";
        let m = AccessModule::evaluate(
            dir.path(),
            &tfvars,
            serde_json::json!({"slots": {"secret_ids": slot_secrets}}),
            dg_ocid,
        );
        let cid = input.oci.compartment_id.clone();
        let secrets: Vec<String> = [
            input.database.admin_password.clone(),
            input.service.secrets["CALOPS_ADMIN_TOKEN"].clone(),
        ]
        .iter()
        .map(|r| r.strip_prefix("vault:").unwrap().to_string())
        .collect();
        assert_eq!(m.vars["tenancy_id"], TENANCY);
        assert_eq!(m.vars["compartment_id"], cid.as_str());
        let access_main = &m.main;
        let eval_str = |body: &hcl::Body, key: &str| m.eval_str(body, key);
        let statements = |policy: &str| m.statements(policy);

        // The dynamic group: in the tenancy, matching exactly this compartment's instances.
        let dg = block(
            access_main,
            "resource",
            &["oci_identity_dynamic_group", "containers"],
        );
        assert_eq!(eval_str(dg, "compartment_id"), TENANCY);
        assert_eq!(
            parse_matching_rule(&eval_str(dg, "matching_rule")),
            [
                (
                    "resource.type".to_string(),
                    "computecontainerinstance".to_string()
                ),
                ("resource.compartment.id".to_string(), cid.clone())
            ]
        );

        // The group's grants: repos, the bucket only, the listed secrets only, metrics in the
        // service's namespace only.
        let location = format!("compartment id {cid}");
        let subject = format!("dynamic-group id {dg_ocid}");
        let mut want = vec![
            Statement {
                subject: subject.clone(),
                verb: "read".into(),
                resource: "repos".into(),
                location: location.clone(),
                condition: None,
            },
            Statement {
                subject: subject.clone(),
                verb: "manage".into(),
                resource: "objects".into(),
                location: location.clone(),
                condition: Some(format!(
                    "target.bucket.name = '{}'",
                    input.storage.bucket_name
                )),
            },
        ];
        // Post the service's metrics, in its Monitoring namespace only.
        want.push(Statement {
            subject: subject.clone(),
            verb: "use".into(),
            resource: "metrics".into(),
            location: location.clone(),
            condition: Some(format!(
                "target.metrics.namespace = '{}'",
                calops::runtime::telemetry::NAMESPACE
            )),
        });
        // Send e-mail (SubmitRawEmail) as the one approved sender.
        want.push(Statement {
            subject: subject.clone(),
            verb: "use".into(),
            resource: "approved-senders".into(),
            location: location.clone(),
            condition: Some("target.approved-sender.emailaddress = 'bookings@example.com'".into()),
        });
        for id in &secrets {
            want.push(Statement {
                subject: subject.clone(),
                verb: "read".into(),
                resource: "secret-bundles".into(),
                location: location.clone(),
                condition: Some(format!("target.secret.id = '{id}'")),
            });
        }
        let mut got = statements("service");
        got.sort();
        want.sort();
        assert_eq!(got, want);

        // The Object Storage service statement, in its own policy...
        assert_eq!(
            statements("objectstorage"),
            [Statement {
                subject: "service objectstorage-ap-sydney-1".into(),
                verb: "manage".into(),
                resource: "object-family".into(),
                location: location.clone(),
                condition: None,
            }]
        );
        // ... which the bucket's lifecycle policy waits for.
        let outputs = parse_file(dir.path(), "modules/access/outputs.tf");
        assert_eq!(
            attr(block(&outputs, "output", &["service_policy_id"]), "value").unwrap(),
            "oci_identity_policy.objectstorage.id"
        );
        let compact = |s: String| s.split_whitespace().collect::<String>();
        assert_eq!(
            compact(attr(block(&root, "module", &["storage"]), "lifecycle_after").unwrap()),
            "[module.access.service_policy_id]"
        );
        let storage = parse_file(dir.path(), "modules/storage/main.tf");
        let lifecycle = block(
            &storage,
            "resource",
            &["oci_objectstorage_object_lifecycle_policy", "this"],
        );
        assert_eq!(
            compact(attr(lifecycle, "depends_on").unwrap()),
            "[var.lifecycle_after]"
        );
    }

    #[test]
    fn statements_parse() {
        let s = parse_statement(
            "Allow dynamic-group id ocid1.dg to read secret-bundles in compartment id c where target.secret.id = 's'",
        );
        assert_eq!(
            (s.subject.as_str(), s.verb.as_str(), s.resource.as_str()),
            ("dynamic-group id ocid1.dg", "read", "secret-bundles")
        );
        assert_eq!(s.condition.as_deref(), Some("target.secret.id = 's'"));
        assert_eq!(
            parse_statement(
                "Allow service objectstorage-ap-sydney-1 to manage object-family in tenancy"
            )
            .location,
            "tenancy"
        );
    }
}

mod quoting {
    use proptest::prelude::*;

    #[test]
    fn templates_and_quotes_stay_literal() {
        for s in [
            "x${var.secret}y",
            "%{ if true }z",
            "a\"\nb = 2",
            "back\\slash",
        ] {
            let src = format!("a = {}\n", calops::render::hcl::quote(s));
            let v: serde_json::Value = hcl::from_str(&src).expect("parses");
            assert_eq!(v["a"].as_str(), Some(s), "{src}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Any profile text placed in a backend setting stays one literal string: no HCL
        /// injection through quotes, backslashes, newlines or `${...}` templates.
        #[test]
        fn quoted_values_parse_back_to_themselves(s in "\\PC*|[\"\\\\$%{}\n\t a-z]*") {
            let src = format!("a = {}\nb = 1\n", calops::render::hcl::quote(&s));
            let v: serde_json::Value = hcl::from_str(&src).expect("parses");
            prop_assert_eq!(v["a"].as_str(), Some(s.as_str()));
            prop_assert_eq!(v.as_object().unwrap().len(), 2);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// `calops plan --profile`: rendering, then the real terraform. The OCI provider cannot be
// downloaded here, so these check what happens up to `terraform init` and that its error text
// (not just an exit status) reaches the user.

#[test]
fn plan_renders_then_surfaces_terraform_init_errors() {
    if calops_testkit::require_tool(
        "plan_renders_then_surfaces_terraform_init_errors",
        "terraform",
    )
    .is_none()
    {
        return;
    }
    let cwd = tempfile::tempdir().unwrap();
    // The identity calops signs with, and hands to Terraform (no API call is made: everything
    // is pinned, so the key is never read).
    let config = cwd.path().join("oci-config");
    std::fs::write(
        &config,
        format!(
            "[DEFAULT]\nuser=ocid1.user.oc1..u\nfingerprint=12:34:56:78:90:ab:cd:ef:12:34:56:78:90:ab:cd:ef\ntenancy={TENANCY}\nregion=ap-sydney-1\nkey_file={}\n",
            cwd.path().join("key.pem").display()
        ),
    )
    .unwrap();
    let out = calops_in(cwd.path())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("OCI_CLI_CONFIG_FILE", &config)
        // Offline review: every lookup pinned, state on disk.
        .env("CALOPS_STATE_BACKEND", "local")
        .env("CALOPS_OCI_HOME_REGION", "ap-sydney-1")
        .env("CALOPS_OCI_OBJECT_STORAGE_NAMESPACE", "testns")
        .env("CALOPS_OCI_AVAILABILITY_DOMAIN", "Uocm:AP-SYDNEY-1-AD-1")
        .env(
            "CALOPS_OCI_SERVICES_GATEWAY_SERVICE_ID",
            "ocid1.service.oc1.ap-sydney-1.aaaaaaaaexampleservice",
        )
        .env("TF_PLUGIN_CACHE_DIR", cwd.path().join("plugins"))
        .args([
            "plan",
            "--profile",
            "prod-au",
            "--no-progress",
            "--detailed-exitcode",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("terraform init failed"), "{stderr}");
    assert!(
        stderr.contains("oracle/oci"),
        "Terraform's own text: {stderr}"
    );
    let dir = cwd.path().join(".calops/prod-au/terraform");
    assert!(dir.join("main.tf").is_file(), "rendered before planning");
    let tfvars: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("terraform.tfvars.json")).unwrap())
            .unwrap();
    assert_eq!(
        tfvars["tenancy_ocid"], TENANCY,
        "the tenancy calops signs with"
    );
    assert_eq!(tfvars["home_region"], "ap-sydney-1");

    let logs: Vec<_> = std::fs::read_dir(cwd.path().join(".calops/prod-au/logs"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(logs.len(), 1, "one plan log");
    assert!(logs[0].file_name().to_string_lossy().ends_with("-plan.log"));
}

#[test]
fn plan_refuses_local_profiles_and_explains_a_missing_namespace() {
    let cwd = tempfile::tempdir().unwrap();
    let out = calops_in(cwd.path())
        .args(["plan", "--profile", "local"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no Terraform to plan"));
    // Without a pinned namespace the state backend needs the OCI API; with no OCI config the
    // error says how to fix it, and nothing is applied.
    let out = calops_in(cwd.path())
        .env("OCI_CLI_CONFIG_FILE", cwd.path().join("no-such-config"))
        .args(["plan", "--profile", "prod-au", "--no-progress"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("OCI config file") && stderr.contains("not found"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// The alarms on the service's own metrics, and the grant that lets the service post them.

/// Every metric name the exporter posts for a busy interval: its body function fed a snapshot
/// in which everything happened, with the backup gauges as the backup schedule writes them.
pub(crate) fn posted_metric_names() -> std::collections::BTreeSet<String> {
    use calops::service::telemetry::{body, snapshot};
    let backup = snapshot::backup_gauges(&calops::backup::schedule::render(
        Some(12.0),
        930.0,
        1,
        Some(3600.0),
    ));
    let snap = snapshot::Snapshot {
        at: std::time::SystemTime::now(),
        requests: BTreeMap::from([(("bookings", "2xx"), 10), (("bookings", "5xx"), 1)]),
        errors: (1, 11),
        latency: Some([0.01, 0.1, 0.2]),
        bookings_created: 10,
        bookings_failed: BTreeMap::from([("error", 1)]),
        cache_hits: 5,
        cache_misses: 1,
        dropped: 0,
        gauges: snapshot::Gauges {
            pool: calops::service::store::PoolStatus {
                max_size: 16,
                size: 2,
                available: 1,
                waiting: 0,
            },
            queues: Some(vec![("webhooks", 3, Some(2.0)), ("ics", 1, None)]),
            calendars: Some((30.0, 0)),
            webhook_latency_p95: Some(0.5),
            backup,
        },
    };
    let ctx = body::Context {
        namespace: calops::runtime::telemetry::NAMESPACE.into(),
        compartment_id: "ocid1.compartment.oc1..c".into(),
        dimensions: BTreeMap::from([
            ("slot".into(), "blue".into()),
            ("release".into(), "r".into()),
        ]),
    };
    body::metric_data(&snap, &ctx)
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect()
}

fn service_alarms(input: &RenderInput) -> (serde_json::Value, Rendered) {
    let r = render::render(input).unwrap();
    let tfvars: serde_json::Value =
        serde_json::from_str(&r.files["terraform.tfvars.json"]).unwrap();
    (tfvars, r)
}

/// Each rendered alarm query parses as MQL, names a metric the exporter posts (in the
/// namespace the service posts to), filters only on dimensions that metric has, and carries
/// the profile's threshold; the runbook's defaults are what an untouched profile gets.
#[test]
fn rendered_alarm_queries_name_only_metrics_the_service_posts() {
    use crate::support::mql;
    use calops::runtime::telemetry::{self as t, DIMENSIONS};
    let posted = posted_metric_names();
    let mut input = input_for("prod-au", showcase_slots());
    let (tfvars, _) = service_alarms(&input);
    assert_eq!(tfvars["metrics_namespace"], t::NAMESPACE);
    let alarms = tfvars["service_alarms"].as_object().unwrap();
    let keys: Vec<&str> = alarms.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "booking-failures",
            "calendar-sync",
            "queue-depth",
            "service-5xx",
            "webhook-latency"
        ],
        "no backups alarm unless the target asks for it"
    );
    let mut thresholds = BTreeMap::new();
    for (key, a) in alarms {
        assert_eq!(a["namespace"], tfvars["metrics_namespace"], "{key}");
        let q = mql::parse(a["query"].as_str().unwrap()).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert!(
            posted.contains(&q.metric),
            "{key}: {} is not posted",
            q.metric
        );
        let m = t::metric(&q.metric).unwrap();
        for (d, _) in &q.dimensions {
            assert!(
                DIMENSIONS.contains(&d.as_str()) || m.dimensions.contains(&d.as_str()),
                "{key}: {} has no dimension {d}",
                q.metric
            );
        }
        assert!(["CRITICAL", "WARNING"].contains(&a["severity"].as_str().unwrap()));
        thresholds.insert(
            key.clone(),
            (
                q.threshold,
                a["pending_duration"].as_str().unwrap().to_string(),
            ),
        );
    }
    // The runbook: 5xx over 1% for 5 minutes, booking failures over 3% for 15 minutes,
    // webhook latency p95 over 5 s, queue depth over 1,000.
    let want = |x: f64, d: &str| (x, d.to_string());
    assert_eq!(thresholds["service-5xx"], want(1.0, "PT5M"));
    assert_eq!(thresholds["booking-failures"], want(3.0, "PT15M"));
    assert_eq!(thresholds["webhook-latency"], want(5.0, "PT5M"));
    assert_eq!(thresholds["queue-depth"], want(1000.0, "PT5M"));
    // A connected calendar not synced for 30 minutes.
    assert_eq!(thresholds["calendar-sync"], want(1800.0, "PT5M"));

    // The profile's thresholds reach the queries.
    input.monitoring.thresholds.http_5xx_percent = 2.5;
    input.monitoring.thresholds.calendar_sync_age_seconds = 600;
    let (tfvars, _) = service_alarms(&input);
    let q = mql::parse(
        tfvars["service_alarms"]["service-5xx"]["query"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(q.threshold, 2.5);
    let q = mql::parse(
        tfvars["service_alarms"]["calendar-sync"]["query"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(q.threshold, 600.0);
}

/// The archive-lag alarm of the backups is rendered only when the target runs PostgreSQL
/// itself; then it watches the gauge the backup schedule writes and the exporter posts, and
/// the stack stays valid for the provider and `terraform fmt` clean.
#[test]
fn the_backup_archive_alarm_is_conditional_and_watches_a_posted_metric() {
    let test = "the_backup_archive_alarm_is_conditional_and_watches_a_posted_metric";
    let mut input = input_for("prod-au", showcase_slots());
    input.monitoring.backup_archive_alarm = true;
    let (tfvars, r) = service_alarms(&input);
    let a = &tfvars["service_alarms"]["backup-archive-lag"];
    let q = crate::support::mql::parse(a["query"].as_str().unwrap()).unwrap();
    assert_eq!(q.metric, "calops_backup_archive_pending_age_seconds");
    assert!(posted_metric_names().contains(&q.metric));
    assert_eq!(
        (q.operator.as_str(), q.threshold),
        (">", 900.0),
        "15 minutes"
    );
    let dir = write_rendered(&r);
    let f = findings(dir.path());
    assert!(f.is_empty(), "{f:#?}");
    if let Some((ok, out)) = terraform_fmt_check(test, dir.path()) {
        assert!(ok, "{out}");
    }
}
