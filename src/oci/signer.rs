//! OCI HTTP request signatures (draft-cavage `Signature` with rsa-sha256), exactly as Oracle's
//! SDKs produce them. Pure: no I/O; the clock is an argument.
//!
//! Signed headers, in this order:
//! - GET, HEAD, DELETE (and anything else): `date (request-target) host`;
//! - POST, PUT, PATCH: those plus `content-length content-type x-content-sha256`, where the
//!   signer fills in the body length, `application/json` when no content type is given, and the
//!   base64 SHA-256 of the body;
//! - Object Storage object and multipart-part uploads ([`BodyMode::ExcludeBody`], see
//!   [`body_mode_for`]): only `date (request-target) host`, no `x-content-sha256` is sent;
//! - a request carrying `x-date` signs `x-date` in place of `date` (and gets no `date`).
//!
//! `(request-target)` is the lowercase method, a space, and the path and query exactly as
//! sent; `host` is the URL authority, including a non-default port.
//!
//! ```
//! use calops::oci::signer::{BodyMode, Signer};
//! # fn demo(key: rsa::RsaPrivateKey) -> Result<(), calops::oci::signer::SignError> {
//! let signer = Signer::new("ocid1.tenancy.oc1..t/ocid1.user.oc1..u/aa:bb:...", key);
//! let url = url::Url::parse("https://objectstorage.ap-sydney-1.oraclecloud.com/n/").unwrap();
//! let mut headers = reqwest::header::HeaderMap::new();
//! let signed = signer.sign("GET", &url, &mut headers, b"", BodyMode::Standard, std::time::SystemTime::now())?;
//! assert!(headers.contains_key("authorization"));
//! # let _ = signed; Ok(()) }
//! ```

use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use sha2::{Digest, Sha256};
use std::time::SystemTime;
use url::Url;

/// Whether the body headers are part of the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyMode {
    /// The SDKs' default: body headers signed for POST/PUT/PATCH.
    Standard,
    /// Object Storage PutObject / UploadPart: body headers neither signed nor hashed.
    ExcludeBody,
}

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("URL {0} has no host to sign")]
    NoHost(String),
    #[error("header `{0}` has a value that is not visible ASCII and cannot be signed")]
    BadHeaderValue(String),
    #[error("RSA signing failed: {0}")]
    Rsa(String),
}

/// The result of signing, for inspection and tests (`--dry-run`, the vectors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub signed_headers: Vec<String>,
    pub signing_string: String,
    pub signature: String,
    pub authorization: String,
}

/// Signs requests with one key and keyId (`tenancy/user/fingerprint`, or `ST$<token>`).
#[derive(Clone)]
pub struct Signer {
    key_id: String,
    key: RsaPrivateKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key; a session token keyId is shown only by its prefix.
        let shown = if self.key_id.starts_with("ST$") {
            "ST$<session token>".to_string()
        } else {
            self.key_id.clone()
        };
        f.debug_struct("Signer")
            .field("key_id", &shown)
            .finish_non_exhaustive()
    }
}

/// True for the methods whose body headers are signed in [`BodyMode::Standard`].
pub fn has_body(method: &str) -> bool {
    matches!(
        method.to_ascii_uppercase().as_str(),
        "POST" | "PUT" | "PATCH"
    )
}

/// The body mode the SDKs use for a request: `ExcludeBody` for an Object Storage object PUT
/// (`/n/{ns}/b/{bucket}/o/{object}`) or multipart part PUT (`/n/{ns}/b/{bucket}/u/{object}`).
pub fn body_mode_for(method: &str, url: &Url) -> BodyMode {
    if !method.eq_ignore_ascii_case("PUT") {
        return BodyMode::Standard;
    }
    let segs: Vec<&str> = url.path().trim_start_matches('/').split('/').collect();
    let is_upload = segs.len() >= 6
        && segs[0] == "n"
        && segs[2] == "b"
        && (segs[4] == "o" || segs[4] == "u")
        && !segs[5].is_empty();
    if is_upload {
        BodyMode::ExcludeBody
    } else {
        BodyMode::Standard
    }
}

