//! The OCI target end to end: the real `terraform` on a fixture stack made of `terraform_data`
//! (same `slots` input and outputs as the calops stack), a stand-in OCI server on 127.0.0.1 that
//! verifies request signatures and answers Object Storage (lock, ledger, state bucket), the
//! registry, Container Instances and Load Balancer backend health from what Terraform applied,
//! and a stand-in load balancer whose `/health` answers from whichever slot gets traffic.

use base64::Engine as _;
use bytes::Bytes;
use calops::deploy::ledger::{Ledger, Outcome, Release};
use calops::deploy::lock::DeployLock;
use calops::deploy::oci::bootstrap::ensure_state_bucket;
use calops::deploy::oci::stack::StackWriter;
use calops::deploy::oci::target::{ImageSource, OciTarget, OciTargetOptions};
use calops::deploy::ocistore::OciStore;
use calops::deploy::pipeline::{self, Options, RunResult};
use calops::deploy::slots::{Slot, SlotState, Slots};
use calops::deploy::steps::{Interrupt, StepError};
use calops::oci::client::{OciClient, RetryPolicy, Service};
use calops::oci::signer::Signer;
use calops::terraform::command::{EnvSnapshot, InitArgs};
use calops::terraform::PlanOptions;
use calops::ui::Ui;
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use url::Url;

const KEY_ID: &str = "ocid1.tenancy.oc1..t/ocid1.user.oc1..u/aa:bb";
const BUCKET: &str = "calops-state";
const LOCK: &str = "dev/deploy.lock";

fn image(n: u32) -> String {
    format!(
        "127.0.0.1/testns/calops@sha256:{}",
        &format!("{n:x}").repeat(64)[..64]
    )
}

fn digest(n: u32) -> String {
    image(n).split_once('@').unwrap().1.to_string()
}

// ---------------------------------------------------------------------------------------
// The stand-in OCI server
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct State {
    buckets: BTreeMap<String, Value>,
    objects: BTreeMap<(String, String), (Bytes, String)>,
    etags: u64,
    /// Manifests the registry has, by digest.
    manifests: BTreeSet<String>,
    /// Images whose containers never pass health checks.
    unhealthy: BTreeSet<String>,
    /// How often each container instance was asked for (it is CREATING for the first polls).
    instance_polls: HashMap<String, u32>,
    signature_failures: Vec<String>,
    /// Every answer of the load balancer's /health: (slot, image).
    lb_served: Vec<(String, String)>,
    lb_rr: usize,
    /// The last readable Terraform state (the local backend rewrites it in place).
    tfstate: Value,
}

struct Stand {
    public: RsaPublicKey,
    state_file: PathBuf,
    st: Mutex<State>,
}

impl Stand {
    fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.st.lock().unwrap()
    }

    /// `terraform_data` resources of the fixture stack: name -> (key -> input value).
    fn resources(&self, name: &str) -> BTreeMap<String, Value> {
        let mut st = self.st();
        if let Ok(text) = std::fs::read_to_string(&self.state_file) {
            if let Ok(v) = serde_json::from_str::<Value>(&text) {
                st.tfstate = v;
            }
        }
        let mut out = BTreeMap::new();
        for r in st.tfstate["resources"].as_array().into_iter().flatten() {
            if r["type"] != "terraform_data" || r["name"] != name {
                continue;
            }
            for i in r["instances"].as_array().into_iter().flatten() {
                let key = i["index_key"].as_str().unwrap_or_default().to_string();
                let a = &i["attributes"];
                let mut input = a["input"].clone();
                if input.get("value").is_some() && input.get("type").is_some() {
                    input = input["value"].clone();
                }
                input["id"] = a["id"].clone();
                out.insert(key, input);
            }
        }
        out
    }

    /// Backends taking traffic whose container is healthy: (slot, image).
    fn serving(&self) -> Vec<(String, String)> {
        let instances = self.resources("instance");
        let backends = self.resources("backend");
        let unhealthy = self.st().unhealthy.clone();
        backends
            .iter()
            .filter(|(_, b)| b["drain"] == false)
            .filter_map(|(slot, _)| {
                let img = instances.get(slot)?["image"].as_str()?.to_string();
                (!unhealthy.contains(&img)).then(|| (slot.clone(), img))
            })
            .collect()
    }
}

