//! A TOML value tree that remembers where every value came from.
//!
//! Profiles are merged (`extends`, environment overrides) before they are typed, so errors must
//! still point at the file, line and column of the value that won. `toml_edit` keeps byte spans;
//! this module turns them into [`Origin`]s once, at parse time.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File {
        path: PathBuf,
        line: usize,
        col: usize,
    },
    Env {
        var: String,
    },
    /// The `--profile` argument (or `CALOPS_PROFILE`).
    CommandLine,
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line, col } => write!(f, "{}:{line}:{col}", path.display()),
            Origin::Env { var } => write!(f, "environment variable {var}"),
            Origin::CommandLine => f.write_str("--profile"),
            Origin::Default => f.write_str("built-in default"),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Array(Vec<Node>),
    Table(Table),
    /// Text from an environment variable; typed by the field that reads it.
    EnvText(String),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "a string",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Bool(_) => "a boolean",
            Value::Array(_) => "an array",
            Value::Table(_) => "a table",
            Value::EnvText(_) => "text",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Node {
    pub value: Value,
    pub origin: Origin,
}

#[derive(Debug, Clone, Default)]
pub struct Table {
    pub entries: BTreeMap<String, Node>,
}

impl Table {
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries.get(key)
    }

    /// Deep merge: tables merge key by key; anything else in `over` replaces what `self` had.
    pub fn merge(&mut self, over: Table) {
        for (k, v) in over.entries {
            match (self.entries.get_mut(&k), v) {
                (
                    Some(Node {
                        value: Value::Table(base),
                        ..
                    }),
                    Node {
                        value: Value::Table(top),
                        ..
                    },
                ) => base.merge(top),
                (_, v) => {
                    self.entries.insert(k, v);
                }
            }
        }
    }
}

/// Maps byte offsets in a file to 1-based line and column (in characters).
pub struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.starts[line];
        let col = self.text[start..offset].chars().count() + 1;
        (line + 1, col)
    }
}

/// A TOML syntax error with its position.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub origin: Origin,
    pub message: String,
}

/// Parse TOML text into a [`Table`] whose nodes carry origins in `path`.
pub fn parse(text: &str, path: &Path) -> Result<Table, SyntaxError> {
    let idx = LineIndex::new(text);
    let at = |span: Option<std::ops::Range<usize>>| -> Origin {
        let (line, col) = span.map(|s| idx.position(s.start)).unwrap_or((1, 1));
        Origin::File {
            path: path.to_path_buf(),
            line,
            col,
        }
    };
    let doc = toml_edit::ImDocument::parse(text.to_string()).map_err(|e| SyntaxError {
        origin: at(e.span()),
        message: e.message().trim().to_string(),
    })?;
    Ok(convert_table(doc.as_table(), &at))
}

fn convert_table(
    t: &toml_edit::Table,
    at: &dyn Fn(Option<std::ops::Range<usize>>) -> Origin,
) -> Table {
    let mut out = Table::default();
    for (k, item) in t.iter() {
        let key_span = t.key(k).and_then(|key| key.span());
        if let Some(node) = convert_item(item, key_span, at) {
            out.entries.insert(k.to_string(), node);
        }
    }
    out
}

fn convert_item(
    item: &toml_edit::Item,
    key_span: Option<std::ops::Range<usize>>,
    at: &dyn Fn(Option<std::ops::Range<usize>>) -> Origin,
) -> Option<Node> {
    match item {
        toml_edit::Item::None => None,
        toml_edit::Item::Value(v) => Some(convert_value(v, at)),
        toml_edit::Item::Table(t) => Some(Node {
            value: Value::Table(convert_table(t, at)),
            origin: at(t.span().or(key_span)),
        }),
        toml_edit::Item::ArrayOfTables(a) => Some(Node {
            value: Value::Array(
                a.iter()
                    .map(|t| Node {
                        value: Value::Table(convert_table(t, at)),
                        origin: at(t.span()),
                    })
                    .collect(),
            ),
            origin: at(a.span().or(key_span)),
        }),
    }
}

fn convert_value(
    v: &toml_edit::Value,
    at: &dyn Fn(Option<std::ops::Range<usize>>) -> Origin,
) -> Node {
    use toml_edit::Value as V;
    let origin = at(v.span());
    let value = match v {
        V::String(s) => Value::Str(s.value().clone()),
        V::Integer(i) => Value::Int(*i.value()),
        V::Float(f) => Value::Float(*f.value()),
        V::Boolean(b) => Value::Bool(*b.value()),
        V::Datetime(d) => Value::Str(d.value().to_string()),
        V::Array(a) => Value::Array(a.iter().map(|x| convert_value(x, at)).collect()),
        V::InlineTable(t) => {
            let mut out = Table::default();
            for (k, x) in t.iter() {
                out.entries.insert(k.to_string(), convert_value(x, at));
            }
            Value::Table(out)
        }
    };
    Node { value, origin }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_point_at_values() {
        let t = parse("a = 1\n[s]\n  b = \"x\"\n", Path::new("p.toml")).unwrap();
        let s = match &t.get("s").unwrap().value {
            Value::Table(s) => s,
            _ => panic!("not a table"),
        };
        assert_eq!(
            s.get("b").unwrap().origin.to_string(),
            "p.toml:3:7",
            "column of the value"
        );
    }

    #[test]
    fn syntax_error_has_position() {
        let e = parse("a = 1\nb = = 2\n", Path::new("p.toml")).unwrap_err();
        assert!(
            e.origin.to_string().starts_with("p.toml:2:"),
            "{}",
            e.origin
        );
    }

    #[test]
    fn merge_is_deep() {
        let mut a = parse("[s]\nx = 1\ny = 2\n", Path::new("a")).unwrap();
        let b = parse("[s]\ny = 3\n", Path::new("b")).unwrap();
        a.merge(b);
        let s = match &a.get("s").unwrap().value {
            Value::Table(s) => s.clone(),
            _ => panic!(),
        };
        assert!(matches!(s.get("x").unwrap().value, Value::Int(1)));
        assert!(matches!(s.get("y").unwrap().value, Value::Int(3)));
    }
}
