//! WebDAV/CalDAV XML (pure): the request bodies calops sends and the `multistatus` answers it
//! reads. Answers are read into a small element tree by local name (servers pick their own
//! namespace prefixes; the names read here do not clash between DAV:, CalDAV and CalendarServer).

use quick_xml::events::Event;

/// One element: local name, `name` attribute (for `comp`), text, children.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub name_attr: Option<String>,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The first element called `name` at any depth (self included).
    pub fn find(&self, name: &str) -> Option<&Element> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(name))
    }

    /// All text inside, trimmed.
    pub fn text(&self) -> String {
        let mut s = self.text.clone();
        for c in &self.children {
            s.push_str(&c.text());
        }
        s.trim().to_string()
    }
}

fn local(name: &[u8]) -> String {
    let n = name.rsplit(|b| *b == b':').next().unwrap_or(name);
    String::from_utf8_lossy(n).into_owned()
}

fn entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix('x').or_else(|| num.strip_prefix('X')) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(code);
    }
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => None,
    }
}

/// Parse a whole XML document into its root element.
pub fn parse(text: &str) -> Result<Element, String> {
    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack: Vec<Element> = vec![Element::default()];
    let open = |e: &quick_xml::events::BytesStart<'_>| Element {
        name: local(e.name().as_ref()),
        name_attr: e
            .try_get_attribute("name")
            .ok()
            .flatten()
            .map(|a| String::from_utf8_lossy(&a.value).into_owned()),
        ..Element::default()
    };
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| format!("not XML at byte {}: {e}", reader.buffer_position()))?;
        match ev {
            Event::Start(e) => stack.push(open(&e)),
            Event::Empty(e) => {
                let el = open(&e);
                stack.last_mut().expect("root").children.push(el);
            }
            Event::End(_) => {
                let el = stack.pop().expect("balanced");
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => return Err("unbalanced XML".into()),
                }
            }
            Event::Text(t) => {
                let s = t.decode().map_err(|e| e.to_string())?;
                stack.last_mut().expect("root").text.push_str(&s);
            }
            Event::CData(t) => {
                let s = t.decode().map_err(|e| e.to_string())?;
                stack.last_mut().expect("root").text.push_str(&s);
            }
            Event::GeneralRef(r) => {
                let name = r.decode().map_err(|e| e.to_string())?;
                let ch = entity(&name).ok_or_else(|| format!("unknown entity &{name};"))?;
                stack.last_mut().expect("root").text.push(ch);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if stack.len() != 1 {
        return Err("the XML document ends inside an element".into());
    }
    let doc = stack.pop().expect("root");
    doc.children
        .into_iter()
        .next()
        .ok_or_else(|| "an empty XML document".to_string())
}

/// The status code of a `DAV:status` text such as `HTTP/1.1 404 Not Found`.
pub fn status_code(text: &str) -> Option<u16> {
    text.split_whitespace().nth(1)?.parse().ok()
}

/// One `response` of a `multistatus`: its href, its own status (sync-collection reports
/// removed members as 404), and the properties found (propstat with a 2xx status).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    pub href: String,
    pub status: Option<u16>,
    pub props: Vec<Element>,
}

impl Response {
    pub fn prop(&self, name: &str) -> Option<&Element> {
        self.props.iter().find(|p| p.name == name)
    }

    /// The text of property `name`, if present and not empty.
    pub fn text(&self, name: &str) -> Option<String> {
        self.prop(name).map(Element::text).filter(|s| !s.is_empty())
    }

    /// The first `href` inside property `name` (current-user-principal, calendar-home-set).
    pub fn href_in(&self, name: &str) -> Option<String> {
        self.prop(name)?.find("href").map(Element::text)
    }
}

/// A `multistatus` answer: every response and the `sync-token` (sync-collection).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Multistatus {
    pub responses: Vec<Response>,
    pub sync_token: Option<String>,
}

pub fn multistatus(text: &str) -> Result<Multistatus, String> {
    let root = parse(text)?;
    if root.name != "multistatus" {
        return Err(format!("expected a DAV multistatus, got <{}>", root.name));
    }
    let responses = root
        .children_named("response")
        .map(|r| Response {
            href: r.child("href").map(Element::text).unwrap_or_default(),
            status: r.child("status").and_then(|s| status_code(&s.text())),
            props: r
                .children_named("propstat")
                .filter(|ps| {
                    ps.child("status")
                        .and_then(|s| status_code(&s.text()))
                        .is_none_or(|c| (200..300).contains(&c))
                })
                .filter_map(|ps| ps.child("prop"))
                .flat_map(|p| p.children.iter().cloned())
                .collect(),
        })
        .collect();
    Ok(Multistatus {
        responses,
        sync_token: root.child("sync-token").map(Element::text),
    })
}

