//! `calops oci raw-request`: build a request from command-line text, and render a signed
//! request or a response as JSON. Pure; the command file does the I/O.

use crate::oci::client::{OciError, OciRequest, OciResponse};
use crate::oci::signer::{body_mode_for, Signed};
use base64::Engine as _;
use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Map, Value};
use url::Url;

/// Build the request. `body` is the already-read body bytes; `headers_json` a JSON object of
/// string (or number/bool) values. The body mode follows the SDKs: object and part uploads
/// are signed without body headers.
pub fn build_request(
    method: &str,
    target_uri: &str,
    body: Option<Bytes>,
    headers_json: Option<&str>,
) -> Result<OciRequest, OciError> {
    let m = Method::from_bytes(method.trim().to_ascii_uppercase().as_bytes())
        .map_err(|_| OciError::InvalidRequest(format!("`{method}` is not an HTTP method")))?;
    let url = Url::parse(target_uri).map_err(|e| {
        OciError::InvalidRequest(format!(
            "--target-uri `{target_uri}` is not a URL ({e}); give the full https://host/path"
        ))
    })?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(OciError::InvalidRequest(format!(
            "--target-uri `{target_uri}` must start with https://"
        )));
    }
    let mode = body_mode_for(m.as_str(), &url);
    let mut req = OciRequest::new(m, url);
    if let Some(text) = headers_json {
        let v: Value = serde_json::from_str(text).map_err(|e| {
            OciError::InvalidRequest(format!(
                "--request-headers is not JSON ({e}); expected an object like '{{\"opc-retry-token\":\"abc\"}}'"
            ))
        })?;
        let Value::Object(map) = v else {
            return Err(OciError::InvalidRequest(
                "--request-headers must be a JSON object of header names to values".into(),
            ));
        };
        for (k, v) in map {
            let value = match v {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => {
                    return Err(OciError::InvalidRequest(format!(
                        "--request-headers: header `{k}` must be a string, not {other}"
                    )))
                }
            };
            let lower = k.to_ascii_lowercase();
            if lower == "authorization" {
                return Err(OciError::InvalidRequest(
                    "--request-headers: `authorization` is computed by calops; remove it".into(),
                ));
            }
            req = req.header(&lower, &value)?;
        }
    }
    if let Some(b) = body {
        req.body = b;
    }
    req.body_mode = mode;
    Ok(req)
}

fn headers_json(h: &HeaderMap) -> Value {
    let mut m = Map::new();
    for (k, v) in h {
        let v = String::from_utf8_lossy(v.as_bytes()).to_string();
        match m.get_mut(k.as_str()) {
            Some(Value::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(&v);
            }
            _ => {
                m.insert(k.as_str().to_string(), Value::String(v));
            }
        }
    }
    Value::Object(m)
}

/// The body as text when it is UTF-8 (`body`), else base64 (`body_base64`).
fn body_fields(body: &[u8], out: &mut Map<String, Value>) {
    match std::str::from_utf8(body) {
        Ok(s) => {
            out.insert("body".into(), Value::String(s.to_string()));
        }
        Err(_) => {
            out.insert(
                "body_base64".into(),
                Value::String(base64::engine::general_purpose::STANDARD.encode(body)),
            );
        }
    }
}

/// The `--dry-run` document: method, URL, every header (with `authorization`), the body, and
/// what was signed.
pub fn dry_run_json(req: &OciRequest, headers: &HeaderMap, signed: &Signed) -> Value {
    let mut out = Map::new();
    out.insert("method".into(), json!(req.method.as_str()));
    out.insert("url".into(), json!(req.url.as_str()));
    out.insert("headers".into(), headers_json(headers));
    body_fields(&req.body, &mut out);
    out.insert("signed_headers".into(), json!(signed.signed_headers));
    out.insert("signing_string".into(), json!(signed.signing_string));
    Value::Object(out)
}

/// The response document: status, headers, and the body (parsed when it is JSON).
pub fn response_json(resp: &OciResponse) -> Value {
    let mut out = Map::new();
    out.insert("status".into(), json!(resp.status.as_u16()));
    out.insert("headers".into(), headers_json(&resp.headers));
    match serde_json::from_slice::<Value>(&resp.body) {
        Ok(v) if !resp.body.is_empty() => {
            out.insert("body".into(), v);
        }
        _ => body_fields(&resp.body, &mut out),
    }
    out.insert("attempts".into(), json!(resp.attempts));
    Value::Object(out)
}

/// Human form of a response: status line, headers, blank line, body.
pub fn response_text(resp: &OciResponse) -> String {
    let mut s = format!(
        "HTTP {} {}\n",
        resp.status.as_u16(),
        resp.status.canonical_reason().unwrap_or("")
    );
    for (k, v) in &resp.headers {
        s.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
    }
    s.push('\n');
    match serde_json::from_slice::<Value>(&resp.body) {
        Ok(v) if !resp.body.is_empty() => {
            s.push_str(&serde_json::to_string_pretty(&v).unwrap_or_default())
        }
        _ => s.push_str(&String::from_utf8_lossy(&resp.body)),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::signer::BodyMode;

    #[test]
    fn builds_and_validates() {
        let r = build_request(
            "put",
            "https://objectstorage.ap-sydney-1.oraclecloud.com/n/ns/b/bk/o/a%2Fb",
            Some(Bytes::from_static(b"x")),
            Some(r#"{"Content-Type":"text/plain","opc-meta-n":3}"#),
        )
        .unwrap();
        assert_eq!(r.method, Method::PUT);
        assert_eq!(r.body_mode, BodyMode::ExcludeBody);
        assert_eq!(r.headers["content-type"], "text/plain");
        assert_eq!(r.headers["opc-meta-n"], "3");
        let e = build_request("GET", "not a url", None, None).unwrap_err();
        assert!(e.to_string().contains("--target-uri"), "{e}");
        let e = build_request("GET", "https://h/", None, Some("[1]")).unwrap_err();
        assert!(e.to_string().contains("JSON object"), "{e}");
        let e =
            build_request("GET", "https://h/", None, Some(r#"{"Authorization":"x"}"#)).unwrap_err();
        assert!(e.to_string().contains("computed by calops"), "{e}");
    }
}
