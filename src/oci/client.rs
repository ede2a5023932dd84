//! The signed HTTP client: endpoints, retries, and errors a person can act on.
//!
//! - Endpoints come from service + region ([`Service::default_endpoint`]); any service can be
//!   pointed elsewhere with [`OciClient::with_endpoint`] (tests, private endpoints), or with
//!   `CALOPS_ENDPOINT_<SERVICE>` (e.g. `CALOPS_ENDPOINT_OBJECTSTORAGE=http://127.0.0.1:8080`)
//!   for clients built by [`OciClient::from_profile`].
//! - Every attempt is signed afresh (new `date`). Retries happen on 429, on 5xx other than
//!   501/505, and on connection errors and timeouts, with exponential backoff and full
//!   jitter, honouring `Retry-After`, bounded by [`RetryPolicy::max_attempts`] and
//!   [`RetryPolicy::max_total`]. POST and PATCH are retried only when the request carries an
//!   `opc-retry-token` (the server then deduplicates).
//! - A failed call is an [`OciError::Api`] carrying the HTTP status, OCI error code and
//!   message, and `opc-request-id`; a 401 lists the usual causes and the local clock's offset
//!   from the server's `Date`.
//! - Credentials are an API key or session token ([`OciClient::new`]), or a container
//!   instance's resource principal ([`OciClient::with_resource_principal`]), whose token is
//!   read again before it expires and, once per call, after a 401 (as the SDKs do).

use crate::oci::auth::{self, AuthError};
use crate::oci::config::OciProfile;
use crate::oci::instance::{InstancePrincipal, InstancePrincipalError};
use crate::oci::principal::{PrincipalError, ResourcePrincipal};
use crate::oci::signer::{BodyMode, SignError, Signed, Signer};
use bytes::Bytes;
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use url::Url;

/// The `User-Agent` calops sends.
pub const USER_AGENT: &str = concat!("calops/", env!("CARGO_PKG_VERSION"));

/// The OCI services calops calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    ObjectStorage,
    /// The (flexible) Load Balancer API, served from the core `iaas` host.
    LoadBalancer,
    ContainerInstances,
    Postgresql,
    Redis,
    /// The container registry (OCIR), `https://<region-key>.ocir.io`.
    Registry,
    /// Core services (`iaas`): VCNs, compute, core work requests.
    Core,
    /// Identity (`identity`): tenancy, region subscriptions.
    Identity,
    /// Vault secret retrieval (`secrets.vaults`): secret bundles.
    Secrets,
    /// Monitoring's ingestion endpoint (`telemetry-ingestion`): PostMetricData.
    TelemetryIngestion,
    /// Monitoring (`telemetry`): alarms, SummarizeMetricsData.
    Telemetry,
    /// Email Delivery's HTTPS submission API (`SubmitRawEmail`).
    EmailSubmission,
}

impl Service {
    pub const ALL: [Service; 12] = [
        Service::ObjectStorage,
        Service::LoadBalancer,
        Service::ContainerInstances,
        Service::Postgresql,
        Service::Redis,
        Service::Registry,
        Service::Core,
        Service::Identity,
        Service::Secrets,
        Service::TelemetryIngestion,
        Service::Telemetry,
        Service::EmailSubmission,
    ];