const HEAD: &str = r#"<?xml version="1.0" encoding="utf-8"?>"#;

/// PROPFIND for the current user's principal.
pub fn propfind_principal() -> String {
    format!(
        r#"{HEAD}<d:propfind xmlns:d="DAV:"><d:prop><d:current-user-principal/></d:prop></d:propfind>"#
    )
}

/// PROPFIND for a principal's calendar home.
pub fn propfind_home() -> String {
    format!(
        r#"{HEAD}<d:propfind xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><c:calendar-home-set/></d:prop></d:propfind>"#
    )
}

/// PROPFIND (Depth 1) for the calendars in a home, or (Depth 0) for one calendar's state.
pub fn propfind_calendars() -> String {
    format!(
        r#"{HEAD}<d:propfind xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav" xmlns:cs="http://calendarserver.org/ns/"><d:prop><d:resourcetype/><d:displayname/><c:supported-calendar-component-set/><cs:getctag/><d:sync-token/></d:prop></d:propfind>"#
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `YYYYMMDDTHHMMSSZ` for a time-range.
pub fn utc(t: jiff::Timestamp) -> String {
    t.strftime("%Y%m%dT%H%M%SZ").to_string()
}

/// REPORT calendar-query: the events overlapping `[from, to)` with their data (not expanded:
/// calops expands recurrence itself, the same way for every server).
pub fn calendar_query(from: jiff::Timestamp, to: jiff::Timestamp) -> String {
    format!(
        r#"{HEAD}<c:calendar-query xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/><c:calendar-data/></d:prop><c:filter><c:comp-filter name="VCALENDAR"><c:comp-filter name="VEVENT"><c:time-range start="{}" end="{}"/></c:comp-filter></c:comp-filter></c:filter></c:calendar-query>"#,
        utc(from),
        utc(to)
    )
}

/// REPORT sync-collection (RFC 6578) from `token` (empty: the initial sync).
pub fn sync_collection(token: &str) -> String {
    format!(
        r#"{HEAD}<d:sync-collection xmlns:d="DAV:"><d:sync-token>{}</d:sync-token><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>"#,
        escape(token)
    )
}

/// REPORT calendar-multiget for `hrefs`.
pub fn multiget(hrefs: &[String]) -> String {
    let list: String = hrefs
        .iter()
        .map(|h| format!("<d:href>{}</d:href>", escape(h)))
        .collect();
    format!(
        r#"{HEAD}<c:calendar-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/><c:calendar-data/></d:prop>{list}</c:calendar-multiget>"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multistatus_reads_props_by_local_name_and_entities() {
        let text = r#"<?xml version="1.0"?>
<D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
 <D:response><D:href>/u/cal/a.ics</D:href>
  <D:propstat><D:prop><D:getetag>"e1"</D:getetag>
   <C:calendar-data>BEGIN:VCALENDAR&#13;
SUMMARY:a &amp; b&#13;
END:VCALENDAR</C:calendar-data></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>
  <D:propstat><D:prop><D:displayname/></D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>
 </D:response>
 <D:response><D:href>/u/cal/gone.ics</D:href><D:status>HTTP/1.1 404 Not Found</D:status></D:response>
 <D:sync-token>http://x/sync/2</D:sync-token>
</D:multistatus>"#;
        let m = multistatus(text).unwrap();
        assert_eq!(m.sync_token.as_deref(), Some("http://x/sync/2"));
        assert_eq!(m.responses.len(), 2);
        let a = &m.responses[0];
        assert_eq!(a.text("getetag").as_deref(), Some("\"e1\""));
        assert!(
            a.prop("displayname").is_none(),
            "404 propstats are left out"
        );
        assert_eq!(
            a.prop("calendar-data").unwrap().text(),
            "BEGIN:VCALENDAR\r\nSUMMARY:a & b\r\nEND:VCALENDAR"
        );
        assert_eq!(m.responses[1].status, Some(404));
    }

    #[test]
    fn nonsense_is_an_error() {
        assert!(multistatus("<html><body>502</body></html>")
            .unwrap_err()
            .contains("multistatus"));
        assert!(multistatus("not xml at all <<<").is_err());
        assert!(multistatus("").is_err());
    }
}
