//! What the stand-ins for OCI's APIs share (each test module serves only the routes it needs):
//! OCI's check of a request signature, OCI-shaped answers, a server on 127.0.0.1, and an API
//! key with the config file that names it.

use base64::Engine as _;
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The tenancy and user of [`write_config`]'s profile.
pub const TENANCY: &str = "ocid1.tenancy.oc1..t";
pub const USER: &str = "ocid1.user.oc1..u";

/// A parameter of a `Signature ...` authorization header.
pub fn param(auth: &str, name: &str) -> Option<String> {
    let re = regex::Regex::new(&format!(r#"(?:^Signature |,){name}="([^"]*)""#)).unwrap();
    re.captures(auth).map(|c| c[1].to_string())
}

/// Who may sign the requests a stand-in accepts, and for which host.
pub struct Signatures {
    pub public: RsaPublicKey,
    /// The accepted key ids (`tenancy/user/fingerprint`, or a session token's `ST$...`).
    pub key_ids: Vec<String>,
    /// The `host` header every request must carry (`127.0.0.1:PORT`); `None`: any.
    pub host: Option<String>,
}

impl Signatures {
    /// OCI's check of one request: algorithm and key id, exactly the headers OCI requires
    /// signed (`(request-target)`, `host`, the date; for a body but an object upload, its
    /// length, type and sha256, which must match it), the signature over them, and a date
    /// within 5 minutes. Returns why the request is not acceptable.
    pub fn verify(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &axum::http::HeaderMap,
        body: &[u8],
    ) -> Result<(), String> {
        self.verify_with(method, path_and_query, headers, body, &|k| {
            Err(format!("unknown keyId {k}"))
        })
    }

    /// [`Signatures::verify`], where a key id outside `key_ids` is decided by `accept` (a
    /// stand-in's session tokens: valid, or refused as expired); its error is the refusal, and
    /// a key it returns (an instance principal's session key) checks the signature instead of
    /// `public`.
    pub fn verify_with(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &axum::http::HeaderMap,
        body: &[u8],
        accept: &dyn Fn(&str) -> Result<Option<RsaPublicKey>, String>,
    ) -> Result<(), String> {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or("no authorization header")?;
        if param(auth, "algorithm").as_deref() != Some("rsa-sha256")
            || param(auth, "version").as_deref() != Some("1")
        {
            return Err(format!("bad algorithm/version in {auth}"));
        }
        let key_id = param(auth, "keyId").ok_or("no keyId")?;
        let session_key = if self.key_ids.contains(&key_id) {
            None
        } else {
            accept(&key_id)?
        };
        let public = session_key.as_ref().unwrap_or(&self.public);
        let names: Vec<String> = param(auth, "headers")
            .ok_or("no headers")?
            .split(' ')
            .map(String::from)
            .collect();
        let date_name = if headers.contains_key("x-date") {
            "x-date"
        } else {
            "date"
        };
        let mut required = vec![date_name, "(request-target)", "host"];
        let upload = method == "PUT"
            && (path_and_query.contains("/o/") || path_and_query.contains("/u/"))
            && path_and_query.starts_with("/n/");
        if matches!(method, "POST" | "PUT" | "PATCH") && !upload {
            required.extend(["content-length", "content-type", "x-content-sha256"]);
        }
        if names != required {
            return Err(format!(
                "signed headers {names:?}, OCI requires {required:?}"
            ));
        }
        if upload && headers.contains_key("x-content-sha256") {
            return Err("object uploads must not send x-content-sha256".into());
        }
        let mut lines = Vec::new();
        for n in &names {
            let v = if n == "(request-target)" {
                format!("{} {path_and_query}", method.to_ascii_lowercase())
            } else {
                headers
                    .get(n.as_str())
                    .and_then(|v| v.to_str().ok())
                    .ok_or(format!("signed header {n} not sent"))?
                    .to_string()
            };
            lines.push(format!("{n}: {v}"));
        }
        let sig = base64::engine::general_purpose::STANDARD
            .decode(param(auth, "signature").ok_or("no signature")?)
            .map_err(|e| e.to_string())?;
        public
            .verify(
                Pkcs1v15Sign::new::<Sha256>(),
                &Sha256::digest(lines.join("\n").as_bytes()),
                &sig,
            )
            .map_err(|_| "signature does not verify".to_string())?;
        if names.iter().any(|n| n == "x-content-sha256") {
            let want = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body));
            if headers["x-content-sha256"] != want.as_str() {
                return Err("x-content-sha256 does not match the body".into());
            }
            if headers["content-length"] != body.len().to_string().as_str() {
                return Err("content-length does not match the body".into());
            }
        }
        let date = headers[date_name].to_str().map_err(|e| e.to_string())?;
        let when = httpdate::parse_http_date(date).map_err(|e| e.to_string())?;
        let skew = match when.duration_since(SystemTime::now()) {
            Ok(d) => d,
            Err(e) => e.duration(),
        };
        if skew > Duration::from_secs(300) {
            return Err("date more than 5 minutes off".into());
        }
        if let Some(host) = &self.host {
            if headers["host"] != host.as_str() {
                return Err(format!("host {:?} is not {host}", headers["host"]));
            }
        }
        Ok(())
    }
}

