//! The instance principal of an OCI compute instance, exactly as Oracle's SDKs obtain it
//! (oci-go-sdk v65 `common/auth/instance_principal_key_provider.go`, `federation_client.go`,
//! `certificate_retriever.go`, `utils.go`):
//!
//! 1. From the instance metadata service (`http://169.254.169.254/opc/v2`, or
//!    `OCI_METADATA_BASE_URL`), each with the header `Authorization: Bearer Oracle`: the region
//!    (`/instance/region`), the leaf certificate (`/identity/cert.pem`), its RSA key
//!    (`/identity/key.pem`) and the intermediate certificate (`/identity/intermediate.pem`).
//! 2. The tenancy OCID is the value after `opc-tenant:` in the leaf certificate's subject (an
//!    OU); a later certificate naming another tenancy is refused.
//! 3. A fresh 2048-bit RSA session key pair.
//! 4. `POST https://auth.<region>.oraclecloud.com/v1/x509` (or `OCI_SDK_AUTH_CLIENT_REGION_URL`
//!    as the base) with `{"certificate", "publicKey", "intermediateCertificates",
//!    "fingerprintAlgorithm": "SHA256"}` (PEM bodies without armour lines or newlines), signed
//!    with the leaf key, keyId `<tenancy>/fed-x509-sha256/<SHA-256 of the leaf DER, colon hex>`
//!    and the headers `date (request-target) content-length content-type x-content-sha256`
//!    (no `host`: the SDKs leave it out for the auth service).
//! 5. The answer's `token` (a JWT) signs every request as keyId `ST$<token>` with the session
//!    key.
//!
//! The token is renewed (a new session key, the certificates read again) when it expires within
//! [`REFRESH_WINDOW`] (the SDKs' 5 minutes), and once after a service answered 401.
//!
//! Note: SDKs before oci-go-sdk 65.95.1 used keyId `<tenancy>/fed-x509/<SHA-1 fingerprint>` and
//! sent no `fingerprintAlgorithm`; calops does what the current SDKs do.
//!
//! The pure parts (certificate reading, the request body, the signature) are apart from the
//! HTTP calls. Nothing here puts a key or token in a message or in `Debug` output.

use crate::oci::keys;
use crate::oci::principal::{SessionToken, REFRESH_WINDOW};
use crate::oci::signer::{self, BodyMode, Signer};
use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};
use url::Url;

/// The SDKs' default metadata base URL.
pub const METADATA_BASE_URL: &str = "http://169.254.169.254/opc/v2";
/// Overrides [`METADATA_BASE_URL`] (the SDKs' variable).
pub const METADATA_BASE_URL_VAR: &str = crate::runtime::env::var::OCI_METADATA_BASE_URL;
/// Overrides the auth service's base URL (the SDKs' variable): the federation call goes to
/// `<this>/v1/x509`.
pub const AUTH_URL_VAR: &str = crate::runtime::env::var::OCI_AUTH_URL;
/// The headers the federation request signs, in order (the SDKs' `genericHeaders` and
/// `bodyHeaders`).
pub const FEDERATION_SIGNED_HEADERS: [&str; 5] = [
    "date",
    "(request-target)",
    "content-length",
    "content-type",
    "x-content-sha256",
];
const TENANT_PREFIX: &str = "opc-tenant:";

/// What went wrong, and what to check. Never contains a key or a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstancePrincipalError {
    #[error("instance metadata service: GET {url} failed: {detail}\n  fix: the instance principal only works on an OCI compute instance (the metadata service at 169.254.169.254 must answer); set {METADATA_BASE_URL_VAR} only for tests")]
    Metadata { url: String, detail: String },
    #[error("instance metadata service: {what} from {url} is not usable: {detail}")]
    BadMetadata {
        what: &'static str,
        url: String,
        detail: String,
    },
    #[error("instance certificate: {0}")]
    Certificate(String),
    #[error("auth service: POST {url} failed: {detail}\n  fix: check that the instance is in a dynamic group (matching.instance.compartment.id) with a policy for what it calls, that the auth endpoint is reachable (service gateway or NAT), and that the clock is right")]
    Federation { url: String, detail: String },
    #[error("instance principal: {0}")]
    Other(String),
}

