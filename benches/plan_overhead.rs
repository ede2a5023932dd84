//! Overhead of `calops tf-plan` over a bare `terraform plan` on the same fixture.
//!
//! Both plan the same `terraform_data` configuration and save a plan file: applied first
//! (both refresh state and find no changes), or not (both plan creates); runs alternate to spread machine noise evenly. Prints the
//! medians and their ratio (goal: under 1.10). Run with `cargo bench --bench plan_overhead`;
//! `PLAN_BENCH_RUNS=N` changes the number of runs (default 15).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_calops");

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time(mut c: Command, expect: &[i32]) -> Duration {
    let t = Instant::now();
    let st = c
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run");
    let d = t.elapsed();
    assert!(
        st.code().is_some_and(|c| expect.contains(&c)),
        "{c:?} exited {st}"
    );
    d
}

fn setup(dir: &Path, resources: usize) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("main.tf"),
        format!(
            "variable \"size\" {{\n  default = \"small\"\n}}\n\
             resource \"terraform_data\" \"db\" {{\n  input = {{ size = var.size }}\n  triggers_replace = [var.size]\n}}\n\
             resource \"terraform_data\" \"item\" {{\n  count = {resources}\n  input = \"item-${{count.index}}\"\n}}\n"
        ),
    )
    .unwrap();
}

fn bench(label: &str, resources: usize, applied: bool, runs: usize, tmp: &Path) {
    bench_with(label, resources, applied, false, runs, tmp)
}

/// `replace`: after the apply, a changed input makes both plans replace one resource (the
/// case where calops still needs `terraform show -json` for the forcing attribute).
fn bench_with(
    label: &str,
    resources: usize,
    applied: bool,
    replace: bool,
    runs: usize,
    tmp: &Path,
) {
    let dir = tmp.join(label.replace([' ', ','], "_"));
    setup(&dir, resources);
    let tf = |args: &[&str]| {
        let mut c = Command::new("terraform");
        c.args(args)
            .current_dir(&dir)
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_CLI_CONFIG_FILE", "/dev/null");
        c
    };
    let calops = |args: &[&str]| {
        let mut c = Command::new(BIN);
        c.args(args)
            .current_dir(tmp)
            .env("XDG_CACHE_HOME", tmp.join("cache"))
            .env("TF_CLI_CONFIG_FILE", "/dev/null");
        c
    };
    let d = dir.to_str().unwrap();
    time(tf(&["init", "-input=false"]), &[0]);
    // Applied: both plans refresh state and find no changes. Not applied: both plan creates.
    let expect: &[i32] = if applied && !replace { &[0] } else { &[2] };
    if applied {
        time(calops(&["tf-apply", "--dir", d]), &[0]);
    }
    if replace {
        std::fs::write(dir.join("size.auto.tfvars"), "size = \"large\"\n").unwrap();
    }
    let mut bare = Vec::new();
    let mut ours = Vec::new();
    let log = tmp.join(format!("{label}.log"));
    for i in 0..runs + 1 {
        let b = time(
            tf(&[
                "plan",
                "-input=false",
                "-out=bare.tfplan",
                "-detailed-exitcode",
            ]),
            expect,
        );
        let o = time(
            calops(&[
                "tf-plan",
                "--dir",
                d,
                "--detailed-exitcode",
                "--json",
                "--log",
                log.to_str().unwrap(),
            ]),
            expect,
        );
        if i > 0 {
            // The first pair warms the page cache.
            bare.push(b);
            ours.push(o);
        }
    }
    let (mb, mo) = (median(bare), median(ours));
    println!(
        "{label:<28} resources={:<4} runs={runs:<3} terraform plan median {:>7.1} ms   calops tf-plan median {:>7.1} ms   ratio {:.3}",
        resources + 1,
        mb.as_secs_f64() * 1e3,
        mo.as_secs_f64() * 1e3,
        mo.as_secs_f64() / mb.as_secs_f64()
    );
}

fn main() {
    if which::which("terraform").is_err() {
        calops_testkit::skip_or_fail("plan_overhead", "`terraform` is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // `cargo test --all-targets` runs this binary without `--bench`: one quick smoke pass.
    if !std::env::args().any(|a| a == "--bench") {
        bench("smoke (cargo test)", 1, true, 1, tmp.path());
        return;
    }
    let runs: usize = std::env::var("PLAN_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    println!("plan_overhead: calops tf-plan (plan -json -out, show -json only when needed, summary + cost + guard) vs bare terraform plan -out");
    bench("no changes, small", 1, true, runs, tmp.path());
    bench("no changes, medium", 50, true, runs, tmp.path());
    bench("no changes, large", 300, true, runs, tmp.path());
    bench("all creates, medium", 50, false, runs, tmp.path());
    bench_with("one replacement, medium", 50, true, true, runs, tmp.path());
}