/// A request as a stand-in sees it: method, path, path and query, query parameters, headers
/// and body.
pub type Incoming = (
    String,
    String,
    String,
    std::collections::HashMap<String, String>,
    axum::http::HeaderMap,
    bytes::Bytes,
);

pub async fn incoming(req: axum::extract::Request) -> Incoming {
    let (parts, body) = req.into_parts();
    (
        parts.method.as_str().to_string(),
        parts.uri.path().to_string(),
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default(),
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect(),
        parts.headers,
        axum::body::to_bytes(body, 1 << 26).await.unwrap(),
    )
}

/// A header's value as text, when present and readable.
pub fn header(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

pub fn reply(
    status: u16,
    headers: &[(&str, String)],
    body: impl Into<axum::body::Body>,
) -> axum::response::Response {
    let mut b = axum::response::Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    b.body(body.into()).unwrap()
}

/// A JSON answer with OCI's request id, and `extra` headers.
pub fn json_reply_with(
    status: u16,
    v: Value,
    extra: &[(&str, String)],
) -> axum::response::Response {
    let mut headers = vec![
        ("content-type", "application/json".to_string()),
        ("opc-request-id", "srv-req-id".to_string()),
    ];
    headers.extend(extra.iter().cloned());
    reply(status, &headers, v.to_string())
}

pub fn json_reply(status: u16, v: Value) -> axum::response::Response {
    json_reply_with(status, v, &[])
}

/// OCI's error body.
pub fn oci_error(status: u16, code: &str, message: &str) -> axum::response::Response {
    json_reply(status, json!({"code": code, "message": message}))
}

/// A percent-encoded path segment, decoded.
pub fn decode(seg: &str) -> String {
    percent_encoding::percent_decode_str(seg)
        .decode_utf8()
        .unwrap()
        .to_string()
}

/// Serve `app` on 127.0.0.1 from a task of the current runtime; its base URL.
pub async fn serve(app: axum::Router) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    format!("http://{addr}")
}

/// One RSA key for the stand-ins of this test process (made once: it takes a while).
pub fn key() -> RsaPrivateKey {
    static KEY: std::sync::OnceLock<RsaPrivateKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap())
        .clone()
}

/// The key id calops signs with for [`write_config`]'s profile.
pub fn key_id(key: &RsaPrivateKey) -> String {
    format!(
        "{TENANCY}/{USER}/{}",
        calops::oci::keys::fingerprint(&key.to_public_key())
    )
}

/// `key` as `DIR/key.pem` and an OCI config `DIR/oci-config` whose `DEFAULT` profile signs
/// with it in `region` (both 0600, as `oci setup config` writes them); the config's path.
pub fn write_config(dir: &Path, key: &RsaPrivateKey, region: &str) -> PathBuf {
    use rsa::pkcs8::EncodePrivateKey;
    use std::os::unix::fs::PermissionsExt;
    let key_file = dir.join("key.pem");
    let pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    std::fs::write(&key_file, pem.as_bytes()).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let fp = calops::oci::keys::fingerprint(&key.to_public_key());
    let config = dir.join("oci-config");
    std::fs::write(
        &config,
        format!(
            "[DEFAULT]\nuser = {USER}\nfingerprint = {fp}\ntenancy = {TENANCY}\nregion = {region}\nkey_file = {}\n",
            key_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    config
}