fn bad(what: &'static str, url: &Url, detail: impl Into<String>) -> InstancePrincipalError {
    InstancePrincipalError::BadMetadata {
        what,
        url: url.to_string(),
        detail: detail.into(),
    }
}

/// Where the metadata service and the auth service are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// The metadata base, e.g. `http://169.254.169.254/opc/v2`.
    pub metadata: Url,
    /// The auth service's base; `None`: `https://auth.<region>.oraclecloud.com`.
    pub auth: Option<Url>,
}

impl Endpoints {
    /// The defaults, with the SDKs' overrides read through `env`. A value that is not a URL
    /// is an error naming the variable.
    pub fn from_env(
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Endpoints, InstancePrincipalError> {
        let get = |var: &str| env(var).filter(|v| !v.trim().is_empty());
        let parse = |var: &str, v: &str| {
            Url::parse(v.trim()).map_err(|e| {
                InstancePrincipalError::Other(format!("${var} is `{v}`, not a URL ({e})"))
            })
        };
        let metadata = match get(METADATA_BASE_URL_VAR) {
            Some(v) => parse(METADATA_BASE_URL_VAR, &v)?,
            None => Url::parse(METADATA_BASE_URL).expect("constant URL"),
        };
        let auth = match get(AUTH_URL_VAR) {
            Some(v) => Some(parse(AUTH_URL_VAR, &v)?),
            None => None,
        };
        Ok(Endpoints { metadata, auth })
    }

    fn metadata_url(&self, path: &str) -> Url {
        join(&self.metadata, path)
    }

    /// The federation URL for `region`.
    pub fn federation_url(&self, region: &str) -> Result<Url, InstancePrincipalError> {
        let base = match &self.auth {
            Some(u) => u.clone(),
            None => Url::parse(&format!("https://auth.{region}.oraclecloud.com")).map_err(|e| {
                InstancePrincipalError::Other(format!("region `{region}` gives no auth URL: {e}"))
            })?,
        };
        Ok(join(&base, "/v1/x509"))
    }
}

fn join(base: &Url, path: &str) -> Url {
    let s = format!("{}{}", base.as_str().trim_end_matches('/'), path);
    Url::parse(&s).unwrap_or_else(|_| base.clone())
}

/// The region the metadata service names, as a region identifier: it may answer with the
/// short key (`syd`), which the SDKs map to `ap-sydney-1`.
pub fn region_from_metadata(answer: &str) -> String {
    let a = answer.trim();
    crate::profile::types::REGIONS
        .iter()
        .find(|(_, key)| key.eq_ignore_ascii_case(a))
        .map(|(r, _)| r.to_string())
        .unwrap_or_else(|| a.to_ascii_lowercase())
}

/// A PEM certificate or public key without its armour lines and newlines (the SDKs'
/// `sanitizeCertificateString`).
pub fn sanitize_pem(pem: &str) -> String {
    pem.replace("-----BEGIN CERTIFICATE-----", "")
        .replace("-----END CERTIFICATE-----", "")
        .replace("-----BEGIN PUBLIC KEY-----", "")
        .replace("-----END PUBLIC KEY-----", "")
        .replace(['\n', '\r'], "")
}

/// `aa:bb:...`: SHA-256 of `der`, lowercase hex bytes joined by colons (the SDKs'
/// `fingerprint`).
pub fn certificate_fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// One certificate as the metadata service gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// The PEM text as served.
    pub pem: String,
    pub der: Vec<u8>,
    /// The values of the subject's attributes, in order.
    pub subject_values: Vec<String>,
}

