//! Signed tokens of the booking pages (pure): the invitee's self-service links and the form
//! tokens that stand in for CSRF cookies.
//!
//! - A **link token** lets its holder view, cancel and reschedule one booking without an API
//!   key. It is an HMAC-SHA256, under the server's page key, over the booking's uid, its
//!   organization, the purpose and the expiry (the booking's end): `ORG.EXPIRY.MAC`.
//! - A **form token** is put in a hidden field of every form and checked when the form comes
//!   back: an HMAC over the form's action path (and so the booking or event type it acts on)
//!   and a short expiry, `EXPIRY.MAC`. It needs no cookie, so forms work inside an iframe
//!   whose browser blocks third-party cookies.
//!
//! MACs are compared in constant time (`hmac::Mac::verify_slice`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

/// How long a form stays valid after the page that holds it was rendered (seconds).
pub const FORM_TTL_SECS: i64 = 2 * 3600;

/// Why a token was refused (all shown to the user as one "link is not valid" page, so that
/// a guesser learns nothing; tests tell them apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    BadSignature,
    Expired,
}

fn mac(key: &[u8], fields: &[&[u8]]) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for f in fields {
        // Length-prefixed, so that no two field lists sign the same bytes.
        m.update(&(f.len() as u32).to_be_bytes());
        m.update(f);
    }
    m
}

fn link_fields<'a>(uid: &'a Uuid, org: &'a str, exp: &'a str) -> [&'a [u8]; 4] {
    [
        b"calops-link-v1:manage",
        uid.as_bytes(),
        org.as_bytes(),
        exp.as_bytes(),
    ]
}

/// The self-service token of booking `uid` of organization `org`, valid until `exp` (Unix
/// seconds; the booking's end).
pub fn sign_link(key: &[u8], uid: Uuid, org: i64, exp: i64) -> String {
    let (o, e) = (org.to_string(), exp.to_string());
    let tag = mac(key, &link_fields(&uid, &o, &e)).finalize().into_bytes();
    format!("{o}.{e}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// Check a link token for booking `uid` at `now`; the organization it was issued for.
pub fn verify_link(key: &[u8], uid: Uuid, token: &str, now: i64) -> Result<i64, TokenError> {
    let mut parts = token.split('.');
    let (Some(o), Some(e), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let org: i64 = o.parse().map_err(|_| TokenError::Malformed)?;
    let exp: i64 = e.parse().map_err(|_| TokenError::Malformed)?;
    // Only the canonical spelling of the numbers (no `+1`, `01`) is ever signed.
    if org.to_string() != o || exp.to_string() != e {
        return Err(TokenError::Malformed);
    }
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| TokenError::Malformed)?;
    mac(key, &link_fields(&uid, o, e))
        .verify_slice(&sig)
        .map_err(|_| TokenError::BadSignature)?;
    if now >= exp {
        return Err(TokenError::Expired);
    }
    Ok(org)
}

/// The token of a form whose action is `scope` (its path), valid until `exp`.
pub fn sign_form(key: &[u8], scope: &str, exp: i64) -> String {
    let e = exp.to_string();
    let tag = mac(key, &[b"calops-form-v1", scope.as_bytes(), e.as_bytes()])
        .finalize()
        .into_bytes();
    format!("{e}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// Check a form token for the action `scope` at `now`.
pub fn verify_form(key: &[u8], scope: &str, token: &str, now: i64) -> Result<(), TokenError> {
    let (e, sig) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let exp: i64 = e.parse().map_err(|_| TokenError::Malformed)?;
    if exp.to_string() != e {
        return Err(TokenError::Malformed);
    }
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| TokenError::Malformed)?;
    mac(key, &[b"calops-form-v1", scope.as_bytes(), e.as_bytes()])
        .verify_slice(&sig)
        .map_err(|_| TokenError::BadSignature)?;
    if now >= exp {
        return Err(TokenError::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_link_token_opens_its_booking_until_the_booking_ends() {
        let uid = Uuid::new_v4();
        let t = sign_link(KEY, uid, 42, 1_000);
        assert_eq!(verify_link(KEY, uid, &t, 999), Ok(42));
        assert_eq!(verify_link(KEY, uid, &t, 1_000), Err(TokenError::Expired));
    }

    #[test]
    fn a_link_token_is_scoped_to_one_booking_one_org_and_one_key() {
        let uid = Uuid::new_v4();
        let t = sign_link(KEY, uid, 42, 1_000);
        assert_eq!(
            verify_link(KEY, Uuid::new_v4(), &t, 0),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify_link(b"another key of enough length....", uid, &t, 0),
            Err(TokenError::BadSignature)
        );
        // Another organization or a later expiry with the same MAC.
        let sig = t.rsplit('.').next().unwrap();
        for forged in [format!("43.1000.{sig}"), format!("42.9999.{sig}")] {
            assert_eq!(
                verify_link(KEY, uid, &forged, 0),
                Err(TokenError::BadSignature),
                "{forged}"
            );
        }
        for bad in [
            "",
            "42.1000",
            "x.1000.abc",
            "42.1000.!!",
            "042.1000.abc",
            "42.1000.a.b",
        ] {
            assert_eq!(
                verify_link(KEY, uid, bad, 0),
                Err(TokenError::Malformed),
                "{bad}"
            );
        }
        // One flipped bit of the MAC.
        let mut raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
        raw[0] ^= 1;
        let flipped = format!("42.1000.{}", URL_SAFE_NO_PAD.encode(raw));
        assert_eq!(
            verify_link(KEY, uid, &flipped, 0),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn a_form_token_is_bound_to_its_action_and_expires() {
        let t = sign_form(KEY, "/acme/ann/intro/book", 500);
        assert_eq!(verify_form(KEY, "/acme/ann/intro/book", &t, 499), Ok(()));
        assert_eq!(
            verify_form(KEY, "/acme/ann/intro/book", &t, 500),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify_form(KEY, "/other/ann/intro/book", &t, 0),
            Err(TokenError::BadSignature)
        );
        // A link token is no form token, and the other way round.
        let uid = Uuid::new_v4();
        let link = sign_link(KEY, uid, 1, 500);
        assert!(verify_form(KEY, "/x", &link, 0).is_err());
        assert!(verify_link(KEY, uid, &t, 0).is_err());
    }
}
