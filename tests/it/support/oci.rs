//! The stand-in OCI of the tests: an HTTP server on 127.0.0.1 that verifies every request's
//! signature as OCI does (its own implementation of the scheme, not calops') and serves
//! OCI-shaped JSON for the calls calops makes: Object Storage, the registry token, load
//! balancer health, container instances, work requests, Vault's GetSecretBundle, and
//! Monitoring's PostMetricData, and SummarizeMetricsData and ListAlarmsStatus answered from
//! what was posted (`support::monitoring`). It also
//! takes resource principal session tokens (`ST$<token>` keyIds) it knows, and refuses ones it
//! treats as expired (see [`Tokens`]).
//!
//! Also here: the OCI signing vectors made with Oracle's Python SDK, and their key.

use crate::support::ocistand::{self, decode, incoming, json_reply, oci_error, reply, Signatures};
use base64::Engine as _;
use bytes::Bytes;
use md5::Md5;
use reqwest::header::HeaderValue;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{json, Value};
use sha2::Digest;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use url::Url;

/// The signing vectors made with Oracle's Python SDK, vendored with their README (origin and
/// format) so that a clone passes with nothing beside it.
pub const VECTORS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/oci/signing-vectors.json"
);

pub fn vectors_path() -> String {
    VECTORS.to_string()
}

pub fn vectors() -> Value {
    let path = vectors_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the OCI signing vectors are required at {path} ({e}); they are \
             vendored from Oracle's Python SDK (see tests/fixtures/oci/README.md)"
        )
    });
    serde_json::from_str(&text).expect("oci-signing-vectors.json is not valid JSON")
}

pub fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str()
        .unwrap_or_else(|| panic!("vector field `{k}` missing"))
}

pub fn shared_key(v: &Value) -> RsaPrivateKey {
    RsaPrivateKey::from_pkcs1_pem(s(&v["credentials"], "private_key_pkcs1_pem")).unwrap()
}

/// A resource principal session token (JWT-shaped) that expires at `exp` (unix seconds); `id`
/// makes tokens with the same expiry differ. Its signature part is not checked by anyone here.
pub fn session_token(exp: u64, id: &str) -> String {
    let b = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.c2lnbmF0dXJl",
        b(json!({"alg": "RS256", "typ": "JWT", "kid": "asw"})),
        b(
            json!({"exp": exp, "jti": id, "res_type": "computecontainerinstance",
            "res_tenant": "ocid1.tenancy.oc1..test", "res_compartment": "ocid1.compartment.oc1..test"})
        )
    )
}

/// Unix seconds `secs` from now.
pub fn unix_in(secs: u64) -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + secs
}

pub type Scripted = (u16, Vec<(String, String)>, String);

#[derive(Default)]
pub struct Store {
    pub buckets: BTreeMap<String, Value>,
    pub objects: BTreeMap<(String, String), (Bytes, String, String)>,
    pub etag_counter: u64,
    pub hits: HashMap<String, u32>,
    pub scripted: HashMap<String, VecDeque<Scripted>>,
    pub work_polls: HashMap<String, u32>,
    /// Seconds added to the Date header of 401 answers.
    pub skew_401: i64,
    /// Store the next PUT, then answer 503 as if the answer had been lost.
    pub lose_next_put_answer: bool,
    /// PUTs of object names starting with this are refused as OCI refuses a principal its
    /// policy does not cover (404 NotAuthorizedOrNotFound, not retried).
    pub refuse_puts_under: Option<String>,
    pub failures: Vec<String>,
    /// Objects of a bucket that was never created are refused as OCI does (404
    /// BucketNotFound) instead of kept.
    pub strict_buckets: bool,
    /// Vault secrets by OCID: what GetSecretBundle returns.
    pub secrets: BTreeMap<String, String>,
    /// What Monitoring's PostMetricData does (accept, fail, hang).
    pub monitoring_fault: crate::support::monitoring::Fault,
    /// Accepted PostMetricData bodies.
    pub metric_posts: Vec<Value>,
    /// Why PostMetricData bodies were refused (400).
    pub metric_rejections: Vec<String>,
    /// Accepted SubmitRawEmail calls: their `compartment-id`, `sender`, `recipients` and
    /// `content-type` headers (by name) and the raw message.
    pub raw_emails: Vec<(BTreeMap<String, String>, Bytes)>,
    /// The alarms Monitoring has (a test puts the rendered ones here), and their compartment.
    pub alarms: Vec<crate::support::monitoring::Alarm>,
    pub alarms_compartment: String,
    /// The queries SummarizeMetricsData answered.
    pub metric_queries: Vec<String>,
    /// Who signed each accepted request, by path ([`Signer`]).
    pub signed_by: Vec<(String, Signer)>,
}

