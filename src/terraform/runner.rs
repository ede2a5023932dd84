//! The one place that runs Terraform: spawns a [`TfCommand`], streams its output lines to a
//! callback (progress), appends everything to a log file, handles Ctrl-C, and maps failures to
//! [`TfError`]s that carry Terraform's own error text.

use super::command::{Op, TfCommand};
use super::errors::{error_text, parse_lock, TfError};
use super::interrupt;
use crate::error::{Exit, EXIT_INTERRUPTED};
use anyhow::Context;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A record of one invocation (for tests and `-v`): which operation and its argv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub op: Op,
    pub args: Vec<String>,
    pub exit_code: Option<i32>,
}

/// What a finished run produced.
#[derive(Debug, Clone)]
pub struct RunOutput {
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Clone, Default)]
pub struct Runner {
    log: Option<Arc<Mutex<File>>>,
    log_path: Option<PathBuf>,
    invocations: Arc<Mutex<Vec<Invocation>>>,
    handle_interrupts: bool,
}

enum Msg {
    Out(String),
    Err(String),
    SecretOut(Vec<u8>),
}

impl Runner {
    /// A runner without a log file that leaves Ctrl-C to its default behaviour.
    pub fn new() -> Runner {
        Runner::default()
    }

    /// Append the full Terraform output to `path` (parent directories are created).
    pub fn with_log(mut self, path: &Path) -> anyhow::Result<Runner> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating the log directory {}", parent.display()))?;
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening the log file {}", path.display()))?;
        self.log = Some(Arc::new(Mutex::new(f)));
        self.log_path = Some(path.to_path_buf());
        Ok(self)
    }

    /// Forward the first Ctrl-C to Terraform and kill it on the second (for commands; library
    /// callers and tests keep the default signal behaviour).
    pub fn handle_interrupts(mut self, on: bool) -> Runner {
        self.handle_interrupts = on;
        self
    }

    pub fn log_path(&self) -> Option<&Path> {
        self.log_path.as_deref()
    }

    /// Every invocation so far, in order.
    pub fn invocations(&self) -> Vec<Invocation> {
        self.invocations
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default()
    }

    /// A line of calops's own in the log (`=== ` prefixed), e.g. why a step ran.
    pub fn note(&self, line: &str) {
        self.log_line(&format!("=== {line}"));
    }

    fn log_line(&self, line: &str) {
        if let Some(log) = &self.log {
            if let Ok(mut f) = log.lock() {
                let _ = writeln!(f, "{line}");
            }
        }
    }

    /// Run `cmd`; exit codes in `ok_codes` count as success (plan's 2 means "changes").
    /// `on_line` sees every output line (never the secret stdout of show/output/state pull).
    pub fn run(
        &self,
        cmd: &TfCommand,
        ok_codes: &[i32],
        on_line: &mut dyn FnMut(&str),
    ) -> anyhow::Result<RunOutput> {
        let started = jiff::Timestamp::now();
        self.log_line(&format!(
            "=== {started} $ {} (in {})",
            cmd.display(),
            cmd.dir.display()
        ));
        let mut command = Command::new(&cmd.program);
        command
            .args(&cmd.args)
            .current_dir(&cmd.dir)
            .envs(&cmd.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if self.handle_interrupts {
            use std::os::unix::process::CommandExt;
            command.process_group(0);
        }
        // Count Ctrl-C from just before the spawn until the run is over.
        let baseline = interrupt::received();
        let _counting = self.handle_interrupts.then(interrupt::Counting::install);
        let mut child = match command.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(crate::error::actionable(
                    format!("terraform not found: `{}`", cmd.program.display()),
                    "install Terraform >= 1.4 (Debian: apt-get install terraform, or run scripts/setup), \
                     or point CALOPS_TERRAFORM at the terraform binary",
                ));
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "starting `{}` in {}",
                        cmd.program.display(),
                        cmd.dir.display()
                    )
                })
            }
        };
        let pid = child.id() as i32;
        let (tx, rx) = mpsc::channel::<Msg>();
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            let tx = tx.clone();
            let secret = cmd.secret_stdout;
            readers.push(std::thread::spawn(move || {
                if secret {
                    let mut buf = Vec::new();
                    let _ = BufReader::new(out).read_to_end(&mut buf);
                    let _ = tx.send(Msg::SecretOut(buf));
                } else {
                    for_each_line(out, |l| {
                        let _ = tx.send(Msg::Out(l));
                    });
                }
            }));
        }
        if let Some(err) = child.stderr.take() {
            let tx = tx.clone();
            readers.push(std::thread::spawn(move || {
                for_each_line(err, |l| {
                    let _ = tx.send(Msg::Err(l));
                });
            }));
        }
        drop(tx);

        let mut stdout = String::new();
        // For a `-json` run: what a person would have read (diagnostics rendered as text).
        let mut human_stdout = String::new();
        let mut stderr = String::new();
        let mut forwarded = false;
        let mut killed = false;
        let mut exited_at: Option<Instant> = None;
        let mut pipes_held = false;
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(Msg::Out(l)) if cmd.json_stream => {
                    for h in super::stream::human_lines(&l) {
                        self.log_line(&h);
                        on_line(&h);
                        human_stdout.push_str(&h);
                        human_stdout.push('\n');
                    }
                    stdout.push_str(&l);
                    stdout.push('\n');
                }
                Ok(Msg::Out(l)) => {
                    self.log_line(&l);
                    on_line(&l);
                    stdout.push_str(&l);
                    stdout.push('\n');
                }
                Ok(Msg::Err(l)) => {
                    self.log_line(&l);
                    on_line(&l);
                    stderr.push_str(&l);
                    stderr.push('\n');
                }
                Ok(Msg::SecretOut(buf)) => {
                    self.log_line(&format!(
                        "(stdout: {} bytes of machine output, not logged because it may hold sensitive values)",
                        buf.len()
                    ));
                    stdout = String::from_utf8_lossy(&buf).into_owned();
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if exited_at.is_none() {
                        if let Ok(Some(_)) = child.try_wait() {
                            exited_at = Some(Instant::now());
                            if self.handle_interrupts {
                                // Terraform is gone; anything left in its process group is
                                // an orphan it started (a provisioner's grandchild, say).
                                kill_group(pid);
                            }
                        }
                    } else if exited_at.is_some_and(|t| t.elapsed() > Duration::from_secs(2)) {
                        // Terraform is gone but something it started still holds the pipes.
                        pipes_held = true;
                        break;
                    }
                }
            }
            if self.handle_interrupts && exited_at.is_none() {
                let n = interrupt::received().saturating_sub(baseline);
                if n >= 1 && !forwarded {
                    forwarded = true;
                    let msg = format!(
                        "Ctrl-C: asked terraform {} to stop cleanly; waiting (press Ctrl-C again to kill it)",
                        cmd.op.name()
                    );
                    self.log_line(&format!("=== {msg}"));
                    on_line(&msg);
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGINT,
                    );
                }
                if n >= 2 && !killed {
                    killed = true;
                    self.log_line("=== second Ctrl-C: killing terraform");
                    on_line("second Ctrl-C: killing terraform");
                    // The whole group: Terraform and anything it started (provisioners).
                    kill_group(pid);
                }
            }
        }
        let status = child
            .wait()
            .with_context(|| format!("waiting for terraform {}", cmd.op.name()))?;
        if self.handle_interrupts {
            kill_group(pid);
        }
        if !pipes_held {
            for r in readers {
                let _ = r.join();
            }
        }
        let code = status.code();
        self.log_line(&format!(
            "=== exit {} after {:.1}s",
            code.map_or("signal".to_string(), |c| c.to_string()),
            (jiff::Timestamp::now() - started)
                .total(jiff::Unit::Second)
                .unwrap_or(0.0)
        ));
        if let Ok(mut v) = self.invocations.lock() {
            v.push(Invocation {
                op: cmd.op,
                args: cmd.args.clone(),
                exit_code: code,
            });
        }
        if forwarded {
            let log = self
                .log_path
                .as_ref()
                .map(|p| format!("\n  full log: {}", p.display()))
                .unwrap_or_default();
            let message = if killed {
                format!(
                    "interrupted: terraform {} was killed by a second Ctrl-C; its state may be \
                     locked or behind. Run the plan again; if it reports a held lock it prints \
                     the force-unlock command{log}",
                    cmd.op.name()
                )
            } else {
                format!(
                    "interrupted: terraform {} stopped cleanly after Ctrl-C and saved its state; \
                     run the plan again to see what is left to do{log}",
                    cmd.op.name()
                )
            };
            return Err(Exit {
                code: EXIT_INTERRUPTED,
                message: Some(message),
            }
            .into());
        }
        match code {
            Some(c) if ok_codes.contains(&c) => Ok(RunOutput {
                exit_code: c,
                stdout,
                stderr,
            }),
            _ => {
                let readable = if cmd.json_stream {
                    &human_stdout
                } else {
                    &stdout
                };
                let text = format!("{stderr}\n{readable}");
                let plain_stdout = if cmd.secret_stdout { "" } else { readable };
                Err(TfError {
                    op: cmd.op,
                    exit_code: code,
                    message: error_text(&stderr, plain_stdout),
                    lock: parse_lock(&text, &cmd.program, &cmd.dir),
                    log: self.log_path.clone(),
                }
                .into())
            }
        }
    }
}