fn param(auth: &str, name: &str) -> Option<String> {
    let re = regex::Regex::new(&format!(r#"(?:^Signature |,){name}="([^"]*)""#)).unwrap();
    re.captures(auth).map(|c| c[1].to_string())
}

/// Check the request's signature as OCI does (signing string from the listed headers).
fn verify(
    stand: &Stand,
    method: &str,
    pq: &str,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<(), String> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or("no authorization header")?;
    // tenancy/user/fingerprint (the signature below proves the key).
    if param(auth, "keyId").is_none_or(|k| k.split('/').count() != 3) {
        return Err(format!("malformed keyId in {auth}"));
    }
    let names = param(auth, "headers").ok_or("no headers")?;
    let mut lines = Vec::new();
    for n in names.split(' ') {
        let v = if n == "(request-target)" {
            format!("{} {pq}", method.to_ascii_lowercase())
        } else {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .ok_or(format!("signed header {n} not sent"))?
                .to_string()
        };
        lines.push(format!("{n}: {v}"));
    }
    for required in ["(request-target)", "host"] {
        if !names.split(' ').any(|n| n == required) {
            return Err(format!("{required} is not signed"));
        }
    }
    if names.contains("x-content-sha256") {
        let want = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body));
        if headers["x-content-sha256"] != want.as_str() {
            return Err("x-content-sha256 does not match the body".into());
        }
    }
    let sig = base64::engine::general_purpose::STANDARD
        .decode(param(auth, "signature").ok_or("no signature")?)
        .map_err(|e| e.to_string())?;
    stand
        .public
        .verify(
            Pkcs1v15Sign::new::<Sha256>(),
            &Sha256::digest(lines.join("\n").as_bytes()),
            &sig,
        )
        .map_err(|_| "signature does not verify".to_string())
}

fn reply(
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

fn json_reply(status: u16, v: Value) -> axum::response::Response {
    reply(
        status,
        &[("content-type", "application/json".into())],
        v.to_string(),
    )
}

fn oci_error(status: u16, code: &str) -> axum::response::Response {
    json_reply(status, json!({"code": code, "message": code}))
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .unwrap()
        .to_string()
}

async fn handle(
    axum::extract::State(stand): axum::extract::State<Arc<Stand>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 24).await.unwrap();
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let q: HashMap<String, String> =
        url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let header = |n: &str| {
        parts
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    // The registry's distribution API takes the bearer token, not a signature.
    if let Some(rest) = path.strip_prefix("/v2/") {
        let Some((_, reference)) = rest.rsplit_once("/manifests/") else {
            return oci_error(404, "NotFound");
        };
        if header("authorization").as_deref() != Some("Bearer registry-token") {
            return reply(401, &[], "");
        }
        let found = stand.st().manifests.contains(reference);
        return reply(if found { 200 } else { 404 }, &[], "");
    }
    if let Err(why) = verify(&stand, &method, &pq, &parts.headers, &body) {
        stand.st().signature_failures.push(why);
        return oci_error(401, "NotAuthenticated");
    }
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segs.as_slice()) {
        ("GET", ["n", ""]) => json_reply(200, json!("testns")),
        ("POST", ["n", "testns", "b", ""]) => {
            let d: Value = serde_json::from_slice(&body).unwrap();
            let name = d["name"].as_str().unwrap().to_string();
            let mut st = stand.st();
            if st.buckets.contains_key(&name) {
                return oci_error(409, "BucketAlreadyExists");
            }
            let b = json!({"name": name, "namespace": "testns", "compartmentId": d["compartmentId"],
                "publicAccessType": d["publicAccessType"], "storageTier": d["storageTier"],
                "versioning": d["versioning"]});
            st.buckets.insert(name, b.clone());
            json_reply(200, b)
        }
        ("GET", ["n", "testns", "b", b]) => match stand.st().buckets.get(&decode(b)) {
            Some(b) => json_reply(200, b.clone()),
            None => oci_error(404, "BucketNotFound"),
        },
        ("GET", ["n", "testns", "b", b, "o"]) => {
            let prefix = q.get("prefix").cloned().unwrap_or_default();
            let objects: Vec<Value> = stand
                .st()
                .objects
                .iter()
                .filter(|((bk, n), _)| bk == &decode(b) && n.starts_with(&prefix))
                .map(|((_, n), (d, e))| json!({"name": n, "size": d.len(), "etag": e}))
                .collect();
            json_reply(200, json!({"objects": objects, "prefixes": []}))
        }
        (m, ["n", "testns", "b", b, "o", name @ ..]) => {
            let key = (decode(b), decode(&name.join("/")));
            let mut st = stand.st();
            if !st.buckets.contains_key(&key.0) {
                return oci_error(404, "BucketNotFound");
            }
            let existing = st.objects.get(&key).cloned();
            match m {
                "PUT" => {
                    if header("if-none-match").as_deref() == Some("*") && existing.is_some() {
                        return oci_error(409, "IfNoneMatchFailed");
                    }
                    if let Some(want) = header("if-match") {
                        if existing.as_ref().map(|e| &e.1) != Some(&want) {
                            return oci_error(412, "NoEtagMatch");
                        }
                    }
                    st.etags += 1;
                    let etag = format!("etag-{}", st.etags);
                    st.objects.insert(key, (body.clone(), etag.clone()));
                    reply(200, &[("etag", etag)], "")
                }
                "GET" | "HEAD" => match existing {
                    Some((data, etag)) => reply(
                        200,
                        &[("etag", etag), ("content-type", "application/json".into())],
                        if m == "GET" { data } else { Bytes::new() },
                    ),
                    None => oci_error(404, "ObjectNotFound"),
                },
                "DELETE" => match existing {
                    None => oci_error(404, "ObjectNotFound"),
                    Some((_, etag)) => {
                        if header("if-match").is_some_and(|w| w != etag) {
                            return oci_error(412, "NoEtagMatch");
                        }
                        st.objects.remove(&key);
                        reply(204, &[], "")
                    }
                },
                _ => oci_error(405, "MethodNotAllowed"),
            }
        }
        ("GET", ["20180419", "docker", "token"]) => {
            json_reply(200, json!({"token": "registry-token", "expires_in": 300}))
        }
        ("GET", ["20210415", "containerInstances", id]) => {
            let id = decode(id);
            let instances = stand.resources("instance");
            let Some((slot, inst)) = instances.iter().find(|(_, i)| {
                Some(id.as_str())
                    == i["id"]
                        .as_str()
                        .map(|x| format!("ocid1.computecontainerinstance.oc1..{x}"))
                        .as_deref()
            }) else {
                return oci_error(404, "NotAuthorizedOrNotFound");
            };
            let polls = {
                let mut st = stand.st();
                let c = st.instance_polls.entry(id.clone()).or_default();
                *c += 1;
                *c
            };
            json_reply(
                200,
                json!({"id": id, "displayName": format!("calops-{slot}"), "compartmentId": "ocid1.compartment.oc1..c",
                    "lifecycleState": if polls <= 1 { "CREATING" } else { "ACTIVE" },
                    "containers": [{"containerId": "ocid1.computecontainer.oc1..k", "displayName": "app"}],
                    "_image": inst["image"]}),
            )
        }
        (
            "GET",
            ["20170115", "loadBalancers", lb, "backendSets", "app", "backends", be, "health"],
        ) => {
            assert_eq!(decode(lb), "ocid1.loadbalancer.oc1..fixture");
            let be = decode(be);
            let instances = stand.resources("instance");
            let backends = stand.resources("backend");
            let Some((slot, _)) = backends
                .iter()
                .find(|(_, b)| format!("{}:8080", b["ip"].as_str().unwrap_or("")) == be)
            else {
                return oci_error(404, "BackendNotFound");
            };
            let img = instances[slot]["image"].as_str().unwrap_or("").to_string();
            let ok = !stand.st().unhealthy.contains(&img);
            json_reply(
                200,
                json!({"status": if ok { "OK" } else { "CRITICAL" },
                    "healthCheckResults": [{"healthCheckStatus": if ok { "OK" } else { "CONNECT_FAILED" }}]}),
            )
        }
        _ => oci_error(404, "NotFound"),
    }
}

