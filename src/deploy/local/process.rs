//! Background processes of the local target: start detached with a pidfile and a log file,
//! check liveness, signal, wait for exit. No knowledge of what the process is.

use crate::deploy::store::write_atomic;
use anyhow::{Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A process started by calops and remembered by its pidfile.
#[derive(Debug, Clone)]
pub struct Managed {
    pub pid: i32,
    pub pidfile: PathBuf,
    pub log: PathBuf,
}

/// Start `cmd` detached (its own session, stdin closed, output appended to `log`) and write
/// `pidfile`. The child outlives calops.
pub fn spawn_detached(mut cmd: Command, pidfile: &Path, log: &Path) -> Result<Managed> {
    if let Some(d) = log.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening log {}", log.display()))?;
    let err = out.try_clone()?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    // SAFETY: setsid is async-signal-safe; it detaches the child from our terminal and
    // process group so Ctrl-C in the calops terminal does not reach it.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::other)?;
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    let pid = child.id() as i32;
    // The child is reaped by init once we exit; do not wait on it here.
    std::mem::forget(child);
    write_atomic(pidfile, format!("{pid}\n").as_bytes())?;
    Ok(Managed {
        pid,
        pidfile: pidfile.to_path_buf(),
        log: log.to_path_buf(),
    })
}

/// Read a pidfile; `None` when absent, unreadable or naming a dead process.
pub fn read_pidfile(pidfile: &Path, log: &Path) -> Option<Managed> {
    let pid: i32 = std::fs::read_to_string(pidfile).ok()?.trim().parse().ok()?;
    let m = Managed {
        pid,
        pidfile: pidfile.to_path_buf(),
        log: log.to_path_buf(),
    };
    m.alive().then_some(m)
}

impl Managed {
    /// True while the process exists and is not a zombie.
    pub fn alive(&self) -> bool {
        if kill(Pid::from_raw(self.pid), None).is_err() {
            return false;
        }
        // A zombie (exited, not yet reaped) still answers kill(0).
        match std::fs::read_to_string(format!("/proc/{}/stat", self.pid)) {
            Ok(stat) => !stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
                .unwrap_or(false),
            Err(_) => false,
        }
    }

    pub fn signal(&self, sig: Signal) -> Result<()> {
        kill(Pid::from_raw(self.pid), sig)
            .with_context(|| format!("sending {sig} to pid {}", self.pid))
    }

    /// Wait until the process is gone; SIGKILL it after `timeout`. True if it exited by itself.
    pub fn wait_exit(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !self.alive() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = self.signal(Signal::SIGKILL);
        let hard = Instant::now() + Duration::from_secs(5);
        while self.alive() && Instant::now() < hard {
            std::thread::sleep(Duration::from_millis(25));
        }
        false
    }

    /// Stop gracefully (SIGTERM, then SIGKILL after `timeout`) and remove the pidfile.
    pub fn stop(&self, timeout: Duration) -> bool {
        let _ = self.signal(Signal::SIGTERM);
        let clean = self.wait_exit(timeout);
        let _ = std::fs::remove_file(&self.pidfile);
        clean
    }

    /// The last `max_lines` lines of the log (for error messages).
    pub fn log_tail(&self, max_lines: usize) -> String {
        log_tail(&self.log, max_lines)
    }
}

/// The last `max_lines` lines of a file, reading at most the last 64 KiB.
pub fn log_tail(path: &Path, max_lines: usize) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut buf = String::new();
    let _ = f.read_to_string(&mut buf);
    let lines: Vec<&str> = buf.lines().collect();
    lines[lines.len().saturating_sub(max_lines)..].join("\n")
}

/// The processes whose working directory is `dir` and whose first argument is `arg` (from
/// `/proc`): also those whose starter was killed before it wrote their pidfile.
pub fn find_by_cwd_and_arg(dir: &Path, arg: &str) -> Vec<i32> {
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return Vec::new();
    };
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let cwd = std::fs::read_link(e.path().join("cwd")).ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let first = cmdline.split(|b| *b == 0).nth(1)?;
            (cwd == dir && first == arg.as_bytes()).then_some(pid)
        })
        .collect()
}

/// A free TCP port on 127.0.0.1 (bound and released; fine for local use).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_are_found_by_working_directory_and_argument() {
        let d = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sleep");
        cmd.arg("30").current_dir(d.path());
        let m = spawn_detached(cmd, &d.path().join("p.pid"), &d.path().join("p.log")).unwrap();
        assert_eq!(find_by_cwd_and_arg(d.path(), "30"), vec![m.pid]);
        assert!(find_by_cwd_and_arg(d.path(), "serve").is_empty());
        let other = tempfile::tempdir().unwrap();
        assert!(find_by_cwd_and_arg(other.path(), "30").is_empty());
        m.stop(Duration::from_secs(5));
        assert!(find_by_cwd_and_arg(d.path(), "30").is_empty());
    }

    #[test]
    fn spawn_signal_and_tail() {
        let d = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "echo started; trap 'echo bye; exit 0' TERM; while true; do sleep 0.05; done",
        ]);
        let m = spawn_detached(cmd, &d.path().join("p.pid"), &d.path().join("p.log")).unwrap();
        let t = Instant::now();
        while !m.log_tail(5).contains("started") && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(m.alive());
        assert_eq!(read_pidfile(&m.pidfile, &m.log).unwrap().pid, m.pid);
        assert!(m.stop(Duration::from_secs(5)), "exits on SIGTERM by itself");
        assert!(!m.alive());
        assert!(read_pidfile(&m.pidfile, &m.log).is_none());
        assert!(m.log_tail(5).contains("bye"));
    }
}
