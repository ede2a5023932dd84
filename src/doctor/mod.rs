//! `calops doctor`: what this machine and profile need, what was found, and how to fix gaps.
//!
//! Each check is a small function returning a [`Check`]; version parsing is pure and unit-tested,
//! and the probing (PATH lookups, running `--version`) goes through [`tools`].

pub mod checks;
pub mod oci;
pub mod tools;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Short, stable identifier, e.g. `terraform`.
    pub name: String,
    pub status: Status,
    /// A failed required check makes `doctor` exit 1.
    pub required: bool,
    /// What was found: a version, a path, a value.
    pub found: Option<String>,
    pub path: Option<String>,
    /// One line: what this means.
    pub detail: String,
    /// One line: what to do about it (absent when nothing is needed).
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(name: &str, required: bool, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Ok,
            required,
            found: None,
            path: None,
            detail: detail.into(),
            fix: None,
        }
    }
    pub fn warn(
        name: &str,
        required: bool,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name: name.into(),
            status: Status::Warn,
            required,
            found: None,
            path: None,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
    pub fn fail(
        name: &str,
        required: bool,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name: name.into(),
            // An optional check that fails is only a warning.
            status: if required { Status::Fail } else { Status::Warn },
            required,
            found: None,
            path: None,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
    pub fn found(mut self, found: impl Into<String>) -> Check {
        self.found = Some(found.into());
        self
    }
    pub fn at(mut self, path: &std::path::Path) -> Check {
        self.path = Some(path.display().to_string());
        self
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub profile: Option<String>,
    pub target: Option<String>,
    pub checks: Vec<Check>,
}

impl Report {
    /// True when no required check failed.
    pub fn passed(&self) -> bool {
        !self
            .checks
            .iter()
            .any(|c| c.required && c.status == Status::Fail)
    }
}
