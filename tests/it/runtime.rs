//! The contract between `render` and `serve`, end to end, without a tenancy.
//!
//! `calops render` writes prod-au (with its lookups pinned); the real `terraform` evaluates the
//! container environment from the rendered text itself: the root module's `stack_values`, its
//! `slots` and `container` module calls, the slots module, and the container module's
//! `environment_variables` and health check path are copied verbatim into an evaluation root
//! where only the outputs of the modules that need OCI (database, cache, storage) are stubbed
//! with test endpoints. Then the real `calops serve` binary starts with exactly that
//! environment, plus what OCI itself gives a container instance (the resource principal
//! variables) and the endpoints of the local stand-ins:
//!
//! - PostgreSQL with TLS (`ssl = on`, a test CA) whose `pg_hba.conf` allows `hostssl` only;
//! - `redis-server` listening on a TLS port only;
//! - the stand-in OCI (`support::oci`): Vault's GetSecretBundle and native Object Storage,
//!   checking `ST$` resource principal signatures and refusing the token the container holds
//!   at first as expired (so the refresh is exercised).

use crate::support::api::Client;
use crate::support::oci::{s, session_token, unix_in, vectors, Oci, EXPIRED_TOKEN};
use crate::support::{eventually, ALL_DAYS};
use calops_testkit::pg::TlsPostgres;
use calops_testkit::TestRedis;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A throwaway CA, a server certificate it signs for 127.0.0.1 and localhost, and another CA.
struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
    other_ca_pem: String,
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let ca = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = p.self_signed(&key).unwrap();
        (cert, key)
    };
    let (ca_cert, ca_key) = ca("calops test CA");
    let (other, _) = ca("another CA");
    let key = KeyPair::generate().unwrap();
    let mut p =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, "127.0.0.1");
    let cert = p.signed_by(&key, &ca_cert, &ca_key).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        other_ca_pem: other.pem(),
    }
}

// ---------------------------------------------------------------------------------------------
// The container's environment, from the rendered files.

const IMAGE: &str =
    "syd.ocir.io/testns/calops@sha256:abababababababababababababababababababababababababababababababab";

/// prod-au with its lookups pinned (what `[oci]` pins are for: no API call at render).
const PINNED: &str = r#"extends = "prod-au"

[service]
mail_sender = "bookings@example.com"

# Last: tests append [oci] keys.
[oci]
home_region = "ap-sydney-1"
availability_domains = ["Uocm:AP-SYDNEY-1-AD-1"]
object_storage_namespace = "testns"
services_gateway_service_id = "ocid1.service.oc1.ap-sydney-1.aaaaaaaatestservicegateway"
"#;

/// `calops render` of prod-au (pinned) into `dir/rendered`.
fn render(dir: &Path) -> PathBuf {
    let profile = dir.join("prod-au-pinned.toml");
    std::fs::write(&profile, PINNED).unwrap();
    let out = dir.join("rendered");
    let run = Command::new(env!("CARGO_BIN_EXE_calops"))
        .current_dir(root())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        // No OCI config: render reads nothing of the machine's.
        .env("HOME", dir)
        .args(["render", "--json", "--profile"])
        .arg(&profile)
        .arg("--out")
        .arg(&out)
        .args(["--image", IMAGE])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "calops render: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    out
}

fn parse(path: &Path) -> hcl::Body {
    hcl::parse(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn block<'a>(body: &'a hcl::Body, id: &str, label: Option<&str>) -> &'a hcl::Block {
    body.blocks()
        .find(|b| {
            b.identifier() == id
                && label.is_none_or(|l| b.labels().first().map(|x| x.as_str()) == Some(l))
        })
        .unwrap_or_else(|| panic!("no {id} {label:?} block"))
}

fn attribute(body: &hcl::Body, key: &str) -> hcl::Attribute {
    body.attributes()
        .find(|a| a.key() == key)
        .unwrap_or_else(|| panic!("no attribute {key}"))
        .clone()
}

/// An HCL expression from its text.
fn expression(text: &str) -> hcl::Expression {
    hcl::parse(&format!("v = {text}"))
        .unwrap()
        .attributes()
        .next()
        .unwrap()
        .expr()
        .clone()
}

/// Test values for the outputs of the modules that need OCI.
struct Endpoints {
    database_host: String,
    database_port: u16,
    database_ca: String,
    cache_host: String,
    cache_port: u16,
}

/// A stub module with these outputs.
fn stub(dir: &Path, name: &str, outputs: &[(&str, hcl::Expression)]) {
    let mut body = hcl::Body::builder();
    for (k, v) in outputs {
        body = body.add_block(
            hcl::Block::builder("output")
                .add_label(*k)
                .add_attribute(("value", v.clone()))
                .build(),
        );
    }
    std::fs::create_dir_all(dir.join("stubs").join(name)).unwrap();
    std::fs::write(
        dir.join("stubs").join(name).join("main.tf"),
        hcl::to_string(&body.build()).unwrap(),
    )
    .unwrap();
}

