//! Profiles and doctor through the real binary: every bad input gets a precise error and exit 1.

use assert_cmd::Command;
use std::path::{Path, PathBuf};

const BASE: &str = include_str!("../../profiles/base.toml");
const PROD_AU: &str = include_str!("../../profiles/prod-au.toml");

/// A scratch directory with `profiles/base.toml` and the given extra profiles.
fn workspace(files: &[(&str, &str)]) -> tempfile::TempDir {
    workspace_with_base(BASE, files)
}

/// [`workspace`] with another `base.toml`.
fn workspace_with_base(base: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("profiles");
    std::fs::create_dir(&p).unwrap();
    std::fs::write(p.join("base.toml"), base).unwrap();
    for (name, text) in files {
        std::fs::write(p.join(format!("{name}.toml")), text).unwrap();
    }
    dir
}

fn calops(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("calops").unwrap();
    c.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("CALOPS_") {
            c.env_remove(k);
        }
    }
    c
}

/// Run `profile show` on a profile; expect exit 1 and return stderr.
fn show_fails(dir: &Path, profile: &str) -> String {
    let out = calops(dir)
        .args(["profile", "show", "--profile", profile])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected exit 1, stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// prod-au with one line replaced.
fn prod_with(from: &str, to: &str) -> String {
    assert!(
        PROD_AU.contains(from),
        "fixture line `{from}` not in prod-au.toml"
    );
    PROD_AU.replacen(from, to, 1)
}

/// The 1-based line of the first occurrence of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn shipped_profiles_are_valid() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for p in ["local", "dev", "prod-au"] {
        let out = calops(&root)
            .args(["profile", "show", "--json", "--profile", p])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{p}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["name"], p);
        assert_eq!(v["hash"].as_str().unwrap().len(), 64);
    }
    let out = calops(&root)
        .args(["profile", "show", "--json", "--profile", "prod-au"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["oci"]["region"], "ap-sydney-1");
    assert_eq!(v["service"]["shape"], "CI.Standard.A1.Flex");
    assert_eq!(v["target"], "oci");
}

#[test]
fn malformed_toml() {
    let text = prod_with("node_count = 2", "node_count = = 2");
    let d = workspace(&[("p", &text)]);
    let e = show_fails(d.path(), "p");
    let line = line_of(&text, "node_count = = 2");
    assert!(e.contains(&format!("p.toml:{line}:")), "{e}");
    assert!(e.contains("malformed TOML"), "{e}");
}

#[test]
fn unknown_key_with_suggestion() {
    let text = prod_with("node_count = 2", "node_cuont = 2");
    let d = workspace(&[("p", &text)]);
    let e = show_fails(d.path(), "p");
    let line = line_of(&text, "node_cuont");
    assert!(e.contains(&format!("p.toml:{line}:")), "{e}");
    assert!(
        e.contains("cache.node_cuont: unknown key in [cache]"),
        "{e}"
    );
    assert!(e.contains("did you mean `node_count`?"), "{e}");
}

#[test]
fn wrong_type() {
    let text = prod_with("instance_count = 2", "instance_count = \"two\"");
    let d = workspace(&[("p", &text)]);
    let e = show_fails(d.path(), "p");
    let line = line_of(&text, "instance_count = \"two\"");
    assert!(
        e.contains(&format!(
            "p.toml:{line}:18: database.instance_count: expected an integer, found a string"
        )),
        "{e}"
    );
}

#[test]
fn missing_required_field() {
    let text = prod_with("region = \"ap-sydney-1\"\n", "");
    let d = workspace(&[("p", &text)]);
    let e = show_fails(d.path(), "p");
    assert!(e.contains("oci.region: missing required field"), "{e}");
    assert!(e.contains("add `region = <string>` to [oci]"), "{e}");
}

#[test]
fn cidr_not_parseable() {
    let text = prod_with("vcn_cidr = \"10.20.0.0/16\"", "vcn_cidr = \"10.20.0/16x\"");
    let d = workspace(&[("p", &text)]);
    let e = show_fails(d.path(), "p");
    let line = line_of(&text, "10.20.0/16x");
    assert!(
        e.contains(&format!(
            "p.toml:{line}:12: network.vcn_cidr: `10.20.0/16x` is not an IPv4 CIDR block"
        )),
        "{e}"
    );
}

