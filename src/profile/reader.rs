//! Reading typed fields out of a merged [`Table`], collecting every problem at once.
//!
//! A [`Section`] hands out fields by name, remembers which keys it used, and on
//! [`Section::finish`] reports every key nobody asked for, with a "did you mean".

use super::node::{Node, Origin, Table, Value};
use super::types::did_you_mean;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// One problem in a profile, with where it is and what would fix it.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub origin: Origin,
    /// Dotted field path, e.g. `database.ocpus`.
    pub path: String,
    pub problem: String,
    /// What is allowed, or what to do.
    pub help: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.origin, self.problem)?;
        } else {
            write!(f, "{}: {}: {}", self.origin, self.path, self.problem)?;
        }
        if let Some(h) = &self.help {
            write!(f, "\n    help: {h}")?;
        }
        Ok(())
    }
}

/// Every problem found while loading a profile. Its Display lists them all.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileError {
    pub profile: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.diagnostics.len();
        write!(
            f,
            "profile `{}` is invalid ({n} problem{}):",
            self.profile,
            if n == 1 { "" } else { "s" }
        )?;
        for d in &self.diagnostics {
            write!(f, "\n  {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ProfileError {}

/// Collects diagnostics and the origin of every value that was read.
#[derive(Default)]
pub struct Sink {
    pub diagnostics: RefCell<Vec<Diagnostic>>,
    pub origins: RefCell<BTreeMap<String, Origin>>,
}

impl Sink {
    pub fn error(
        &self,
        origin: &Origin,
        path: &str,
        problem: impl Into<String>,
        help: Option<String>,
    ) {
        self.diagnostics.borrow_mut().push(Diagnostic {
            origin: origin.clone(),
            path: path.to_string(),
            problem: problem.into(),
            help,
        });
    }
}

/// A table being read as one section of the profile.
pub struct Section<'a> {
    pub path: String,
    pub table: Table,
    pub origin: Origin,
    sink: &'a Sink,
    used: RefCell<BTreeSet<String>>,
}

impl<'a> Section<'a> {
    pub fn new(path: &str, table: Table, origin: Origin, sink: &'a Sink) -> Self {
        Section {
            path: path.to_string(),
            table,
            origin,
            sink,
            used: RefCell::new(BTreeSet::new()),
        }
    }

    pub fn sink(&self) -> &'a Sink {
        self.sink
    }

    pub fn field_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn take(&self, key: &str) -> Option<&Node> {
        self.used.borrow_mut().insert(key.to_string());
        let node = self.table.get(key)?;
        self.sink
            .origins
            .borrow_mut()
            .insert(self.field_path(key), node.origin.clone());
        Some(node)
    }

    fn type_error(&self, key: &str, node: &Node, want: &str) {
        self.sink.error(
            &node.origin,
            &self.field_path(key),
            format!("expected {want}, found {}", node.value.type_name()),
            None,
        );
    }

    fn missing(&self, key: &str, want: &str) {
        self.sink.error(
            &self.origin,
            &self.field_path(key),
            "missing required field",
            Some(format!("add `{key} = <{want}>` to [{}]", self.path)),
        );
    }

    /// The origin of a key if present, else of the section.
    pub fn origin_of(&self, key: &str) -> Origin {
        self.table
            .get(key)
            .map(|n| n.origin.clone())
            .unwrap_or_else(|| self.origin.clone())
    }

    /// Report a problem with the value of `key`.
    pub fn invalid(&self, key: &str, problem: impl Into<String>, help: Option<String>) {
        self.sink
            .error(&self.origin_of(key), &self.field_path(key), problem, help);
    }

    pub fn opt_str(&self, key: &str) -> Option<String> {
        let node = self.take(key)?;
        match &node.value {
            Value::Str(s) | Value::EnvText(s) => Some(s.clone()),
            _ => {
                self.type_error(key, node, "a string");
                None
            }
        }
    }

    pub fn req_str(&self, key: &str) -> Option<String> {
        if self.table.get(key).is_none() {
            self.used.borrow_mut().insert(key.to_string());
            self.missing(key, "string");
            return None;
        }
        self.opt_str(key)
    }

    /// A string parsed by `parse`; problems are reported at the value.
    pub fn parsed<T>(
        &self,
        key: &str,
        required: bool,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let s = if required {
            self.req_str(key)?
        } else {
            self.opt_str(key)?
        };
        match parse(&s) {
            Ok(v) => Some(v),
            Err(e) => {
                self.invalid(key, e, None);
                None
            }
        }
    }

    pub fn opt_int(&self, key: &str) -> Option<i64> {
        let node = self.take(key)?;
        match &node.value {
            Value::Int(i) => Some(*i),
            Value::EnvText(s) => match s.trim().parse::<i64>() {
                Ok(i) => Some(i),
                Err(_) => {
                    self.type_error(key, node, "an integer");
                    None
                }
            },
            _ => {
                self.type_error(key, node, "an integer");
                None
            }
        }
    }

    /// An integer within `lo..=hi`.
    pub fn int_in(&self, key: &str, lo: i64, hi: i64, unit: &str) -> Option<i64> {
        if self.table.get(key).is_none() {
            self.used.borrow_mut().insert(key.to_string());
            self.missing(key, "integer");
            return None;
        }
        let v = self.opt_int(key)?;
        if v < lo || v > hi {
            self.invalid(
                key,
                format!("{v} is out of range"),
                Some(format!("allowed: {lo} to {hi}{unit}")),
            );
            return None;
        }
        Some(v)
    }

    /// A number (integer or float).
    pub fn number(&self, key: &str) -> Option<f64> {
        if self.table.get(key).is_none() {
            self.used.borrow_mut().insert(key.to_string());
            self.missing(key, "number");
            return None;
        }
        let node = self.take(key)?;
        match &node.value {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::EnvText(s) => match s.trim().parse::<f64>() {
                Ok(f) => Some(f),
                Err(_) => {
                    self.type_error(key, node, "a number");
                    None
                }
            },
            _ => {
                self.type_error(key, node, "a number");
                None
            }
        }
    }

    pub fn bool(&self, key: &str) -> Option<bool> {
        if self.table.get(key).is_none() {
            self.used.borrow_mut().insert(key.to_string());
            self.missing(key, "true|false");
            return None;
        }
        let node = self.take(key)?;
        match &node.value {
            Value::Bool(b) => Some(*b),
            Value::EnvText(s) => match s.trim() {
                "true" | "1" | "yes" => Some(true),
                "false" | "0" | "no" => Some(false),
                _ => {
                    self.type_error(key, node, "a boolean (true or false)");
                    None
                }
            },
            _ => {
                self.type_error(key, node, "a boolean (true or false)");
                None
            }
        }
    }

    /// One of a fixed set of strings.
    pub fn choice(&self, key: &str, allowed: &[&str]) -> Option<String> {
        let s = self.req_str(key)?;
        if allowed.contains(&s.as_str()) {
            return Some(s);
        }
        let mut help = format!("allowed: {}", allowed.join(", "));
        if let Some(best) = did_you_mean(&s, allowed) {
            help = format!("did you mean `{best}`? {help}");
        }
        self.invalid(key, format!("`{s}` is not a valid choice"), Some(help));
        None
    }

    /// An array of strings.
    pub fn str_list(&self, key: &str) -> Option<Vec<String>> {
        let node = self.take(key)?;
        let items = match &node.value {
            Value::Array(items) => items,
            Value::EnvText(s) => {
                return Some(
                    s.split(',')
                        .map(|x| x.trim().to_string())
                        .filter(|x| !x.is_empty())
                        .collect(),
                )
            }
            _ => {
                self.type_error(key, node, "an array of strings");
                return None;
            }
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match &item.value {
                Value::Str(s) => out.push(s.clone()),
                other => self.sink.error(
                    &item.origin,
                    &format!("{}[{i}]", self.field_path(key)),
                    format!("expected a string, found {}", other.type_name()),
                    None,
                ),
            }
        }
        Some(out)
    }

    /// A table of string values (e.g. environment variables), with each value's origin.
    pub fn str_map(&self, key: &str) -> Option<Vec<(String, String, Origin)>> {
        let node = self.take(key)?;
        let t = match &node.value {
            Value::Table(t) => t,
            _ => {
                self.type_error(key, node, "a table");
                return None;
            }
        };
        let mut out = Vec::new();
        for (k, v) in &t.entries {
            let path = format!("{}.{k}", self.field_path(key));
            self.sink
                .origins
                .borrow_mut()
                .insert(path.clone(), v.origin.clone());
            match &v.value {
                Value::Str(s) | Value::EnvText(s) => {
                    out.push((k.clone(), s.clone(), v.origin.clone()))
                }
                other => self.sink.error(
                    &v.origin,
                    &path,
                    format!("expected a string, found {}", other.type_name()),
                    Some("quote the value, e.g. `KEY = \"1\"`".into()),
                ),
            }
        }
        Some(out)
    }

    /// A nested section. Missing tables read as empty (fields then report as missing).
    pub fn section(&self, key: &str) -> Option<Section<'a>> {
        self.used.borrow_mut().insert(key.to_string());
        match self.table.get(key) {
            None => Some(Section::new(
                &self.field_path(key),
                Table::default(),
                self.origin.clone(),
                self.sink,
            )),
            Some(Node {
                value: Value::Table(t),
                origin,
            }) => Some(Section::new(
                &self.field_path(key),
                t.clone(),
                origin.clone(),
                self.sink,
            )),
            Some(node) => {
                self.type_error(key, node, "a table");
                None
            }
        }
    }

    pub fn has(&self, key: &str) -> bool {
        self.table.get(key).is_some()
    }

    /// Mark a key as known without reading it (e.g. `extends`, handled by the loader).
    pub fn skip(&self, key: &str) {
        self.used.borrow_mut().insert(key.to_string());
    }

    /// Report every key that was not read, with a suggestion from the ones that were.
    pub fn finish(self) {
        self.finish_ref()
    }

    /// Like [`Section::finish`], through a reference.
    pub fn finish_ref(&self) {
        let used = self.used.borrow();
        let known: Vec<&str> = used.iter().map(|s| s.as_str()).collect();
        for (k, node) in &self.table.entries {
            if used.contains(k) {
                continue;
            }
            let help = match did_you_mean(k, &known) {
                Some(best) => format!("did you mean `{best}`? known keys: {}", known.join(", ")),
                None => format!("known keys: {}", known.join(", ")),
            };
            let place = if self.path.is_empty() {
                "at the top level".to_string()
            } else {
                format!("in [{}]", self.path)
            };
            self.sink.error(
                &node.origin,
                &self.field_path(k),
                format!("unknown key {place}"),
                Some(help),
            );
        }
    }
}
