//! The Terraform driver against the real `terraform` binary, on fixture configurations made of
//! `terraform_data` (built into Terraform: no provider download, no cloud).

use calops::terraform::command::{EnvSnapshot, Op};
use calops::terraform::plan_json::Action;
use calops::terraform::{apply_if_changed, run_plan, PlanOptions, TfError};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_calops");

fn terraform(test: &str) -> Option<PathBuf> {
    calops_testkit::require_tool(test, "terraform")
}

/// A private copy of a fixture directory (each test gets its own state).
fn fixture(name: &str, tmp: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/terraform")
        .join(name);
    let dst = tmp.join(name);
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    dst
}

/// Options that keep the plugin cache and logs inside the test's temp dir.
fn opts(tmp: &Path) -> PlanOptions {
    PlanOptions {
        log: Some(tmp.join("logs/plan.log")),
        env: Some(EnvSnapshot {
            cache_dir: Some(tmp.join("cache")),
            home_dir: Some(tmp.to_path_buf()),
            cli_config_file: Some("/dev/null".into()),
            ..EnvSnapshot::default()
        }),
        ..PlanOptions::default()
    }
}

fn calops(tmp: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .current_dir(tmp)
        .env("XDG_CACHE_HOME", tmp.join("cache"))
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .env_remove("CALOPS_PROFILE");
    c
}

fn run(mut c: Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = c.output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

#[test]
fn first_plan_creates_and_exits_2_with_json_markdown_and_log() {
    if terraform("first_plan_creates_and_exits_2").is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture("basic", tmp.path());
    let md = tmp.path().join("comment.md");
    let (code, out, err) = run(calops(
        tmp.path(),
        &[
            "tf-plan",
            "--dir",
            dir.to_str().unwrap(),
            "--json",
            "--detailed-exitcode",
            "--markdown",
            md.to_str().unwrap(),
        ],
    ));
    assert_eq!(code, 2, "stdout: {out}\nstderr: {err}");
    let doc: serde_json::Value = serde_json::from_str(&out).expect("one JSON document");
    assert_eq!(doc["status"], "changes");
    assert_eq!(doc["summary"]["counts"]["create"], 2);
    assert_eq!(doc["summary"]["counts"]["replace"], 0);
    let addrs: Vec<&str> = doc["summary"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["address"].as_str().unwrap())
        .collect();
    assert_eq!(addrs, ["terraform_data.app", "terraform_data.db"]);
    assert!(doc["summary"]["cost"]["disclaimer"]
        .as_str()
        .unwrap()
        .starts_with("Estimate only"));
    let markdown = std::fs::read_to_string(&md).unwrap();
    assert!(markdown.contains("| 2 | 0 | 0 | 0 |"), "{markdown}");
    // The full log lands under .calops/<dir name>/logs/<timestamp>-plan.log.
    let logs: Vec<_> = std::fs::read_dir(tmp.path().join(".calops/basic/logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(logs.len(), 1);
    assert!(logs[0].to_string_lossy().ends_with("-plan.log"));
    let log = std::fs::read_to_string(&logs[0]).unwrap();
    // Plan runs with -json: the log has its messages as text, not JSON.
    assert!(log.contains("terraform_data.db: Plan to create"), "{log}");
    assert!(!log.contains("\"@message\""), "{log}");
    assert!(log.contains("attribute-level diff of this plan:"), "{log}");
    assert!(log.contains("-detailed-exitcode"));
    // Neither the output, the comment nor the log shows the sensitive default.
    for text in [&out, &err, &markdown, &log] {
        assert!(!text.contains("fixture-secret-basic"));
    }
    // Without --detailed-exitcode, changes still exit 0; human text on stdout; --out is
    // relative to where calops runs, not to the Terraform directory.
    let (code, out, _) = run(calops(
        tmp.path(),
        &[
            "tf-plan",
            "--dir",
            dir.to_str().unwrap(),
            "--out",
            "saved.tfplan",
        ],
    ));
    assert_eq!(code, 0);
    assert!(tmp.path().join("saved.tfplan").is_file());
    assert!(
        out.contains("Plan: 2 to create, 0 to update, 0 to replace, 0 to delete"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "Saved plan: {}",
            tmp.path().join("saved.tfplan").display()
        )),
        "{out}"
    );

    // --prices: a table of one's own (dated and sourced), or a clear error for a broken one.
    let mine = tmp.path().join("prices.toml");
    std::fs::write(
        &mine,
        calops::terraform::cost::BUNDLED
            .replace("as_of = \"2025-01-15\"", "as_of = \"2031-02-03\""),
    )
    .unwrap();
    let (code, out, err) = run(calops(
        tmp.path(),
        &[
            "tf-plan",
            "--dir",
            dir.to_str().unwrap(),
            "--prices",
            mine.to_str().unwrap(),
            "--json",
        ],
    ));
    assert_eq!(code, 0, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["summary"]["cost"]["prices_as_of"], "2031-02-03");
    std::fs::write(
        &mine,
        "as_of = \"x\"\n[cache]\nmemory_gb_hour = \"cheap\"\n",
    )
    .unwrap();
    let (code, _, err) = run(calops(
        tmp.path(),
        &[
            "tf-plan",
            "--dir",
            dir.to_str().unwrap(),
            "--prices",
            mine.to_str().unwrap(),
        ],
    ));
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("price table {} is not valid", mine.display())),
        "{err}"
    );
}