    /// Short name, as used in `--endpoint`-style overrides and messages.
    pub fn name(self) -> &'static str {
        match self {
            Service::ObjectStorage => "objectstorage",
            Service::LoadBalancer => "loadbalancer",
            Service::ContainerInstances => "containerinstances",
            Service::Postgresql => "postgresql",
            Service::Redis => "redis",
            Service::Registry => "registry",
            Service::Core => "core",
            Service::Identity => "identity",
            Service::Secrets => "secrets",
            Service::TelemetryIngestion => "telemetryingestion",
            Service::Telemetry => "telemetry",
            Service::EmailSubmission => "emailsubmission",
        }
    }

    /// The environment variable that overrides this service's endpoint:
    /// `CALOPS_ENDPOINT_<NAME>` (e.g. `CALOPS_ENDPOINT_OBJECTSTORAGE`).
    pub fn env_var(self) -> String {
        format!("CALOPS_ENDPOINT_{}", self.name().to_ascii_uppercase())
    }

    /// The public endpoint of this service in `region` (commercial realm, oraclecloud.com).
    pub fn default_endpoint(self, region: &str) -> Result<Url, OciError> {
        let host = match self {
            Service::ObjectStorage => format!("objectstorage.{region}.oraclecloud.com"),
            Service::LoadBalancer | Service::Core => format!("iaas.{region}.oraclecloud.com"),
            Service::ContainerInstances => {
                format!("compute-containers.{region}.oci.oraclecloud.com")
            }
            Service::Postgresql => format!("postgresql.{region}.oci.oraclecloud.com"),
            Service::Redis => format!("redis.{region}.oci.oraclecloud.com"),
            Service::Identity => format!("identity.{region}.oci.oraclecloud.com"),
            Service::Secrets => format!("secrets.vaults.{region}.oci.oraclecloud.com"),
            Service::TelemetryIngestion => format!("telemetry-ingestion.{region}.oraclecloud.com"),
            Service::Telemetry => format!("telemetry.{region}.oraclecloud.com"),
            // oci-go-sdk emaildataplane: `https://cell0.submit.email.{region}.oci.{secondLevelDomain}`.
            Service::EmailSubmission => format!("cell0.submit.email.{region}.oci.oraclecloud.com"),
            Service::Registry => {
                let key = region_key(region).ok_or_else(|| OciError::Endpoint {
                    service: self.name(),
                    why: format!("no registry region key is known for region `{region}`; set the registry endpoint explicitly (e.g. https://syd.ocir.io)"),
                })?;
                format!("{key}.ocir.io")
            }
        };
        Url::parse(&format!("https://{host}")).map_err(|e| OciError::Endpoint {
            service: self.name(),
            why: format!("region `{region}` gives an invalid host `{host}`: {e}"),
        })
    }
}

/// The three-letter region key OCIR uses (`ap-sydney-1` -> `syd`).
pub fn region_key(region: &str) -> Option<&'static str> {
    // One table of regions for the whole tool: the profile's.
    crate::profile::types::REGIONS
        .iter()
        .find(|(r, _)| *r == region)
        .map(|(_, k)| *k)
}

/// How hard to retry. [`RetryPolicy::default`] suits real OCI; tests use millisecond delays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts including the first (1 = no retries).
    pub max_attempts: u32,
    /// First backoff ceiling; doubles each retry.
    pub base_delay: Duration,
    /// Largest backoff ceiling (before `Retry-After`).
    pub max_delay: Duration,
    /// No retry starts after this much time since the first attempt.
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            max_total: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// A single attempt.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Default::default()
        }
    }

    /// The backoff before retry number `retry` (1-based): full jitter in
    /// `[0, min(max_delay, base * 2^(retry-1))]`. `unit` in `[0,1)` is the random draw.
    pub fn backoff(&self, retry: u32, unit: f64) -> Duration {
        let exp = 2f64.powi(retry.saturating_sub(1).min(30) as i32);
        let ceiling = (self.base_delay.as_secs_f64() * exp).min(self.max_delay.as_secs_f64());
        Duration::from_secs_f64(ceiling * unit.clamp(0.0, 1.0))
    }
}

/// Status codes worth retrying: 429 and 5xx except 501 (not implemented) and 505.
pub fn is_retryable_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || (status.is_server_error()
            && status != StatusCode::NOT_IMPLEMENTED
            && status != StatusCode::HTTP_VERSION_NOT_SUPPORTED)
}

/// `Retry-After` as seconds or as an HTTP date (relative to `now`).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some(Duration::from_secs_f64(secs));
        }
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// One request to send: the client signs it (every attempt) and retries it.
#[derive(Debug, Clone)]
pub struct OciRequest {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub body_mode: BodyMode,
}

impl OciRequest {
    pub fn new(method: Method, url: Url) -> OciRequest {
        OciRequest {
            method,
            url,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            body_mode: BodyMode::Standard,
        }
    }

    /// Add a header; names and values that are not valid HTTP are an error.
    pub fn header(mut self, name: &str, value: &str) -> Result<OciRequest, OciError> {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| OciError::InvalidRequest(format!("invalid header name `{name}`")))?;
        let v = HeaderValue::from_str(value).map_err(|_| {
            OciError::InvalidRequest(format!("header `{name}` has an invalid value"))
        })?;
        self.headers.insert(n, v);
        Ok(self)
    }

    /// A JSON body.
    pub fn json<T: serde::Serialize>(mut self, body: &T) -> Result<OciRequest, OciError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| OciError::InvalidRequest(format!("cannot encode JSON body: {e}")))?;
        self.body = Bytes::from(bytes);
        self.headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(self)
    }

    pub fn body(mut self, body: impl Into<Bytes>, mode: BodyMode) -> OciRequest {
        self.body = body.into();
        self.body_mode = mode;
        self
    }

    /// True when a retry cannot duplicate a side effect.
    pub fn is_retry_safe(&self) -> bool {
        !matches!(self.method, Method::POST | Method::PATCH)
            || self.headers.contains_key("opc-retry-token")
    }
}

