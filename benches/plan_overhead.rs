//! Overhead of `calops tf-plan` over a bare `terraform plan` on the same fixture, side by side
//! in one run.
//!
//! Both plan the same `terraform_data` configuration and save a plan file: applied first
//! (both refresh state and find no changes), or not (both plan creates), or applied and then
//! changed (updates, or a replacement). Runs alternate to spread machine noise evenly. Prints
//! the medians and their ratio (goal: at most 1.05) and checks in calops's log that every
//! calops run started exactly one Terraform process (`plan`; never `show`).
//!
//! Worst case for the ratio: `terraform_data` is built into Terraform, so a bare plan here costs
//! a fraction of a second; with the OCI provider a plan process loads the provider's schema
//! (about a second) and the bare plan's time grows while calops's own share (its start, reading
//! the plan file, the summary) does not. Run with `cargo bench --bench plan_overhead`;
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
             variable \"tag\" {{\n  default = \"v1\"\n}}\n\
             resource \"terraform_data\" \"db\" {{\n  input = {{ size = var.size }}\n  triggers_replace = [var.size]\n}}\n\
             resource \"terraform_data\" \"item\" {{\n  count = {resources}\n  input = {{ name = \"item-${{count.index}}\", tag = var.tag, shape = [{{ ocpus = 1, memory = 6 }}] }}\n}}\n"
        ),
    )
    .unwrap();
}

/// What changes after the apply.
#[derive(Clone, Copy, PartialEq)]
enum Change {
    /// Nothing applied: every resource is created.
    Fresh,
    /// Applied and unchanged: no changes.
    None,
    /// Applied, then `tag` changes: every `item` is updated in place.
    Update,
    /// Applied, then `size` changes: `db` is replaced.
    Replace,
}

fn bench(label: &str, resources: usize, change: Change, runs: usize, tmp: &Path) {
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
    let expect: &[i32] = if change == Change::None { &[0] } else { &[2] };
    if change != Change::Fresh {
        time(calops(&["tf-apply", "--dir", d]), &[0]);
    }
    match change {
        Change::Update => std::fs::write(dir.join("x.auto.tfvars"), "tag = \"v2\"\n").unwrap(),
        Change::Replace => std::fs::write(dir.join("x.auto.tfvars"), "size = \"large\"\n").unwrap(),
        _ => {}
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
    // Every calops run was exactly one Terraform process: a plan, never a show.
    let logged = std::fs::read_to_string(&log).unwrap();
    let subcommands: Vec<&str> = logged
        .lines()
        .filter(|l| l.starts_with("=== "))
        .filter_map(|l| l.split_once(" $ "))
        .filter_map(|(_, c)| c.split_whitespace().nth(1))
        .collect();
    // (The first run in a fresh directory also initialises it: `terraform init` with no provider
    // to install leaves no `.terraform` behind, which calops takes as not initialised.)
    let plans = subcommands.strip_prefix(&["init"]).unwrap_or(&subcommands);
    assert_eq!(plans, vec!["plan"; runs + 1], "{label}: Terraform runs");
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
        bench("smoke (cargo test)", 1, Change::Replace, 1, tmp.path());
        return;
    }
    let runs: usize = std::env::var("PLAN_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    println!("plan_overhead: calops tf-plan (one process: plan -json -out; the plan read from the plan file; summary + cost + guard) vs bare terraform plan -out");
    bench("no changes, small", 1, Change::None, runs, tmp.path());
    bench("no changes, medium", 50, Change::None, runs, tmp.path());
    bench("no changes, large", 300, Change::None, runs, tmp.path());
    bench("all creates, medium", 50, Change::Fresh, runs, tmp.path());
    bench("all updates, medium", 50, Change::Update, runs, tmp.path());
    bench(
        "one replacement, medium",
        50,
        Change::Replace,
        runs,
        tmp.path(),
    );
}