/// Write the evaluation root: the rendered root's variables, lookups, locals, `slots` module
/// (and the module itself), and the `container` module call's `for_each`, `environment` and
/// `liveness_path`, all verbatim; stubs for the database, cache and storage modules; and a
/// container module that is the rendered one's environment and health check path expressions.
fn evaluation_root(rendered: &Path, dir: &Path, e: &Endpoints) {
    std::fs::create_dir_all(dir.join("modules/slots")).unwrap();
    for f in ["variables.tf", "lookups.tf", "terraform.tfvars.json"] {
        std::fs::copy(rendered.join(f), dir.join(f)).unwrap();
    }
    assert!(
        !parse(&rendered.join("lookups.tf"))
            .blocks()
            .any(|b| b.identifier() == "data"),
        "pinned lookups need no data source"
    );
    for f in ["versions.tf", "variables.tf", "main.tf", "outputs.tf"] {
        std::fs::copy(
            rendered.join("modules/slots").join(f),
            dir.join("modules/slots").join(f),
        )
        .unwrap();
    }
    let main = parse(&rendered.join("main.tf"));
    let container_call = block(&main, "module", Some("container")).body();
    let str_expr = |s: &str| hcl::Expression::String(s.to_string());
    stub(
        dir,
        "database",
        &[
            ("endpoint", str_expr(&e.database_host)),
            ("port", hcl::Expression::from(e.database_port as u64)),
            ("ca_certificate", str_expr(&e.database_ca)),
        ],
    );
    stub(
        dir,
        "cache",
        &[
            ("endpoint", str_expr(&e.cache_host)),
            ("port", hcl::Expression::from(e.cache_port as u64)),
        ],
    );
    let tfvars: Value = serde_json::from_str(
        &std::fs::read_to_string(rendered.join("terraform.tfvars.json")).unwrap(),
    )
    .unwrap();
    stub(
        dir,
        "storage",
        &[(
            "bucket_name",
            str_expr(tfvars["bucket_name"].as_str().unwrap()),
        )],
    );
    // The container module: its variables as rendered, and what the resource makes of them.
    let module_main = parse(&rendered.join("modules/container/main.tf"));
    let instance = block(
        &module_main,
        "resource",
        Some("oci_container_instances_container_instance"),
    );
    let containers = block(instance.body(), "containers", None);
    let health = block(containers.body(), "health_checks", None);
    let module_vars = parse(&rendered.join("modules/container/variables.tf"));
    let mut stub_body = hcl::Body::builder();
    for v in ["environment", "liveness_path"] {
        stub_body = stub_body.add_block(block(&module_vars, "variable", Some(v)).clone());
    }
    for (name, attr) in [
        (
            "environment_variables",
            attribute(containers.body(), "environment_variables"),
        ),
        ("health_check_path", attribute(health.body(), "path")),
    ] {
        stub_body = stub_body.add_block(
            hcl::Block::builder("output")
                .add_label(name)
                .add_attribute(("value", attr.expr().clone()))
                .build(),
        );
    }
    std::fs::create_dir_all(dir.join("stubs/container")).unwrap();
    std::fs::write(
        dir.join("stubs/container/main.tf"),
        hcl::to_string(&stub_body.build()).unwrap(),
    )
    .unwrap();
    let module = |name: &str| {
        hcl::Block::builder("module")
            .add_label(name)
            .add_attribute(("source", format!("./stubs/{name}")))
            .build()
    };
    let mut container = hcl::Block::builder("module")
        .add_label("container")
        .add_attribute(("source", "./stubs/container"));
    for key in ["for_each", "environment", "liveness_path"] {
        container = container.add_attribute(attribute(container_call, key));
    }
    let body = hcl::Body::builder()
        .add_block(block(&main, "locals", None).clone())
        .add_block(block(&main, "module", Some("slots")).clone())
        .add_block(module("database"))
        .add_block(module("cache"))
        .add_block(module("storage"))
        .add_block(container.build())
        .add_block(
            hcl::Block::builder("output")
                .add_label("containers")
                .add_attribute(("value", expression("module.container")))
                .build(),
        )
        .build();
    std::fs::write(dir.join("main.tf"), hcl::to_string(&body).unwrap()).unwrap();
}