/// The stand-in load balancer: `/health` round-robins over the backends taking traffic.
async fn lb_health(
    axum::extract::State(stand): axum::extract::State<Arc<Stand>>,
) -> axum::response::Response {
    let serving = stand.serving();
    let mut st = stand.st();
    if serving.is_empty() {
        return json_reply(503, json!({"status": "down"}));
    }
    st.lb_rr += 1;
    let (slot, img) = serving[st.lb_rr % serving.len()].clone();
    st.lb_served.push((slot.clone(), img.clone()));
    json_reply(
        200,
        json!({"status": "ok", "version": "0.1.0", "image": img, "slot": slot}),
    )
}

// ---------------------------------------------------------------------------------------
// The world: servers, the fixture stack, targets
// ---------------------------------------------------------------------------------------

/// Writes the fixture stack with the slots (and records every `slots` input it was given).
struct FixtureStack {
    lb_url: String,
    database_shape: Arc<Mutex<String>>,
}

impl StackWriter for FixtureStack {
    fn write(&self, dir: &Path, slots: &Slots) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/terraform/ocislots/main.tf"),
            dir.join("main.tf"),
        )?;
        let vars = json!({"slots": slots, "lb_url": self.lb_url,
            "database_shape": *self.database_shape.lock().unwrap()});
        std::fs::write(dir.join("terraform.tfvars.json"), vars.to_string())?;
        Ok(())
    }
}

struct World {
    stand: Arc<Stand>,
    client: Arc<OciClient>,
    lb_url: String,
    tmp: tempfile::TempDir,
    database_shape: Arc<Mutex<String>>,
}

async fn serve(app: axum::Router) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    format!("http://{addr}")
}

fn key() -> RsaPrivateKey {
    static KEY: std::sync::OnceLock<RsaPrivateKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap())
        .clone()
}

async fn world(test: &str) -> Option<World> {
    calops_testkit::require_tool(test, "terraform")?;
    let tmp = tempfile::tempdir().unwrap();
    let key = key();
    let stand = Arc::new(Stand {
        public: key.to_public_key(),
        state_file: tmp.path().join("state/terraform.tfstate"),
        st: Mutex::new(State::default()),
    });
    std::fs::create_dir_all(tmp.path().join("state")).unwrap();
    let base = serve(
        axum::Router::new()
            .fallback(handle)
            .with_state(stand.clone()),
    )
    .await;
    let lb_url = serve(
        axum::Router::new()
            .route("/health", axum::routing::get(lb_health))
            .with_state(stand.clone()),
    )
    .await;
    let base = Url::parse(&base).unwrap();
    let mut client = OciClient::new(Signer::new(KEY_ID, key), "ap-sydney-1")
        .unwrap()
        .with_retry_policy(RetryPolicy::none());
    for svc in Service::ALL {
        client = client.with_endpoint(svc, base.clone());
    }
    let client = Arc::new(client);
    {
        let mut st = stand.st();
        for n in 1..=4 {
            st.manifests.insert(digest(n));
        }
    }
    // State bootstrap: the namespace is looked up, the bucket created private and versioned.
    let loc = ensure_state_bucket(&client, None, BUCKET, "ocid1.compartment.oc1..c")
        .await
        .unwrap();
    assert_eq!((loc.namespace.as_str(), loc.created), ("testns", true));
    {
        let st = stand.st();
        let b = &st.buckets[BUCKET];
        assert_eq!(b["publicAccessType"], "NoPublicAccess");
        assert_eq!(b["versioning"], "Enabled");
    }
    let again = ensure_state_bucket(&client, Some("testns"), BUCKET, "c")
        .await
        .unwrap();
    assert!(!again.created);
    Some(World {
        stand,
        client,
        lb_url,
        tmp,
        database_shape: Arc::new(Mutex::new("PostgreSQL.VM.Standard.E5.Flex".into())),
    })
}

