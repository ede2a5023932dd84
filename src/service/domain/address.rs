//! E-mail addresses people type into bookings (attendee, guests, hosts): accepted only when
//! mail can be sent to them, so a bad one is refused when it is given (a field error naming
//! it) instead of failing later in the mail outbox.
//!
//! The grammar is `lettre`'s (`lettre::Address`: an RFC 5321 dot-atom or quoted local part
//! and a host name or address literal; the transport that sends calops' mail), plus what a
//! booking needs on top: no spaces (not even quoted), a dot in the domain (no bare host
//! names) and at most 254 characters (RFC 5321's path limit less the angle brackets).

/// Can calops send mail to `s`, as given (callers trim)?
pub fn is_mailbox(s: &str) -> bool {
    let Some((_, domain)) = s.rsplit_once('@') else {
        return false;
    };
    s.len() <= 254
        && !s.contains(char::is_whitespace)
        && domain.contains('.')
        && !domain.ends_with('.')
        && s.parse::<lettre::Address>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_mail_can_reach_and_not() {
        for ok in [
            "ann@example.com",
            "ann.lee+dental@mail.example.co.uk",
            "o'brien@example.ie",
            "ann@[192.0.2.1]",
            "jürgen@müller.example",
        ] {
            assert!(is_mailbox(ok), "{ok}");
        }
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "ann@example.",
            "ann@@example.com",
            "ann lee@example.com",
            "\"ann lee\"@example.com",
            // What a plausibility check (an @, a dot after it, no spaces) lets through but
            // no mail server takes:
            "ann..lee@example.com",
            ".ann@example.com",
            "ann,lee@example.com",
            "<ann@example.com>",
            "ann@-example.com",
            "ann@example..com",
        ] {
            assert!(!is_mailbox(bad), "{bad:?} was accepted");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(!is_mailbox(&long));
    }
}
