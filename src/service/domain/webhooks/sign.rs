//! Webhook signatures (pure).
//!
//! - `X-Cal-Signature-256`: hex HMAC-SHA256 of the raw body with the subscription's secret,
//!   exactly as Cal.com sends it (`no-secret-provided` when the subscription has no secret).
//! - `X-Calops-Signature`: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, so that a
//!   receiver can refuse a captured request replayed later (check `t` against its clock).

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The header Cal.com receivers check.
pub const CAL_SIGNATURE_HEADER: &str = "X-Cal-Signature-256";
/// The timestamped signature header.
pub const TIMESTAMPED_HEADER: &str = "X-Calops-Signature";
/// What Cal.com sends in `X-Cal-Signature-256` when there is no secret.
pub const NO_SECRET: &str = "no-secret-provided";

fn mac(secret: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// Hex HMAC-SHA256 of `body` (the `X-Cal-Signature-256` value).
pub fn cal_signature(secret: &[u8], body: &[u8]) -> String {
    hex::encode(mac(secret, &[body]))
}

/// `t=<unix>,v1=<hex HMAC of "t.body">` (the `X-Calops-Signature` value).
pub fn timestamped_signature(secret: &[u8], unix: i64, body: &[u8]) -> String {
    let t = unix.to_string();
    let v1 = hex::encode(mac(secret, &[t.as_bytes(), b".", body]));
    format!("t={t},v1={v1}")
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the signature header is malformed (expected t=<unix>,v1=<hex>)")]
    Malformed,
    #[error("the signature does not match the body")]
    Mismatch,
    #[error("the timestamp is {age_s} s away from now (tolerance {tolerance_s} s): a replay?")]
    Stale { age_s: i64, tolerance_s: i64 },
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Check an `X-Cal-Signature-256` value.
pub fn verify_cal(secret: &[u8], body: &[u8], header: &str) -> Result<(), VerifyError> {
    let given = hex::decode(header.trim()).map_err(|_| VerifyError::Malformed)?;
    if constant_time_eq(&given, &mac(secret, &[body])) {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// Check an `X-Calops-Signature` value: the HMAC must match and `t` must be within
/// `tolerance_s` seconds of `now_unix`. Any `v1` of several (during a secret rotation) may match.
pub fn verify_timestamped(
    secret: &[u8],
    body: &[u8],
    header: &str,
    now_unix: i64,
    tolerance_s: i64,
) -> Result<(), VerifyError> {
    let mut t: Option<i64> = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.parse().map_err(|_| VerifyError::Malformed)?),
            Some(("v1", v)) => sigs.push(hex::decode(v).map_err(|_| VerifyError::Malformed)?),
            Some(_) => {}
            None => return Err(VerifyError::Malformed),
        }
    }
    let t = t.ok_or(VerifyError::Malformed)?;
    if sigs.is_empty() {
        return Err(VerifyError::Malformed);
    }
    let expected = mac(secret, &[t.to_string().as_bytes(), b".", body]);
    if !sigs.iter().any(|s| constant_time_eq(s, &expected)) {
        return Err(VerifyError::Mismatch);
    }
    let age = (now_unix - t).abs();
    if age > tolerance_s {
        return Err(VerifyError::Stale {
            age_s: age,
            tolerance_s,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cal_signature_matches_a_known_hmac() {
        // RFC 4231 test case 2.
        assert_eq!(
            cal_signature(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(verify_cal(
            b"Jefe",
            b"what do ya want for nothing?",
            &cal_signature(b"Jefe", b"what do ya want for nothing?")
        )
        .is_ok());
        assert_eq!(
            verify_cal(
                b"Jefe",
                b"what do ya want for nothing!",
                &cal_signature(b"Jefe", b"what do ya want for nothing?")
            ),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(verify_cal(b"k", b"x", "zz"), Err(VerifyError::Malformed));
    }

    #[test]
    fn timestamped_signatures_bind_the_time_and_refuse_stale_ones() {
        let h = timestamped_signature(b"s3cret", 1_700_000_000, b"{\"a\":1}");
        assert!(h.starts_with("t=1700000000,v1="));
        assert_eq!(h.len(), "t=1700000000,v1=".len() + 64);
        assert!(verify_timestamped(b"s3cret", b"{\"a\":1}", &h, 1_700_000_100, 300).is_ok());
        assert_eq!(
            verify_timestamped(b"s3cret", b"{\"a\":1}", &h, 1_700_000_301, 300),
            Err(VerifyError::Stale {
                age_s: 301,
                tolerance_s: 300
            })
        );
        // Another body, another secret, or a moved timestamp: mismatch.
        assert_eq!(
            verify_timestamped(b"s3cret", b"{\"a\":2}", &h, 1_700_000_000, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify_timestamped(b"other", b"{\"a\":1}", &h, 1_700_000_000, 300),
            Err(VerifyError::Mismatch)
        );
        let moved = h.replace("t=1700000000", "t=1700000001");
        assert_eq!(
            verify_timestamped(b"s3cret", b"{\"a\":1}", &moved, 1_700_000_000, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify_timestamped(b"s3cret", b"x", "garbage", 0, 300),
            Err(VerifyError::Malformed)
        );
        assert_eq!(
            verify_timestamped(b"s3cret", b"x", "t=1", 0, 300),
            Err(VerifyError::Malformed)
        );
        // The timestamped MAC differs from the plain one.
        assert!(!h.contains(&cal_signature(b"s3cret", b"{\"a\":1}")));
    }
}