/// Run the real terraform on the evaluation root: each instance's environment and health
/// check path, by instance key.
fn evaluate(dir: &Path) -> BTreeMap<String, (BTreeMap<String, String>, String)> {
    let tf = |args: &[&str]| {
        let out = Command::new("terraform")
            .current_dir(dir)
            .env("TF_IN_AUTOMATION", "1")
            .env("CHECKPOINT_DISABLE", "1")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "terraform {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    tf(&["init", "-input=false", "-no-color"]);
    tf(&[
        "apply",
        "-auto-approve",
        "-input=false",
        "-no-color",
        "-var-file=terraform.tfvars.json",
        // Only the access module (IAM) reads it; the render leaves it to plan/deploy.
        "-var=tenancy_ocid=ocid1.tenancy.oc1..aaaaaaaatest",
    ]);
    let out: Value = serde_json::from_str(&tf(&["output", "-json", "containers"])).unwrap();
    out.as_object()
        .unwrap()
        .iter()
        .map(|(k, c)| {
            let env = c["environment_variables"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(n, v)| (n.clone(), v.as_str().unwrap().to_string()))
                .collect();
            (
                k.clone(),
                (env, c["health_check_path"].as_str().unwrap().to_string()),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The world: TLS PostgreSQL, TLS-only Redis, the stand-in OCI, and the environment.

struct World {
    dir: tempfile::TempDir,
    pki: Pki,
    pg: TlsPostgres,
    redis: TestRedis,
    oci: Arc<Oci>,
    _oci_server: tokio::task::JoinHandle<()>,
    /// The container's environment as Terraform evaluated it (instance `blue-0`).
    env: BTreeMap<String, String>,
    /// The container health check's path, as the rendered container module probes it.
    liveness_path: String,
    /// The load balancer's health check path (readiness).
    readiness_path: String,
    /// The values behind the references: the database password and the admin token.
    secrets: Vec<String>,
    admin_token: String,
    /// What OCI gives the container instance: the resource principal's variables (files), and
    /// the endpoints of the stand-ins, and a trust store that has the test CA.
    platform: BTreeMap<String, String>,
    rpst: PathBuf,
    fresh_token: String,
}

fn have_tools(test: &str) -> bool {
    calops_testkit::have_pg(test)
        && calops_testkit::require_tool(test, "terraform").is_some()
        && calops_testkit::require_tool(test, "redis-server").is_some()
}

async fn world(test: &str) -> World {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let pg = TlsPostgres::start(&pki.cert_pem, &pki.key_pem).unwrap();
    let redis = TestRedis::start_tls(test, &pki.cert_pem, &pki.key_pem).unwrap();
    let v = vectors();
    let key = crate::support::oci::shared_key(&v);
    // The operator's API key (`calops status` signs with it) is the same RSA key under a user's
    // key id; the container signs with its resource principal's session token.
    let (oci, server) = Oci::start(
        key.to_public_key(),
        vec![crate::support::ocistand::key_id(&key)],
    )
    .await;

    let rendered = render(dir.path());
    let eval = dir.path().join("evaluation");
    evaluation_root(
        &rendered,
        &eval,
        &Endpoints {
            database_host: "127.0.0.1".into(),
            database_port: pg.port,
            database_ca: pki.ca_pem.clone(),
            cache_host: "127.0.0.1".into(),
            cache_port: redis.port,
        },
    );
    let instances = evaluate(&eval);
    let (env, liveness_path) = instances.get("blue-0").cloned().unwrap_or_else(|| {
        panic!(
            "no blue-0 instance: {:?}",
            instances.keys().collect::<Vec<_>>()
        )
    });
    let tfvars: Value = serde_json::from_str(
        &std::fs::read_to_string(rendered.join("terraform.tfvars.json")).unwrap(),
    )
    .unwrap();

    // The stand-in Vault holds what the references name.
    let ocid = |var: &str| {
        env[var]
            .strip_prefix("vault:")
            .unwrap_or_else(|| panic!("{var} = {} is not a Vault reference", env[var]))
            .to_string()
    };
    let admin_token = calops::pg::random_token(40);
    {
        let mut st = oci.store.lock().unwrap();
        st.secrets
            .insert(ocid("CALOPS_DATABASE_PASSWORD_REF"), pg.password.clone());
        st.secrets
            .insert(ocid("CALOPS_ADMIN_TOKEN_REF"), admin_token.clone());
    }
    // The resource principal: files, as container instances give them. The token in the file
    // at start is one the stand-in refuses as expired; OCI has renewed it meanwhile, and the
    // renewed one lands in the file when the stale one is refused.
    let (stale, fresh) = (
        session_token(unix_in(3600), "stale"),
        session_token(unix_in(3600), "fresh"),
    );
    let rpst = dir.path().join("rpst");
    let rp_key = dir.path().join("rp.pem");
    std::fs::write(&rpst, &stale).unwrap();
    std::fs::write(&rp_key, s(&v["credentials"], "private_key_pkcs8_pem")).unwrap();
    {
        let mut t = oci.tokens.lock().unwrap();
        t.valid.insert(fresh.clone());
        t.expired.insert(stale);
        // Renewed as a platform must: a new file put in place, so that a concurrent reader
        // sees the old token or the new one, never a half-written file (two secrets are read
        // at once, and each refused call renews).
        let (file, fresh) = (rpst.clone(), fresh.clone());
        let renewals = std::sync::atomic::AtomicU32::new(0);
        t.on_expired = Some(Box::new(move |_| {
            let n = renewals.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let next = file.with_extension(format!("renewing-{n}"));
            std::fs::write(&next, &fresh).unwrap();
            std::fs::rename(&next, &file).unwrap();
        }));
    }
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let platform = BTreeMap::from([
        (
            "OCI_RESOURCE_PRINCIPAL_VERSION".to_string(),
            "2.2".to_string(),
        ),
        (
            "OCI_RESOURCE_PRINCIPAL_RPST".into(),
            rpst.display().to_string(),
        ),
        (
            "OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM".into(),
            rp_key.display().to_string(),
        ),
        ("OCI_RESOURCE_PRINCIPAL_REGION".into(), "ap-sydney-1".into()),
        ("CALOPS_ENDPOINT_SECRETS".into(), oci.base.to_string()),
        ("CALOPS_ENDPOINT_OBJECTSTORAGE".into(), oci.base.to_string()),
        (
            "CALOPS_ENDPOINT_EMAILSUBMISSION".into(),
            oci.base.to_string(),
        ),
        // The image's trust store, with the CA of the test Redis (OCI Cache's is the system's).
        ("SSL_CERT_FILE".into(), ca_file.display().to_string()),
    ]);
    World {
        secrets: vec![pg.password.clone(), admin_token.clone()],
        readiness_path: tfvars["service_readiness_path"]
            .as_str()
            .unwrap()
            .to_string(),
        dir,
        pki,
        pg,
        redis,
        oci,
        _oci_server: server,
        env,
        liveness_path,
        admin_token,
        platform,
        rpst,
        fresh_token: fresh,
    }
}

/// `calops serve` with exactly `env` (nothing of the test's environment), on a free port (the
/// rendered CALOPS_LISTEN is the container's port 3000, taken by the flag here) and its private
/// listener (`/metrics`) on another. Output goes to `log`.
fn serve(env: &BTreeMap<String, String>, port: u16, log: &Path) -> Child {
    serve_with_private(env, port, calops::pg::free_port().unwrap(), log)
}

fn serve_with_private(
    env: &BTreeMap<String, String>,
    port: u16,
    private_port: u16,
    log: &Path,
) -> Child {
    let out = std::fs::File::create(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_calops"))
        .env_clear()
        .envs(env)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--private-listen", &format!("127.0.0.1:{private_port}")])
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap()
}

/// [`serve`] with `env` on a free port, once it answers its liveness path: the process, its
/// base URL, its private listener's base URL (`/metrics`) and its log file.
async fn serve_live(w: &World, env: &BTreeMap<String, String>) -> (Child, String, String, PathBuf) {
    let (port, private_port) = (
        calops::pg::free_port().unwrap(),
        calops::pg::free_port().unwrap(),
    );
    let log = w.dir.path().join("serve.log");
    let mut child = serve_with_private(env, port, private_port, &log);
    let base = format!("http://127.0.0.1:{port}");
    let private = format!("http://127.0.0.1:{private_port}");
    let http = reqwest::Client::new();
    eventually(90, "serve to answer its liveness path", || {
        let (http, url) = (http.clone(), format!("{base}{}", w.liveness_path));
        let exited = child.try_wait().unwrap();
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        async move {
            assert!(exited.is_none(), "serve exited ({exited:?}):\n{log}");
            let r = http.get(url).send().await.ok()?;
            (r.status() == StatusCode::OK).then_some(())
        }
    })
    .await;
    (child, base, private, log)
}

/// An organization (bootstrap token), a host with a schedule and an event type, and a booking;
/// the organization id and the booking.
async fn book(c: &Client, token: &str) -> (i64, Value) {
    let (key, org_id, et) = host(c, token).await;
    let booking = c
        .create(
            "/v2/bookings",
            &key,
            json!({"start": "2031-03-03T09:00:00Z", "eventTypeId": et,
                   "attendee": {"name": "Zoe", "email": "zoe@example.com", "timeZone": "Europe/Berlin"}}),
        )
        .await;
    (org_id, booking)
}

/// An organization (bootstrap token) and a host available 09:00-12:00 UTC every day with a
/// 30-minute event type: (the organization's API key, its id, the event type id).
async fn host(c: &Client, token: &str) -> (String, i64, i64) {
    let org = c
        .create("/v2/organizations", token, json!({"name": "OCI runtime"}))
        .await;
    let (key, org_id) = (
        org["apiKey"].as_str().unwrap().to_string(),
        org["id"].as_i64().unwrap(),
    );
    let user = c
        .create(
            &format!("/v2/organizations/{org_id}/users"),
            &key,
            json!({"name": "Host", "email": "host@example.com", "timeZone": "UTC"}),
        )
        .await;
    let user_id = user["id"].as_i64().unwrap();
    c.create(
        "/v2/schedules",
        &key,
        json!({"userId": user_id, "name": "Work", "timeZone": "UTC",
               "availability": [{"days": ALL_DAYS, "startTime": "09:00", "endTime": "12:00"}]}),
    )
    .await;
    let et = c
        .create(
            "/v2/event-types",
            &key,
            json!({"userId": user_id, "title": "Call", "slug": "call", "lengthInMinutes": 30}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    (key, org_id, et)
}

/// Fails if any of `secrets` is in `text` (named by position, never printed).
fn assert_no_secret(what: &str, text: &str, secrets: &[String]) {
    for (i, s) in secrets.iter().enumerate() {
        assert!(!text.contains(s.as_str()), "secret #{i} appears in {what}");
    }
}

/// The rendered environment runs `serve`: the database over verified TLS with the password
/// from Vault, Redis over TLS, calendars in the stand-in bucket through the native API, the
/// liveness path independent of the database, and no secret value anywhere it could leak.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rendered_container_environment_runs_serve() {
    let test = "the_rendered_container_environment_runs_serve";
    if !have_tools(test) {
        return;
    }
    let mut w = world(test).await;
    // What the contract gives (from Terraform's evaluation of the rendered text).
    assert_eq!(w.env["CALOPS_DATABASE_HOST"], "127.0.0.1");
    assert_eq!(w.env["CALOPS_DATABASE_PORT"], w.pg.port.to_string());
    assert_eq!(w.env["CALOPS_DATABASE_SSLMODE"], "verify-full");
    assert_eq!(w.env["CALOPS_DATABASE_CA_CERT"], w.pki.ca_pem);
    assert_eq!(
        w.env["REDIS_URL"],
        format!("rediss://127.0.0.1:{}", w.redis.port)
    );
    assert_eq!(
        w.env["CALOPS_OBJECT_STORAGE_URL"],
        "https://objectstorage.ap-sydney-1.oraclecloud.com/n/testns/b/calops-prod-au-assets"
    );
    assert_eq!(w.env["CALOPS_SLOT"], "blue");
    assert_eq!(w.env["CALOPS_IMAGE"], IMAGE);
    // E-mail through Email Delivery as the resource principal: no SMTP password anywhere.
    assert_eq!(
        w.env["CALOPS_MAIL_TRANSPORT"],
        "oci-email:ocid1.compartment.oc1..aaaaaaaaprodaucompartmentexample000000000000000000000000000"
    );
    assert_eq!(w.env["CALOPS_MAIL_FROM"], "bookings@example.com");
    assert!(
        !w.env.keys().any(|k| k.starts_with("CALOPS_SMTP")),
        "{:?}",
        w.env.keys()
    );
    assert_eq!(w.liveness_path, calops::runtime::LIVENESS_PATH);
    assert_eq!(w.readiness_path, calops::runtime::READINESS_PATH);
    for (k, v) in &w.env {
        assert_no_secret(&format!("the rendered {k}"), v, &w.secrets);
    }

    let mut env = w.env.clone();
    env.extend(w.platform.clone());
    let (child, base, _private, log) = serve_live(&w, &env).await;
    let c = Client::at(&base);
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();

    // Ready: the database over TLS, Redis over TLS (rate limits shared through it), object
    // storage through the native API.
    let (status, health) = c
        .call(reqwest::Method::GET, &w.readiness_path, None, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{health}\n{}", read_log());
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["checks"]["redis"]["status"], "up", "{health}");
    assert_eq!(health["rateLimits"]["backend"], "redis", "{health}");
    assert_eq!(
        health["checks"]["objectStorage"]["status"], "up",
        "{health}"
    );
    assert_eq!(health["slot"], "blue");

    // A booking over HTTP, with the admin token read from Vault; its calendar lands in the
    // stand-in bucket through PutObject (signed as the resource principal, no body hash).
    let (org_id, booking) = book(&c, &w.admin_token).await;
    assert_eq!(booking["status"], "accepted", "{booking}");
    let prefix = format!("ics/{org_id}/");
    let ics = eventually(30, "the booking's calendar in the bucket", || {
        let objects = w.oci.store.lock().unwrap().objects.clone();
        let prefix = prefix.clone();
        async move {
            objects
                .iter()
                .find(|((b, n), _)| b == "calops-prod-au-assets" && n.starts_with(&prefix))
                .map(|(_, (body, _, ct))| (String::from_utf8_lossy(body).to_string(), ct.clone()))
        }
    })
    .await;
    assert!(ics.0.starts_with("BEGIN:VCALENDAR"), "{}", ics.0);
    assert_eq!(ics.1, "text/calendar; charset=utf-8");

    // Its confirmations went to Email Delivery's SubmitRawEmail, signed as the resource
    // principal (the stand-in refuses anything else): one whole MIME message per recipient,
    // from the approved sender, with the invitation.
    let mails = eventually(30, "the booking's e-mail submitted", || {
        let mails = w.oci.store.lock().unwrap().raw_emails.clone();
        async move { (mails.len() >= 2).then_some(mails) }
    })
    .await;
    let mut to: Vec<&str> = mails
        .iter()
        .map(|(h, _)| h["recipients"].as_str())
        .collect();
    to.sort();
    assert_eq!(to, ["host@example.com", "zoe@example.com"]);
    for (h, body) in &mails {
        assert_eq!(h["sender"], "bookings@example.com");
        assert_eq!(h["content-type"], "message/rfc822");
        assert!(
            h["compartment-id"].starts_with("ocid1.compartment."),
            "{h:?}"
        );
        let text = String::from_utf8_lossy(body);
        assert!(
            text.contains("text/calendar; charset=utf-8; method=REQUEST"),
            "{text}"
        );
        assert!(text.contains("BEGIN:VCALENDAR"), "{text}");
    }

    // The stale token was refused, read again from its file, and every call since signed with
    // the renewed one; nothing else was refused.
    let failures = w.oci.store.lock().unwrap().failures.clone();
    assert!(!failures.is_empty(), "the stale token was never refused");
    assert!(failures.iter().all(|f| f == EXPIRED_TOKEN), "{failures:?}");
    assert_eq!(std::fs::read_to_string(&w.rpst).unwrap(), w.fresh_token);

    // No secret value in the process's environment, its logs, /health or any answer.
    let environ = std::fs::read(format!("/proc/{}/environ", child.id())).unwrap();
    let environ = String::from_utf8_lossy(&environ).replace('\0', "\n");
    assert!(
        environ.contains("CALOPS_DATABASE_PASSWORD_REF=vault:ocid1.vaultsecret."),
        "the environment is the rendered one"
    );
    assert_no_secret("the process environment", &environ, &w.secrets);
    let logs = read_log();
    assert!(logs.contains("listening"), "{logs}");
    assert_no_secret("the logs", &logs, &w.secrets);
    assert_no_secret("/health", &health.to_string(), &w.secrets);
    assert!(
        !c.saw(&w.pg.password),
        "the database password came back in a response"
    );

    // Liveness does not depend on the database: with it gone, /health says 503 and /livez 200.
    w.pg.cluster.stop().unwrap();
    // (`/health` keeps its result for a second.)
    let (c2, path) = (c.clone(), w.readiness_path.clone());
    eventually(10, "/health to say 503 with the database gone", || {
        let (c, path) = (c2.clone(), path.clone());
        async move {
            let (status, _) = c.call(reqwest::Method::GET, &path, None, None).await;
            (status == StatusCode::SERVICE_UNAVAILABLE).then_some(())
        }
    })
    .await;
    let (status, live) = c
        .call(reqwest::Method::GET, &w.liveness_path, None, None)
        .await;
    assert_eq!(
        (status, &live["status"]),
        (StatusCode::OK, &json!("alive")),
        "{live}"
    );

    stop(child, &log);
    assert_no_secret("the logs", &read_log(), &w.secrets);
    drop(w.redis);
}

/// Bad configuration fails at start: a non-zero exit, one line that names the variable and the
/// fix, and no secret printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_fails_at_start_naming_the_variable() {
    let test = "bad_configuration_fails_at_start_naming_the_variable";
    if !have_tools(test) {
        return;
    }
    let w = world(test).await;
    let expired = w.dir.path().join("rpst-expired");
    std::fs::write(&expired, session_token(unix_in(0) - 60, "expired")).unwrap();
    let other_ca = w.pki.other_ca_pem.clone();
    let redis_plain = format!("redis://127.0.0.1:{}", w.redis.port);
    let expired_path = expired.display().to_string();
    type Edit = Box<dyn Fn(&mut BTreeMap<String, String>)>;
    let cases: Vec<(&str, &str, Edit)> = vec![
        (
            "no password for the database",
            "CALOPS_DATABASE_PASSWORD_REF",
            Box::new(|e| {
                e.remove("CALOPS_DATABASE_PASSWORD_REF");
            }),
        ),
        (
            "a reference to a variable that is not set",
            "CALOPS_ADMIN_TOKEN_REF",
            Box::new(|e| {
                e.insert(
                    "CALOPS_ADMIN_TOKEN_REF".into(),
                    "env:CALOPS_ADMIN_TOKEN".into(),
                );
            }),
        ),
        (
            "Vault answers 404",
            "CALOPS_DATABASE_PASSWORD_REF",
            Box::new(|e| {
                e.insert(
                    "CALOPS_DATABASE_PASSWORD_REF".into(),
                    "vault:ocid1.vaultsecret.oc1.ap-sydney-1.nosuchsecret".into(),
                );
            }),
        ),
        (
            "an expired resource principal token",
            "OCI_RESOURCE_PRINCIPAL_RPST",
            Box::new(move |e| {
                e.insert("OCI_RESOURCE_PRINCIPAL_RPST".into(), expired_path.clone());
            }),
        ),
        (
            "a CA that does not sign the database's certificate",
            "CALOPS_DATABASE_CA_CERT",
            Box::new(move |e| {
                e.insert("CALOPS_DATABASE_CA_CERT".into(), other_ca.clone());
            }),
        ),
        (
            "plain redis:// to a TLS-only server",
            "REDIS_URL",
            Box::new(move |e| {
                e.insert("REDIS_URL".into(), redis_plain.clone());
            }),
        ),
    ];
    for (i, (what, var, edit)) in cases.iter().enumerate() {
        let mut env = w.env.clone();
        env.extend(w.platform.clone());
        edit(&mut env);
        let log = w.dir.path().join(format!("bad-{i}.log"));
        let mut child = serve(&env, calops::pg::free_port().unwrap(), &log);
        let until = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > until {
                let _ = child.kill();
                panic!(
                    "{what}: still running after 60 s:\n{}",
                    std::fs::read_to_string(&log).unwrap()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let out = std::fs::read_to_string(&log).unwrap();
        assert_eq!(status.code(), Some(1), "{what}:\n{out}");
        let line = out
            .lines()
            .find(|l| l.contains(var) && l.contains("fix:"))
            .unwrap_or_else(|| panic!("{what}: no line names {var} and the fix:\n{out}"));
        assert!(!line.contains("caused by"), "{what}: {line}");
        assert_no_secret(what, &out, &w.secrets);
    }
}

/// One figure of `/metrics` (an unlabelled sample).
async fn metric(http: &reqwest::Client, base: &str, name: &str) -> f64 {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// Book for `for_at_least` on two concurrent loops, each booking the next free half hour
/// (`next` numbers them across phases); every booking must be created. The latencies.
async fn book_for(
    c: &Client,
    key: &str,
    et: i64,
    next: &Arc<std::sync::atomic::AtomicU64>,
    for_at_least: Duration,
) -> Vec<Duration> {
    let until = Instant::now() + for_at_least;
    let one = |c: Client, key: String, next: Arc<std::sync::atomic::AtomicU64>| async move {
        let mut took = Vec::new();
        while Instant::now() < until {
            // Six half hours a day (09:00-12:00 UTC), from 2032-01-01 on.
            let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let start = jiff::civil::date(2032, 1, 1)
                .at(9, 0, 0, 0)
                .to_zoned(jiff::tz::TimeZone::UTC)
                .unwrap()
                .checked_add(
                    jiff::Span::new()
                        .days((n / 6) as i64)
                        .minutes((n % 6) as i64 * 30),
                )
                .unwrap();
            let t = Instant::now();
            let (status, v) = c
                .post(
                    "/v2/bookings",
                    &key,
                    json!({"start": start.timestamp().to_string(), "eventTypeId": et,
                           "attendee": {"name": "Load", "email": "load@example.com", "timeZone": "UTC"}}),
                )
                .await;
            took.push(t.elapsed());
            assert_eq!(status, StatusCode::CREATED, "booking #{n}: {v}");
        }
        took
    };
    let (a, b) = tokio::join!(
        one(c.clone(), key.to_string(), next.clone()),
        one(c.clone(), key.to_string(), next.clone())
    );
    a.into_iter().chain(b).collect()
}

/// The rendered environment with what OCI gives a container, the exporter posting to the
/// stand-in a snapshot a second (a minute in production), and no booking limit for the load.
fn exporting(w: &World) -> BTreeMap<String, String> {
    let mut env = w.env.clone();
    env.extend(w.platform.clone());
    env.insert(
        "CALOPS_ENDPOINT_TELEMETRYINGESTION".into(),
        w.oci.base.to_string(),
    );
    env.insert("CALOPS_METRICS_INTERVAL".into(), "1s".into());
    env.insert("CALOPS_RATE_LIMIT_BOOKINGS".into(), "off".into());
    env
}

/// Stop `serve` with SIGTERM; it must exit cleanly (its log otherwise).
fn stop(mut child: Child, log: &Path) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "{status:?}\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

fn p95(mut d: Vec<Duration>) -> Duration {
    d.sort();
    d[(d.len() * 95).div_ceil(100).saturating_sub(1)]
}

/// On OCI (the rendered environment) the service posts its metrics to Monitoring, signed as its
/// resource principal, in well-formed batches while it takes bookings; when Monitoring answers
/// 500 or hangs, bookings are not slower (p95 within a generous bound of the healthy phase's,
/// in the same run) and none is lost: only metrics are dropped, and counted. When Monitoring
/// is back, posting resumes, and every stream the service counts as posted reached it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_posts_its_metrics_and_monitoring_faults_never_slow_bookings() {
    use crate::support::monitoring::Fault;
    use calops::runtime::telemetry as t;
    let test = "the_service_posts_its_metrics_and_monitoring_faults_never_slow_bookings";
    if !have_tools(test) {
        return;
    }
    let w = world(test).await;
    // The contract turns the exporter on.
    assert_eq!(w.env["CALOPS_METRICS_NAMESPACE"], t::NAMESPACE);
    let compartment = w.env["CALOPS_METRICS_COMPARTMENT_ID"].clone();
    assert!(
        compartment.starts_with("ocid1.compartment."),
        "{compartment}"
    );

    let env = exporting(&w);
    let (child, base, private, log) = serve_live(&w, &env).await;
    let c = Client::at(&base);
    let http = reqwest::Client::new();
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let (key, _, et) = host(&c, &w.admin_token).await;
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let phase = Duration::from_secs(6);

    // Healthy Monitoring: batches arrive while bookings are made.
    let healthy = book_for(&c, &key, et, &next, phase).await;
    let oci = w.oci.clone();
    eventually(10, "a batch with the bookings", || {
        let posts = oci.store.lock().unwrap().metric_posts.clone();
        async move {
            posts
                .iter()
                .flat_map(|p| p["metricData"].as_array().unwrap().clone())
                .any(|m| m["name"] == t::BOOKINGS_CREATED)
                .then_some(())
        }
    })
    .await;

    // Monitoring fails, then hangs: bookings go on as fast, and the metrics of the faulty
    // phases are dropped and counted.
    let mut phases = vec![(Fault::None, healthy)];
    for fault in [Fault::Fail, Fault::Hang] {
        let failures = metric(&http, &private, "calops_metrics_export_failures_total").await;
        w.oci.store.lock().unwrap().monitoring_fault = fault;
        phases.push((fault, book_for(&c, &key, et, &next, phase).await));
        eventually(15, "the exporter to count the failed post", || {
            let (http, private) = (http.clone(), private.clone());
            async move {
                (metric(&http, &private, "calops_metrics_export_failures_total").await > failures)
                    .then_some(())
            }
        })
        .await;
    }
    let dropped = metric(&http, &private, "calops_metrics_export_dropped_total").await;
    assert!(dropped > 0.0, "nothing counted as dropped");

    // Back: posting resumes.
    let before = w.oci.store.lock().unwrap().metric_posts.len();
    w.oci.store.lock().unwrap().monitoring_fault = Fault::None;
    eventually(15, "posting to resume", || {
        let n = oci.store.lock().unwrap().metric_posts.len();
        async move { (n > before).then_some(()) }
    })
    .await;

    // Every stream the service counts as posted reached Monitoring (read until a post in
    // flight cannot make the two differ).
    eventually(
        15,
        "the posted count to match what Monitoring received",
        || {
            let (http, private, oci) = (http.clone(), private.clone(), oci.clone());
            async move {
                let posted = metric(&http, &private, "calops_metrics_export_posted_total").await;
                let received: usize = oci
                    .store
                    .lock()
                    .unwrap()
                    .metric_posts
                    .iter()
                    .map(|p| p["metricData"].as_array().unwrap().len())
                    .sum();
                (posted as usize == received).then_some(())
            }
        },
    )
    .await;

    // Every batch was well formed (the stand-in refused none), signed as the resource
    // principal (no signature refused but the stale token's), and says where it comes from.
    let st = w.oci.store.lock().unwrap();
    assert!(
        st.metric_rejections.is_empty(),
        "{:?}",
        st.metric_rejections
    );
    assert!(
        st.failures.iter().all(|f| f == EXPIRED_TOKEN),
        "{:?}",
        st.failures
    );
    let mut names = std::collections::BTreeSet::new();
    for item in st
        .metric_posts
        .iter()
        .flat_map(|p| p["metricData"].as_array().unwrap())
    {
        assert_eq!(item["namespace"], t::NAMESPACE);
        assert_eq!(item["compartmentId"], compartment.as_str());
        assert_eq!(item["dimensions"]["slot"], "blue");
        assert_eq!(item["dimensions"]["release"], "abababababab");
        let name = item["name"].as_str().unwrap().to_string();
        assert!(t::metric(&name).is_some(), "{name} is not in METRICS");
        names.insert(name);
    }
    for name in [
        t::HTTP_REQUESTS,
        t::HTTP_LATENCY,
        t::BOOKINGS_CREATED,
        t::QUEUE_DEPTH,
        t::DB_POOL_SATURATION,
        t::METRICS_DROPPED,
    ] {
        assert!(names.contains(name), "{name} never posted: {names:?}");
    }
    drop(st);

    // Bookings: none lost (each answered 201 above), and none slower than twice the healthy
    // phase's p95 plus 50 ms (a generous bound for a shared machine).
    let p95s: Vec<(Fault, Duration, usize)> = phases
        .iter()
        .map(|(f, took)| (*f, p95(took.clone()), took.len()))
        .collect();
    eprintln!("booking p95 by phase (Monitoring's state, p95, bookings): {p95s:?}");
    let healthy = p95s[0].1;
    for (fault, fault_p95, _) in &p95s[1..] {
        assert!(
            *fault_p95 <= healthy * 2 + Duration::from_millis(50),
            "Monitoring {fault:?} slowed bookings: p95 {fault_p95:?} vs {healthy:?} healthy ({p95s:?})"
        );
    }

    stop(child, &log);
    assert_no_secret("the logs", &read_log(), &w.secrets);
}

/// Rendered alarms of the stack (`service_alarms` of `terraform.tfvars.json`) as OCI Monitoring
/// would hold them: display names `<name>-<key>`, as the monitoring module names them.
fn rendered_alarms(rendered: &Path) -> (Vec<crate::support::monitoring::Alarm>, Value) {
    let tfvars: Value = serde_json::from_str(
        &std::fs::read_to_string(rendered.join("terraform.tfvars.json")).unwrap(),
    )
    .unwrap();
    let name = tfvars["name"].as_str().unwrap();
    let alarms = tfvars["service_alarms"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(key, a)| crate::support::monitoring::Alarm {
            display_name: format!("{name}-{key}"),
            namespace: a["namespace"].as_str().unwrap().to_string(),
            query: a["query"].as_str().unwrap().to_string(),
            severity: a["severity"].as_str().unwrap().to_string(),
            summary: a["summary"].as_str().unwrap().to_string(),
        })
        .collect();
    (alarms, tfvars)
}

/// `calops status --json` on an OCI profile against the stand-in: the real service (the
/// rendered environment) posts its metrics while it takes bookings, some of which fail (taken
/// slots, bad input); `status` reads the figures back with SummarizeMetricsData, filtered on the
/// live release's slot and release, and they count exactly what the service answered; of the
/// rendered alarms, evaluated by the stand-in over the posted data, the booking-failures one
/// (crossed) is listed as firing and the 5xx one (not crossed: no 5xx) is not; the exit code
/// says an alarm fires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_on_oci_shows_the_posted_figures_and_the_firing_alarms() {
    use calops::deploy::ledger::{Kind, Ledger, Outcome, Release};
    use calops::oci::client::{OciClient, Service};
    use calops::runtime::telemetry as t;
    let test = "status_on_oci_shows_the_posted_figures_and_the_firing_alarms";
    if !have_tools(test) {
        return;
    }
    let w = world(test).await;
    let env = exporting(&w);
    let (child, base, _private, log) = serve_live(&w, &env).await;
    let c = Client::at(&base);

    // Load: bookings made, slots taken twice (409), bad input (400).
    let (key, _, et) = host(&c, &w.admin_token).await;
    let at = |n: i64| {
        jiff::civil::date(2032, 1, 1)
            .at(9, 0, 0, 0)
            .to_zoned(jiff::tz::TimeZone::UTC)
            .unwrap()
            .checked_add(jiff::Span::new().minutes(n * 30))
            .unwrap()
            .timestamp()
            .to_string()
    };
    let book = |start: String| {
        let (c, key) = (c.clone(), key.clone());
        async move {
            c.post(
                "/v2/bookings",
                &key,
                json!({"start": start, "eventTypeId": et,
                       "attendee": {"name": "Load", "email": "load@example.com", "timeZone": "UTC"}}),
            )
            .await
            .0
        }
    };
    let (created, conflicts, invalid) = (6, 2, 1);
    for n in 0..created {
        assert_eq!(book(at(n)).await, StatusCode::CREATED, "booking #{n}");
    }
    for n in 0..conflicts {
        assert_eq!(book(at(n)).await, StatusCode::CONFLICT, "taken slot #{n}");
    }
    for _ in 0..invalid {
        assert_eq!(book("not a time".into()).await, StatusCode::BAD_REQUEST);
    }

    // Everything the service counted reached the stand-in.
    let oci = w.oci.clone();
    let posted = move |name: &'static str, reason: Option<&'static str>| {
        oci.store
            .lock()
            .unwrap()
            .metric_posts
            .iter()
            .flat_map(|p| p["metricData"].as_array().unwrap().clone())
            .filter(|m| m["name"] == name && reason.is_none_or(|r| m["dimensions"]["reason"] == r))
            .map(|m| m["datapoints"][0]["value"].as_f64().unwrap())
            .sum::<f64>()
    };
    eventually(20, "the bookings' metrics to be posted", || {
        let done = posted(t::BOOKINGS_CREATED, None) == created as f64
            && posted(t::BOOKINGS_FAILED, Some("conflict")) == conflicts as f64
            && posted(t::BOOKINGS_FAILED, Some("invalid")) == invalid as f64;
        async move { done.then_some(()) }
    })
    .await;

    // Monitoring has the rendered alarms, in the stack's compartment.
    let rendered = w.dir.path().join("rendered");
    let (alarms, tfvars) = rendered_alarms(&rendered);
    let compartment = tfvars["compartment_id"].as_str().unwrap().to_string();
    assert_eq!(
        compartment, w.env["CALOPS_METRICS_COMPARTMENT_ID"],
        "the service posts where the alarms look"
    );
    let stack = tfvars["name"].as_str().unwrap().to_string();
    assert!(alarms
        .iter()
        .any(|a| a.display_name == format!("{stack}-calendar-sync")));
    {
        let mut st = w.oci.store.lock().unwrap();
        st.alarms = alarms;
        st.alarms_compartment = compartment.clone();
    }

    // The operator's side: an OCI config with the API key, the state bucket with the live
    // release (slot blue, the image the service runs), and the profile.
    let dir = w.dir.path();
    let key_pem = crate::support::oci::shared_key(&vectors());
    let config = crate::support::ocistand::write_config(dir, &key_pem, "ap-sydney-1");
    let mut client = OciClient::new(
        calops::oci::signer::Signer::new(crate::support::ocistand::key_id(&key_pem), key_pem),
        "ap-sydney-1",
    )
    .unwrap();
    for svc in Service::ALL {
        client = client.with_endpoint(svc, w.oci.base.clone());
    }
    let client = Arc::new(client);
    calops::deploy::oci::bootstrap::ensure_state_bucket(
        &client,
        None,
        "calops-state",
        &compartment,
    )
    .await
    .unwrap();
    let ledger = Ledger::new(
        calops::deploy::ocistore::OciStore::new(client, "testns", "calops-state"),
        "status/",
    );
    let mut details = serde_json::Map::new();
    details.insert("slot".into(), json!("blue"));
    details.insert("image".into(), json!(IMAGE));
    ledger
        .begin(Release {
            seq: 0,
            id: "r1".into(),
            kind: Kind::Deploy,
            time: jiff::Timestamp::now(),
            user: "ops".into(),
            artifact_digest: IMAGE.split_once('@').unwrap().1.into(),
            profile_hash: "p".into(),
            inputs_hash: "i".into(),
            outcome: Outcome::Succeeded,
            restores: None,
            failure: None,
            steps: vec![],
            details,
        })
        .await
        .unwrap();
    let profile = dir.join("status-profile.toml");
    std::fs::write(
        &profile,
        format!(
            "{PINNED}config_file = \"{}\"\n\n[state]\nbucket = \"calops-state\"\nprefix = \"status\"\n",
            config.display()
        ),
    )
    .unwrap();

    // The real `calops status`.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_calops"));
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("CALOPS_PROFILE_DIR", root().join("profiles"))
        .env("CALOPS_HEALTH_URL", &base)
        .args(["status", "--json", "--profile"])
        .arg(&profile);
    for svc in Service::ALL {
        cmd.env(svc.env_var(), w.oci.base.as_str());
    }
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&out.stdout)));
    eprintln!("calops status took {took:?} (shared machine)");
    assert_eq!(doc["healthy"], true, "{doc}\n{stderr}");
    assert_eq!(doc["figures_error"], Value::Null, "{doc}");
    let f = &doc["figures"];
    assert_eq!(f["source"], "monitoring");
    let tr = &f["traffic"][0];
    assert_eq!(tr["window"], "last 5m");
    assert_eq!(tr["bookings_created"], created, "{f}");
    assert_eq!(
        tr["bookings_failed"],
        json!({"conflict": conflicts, "invalid": invalid}),
        "{f}"
    );
    assert_eq!(tr["errors_5xx"], 0, "{f}");
    assert!(
        tr["requests"].as_u64().unwrap() >= (created + conflicts + invalid) as u64,
        "{f}"
    );
    assert!(f["db_pool_saturation_percent"].is_number(), "{f}");
    assert!(f["queues"]["webhooks"]["depth"].is_u64(), "{f}");
    // Only the live release's streams were asked for.
    for q in &w.oci.store.lock().unwrap().metric_queries {
        assert!(
            q.contains("slot = \"blue\"") && q.contains("release = \"abababababab\""),
            "{q}"
        );
    }
    let firing: Vec<&str> = doc["alarms_firing"]
        .as_array()
        .unwrap_or_else(|| panic!("{doc}\n{stderr}"))
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(
        firing.contains(&format!("{stack}-booking-failures").as_str()),
        "{firing:?}"
    );
    assert!(
        !firing.contains(&format!("{stack}-service-5xx").as_str()),
        "{firing:?}"
    );
    assert_eq!(out.status.code(), Some(1), "an alarm fires: {stderr}");
    assert!(stderr.contains("alarm firing"), "{stderr}");
    w.oci
        .store
        .lock()
        .unwrap()
        .failures
        .retain(|f| f != EXPIRED_TOKEN);
    assert!(
        w.oci.store.lock().unwrap().failures.is_empty(),
        "signatures refused: {:?}",
        w.oci.store.lock().unwrap().failures
    );

    stop(child, &log);
}