impl Certificate {
    /// Parse the first PEM certificate in `pem`.
    pub fn parse(pem: &str) -> Result<Certificate, String> {
        use x509_cert::der::Decode;
        let begin = pem
            .find("-----BEGIN CERTIFICATE-----")
            .ok_or("no `-----BEGIN CERTIFICATE-----` (not PEM)")?;
        let rest = &pem[begin..];
        let end = rest
            .find("-----END CERTIFICATE-----")
            .ok_or("no `-----END CERTIFICATE-----` (truncated PEM)")?;
        let body = sanitize_pem(&rest[..end + "-----END CERTIFICATE-----".len()]);
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.trim())
            .map_err(|_| "the PEM body is not base64".to_string())?;
        let cert = x509_cert::Certificate::from_der(&der)
            .map_err(|e| format!("not an X.509 certificate ({e})"))?;
        let subject_values = cert
            .tbs_certificate
            .subject
            .0
            .iter()
            .flat_map(|rdn| rdn.0.iter())
            .filter_map(|atv| {
                std::str::from_utf8(atv.value.value())
                    .ok()
                    .map(String::from)
            })
            .collect();
        Ok(Certificate {
            pem: pem.to_string(),
            der,
            subject_values,
        })
    }

    /// The tenancy OCID from the subject's `opc-tenant:` value (the SDKs'
    /// `extractTenancyIDFromCertificate`).
    pub fn tenancy_id(&self) -> Option<&str> {
        self.subject_values
            .iter()
            .find_map(|v| v.strip_prefix(TENANT_PREFIX))
            .filter(|t| !t.is_empty())
    }

    pub fn fingerprint(&self) -> String {
        certificate_fingerprint(&self.der)
    }
}

/// The federation key id: `<tenancy>/fed-x509-sha256/<fingerprint>`.
pub fn federation_key_id(tenancy: &str, leaf: &Certificate) -> String {
    format!("{tenancy}/fed-x509-sha256/{}", leaf.fingerprint())
}

/// The body of `POST /v1/x509` (field order as the SDKs marshal it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FederationRequest {
    pub certificate: String,
    pub public_key: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intermediate_certificates: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fingerprint_algorithm: String,
}

impl FederationRequest {
    pub fn new(
        leaf: &Certificate,
        intermediates: &[Certificate],
        session_public_pem: &str,
    ) -> FederationRequest {
        FederationRequest {
            certificate: sanitize_pem(&leaf.pem),
            public_key: sanitize_pem(session_public_pem),
            intermediate_certificates: intermediates.iter().map(|c| sanitize_pem(&c.pem)).collect(),
            fingerprint_algorithm: "SHA256".into(),
        }
    }
}

/// Sign a federation request: fills in `date`, `content-length`, `content-type`,
/// `x-content-sha256` and `authorization` in `headers` (see [`FEDERATION_SIGNED_HEADERS`]).
pub fn sign_federation(
    leaf_signer: &Signer,
    url: &Url,
    headers: &mut HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<signer::Signed, signer::SignError> {
    signer::prepare_headers("POST", url, headers, body, BodyMode::Standard, now)?;
    // The auth service's signature has no `host` (the SDKs' `genericHeaders`); the transport
    // still sends its own.
    headers.remove("host");
    let names = FEDERATION_SIGNED_HEADERS;
    let signing_string = signer::signing_string("POST", url, headers, &names)?;
    let signature = leaf_signer.sign_bytes(signing_string.as_bytes())?;
    let authorization = signer::authorization(leaf_signer.key_id(), &names, &signature);
    headers.insert(
        "authorization",
        HeaderValue::from_str(&authorization)
            .map_err(|_| signer::SignError::BadHeaderValue("authorization".into()))?,
    );
    Ok(signer::Signed {
        signed_headers: names.iter().map(|s| s.to_string()).collect(),
        signing_string,
        signature,
        authorization,
    })
}

/// A fresh session key pair: the key and its public half as `PUBLIC KEY` PEM.
pub fn session_key_pair() -> Result<(rsa::RsaPrivateKey, String), InstancePrincipalError> {
    use rsa::pkcs8::EncodePublicKey;
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048)
        .map_err(|e| InstancePrincipalError::Other(format!("cannot make a session key: {e}")))?;
    let public = key
        .to_public_key()
        .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
        .map_err(|e| InstancePrincipalError::Other(format!("cannot encode a session key: {e}")))?;
    Ok((key, public))
}

struct Current {
    token: SessionToken,
    signer: Signer,
    /// The token as issued, and its session key (for [`InstancePrincipal::cached`]).
    raw: String,
    key: rsa::RsaPrivateKey,
}

/// A token and its session key, with what [`InstancePrincipal::from_cached`] needs to sign with
/// them without asking the metadata or auth service (what a short-lived process such as
/// `archive_command` keeps between runs). `Debug` shows neither the token nor the key.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CachedToken {
    pub region: String,
    pub tenancy_id: String,
    pub token: String,
    /// PKCS#8 PEM.
    pub session_key_pem: String,
}