impl World {
    fn target(&self, workdir: &str, img: &str, keep_previous: bool) -> OciTarget {
        let tmp = self.tmp.path();
        let mut opts =
            OciTargetOptions::new(tmp.join(workdir), ImageSource::Pinned(img.to_string()));
        opts.plan = PlanOptions {
            log: Some(tmp.join("logs/terraform.log")),
            env: Some(EnvSnapshot {
                cache_dir: Some(tmp.join("cache")),
                home_dir: Some(tmp.to_path_buf()),
                cli_config_file: Some("/dev/null".into()),
                ..EnvSnapshot::default()
            }),
            init: InitArgs {
                backend_config: vec![("path".into(), self.stand.state_file.display().to_string())],
                ..InitArgs::default()
            },
            ..PlanOptions::default()
        };
        opts.plan.guard.protect(&[
            "terraform_data.database".into(),
            "terraform_data.cache".into(),
            "terraform_data.bucket".into(),
        ]);
        opts.keep_previous = keep_previous;
        opts.health_timeout = Duration::from_secs(4);
        opts.poll_interval = Duration::from_millis(100);
        opts.settle_checks = 4;
        opts.drain_wait = Duration::from_millis(200);
        let stack = FixtureStack {
            lb_url: self.lb_url.clone(),
            database_shape: self.database_shape.clone(),
        };
        OciTarget::new(self.client.clone(), Arc::new(stack), opts, Ui::silent())
    }

    fn store(&self) -> OciStore {
        OciStore::new(self.client.clone(), "testns", BUCKET)
    }

    async fn run(
        &self,
        t: &mut OciTarget,
        rollback_to: Option<&Release>,
        interrupt: Interrupt,
    ) -> anyhow::Result<RunResult> {
        self.run_leased(t, rollback_to, interrupt, Duration::from_secs(3))
            .await
    }

    async fn run_leased(
        &self,
        t: &mut OciTarget,
        rollback_to: Option<&Release>,
        interrupt: Interrupt,
        lease: Duration,
    ) -> anyhow::Result<RunResult> {
        let opts = Options {
            auto_rollback: true,
            message: "test deploy".into(),
            lock_lease: lease,
            profile_hash: "p".into(),
        };
        pipeline::run(
            t,
            self.store(),
            LOCK,
            "dev/",
            &opts,
            rollback_to,
            &Ui::silent(),
            interrupt,
        )
        .await
    }

    async fn deploy(
        &self,
        img: &str,
        keep_previous: bool,
    ) -> (anyhow::Result<RunResult>, OciTarget) {
        let mut t = self.target("work", img, keep_previous);
        let r = self.run(&mut t, None, Interrupt::default()).await;
        (r, t)
    }

    async fn releases(&self) -> Vec<Release> {
        Ledger::new(self.store(), "dev/").list().await.unwrap()
    }

    fn lock_held(&self) -> bool {
        self.stand
            .st()
            .objects
            .contains_key(&(BUCKET.to_string(), LOCK.to_string()))
    }

    /// What the load balancer's /health says now.
    async fn lb(&self) -> (u16, Value) {
        let r = reqwest::get(format!("{}/health", self.lb_url))
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or_default())
    }

    /// The slots Terraform's state holds now: slot -> (image, state).
    fn live(&self) -> BTreeMap<String, (String, &'static str)> {
        let instances = self.stand.resources("instance");
        self.stand
            .resources("backend")
            .iter()
            .map(|(slot, b)| {
                (
                    slot.clone(),
                    (
                        instances[slot]["image"].as_str().unwrap().to_string(),
                        if b["drain"] == true {
                            "draining"
                        } else {
                            "active"
                        },
                    ),
                )
            })
            .collect()
    }

    fn instance_id(&self, slot: &str) -> String {
        self.stand.resources("instance")[slot]["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn no_signature_failures(&self) {
        let st = self.stand.st();
        assert!(
            st.signature_failures.is_empty(),
            "{:?}",
            st.signature_failures
        );
    }
}