/// A response with its body read.
#[derive(Debug, Clone)]
pub struct OciResponse {
    pub method: Method,
    pub url: Url,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// How many attempts it took.
    pub attempts: u32,
}

impl OciResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn opc_request_id(&self) -> Option<&str> {
        self.header("opc-request-id")
    }

    /// Decode the body as JSON, or a [`OciError::Decode`] naming the call and the request id.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, OciError> {
        serde_json::from_slice(&self.body).map_err(|e| OciError::Decode {
            method: self.method.to_string(),
            url: self.url.to_string(),
            status: self.status.as_u16(),
            opc_request_id: self.opc_request_id().map(String::from),
            message: e.to_string(),
            snippet: snippet(&self.body),
        })
    }
}

fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let mut out: String = s.chars().take(200).collect();
    if s.chars().count() > 200 {
        out.push('…');
    }
    out
}

/// A non-2xx answer from OCI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub method: String,
    pub url: String,
    pub status: u16,
    /// OCI's error code, e.g. `NotAuthenticated`, `BucketNotFound`.
    pub code: Option<String>,
    pub message: Option<String>,
    pub opc_request_id: Option<String>,
    pub attempts: u32,
    /// Server `Date` minus the local clock, in seconds, when the server sent a `Date`.
    pub clock_offset_secs: Option<i64>,
    pub server_date: Option<String>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} failed: HTTP {}",
            self.method, self.url, self.status
        )?;
        if let Some(c) = &self.code {
            write!(f, " {c}")?;
        }
        if let Some(m) = &self.message {
            write!(f, ": {m}")?;
        }
        match &self.opc_request_id {
            Some(id) => write!(f, " (opc-request-id: {id}")?,
            None => write!(f, " (no opc-request-id")?,
        }
        if self.attempts > 1 {
            write!(f, ", after {} attempts", self.attempts)?;
        }
        write!(f, ")")?;
        if self.status == 401 {
            write!(f, "\n  OCI did not accept the request signature. The usual causes:\n  - the `fingerprint` in the OCI config is not that of an API key uploaded for this user (console: User settings > API keys);\n  - `key_file` is not the private half of that API key;\n  - `user` or `tenancy` is wrong, or the session token expired (`oci session refresh`);\n  - the local clock is more than 5 minutes off.")?;
            match (self.clock_offset_secs, &self.server_date) {
                (Some(off), Some(date)) => {
                    let dir = if off > 0 { "behind" } else { "ahead of" };
                    if off == 0 {
                        write!(f, "\n  Clock: the local clock agrees with the server's Date ({date}) to the second.")?;
                    } else {
                        write!(
                            f,
                            "\n  Clock: the local clock is {}s {dir} the server's Date ({date}){}.",
                            off.abs(),
                            if off.abs() > 300 {
                                " — fix the clock (e.g. `timedatectl set-ntp true`)"
                            } else {
                                ", within OCI's 5 minute window"
                            }
                        )?;
                    }
                }
                _ => write!(
                    f,
                    "\n  Clock: the server sent no Date header to compare with."
                )?,
            }
        }
        Ok(())
    }
}