#[test]
fn subnet_outside_vcn() {
    let text = prod_with(
        "private_subnet_cidr = \"10.20.1.0/24\"",
        "private_subnet_cidr = \"10.99.1.0/24\"",
    );
    let d = workspace(&[("p", &text)]);
    let e = show_fails(d.path(), "p");
    let line = line_of(&text, "10.99.1.0/24");
    assert!(e.contains(&format!("p.toml:{line}:23: network.private_subnet_cidr: subnet 10.99.1.0/24 is outside the VCN 10.20.0.0/16")), "{e}");
}

#[test]
fn overlapping_subnets() {
    let text = prod_with(
        "private_subnet_cidr = \"10.20.1.0/24\"",
        "private_subnet_cidr = \"10.20.0.128/25\"",
    );
    let d = workspace(&[("p", &text)]);
    let e = show_fails(d.path(), "p");
    assert!(e.contains("network.private_subnet_cidr: subnet 10.20.0.128/25 overlaps the public subnet 10.20.0.0/24"), "{e}");
}

#[test]
fn unknown_region() {
    let text = prod_with("region = \"ap-sydney-1\"", "region = \"ap-sidney-1\"");
    let d = workspace(&[("p", &text)]);
    let e = show_fails(d.path(), "p");
    assert!(e.contains("oci.region: `ap-sidney-1` is not a known OCI region identifier; did you mean `ap-sydney-1`?"), "{e}");
}

#[test]
fn malformed_ocid() {
    let text = prod_with(
        "compartment_id = \"ocid1.compartment.oc1..",
        "compartment_id = \"ocid1.compartment.xx1..",
    );
    let d = workspace(&[("p", &text)]);
    let e = show_fails(d.path(), "p");
    assert!(
        e.contains("oci.compartment_id:") && e.contains("malformed realm `xx1`"),
        "{e}"
    );
}

#[test]
fn ocpus_out_of_shape_range() {
    let text = prod_with("ocpus = 2\nmemory_gbs = 8", "ocpus = 100\nmemory_gbs = 8");
    let d = workspace(&[("p", &text)]);
    let e = show_fails(d.path(), "p");
    assert!(
        e.contains("service.ocpus: 100 OCPUs is out of range for shape CI.Standard.A1.Flex"),
        "{e}"
    );
    assert!(e.contains("allowed: 1 to 80 OCPUs"), "{e}");
}