fn slots(blue: Option<(u32, SlotState)>, green: Option<(u32, SlotState)>) -> Slots {
    let mut s = Slots::default();
    for (name, v) in [("blue", blue), ("green", green)] {
        if let Some((n, state)) = v {
            s.0.insert(
                name.into(),
                Slot {
                    image: Some(image(n)),
                    state,
                },
            );
        }
    }
    s
}

/// The phases a target applied (skipping ones that changed nothing), with their slots.
fn applied(t: &OciTarget) -> Vec<(String, Slots)> {
    t.history()
        .into_iter()
        .filter(|h| h.changed)
        .map(|h| (h.phase, h.slots))
        .collect()
}

fn live(pairs: &[(&str, u32, &'static str)]) -> BTreeMap<String, (String, &'static str)> {
    pairs
        .iter()
        .map(|(s, n, st)| (s.to_string(), (image(*n), *st)))
        .collect()
}

use SlotState::{Active, Draining};

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

/// First deploy, a blue/green deploy keeping the previous release drained, an unchanged
/// re-deploy, rollback by a load balancer flip, a deploy that removes the old slot, a rollback
/// that redeploys from the registry, and one refused because the registry lost the image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_sequence_flip_rollback_and_registry_redeploy() {
    let Some(w) = world("blue_green_sequence_flip_rollback_and_registry_redeploy").await else {
        return;
    };
    // 1. First deploy: one phase, blue active.
    let (r, t) = w.deploy(&image(1), true).await;
    let r = r.unwrap();
    assert_eq!(r.result, "deployed");
    // The infrastructure first (no slots), then the slot.
    assert_eq!(
        applied(&t),
        vec![
            ("provision".into(), Slots::default()),
            ("stage".into(), slots(Some((1, Active)), None))
        ]
    );
    assert_eq!(w.live(), live(&[("blue", 1, "active")]));
    assert_eq!(w.lb().await.1["image"], image(1));
    let rel1 = r.release.unwrap();
    assert_eq!(rel1.details["slot"], "blue");
    assert_eq!(rel1.details["inputs"]["image"], image(1));

    // 2. Blue/green: green gets the new image beside blue (only that slot and its backend
    // change), then blue drains and stays for instant rollback.
    let blue_id = w.instance_id("blue");
    w.stand.st().lb_served.clear();
    let (r, t) = w.deploy(&image(2), true).await;
    let r = r.unwrap();
    assert_eq!(r.result, "deployed");
    // Step timings on the terraform_data stack (printed for the record, never asserted).
    for s in &r.release.as_ref().unwrap().steps {
        eprintln!(
            "blue/green step {:<10} {:>6} ms {}",
            s.name, s.millis, s.status
        );
    }
    assert_eq!(
        applied(&t),
        vec![
            ("stage".into(), slots(Some((1, Active)), Some((2, Active)))),
            (
                "drain".into(),
                slots(Some((1, Draining)), Some((2, Active)))
            ),
        ]
    );
    assert_eq!(
        w.instance_id("blue"),
        blue_id,
        "the old slot's instance is untouched"
    );
    assert_eq!(
        w.live(),
        live(&[("blue", 1, "draining"), ("green", 2, "active")])
    );
    // After the drain the verification saw only the new release.
    let served = w.stand.st().lb_served.clone();
    assert_eq!(served.last().unwrap().1, image(2));
    assert!(served.len() >= 5, "verify + 4 settle checks: {served:?}");
    assert!(served[served.len() - 4..].iter().all(|(s, _)| s == "green"));

    // 3. The same image again: nothing to do, Terraform applies nothing.
    let (r, t) = w.deploy(&image(2), true).await;
    assert_eq!(r.unwrap().result, "unchanged");
    assert!(applied(&t).is_empty());

    // 4. Rollback to release 1: it still runs in blue, so the load balancer flips.
    let green_id = w.instance_id("green");
    let mut t = w.target("work", &image(2), true);
    let r = w
        .run(&mut t, Some(&rel1), Interrupt::default())
        .await
        .unwrap();
    assert_eq!(r.result, "deployed");
    assert_eq!(
        applied(&t),
        vec![("flip".into(), slots(Some((1, Active)), Some((2, Draining))))]
    );
    assert_eq!(
        (w.instance_id("blue"), w.instance_id("green")),
        (blue_id.clone(), green_id),
        "a flip replaces no instance"
    );
    assert_eq!(w.lb().await.1["image"], image(1));
    let rb = r.release.unwrap();
    assert_eq!(
        (rb.restores, rb.artifact_digest.as_str()),
        (Some(1), digest(1).as_str())
    );

    // 5. A deploy that does not keep the previous release: green (draining) is reused for
    // image 3, blue drains and is removed.
    let (r, t) = w.deploy(&image(3), false).await;
    assert_eq!(r.unwrap().result, "deployed");
    assert_eq!(
        applied(&t),
        vec![
            ("stage".into(), slots(Some((1, Active)), Some((3, Active)))),
            (
                "drain".into(),
                slots(Some((1, Draining)), Some((3, Active)))
            ),
            ("retire".into(), slots(None, Some((3, Active)))),
        ]
    );
    assert_eq!(w.live(), live(&[("green", 3, "active")]));

    // 6. Rollback to release 2: no slot runs it, the registry has it: redeployed into blue.
    let rel2 = w.releases().await.into_iter().find(|r| r.seq == 2).unwrap();
    let mut t = w.target("work", &image(3), false);
    let r = w
        .run(&mut t, Some(&rel2), Interrupt::default())
        .await
        .unwrap();
    assert_eq!(r.result, "deployed");
    assert_eq!(
        applied(&t),
        vec![
            ("stage".into(), slots(Some((2, Active)), Some((3, Active)))),
            (
                "drain".into(),
                slots(Some((2, Active)), Some((3, Draining)))
            ),
            ("retire".into(), slots(Some((2, Active)), None)),
        ]
    );
    assert_eq!(w.lb().await.1["image"], image(2));

    // 7. The registry lost image 3's manifest: rolling back to it is refused, nothing changes.
    w.stand.st().manifests.remove(&digest(3));
    // Releases: 1 (image 1), 2 (image 2), 3 (rollback to 1), 4 (image 3), 5 (rollback to 2).
    let rel4 = w.releases().await.into_iter().find(|r| r.seq == 4).unwrap();
    assert_eq!(rel4.artifact_digest, digest(3));
    let mut t = w.target("work", &image(2), false);
    let e = w
        .run(&mut t, Some(&rel4), Interrupt::default())
        .await
        .unwrap_err();
    assert!(format!("{e:#}").contains("no longer exists"), "{e:#}");
    assert!(applied(&t).is_empty());
    // And a deploy of an image the registry does not have stops at build.
    let (r, t) = w.deploy(&image(3), false).await;
    assert!(format!("{:#}", r.unwrap_err()).contains("registry has no image"));
    assert!(t.history().is_empty());

    assert_eq!(w.live(), live(&[("blue", 2, "active")]));
    assert!(!w.lock_held());
    let outcomes: Vec<Outcome> = w.releases().await.iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes, vec![Outcome::Succeeded; 5]);
    w.no_signature_failures();
}

