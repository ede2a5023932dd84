//! The OCI target end to end: the real `terraform` on a fixture stack made of `terraform_data`
//! (same `slots` input and outputs as the calops stack), a stand-in OCI server on 127.0.0.1 that
//! verifies request signatures and answers Object Storage (lock, ledger, state bucket), the
//! registry, Container Instances and Load Balancer backend health from what Terraform applied,
//! and a stand-in load balancer whose `/health` answers from whichever slot gets traffic.

use crate::support::ocistand::{
    decode, incoming, json_reply, key, key_id, oci_error, reply, serve, write_config, Signatures,
};
use bytes::Bytes;
use calops::deploy::ledger::{Ledger, Outcome, Release};
use calops::deploy::lock::DeployLock;
use calops::deploy::oci::bootstrap::ensure_state_bucket;
use calops::deploy::oci::stack::StackWriter;
use calops::deploy::oci::target::{ImageSource, OciTarget, OciTargetOptions};
use calops::deploy::ocistore::OciStore;
use calops::deploy::pipeline::{self, Options, RunResult};
use calops::deploy::slots::{SlotSpec, SlotState, Slots};
use calops::deploy::steps::{Interrupt, StepError};
use calops::oci::client::{OciClient, RetryPolicy, Service};
use calops::oci::signer::Signer;
use calops::runtime::env::{ContainerEnv, OciParams};
use calops::terraform::command::{EnvSnapshot, InitArgs};
use calops::terraform::PlanOptions;
use calops::ui::Ui;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use url::Url;

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
    /// GetTenancy calls (the home region lookup).
    identity_calls: u32,
    /// Every answer of the load balancer's /health: (slot, image).
    lb_served: Vec<(String, String)>,
    lb_rr: usize,
    /// The last readable Terraform state (the local backend rewrites it in place).
    tfstate: Value,
}

struct Stand {
    signatures: Signatures,
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
            .filter_map(|(key, b)| {
                let img = instances.get(key)?["image"].as_str()?.to_string();
                let slot = b["slot"].as_str()?.to_string();
                (!unhealthy.contains(&img)).then_some((slot, img))
            })
            .collect()
    }
}