#[test]
fn apply_then_second_plan_has_no_changes_and_no_apply_call() {
    if terraform("apply_then_no_changes").is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture("basic", tmp.path());
    let o = opts(tmp.path());

    let first = apply_if_changed(&dir, &o, |_| {}).unwrap();
    assert!(first.applied);
    let ops: Vec<Op> = first.invocations.iter().map(|i| i.op).collect();
    // One plan process, no `terraform show -json`.
    assert_eq!(
        ops,
        [Op::Init, Op::Plan, Op::Apply, Op::Output, Op::StatePull]
    );
    assert!(first.invocations[1].args.contains(&"-json".to_string()));
    assert_eq!(first.outputs["db_size"].as_str(), Some("small"));
    assert!(first.outputs["db_password"].sensitive);
    assert!(!format!("{:?}", first.outputs).contains("fixture-secret-basic"));
    let serial = first.state_serial.expect("state exists after apply");
    // The shared plugin cache is created under the user's cache dir.
    assert!(tmp.path().join("cache/calops/plugin-cache").is_dir());

    let second = apply_if_changed(&dir, &o, |_| {}).unwrap();
    assert!(!second.applied);
    assert!(!second.plan.has_changes);
    assert_eq!(second.plan.exit_code, 0);
    assert!(
        second.invocations.iter().all(|i| i.op != Op::Apply),
        "no apply call when nothing changed: {:?}",
        second.invocations
    );
    assert_eq!(second.state_serial, Some(serial), "state untouched");
    assert_eq!(second.outputs["db_size"].as_str(), Some("small"));

    let plan = run_plan(&dir, &o, |_| {}).unwrap();
    assert!(!plan.has_changes);
    assert_eq!(plan.exit_code, 0);
    assert_eq!(plan.summary.counts.total(), 0);
    // The directory was initialised once; later runs do not init again.
    assert!(plan.invocations.iter().all(|i| i.op != Op::Init));
    // No changes: one Terraform process; the summary equals the one `show -json` gives.
    let ops: Vec<Op> = plan.invocations.iter().map(|i| i.op).collect();
    assert_eq!(ops, [Op::Plan]);
    let shown = run_plan(
        &dir,
        &PlanOptions {
            always_show: true,
            ..o.clone()
        },
        |_| {},
    )
    .unwrap();
    assert!(shown.invocations.iter().any(|i| i.op == Op::Show));
    assert_eq!(
        serde_json::to_value(&plan.summary).unwrap(),
        serde_json::to_value(&shown.summary).unwrap()
    );
    let (code, out, err) = run(calops(
        tmp.path(),
        &[
            "tf-plan",
            "--dir",
            dir.to_str().unwrap(),
            "--detailed-exitcode",
        ],
    ));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("No changes"), "{out}");

    // Plan, look at it, then apply exactly that saved plan file.
    std::fs::write(dir.join("size.auto.tfvars"), "size = \"medium\"\n").unwrap();
    let driver = calops::terraform::plan::driver_for(&dir, &o).unwrap();
    let planned = calops::terraform::plan::plan_with(&driver, &o, &|_| {}).unwrap();
    assert_eq!(planned.summary.counts.replace, 1);
    // The forcing attribute comes from the plan file: no `show -json`.
    let ops: Vec<Op> = planned.invocations.iter().map(|i| i.op).collect();
    assert_eq!(ops, [Op::Plan]);
    assert_eq!(planned.summary.resources[0].forcing, ["triggers_replace"]);
    let planfile = planned.planfile.display().to_string();
    let done = calops::terraform::apply::apply_planned(&driver, planned, &o, &|_| {}).unwrap();
    assert!(done.applied);
    let applies: Vec<_> = done
        .invocations
        .iter()
        .filter(|i| i.op == Op::Apply)
        .collect();
    assert_eq!(applies.len(), 1);
    assert_eq!(applies[0].args.last(), Some(&planfile));
    assert_eq!(done.outputs["db_size"].as_str(), Some("medium"));
    assert!(done.state_serial > Some(serial));
}

