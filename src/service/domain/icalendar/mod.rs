//! iCalendar (RFC 5545) as CalDAV servers hand it out, read into busy time (pure: no I/O).
//!
//! - this file: content lines (unfolding, names, parameters, values) into a component tree
//! - `zones`: which time zone a `TZID` means (IANA names, vendor prefixes, Windows names,
//!   and the calendar's own `VTIMEZONE` turned into a POSIX rule)
//! - `busy`: events into busy intervals: recurrence expanded (`RRULE` with the `rrule` crate,
//!   `RDATE`, `EXDATE`, `RECURRENCE-ID` overrides), cancelled and transparent events left out,
//!   all-day events in the host's zone

pub mod busy;
pub mod zones;

/// One property: upper-cased name, parameters (upper-cased names, unquoted values), raw value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub name: String,
    pub params: Vec<(String, String)>,
    pub value: String,
}

impl Property {
    /// The first value of parameter `name` (upper case).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One component (`VCALENDAR`, `VEVENT`, `VTIMEZONE`, ...) with its properties and children.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Component {
    pub name: String,
    pub props: Vec<Property>,
    pub children: Vec<Component>,
}

impl Component {
    /// The first property called `name` (upper case).
    pub fn prop(&self, name: &str) -> Option<&Property> {
        self.props.iter().find(|p| p.name == name)
    }

    /// Every property called `name`.
    pub fn props_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Property> + 'a {
        self.props.iter().filter(move |p| p.name == name)
    }

    /// Children called `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Component> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }
}

/// Why a calendar object could not be read; `line` counts unfolded lines from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("iCalendar line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// Unfold (RFC 5545 §3.1: CRLF or LF followed by a space or tab continues the line).
fn unfold(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for raw in text.split('\n') {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        match raw.chars().next() {
            Some(' ' | '\t') if !lines.is_empty() => {
                lines.last_mut().expect("checked").push_str(&raw[1..]);
            }
            _ => lines.push(raw.to_string()),
        }
    }
    lines
}

/// `NAME;P=a;Q="b:c":value` into a property.
fn content_line(line: &str, n: usize) -> Result<Property, ParseError> {
    let err = |m: &str| ParseError {
        line: n,
        message: m.to_string(),
    };
    // The name ends at the first ';' or ':'; parameter values may hold ':' inside quotes.
    let name_end = line
        .find([';', ':'])
        .ok_or_else(|| err("a content line needs `name:value`"))?;
    let name = line[..name_end].trim().to_ascii_uppercase();
    if name.is_empty() {
        return Err(err("a property has no name"));
    }
    let mut params = Vec::new();
    let mut rest = &line[name_end..];
    while let Some(after) = rest.strip_prefix(';') {
        let eq = after
            .find('=')
            .ok_or_else(|| err("a parameter needs `name=value`"))?;
        let pname = after[..eq].trim().to_ascii_uppercase();
        let mut v = &after[eq + 1..];
        let value;
        if let Some(q) = v.strip_prefix('"') {
            let close = q
                .find('"')
                .ok_or_else(|| err("a quoted parameter value is not closed"))?;
            value = q[..close].to_string();
            v = &q[close + 1..];
            // Further values of a multi-valued parameter (`MEMBER="a","b"`) are skipped.
            while let Some(more) = v.strip_prefix(",\"") {
                let close = more.find('"').ok_or_else(|| err("unclosed quote"))?;
                v = &more[close + 1..];
            }
        } else {
            let end = v.find([';', ':']).unwrap_or(v.len());
            value = v[..end].to_string();
            v = &v[end..];
        }
        params.push((pname, value));
        rest = v;
    }
    let value = rest
        .strip_prefix(':')
        .ok_or_else(|| err("a content line needs `:` before its value"))?;
    Ok(Property {
        name,
        params,
        value: value.to_string(),
    })
}

/// Every top-level component of `text` (normally one `VCALENDAR`).
pub fn parse(text: &str) -> Result<Vec<Component>, ParseError> {
    let mut stack: Vec<Component> = Vec::new();
    let mut top = Vec::new();
    for (i, line) in unfold(text).iter().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let p = content_line(line, n)?;
        match p.name.as_str() {
            "BEGIN" => stack.push(Component {
                name: p.value.trim().to_ascii_uppercase(),
                ..Component::default()
            }),
            "END" => {
                let c = stack.pop().ok_or_else(|| ParseError {
                    line: n,
                    message: format!("END:{} without BEGIN", p.value),
                })?;
                if !c.name.eq_ignore_ascii_case(p.value.trim()) {
                    return Err(ParseError {
                        line: n,
                        message: format!("END:{} closes BEGIN:{}", p.value, c.name),
                    });
                }
                match stack.last_mut() {
                    Some(parent) => parent.children.push(c),
                    None => top.push(c),
                }
            }
            _ => match stack.last_mut() {
                Some(c) => c.props.push(p),
                None => {
                    return Err(ParseError {
                        line: n,
                        message: format!("{} outside any component", p.name),
                    })
                }
            },
        }
    }
    if let Some(open) = stack.last() {
        return Err(ParseError {
            line: 0,
            message: format!("BEGIN:{} is never closed", open.name),
        });
    }
    Ok(top)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_unfold_and_parameters_keep_quoted_colons() {
        let text = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:a long\r\n  summary\r\nDTSTART;TZID=\"/x:y/Europe/Berlin\";VALUE=DATE-TIME:20260301T090000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let cals = parse(text).unwrap();
        let ev = &cals[0].children[0];
        assert_eq!(ev.name, "VEVENT");
        assert_eq!(ev.prop("SUMMARY").unwrap().value, "a long summary");
        let d = ev.prop("DTSTART").unwrap();
        assert_eq!(d.param("TZID"), Some("/x:y/Europe/Berlin"));
        assert_eq!(d.param("VALUE"), Some("DATE-TIME"));
        assert_eq!(d.value, "20260301T090000");
    }

    #[test]
    fn broken_objects_say_which_line() {
        let e = parse("BEGIN:VCALENDAR\nBEGIN:VEVENT\nEND:VCALENDAR\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("closes BEGIN:VEVENT"), "{e}");
        assert!(parse("SUMMARY:x\n")
            .unwrap_err()
            .message
            .contains("outside"));
        assert!(parse("BEGIN:VCALENDAR\nnonsense\nEND:VCALENDAR")
            .unwrap_err()
            .message
            .contains("name:value"));
        assert!(parse("BEGIN:VCALENDAR\n")
            .unwrap_err()
            .message
            .contains("never closed"));
    }
}