/// `get /path?query`: the lowercase method and the path and query exactly as in the URL.
pub fn request_target(method: &str, url: &Url) -> String {
    let mut t = format!("{} {}", method.to_ascii_lowercase(), url.path());
    if let Some(q) = url.query() {
        t.push('?');
        t.push_str(q);
    }
    t
}

/// The `host` value: the URL's host, plus `:port` when the port is not the scheme default.
pub fn host_header(url: &Url) -> Result<String, SignError> {
    let host = url
        .host_str()
        .ok_or_else(|| SignError::NoHost(url.to_string()))?;
    Ok(match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    })
}

/// Which headers are signed, in order.
pub fn headers_to_sign(method: &str, mode: BodyMode, headers: &HeaderMap) -> Vec<&'static str> {
    let date = if headers.contains_key("x-date") {
        "x-date"
    } else {
        "date"
    };
    let mut v = vec![date, "(request-target)", "host"];
    if mode == BodyMode::Standard && has_body(method) {
        v.extend(["content-length", "content-type", "x-content-sha256"]);
    }
    v
}

/// Add the headers the signature covers: `date` (unless `date` or `x-date` is present),
/// `host`, and for signed bodies `content-length`, `content-type` (default JSON) and
/// `x-content-sha256`.
pub fn prepare_headers(
    method: &str,
    url: &Url,
    headers: &mut HeaderMap,
    body: &[u8],
    mode: BodyMode,
    now: SystemTime,
) -> Result<(), SignError> {
    if !headers.contains_key("date") && !headers.contains_key("x-date") {
        headers.insert("date", value(&httpdate::fmt_http_date(now), "date")?);
    }
    headers.insert("host", value(&host_header(url)?, "host")?);
    if has_body(method) {
        headers.insert("content-length", HeaderValue::from(body.len()));
        if mode == BodyMode::Standard {
            if !headers.contains_key("content-type") {
                headers.insert("content-type", HeaderValue::from_static("application/json"));
            }
            let sha = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body));
            headers.insert("x-content-sha256", value(&sha, "x-content-sha256")?);
        } else {
            headers.remove("x-content-sha256");
            if !headers.contains_key("content-type") {
                headers.insert(
                    "content-type",
                    HeaderValue::from_static("application/octet-stream"),
                );
            }
        }
    }
    Ok(())
}

fn value(s: &str, name: &str) -> Result<HeaderValue, SignError> {
    HeaderValue::from_str(s).map_err(|_| SignError::BadHeaderValue(name.to_string()))
}

/// The signing string: one `name: value` line per signed header, joined by `\n`.
pub fn signing_string(
    method: &str,
    url: &Url,
    headers: &HeaderMap,
    names: &[&str],
) -> Result<String, SignError> {
    let mut lines = Vec::with_capacity(names.len());
    for name in names {
        let v = if *name == "(request-target)" {
            request_target(method, url)
        } else {
            let hv = headers
                .get(*name)
                .ok_or_else(|| SignError::BadHeaderValue(format!("{name} (missing)")))?;
            hv.to_str()
                .map_err(|_| SignError::BadHeaderValue(name.to_string()))?
                .to_string()
        };
        lines.push(format!("{name}: {v}"));
    }
    Ok(lines.join("\n"))
}

/// The `Authorization` value, parameters in the order the OCI Python SDK writes them.
pub fn authorization(key_id: &str, names: &[&str], signature_b64: &str) -> String {
    format!(
        "Signature algorithm=\"rsa-sha256\",headers=\"{}\",keyId=\"{key_id}\",signature=\"{signature_b64}\",version=\"1\"",
        names.join(" ")
    )
}

impl Signer {
    pub fn new(key_id: impl Into<String>, key: RsaPrivateKey) -> Signer {
        Signer {
            key_id: key_id.into(),
            key,
        }
    }