#[test]
fn changed_input_shows_replacement_and_the_forcing_attribute() {
    if terraform("changed_input_shows_replacement").is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture("basic", tmp.path());
    let o = opts(tmp.path());
    apply_if_changed(&dir, &o, |_| {}).unwrap();
    std::fs::write(dir.join("size.auto.tfvars"), "size = \"large\"\n").unwrap();
    let messages = std::sync::Mutex::new(Vec::<String>::new());
    let plan = run_plan(&dir, &o, |m| messages.lock().unwrap().push(m.to_string())).unwrap();
    assert!(plan.has_changes);
    assert_eq!(plan.exit_code, 2);
    assert_eq!(plan.summary.counts.replace, 1);
    assert_eq!(plan.summary.counts.update, 0);
    let db = &plan.summary.resources[0];
    assert_eq!(db.address, "terraform_data.db");
    assert_eq!(db.action, Action::Replace);
    assert_eq!(db.forcing, ["triggers_replace"]);
    // The spinner saw the step and the resource.
    assert!(messages
        .lock()
        .unwrap()
        .iter()
        .any(|m| m == "plan: refreshing terraform_data.db"));
    let human = calops::terraform::summary::render_human(&plan.summary);
    assert!(
        human.contains("-/+ terraform_data.db (replace): forced by triggers_replace"),
        "{human}"
    );
}

