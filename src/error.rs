//! Exit codes and the errors that carry them.
//!
//! Commands return `anyhow::Result`; an error that should end with a code other than 1 wraps a
//! [`Exit`] so `main` can find it with `downcast_ref`.

use std::fmt;

/// Everything worked; for `plan`, nothing would change.
pub const EXIT_OK: i32 = 0;
/// Something failed; the message says what and how to fix it.
pub const EXIT_ERROR: i32 = 1;
/// `plan --detailed-exitcode` found changes (as Terraform does).
pub const EXIT_CHANGES: i32 = 2;
/// Interrupted by Ctrl-C (128 + SIGINT).
pub const EXIT_INTERRUPTED: i32 = 130;

/// A non-error outcome that still needs a specific exit code, or an error with a chosen code.
#[derive(Debug)]
pub struct Exit {
    pub code: i32,
    pub message: Option<String>,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(m) => f.write_str(m),
            None => write!(f, "exit code {}", self.code),
        }
    }
}

impl std::error::Error for Exit {}

/// A failure whose `--json` document is more than the generic error (e.g. a failed deploy's
/// release record). `main` prints `doc` on stdout with `--json` and `message` on stderr.
#[derive(Debug)]
pub struct ExitWithDoc {
    pub code: i32,
    pub message: String,
    pub doc: serde_json::Value,
}

impl fmt::Display for ExitWithDoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ExitWithDoc {}

/// An error a person can act on: what failed, and the next thing to do.
#[derive(Debug)]
pub struct Actionable {
    pub what: String,
    pub fix: String,
}

impl fmt::Display for Actionable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\n  fix: {}", self.what, self.fix)
    }
}

impl std::error::Error for Actionable {}

pub fn actionable(what: impl Into<String>, fix: impl Into<String>) -> anyhow::Error {
    Actionable {
        what: what.into(),
        fix: fix.into(),
    }
    .into()
}

/// The exit code an error should end the process with.
pub fn exit_code_of(err: &anyhow::Error) -> i32 {
    // Also finds one added as context (`err.context(Exit { .. })`), which `chain` hides.
    if let Some(e) = err.downcast_ref::<Exit>() {
        return e.code;
    }
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<Exit>() {
            return e.code;
        }
        if let Some(e) = cause.downcast_ref::<ExitWithDoc>() {
            return e.code;
        }
    }
    EXIT_ERROR
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_found_as_error_or_context() {
        let plain = anyhow::anyhow!("boom");
        assert_eq!(exit_code_of(&plain), EXIT_ERROR);
        let direct: anyhow::Error = Exit {
            code: EXIT_CHANGES,
            message: None,
        }
        .into();
        assert_eq!(exit_code_of(&direct), EXIT_CHANGES);
        let context = anyhow::anyhow!("interrupted during `build`").context(Exit {
            code: EXIT_INTERRUPTED,
            message: Some("deploy interrupted".into()),
        });
        assert_eq!(exit_code_of(&context), EXIT_INTERRUPTED);
        assert!(format!("{context:#}").contains("interrupted during `build`"));
    }
}