/// Who signed an accepted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    /// A fixed key id (an API key).
    ApiKey,
    /// `ST$<token>` of a resource principal ([`Tokens::valid`]).
    ResourcePrincipal,
    /// `ST$<token>` an instance principal got from the auth stand-in, signed with its session
    /// key ([`Tokens::session_keys`]).
    InstancePrincipal,
}

impl Store {
    /// Who signed the accepted requests to `path`.
    pub fn signers(&self, path: &str) -> Vec<Signer> {
        self.signed_by
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, s)| *s)
            .collect()
    }
}

/// Who signed a request that [`verify`] accepted, from its keyId.
fn signer_of(oci: &Oci, headers: &axum::http::HeaderMap) -> Signer {
    let key_id = ocistand::header(headers, "authorization")
        .and_then(|a| ocistand::param(&a, "keyId"))
        .unwrap_or_default();
    match key_id.strip_prefix("ST$") {
        Some(t) if oci.tokens.lock().unwrap().session_keys.contains_key(t) => {
            Signer::InstancePrincipal
        }
        Some(_) => Signer::ResourcePrincipal,
        None => Signer::ApiKey,
    }
}

/// What the platform does when a token is refused: put the renewed one where it is read.
pub type Renew = Box<dyn Fn(&str) + Send + Sync>;

/// Resource principal session tokens (`ST$<token>` keyIds), beside the fixed `key_ids`.
#[derive(Default)]
pub struct Tokens {
    /// Accepted.
    pub valid: BTreeSet<String>,
    /// Refused with a 401, as OCI refuses an expired token; each refusal runs `on_expired`
    /// first (the platform writing the renewed token where the container reads it).
    pub expired: BTreeSet<String>,
    pub on_expired: Option<Renew>,
    /// Instance principal tokens (from `support::imds`): accepted when signed with the session
    /// key each was issued for.
    pub session_keys: HashMap<String, RsaPublicKey>,
}

/// Why [`verify`] refused an expired session token.
pub const EXPIRED_TOKEN: &str = "expired session token";

pub struct Oci {
    pub base: Url,
    pub signatures: Signatures,
    pub store: Mutex<Store>,
    pub tokens: Mutex<Tokens>,
}

impl Oci {
    pub fn new(base: Url, public: RsaPublicKey, key_ids: Vec<String>) -> Oci {
        let host = format!("{}:{}", base.host_str().unwrap(), base.port().unwrap());
        Oci {
            base,
            signatures: Signatures {
                public,
                key_ids,
                host: Some(host),
            },
            store: Mutex::new(Store::default()),
            tokens: Mutex::new(Tokens::default()),
        }
    }

