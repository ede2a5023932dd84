//! The message of one outbox row (no I/O): `multipart/alternative` with a plain-text part, an
//! HTML part and, for confirmations, reschedules and cancellations, the iTIP invitation
//! (`text/calendar; method=REQUEST` or `CANCEL`) rendered by the same code as the booking's
//! ICS file (`calendar::event`), with the `SEQUENCE` the calendar had when the event happened.
//!
//! Texts come from the booking pages' messages (`web::i18n`, English or German by the
//! attendee's language; hosts get English), times are in the recipient's time zone, and the
//! links are the booking pages' signed self-service links (`web::links`). The `Message-ID` is
//! `<outbox row uid@sender domain>`: the same for every attempt at one (event, recipient), so a
//! message sent twice across a crash is recognisably the same message.

use crate::service::calendar::{self, text};
use crate::service::ics;
use crate::service::store::ics::CalendarRow;
use crate::service::store::mail::ClaimedMail;
use crate::service::web::i18n::{self, Lang};
use crate::service::web::links::{self_service_urls, SelfServiceUrls};
use crate::service::web::view;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::Message;

/// What every message of one service shares.
pub struct Sender<'a> {
    pub from: &'a str,
    /// Where the booking pages are (`None`: no links).
    pub public_url: Option<&'a str>,
    pub page_key: &'a [u8],
}

