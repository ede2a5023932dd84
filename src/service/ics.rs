//! RFC 5545 calendars for bookings (pure: no I/O).
//!
//! One calendar object per event: the `UID` is the uid of the booking that started the chain
//! (a reschedule keeps it), `SEQUENCE` counts every reschedule and the cancel, and the method
//! is `REQUEST` while the event stands and `CANCEL` once it is cancelled (RFC 5546). Lines end
//! in CRLF and are folded at 75 octets without splitting a UTF-8 character; TEXT values are
//! escaped (backslash, semicolon, comma, newline).

use jiff::Timestamp;

/// The `PRODID` of every calendar we write.
pub const PRODID: &str = concat!("-//calops//calops ", env!("CARGO_PKG_VERSION"), "//EN");

/// The longest line, in octets, without its CRLF (RFC 5545 §3.1).
pub const MAX_LINE_OCTETS: usize = 75;

/// A person on the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub name: Option<String>,
    pub email: String,
}

/// Everything a calendar of one event needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The calendar `UID` (stable across reschedules).
    pub uid: String,
    pub sequence: i32,
    pub cancelled: bool,
    /// When this version of the event was made (`DTSTAMP`).
    pub stamp: Timestamp,
    pub start: Timestamp,
    pub end: Timestamp,
    pub summary: String,
    pub description: Option<String>,
    pub organizer: Person,
    /// The attendee first, then guests.
    pub attendees: Vec<Person>,
    /// The number of leading attendees who are required (the rest are optional guests).
    pub required_attendees: usize,
}

/// A UTC date-time in the RFC 5545 basic format, e.g. `20260601T090000Z`.
pub fn utc(t: Timestamp) -> String {
    t.strftime("%Y%m%dT%H%M%SZ").to_string()
}

/// Escape a TEXT value (RFC 5545 §3.3.11): `\` `;` `,` and newlines; other control characters
/// (not allowed in TEXT) are dropped, CR LF and lone CR become one newline.
pub fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("\\n");
            }
            '\n' => out.push_str("\\n"),
            '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A parameter value (RFC 5545 §3.2): quoted when it holds `:` `;` or `,`; double quotes and
/// control characters cannot appear in one at all, so they are replaced or dropped.
pub fn param_value(s: &str) -> String {
    let clean: String = s
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if c == '"' { '\'' } else { c })
        .collect();
    if clean.contains([':', ';', ',']) {
        format!("\"{clean}\"")
    } else {
        clean
    }
}

/// Fold one content line (without its CRLF) into physical lines of at most 75 octets, each
/// continuation starting with one space; never inside a UTF-8 character. Ends with CRLF.
pub fn fold(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + line.len() / 70 * 3 + 2);
    let mut used = 0;
    for c in line.chars() {
        let n = c.len_utf8();
        if used + n > MAX_LINE_OCTETS {
            out.push_str("\r\n ");
            used = 1;
        }
        out.push(c);
        used += n;
    }
    out.push_str("\r\n");
    out
}

fn person(prop: &str, p: &Person, extra: &str) -> String {
    let cn = match &p.name {
        Some(n) if !n.trim().is_empty() => format!(";CN={}", param_value(n.trim())),
        _ => String::new(),
    };
    format!("{prop}{cn}{extra}:mailto:{}", p.email.trim())
}

/// The whole calendar object, CRLF line endings, folded.
pub fn render(e: &Event) -> String {
    render_with(e, true)
}

/// The event as a CalDAV calendar object resource: like [`render`] but without `METHOD`
/// (RFC 4791 §4.1 forbids it in stored resources).
pub fn render_resource(e: &Event) -> String {
    render_with(e, false)
}

