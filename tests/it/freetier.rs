//! The `oci-vm` target's shipped profile `free-au`, run through the real binary: `plan`
//! estimates $0 with the Always Free allowance it assumes and the price table's date, `plan` and
//! `doctor` warn when a size leaves the allowance, and the commands deploy by pull would serve
//! (not implemented yet) refuse clearly and change nothing.

use calops::terraform::cost::PriceTable;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn profiles() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles")
}

/// Run calops in an empty directory with `env` overrides: (exit code, stdout, stderr, dir).
fn calops(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_calops"));
    c.current_dir(dir.path())
        .env("CALOPS_PROFILE_DIR", profiles())
        .env("NO_COLOR", "1")
        .args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        dir,
    )
}

fn plan_json(env: &[(&str, &str)]) -> (Value, String) {
    let (code, out, err, _d) = calops(&["plan", "--profile", "free-au", "--json"], env);
    assert_eq!(code, 0, "{err}");
    (serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}")), err)
}

#[test]
fn free_au_plans_to_zero_with_the_allowance_assumed_and_the_price_date() {
    let table = PriceTable::bundled();
    let (v, err) = plan_json(&[]);
    assert_eq!(v["total"], 0.0, "{v:#}");
    assert_eq!(v["prices_as_of"], table.as_of.as_str());
    assert_eq!(v["allowance"]["a1_ocpus"], 2.0);
    assert_eq!(v["allowance"]["a1_memory_gbs"], 12.0);
    assert_eq!(v["outside_allowance"], serde_json::json!([]));
    assert!(v["lines"][0]["basis"]
        .as_str()
        .unwrap()
        .contains("VM.Standard.A1.Flex: 2 OCPU + 12 GB"));
    assert!(!err.contains("above"), "no allowance warning: {err}");
    // The human form names the allowance and the date.
    let (code, out, _, _d) = calops(&["plan", "--profile", "free-au"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("Always Free allowance assumed") && out.contains(&table.as_of), "{out}");
    assert!(out.contains("total") && out.contains("0.00 USD"), "{out}");
}

#[test]
fn sizes_above_the_allowance_are_priced_and_warned_by_plan_and_doctor() {
    let (v, err) = plan_json(&[("CALOPS_VM_OCPUS", "4"), ("CALOPS_VM_MEMORY_GBS", "24")]);
    let t = PriceTable::bundled();
    let rate = &t.compute["VM.Standard.A1.Flex"];
    let want = ((t.hours_per_month * (2.0 * rate.ocpu_hour + 12.0 * rate.memory_gb_hour)) * 100.0)
        .round()
        / 100.0;
    assert_eq!(v["total"].as_f64().unwrap(), want, "{v:#}");
    let outside = v["outside_allowance"].to_string();
    assert!(outside.contains("ocpus = 4") && outside.contains("memory_gbs = 24"), "{outside}");
    assert!(err.contains("warning: [vm] ocpus = 4 is above"), "{err}");
    let (v, _) = plan_json(&[
        ("CALOPS_LOAD_BALANCER_MAX_BANDWIDTH_MBPS", "100"),
        ("CALOPS_VM_BLOCK_VOLUME_GBS", "200"),
    ]);
    let outside = v["outside_allowance"].to_string();
    assert!(outside.contains("max_bandwidth_mbps = 100"), "{outside}");
    assert!(outside.contains("250 GB"), "{outside}");
    assert!(v["total"].as_f64().unwrap() > 0.0);

    let (_, out, err, _d) = calops(
        &["doctor", "--profile", "free-au", "--json"],
        &[("CALOPS_VM_OCPUS", "3")],
    );
    let doc: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    let check = doc["report"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "always free")
        .unwrap_or_else(|| panic!("{doc:#}"));
    assert_eq!(check["status"], "warn", "{check:#}");
    assert!(check["detail"].as_str().unwrap().contains("ocpus = 3"), "{check:#}");
}

#[test]
fn deploy_and_friends_refuse_the_vm_target_and_change_nothing() {
    for args in [
        &["deploy", "--profile", "free-au"][..],
        &["rollback", "--profile", "free-au"],
        &["status", "--profile", "free-au"],
        &["releases", "--profile", "free-au"],
        &["backup", "now", "--profile", "free-au"],
    ] {
        let (code, out, err, dir) = calops(args, &[]);
        assert_ne!(code, 0, "{args:?}: {out}");
        assert!(
            err.contains("target = \"oci-vm\"") && err.contains("not implemented yet") && err.contains("nothing was changed"),
            "{args:?}: {err}"
        );
        assert!(err.contains("fix: "), "{args:?}: {err}");
        assert!(
            std::fs::read_dir(dir.path()).unwrap().next().is_none(),
            "{args:?} left files behind"
        );
    }
}