#[test]
fn protected_replacement_is_refused_without_allow_destroy() {
    if terraform("protected_replacement_refused").is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture("basic", tmp.path());
    let mut o = opts(tmp.path());
    apply_if_changed(&dir, &o, |_| {}).unwrap();
    std::fs::write(dir.join("size.auto.tfvars"), "size = \"large\"\n").unwrap();
    let d = dir.to_str().unwrap();

    // Refused: exit 1, explanation and fix, and the apply helper refuses before applying.
    let (code, out, err) = run(calops(
        tmp.path(),
        &["tf-plan", "--dir", d, "--protect", "terraform_data.db"],
    ));
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("refusing: this plan would destroy 1 protected resource"),
        "{out}"
    );
    assert!(
        out.contains("forced by a change to triggers_replace"),
        "{out}"
    );
    assert!(out.contains("--allow-destroy 'terraform_data.db'"), "{out}");
    let (code, out, _) = run(calops(
        tmp.path(),
        &[
            "tf-plan",
            "--dir",
            d,
            "--protect",
            "terraform_data.db",
            "--json",
        ],
    ));
    assert_eq!(code, 1);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["status"], "refused");
    assert_eq!(doc["summary"]["refused"][0]["address"], "terraform_data.db");

    o.guard.protect(&["terraform_data".into()]);
    let err = apply_if_changed(&dir, &o, |_| {}).unwrap_err().to_string();
    assert!(err.contains("refusing"), "{err}");

    // Named with --allow-destroy: allowed (exit 2 = changes).
    let (code, out, err) = run(calops(
        tmp.path(),
        &[
            "tf-plan",
            "--dir",
            d,
            "--protect",
            "terraform_data.db",
            "--allow-destroy",
            "terraform_data.db",
            "--detailed-exitcode",
        ],
    ));
    assert_eq!(code, 2, "{out}{err}");
    o.guard.allow_destroy = vec!["terraform_data.db".into()];
    let done = apply_if_changed(&dir, &o, |_| {}).unwrap();
    assert!(done.applied);
    assert_eq!(done.outputs["db_size"].as_str(), Some("large"));

    // prevent_destroy in the configuration: found by the guard's scan, and Terraform's own
    // refusal reaches the user with what to do.
    let g = fixture("guarded", tmp.path());
    let first = run_plan(&g, &o, |_| {}).unwrap();
    assert_eq!(
        first.summary.resources[0].protected.as_deref(),
        Some("lifecycle.prevent_destroy is set in its configuration")
    );
    apply_if_changed(&g, &o, |_| {}).unwrap();
    std::fs::write(g.join("size.auto.tfvars"), "size = \"large\"\n").unwrap();
    let (code, out, err) = run(calops(
        tmp.path(),
        &["tf-plan", "--dir", g.to_str().unwrap()],
    ));
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("Instance cannot be destroyed"), "{err}");
    assert!(err.contains("prevent_destroy"), "{err}");
}

#[test]
fn syntax_error_surfaces_terraforms_message() {
    if terraform("syntax_error_surfaces").is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture("syntax", tmp.path());
    let err = run_plan(&dir, &opts(tmp.path()), |_| {}).unwrap_err();
    let tf = err.downcast_ref::<TfError>().expect("a TfError");
    assert_eq!(tf.exit_code, Some(1));
    assert!(
        tf.message.contains("Error: Invalid multi-line string"),
        "{}",
        tf.message
    );
    assert!(tf.message.contains("on main.tf line 2"), "{}", tf.message);
    let (code, out, err) = run(calops(
        tmp.path(),
        &["tf-plan", "--dir", dir.to_str().unwrap(), "--json"],
    ));
    assert_eq!(code, 1);
    assert!(err.contains("Invalid multi-line string"), "{err}");
    assert!(!err.contains("exit status 1\n") || err.contains("on main.tf line 2"));
    // A terraform path override that points nowhere says so and how to fix it.
    let mut c = calops(tmp.path(), &["tf-plan", "--dir", dir.to_str().unwrap()]);
    c.env("CALOPS_TERRAFORM", "/nonexistent/terraform");
    let (code2, _, err2) = run(c);
    assert_eq!(code2, 1);
    assert!(
        err2.contains("terraform not found: `/nonexistent/terraform`"),
        "{err2}"
    );
    assert!(err2.contains("CALOPS_TERRAFORM"), "{err2}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(doc["error"]["message"]
        .as_str()
        .unwrap()
        .contains("on main.tf line 2"));
}