fn render_with(e: &Event, with_method: bool) -> String {
    let method = if e.cancelled { "CANCEL" } else { "REQUEST" };
    let status = if e.cancelled {
        "CANCELLED"
    } else {
        "CONFIRMED"
    };
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_string(),
        format!("PRODID:{PRODID}"),
        "VERSION:2.0".into(),
        "CALSCALE:GREGORIAN".into(),
        format!("METHOD:{method}"),
        "BEGIN:VEVENT".into(),
        format!("UID:{}", escape_text(&e.uid)),
        format!("DTSTAMP:{}", utc(e.stamp)),
        format!("DTSTART:{}", utc(e.start)),
        format!("DTEND:{}", utc(e.end)),
        format!("SEQUENCE:{}", e.sequence),
        format!("STATUS:{status}"),
        format!("SUMMARY:{}", escape_text(&e.summary)),
    ];
    if let Some(d) = e.description.as_deref().filter(|d| !d.is_empty()) {
        lines.push(format!("DESCRIPTION:{}", escape_text(d)));
    }
    lines.push(person("ORGANIZER", &e.organizer, ""));
    for (i, a) in e.attendees.iter().enumerate() {
        let role = if i < e.required_attendees {
            "REQ-PARTICIPANT"
        } else {
            "OPT-PARTICIPANT"
        };
        let partstat = if e.cancelled {
            "DECLINED"
        } else {
            "NEEDS-ACTION"
        };
        lines.push(person(
            "ATTENDEE",
            a,
            &format!(";CUTYPE=INDIVIDUAL;ROLE={role};PARTSTAT={partstat};RSVP=FALSE"),
        ));
    }
    if !with_method {
        lines.retain(|l| !l.starts_with("METHOD:"));
    }
    lines.push("TRANSP:OPAQUE".into());
    lines.push("END:VEVENT".into());
    lines.push("END:VCALENDAR".into());
    lines.iter().map(|l| fold(l)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        Event {
            uid: "0b8c6a52-6f0e-4a57-9d0f-2f3c2b8f1a11".into(),
            sequence: 2,
            cancelled: false,
            stamp: "2031-03-01T08:00:00Z".parse().unwrap(),
            start: "2031-03-03T09:00:00Z".parse().unwrap(),
            end: "2031-03-03T09:30:00Z".parse().unwrap(),
            summary: "Call, with Ann; notes\\later".into(),
            description: Some("line one\nline two".into()),
            organizer: Person {
                name: Some("Host, The".into()),
                email: "host@example.com".into(),
            },
            attendees: vec![
                Person {
                    name: Some("Ann \"Lee\"".into()),
                    email: "ann@example.com".into(),
                },
                Person {
                    name: None,
                    email: "guest@example.com".into(),
                },
            ],
            required_attendees: 1,
        }
    }

    /// Unfold (RFC 5545 §3.1) for checking.
    fn unfold(s: &str) -> Vec<String> {
        s.replace("\r\n ", "")
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            escape_text("a\\b;c,d\ne\r\nf\rg\u{7}h"),
            "a\\\\b\\;c\\,d\\ne\\nf\\ngh"
        );
        assert_eq!(param_value("Lee, Ann"), "\"Lee, Ann\"");
        assert_eq!(param_value("Ann \"x\""), "Ann 'x'");
        assert_eq!(param_value("Ann"), "Ann");
    }

    #[test]
    fn long_multibyte_lines_fold_at_75_octets_between_characters() {
        // 3-octet and 4-octet characters, so that a naive cut at 75 would split one.
        let value: String = "日本語の会議🙂".repeat(20);
        let folded = fold(&format!("SUMMARY:{value}"));
        assert!(folded.ends_with("\r\n"));
        let physical: Vec<&str> = folded.trim_end_matches("\r\n").split("\r\n").collect();
        assert!(physical.len() > 5);
        for (i, l) in physical.iter().enumerate() {
            assert!(
                l.len() <= MAX_LINE_OCTETS,
                "line {i} has {} octets",
                l.len()
            );
            if i > 0 {
                assert!(l.starts_with(' '));
            }
            // Every piece is valid UTF-8 on its own (a &str split proves it) and no piece
            // could have taken the next character without going over.
        }
        assert_eq!(
            physical.concat().replace(" ", ""),
            format!("SUMMARY:{value}")
        );
        // ASCII folds at exactly 75 octets.
        let ascii = fold(&"x".repeat(200));
        let parts: Vec<&str> = ascii.trim_end_matches("\r\n").split("\r\n").collect();
        assert_eq!(parts[0].len(), 75);
        assert_eq!(parts[1].len(), 75);
        assert_eq!(parts[2].len(), 200 - 75 - 74 + 1);
        // A line of exactly 75 octets is not folded.
        assert_eq!(fold(&"y".repeat(75)), format!("{}\r\n", "y".repeat(75)));
    }

    #[test]
    fn a_request_has_every_property_in_utc_with_crlf() {
        let text = render(&event());
        assert!(text.ends_with("END:VCALENDAR\r\n"));
        assert!(
            !text.replace("\r\n", "").contains('\n'),
            "bare LF in {text:?}"
        );
        let lines = unfold(&text);
        for want in [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "METHOD:REQUEST",
            "UID:0b8c6a52-6f0e-4a57-9d0f-2f3c2b8f1a11",
            "DTSTAMP:20310301T080000Z",
            "DTSTART:20310303T090000Z",
            "DTEND:20310303T093000Z",
            "SEQUENCE:2",
            "STATUS:CONFIRMED",
            "SUMMARY:Call\\, with Ann\\; notes\\\\later",
            "DESCRIPTION:line one\\nline two",
            "ORGANIZER;CN=\"Host, The\":mailto:host@example.com",
        ] {
            assert!(
                lines.iter().any(|l| l == want),
                "{want} missing in {lines:#?}"
            );
        }
        assert!(lines[1].starts_with("PRODID:-//calops//"));
        let attendees: Vec<&String> = lines.iter().filter(|l| l.starts_with("ATTENDEE")).collect();
        assert_eq!(attendees.len(), 2);
        assert!(attendees[0].starts_with("ATTENDEE;CN=Ann 'Lee';"));
        assert!(attendees[0].contains("ROLE=REQ-PARTICIPANT"));
        assert!(attendees[1].contains("ROLE=OPT-PARTICIPANT"));
        assert!(attendees[1].ends_with(":mailto:guest@example.com"));
    }

    #[test]
    fn a_cancel_says_so() {
        let e = Event {
            cancelled: true,
            sequence: 3,
            ..event()
        };
        let lines = unfold(&render(&e));
        assert!(lines.contains(&"METHOD:CANCEL".to_string()));
        assert!(lines.contains(&"STATUS:CANCELLED".to_string()));
        assert!(lines.contains(&"SEQUENCE:3".to_string()));
        assert!(!lines.iter().any(|l| l == "METHOD:REQUEST"));
    }
}