/// A new slot that never gets healthy: the deploy waits, says what is pending, and takes the
/// slot away; the load balancer never sends a request to it. A plan that would replace the
/// database stops before apply and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unhealthy_slot_rolled_back_and_plan_guard() {
    let Some(w) = world("unhealthy_slot_rolled_back_and_plan_guard").await else {
        return;
    };
    let (r, _) = w.deploy(&image(1), true).await;
    r.unwrap();
    w.stand.st().unhealthy.insert(image(2));
    w.stand.st().lb_served.clear();
    // A client keeps calling the service through the load balancer during the deploy.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (stop, url) = (stop.clone(), format!("{}/health", w.lb_url));
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                statuses.push(reqwest::get(&url).await.unwrap().status().as_u16());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            statuses
        })
    };
    let (r, t) = w.deploy(&image(2), true).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let statuses = poller.await.unwrap();
    assert!(
        statuses.len() > 10 && statuses.iter().all(|s| *s == 200),
        "{statuses:?}"
    );
    let e = r.unwrap_err();
    let doc = &e.downcast_ref::<calops::error::ExitWithDoc>().unwrap().doc;
    assert_eq!(doc["result"], "rolled_back");
    let failure = doc["release"]["failure"].as_str().unwrap();
    assert!(
        failure.contains("container instance green is CREATING")
            && failure.contains("slot green did not serve")
            && failure.contains("CRITICAL (checks: CONNECT_FAILED)"),
        "{failure}"
    );
    assert_eq!(
        applied(&t),
        vec![
            ("stage".into(), slots(Some((1, Active)), Some((2, Active)))),
            ("abort".into(), slots(Some((1, Active)), None)),
        ]
    );
    let served = w.stand.st().lb_served.clone();
    assert!(!served.is_empty());
    assert!(
        served.iter().all(|(s, i)| s == "blue" && *i == image(1)),
        "{served:?}"
    );
    assert_eq!(w.live(), live(&[("blue", 1, "active")]));
    assert_eq!(w.lb().await.1["image"], image(1));
    assert!(!w.lock_held());
    let last = w.releases().await.pop().unwrap();
    assert_eq!(last.outcome, Outcome::RolledBack);

    // An instance that fails to create: the apply fails, the half-made slot goes away.
    w.stand.st().manifests.insert(digest(0xdead));
    let (r, t) = w.deploy(&image(0xdead), true).await;
    let msg = format!("{:#}", r.unwrap_err());
    assert!(
        msg.contains("container failed to start") && msg.contains("went back"),
        "{msg}"
    );
    assert_eq!(
        t.history()
            .iter()
            .map(|h| h.phase.as_str())
            .collect::<Vec<_>>(),
        ["provision", "abort"],
        "the stage apply failed, then the slots were restored"
    );
    assert_eq!(w.live(), live(&[("blue", 1, "active")]));
    assert_eq!(w.lb().await.1["image"], image(1));
    assert_eq!(
        w.releases().await.pop().unwrap().outcome,
        Outcome::RolledBack
    );
    assert!(!w.lock_held());

    // The plan guard: a changed database shape would replace the database.
    w.stand.st().unhealthy.clear();
    *w.database_shape.lock().unwrap() = "PostgreSQL.VM.Standard.E4.Flex".into();
    let (r, t) = w.deploy(&image(2), true).await;
    let msg = format!("{:#}", r.unwrap_err());
    assert!(
        msg.contains("refusing")
            && msg.contains("terraform_data.database")
            && msg.contains("--allow-destroy"),
        "{msg}"
    );
    assert!(applied(&t).is_empty(), "nothing was applied");
    assert_eq!(w.live(), live(&[("blue", 1, "active")]));
    assert!(!w.lock_held());
    w.no_signature_failures();
}