impl std::fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedToken")
            .field("region", &self.region)
            .field("tenancy_id", &self.tenancy_id)
            .finish_non_exhaustive()
    }
}

impl CachedToken {
    /// When the token expires (unix seconds), or why it is not a token.
    pub fn expires_at(&self) -> Result<u64, String> {
        SessionToken::parse(&self.token).map(|t| t.expires_at)
    }

    /// True when it can be used now without renewing first (it expires after
    /// [`REFRESH_WINDOW`] from `now`).
    pub fn fresh(&self, now: SystemTime) -> bool {
        SessionToken::parse(&self.token).is_ok_and(|t| !t.expires_within(now, REFRESH_WINDOW))
    }
}

/// The instance principal: signs as `ST$<token>` with a session key, renewing both when the
/// token expires within [`REFRESH_WINDOW`] and after a 401 ([`InstancePrincipal::refresh`]).
pub struct InstancePrincipal {
    http: reqwest::Client,
    endpoints: Endpoints,
    region: String,
    tenancy_id: String,
    current: Mutex<Option<Current>>,
    /// One renewal at a time.
    renewing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for InstancePrincipal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstancePrincipal")
            .field("endpoints", &self.endpoints)
            .field("region", &self.region)
            .field("tenancy_id", &self.tenancy_id)
            .finish_non_exhaustive()
    }
}

/// What the metadata service gives for one renewal.
struct Identity {
    leaf: Certificate,
    leaf_key: rsa::RsaPrivateKey,
    intermediate: Certificate,
}

impl InstancePrincipal {
    /// Ask the metadata service for the region and the certificate (the tenancy), then get a
    /// first token.
    pub async fn new(endpoints: Endpoints) -> Result<InstancePrincipal, InstancePrincipalError> {
        let http = http_client()?;
        let region_url = endpoints.metadata_url("/instance/region");
        let region = region_from_metadata(&metadata_get(&http, &region_url).await?);
        if region.is_empty() {
            return Err(bad("the region", &region_url, "empty answer"));
        }
        let identity = read_identity(&http, &endpoints).await?;
        let tenancy_id = identity
            .leaf
            .tenancy_id()
            .ok_or_else(|| {
                InstancePrincipalError::Certificate(format!(
                    "the leaf certificate's subject has no `{TENANT_PREFIX}<tenancy OCID>` value"
                ))
            })?
            .to_string();
        let p = InstancePrincipal {
            http,
            endpoints,
            region,
            tenancy_id,
            current: Mutex::new(None),
            renewing: tokio::sync::Mutex::new(()),
        };
        let first = p.federate(identity).await?;
        *p.lock() = Some(first);
        Ok(p)
    }

    /// The principal from a cached token, without asking the metadata or the auth service;
    /// it renews like any other (within [`REFRESH_WINDOW`] of expiry, after a 401).
    pub fn from_cached(
        endpoints: Endpoints,
        cached: &CachedToken,
    ) -> Result<InstancePrincipal, InstancePrincipalError> {
        use rsa::pkcs8::DecodePrivateKey;
        let bad = |what: &str| {
            InstancePrincipalError::Other(format!("the cached token is not usable: {what}"))
        };
        let token = SessionToken::parse(&cached.token).map_err(|_| bad("not a token"))?;
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(&cached.session_key_pem)
            .map_err(|_| bad("its session key is not a PKCS#8 RSA key"))?;
        let http = http_client()?;
        let current = Current {
            signer: Signer::with_security_token(&cached.token, key.clone()),
            token,
            raw: cached.token.trim().to_string(),
            key,
        };
        Ok(InstancePrincipal {
            http,
            endpoints,
            region: cached.region.clone(),
            tenancy_id: cached.tenancy_id.clone(),
            current: Mutex::new(Some(current)),
            renewing: tokio::sync::Mutex::new(()),
        })
    }