/// Everything the client can fail with.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("{0}")]
    Api(Box<ApiError>),
    #[error("{method} {url} failed after {attempts} attempt(s): {detail}\n  fix: check the network path to the endpoint (DNS, proxy, firewall) and that the region is right")]
    Transport {
        method: String,
        url: String,
        attempts: u32,
        detail: String,
    },
    #[error("{method} {url}: HTTP {status} with a body that is not the expected JSON ({message}){}: {snippet}", opc_request_id.as_ref().map(|i| format!(" (opc-request-id: {i})")).unwrap_or_default())]
    Decode {
        method: String,
        url: String,
        status: u16,
        opc_request_id: Option<String>,
        message: String,
        snippet: String,
    },
    #[error("no endpoint for {service}: {why}")]
    Endpoint { service: &'static str, why: String },
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("cannot sign the request: {0}")]
    Sign(#[from] SignError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Principal(#[from] PrincipalError),
    #[error(transparent)]
    InstancePrincipal(#[from] InstancePrincipalError),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("work request {id} ({operation}) ended {status}{}", if errors.is_empty() { String::new() } else { format!(": {}", errors.join("; ")) })]
    WorkRequestFailed {
        id: String,
        operation: String,
        status: String,
        errors: Vec<String>,
    },
    #[error("gave up waiting for work request {id} after {}s: still {status} at {percent_complete}%\n  fix: it may still finish; check it in the console or wait again", waited.as_secs())]
    WorkRequestTimeout {
        id: String,
        waited: Duration,
        status: String,
        percent_complete: f32,
    },
    #[error("{0}")]
    Other(String),
}

impl OciError {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            OciError::Api(e) => Some(e.status),
            OciError::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }
    /// The OCI error code of an API error.
    pub fn code(&self) -> Option<&str> {
        match self {
            OciError::Api(e) => e.code.as_deref(),
            _ => None,
        }
    }
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
    /// 409 or 412: a create-only or compare-and-swap write lost the race.
    pub fn is_conflict(&self) -> bool {
        matches!(self.status(), Some(409) | Some(412))
    }
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    code: Option<String>,
    message: Option<String>,
}

/// Build the [`ApiError`] for a non-2xx response. `local_now` is when it arrived.
pub fn api_error(resp: &OciResponse, local_now: SystemTime) -> ApiError {
    let (code, message) = match serde_json::from_slice::<ErrorBody>(&resp.body) {
        Ok(b) => (b.code, b.message),
        Err(_) if resp.body.is_empty() => (None, None),
        Err(_) => (None, Some(snippet(&resp.body))),
    };
    let server_date = resp.header("date").map(String::from);
    let clock_offset_secs = server_date
        .as_deref()
        .and_then(|d| httpdate::parse_http_date(d).ok())
        .map(|server| match server.duration_since(local_now) {
            Ok(d) => d.as_secs_f64().round() as i64,
            Err(e) => -(e.duration().as_secs_f64().round() as i64),
        });
    ApiError {
        method: resp.method.to_string(),
        url: resp.url.to_string(),
        status: resp.status.as_u16(),
        code,
        message,
        opc_request_id: resp.opc_request_id().map(String::from),
        attempts: resp.attempts,
        clock_offset_secs,
        server_date,
    }
}

/// Who the client signs as.
#[derive(Debug, Clone)]
enum Credentials {
    /// An API key or a session token: one signer for the client's life.
    Fixed(Arc<Signer>),
    /// A resource principal: the signer of the moment, refreshed after a 401.
    Principal(Arc<ResourcePrincipal>),
    /// An instance principal: a session token renewed before it expires and after a 401.
    Instance(Arc<InstancePrincipal>),
}

/// The client. Cheap to clone (shares the connection pool and the key).
#[derive(Debug, Clone)]
pub struct OciClient {
    http: reqwest::Client,
    credentials: Credentials,
    region: String,
    overrides: HashMap<Service, Url>,
    retry: RetryPolicy,
}

impl OciClient {
    /// A client signing with `signer` against `region`'s public endpoints.
    pub fn new(signer: Signer, region: impl Into<String>) -> Result<OciClient, OciError> {
        Self::with_credentials(Credentials::Fixed(Arc::new(signer)), region.into())
    }

    /// A client signing as a resource principal, against its region's public endpoints.
    pub fn with_resource_principal(
        principal: Arc<ResourcePrincipal>,
    ) -> Result<OciClient, OciError> {
        let region = principal.region().to_string();
        Self::with_credentials(Credentials::Principal(principal), region)
    }

    /// A client signing as a compute instance's instance principal, against its region's
    /// public endpoints.
    pub fn with_instance_principal(
        principal: Arc<InstancePrincipal>,
    ) -> Result<OciClient, OciError> {
        let region = principal.region().to_string();
        Self::with_credentials(Credentials::Instance(principal), region)
    }