/// Two runners deploy at once: exactly one wins, the other is told who holds the lock; the
/// winner's lease is renewed while it runs (it outlives the 3 s lease). A lock left by a
/// crashed deploy is taken over once its lease expired, and the takeover is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deploys_and_lease_takeover() {
    let Some(w) = world("concurrent_deploys_and_lease_takeover").await else {
        return;
    };
    let mut a = w.target("runner-a", &image(1), true);
    let mut b = w.target("runner-b", &image(2), true);
    let started = std::time::Instant::now();
    let (ra, rb) = tokio::join!(
        w.run(&mut a, None, Interrupt::default()),
        w.run(&mut b, None, Interrupt::default())
    );
    let (won, lost) = match (ra, rb) {
        (Ok(r), Err(e)) => ((r, 1), e),
        (Err(e), Ok(r)) => ((r, 2), e),
        (x, y) => panic!(
            "exactly one deploy must win: {:?} / {:?}",
            x.map(|r| r.result),
            y.map(|r| r.result)
        ),
    };
    assert!(
        format!("{lost:#}").contains("deploy lock is held by"),
        "{lost:#}"
    );
    assert_eq!(won.0.result, "deployed");
    assert_eq!(w.live(), live(&[("blue", won.1, "active")]));
    assert_eq!(w.releases().await.len(), 1);
    assert!(!w.lock_held());
    eprintln!("winning deploy took {:?}", started.elapsed());

    // A crashed deploy left the lock behind; its lease ended.
    let stale = DeployLock::new(w.store(), LOCK, Duration::from_secs(3));
    stale
        .acquire(
            "crashed deploy",
            jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60),
        )
        .await
        .unwrap();
    let mut t = w.target("runner-a", &image(3), true);
    let r = w.run(&mut t, None, Interrupt::default()).await.unwrap();
    assert!(r
        .took_over_lock_from
        .as_deref()
        .unwrap()
        .contains("crashed deploy"));
    assert_eq!(r.result, "deployed");
    assert!(!w.lock_held());
    // A long deploy (an unhealthy image: verify waits its full 4 s) keeps renewing its 1 s
    // lease, so nobody can take the lock over while it runs.
    w.stand.st().unhealthy.insert(image(4));
    let mut t = w.target("runner-b", &image(4), true);
    let probe = async {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        DeployLock::new(w.store(), LOCK, Duration::from_secs(1))
            .acquire("probe", jiff::Timestamp::now())
            .await
    };
    let (r, probed) = tokio::join!(
        w.run_leased(&mut t, None, Interrupt::default(), Duration::from_secs(1)),
        probe
    );
    assert!(
        matches!(probed, Err(calops::deploy::lock::LockError::Held(ref i)) if i.message == "test deploy"),
        "{probed:?}"
    );
    assert!(format!("{:#}", r.unwrap_err()).contains("did not serve"));
    assert!(!w.lock_held());
    w.stand.st().unhealthy.clear();
    // A lock whose lease runs is respected.
    let live_lock = DeployLock::new(w.store(), LOCK, Duration::from_secs(600));
    let held = live_lock
        .acquire("someone else", jiff::Timestamp::now())
        .await
        .unwrap();
    let mut t = w.target("runner-a", &image(4), true);
    let e = w.run(&mut t, None, Interrupt::default()).await.unwrap_err();
    assert!(format!("{e:#}").contains("someone else"), "{e:#}");
    assert!(t.history().is_empty());
    live_lock.release(&held).await.unwrap();
    w.no_signature_failures();
}