    /// The token in hand and its session key, to keep for a later process.
    pub fn cached(&self) -> Option<CachedToken> {
        use rsa::pkcs8::EncodePrivateKey;
        let cur = self.lock();
        let c = cur.as_ref()?;
        let pem = c.key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).ok()?;
        Some(CachedToken {
            region: self.region.clone(),
            tenancy_id: self.tenancy_id.clone(),
            token: c.raw.clone(),
            session_key_pem: pem.to_string(),
        })
    }

    /// [`Endpoints::from_env`] with the process environment, then [`Self::new`].
    pub async fn from_env() -> Result<InstancePrincipal, InstancePrincipalError> {
        Self::new(Endpoints::from_env(&|k| std::env::var(k).ok())?).await
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn tenancy_id(&self) -> &str {
        &self.tenancy_id
    }

    /// When the token in hand expires (unix seconds).
    pub fn expires_at(&self) -> Option<u64> {
        self.lock().as_ref().map(|c| c.token.expires_at)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Current>> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The signer in hand, without renewing (what a synchronous caller can have).
    pub fn current_signer(&self) -> Option<Signer> {
        self.lock().as_ref().map(|c| c.signer.clone())
    }

    /// The signer to use now: renewed first when the token expires within
    /// [`REFRESH_WINDOW`]. A failed renewal falls back to the token in hand while it lasts.
    pub async fn signer(&self) -> Result<Signer, InstancePrincipalError> {
        let fresh_enough = |c: &Option<Current>| {
            c.as_ref()
                .filter(|c| !c.token.expires_within(SystemTime::now(), REFRESH_WINDOW))
                .map(|c| c.signer.clone())
        };
        if let Some(s) = fresh_enough(&self.lock()) {
            return Ok(s);
        }
        let _one = self.renewing.lock().await;
        if let Some(s) = fresh_enough(&self.lock()) {
            return Ok(s); // renewed by another caller meanwhile
        }
        match self.renew().await {
            Ok(s) => Ok(s),
            Err(e) => {
                let cur = self.lock();
                match cur.as_ref() {
                    Some(c) if !c.token.is_expired(SystemTime::now()) => {
                        tracing::warn!(error = %e, "the instance principal token expires soon and renewing it failed; using the current one");
                        Ok(c.signer.clone())
                    }
                    _ => Err(e),
                }
            }
        }
    }

    /// Renew now (after a service refused the token with 401).
    pub async fn refresh(&self) -> Result<Signer, InstancePrincipalError> {
        let _one = self.renewing.lock().await;
        self.renew().await
    }

    async fn renew(&self) -> Result<Signer, InstancePrincipalError> {
        let identity = read_identity(&self.http, &self.endpoints).await?;
        if identity.leaf.tenancy_id() != Some(self.tenancy_id.as_str()) {
            return Err(InstancePrincipalError::Certificate(format!(
                "the renewed leaf certificate names tenancy {:?}, not {} (the SDKs refuse a tenancy change)",
                identity.leaf.tenancy_id().unwrap_or(""),
                self.tenancy_id
            )));
        }
        let fresh = self.federate(identity).await?;
        let signer = fresh.signer.clone();
        *self.lock() = Some(fresh);
        Ok(signer)
    }

    /// Exchange the certificates and a new session key for a token.
    async fn federate(&self, id: Identity) -> Result<Current, InstancePrincipalError> {
        let url = self.endpoints.federation_url(&self.region)?;
        let (session_key, session_public) = session_key_pair()?;
        let body = serde_json::to_vec(&FederationRequest::new(
            &id.leaf,
            std::slice::from_ref(&id.intermediate),
            &session_public,
        ))
        .map_err(|e| InstancePrincipalError::Other(e.to_string()))?;
        let leaf_signer = Signer::new(federation_key_id(&self.tenancy_id, &id.leaf), id.leaf_key);
        let mut headers = HeaderMap::new();
        headers.insert("accept", HeaderValue::from_static("application/json"));
        let failed = |detail: String| InstancePrincipalError::Federation {
            url: url.to_string(),
            detail,
        };
        sign_federation(&leaf_signer, &url, &mut headers, &body, SystemTime::now())
            .map_err(|e| failed(e.to_string()))?;
        // The SDKs try three times, 1 s then 2 s apart, but not after a 4xx.
        let mut attempt = 0;
        let resp = loop {
            attempt += 1;
            let sent = self
                .http
                .post(url.clone())
                .headers(headers.clone())
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(r)
                    if r.status().is_success() || r.status().is_client_error() || attempt == 3 =>
                {
                    break r
                }
                Err(e) if attempt == 3 => return Err(failed(e.to_string())),
                _ => tokio::time::sleep(Duration::from_secs(1 << (attempt - 1))).await,
            }
        };
        let status = resp.status();
        let text = resp.text().await.map_err(|e| failed(e.to_string()))?;
        if !status.is_success() {
            // OCI's error body names the problem (code, message); it carries no secret.
            let shown: String = text.chars().take(300).collect();
            return Err(failed(format!("HTTP {status}: {shown}")));
        }
        let answer: serde_json::Value =
            serde_json::from_str(&text).map_err(|_| failed("the answer is not JSON".into()))?;
        let raw = answer["token"]
            .as_str()
            .ok_or_else(|| failed("the answer has no `token`".into()))?;
        let token = SessionToken::parse(raw).map_err(|m| failed(format!("the token {m}")))?;
        if token.is_expired(SystemTime::now()) {
            return Err(failed(
                "the auth service gave a token that has already expired (check the clock)".into(),
            ));
        }
        Ok(Current {
            signer: Signer::with_security_token(raw, session_key.clone()),
            token,
            raw: raw.trim().to_string(),
            key: session_key,
        })
    }
}