    /// A session-token signer: keyId `ST$<token>` (the token is trimmed).
    pub fn with_security_token(token: &str, key: RsaPrivateKey) -> Signer {
        Signer::new(format!("ST${}", token.trim()), key)
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// RSA-SHA256 (PKCS#1 v1.5) signature of `data`, base64.
    pub fn sign_bytes(&self, data: &[u8]) -> Result<String, SignError> {
        let digest = Sha256::digest(data);
        let sig = self
            .key
            .sign(Pkcs1v15Sign::new::<Sha256>(), &digest)
            .map_err(|e| SignError::Rsa(e.to_string()))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(sig))
    }

    /// Complete `headers` (see [`prepare_headers`]), sign, and insert `authorization`.
    pub fn sign(
        &self,
        method: &str,
        url: &Url,
        headers: &mut HeaderMap,
        body: &[u8],
        mode: BodyMode,
        now: SystemTime,
    ) -> Result<Signed, SignError> {
        prepare_headers(method, url, headers, body, mode, now)?;
        let names = headers_to_sign(method, mode, headers);
        let signing_string = signing_string(method, url, headers, &names)?;
        let signature = self.sign_bytes(signing_string.as_bytes())?;
        let authorization = authorization(&self.key_id, &names, &signature);
        headers.insert(
            HeaderName::from_static("authorization"),
            value(&authorization, "authorization")?,
        );
        Ok(Signed {
            signed_headers: names.iter().map(|s| s.to_string()).collect(),
            signing_string,
            signature,
            authorization,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_mode_detection() {
        let u = |s: &str| Url::parse(s).unwrap();
        let os = "https://objectstorage.ap-sydney-1.oraclecloud.com";
        assert_eq!(
            body_mode_for("PUT", &u(&format!("{os}/n/ns/b/bk/o/a%2Fb"))),
            BodyMode::ExcludeBody
        );
        assert_eq!(
            body_mode_for(
                "put",
                &u(&format!("{os}/n/ns/b/bk/u/x?uploadId=1&uploadPartNum=2"))
            ),
            BodyMode::ExcludeBody
        );
        assert_eq!(
            body_mode_for("POST", &u(&format!("{os}/n/ns/b/bk/o/x"))),
            BodyMode::Standard
        );
        assert_eq!(
            body_mode_for("PUT", &u(&format!("{os}/n/ns/b/bk"))),
            BodyMode::Standard
        );
        assert_eq!(
            body_mode_for(
                "PUT",
                &u("https://iaas.x.oraclecloud.com/20160918/vcns/ocid")
            ),
            BodyMode::Standard
        );
    }

    #[test]
    fn target_and_host() {
        let url = Url::parse("https://127.0.0.1:18443/a%2Fb?x=1+2&y=%3A").unwrap();
        assert_eq!(request_target("GET", &url), "get /a%2Fb?x=1+2&y=%3A");
        assert_eq!(host_header(&url).unwrap(), "127.0.0.1:18443");
        let url = Url::parse("https://h.example.com:443/").unwrap();
        assert_eq!(host_header(&url).unwrap(), "h.example.com");
    }

    #[test]
    fn x_date_replaces_date() {
        let url = Url::parse("https://h/p").unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            "x-date",
            HeaderValue::from_static("Tue, 04 Mar 2025 05:06:07 GMT"),
        );
        prepare_headers(
            "GET",
            &url,
            &mut h,
            b"",
            BodyMode::Standard,
            SystemTime::UNIX_EPOCH,
        )
        .unwrap();
        assert!(!h.contains_key("date"));
        assert_eq!(headers_to_sign("GET", BodyMode::Standard, &h)[0], "x-date");
        let mut h = HeaderMap::new();
        prepare_headers(
            "POST",
            &url,
            &mut h,
            b"{}",
            BodyMode::Standard,
            SystemTime::UNIX_EPOCH,
        )
        .unwrap();
        assert_eq!(h["date"], "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(h["content-length"], "2");
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(
            h["x-content-sha256"],
            "RBNvo1WzZ4oRRq0W9+hknpT7T8If536DEMBg9hyq/4o="
        );
    }
}