/// Ctrl-C at each step of a blue/green deploy: the deploy stops, the lock is released, and
/// the load balancer serves the previous release from a healthy slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_at_each_step_keeps_traffic_on_a_healthy_slot() {
    let Some(w) = world("ctrl_c_at_each_step_keeps_traffic_on_a_healthy_slot").await else {
        return;
    };
    let (r, _) = w.deploy(&image(1), true).await;
    r.unwrap();
    for step in [
        "build",
        "apply provision",
        "apply stage",
        "verify",
        "apply drain",
    ] {
        let interrupt = Interrupt::default();
        let i2 = interrupt.clone();
        let step_name = step.to_string();
        let mut t = w
            .target("work", &image(2), true)
            .with_observer(Arc::new(move |what: &str| {
                if what == step_name {
                    i2.raise();
                }
            }));
        let e = w.run(&mut t, None, interrupt).await.unwrap_err();
        // Before the release record exists (build), the step error itself says "interrupted".
        let code = match e.downcast_ref::<calops::error::ExitWithDoc>() {
            Some(d) => d.code,
            None if e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<StepError>(),
                    Some(StepError::Interrupted(_))
                )
            }) =>
            {
                calops::error::EXIT_INTERRUPTED
            }
            None => panic!("{step}: not an interrupted exit: {e:#}"),
        };
        assert_eq!(code, calops::error::EXIT_INTERRUPTED, "{step}: {e:#}");
        assert!(!w.lock_held(), "{step}: the lock is released");
        assert_eq!(w.live(), live(&[("blue", 1, "active")]), "{step}");
        let (status, body) = w.lb().await;
        assert_eq!(
            (status, body["image"].as_str()),
            (200, Some(image(1).as_str())),
            "{step}"
        );
    }
    // Every interrupted deploy that got a record says how it ended.
    let records = w.releases().await;
    assert_eq!(
        records.len(),
        5,
        "release 1 and four interrupted ones (build makes none)"
    );
    assert!(records[1..]
        .iter()
        .all(|r| matches!(r.outcome, Outcome::RolledBack | Outcome::Failed)));
    // The next deploy works normally.
    let (r, _) = w.deploy(&image(2), true).await;
    assert_eq!(r.unwrap().result, "deployed");
    assert_eq!(
        w.live(),
        live(&[("blue", 1, "draining"), ("green", 2, "active")])
    );
    w.no_signature_failures();
}

/// The commands on an `oci` profile, against the stand-in (CALOPS_ENDPOINT_* overrides): the
/// OCI config and key are loaded, the state bucket found, releases listed from Object Storage,
/// status asks /health through the load balancer, and bad input is refused before any change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_on_an_oci_profile() {
    let Some(w) = world("commands_on_an_oci_profile").await else {
        return;
    };
    let (r, _) = w.deploy(&image(1), true).await;
    r.unwrap();
    let dir = w.tmp.path().to_path_buf();
    // An OCI config with the stand-in's key, and a profile using it.
    use rsa::pkcs8::EncodePrivateKey;
    let pem = key().to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    let key_file = dir.join("key.pem");
    std::fs::write(&key_file, pem.as_bytes()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let fp = calops::oci::keys::fingerprint(&key().to_public_key());
    let config = dir.join("oci-config");
    std::fs::write(
        &config,
        format!("[DEFAULT]\nuser = ocid1.user.oc1..u\nfingerprint = {fp}\ntenancy = ocid1.tenancy.oc1..t\nregion = ap-sydney-1\nkey_file = {}\n", key_file.display()),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let profiles = dir.join("profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
    std::fs::copy(repo.join("base.toml"), profiles.join("base.toml")).unwrap();
    let dev = std::fs::read_to_string(repo.join("dev.toml"))
        .unwrap()
        .replace(
            "config_profile = \"DEFAULT\"",
            &format!(
                "config_profile = \"DEFAULT\"\nconfig_file = \"{}\"",
                config.display()
            ),
        );
    std::fs::write(
        profiles.join("dev.toml"),
        format!("{dev}\n[state]\nbucket = \"{BUCKET}\"\nprefix = \"dev\"\n"),
    )
    .unwrap();
    let base = w.client.endpoint(Service::ObjectStorage).unwrap();
    let run = move |args: &[&str]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_calops"));
        c.args(args)
            .args(["--profile", "dev", "--json"])
            .current_dir(&dir)
            .env("CALOPS_PROFILE_DIR", &profiles)
            .env("XDG_CACHE_HOME", dir.join("cache"))
            .env_remove("CALOPS_PROFILE")
            .env_remove("CALOPS_HEALTH_URL")
            .env_remove("OCI_CLI_CONFIG_FILE")
            .env_remove("OCI_CLI_PROFILE");
        for svc in Service::ALL {
            c.env(svc.env_var(), base.as_str());
        }
        let out = c.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            serde_json::from_slice::<Value>(&out.stdout).unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, doc, err) = tokio::task::spawn_blocking({
        let run = run.clone();
        move || run(&["releases"])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    assert_eq!(doc["releases"][0]["artifact_digest"], digest(1));
    let (code, doc, err) = tokio::task::spawn_blocking({
        let run = run.clone();
        move || run(&["status"])
    })
    .await
    .unwrap();
    assert_eq!((code, &doc["healthy"]), (0, &json!(true)), "{doc} {err}");
    assert_eq!(doc["health"]["slot"], "blue");
    let (code, doc, err) = tokio::task::spawn_blocking({
        let run = run.clone();
        move || run(&["lock", "status"])
    })
    .await
    .unwrap();
    assert_eq!((code, &doc["lock"]), (0, &json!(null)), "{err}");
    // Refused before anything changes: an unpinned image, and a rollback with nowhere to go.
    let (code, _, err) = tokio::task::spawn_blocking({
        let run = run.clone();
        move || run(&["deploy", "--image", "127.0.0.1/testns/calops:latest"])
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not pinned by digest"), "{err}");
    let (code, _, err) = tokio::task::spawn_blocking(move || run(&["rollback"]))
        .await
        .unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no earlier successful release"), "{err}");
    assert_eq!(w.releases().await.len(), 1);
    assert!(!w.lock_held());
    w.no_signature_failures();
}