    fn with_credentials(credentials: Credentials, region: String) -> Result<OciClient, OciError> {
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| OciError::Client(e.to_string()))?;
        Ok(OciClient {
            http,
            credentials,
            region,
            overrides: HashMap::new(),
            retry: RetryPolicy::default(),
        })
    }

    /// A client for a config profile: checks and loads its key (see [`auth::signer_for`]),
    /// and applies endpoint overrides from the environment ([`Service::env_var`]).
    pub fn from_profile(profile: &OciProfile) -> Result<OciClient, OciError> {
        let signer = auth::signer_for(profile)?;
        OciClient::new(signer, profile.region.clone())?
            .with_endpoint_overrides(|k| std::env::var(k).ok())
    }

    /// Apply `CALOPS_ENDPOINT_<SERVICE>` overrides found by `lookup` (private endpoints,
    /// local test servers). An override that is not a URL is an error naming the variable.
    pub fn with_endpoint_overrides(
        mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<OciClient, OciError> {
        for svc in Service::ALL {
            let var = svc.env_var();
            if let Some(v) = lookup(&var).filter(|v| !v.trim().is_empty()) {
                let url = Url::parse(v.trim()).map_err(|e| OciError::Endpoint {
                    service: svc.name(),
                    why: format!("${var} is `{v}`, not a URL ({e}); use e.g. https://objectstorage.example.com"),
                })?;
                self.overrides.insert(svc, url);
            }
        }
        Ok(self)
    }

    /// Send `service`'s calls to `base` instead (tests, private endpoints).
    pub fn with_endpoint(mut self, service: Service, base: Url) -> OciClient {
        self.overrides.insert(service, base);
        self
    }

    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> OciClient {
        self.retry = retry;
        self
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// The signer requests are signed with now.
    pub fn signer(&self) -> Result<Signer, OciError> {
        match &self.credentials {
            Credentials::Fixed(s) => Ok(Signer::clone(s)),
            Credentials::Principal(p) => Ok(p.signer(SystemTime::now())?),
            Credentials::Instance(p) => p.current_signer().ok_or_else(|| {
                OciError::InstancePrincipal(InstancePrincipalError::Other(
                    "no security token yet".into(),
                ))
            }),
        }
    }

    /// Renew credentials that expire soon before signing (an instance principal's token is
    /// fetched over HTTP, so this cannot happen inside the synchronous [`Self::signer`]).
    async fn ready(&self) -> Result<(), OciError> {
        if let Credentials::Instance(p) = &self.credentials {
            p.signer().await?;
        }
        Ok(())
    }

    /// After a 401: read or renew credentials that can change. `true` when there was something
    /// to refresh (a resource or instance principal), so the call is worth one more try.
    async fn refresh_credentials(&self) -> Result<bool, OciError> {
        match &self.credentials {
            Credentials::Fixed(_) => Ok(false),
            Credentials::Principal(p) => {
                p.refresh(SystemTime::now())?;
                Ok(true)
            }
            Credentials::Instance(p) => {
                p.refresh().await?;
                Ok(true)
            }
        }
    }

    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The base URL of a service (override or default).
    pub fn endpoint(&self, service: Service) -> Result<Url, OciError> {
        match self.overrides.get(&service) {
            Some(u) => Ok(u.clone()),
            None => service.default_endpoint(&self.region),
        }
    }

    /// `endpoint + path` where `path` is already percent-encoded and may carry a query.
    pub fn url(&self, service: Service, path_and_query: &str) -> Result<Url, OciError> {
        let base = self.endpoint(service)?;
        let mut s = base.as_str().trim_end_matches('/').to_string();
        s.push_str(path_and_query);
        Url::parse(&s).map_err(|e| OciError::InvalidRequest(format!("bad URL `{s}`: {e}")))
    }

    /// Sign `req` as it would be sent now: returns the final headers and the signature details.
    pub fn sign(&self, req: &OciRequest, now: SystemTime) -> Result<(HeaderMap, Signed), OciError> {
        let mut headers = req.headers.clone();
        if !headers.contains_key("opc-request-id") {
            let id = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
            headers.insert(
                "opc-request-id",
                HeaderValue::from_str(&id).map_err(|e| OciError::Other(e.to_string()))?,
            );
        }
        if !headers.contains_key("accept") {
            headers.insert("accept", HeaderValue::from_static("application/json"));
        }
        if !headers.contains_key("user-agent") {
            headers.insert("user-agent", HeaderValue::from_static(USER_AGENT));
        }
        let signed = self.signer()?.sign(
            req.method.as_str(),
            &req.url,
            &mut headers,
            &req.body,
            req.body_mode,
            now,
        )?;
        Ok((headers, signed))
    }

    /// Send with retries; a non-2xx final answer is an [`OciError::Api`].
    pub async fn send(&self, req: OciRequest) -> Result<OciResponse, OciError> {
        let resp = self.execute(req).await?;
        if resp.status.is_success() {
            Ok(resp)
        } else {
            Err(OciError::Api(Box::new(api_error(&resp, SystemTime::now()))))
        }
    }

    /// Send with retries and return whatever status came back last (for `raw-request`).
    pub async fn execute(&self, mut req: OciRequest) -> Result<OciResponse, OciError> {
        // One opc-request-id for the whole call, as the SDKs do.
        if !req.headers.contains_key("opc-request-id") {
            let id = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
            req.headers.insert(
                "opc-request-id",
                HeaderValue::from_str(&id).map_err(|e| OciError::Other(e.to_string()))?,
            );
        }
        let retry_safe = req.is_retry_safe();
        let start = Instant::now();
        let mut attempt = 0u32;
        let mut refreshed = false;
        loop {
            attempt += 1;
            self.ready().await?;
            let (headers, _) = self.sign(&req, SystemTime::now())?;
            let mut builder = self
                .http
                .request(req.method.clone(), req.url.clone())
                .headers(headers);
            if !req.body.is_empty() || crate::oci::signer::has_body(req.method.as_str()) {
                builder = builder.body(req.body.clone());
            }
            let outcome = match builder.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    match resp.bytes().await {
                        Ok(body) => Ok(OciResponse {
                            method: req.method.clone(),
                            url: req.url.clone(),
                            status,
                            headers,
                            body,
                            attempts: attempt,
                        }),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            // A refused resource principal token may have been rotated since it was read: read
            // it again and try once more, at once (the request was not accepted, so this is
            // safe for every method).
            if let Ok(resp) = &outcome {
                if resp.status == StatusCode::UNAUTHORIZED
                    && !refreshed
                    && self.refresh_credentials().await?
                {
                    refreshed = true;
                    tracing::debug!(url = %req.url, "401: renew the principal's token and retry");
                    continue;
                }
            }
            let can_retry = retry_safe && attempt < self.retry.max_attempts;
            let wait = match &outcome {
                Ok(resp) if can_retry && is_retryable_status(resp.status) => {
                    let backoff = self.retry.backoff(attempt, rand::thread_rng().gen::<f64>());
                    let after = resp
                        .header("retry-after")
                        .and_then(|v| parse_retry_after(v, SystemTime::now()));
                    Some(after.unwrap_or(backoff))
                }
                Err(e) if can_retry && is_retryable_transport(e) => {
                    Some(self.retry.backoff(attempt, rand::thread_rng().gen::<f64>()))
                }
                _ => None,
            };
            match wait {
                Some(w) if start.elapsed() + w <= self.retry.max_total => {
                    tracing::debug!(attempt, wait_ms = w.as_millis() as u64, url = %req.url, "retrying OCI request");
                    tokio::time::sleep(w).await;
                }
                _ => {
                    return outcome.map_err(|e| OciError::Transport {
                        method: req.method.to_string(),
                        url: req.url.to_string(),
                        attempts: attempt,
                        detail: describe_reqwest(&e),
                    })
                }
            }
        }
    }
}

fn is_retryable_transport(e: &reqwest::Error) -> bool {
    e.is_connect() || e.is_timeout() || e.is_request() || e.is_body()
}

/// A reqwest error with its causes (reqwest's own Display omits them).
fn describe_reqwest(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// Percent-encode one path segment the way the OCI SDKs do (`quote(safe='')`): everything but
/// `A-Z a-z 0-9 - . _ ~` is encoded, including `/`.
pub fn encode_path_segment(s: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const SET: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    utf8_percent_encode(s, SET).to_string()
}

/// Build a query string (`?a=1&b=2`, `application/x-www-form-urlencoded` as the SDKs send it).
pub fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in pairs {
        if let Some(v) = v {
            ser.append_pair(k, v);
            any = true;
        }
    }
    if any {
        format!("?{}", ser.finish())
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            Service::ObjectStorage
                .default_endpoint("ap-sydney-1")
                .unwrap()
                .as_str(),
            "https://objectstorage.ap-sydney-1.oraclecloud.com/"
        );
        assert_eq!(
            Service::ContainerInstances
                .default_endpoint("ap-sydney-1")
                .unwrap()
                .host_str(),
            Some("compute-containers.ap-sydney-1.oci.oraclecloud.com")
        );
        assert_eq!(
            Service::Registry
                .default_endpoint("ap-sydney-1")
                .unwrap()
                .host_str(),
            Some("syd.ocir.io")
        );
        // GetSecretBundle's host, as oci-go-sdk's secrets client templates it.
        assert_eq!(
            Service::Secrets
                .default_endpoint("ap-sydney-1")
                .unwrap()
                .as_str(),
            "https://secrets.vaults.ap-sydney-1.oci.oraclecloud.com/"
        );
        let e = Service::Registry
            .default_endpoint("xx-nowhere-1")
            .unwrap_err();
        assert!(e.to_string().contains("xx-nowhere-1"));
    }

    #[test]
    fn endpoint_overrides_from_env() {
        let key = rsa::RsaPrivateKey::from_components(
            rsa::BigUint::from(3233u32),
            rsa::BigUint::from(17u32),
            rsa::BigUint::from(2753u32),
            vec![rsa::BigUint::from(61u32), rsa::BigUint::from(53u32)],
        )
        .unwrap();
        let c = OciClient::new(Signer::new("k", key), "ap-sydney-1")
            .unwrap()
            .with_endpoint_overrides(|k| {
                (k == "CALOPS_ENDPOINT_OBJECTSTORAGE").then(|| "http://127.0.0.1:9/".to_string())
            })
            .unwrap();
        assert_eq!(
            c.url(Service::ObjectStorage, "/n/").unwrap().as_str(),
            "http://127.0.0.1:9/n/"
        );
        assert_eq!(
            c.endpoint(Service::LoadBalancer).unwrap().as_str(),
            "https://iaas.ap-sydney-1.oraclecloud.com/"
        );
        let e = c
            .with_endpoint_overrides(|k| (k == "CALOPS_ENDPOINT_REGISTRY").then(|| "nope".into()))
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("$CALOPS_ENDPOINT_REGISTRY is `nope`"),
            "{e}"
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(250),
            max_total: Duration::from_secs(1),
        };
        assert_eq!(p.backoff(1, 1.0), Duration::from_millis(100));
        assert_eq!(p.backoff(2, 1.0), Duration::from_millis(200));
        assert_eq!(p.backoff(3, 1.0), Duration::from_millis(250));
        assert_eq!(p.backoff(3, 0.0), Duration::ZERO);
        assert_eq!(p.backoff(2, 0.5), Duration::from_millis(100));
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("0.5", now),
            Some(Duration::from_millis(500))
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("soon", now), None);
        assert!(is_retryable_status(StatusCode::SERVICE_UNAVAILABLE));
        assert!(is_retryable_status(StatusCode::TOO_MANY_REQUESTS));
        assert!(!is_retryable_status(StatusCode::NOT_IMPLEMENTED));
        assert!(!is_retryable_status(StatusCode::CONFLICT));
    }

    #[test]
    fn encoding() {
        assert_eq!(
            encode_path_segment("reports/2025 résumé €.ics"),
            "reports%2F2025%20r%C3%A9sum%C3%A9%20%E2%82%AC.ics"
        );
        assert_eq!(query(&[("a", Some("x y:z")), ("b", None)]), "?a=x+y%3Az");
        assert_eq!(query(&[("b", None)]), "");
    }

    #[test]
    fn unauthorized_explains_clock() {
        let resp = OciResponse {
            method: Method::GET,
            url: Url::parse("https://h/n/").unwrap(),
            status: StatusCode::UNAUTHORIZED,
            headers: {
                let mut h = HeaderMap::new();
                h.insert("date", HeaderValue::from_static("Thu, 01 Jan 1970 00:10:00 GMT"));
                h.insert("opc-request-id", HeaderValue::from_static("REQ1"));
                h
            },
            body: Bytes::from_static(br#"{"code":"NotAuthenticated","message":"The required information to complete authentication was not provided or was incorrect."}"#),
            attempts: 1,
        };
        let e = api_error(&resp, SystemTime::UNIX_EPOCH);
        assert_eq!(e.clock_offset_secs, Some(600));
        let msg = e.to_string();
        assert!(msg.contains("HTTP 401 NotAuthenticated"), "{msg}");
        assert!(msg.contains("opc-request-id: REQ1"), "{msg}");
        assert!(msg.contains("600s behind"), "{msg}");
        assert!(msg.contains("fingerprint"), "{msg}");
    }
}