/// SIGKILL the process group Terraform leads (it runs in its own group when interrupts are
/// handled). A group outlives its leader while members remain, so its id cannot be reused
/// by then; when it is empty this fails with ESRCH, which is ignored.
fn kill_group(pgid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(-pgid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

fn for_each_line(r: impl Read, mut f: impl FnMut(String)) {
    let mut r = BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    buf.pop();
                }
                f(String::from_utf8_lossy(&buf).into_owned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn sh(op: Op, script: &str, secret: bool) -> TfCommand {
        TfCommand {
            op,
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: BTreeMap::from([("CALOPS_RUNNER_TEST".to_string(), "yes".to_string())]),
            dir: std::env::temp_dir(),
            secret_stdout: secret,
            json_stream: false,
        }
    }

    #[test]
    fn json_stream_logs_and_streams_text_and_keeps_the_json() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("run.log");
        let r = Runner::new().with_log(&log).unwrap();
        let lines = [
            r#"{"@message":"terraform_data.db: Refreshing state... [id=1]","type":"refresh_start"}"#,
            r#"{"@level":"error","@message":"Error: Bad thing","diagnostic":{"severity":"error","summary":"Bad thing","detail":"It went wrong.","range":{"filename":"main.tf","start":{"line":4}}},"type":"diagnostic"}"#,
        ];
        let script = format!("printf '%s\\n%s\\n' '{}' '{}'; exit 1", lines[0], lines[1]);
        let mut c = sh(Op::Plan, &script, false);
        c.json_stream = true;
        let mut seen = Vec::new();
        let err = r
            .run(&c, &[0, 2], &mut |l| seen.push(l.to_string()))
            .unwrap_err();
        assert_eq!(seen[0], "terraform_data.db: Refreshing state... [id=1]");
        assert!(seen.contains(&"Error: Bad thing".to_string()), "{seen:?}");
        let tf = err.downcast_ref::<TfError>().unwrap();
        assert_eq!(
            tf.message,
            "Error: Bad thing\n\n  on main.tf line 4:\n\nIt went wrong."
        );
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("  on main.tf line 4:"), "{text}");
        assert!(!text.contains("\"@message\""), "{text}");
        // Success keeps the raw JSON lines for the parser.
        let ok = r
            .run(
                &{
                    let mut c = sh(Op::Plan, &format!("echo '{}'; exit 2", lines[0]), false);
                    c.json_stream = true;
                    c
                },
                &[0, 2],
                &mut |_| {},
            )
            .unwrap();
        assert_eq!(ok.stdout.trim(), lines[0]);
    }

    #[test]
    fn streams_lines_logs_and_records() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("logs/run.log");
        let r = Runner::new().with_log(&log).unwrap();
        let mut seen = Vec::new();
        let out = r
            .run(
                &sh(
                    Op::Plan,
                    "echo one; echo two >&2; echo $CALOPS_RUNNER_TEST; exit 2",
                    false,
                ),
                &[0, 2],
                &mut |l| seen.push(l.to_string()),
            )
            .unwrap();
        assert_eq!(out.exit_code, 2);
        assert_eq!(out.stdout, "one\nyes\n");
        assert_eq!(out.stderr, "two\n");
        seen.sort();
        assert_eq!(seen, ["one", "two", "yes"]);
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("$ /bin/sh -c"), "{text}");
        assert!(text.contains("one\n") && text.contains("two\n"));
        assert!(text.contains("=== exit 2"));
        assert_eq!(r.invocations().len(), 1);
        assert_eq!(r.invocations()[0].exit_code, Some(2));
    }

    #[test]
    fn secret_stdout_is_never_logged_or_streamed() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("run.log");
        let r = Runner::new().with_log(&log).unwrap();
        let mut seen = Vec::new();
        let out = r
            .run(
                &{
                    let mut c = sh(Op::Output, "echo \"{\\\"pw\\\":\\\"$PW\\\"}\"", true);
                    c.env.insert("PW".into(), "s3cret-value".into());
                    c
                },
                &[0],
                &mut |l| seen.push(l.to_string()),
            )
            .unwrap();
        assert!(out.stdout.contains("s3cret-value"));
        assert!(seen.is_empty());
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(!text.contains("s3cret-value"), "{text}");
        assert!(text.contains("not logged"));
    }

    #[test]
    fn failure_carries_terraform_error_text() {
        let r = Runner::new();
        let err = r
            .run(
                &sh(
                    Op::Apply,
                    "echo 'working...'; printf '\\nError: Invalid reference\\n\\n  on main.tf line 4:\\n' >&2; exit 1",
                    false,
                ),
                &[0],
                &mut |_| {},
            )
            .unwrap_err();
        let tf = err.downcast_ref::<TfError>().unwrap();
        assert_eq!(tf.op, Op::Apply);
        assert_eq!(tf.exit_code, Some(1));
        assert_eq!(
            tf.message,
            "Error: Invalid reference\n\n  on main.tf line 4:"
        );
        let shown = err.to_string();
        assert!(
            shown.starts_with("terraform apply failed (exit status 1):"),
            "{shown}"
        );
    }

    #[test]
    fn missing_program_is_actionable() {
        let mut c = sh(Op::Version, "", false);
        c.program = "/nonexistent/terraform".into();
        let e = Runner::new()
            .run(&c, &[0], &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(e.contains("terraform not found"), "{e}");
        assert!(e.contains("CALOPS_TERRAFORM"), "{e}");
    }

    #[test]
    fn an_orphan_holding_the_pipes_does_not_hang_the_run() {
        let t = Instant::now();
        let out = Runner::new()
            .run(
                &sh(Op::Apply, "sleep 7 & echo started", false),
                &[0],
                &mut |_| {},
            )
            .unwrap();
        assert_eq!(out.stdout, "started\n");
        assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
    }
}
