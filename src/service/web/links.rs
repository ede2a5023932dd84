//! A booking's self-service URLs (pure): what the confirmation page links to and what
//! e-mails to the invitee carry. Each holds the booking's link token (`token::sign_link`),
//! valid until the booking ends.

use super::token;
use jiff::Timestamp;
use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SelfServiceUrls {
    /// The booking's page: its time in the invitee's zone and the links below.
    pub view: String,
    pub reschedule: String,
    pub cancel: String,
    /// The calendar file (`.ics`).
    pub ics: String,
}

/// The path of a booking's page (`/booking/{uid}`); `suffix` is `""`, `/cancel`,
/// `/reschedule` or `/ics`.
pub fn booking_path(uid: Uuid, suffix: &str) -> String {
    format!("/booking/{uid}{suffix}")
}

/// The self-service URLs of booking `uid` of organization `org_id`, which ends at `end`, on
/// the service at `base_url` (e.g. `https://book.example.com`; `""` gives paths), signed
/// with the page key (`AppState::page_key`).
pub fn self_service_urls(
    base_url: &str,
    key: &[u8],
    uid: Uuid,
    org_id: i64,
    end: Timestamp,
) -> SelfServiceUrls {
    let t = token::sign_link(key, uid, org_id, end.as_second());
    let base = base_url.trim_end_matches('/');
    let url = |suffix: &str| format!("{base}{}?t={t}", booking_path(uid, suffix));
    SelfServiceUrls {
        view: url(""),
        reschedule: url("/reschedule"),
        cancel: url("/cancel"),
        ics: url("/ics"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_url_carries_a_token_that_opens_this_booking_only() {
        let key = b"0123456789abcdef0123456789abcdef";
        let uid = Uuid::new_v4();
        let end: Timestamp = "2030-01-01T10:00:00Z".parse().unwrap();
        let u = self_service_urls("https://book.example.com/", key, uid, 7, end);
        assert!(u
            .view
            .starts_with(&format!("https://book.example.com/booking/{uid}?t=")));
        assert!(u.cancel.contains(&format!("/booking/{uid}/cancel?t=")));
        for url in [&u.view, &u.reschedule, &u.cancel, &u.ics] {
            let t = url.split("?t=").nth(1).unwrap();
            assert_eq!(token::verify_link(key, uid, t, end.as_second() - 1), Ok(7));
            assert!(token::verify_link(key, uid, t, end.as_second()).is_err());
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
                "{t} needs no escaping in a URL"
            );
        }
        assert!(self_service_urls("", key, uid, 7, end)
            .view
            .starts_with("/booking/"));
    }
}