#[test]
fn replicas_are_validated_and_default_to_one() {
    let text = prod_with("replicas = 2 ", "replicas = 0 ");
    let d = workspace(&[("p", &text)]);
    let e = show_fails(d.path(), "p");
    assert!(e.contains("service.replicas: 0 is out of range"), "{e}");
    assert!(
        e.contains("allowed: 1 to 12 container instances per slot"),
        "{e}"
    );
    assert!(
        e.contains(&format!("p.toml:{}", line_of(&text, "replicas = 0"))),
        "{e}"
    );
    let text = prod_with("replicas = 2 ", "replicas = \"two\" ");
    let d = workspace(&[("p", &text)]);
    assert!(show_fails(d.path(), "p").contains("service.replicas"));
    // Not set anywhere: one instance per slot.
    let base_without = BASE.replace("replicas = 1 ", "# no replicas ");
    assert_ne!(base_without, BASE);
    let d = workspace_with_base(
        &base_without,
        &[("dev", include_str!("../../profiles/dev.toml"))],
    );
    let out = calops(d.path())
        .args(["profile", "show", "--json", "--profile", "dev"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["service"]["replicas"], 1, "{v}");
}

#[test]
fn home_region_and_availability_domain_pins() {
    let text = prod_with(
        "# home_region = \"ap-sydney-1\"",
        "home_region = \"ap-sydnee-1\"",
    );
    let d = workspace(&[("p", &text)]);
    let e = show_fails(d.path(), "p");
    assert!(
        e.contains("oci.home_region") && e.contains("did you mean `ap-sydney-1`?"),
        "{e}"
    );
    let text = prod_with(
        "# availability_domains = [\"Uocm:AP-SYDNEY-1-AD-1\"]",
        "availability_domain = \"Uocm:AP-SYDNEY-1-AD-1\"\navailability_domains = [\"Uocm:AP-SYDNEY-1-AD-1\"]",
    );
    let d = workspace(&[("p", &text)]);
    let e = show_fails(d.path(), "p");
    assert!(
        e.contains("both `availability_domain` and `availability_domains` are set"),
        "{e}"
    );
}

#[test]
fn bandwidth_out_of_range() {
    let text = prod_with("max_bandwidth_mbps = 100", "max_bandwidth_mbps = 9000");
    let d = workspace(&[("p", &text)]);
    let e = show_fails(d.path(), "p");
    assert!(
        e.contains("load_balancer.max_bandwidth_mbps: 9000 is out of range"),
        "{e}"
    );
    assert!(e.contains("allowed: 10 to 8000 Mbps"), "{e}");
}

#[test]
fn literal_secret_is_refused_without_echo() {
    let secret = "Sup3r-Secret-Passw0rd!";
    let text = prod_with(
        "CALOPS_ADMIN_TOKEN = \"vault:",
        &format!("DB_PASSWORD_X = \"{secret}\"\nCALOPS_ADMIN_TOKEN = \"vault:"),
    );
    let d = workspace(&[("p", &text)]);
    let out = calops(d.path())
        .args(["profile", "show", "--json", "--profile", "p"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(secret), "secret echoed: {all}");
    assert!(
        all.contains(
            "service.secrets.DB_PASSWORD_X: a literal value is not allowed in a secret field"
        ),
        "{all}"
    );
    // A secret-looking literal in plain environment is refused too.
    let text = prod_with("RUST_LOG = \"info\"", &format!("API_TOKEN = \"{secret}\""));
    let d = workspace(&[("p", &text)]);
    let e = show_fails(d.path(), "p");
    assert!(!e.contains(secret), "{e}");
    assert!(
        e.contains("service.environment.API_TOKEN: this variable looks like a secret"),
        "{e}"
    );
    // And the database password must be a Vault reference, never a literal.
    let text = prod_with(
        "admin_password = \"vault:",
        &format!("admin_password = \"{secret}\"\n#"),
    );
    let d = workspace(&[("p", &text)]);
    let e = show_fails(d.path(), "p");
    assert!(!e.contains(secret), "{e}");
    assert!(
        e.contains("database.admin_password: a literal value is not allowed"),
        "{e}"
    );
}

#[test]
fn extends_cycle() {
    let d = workspace(&[("a", "extends = \"b\"\n"), ("b", "extends = \"a\"\n")]);
    let e = show_fails(d.path(), "a");
    assert!(e.contains("`extends` forms a cycle"), "{e}");
    assert!(e.contains("a.toml -> ") && e.contains("b.toml -> "), "{e}");
}

#[test]
fn extends_target_missing() {
    let d = workspace(&[("a", "extends = \"nosuch\"\ntarget = \"local\"\n")]);
    let e = show_fails(d.path(), "a");
    assert!(
        e.contains("a.toml:1:11: extends: `extends = \"nosuch\"`: no profile named `nosuch`"),
        "{e}"
    );
    assert!(e.contains("available profiles: a, base"), "{e}");
}

#[test]
fn profile_not_found_lists_available() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let e = show_fails(&root, "prod-ua");
    assert!(e.contains("no profile named `prod-ua`"), "{e}");
    assert!(e.contains("did you mean `prod-au`?"), "{e}");
    assert!(
        e.contains("available profiles: base, dev, free-au, local, prod-au"),
        "{e}"
    );
}

#[test]
fn env_overrides_apply_and_are_validated() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = calops(&root)
        .env("CALOPS_DATABASE_OCPUS", "4")
        .env("CALOPS_DATABASE_MEMORY_GBS", "64")
        .env("CALOPS_LOAD_BALANCER_MAX_BANDWIDTH_MBPS", "200")
        .args(["profile", "show", "--json", "-v", "--profile", "prod-au"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["database"]["ocpus"], 4.0);
    assert_eq!(v["load_balancer"]["max_bandwidth_mbps"], 200);
    assert_eq!(
        v["origins"]["database.ocpus"],
        "environment variable CALOPS_DATABASE_OCPUS"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("override: database.ocpus from CALOPS_DATABASE_OCPUS"),
        "{stderr}"
    );

    let out = calops(&root)
        .env("CALOPS_DATABASE_OCPU", "4")
        .args(["profile", "show", "--profile", "prod-au"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "environment variable CALOPS_DATABASE_OCPU: database.ocpu: unknown key in [database]"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `ocpus`?"), "{stderr}");
}

#[test]
fn many_problems_reported_at_once() {
    let text = prod_with("region = \"ap-sydney-1\"", "region = \"mars-1\"")
        .replacen("max_bandwidth_mbps = 100", "max_bandwidth_mbps = 1", 1)
        .replacen("node_count = 2", "node_count = 9", 1);
    let d = workspace(&[("p", &text)]);
    let e = show_fails(d.path(), "p");
    assert!(e.contains("(3 problems)"), "{e}");
}

#[test]
fn doctor_json_is_one_document() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = calops(&root)
        .args(["doctor", "--profile", "local", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("one JSON document on stdout");
    let checks = v["report"]["checks"].as_array().unwrap();
    assert!(checks.iter().any(|c| c["name"] == "postgresql"));
    assert_eq!(v["ok"].as_bool().unwrap(), out.status.success());
}

#[test]
fn doctor_explains_missing_tools() {
    // With an empty PATH nothing is found: every failed check carries a fix, and exit is 1.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let empty = tempfile::tempdir().unwrap();
    let out = calops(&root)
        .env("PATH", empty.path())
        .args(["doctor", "--profile", "prod-au", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks = v["report"]["checks"].as_array().unwrap();
    let tf = checks.iter().find(|c| c["name"] == "terraform").unwrap();
    assert_eq!(tf["status"], "fail");
    assert!(tf["fix"].as_str().unwrap().contains("Terraform >= 1.5"));
    for c in checks.iter().filter(|c| c["status"] != "ok") {
        assert!(c["fix"].as_str().is_some_and(|f| !f.is_empty()), "{c}");
    }
}

#[test]
fn completions_and_version() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for sh in ["bash", "zsh", "fish"] {
        let out = calops(&root).args(["completions", sh]).output().unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("calops"));
    }
    let out = calops(&root).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout)
        .starts_with(&format!("calops {}", env!("CARGO_PKG_VERSION"))));
    // Usage errors exit 1, never 2 (2 means "changes" for plan).
    let out = calops(&root).arg("--no-such-flag").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
}

mod oci_config {
    use super::*;
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    use std::os::unix::fs::PermissionsExt;

    struct Setup {
        dir: tempfile::TempDir,
        config: PathBuf,
        key: PathBuf,
        fingerprint: String,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap();
        let fingerprint = calops::oci::keys::fingerprint(&rsa::RsaPublicKey::from(&key));
        let key_path = dir.path().join("key.pem");
        std::fs::write(
            &key_path,
            key.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes(),
        )
        .unwrap();
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let config = dir.path().join("config");
        Setup {
            dir,
            config,
            key: key_path,
            fingerprint,
        }
    }

    fn write_config(s: &Setup, profile: &str, fingerprint: &str) {
        let text = format!(
            "[DEFAULT]\ntenancy=ocid1.tenancy.oc1..aaaaaaaatenancyexample000000000\nregion=ap-sydney-1\nkey_file={}\n\n[{profile}]\nuser = ocid1.user.oc1..aaaaaaaauserexample0000000000\nfingerprint = {fingerprint}\n",
            s.key.display()
        );
        std::fs::write(&s.config, text).unwrap();
    }

    /// Run doctor on prod-au with the OCI config at `s.config`; return (exit code, checks).
    fn doctor(s: &Setup, oci_profile: &str) -> (i32, Vec<serde_json::Value>) {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let out = calops(&root)
            .env("CALOPS_OCI_CONFIG_FILE", &s.config)
            .env("CALOPS_OCI_CONFIG_PROFILE", oci_profile)
            .args(["doctor", "--profile", "prod-au", "--json"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            out.status.code().unwrap(),
            v["report"]["checks"].as_array().unwrap().clone(),
        )
    }

    fn check<'a>(checks: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
        checks
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name} in {checks:?}"))
    }

    #[test]
    fn good_config_passes() {
        let s = setup();
        write_config(&s, "CALOPS", &s.fingerprint);
        let (_, checks) = doctor(&s, "CALOPS");
        for name in ["oci-config", "oci-identity", "oci-key", "oci-fingerprint"] {
            assert_eq!(
                check(&checks, name)["status"],
                "ok",
                "{name}: {:?}",
                check(&checks, name)
            );
        }
        assert_eq!(
            check(&checks, "oci-fingerprint")["found"],
            s.fingerprint.as_str()
        );
    }

    #[test]
    fn config_missing() {
        let s = setup();
        let (code, checks) = doctor(&s, "DEFAULT");
        assert_eq!(code, 1);
        let c = check(&checks, "oci-config");
        assert_eq!(c["status"], "fail");
        assert!(c["detail"].as_str().unwrap().contains("not found"), "{c}");
        assert!(
            c["fix"].as_str().unwrap().contains("oci setup config"),
            "{c}"
        );
    }

    #[test]
    fn profile_missing() {
        let s = setup();
        write_config(&s, "CALOPS", &s.fingerprint);
        let (code, checks) = doctor(&s, "NOPE");
        assert_eq!(code, 1);
        let c = check(&checks, "oci-config");
        assert!(
            c["detail"]
                .as_str()
                .unwrap()
                .contains("profile [NOPE] not found"),
            "{c}"
        );
        assert!(
            c["detail"].as_str().unwrap().contains("CALOPS"),
            "lists the profiles there: {c}"
        );
    }

    #[test]
    fn key_unreadable() {
        let s = setup();
        write_config(&s, "CALOPS", &s.fingerprint);
        std::fs::remove_file(&s.key).unwrap();
        let (code, checks) = doctor(&s, "CALOPS");
        assert_eq!(code, 1);
        let c = check(&checks, "oci-key");
        assert_eq!(c["status"], "fail");
        assert!(c["detail"].as_str().unwrap().contains("not found"), "{c}");
    }

    #[test]
    fn key_permissions_too_open() {
        let s = setup();
        write_config(&s, "CALOPS", &s.fingerprint);
        std::fs::set_permissions(&s.key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (code, checks) = doctor(&s, "CALOPS");
        assert_eq!(code, 1);
        let c = check(&checks, "oci-key");
        assert!(c["fix"].as_str().unwrap().contains("chmod 600"), "{c}");
    }

    #[test]
    fn fingerprint_mismatch() {
        let s = setup();
        let wrong = "00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff";
        write_config(&s, "CALOPS", wrong);
        let (code, checks) = doctor(&s, "CALOPS");
        assert_eq!(code, 1);
        let c = check(&checks, "oci-fingerprint");
        let d = c["detail"].as_str().unwrap();
        assert!(
            d.contains(wrong) && d.contains(&s.fingerprint),
            "names both: {c}"
        );
        let _ = &s.dir;
    }
}

/// The service alarms' thresholds default to the runbook's and are checked with the field, the
/// line and the allowed range.
#[test]
fn monitoring_thresholds_default_to_the_runbook_and_are_validated() {
    let d = workspace(&[("p", PROD_AU)]);
    let out = calops(d.path())
        .args(["profile", "show", "--profile", "p", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "\"http_5xx_percent\": 1",
        "\"booking_failure_percent\": 3",
        "\"webhook_latency_p95_seconds\": 5",
        "\"queue_depth\": 1000",
        "\"calendar_sync_age_seconds\": 1800",
    ] {
        assert!(text.contains(want), "{want} in {text}");
    }
    for (line, field, allowed) in [
        (
            "http_5xx_percent = 0",
            "monitoring.http_5xx_percent: 0 is out of range",
            "allowed: more than 0, at most 100 percent",
        ),
        (
            "booking_failure_percent = 150",
            "monitoring.booking_failure_percent: 150 is out of range",
            "at most 100 percent",
        ),
        (
            "queue_depth = 0",
            "monitoring.queue_depth: 0 is out of range",
            "allowed: 1 to 10000000 items",
        ),
        (
            "calendar_sync_age_seconds = 10",
            "monitoring.calendar_sync_age_seconds: 10 is out of range",
            "allowed: 60 to 604800 seconds",
        ),
    ] {
        let text = prod_with(
            "notification_email = \"ops@example.com.au\"",
            &format!("notification_email = \"ops@example.com.au\"\n{line}"),
        );
        let d = workspace(&[("p", &text)]);
        let e = show_fails(d.path(), "p");
        assert!(e.contains(field), "{line}: {e}");
        assert!(e.contains(allowed), "{line}: {e}");
        assert!(
            e.contains(&format!("p.toml:{}", line_of(&text, line))),
            "{line}: {e}"
        );
    }
}

/// `[service] mail_sender`: an address mail can be sent from, shown by `profile show`; one
/// that is not is an error naming the key, the file and the line.
#[test]
fn mail_sender_is_an_address_mail_can_be_sent_from() {
    let ok = prod_with(
        "[service]\n",
        "[service]\nmail_sender = \"bookings@example.com\"\n",
    );
    let d = workspace(&[("p", &ok)]);
    let out = calops(d.path())
        .args(["profile", "show", "--profile", "p", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\"mail_sender\": \"bookings@example.com\""),
        "{text}"
    );
    for bad in ["bookings..x@example.com", "bookings", "bookings@localhost"] {
        let line = format!("mail_sender = \"{bad}\"");
        let text = prod_with("[service]\n", &format!("[service]\n{line}\n"));
        let d = workspace(&[("p", &text)]);
        let e = show_fails(d.path(), "p");
        assert!(e.contains("service.mail_sender"), "{bad}: {e}");
        assert!(e.contains(bad), "{bad}: {e}");
        assert!(
            e.contains(&format!("p.toml:{}", line_of(&text, &line))),
            "{bad}: {e}"
        );
    }
}