fn wait_for(path: &Path, needle: &str, limit: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if std::fs::read_to_string(path).is_ok_and(|s| s.contains(needle)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn sigint_during_apply_stops_cleanly_and_state_stays_readable() {
    if terraform("sigint_during_apply").is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture("slow", tmp.path());
    let d = dir.to_str().unwrap();
    let log = tmp.path().join("apply.log");
    let mut child = calops(
        tmp.path(),
        &["tf-apply", "--dir", d, "--log", log.to_str().unwrap()],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    assert!(
        wait_for(
            &log,
            "Provisioning with 'local-exec'",
            Duration::from_secs(60)
        ),
        "apply never reached the provisioner"
    );

    // While apply holds the state lock, a plan reports who holds it and how to release it.
    let (code, out, err) = run(calops(
        tmp.path(),
        &["tf-plan", "--dir", d, "--lock-timeout", "0s", "--json"],
    ));
    assert_eq!(code, 1, "{out}{err}");
    let lock: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(".terraform.tfstate.lock.info")).unwrap(),
    )
    .unwrap();
    let id = lock["ID"].as_str().unwrap();
    let who = lock["Who"].as_str().unwrap();
    assert!(err.contains(&format!("lock ID {id}")), "{err}");
    assert!(err.contains(&format!("locked by {who}")), "{err}");
    assert!(err.contains("operation OperationTypeApply"), "{err}");
    assert!(err.contains(&format!("force-unlock {id}")), "{err}");

    // First Ctrl-C: forwarded; calops waits for Terraform to stop and exits 130.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(45), "calops did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("stopped cleanly"), "{stderr}");
    let logtext = std::fs::read_to_string(&log).unwrap();
    assert!(logtext.contains("Interrupt received"), "{logtext}");
    assert!(
        !dir.join(".terraform.tfstate.lock.info").exists(),
        "lock released"
    );

    // The next plan reads the state without error: the half-created resource is tainted.
    let plan = run_plan(&dir, &opts(tmp.path()), |_| {}).unwrap();
    assert!(plan.has_changes);
    let r = &plan.summary.resources[0];
    assert_eq!(r.address, "terraform_data.slow");
    assert_eq!(r.action, Action::Replace);
    assert!(r.reason.as_deref().unwrap().starts_with("tainted"), "{r:?}");

    // Second scenario: a second Ctrl-C kills Terraform and everything it started. Terraform
    // stops quickly after the first one, so here it saves its state to an HTTP backend that
    // stops answering state writes: it hangs there until the second Ctrl-C.
    let state = StateServer::start();
    let http = tmp.path().join("http");
    std::fs::create_dir_all(&http).unwrap();
    let dir2 = fixture("slow", &http);
    std::fs::write(
        dir2.join("backend.tf"),
        format!(
            "terraform {{\n  backend \"http\" {{\n    address = \"http://127.0.0.1:{}/state\"\n  }}\n}}\n",
            state.port
        ),
    )
    .unwrap();
    let log2 = tmp.path().join("apply2.log");
    let mut child = calops(
        tmp.path(),
        &[
            "tf-apply",
            "--dir",
            dir2.to_str().unwrap(),
            "--log",
            log2.to_str().unwrap(),
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    assert!(
        wait_for(
            &log2,
            "Provisioning with 'local-exec'",
            Duration::from_secs(60)
        ),
        "second apply never reached the provisioner"
    );
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    state.hang.store(true, Ordering::SeqCst);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let t = Instant::now();
    while state.hung.load(Ordering::SeqCst) == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(45),
            "terraform never tried to save its state after the first Ctrl-C"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "calops exited before the second Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Terraform is stuck saving its state: the second Ctrl-C is what ends it.
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(t.elapsed() < Duration::from_secs(30), "calops did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("killed by a second Ctrl-C"), "{stderr}");
    assert!(!stderr.contains("stopped cleanly"), "{stderr}");
    assert!(
        std::fs::read_to_string(&log2)
            .unwrap()
            .contains("=== second Ctrl-C: killing terraform"),
        "the log records the kill"
    );
    // Nothing Terraform started survives (the whole process group is killed).
    assert!(no_process_matching("sleep 97"), "provisioner left running");
}

/// A Terraform `http` state backend on 127.0.0.1 (GET and POST of one state document) that can
/// be told to stop answering state writes: a write that arrives after `hang` is set is counted
/// in `hung` and never answered.
struct StateServer {
    port: u16,
    hang: Arc<AtomicBool>,
    hung: Arc<AtomicUsize>,
}

impl StateServer {
    fn start() -> StateServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hang = Arc::new(AtomicBool::new(false));
        let hung = Arc::new(AtomicUsize::new(0));
        let stored = Arc::new(std::sync::Mutex::new(None::<Vec<u8>>));
        let (h, n) = (hang.clone(), hung.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (h, n, stored) = (h.clone(), n.clone(), stored.clone());
                std::thread::spawn(move || serve_state(conn, &h, &n, &stored));
            }
        });
        StateServer { port, hang, hung }
    }
}

/// Answer HTTP/1.1 requests on one connection (keep-alive) until it closes.
fn serve_state(
    mut conn: std::net::TcpStream,
    hang: &AtomicBool,
    hung: &AtomicUsize,
    stored: &std::sync::Mutex<Option<Vec<u8>>>,
) {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let method = request_line.split_whitespace().next().unwrap_or("");
        let answer = match method {
            "GET" => match stored.lock().unwrap().clone() {
                Some(state) => {
                    let mut a = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                        state.len()
                    )
                    .into_bytes();
                    a.extend(state);
                    a
                }
                None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec(),
            },
            "POST" if hang.load(Ordering::SeqCst) => {
                hung.fetch_add(1, Ordering::SeqCst);
                // Never answer; wait for the client to go away.
                let mut sink = [0u8; 1024];
                while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
                return;
            }
            "POST" => {
                *stored.lock().unwrap() = Some(body);
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec()
            }
            _ => b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n".to_vec(),
        };
        if conn.write_all(&answer).is_err() {
            return;
        }
    }
}