    /// Serve on 127.0.0.1 (a free port) until the returned task is dropped or aborted.
    pub async fn start(
        public: RsaPublicKey,
        key_ids: Vec<String>,
    ) -> (Arc<Oci>, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = Url::parse(&format!("http://{addr}")).unwrap();
        let oci = Arc::new(Oci::new(base, public, key_ids));
        let app = axum::Router::new().fallback(handle).with_state(oci.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        (oci, server)
    }

    pub fn hits(&self, path: &str) -> u32 {
        self.store
            .lock()
            .unwrap()
            .hits
            .get(path)
            .copied()
            .unwrap_or(0)
    }
    pub fn script(&self, path: &str, answers: Vec<Scripted>) {
        self.store
            .lock()
            .unwrap()
            .scripted
            .insert(path.to_string(), answers.into());
    }
}

/// Verify the request's signature as OCI would ([`Signatures::verify`]), taking the session
/// tokens of [`Tokens`] as key ids too. Returns why it is not acceptable.
pub fn verify(
    oci: &Oci,
    method: &str,
    path_and_query: &str,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<(), String> {
    let tokens = |key_id: &str| {
        let tokens = oci.tokens.lock().unwrap();
        match key_id.strip_prefix("ST$") {
            Some(t) if tokens.valid.contains(t) => Ok(None),
            Some(t) if tokens.expired.contains(t) => {
                if let Some(renew) = &tokens.on_expired {
                    renew(t);
                }
                Err(EXPIRED_TOKEN.to_string())
            }
            Some(t) if tokens.session_keys.contains_key(t) => {
                Ok(Some(tokens.session_keys[t].clone()))
            }
            _ => Err(format!("unknown keyId {key_id}")),
        }
    };
    oci.signatures
        .verify_with(method, path_and_query, headers, body, &tokens)
}

/// Monitoring's PostMetricData: a well-formed body is kept; a fault answers 500 or never.
async fn post_metric_data(oci: &Oci, body: &[u8]) -> axum::response::Response {
    use crate::support::monitoring::{check_post, Fault};
    let fault = oci.store.lock().unwrap().monitoring_fault;
    match fault {
        Fault::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            oci_error(504, "GatewayTimeout", "never")
        }
        Fault::Fail => oci_error(500, "InternalServerError", "Internal server error"),
        Fault::None => match check_post(body, SystemTime::now()) {
            Ok(_) => {
                let v: Value = serde_json::from_slice(body).unwrap();
                oci.store.lock().unwrap().metric_posts.push(v);
                json_reply(200, json!({"failedMetricsCount": 0, "failedMetrics": []}))
            }
            Err(why) => {
                oci.store
                    .lock()
                    .unwrap()
                    .metric_rejections
                    .push(why.clone());
                oci_error(400, "InvalidParameter", &why)
            }
        },
    }
}

/// SummarizeMetricsData (`SummarizeMetricsDataDetails`: namespace and query required, start
/// and end times RFC 3339, the query within the MQL subset) over the accepted posts.
fn summarize_metrics_data(
    oci: &Oci,
    q: &HashMap<String, String>,
    body: &[u8],
) -> axum::response::Response {
    use crate::support::monitoring::summarize;
    let Some(compartment) = q.get("compartmentId") else {
        return oci_error(400, "MissingParameter", "compartmentId is required");
    };
    let Ok(d) = serde_json::from_slice::<Value>(body) else {
        return oci_error(400, "InvalidParameter", "the body is not JSON");
    };
    let (Some(ns), Some(query)) = (d["namespace"].as_str(), d["query"].as_str()) else {
        return oci_error(400, "InvalidParameter", "namespace and query are required");
    };
    let time = |k: &str, default: SystemTime| match d.get(k).and_then(Value::as_str) {
        None => Ok(default),
        Some(t) => t
            .parse::<jiff::Timestamp>()
            .map(SystemTime::from)
            .map_err(|_| format!("{k} {t:?} is not RFC 3339")),
    };
    let now = SystemTime::now();
    let (start, end) = match (
        time("startTime", now - Duration::from_secs(3 * 3600)),
        time("endTime", now),
    ) {
        (Ok(s), Ok(e)) if s < e => (s, e),
        (Err(e), _) | (_, Err(e)) => return oci_error(400, "InvalidParameter", &e),
        _ => return oci_error(400, "InvalidParameter", "startTime must be before endTime"),
    };
    let sel = match crate::support::mql::parse_metric(query) {
        Ok(s) => s,
        Err(e) => return oci_error(400, "InvalidParameter", &format!("query: {e}")),
    };
    let mut st = oci.store.lock().unwrap();
    st.metric_queries.push(query.to_string());
    match summarize(&st.metric_posts, ns, compartment, &sel, start, end) {
        Ok(items) => json_reply(200, Value::Array(items)),
        Err(e) => oci_error(400, "InvalidParameter", &e),
    }
}

/// ListAlarmsStatus: the alarms of the compartment, each FIRING or OK by its query over the
/// accepted posts (`support::monitoring::fires`), two a page (`opc-next-page`).
fn list_alarms_status(oci: &Oci, q: &HashMap<String, String>) -> axum::response::Response {
    let Some(compartment) = q.get("compartmentId") else {
        return oci_error(400, "MissingParameter", "compartmentId is required");
    };
    let st = oci.store.lock().unwrap();
    let mut items = Vec::new();
    if *compartment == st.alarms_compartment {
        for (i, a) in st.alarms.iter().enumerate() {
            let firing = match crate::support::monitoring::fires(
                &st.metric_posts,
                compartment,
                a,
                SystemTime::now(),
            ) {
                Ok(f) => f,
                Err(e) => return oci_error(500, "InternalServerError", &e),
            };
            items.push(
                json!({"id": format!("ocid1.alarm.oc1..a{i}"), "displayName": a.display_name,
                "severity": a.severity, "ruleName": "BASE", "alarmSummary": a.summary,
                "timestampTriggered": "2026-01-01T00:00:00.000Z",
                "status": if firing { "FIRING" } else { "OK" }}),
            );
        }
    }
    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(0);
    let rest: Vec<Value> = items.into_iter().skip(page * 2).collect();
    let mut headers = vec![];
    if rest.len() > 2 {
        headers.push(("opc-next-page", (page + 1).to_string()));
    }
    ocistand::json_reply_with(
        200,
        Value::Array(rest.into_iter().take(2).collect()),
        &headers,
    )
}

pub async fn handle(
    axum::extract::State(oci): axum::extract::State<Arc<Oci>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let (method, path, pq, q, headers, body) = incoming(req).await;
    {
        let mut st = oci.store.lock().unwrap();
        *st.hits.entry(path.clone()).or_default() += 1;
    }
    if let Err(why) = verify(&oci, &method, &pq, &headers, &body) {
        let skew = oci.store.lock().unwrap().skew_401;
        let date = httpdate::fmt_http_date(if skew >= 0 {
            SystemTime::now() + Duration::from_secs(skew as u64)
        } else {
            SystemTime::now() - Duration::from_secs((-skew) as u64)
        });
        oci.store.lock().unwrap().failures.push(why.clone());
        return reply(
            401,
            &[
                ("content-type", "application/json".into()),
                ("date", date),
                ("opc-request-id", "srv-401".into()),
            ],
            json!({"code": "NotAuthenticated", "message": "The required information to complete authentication was not provided or was incorrect."}).to_string(),
        );
    }
    let signer = signer_of(&oci, &headers);
    oci.store
        .lock()
        .unwrap()
        .signed_by
        .push((path.clone(), signer));
    let scripted = oci
        .store
        .lock()
        .unwrap()
        .scripted
        .get_mut(&path)
        .and_then(|q| q.pop_front());
    if let Some((status, hs, text)) = scripted {
        let hs: Vec<(&str, String)> = hs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        return reply(status, &hs, text);
    }
    match (method.as_str(), path.as_str()) {
        ("POST", "/20180401/metrics") => return post_metric_data(&oci, &body).await,
        ("POST", "/20180401/metrics/actions/summarizeMetricsData") => {
            return summarize_metrics_data(&oci, &q, &body)
        }
        ("GET", "/20180401/alarms/status") => return list_alarms_status(&oci, &q),
        _ => {}
    }
    if (method.as_str(), path.as_str())
        == (
            "POST",
            calops::service::mail::transport::SUBMIT_RAW_EMAIL_PATH,
        )
    {
        let hs = ["compartment-id", "sender", "recipients", "content-type"]
            .into_iter()
            .filter_map(|n| ocistand::header(&headers, n).map(|v| (n.to_string(), v)))
            .collect();
        oci.store
            .lock()
            .unwrap()
            .raw_emails
            .push((hs, body.clone()));
        let id = uuid::Uuid::new_v4().to_string();
        return json_reply(
            200,
            json!({"messageId": id, "envelopeId": id, "suppressedRecipients": []}),
        );
    }
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let header = |n: &str| ocistand::header(&headers, n);
    let mut st = oci.store.lock().unwrap();
    match (method.as_str(), segs.as_slice()) {
        ("GET", ["n", ""]) => json_reply(200, json!("testns")),
        ("POST", ["n", "testns", "b", ""]) => {
            let d: Value = serde_json::from_slice(&body).unwrap();
            let name = d["name"].as_str().unwrap().to_string();
            if st.buckets.contains_key(&name) {
                return oci_error(
                    409,
                    "BucketAlreadyExists",
                    "Either the bucket already exists or you are not authorized to create it",
                );
            }
            let b = json!({"name": name, "namespace": "testns", "compartmentId": d["compartmentId"],
                "etag": "bucket-etag-1", "publicAccessType": d["publicAccessType"],
                "storageTier": d["storageTier"], "versioning": d["versioning"],
                "timeCreated": "2025-03-04T05:06:07.000Z", "objectEventsEnabled": false});
            st.buckets.insert(name, b.clone());
            json_reply(200, b)
        }
        ("GET", ["n", "testns", "b", bucket]) => match st.buckets.get(&decode(bucket)) {
            Some(b) => json_reply(200, b.clone()),
            None => oci_error(
                404,
                "BucketNotFound",
                "Either the bucket does not exist or you are not authorized to access it",
            ),
        },
        ("GET", ["n", "testns", "b", bucket, "o"]) => {
            let prefix = q.get("prefix").cloned().unwrap_or_default();
            let start = q.get("start").cloned().unwrap_or_default();
            let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(2);
            let names: Vec<(String, usize, String)> = st
                .objects
                .iter()
                .filter(|((b, n), _)| b == &decode(bucket) && n.starts_with(&prefix) && *n >= start)
                .map(|((_, n), (data, etag, _))| (n.clone(), data.len(), etag.clone()))
                .collect();
            let page: Vec<Value> = names
                .iter()
                .take(limit)
                .map(|(n, size, etag)| json!({"name": n, "size": size, "etag": etag, "timeCreated": "2025-03-04T05:06:07.000Z"}))
                .collect();
            let mut doc = json!({"objects": page, "prefixes": []});
            if let Some((next, _, _)) = names.get(limit) {
                doc["nextStartWith"] = json!(next);
            }
            json_reply(200, doc)
        }
        (_, ["n", "testns", "b", bucket, "o", ..])
            if st.strict_buckets && !st.buckets.contains_key(&decode(bucket)) =>
        {
            oci_error(
                404,
                "BucketNotFound",
                "Either the bucket does not exist or you are not authorized to access it",
            )
        }
        (m, ["n", "testns", "b", bucket, "o", name]) => {
            let key = (decode(bucket), decode(name));
            let existing = st.objects.get(&key).cloned();
            match m {
                "PUT" => {
                    if st
                        .refuse_puts_under
                        .as_deref()
                        .is_some_and(|p| key.1.starts_with(p))
                    {
                        return oci_error(
                            404,
                            "NotAuthorizedOrNotFound",
                            "Authorization failed or requested resource not found.",
                        );
                    }
                    if header("if-none-match").as_deref() == Some("*") && existing.is_some() {
                        return oci_error(
                            409,
                            "IfNoneMatchFailed",
                            "The If-None-Match header is '*' but there is an existing entity",
                        );
                    }
                    if let Some(want) = header("if-match") {
                        if existing.as_ref().map(|e| &e.1) != Some(&want) {
                            return oci_error(412, "NoEtagMatch", "The ETag specified in the request does not match the ETag of the resource");
                        }
                    }
                    if header("content-length").as_deref() != Some(&body.len().to_string()) {
                        return oci_error(
                            400,
                            "InvalidContentLength",
                            "content-length missing or wrong",
                        );
                    }
                    st.etag_counter += 1;
                    let etag = format!("etag-{}", st.etag_counter);
                    let ct = header("content-type").unwrap_or_default();
                    st.objects.insert(key, (body.clone(), etag.clone(), ct));
                    if std::mem::take(&mut st.lose_next_put_answer) {
                        return oci_error(503, "ServiceUnavailable", "answer lost");
                    }
                    reply(
                        200,
                        &[
                            ("etag", etag),
                            ("opc-content-md5", "md5==".into()),
                            ("opc-request-id", "put-req".into()),
                        ],
                        "",
                    )
                }
                "GET" | "HEAD" => match existing {
                    Some((data, etag, ct)) => {
                        let b = if m == "GET" {
                            data.clone()
                        } else {
                            Bytes::new()
                        };
                        let md5 =
                            base64::engine::general_purpose::STANDARD.encode(Md5::digest(&data));
                        let mut r = reply(
                            200,
                            &[
                                ("etag", etag),
                                ("content-type", ct),
                                ("opc-meta-origin", "test".into()),
                                ("content-md5", md5),
                            ],
                            b,
                        );
                        if m == "HEAD" {
                            r.headers_mut()
                                .insert("content-length", HeaderValue::from(data.len()));
                        }
                        r
                    }
                    None if m == "HEAD" => reply(404, &[("opc-request-id", "head-404".into())], ""),
                    None => oci_error(404, "ObjectNotFound", "The object was not found"),
                },
                "DELETE" => {
                    let Some((_, etag, _)) = existing else {
                        return oci_error(404, "ObjectNotFound", "The object was not found");
                    };
                    if let Some(want) = header("if-match") {
                        if want != etag {
                            return oci_error(412, "NoEtagMatch", "etag mismatch");
                        }
                    }
                    st.objects.remove(&key);
                    reply(204, &[], "")
                }
                _ => oci_error(405, "MethodNotAllowed", "no"),
            }
        }
        ("GET", ["20180419", "docker", "token"]) => json_reply(
            200,
            json!({"token": format!("registry-token-{}", q.get("scope").cloned().unwrap_or_default()), "expires_in": 300}),
        ),
        ("GET", ["20170115", "loadBalancers", lb, "backendSets", bs, "health"]) => {
            assert_eq!(decode(lb), "ocid1.loadbalancer.oc1.ap-sydney-1.lb1");
            json_reply(
                200,
                json!({"status": "WARNING", "warningStateBackendNames": ["10.0.0.6:8080"],
                "criticalStateBackendNames": [], "unknownStateBackendNames": [], "totalBackendCount": 2, "_bs": decode(bs)}),
            )
        }
        (
            "GET",
            ["20170115", "loadBalancers", _lb, "backendSets", _bs, "backends", backend, "health"],
        ) => json_reply(
            200,
            json!({"status": if decode(backend) == "10.0.0.5:8080" { "OK" } else { "CRITICAL" },
                "healthCheckResults": [{"subnetId": "ocid1.subnet.oc1..s", "sourceIpAddress": "10.0.1.2",
                "timestamp": "2025-03-04T05:06:07.000Z", "healthCheckStatus": "OK"}]}),
        ),
        ("GET", ["20210415", "containerInstances"]) => {
            let page = q.get("page").cloned();
            let item = |i: u32, state: &str| {
                json!({"id": format!("ocid1.computecontainerinstance.oc1..ci{i}"),
                "displayName": format!("calops-{i}"), "compartmentId": q["compartmentId"], "lifecycleState": state,
                "availabilityDomain": "Uocm:AP-SYDNEY-1-AD-1", "shape": "CI.Standard.A1.Flex", "containerCount": 1,
                "timeCreated": "2025-03-04T05:06:07.000Z"})
            };
            match page.as_deref() {
                None => reply(
                    200,
                    &[
                        ("content-type", "application/json".into()),
                        ("opc-next-page", "p2".into()),
                    ],
                    json!({"items": [item(1, "ACTIVE"), item(2, "CREATING")]}).to_string(),
                ),
                Some("p2") => json_reply(200, json!({"items": [item(3, "FAILED")]})),
                Some(other) => oci_error(400, "InvalidParameter", &format!("bad page {other}")),
            }
        }
        ("GET", ["20210415", "containerInstances", id]) => match *id {
            "ocid1.computecontainerinstance.oc1..ci1" => json_reply(
                200,
                json!({
                "id": id, "displayName": "calops-app", "compartmentId": "ocid1.compartment.oc1..c",
                "lifecycleState": "ACTIVE", "availabilityDomain": "Uocm:AP-SYDNEY-1-AD-1",
                "containers": [{"containerId": "ocid1.computecontainer.oc1..k1", "displayName": "app"}],
                "timeCreated": "2025-03-04T05:06:07.000Z"}),
            ),
            "ocid1.computecontainerinstance.oc1..malformed" => reply(
                200,
                &[
                    ("content-type", "application/json".into()),
                    ("opc-request-id", "bad-json-req".into()),
                ],
                "{\"id\": \"x\", \"lifecycleState\": ",
            ),
            _ => oci_error(
                404,
                "NotAuthorizedOrNotFound",
                "Authorization failed or requested resource not found.",
            ),
        },
        ("GET", ["20210415", "workRequests", id]) => {
            let n = {
                let c = st.work_polls.entry(id.to_string()).or_default();
                *c += 1;
                *c
            };
            let (status, pct) = match (*id, n) {
                ("wr-fail", _) => ("FAILED", 40.0),
                (_, 1) => ("ACCEPTED", 0.0),
                (_, 2) => ("IN_PROGRESS", 50.0),
                _ => ("SUCCEEDED", 100.0),
            };
            json_reply(
                200,
                json!({"id": id, "operationType": "CREATE_CONTAINER_INSTANCE", "status": status,
                "percentComplete": pct, "timeAccepted": "2025-03-04T05:06:07.000Z",
                "resources": [{"entityType": "containerInstance", "actionType": "CREATED", "identifier": "ocid1.computecontainerinstance.oc1..ci1"}]}),
            )
        }
        ("GET", ["20210415", "workRequests", _id, "errors"]) => json_reply(
            200,
            json!({"items": [
            {"code": "LimitExceeded", "message": "Service limit for CI cores exceeded", "timestamp": "2025-03-04T05:06:07.000Z"}]}),
        ),
        ("POST", ["20160918", "things"]) => json_reply(200, json!({"ok": true})),
        ("GET", ["20190301", "secretbundles", id]) => match st.secrets.get(&decode(id)) {
            Some(value) => json_reply(
                200,
                json!({"secretId": decode(id), "versionNumber": 1, "stages": ["CURRENT", "LATEST"],
                    "secretBundleContent": {"contentType": "BASE64",
                        "content": base64::engine::general_purpose::STANDARD.encode(value)}}),
            ),
            None => oci_error(
                404,
                "NotAuthorizedOrNotFound",
                "Authorization failed or requested resource not found.",
            ),
        },
        _ => oci_error(404, "NotFound", &format!("no route for {method} {path}")),
    }
}