fn http_client() -> Result<reqwest::Client, InstancePrincipalError> {
    reqwest::Client::builder()
        .user_agent(crate::oci::client::USER_AGENT)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| InstancePrincipalError::Other(e.to_string()))
}

async fn metadata_get(http: &reqwest::Client, url: &Url) -> Result<String, InstancePrincipalError> {
    let failed = |detail: String| InstancePrincipalError::Metadata {
        url: url.to_string(),
        detail,
    };
    let resp = http
        .get(url.clone())
        .header("authorization", "Bearer Oracle")
        .send()
        .await
        .map_err(|e| failed(e.to_string()))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| failed(e.to_string()))?;
    if status != reqwest::StatusCode::OK {
        return Err(failed(format!("HTTP {status}")));
    }
    Ok(text)
}

async fn read_identity(
    http: &reqwest::Client,
    endpoints: &Endpoints,
) -> Result<Identity, InstancePrincipalError> {
    let cert_url = endpoints.metadata_url("/identity/cert.pem");
    let key_url = endpoints.metadata_url("/identity/key.pem");
    let inter_url = endpoints.metadata_url("/identity/intermediate.pem");
    let leaf = Certificate::parse(&metadata_get(http, &cert_url).await?)
        .map_err(|e| bad("the leaf certificate", &cert_url, e))?;
    let key_pem = metadata_get(http, &key_url).await?;
    let leaf_key = keys::parse_private_key_pem(&key_pem, None, std::path::Path::new("key.pem"))
        .map_err(|_| {
            bad(
                "the leaf key",
                &key_url,
                "not an unencrypted RSA private key in PEM form",
            )
        })?;
    let intermediate = Certificate::parse(&metadata_get(http, &inter_url).await?)
        .map_err(|e| bad("the intermediate certificate", &inter_url, e))?;
    Ok(Identity {
        leaf,
        leaf_key,
        intermediate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate whose subject has the OUs an instance certificate has.
    fn cert_pem(ous: &[&str]) -> String {
        let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            "ocid1.instance.oc1.ap-sydney-1.i",
        );
        for ou in ous {
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationalUnitName, *ou);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn the_tenancy_comes_from_the_opc_tenant_value_of_the_subject() {
        let pem = cert_pem(&[
            "opc-certtype:instance",
            "opc-compartment:ocid1.compartment.oc1..c",
            "opc-instance:ocid1.instance.oc1.ap-sydney-1.i",
            "opc-tenant:ocid1.tenancy.oc1..aaaa",
        ]);
        let c = Certificate::parse(&pem).unwrap();
        assert_eq!(c.tenancy_id(), Some("ocid1.tenancy.oc1..aaaa"));
        let none = Certificate::parse(&cert_pem(&["opc-certtype:instance"])).unwrap();
        assert_eq!(none.tenancy_id(), None);
        for bad in [
            "",
            "-----BEGIN CERTIFICATE-----\nAAAA",
            "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----",
        ] {
            assert!(Certificate::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn key_id_and_body_are_the_sdks() {
        let pem = cert_pem(&["opc-tenant:ocid1.tenancy.oc1..t"]);
        let c = Certificate::parse(&pem).unwrap();
        let fp = c.fingerprint();
        // 32 bytes as colon-separated lowercase hex, of the DER.
        assert_eq!(fp.len(), 32 * 3 - 1);
        assert_eq!(fp, certificate_fingerprint(&c.der));
        assert!(fp
            .chars()
            .all(|ch| ch == ':' || ch.is_ascii_hexdigit() && !ch.is_ascii_uppercase()));
        assert_eq!(
            federation_key_id("ocid1.tenancy.oc1..t", &c),
            format!("ocid1.tenancy.oc1..t/fed-x509-sha256/{fp}")
        );
        let body = FederationRequest::new(
            &c,
            std::slice::from_ref(&c),
            "-----BEGIN PUBLIC KEY-----\nAB\nCD\n-----END PUBLIC KEY-----\n",
        );
        let json = serde_json::to_string(&body).unwrap();
        assert!(json.starts_with(r#"{"certificate":""#), "{json}");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["publicKey"], "ABCD");
        assert_eq!(v["fingerprintAlgorithm"], "SHA256");
        let b64 = v["certificate"].as_str().unwrap();
        assert!(!b64.contains('\n') && !b64.contains("BEGIN"));
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
            c.der
        );
        assert_eq!(v["intermediateCertificates"][0], b64);
    }

    #[test]
    fn the_federation_signature_has_no_host() {
        let key = keys::parse_private_key_pem(
            &crate::oci::principal::tests::test_key_pem(),
            None,
            std::path::Path::new("k"),
        )
        .unwrap();
        let s = Signer::new("t/fed-x509-sha256/aa", key);
        let url = Url::parse("https://auth.ap-sydney-1.oraclecloud.com/v1/x509").unwrap();
        let mut h = HeaderMap::new();
        let signed = sign_federation(&s, &url, &mut h, b"{}", SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(
            signed.signed_headers,
            [
                "date",
                "(request-target)",
                "content-length",
                "content-type",
                "x-content-sha256"
            ]
        );
        assert!(signed.signing_string.starts_with("date: Thu, 01 Jan 1970 00:00:00 GMT\n(request-target): post /v1/x509\ncontent-length: 2\ncontent-type: application/json\nx-content-sha256: "));
        assert!(!signed.signing_string.contains("host"));
        assert!(signed
            .authorization
            .contains(r#"keyId="t/fed-x509-sha256/aa""#));
    }

    #[test]
    fn endpoints_default_and_override_like_the_sdks() {
        let e = Endpoints::from_env(&|_| None).unwrap();
        assert_eq!(e.metadata.as_str(), "http://169.254.169.254/opc/v2");
        assert_eq!(
            e.metadata_url("/identity/cert.pem").as_str(),
            "http://169.254.169.254/opc/v2/identity/cert.pem"
        );
        assert_eq!(
            e.federation_url("ap-sydney-1").unwrap().as_str(),
            "https://auth.ap-sydney-1.oraclecloud.com/v1/x509"
        );
        let o = Endpoints::from_env(&|k| match k {
            METADATA_BASE_URL_VAR => Some("http://127.0.0.1:9/opc/v2/".into()),
            AUTH_URL_VAR => Some("http://127.0.0.1:10".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            o.metadata_url("/instance/region").as_str(),
            "http://127.0.0.1:9/opc/v2/instance/region"
        );
        assert_eq!(
            o.federation_url("x").unwrap().as_str(),
            "http://127.0.0.1:10/v1/x509"
        );
        let e =
            Endpoints::from_env(&|k| (k == AUTH_URL_VAR).then(|| "not a url".into())).unwrap_err();
        assert!(e.to_string().contains(AUTH_URL_VAR), "{e}");
        assert_eq!(region_from_metadata("syd\n"), "ap-sydney-1");
        assert_eq!(region_from_metadata("ap-melbourne-1"), "ap-melbourne-1");
    }
}