async fn handle(
    axum::extract::State(stand): axum::extract::State<Arc<Stand>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let (method, path, pq, q, headers, body) = incoming(req).await;
    let header = |n: &str| crate::support::ocistand::header(&headers, n);
    // The registry's distribution API takes the bearer token, not a signature.
    if let Some(rest) = path.strip_prefix("/v2/") {
        let Some((_, reference)) = rest.rsplit_once("/manifests/") else {
            return oci_error(404, "NotFound", "NotFound");
        };
        if header("authorization").as_deref() != Some("Bearer registry-token") {
            return reply(401, &[], "");
        }
        let found = stand.st().manifests.contains(reference);
        return reply(if found { 200 } else { 404 }, &[], "");
    }
    if let Err(why) = stand.signatures.verify(&method, &pq, &headers, &body) {
        stand.st().signature_failures.push(why);
        return oci_error(401, "NotAuthenticated", "NotAuthenticated");
    }
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segs.as_slice()) {
        ("GET", ["n", ""]) => json_reply(200, json!("testns")),
        ("POST", ["n", "testns", "b", ""]) => {
            let d: Value = serde_json::from_slice(&body).unwrap();
            let name = d["name"].as_str().unwrap().to_string();
            let mut st = stand.st();
            if st.buckets.contains_key(&name) {
                return oci_error(409, "BucketAlreadyExists", "BucketAlreadyExists");
            }
            let b = json!({"name": name, "namespace": "testns", "compartmentId": d["compartmentId"],
                "publicAccessType": d["publicAccessType"], "storageTier": d["storageTier"],
                "versioning": d["versioning"]});
            st.buckets.insert(name, b.clone());
            json_reply(200, b)
        }
        ("GET", ["n", "testns", "b", b]) => match stand.st().buckets.get(&decode(b)) {
            Some(b) => json_reply(200, b.clone()),
            None => oci_error(404, "BucketNotFound", "BucketNotFound"),
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
                return oci_error(404, "BucketNotFound", "BucketNotFound");
            }
            let existing = st.objects.get(&key).cloned();
            match m {
                "PUT" => {
                    if header("if-none-match").as_deref() == Some("*") && existing.is_some() {
                        return oci_error(409, "IfNoneMatchFailed", "IfNoneMatchFailed");
                    }
                    if let Some(want) = header("if-match") {
                        if existing.as_ref().map(|e| &e.1) != Some(&want) {
                            return oci_error(412, "NoEtagMatch", "NoEtagMatch");
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
                    None => oci_error(404, "ObjectNotFound", "ObjectNotFound"),
                },
                "DELETE" => match existing {
                    None => oci_error(404, "ObjectNotFound", "ObjectNotFound"),
                    Some((_, etag)) => {
                        if header("if-match").is_some_and(|w| w != etag) {
                            return oci_error(412, "NoEtagMatch", "NoEtagMatch");
                        }
                        st.objects.remove(&key);
                        reply(204, &[], "")
                    }
                },
                _ => oci_error(405, "MethodNotAllowed", "MethodNotAllowed"),
            }
        }
        // Identity: the tenancy's home region (Sydney, while the stack is elsewhere).
        ("GET", ["20160918", "tenancies", t]) => {
            stand.st().identity_calls += 1;
            json_reply(
                200,
                json!({"id": decode(t), "name": "test", "homeRegionKey": "SYD"}),
            )
        }
        ("GET", ["20160918", "tenancies", _, "regionSubscriptions"]) => json_reply(
            200,
            json!([{"regionKey": "FRA", "regionName": "eu-frankfurt-1", "status": "READY", "isHomeRegion": false},
                   {"regionKey": "SYD", "regionName": "ap-sydney-1", "status": "READY", "isHomeRegion": true}]),
        ),
        ("GET", ["20180419", "docker", "token"]) => {
            json_reply(200, json!({"token": "registry-token", "expires_in": 300}))
        }
        ("GET", ["20210415", "containerInstances", id]) => {
            let id = decode(id);
            let instances = stand.resources("instance");
            let Some((key, inst)) = instances.iter().find(|(_, i)| {
                Some(id.as_str())
                    == i["id"]
                        .as_str()
                        .map(|x| format!("ocid1.computecontainerinstance.oc1..{x}"))
                        .as_deref()
            }) else {
                return oci_error(404, "NotAuthorizedOrNotFound", "NotAuthorizedOrNotFound");
            };
            let polls = {
                let mut st = stand.st();
                let c = st.instance_polls.entry(id.clone()).or_default();
                *c += 1;
                *c
            };
            json_reply(
                200,
                json!({"id": id, "displayName": format!("calops-{key}"), "compartmentId": "ocid1.compartment.oc1..c",
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
            let Some((key, _)) = backends
                .iter()
                .find(|(_, b)| format!("{}:8080", b["ip"].as_str().unwrap_or("")) == be)
            else {
                return oci_error(404, "BackendNotFound", "BackendNotFound");
            };
            let img = instances[key]["image"].as_str().unwrap_or("").to_string();
            let ok = !stand.st().unhealthy.contains(&img);
            json_reply(
                200,
                json!({"status": if ok { "OK" } else { "CRITICAL" },
                    "healthCheckResults": [{"healthCheckStatus": if ok { "OK" } else { "CONNECT_FAILED" }}]}),
            )
        }
        _ => oci_error(404, "NotFound", "NotFound"),
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

/// The "profile" of the fixture stack: what the next staged slot is made from, and the
/// stack-wide settings (changed between deploys by the tests).
#[derive(Clone)]
struct Profile {
    environment: BTreeMap<String, String>,
    shape: String,
    replicas: u32,
    database_shape: String,
    database_endpoint: String,
    availability_domains: Vec<String>,
    service_port: u16,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            environment: BTreeMap::from([("RUST_LOG".to_string(), "info".to_string())]),
            shape: "CI.Standard.A1.Flex".into(),
            replicas: 1,
            database_shape: "PostgreSQL.VM.Standard.E5.Flex".into(),
            database_endpoint: "10.0.1.200".into(),
            availability_domains: vec!["AD-1".into()],
            service_port: 8080,
        }
    }
}

impl Profile {
    /// The spec calops renders for this profile (the real contract type).
    fn spec(&self) -> SlotSpec {
        let secrets = BTreeMap::new();
        let env = ContainerEnv::for_oci(&OciParams {
            port: self.service_port,
            compartment_id: "ocid1.compartment.oc1..test",
            graceful_shutdown_seconds: 30,
            database_user: "calops",
            database_password_secret: "ocid1.vaultsecret.oc1..db",
            environment: &self.environment,
            secrets: &secrets,
            mail_sender: None,
        })
        .rendered()
        .unwrap();
        SlotSpec {
            shape: self.shape.clone(),
            ocpus: 1.0,
            memory_gbs: 4.0,
            replicas: self.replicas,
            graceful_shutdown_seconds: 30,
            liveness_path: calops::runtime::LIVENESS_PATH.into(),
            env,
        }
    }
}

/// Writes the fixture stack (with the real slots module) for the slots.
struct FixtureStack {
    lb_url: String,
    profile: Arc<Mutex<Profile>>,
    /// What calops did before slots froze their records: every live slot re-made from the
    /// profile on every apply. Only to show that the guard then refuses the plan.
    refreeze: bool,
}

impl StackWriter for FixtureStack {
    fn write(&self, dir: &Path, slots: &Slots) -> anyhow::Result<()> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        std::fs::create_dir_all(dir.join("modules/slots"))?;
        std::fs::copy(
            root.join("tests/fixtures/terraform/ocislots/main.tf"),
            dir.join("main.tf"),
        )?;
        for f in ["versions.tf", "variables.tf", "main.tf", "outputs.tf"] {
            std::fs::copy(
                root.join("iac/modules/slots").join(f),
                dir.join("modules/slots").join(f),
            )?;
        }
        let p = self.profile.lock().unwrap().clone();
        let mut slots = slots.clone();
        for slot in slots.0.values_mut() {
            if slot.is_live() && (slot.spec.is_none() || self.refreeze) {
                slot.spec = Some(p.spec());
                if self.refreeze {
                    slot.bound = None;
                }
            }
        }
        let vars = json!({"slots": slots, "lb_url": self.lb_url,
            "database_shape": p.database_shape, "database_endpoint": p.database_endpoint,
            "availability_domains": p.availability_domains, "service_port": p.service_port});
        std::fs::write(dir.join("terraform.tfvars.json"), vars.to_string())?;
        Ok(())
    }

    fn next_spec(&self) -> anyhow::Result<SlotSpec> {
        Ok(self.profile.lock().unwrap().spec())
    }

    fn instance_addresses(&self, key: &str) -> Vec<String> {
        vec![
            format!("terraform_data.instance[\"{key}\"]"),
            format!("terraform_data.backend[\"{key}\"]"),
        ]
    }
}

struct World {
    stand: Arc<Stand>,
    client: Arc<OciClient>,
    lb_url: String,
    tmp: tempfile::TempDir,
    profile: Arc<Mutex<Profile>>,
}

async fn world(test: &str) -> Option<World> {
    calops_testkit::require_tool(test, "terraform")?;
    let tmp = tempfile::tempdir().unwrap();
    let key = key();
    let stand = Arc::new(Stand {
        signatures: Signatures {
            public: key.to_public_key(),
            key_ids: vec![key_id(&key)],
            host: None,
        },
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
    let mut client = OciClient::new(Signer::new(key_id(&key), key), "ap-sydney-1")
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
        profile: Arc::new(Mutex::new(Profile::default())),
    })
}

impl World {
    fn target(&self, workdir: &str, img: &str, keep_previous: bool) -> OciTarget {
        self.target_with(workdir, img, keep_previous, false)
    }

    fn target_with(
        &self,
        workdir: &str,
        img: &str,
        keep_previous: bool,
        refreeze: bool,
    ) -> OciTarget {
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
            profile: self.profile.clone(),
            refreeze,
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
            pipeline::Records {
                store: self.store(),
                lock_key: LOCK,
                ledger_prefix: "dev/",
            },
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

    /// The slots Terraform's state holds now: slot -> (image, state), from the backends (every
    /// replica of a slot agrees).
    fn live(&self) -> BTreeMap<String, (String, &'static str)> {
        let instances = self.resources_by_slot();
        instances
            .into_iter()
            .map(|(slot, list)| {
                let (_, inst, backend) = &list[0];
                for (key, i, b) in &list {
                    assert_eq!(i["image"], inst["image"], "{key}");
                    assert_eq!(b["drain"], backend["drain"], "{key}");
                }
                (
                    slot,
                    (
                        inst["image"].as_str().unwrap().to_string(),
                        if backend["drain"] == true {
                            "draining"
                        } else {
                            "active"
                        },
                    ),
                )
            })
            .collect()
    }

    /// slot -> [(instance key, instance input, backend input)], every instance with a backend.
    fn resources_by_slot(&self) -> BTreeMap<String, Vec<(String, Value, Value)>> {
        let instances = self.stand.resources("instance");
        let backends = self.stand.resources("backend");
        assert_eq!(
            instances.keys().collect::<Vec<_>>(),
            backends.keys().collect::<Vec<_>>(),
            "one backend per instance"
        );
        let mut out: BTreeMap<String, Vec<(String, Value, Value)>> = BTreeMap::new();
        for (key, inst) in instances {
            let slot = inst["slot"].as_str().unwrap().to_string();
            out.entry(slot)
                .or_default()
                .push((key.clone(), inst, backends[&key].clone()));
        }
        out
    }

    /// The Terraform ids of a slot's instances (they change when an instance is replaced).
    fn instance_id(&self, slot: &str) -> Vec<String> {
        self.resources_by_slot()
            .get(slot)
            .map(|l| {
                l.iter()
                    .map(|(_, i, _)| i["id"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The Terraform ids of a slot's backends.
    fn backend_ids(&self, slot: &str) -> Vec<String> {
        self.resources_by_slot()
            .get(slot)
            .map(|l| {
                l.iter()
                    .map(|(_, _, b)| b["id"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
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

/// Live slots as (name, image, state): what the phases of a deploy are compared by.
type View = Vec<(String, String, SlotState)>;

fn view(s: &Slots) -> View {
    s.live()
        .map(|(n, slot)| (n.to_string(), slot.image.clone().unwrap(), slot.state))
        .collect()
}

fn slots(blue: Option<(u32, SlotState)>, green: Option<(u32, SlotState)>) -> View {
    [("blue", blue), ("green", green)]
        .into_iter()
        .filter_map(|(name, v)| v.map(|(n, state)| (name.to_string(), image(n), state)))
        .collect()
}

/// The phases a target applied (skipping ones that changed nothing), with their live slots.
fn applied(t: &OciTarget) -> Vec<(String, View)> {
    t.history()
        .into_iter()
        .filter(|h| h.changed)
        .map(|h| (h.phase, view(&h.slots)))
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
            ("provision".into(), View::new()),
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
        failure.contains("container instance green-0 is CREATING")
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
    w.profile.lock().unwrap().database_shape = "PostgreSQL.VM.Standard.E4.Flex".into();
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

/// The environment one instance was given, as Terraform applied it.
fn env_of(inst: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(inst["environment"].clone()).unwrap()
}

/// (availability domain, fault domain) of each instance of a slot, in replica order.
fn placement(list: &[(String, Value, Value)]) -> Vec<(String, String)> {
    let mut v: Vec<_> = list
        .iter()
        .map(|(_, i, _)| {
            (
                i["replica"].as_u64().unwrap(),
                i["availability_domain"].as_str().unwrap().to_string(),
                i["fault_domain"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, ad, fd)| (ad, fd)).collect()
}

/// Blue/green with the profile changing between two deploys: `replicas = 2` gives two
/// instances and two backends per slot, spread over availability and fault domains; a changed
/// environment, shape, replica count, availability domain pin and database endpoint reach only
/// the next staged slot, and the live slot's instances and backends are never replaced or
/// deleted. A calops that re-made live slots from the profile (as before slots froze their
/// records), and a stack-wide change that would replace every instance, are refused by the plan
/// guard before anything is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_changes_reach_only_the_next_slot_and_never_the_live_one() {
    let Some(w) = world("profile_changes_reach_only_the_next_slot_and_never_the_live_one").await
    else {
        return;
    };
    {
        let mut p = w.profile.lock().unwrap();
        p.replicas = 2;
        p.availability_domains = vec!["AD-1".into(), "AD-2".into()];
    }
    let (r, _) = w.deploy(&image(1), true).await;
    r.unwrap();
    let blue = w.resources_by_slot()["blue"].clone();
    assert_eq!(blue.len(), 2, "two instances, each with its backend");
    assert_eq!(
        placement(&blue),
        [
            ("AD-1".to_string(), "FAULT-DOMAIN-1".to_string()),
            ("AD-2".to_string(), "FAULT-DOMAIN-1".to_string())
        ]
    );
    let env = env_of(&blue[0].1);
    assert_eq!(env["CALOPS_DATABASE_HOST"], "10.0.1.200");
    assert_eq!(env["RUST_LOG"], "info");
    assert_eq!(env["CALOPS_SLOT"], "blue");
    assert_eq!(env["CALOPS_IMAGE"], image(1));
    assert_eq!(env["REDIS_URL"], "rediss://cache.fixture:6379");
    assert_eq!(
        env["CALOPS_DATABASE_PASSWORD_REF"],
        "vault:ocid1.vaultsecret.oc1..db"
    );
    assert_eq!(env["CALOPS_DATABASE_PORT"], "5432");
    assert_eq!(blue[0].1["shape"], "CI.Standard.A1.Flex");
    let (blue_ids, blue_backends) = (w.instance_id("blue"), w.backend_ids("blue"));

    // Everything a slot is made from changes, and so does a value only Terraform knows.
    {
        let mut p = w.profile.lock().unwrap();
        p.environment.insert("RUST_LOG".into(), "debug".into());
        p.shape = "CI.Standard.E4.Flex".into();
        p.replicas = 3;
        p.availability_domains = vec!["AD-3".into()];
        p.database_endpoint = "10.0.1.201".into();
    }
    let (r, t) = w.deploy(&image(2), true).await;
    assert_eq!(r.unwrap().result, "deployed");
    assert_eq!(
        applied(&t),
        vec![
            ("provision".into(), slots(Some((1, Active)), None)),
            ("stage".into(), slots(Some((1, Active)), Some((2, Active)))),
            (
                "drain".into(),
                slots(Some((1, Draining)), Some((2, Active)))
            ),
        ],
        "the provision phase applied the new database endpoint, not the slot"
    );
    assert_eq!(
        w.instance_id("blue"),
        blue_ids,
        "blue's instances untouched"
    );
    assert_eq!(
        w.backend_ids("blue"),
        blue_backends,
        "blue's backends untouched"
    );
    let by_slot = w.resources_by_slot();
    let (blue, green) = (&by_slot["blue"], &by_slot["green"]);
    assert_eq!(blue.len(), 2);
    assert_eq!(env_of(&blue[0].1)["RUST_LOG"], "info");
    assert_eq!(env_of(&blue[0].1)["CALOPS_DATABASE_HOST"], "10.0.1.200");
    assert_eq!(blue[0].1["shape"], "CI.Standard.A1.Flex");
    assert_eq!(green.len(), 3, "the new replica count reaches the new slot");
    assert_eq!(
        placement(green),
        [1, 2, 3].map(|n| ("AD-3".to_string(), format!("FAULT-DOMAIN-{n}")))
    );
    for (_, i, _) in green {
        assert_eq!(env_of(i)["RUST_LOG"], "debug");
        assert_eq!(env_of(i)["CALOPS_DATABASE_HOST"], "10.0.1.201");
        assert_eq!(env_of(i)["CALOPS_SLOT"], "green");
        assert_eq!(i["shape"], "CI.Standard.E4.Flex");
    }
    assert_eq!(
        w.live(),
        live(&[("blue", 1, "draining"), ("green", 2, "active")])
    );
    // The release record holds the frozen settings (references, no secret values).
    let rel = w.releases().await.pop().unwrap();
    assert_eq!(rel.details["inputs"]["spec"]["replicas"], 3);
    assert_eq!(rel.details["slots"]["blue"]["replicas"], 2);
    assert_eq!(
        rel.details["slots"]["blue"]["bound"]["database_host"],
        "10.0.1.200"
    );
    let (green_ids, green_backends) = (w.instance_id("green"), w.backend_ids("green"));
    let unchanged = |what: &str| {
        assert_eq!(w.instance_id("green"), green_ids, "{what}");
        assert_eq!(w.backend_ids("green"), green_backends, "{what}");
        assert_eq!(w.instance_id("blue"), blue_ids, "{what}");
        assert_eq!(w.backend_ids("blue"), blue_backends, "{what}");
    };

    // A calops that re-made the live slots from the profile would replace them: refused.
    w.profile
        .lock()
        .unwrap()
        .environment
        .insert("RUST_LOG".into(), "trace".into());
    let mut t = w.target_with("work", &image(3), true, true);
    let e = w.run(&mut t, None, Interrupt::default()).await.unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains("refusing")
            && msg.contains("terraform_data.instance[\"green-0\"]")
            && msg.contains("terraform_data.backend[\"green-0\"]")
            && msg.contains("stays live in the provision phase"),
        "{msg}"
    );
    assert!(applied(&t).is_empty(), "nothing was applied");
    unchanged("after the refused re-made slots");

    // A stack-wide change that replaces every instance (the port) is refused the same way.
    w.profile.lock().unwrap().service_port = 9090;
    let (r, t) = w.deploy(&image(3), true).await;
    let msg = format!("{:#}", r.unwrap_err());
    assert!(
        msg.contains("refusing") && msg.contains("terraform_data.instance[\"blue-1\"]"),
        "{msg}"
    );
    assert!(applied(&t).is_empty(), "nothing was applied");
    unchanged("after the refused port change");
    w.profile.lock().unwrap().service_port = 8080;

    // The next deploy reuses the drained slot (blue) with the current settings; green stays.
    let (r, t) = w.deploy(&image(3), true).await;
    assert_eq!(r.unwrap().result, "deployed");
    assert_eq!(
        applied(&t),
        vec![
            ("stage".into(), slots(Some((3, Active)), Some((2, Active)))),
            (
                "drain".into(),
                slots(Some((3, Active)), Some((2, Draining)))
            ),
        ]
    );
    assert_eq!(w.instance_id("green"), green_ids);
    assert_eq!(w.backend_ids("green"), green_backends);
    let blue = &w.resources_by_slot()["blue"];
    assert_eq!(blue.len(), 3);
    assert_eq!(env_of(&blue[0].1)["RUST_LOG"], "trace");
    assert_eq!(w.lb().await.1["image"], image(3));
    assert!(!w.lock_held());
    w.no_signature_failures();
}

/// The tenancy's home region comes from the Identity API (signed calls), unless pinned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_region_lookup_and_pin() {
    let Some(w) = world("home_region_lookup_and_pin").await else {
        return;
    };
    let dirs = [Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles")];
    let mut profile = calops::profile::load_with("dev", &dirs, vec![])
        .unwrap()
        .profile;
    let signing = calops::oci::config::OciProfile {
        config_file: "/dev/null".into(),
        profile: "DEFAULT".into(),
        user: Some("ocid1.user.oc1..u".into()),
        tenancy: "ocid1.tenancy.oc1..t".into(),
        fingerprint: None,
        key_file: "/dev/null".into(),
        pass_phrase: None,
        region: "eu-frankfurt-1".into(),
        security_token_file: None,
    };
    let a = calops::deploy::oci::account::account(&profile, &signing, Some(&w.client))
        .await
        .unwrap();
    assert_eq!(a.home_region.as_deref(), Some("ap-sydney-1"));
    assert_eq!(a.tenancy_id.as_deref(), Some("ocid1.tenancy.oc1..t"));
    assert_eq!(w.stand.st().identity_calls, 1);
    profile.oci.as_mut().unwrap().home_region =
        Some(calops::profile::types::Region::parse("us-ashburn-1").unwrap());
    let a = calops::deploy::oci::account::account(&profile, &signing, Some(&w.client))
        .await
        .unwrap();
    assert_eq!(a.home_region.as_deref(), Some("us-ashburn-1"));
    assert_eq!(w.stand.st().identity_calls, 1, "a pin makes no call");
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
        // Probe once the deploy has renewed its lease past the end of its first one (1 s
        // after it started): without renewals the lock would be free by then.
        let lock = DeployLock::new(w.store(), LOCK, Duration::from_secs(1));
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(info)) = lock.status().await {
                if info.renewed_at >= info.started_at + jiff::SignedDuration::from_millis(1500) {
                    break;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the deploy never renewed its lease"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        lock.acquire("probe", jiff::Timestamp::now()).await
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
    let config = write_config(&dir, &key(), "ap-sydney-1");
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
