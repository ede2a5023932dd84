//! Turning a failed Terraform run into an error a person can act on: Terraform's own error text,
//! and for a held state lock the lock ID, its holder and the exact `force-unlock` command.

use super::command::{force_unlock_line, Op};
use std::fmt;
use std::path::{Path, PathBuf};

/// A held state lock, as Terraform prints it under "Lock Info:".
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LockInfo {
    pub id: String,
    pub who: Option<String>,
    pub operation: Option<String>,
    pub created: Option<String>,
    pub path: Option<String>,
    /// The exact command that releases it (only if its holder is really gone).
    pub force_unlock: String,
}

/// A Terraform command that failed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TfError {
    pub op: Op,
    pub exit_code: Option<i32>,
    /// Terraform's own error text (the `Error:` blocks), or the tail of its output.
    pub message: String,
    pub lock: Option<LockInfo>,
    /// The full log of the run, when one was written.
    pub log: Option<PathBuf>,
}

impl fmt::Display for TfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = match self.exit_code {
            Some(c) => format!("exit status {c}"),
            None => "killed by a signal".to_string(),
        };
        write!(f, "terraform {} failed ({code})", self.op.name())?;
        if !self.message.is_empty() {
            write!(f, ":\n{}", indent(&self.message))?;
        }
        if let Some(lock) = &self.lock {
            write!(
                f,
                "\n  the state is locked by {} (lock ID {}, operation {}, since {})",
                lock.who.as_deref().unwrap_or("an unknown holder"),
                lock.id,
                lock.operation.as_deref().unwrap_or("unknown"),
                lock.created.as_deref().unwrap_or("unknown time"),
            )?;
            write!(
                f,
                "\n  fix: wait for that run to finish; if it is really gone (crashed, killed), release the lock with:\n    {}",
                lock.force_unlock
            )?;
        } else if self.message.contains("Instance cannot be destroyed") {
            write!(
                f,
                "\n  fix: this resource has lifecycle.prevent_destroy = true; Terraform refuses to \
                 destroy or replace it whatever calops is told. Change the input that forces the \
                 replacement back, or remove prevent_destroy deliberately first"
            )?;
        } else if needs_init(&self.message) {
            write!(f, "\n  fix: run `terraform init` in the working directory (calops plan does this when the directory was never initialised)")?;
        }
        if let Some(log) = &self.log {
            write!(f, "\n  full log: {}", log.display())?;
        }
        Ok(())
    }
}

impl std::error::Error for TfError {}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("  {l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// True when Terraform says the directory needs (re-)initialising.
pub fn needs_init(text: &str) -> bool {
    [
        "terraform init",
        "Module not installed",
        "Backend initialization required",
        "Required plugins are not installed",
        "Inconsistent dependency lock file",
        "missing or corrupted provider plugins",
    ]
    .iter()
    .any(|m| text.contains(m))
}

/// Terraform's error text from its stderr (and stdout, where plan prints diagnostics too):
/// every `Error:` block through the end, with the noise before it dropped. Falls back to the
/// last 40 lines when no `Error:` marker is present.
pub fn error_text(stderr: &str, stdout: &str) -> String {
    for text in [stderr, stdout] {
        let lines: Vec<&str> = text.lines().collect();
        if let Some(start) = lines
            .iter()
            .position(|l| l.trim_start_matches(['│', '╷', ' ']).starts_with("Error: "))
        {
            let kept: Vec<String> = lines[start..]
                .iter()
                .map(|l| strip_box(l).trim_end().to_string())
                .collect();
            return collapse_blank(&kept).trim().to_string();
        }
    }
    let all = if stderr.trim().is_empty() {
        stdout
    } else {
        stderr
    };
    let lines: Vec<&str> = all.lines().collect();
    let from = lines.len().saturating_sub(40);
    lines[from..].join("\n").trim().to_string()
}

/// Drop the box-drawing frame Terraform puts around diagnostics on a terminal.
fn strip_box(l: &str) -> &str {
    for b in ['│', '╷', '╵'] {
        if let Some(rest) = l.strip_prefix(b) {
            return rest.strip_prefix(' ').unwrap_or(rest);
        }
    }
    l
}

fn collapse_blank(lines: &[String]) -> String {
    let mut out = String::new();
    let mut blank = 0;
    for l in lines {
        if l.is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// Parse Terraform's "Error acquiring the state lock" report.
pub fn parse_lock(text: &str, program: &Path, dir: &Path) -> Option<LockInfo> {
    if !text.contains("Error acquiring the state lock") && !text.contains("Lock Info:") {
        return None;
    }
    let field = |name: &str| -> Option<String> {
        text.lines().find_map(|l| {
            let l = l.trim_start_matches(['│', ' ']).trim();
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            let v = rest.trim();
            (!v.is_empty()).then(|| v.to_string())
        })
    };
    let id = field("ID")?;
    Some(LockInfo {
        force_unlock: force_unlock_line(program, dir, &id),
        id,
        who: field("Who"),
        operation: field("Operation"),
        created: field("Created"),
        path: field("Path"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCK: &str = "\nError: Error acquiring the state lock\n\nError message: resource temporarily unavailable\nLock Info:\n  ID:        ff4f463d-228f-8329-6c6b-4c411aa2989e\n  Path:      terraform.tfstate\n  Operation: OperationTypeApply\n  Who:       root@vm\n  Version:   1.11.4\n  Created:   2026-11-22 04:14:54.142387899 +0000 UTC\n  Info:      \n\n\nTerraform acquires a state lock to protect the state from being written\nby multiple users at the same time.\n";

    #[test]
    fn parses_a_real_lock_report() {
        let l = parse_lock(LOCK, Path::new("terraform"), Path::new("/w/prod")).unwrap();
        assert_eq!(l.id, "ff4f463d-228f-8329-6c6b-4c411aa2989e");
        assert_eq!(l.who.as_deref(), Some("root@vm"));
        assert_eq!(l.operation.as_deref(), Some("OperationTypeApply"));
        assert_eq!(l.path.as_deref(), Some("terraform.tfstate"));
        assert_eq!(
            l.force_unlock,
            "terraform -chdir=/w/prod force-unlock ff4f463d-228f-8329-6c6b-4c411aa2989e"
        );
        let e = TfError {
            op: Op::Plan,
            exit_code: Some(1),
            message: error_text(LOCK, ""),
            lock: Some(l),
            log: None,
        };
        let s = e.to_string();
        assert!(s.contains("locked by root@vm"), "{s}");
        assert!(s.contains("force-unlock ff4f463d"), "{s}");
    }

    #[test]
    fn no_lock_in_other_errors() {
        assert!(parse_lock(
            "Error: Unsupported argument",
            Path::new("t"),
            Path::new(".")
        )
        .is_none());
    }

    #[test]
    fn error_text_keeps_terraform_diagnostics() {
        let stderr = "╷\n│ Error: Unsupported argument\n│ \n│   on main.tf line 3, in resource \"terraform_data\" \"x\":\n│    3:   foo = 1\n│ \n│ An argument named \"foo\" is not expected here.\n╵\n";
        let t = error_text(stderr, "some plan output");
        assert!(t.starts_with("Error: Unsupported argument"), "{t}");
        assert!(t.contains("on main.tf line 3"));
        assert!(t.contains("An argument named \"foo\" is not expected here."));
        let plain = "noise\nError: Invalid block definition\n\n  on main.tf line 1:\n";
        assert_eq!(
            error_text(plain, ""),
            "Error: Invalid block definition\n\n  on main.tf line 1:"
        );
        assert_eq!(error_text("", "just this"), "just this");
    }
}