/// The calendar row of the booking as it was when this message's event happened.
pub fn calendar_row(m: &ClaimedMail) -> CalendarRow {
    CalendarRow {
        org_id: m.org_id,
        ical_uid: m.ical_uid,
        sequence: m.sequence,
        status: if m.kind == "cancelled" {
            "cancelled".into()
        } else {
            "accepted".into()
        },
        title: m.title.clone(),
        start: m.start,
        end: m.end,
        updated_at: m.updated_at,
        host_name: m.host_name.clone(),
        host_email: m.host_email.clone(),
        attendee: m.attendee.clone(),
        guests: m.guests.clone(),
        booking_uid: m.booking_uid,
    }
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The texts of one message, before they become MIME parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Texts {
    pub subject: String,
    pub plain: String,
    pub html: String,
    /// The iTIP invitation, when the message carries one.
    pub invitation: Option<(String, &'static str)>,
}

/// Subject, plain text, HTML and invitation of outbox row `m`.
pub fn texts(m: &ClaimedMail, links: Option<&SelfServiceUrls>) -> Texts {
    let host = m.role == "host";
    let lang = if host {
        Lang::En
    } else {
        m.lang
            .as_deref()
            .and_then(Lang::from_code)
            .unwrap_or(Lang::En)
    };
    let zone = if host {
        m.host_time_zone.clone()
    } else {
        text(&m.attendee, "timeZone").unwrap_or_else(|| m.host_time_zone.clone())
    };
    let tz = jiff::tz::TimeZone::get(&zone).unwrap_or(jiff::tz::TimeZone::UTC);
    let when = format!(
        "{} ({})",
        view::long_moment(lang, m.start, &tz, lang.default_hour12()),
        tz.iana_name().unwrap_or("UTC")
    );
    let attendee_name = text(&m.attendee, "name").unwrap_or_else(|| "attendee".into());
    let args = [
        ("title", m.title.clone()),
        ("when", when.clone()),
        ("host", m.host_name.clone()),
        ("attendee", attendee_name.clone()),
    ];
    let t = |id: &str| i18n::message(lang, id, &args);
    let kind = m.kind.as_str();
    let subject = t(&format!("mail-subject-{kind}"));
    let intro = if host {
        t(&format!("mail-host-{kind}"))
    } else {
        t(&format!("mail-intro-{kind}"))
    };
    let mut rows = vec![
        (t("mail-what"), m.title.clone()),
        (t("mail-when"), when),
        (t("mail-who"), format!("{}, {attendee_name}", m.host_name)),
    ];
    if kind == "cancelled" {
        if let Some(r) = m
            .cancellation_reason
            .as_deref()
            .filter(|r| !r.trim().is_empty())
        {
            rows.push((t("mail-reason"), r.trim().to_string()));
        }
    }
    let mut link_rows = Vec::new();
    if let Some(l) = links.filter(|_| kind != "cancelled") {
        link_rows.push((t("mail-view"), l.view.clone()));
        link_rows.push((t("mail-reschedule"), l.reschedule.clone()));
        link_rows.push((t("mail-cancel"), l.cancel.clone()));
    }
    let invitation = (kind != "reminder").then(|| {
        let row = calendar_row(m);
        let method = if kind == "cancelled" {
            "CANCEL"
        } else {
            "REQUEST"
        };
        (ics::render(&calendar::event(&row)), method)
    });
    let mut plain = format!("{intro}\n\n");
    for (k, v) in &rows {
        plain.push_str(&format!("{k}: {v}\n"));
    }
    if !link_rows.is_empty() {
        plain.push('\n');
        for (k, v) in &link_rows {
            plain.push_str(&format!("{k}: {v}\n"));
        }
    }
    if invitation.is_some() {
        plain.push_str(&format!("\n{}\n", t("mail-invitation")));
    }
    let mut html = format!(
        "<!DOCTYPE html><html lang=\"{}\"><head><meta charset=\"utf-8\"><title>{}</title></head><body><p>{}</p><table>",
        lang.code(),
        escape_html(&subject),
        escape_html(&intro)
    );
    for (k, v) in &rows {
        html.push_str(&format!(
            "<tr><th scope=\"row\" align=\"left\">{}</th><td>{}</td></tr>",
            escape_html(k),
            escape_html(v)
        ));
    }
    html.push_str("</table>");
    if !link_rows.is_empty() {
        html.push_str("<p>");
        let links: Vec<String> = link_rows
            .iter()
            .map(|(k, v)| format!("<a href=\"{}\">{}</a>", escape_html(v), escape_html(k)))
            .collect();
        html.push_str(&links.join(" · "));
        html.push_str("</p>");
    }
    html.push_str("</body></html>");
    Texts {
        subject,
        plain,
        html,
        invitation,
    }
}

/// `a` as it goes out (envelope and headers): an internationalized domain as its IDNA
/// A-labels (`domain::address::outgoing`), since neither SMTP without SMTPUTF8 nor OCI's
/// `SubmitRawEmail` carries other letters.
fn mail_address(a: &str) -> Result<lettre::Address, String> {
    crate::service::domain::address::outgoing(a)?
        .parse()
        .map_err(|e: lettre::address::AddressError| e.to_string())
}

/// The whole message of outbox row `m`; `Err` (with the reason, for the dead letter) when an
/// address cannot be used.
pub fn message(m: &ClaimedMail, s: &Sender<'_>) -> Result<Message, String> {
    let links = s
        .public_url
        .filter(|_| m.role != "host")
        .map(|base| self_service_urls(base, s.page_key, m.booking_uid, m.org_id, m.end));
    let t = texts(m, links.as_ref());
    let from_addr = mail_address(s.from).map_err(|e| format!("sender {:?}: {e}", s.from))?;
    let to_addr =
        mail_address(&m.recipient).map_err(|e| format!("recipient is not an address: {e}"))?;
    let sender_name = m
        .sender_name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| m.org_name.clone());
    let reply_to = m
        .reply_to
        .clone()
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| m.host_email.clone());
    let to_name = match m.role.as_str() {
        "attendee" => text(&m.attendee, "name"),
        "host" => Some(m.host_name.clone()),
        _ => None,
    };
    let mut b = Message::builder()
        .from(Mailbox::new(Some(sender_name), from_addr.clone()))
        .to(Mailbox::new(to_name, to_addr))
        .subject(t.subject)
        .message_id(Some(format!("<{}@{}>", m.uid, from_addr.domain())));
    if m.role != "host" {
        if let Ok(r) = mail_address(&reply_to) {
            b = b.reply_to(Mailbox::new(Some(m.host_name.clone()), r));
        }
    }
    let mut parts = MultiPart::alternative()
        .singlepart(SinglePart::plain(t.plain))
        .singlepart(SinglePart::html(t.html));
    if let Some((ics, method)) = t.invitation {
        let ct = ContentType::parse(&format!("text/calendar; charset=utf-8; method={method}"))
            .map_err(|e| e.to_string())?;
        parts = parts.singlepart(SinglePart::builder().header(ct).body(ics));
    }
    b.multipart(parts).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use uuid::Uuid;

    pub fn sample(kind: &str, role: &str, lang: Option<&str>) -> ClaimedMail {
        ClaimedMail {
            id: 1,
            uid: Uuid::new_v4(),
            kind: kind.into(),
            reminder_minutes: 0,
            recipient: "ann@example.com".into(),
            role: role.into(),
            lang: lang.map(str::to_string),
            sequence: 2,
            attempt: 1,
            booking_uid: Uuid::new_v4(),
            ical_uid: Uuid::new_v4(),
            booking_status: "accepted".into(),
            start: "2031-03-03T09:00:00Z".parse().unwrap(),
            end: "2031-03-03T09:30:00Z".parse().unwrap(),
            updated_at: "2031-03-01T09:30:00Z".parse().unwrap(),
            title: "Intro <call>".into(),
            host_name: "Hal Host".into(),
            host_email: "hal@example.com".into(),
            host_time_zone: "America/New_York".into(),
            attendee: json!({"name": "Ann Lee", "email": "ann@example.com", "timeZone": "Europe/Berlin"}),
            guests: json!(["gus@example.com"]),
            org_id: 7,
            org_name: "Acme".into(),
            sender_name: None,
            reply_to: None,
            cancellation_reason: Some("ill".into()),
        }
    }

    #[test]
    fn the_attendee_gets_their_language_zone_links_and_a_request() {
        let m = sample("created", "attendee", Some("de"));
        let s = Sender {
            from: "bookings@acme.example",
            public_url: Some("https://book.acme.example"),
            page_key: b"0123456789abcdef0123456789abcdef",
        };
        let links = self_service_urls(
            "https://book.acme.example",
            s.page_key,
            m.booking_uid,
            7,
            m.end,
        );
        let t = texts(&m, Some(&links));
        assert!(
            t.subject
                .starts_with("Bestätigt: Intro <call> am Montag, 3. März 2031, 10:00"),
            "{}",
            t.subject
        );
        assert!(t.plain.contains(&links.cancel), "{}", t.plain);
        assert!(t.html.contains("Intro &lt;call&gt;"));
        assert!(!t.html.contains("<call>"));
        let (ics, method) = t.invitation.unwrap();
        assert_eq!(method, "REQUEST");
        assert!(ics.contains("METHOD:REQUEST\r\n") && ics.contains("SEQUENCE:2\r\n"));
        assert!(ics.contains(&format!("UID:{}\r\n", m.ical_uid)));
        let raw = String::from_utf8(message(&m, &s).unwrap().formatted()).unwrap();
        assert!(
            raw.contains(&format!("Message-ID: <{}@acme.example>", m.uid)),
            "{raw}"
        );
        assert!(
            raw.contains("Reply-To: \"Hal Host\" <hal@example.com>")
                || raw.contains("Reply-To: Hal Host <hal@example.com>"),
            "{raw}"
        );
        assert!(
            raw.contains("text/calendar; charset=utf-8; method=REQUEST"),
            "{raw}"
        );
        assert!(raw.contains("From: Acme <bookings@acme.example>"), "{raw}");
    }

    #[test]
    fn hosts_get_english_in_their_zone_without_links_and_cancels_say_cancel() {
        let m = sample("cancelled", "host", Some("de"));
        let t = texts(&m, None);
        assert!(
            t.subject
                .starts_with("Cancelled: Intro <call> on Monday, March 3, 2031, 4:00 AM"),
            "{}",
            t.subject
        );
        assert!(t.plain.contains("Reason: ill"));
        let (ics, method) = t.invitation.unwrap();
        assert_eq!(method, "CANCEL");
        assert!(ics.contains("METHOD:CANCEL\r\n") && ics.contains("STATUS:CANCELLED\r\n"));
        let r = texts(&sample("reminder", "guest", None), None);
        assert!(r.subject.starts_with("Reminder: "));
        assert!(
            r.invitation.is_none(),
            "a reminder does not re-send the invitation"
        );
        let bad = ClaimedMail {
            recipient: "not an address".into(),
            ..sample("created", "guest", None)
        };
        let s = Sender {
            from: "bookings@acme.example",
            public_url: None,
            page_key: b"k",
        };
        assert!(message(&bad, &s).unwrap_err().contains("recipient"));
    }

    #[test]
    fn internationalized_domains_leave_as_a_labels_in_the_envelope_and_headers() {
        let m = ClaimedMail {
            recipient: "someone@bücher.example".into(),
            host_email: "hal@hôte.example".into(),
            ..sample("created", "attendee", None)
        };
        let s = Sender {
            from: "bookings@bücher.example",
            public_url: None,
            page_key: b"k",
        };
        let msg = message(&m, &s).unwrap();
        let env = msg.envelope();
        let to: Vec<String> = env.to().iter().map(|a| a.to_string()).collect();
        assert_eq!(to, ["someone@xn--bcher-kva.example"]);
        assert_eq!(
            env.from().map(|a| a.to_string()).as_deref(),
            Some("bookings@xn--bcher-kva.example")
        );
        let raw = String::from_utf8(msg.formatted()).unwrap();
        let headers = &raw[..raw.find("\r\n\r\n").unwrap()];
        assert!(headers.is_ascii(), "{headers}");
        for h in [
            "<someone@xn--bcher-kva.example>",
            "From: Acme <bookings@xn--bcher-kva.example>",
            "Reply-To: \"Hal Host\" <hal@xn--hte-kna.example>",
            "@xn--bcher-kva.example>",
        ] {
            assert!(headers.contains(h), "{h} not in {headers}");
        }
    }
}