/// True when no process's command line contains `needle` (checked for up to a second).
fn no_process_matching(needle: &str) -> bool {
    let matching = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .any(|c| c.contains(needle))
    };
    for _ in 0..10 {
        if !matching() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

// ---------------------------------------------------------------------------------------------
// One Terraform process per plan, for every kind of plan.

/// The plan kinds `tests/fixtures/terraform/kinds` makes: (name, variable file text, extra
/// arguments, expected exit code). `create` plans the fresh directory; the others run after it
/// was applied.
const KINDS: &[(&str, &str, &[&str], i32)] = &[
    ("create", "", &[], 2),
    ("noop", "", &[], 0),
    ("update", "image = \"app:2\"\n", &[], 2),
    ("replace", "size = \"large\"\n", &[], 2),
    ("delete", "keep_old = false\n", &[], 2),
    (
        "refused",
        "size = \"large\"\n",
        &["--protect", "terraform_data.db"],
        1,
    ),
    (
        "all",
        "size = \"large\"\nimage = \"app:2\"\nkeep_old = false\ndb_password = \"fixture-secret-other\"\n",
        &[],
        2,
    ),
];

/// The Terraform subcommands a calops log records (`=== <time> $ terraform <subcommand> ...`).
fn terraform_runs(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.starts_with("=== "))
        .filter_map(|l| l.split_once(" $ "))
        .filter_map(|(_, cmd)| cmd.split_whitespace().nth(1).map(String::from))
        .collect()
}

