//! E-mail addresses people type into bookings (attendee, guests, hosts): accepted only when
//! mail can be sent to them, so a bad one is refused when it is given (a field error naming
//! it) instead of failing later in the mail outbox.
//!
//! The grammar is `lettre`'s (`lettre::Address`: an RFC 5321 dot-atom or quoted local part
//! and a host name or address literal; the transport that sends calops' mail), plus what a
//! booking needs on top: no spaces (not even quoted), a dot in the domain (no bare host
//! names) and at most 254 characters (RFC 5321's path limit less the angle brackets).
//!
//! Mail goes out without SMTPUTF8 (OCI's `SubmitRawEmail` takes ASCII addresses only, and
//! lettre does not speak it), so an address leaves in [`outgoing`] form: an internationalized
//! domain as its IDNA A-labels (`bücher.example` -> `xn--bcher-kva.example`). A local part
//! (before the `@`) has no ASCII form, so one with other letters is refused
//! ([`Refusal::NonAsciiLocalPart`]).

/// Why calops cannot send mail to an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not an address at all (or not one a mail server takes).
    NotAnAddress,
    /// An address, but its local part has letters outside ASCII, which calops' mail cannot
    /// carry (no SMTPUTF8).
    NonAsciiLocalPart,
}

/// Can calops send mail to `s`, as given (callers trim)? Why not.
pub fn check(s: &str) -> Result<(), Refusal> {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return Err(Refusal::NotAnAddress);
    };
    let shape = !s.contains(char::is_whitespace)
        && domain.contains('.')
        && !domain.ends_with('.')
        && s.parse::<lettre::Address>().is_ok();
    let out = outgoing(s).ok().filter(|o| o.len() <= 254);
    if !shape || out.is_none_or(|o| o.parse::<lettre::Address>().is_err()) {
        return Err(Refusal::NotAnAddress);
    }
    if !local.is_ascii() {
        return Err(Refusal::NonAsciiLocalPart);
    }
    Ok(())
}

/// [`check`] passes.
pub fn is_mailbox(s: &str) -> bool {
    check(s).is_ok()
}

/// `s` as it goes out in envelopes and headers: a domain with letters outside ASCII as its
/// IDNA (UTS #46, STD3 host name rules) A-labels; an ASCII domain and the local part as given.
/// `Err` names what is wrong with the domain.
pub fn outgoing(s: &str) -> Result<String, String> {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return Err(format!("{s:?} has no @"));
    };
    if domain.is_ascii() {
        return Ok(s.to_string());
    }
    let ascii = idna::domain_to_ascii_strict(domain)
        .map_err(|e| format!("the domain {domain:?} has no IDNA form ({e:?})"))?;
    Ok(format!("{local}@{ascii}"))
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
            "juergen@müller.example",
            "someone@bücher.example",
        ] {
            assert!(is_mailbox(ok), "{ok}");
        }
        // An address, but one whose local part mail without SMTPUTF8 cannot carry.
        for ascii_only in [
            "jürgen@müller.example",
            "jürgen@example.com",
            "名前@example.jp",
        ] {
            assert_eq!(
                check(ascii_only),
                Err(Refusal::NonAsciiLocalPart),
                "{ascii_only}"
            );
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
            // Not addresses, whatever their letters.
            "jürgen..x@example.com",
            "ann@bü cher.example",
            "ann@-bücher.example",
            "ann@bücher..example",
        ] {
            assert!(!is_mailbox(bad), "{bad:?} was accepted");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(!is_mailbox(&long));
        // Within 254 characters as typed, but not in its outgoing form.
        let long = format!("{}@bücher.example", "a".repeat(230));
        assert!(long.len() <= 254 && !is_mailbox(&long));
    }

    #[test]
    fn internationalized_domains_go_out_as_their_a_labels() {
        assert_eq!(
            outgoing("someone@bücher.example").unwrap(),
            "someone@xn--bcher-kva.example"
        );
        assert_eq!(
            outgoing("ann@Bücher.Example").unwrap(),
            "ann@xn--bcher-kva.example"
        );
        assert_eq!(
            outgoing("info@例え.テスト").unwrap(),
            "info@xn--r8jz45g.xn--zckzah"
        );
        // ASCII domains (already A-labels, any case) and literals are left as given.
        for same in [
            "Ann@Example.COM",
            "ann@xn--bcher-kva.example",
            "ann@[192.0.2.1]",
        ] {
            assert_eq!(outgoing(same).unwrap(), same);
        }
        assert!(outgoing("ann@bü_cher.example").is_err());
    }
}