/// The only log under `cwd/.calops/<name>/logs/`.
fn only_log(cwd: &Path, name: &str) -> String {
    let logs: Vec<PathBuf> = std::fs::read_dir(cwd.join(".calops").join(name).join("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    std::fs::read_to_string(&logs[0]).unwrap()
}

/// Human output without the lines that name temporary paths.
fn without_paths(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with("Full Terraform log:") && !l.starts_with("Saved plan:"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// `calops tf-plan` (the binary, the real terraform) for every kind of plan: exactly one
/// Terraform process (`plan`; `init` too on the first run) and no `show`, and the summary
/// (counts, replacements and their forcing attributes, cost, guard refusals) as JSON and as
/// text equal to tests/golden/plan/, which the binary from before this change wrote (it read
/// updates and replacements back with `terraform show -json`). `CALOPS_GOLDEN_BIN=PATH` runs
/// another calops binary through the same checks; `UPDATE_GOLDEN=1` rewrites the goldens.
#[test]
fn every_kind_of_plan_is_one_terraform_process_with_todays_summary() {
    if terraform("every_kind_of_plan_is_one_terraform_process").is_none() {
        return;
    }
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let bin = std::env::var("CALOPS_GOLDEN_BIN").unwrap_or_else(|_| BIN.to_string());
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/plan");
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture("kinds", tmp.path());
    let d = dir.to_str().unwrap();
    let mut failures = Vec::new();
    for (i, (kind, vars, extra, code)) in KINDS.iter().enumerate() {
        if i == 1 {
            let (c, out, err) = run(calops(tmp.path(), &["tf-apply", "--dir", d]));
            assert_eq!(c, 0, "{out}{err}");
        }
        let mut args = vec!["tf-plan", "--dir", d, "--detailed-exitcode"];
        args.extend_from_slice(extra);
        let varfile = tmp.path().join(format!("{kind}.tfvars"));
        std::fs::write(&varfile, vars).unwrap();
        let v = varfile.to_str().unwrap().to_string();
        args.extend(["--var-file", &v]);
        let mut results = Vec::new();
        for json in [true, false] {
            // A fresh working directory per run: its own .calops/kinds/logs/.
            let cwd = tmp.path().join(format!("{kind}-{json}"));
            std::fs::create_dir_all(&cwd).unwrap();
            let mut a = args.clone();
            if json {
                a.push("--json");
            }
            let mut c = Command::new(&bin);
            c.args(&a)
                .current_dir(&cwd)
                .env("XDG_CACHE_HOME", tmp.path().join("cache"))
                .env("TF_CLI_CONFIG_FILE", "/dev/null")
                .env_remove("CALOPS_PROFILE");
            let (status, out, err) = run(c);
            assert_eq!(status, *code, "{kind}: {out}{err}");
            let runs = terraform_runs(&only_log(&cwd, "kinds"));
            let expected: &[&str] = if i == 0 && json {
                &["init", "plan"]
            } else {
                &["plan"]
            };
            if !update {
                assert_eq!(runs, expected, "{kind}: Terraform processes");
            }
            for text in [&out, &err] {
                assert!(!text.contains("fixture-secret"), "{kind}: a secret leaked");
            }
            results.push(out);
        }
        let doc: serde_json::Value = serde_json::from_str(&results[0]).unwrap();
        let summary = serde_json::to_string_pretty(&doc["summary"]).unwrap() + "\n";
        let text = without_paths(&results[1]);
        for (file, got) in [
            (format!("{kind}.json"), summary),
            (format!("{kind}.txt"), text),
        ] {
            let path = golden.join(&file);
            if update {
                std::fs::create_dir_all(&golden).unwrap();
                std::fs::write(&path, &got).unwrap();
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(got.as_str()) {
                failures.push(format!("{file} differs from today's:\n{got}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The library path: every kind of plan is read from the plan file alone, and the whole plan
/// (changes with values, forcing/changed/unknown/sensitive paths, planned values, prior state,
/// outputs) equals what `terraform show -json` of the same plan file says.
#[test]
fn plan_file_reading_equals_show_json_for_every_kind() {
    if terraform("plan_file_reading_equals_show_json_for_every_kind").is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = fixture("kinds", tmp.path());
    let o = opts(tmp.path());
    for (i, (kind, vars, _, _)) in KINDS.iter().enumerate() {
        if i == 1 {
            apply_if_changed(&dir, &o, |_| {}).unwrap();
        }
        let varfile = tmp.path().join(format!("{kind}.tfvars"));
        std::fs::write(&varfile, vars).unwrap();
        let mut o = o.clone();
        o.var_files = vec![varfile];
        let ours = run_plan(&dir, &o, |_| {}).unwrap();
        let ops: Vec<Op> = ours.invocations.iter().map(|i| i.op).collect();
        let expected: &[Op] = if i == 0 {
            &[Op::Init, Op::Plan]
        } else {
            &[Op::Plan]
        };
        assert_eq!(ops, expected, "{kind}");
        // The same plan file, read back by `terraform show -json`.
        let driver = calops::terraform::plan::driver_for(&dir, &o).unwrap();
        let shown = driver.show_plan(&ours.planfile).unwrap();
        let norm = |p: &calops::terraform::plan_json::Plan| {
            let mut p = p.clone();
            p.prior.sort_by(|a, b| a.address.cmp(&b.address));
            p.planned.sort_by(|a, b| a.address.cmp(&b.address));
            serde_json::to_value(p).unwrap()
        };
        assert_eq!(norm(&ours.plan), norm(&shown), "{kind}");
    }
}
