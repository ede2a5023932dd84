//! Deploy by pull end to end, with real processes: `calops deploy` (API key) and `calops agent`
//! (instance principal: the stand-in metadata and auth services of `support::imds`) against
//! the signature-checking OCI stand-in on 127.0.0.1; the agent runs the local target's release
//! pipeline (a private PostgreSQL cluster, `calops serve` releases on a shared port) in a
//! directory of its own, as on the VM. Releases are small scripts that exec the calops under
//! test (distinct digests, the same service), and one whose `serve` exits (it fails its checks).

use crate::support::imds;
use crate::support::oci::Oci;
use crate::support::oci::Signer;
use crate::support::ocistand;
use crate::support::site::{have_postgres_server, stable_binary};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BUCKET: &str = "calops-vmtest";
const PROFILE: &str = "vmtest";

struct Vm {
    /// The operator's directory: profiles, OCI config and key, releases.
    ops: tempfile::TempDir,
    /// The VM's directory (the agent's working directory).
    vm: tempfile::TempDir,
    oci: Arc<Oci>,
    _server: tokio::task::JoinHandle<()>,
    imds: Arc<Mutex<imds::State>>,
    endpoints: calops::oci::instance::Endpoints,
    port: u16,
    calops: PathBuf,
    agent: Option<tokio::process::Child>,
}

impl Vm {
    /// The stand-ins, the stack's bucket, the operator's profile; `None` (skipped locally,
    /// failed under CI) without PostgreSQL.
    async fn new(test: &str) -> Option<Vm> {
        Self::with_profile(test, "").await
    }

    /// [`Vm::new`] with `extra` appended to the operator's profile (its last section is
    /// `[service.environment]`).
    async fn with_profile(test: &str, extra: &str) -> Option<Vm> {
        if !have_postgres_server(test) {
            return None;
        }
        let key = ocistand::key();
        let (oci, server) = Oci::start(key.to_public_key(), vec![ocistand::key_id(&key)]).await;
        {
            let mut st = oci.store.lock().unwrap();
            st.strict_buckets = true;
            st.buckets.insert(
                BUCKET.into(),
                json!({"name": BUCKET, "namespace": "testns", "compartmentId": "ocid1.compartment.oc1..c",
                    "etag": "b1", "publicAccessType": "NoPublicAccess", "storageTier": "Standard",
                    "versioning": "Enabled", "timeCreated": "2025-03-04T05:06:07.000Z"}),
            );
        }
        let (imds_state, endpoints) = imds::serve_for(&oci).await;
        let ops = tempfile::tempdir().unwrap();
        let vm = tempfile::tempdir().unwrap();
        let profiles = ops.path().join("profiles");
        std::fs::create_dir(&profiles).unwrap();
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
        for p in ["base", "free-au"] {
            std::fs::copy(
                shipped.join(format!("{p}.toml")),
                profiles.join(format!("{p}.toml")),
            )
            .unwrap();
        }
        let config = ocistand::write_config(ops.path(), &key, "ap-sydney-1");
        std::fs::write(
            profiles.join(format!("{PROFILE}.toml")),
            format!(
                "extends = \"free-au\"\n\n[oci]\nconfig_file = \"{}\"\nobject_storage_namespace = \"testns\"\n\n[storage]\nbucket_name = \"{BUCKET}\"\n\n[deploy]\nhealth_timeout_seconds = 120\n\n[database]\narchive_timeout_seconds = 5\n\n[service.environment]\nCALOPS_RATE_LIMIT_AVAILABILITY = \"off\"\n{extra}",
                config.display()
            ),
        )
        .unwrap();
        let calops = stable_binary(ops.path());
        Some(Vm {
            ops,
            vm,
            oci,
            _server: server,
            imds: imds_state,
            endpoints,
            port: calops::deploy::local::process::free_port().unwrap(),
            calops,
            agent: None,
        })
    }

    /// A release: a script that execs the calops under test (`broken`: its `serve` exits).
    fn release(&self, name: &str, broken: bool) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = self.ops.path().join(format!("release-{name}"));
        let fail = if broken {
            "if [ \"$1\" = serve ]; then echo \"release {name}: this release fails its checks\" >&2; exit 3; fi\n"
        } else {
            ""
        };
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\n# release {name}\n{}exec {} \"$@\"\n",
                fail.replace("{name}", name),
                self.calops.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    fn digest(path: &Path) -> String {
        calops::fsutil::file_digest(path).unwrap()
    }

    fn clean(cmd: &mut tokio::process::Command) {
        for (k, _) in std::env::vars() {
            if k.starts_with("CALOPS_") || k.starts_with("OCI_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("NO_COLOR", "1");
    }

    /// `calops ARGS --profile vmtest --json` as the operator.
    fn ops_cmd(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.calops);
        Self::clean(&mut c);
        c.current_dir(self.ops.path())
            .args(args)
            .args(["--profile", PROFILE, "--json", "--no-progress"])
            .env("CALOPS_ENDPOINT_OBJECTSTORAGE", self.oci.base.as_str())
            .env(
                "CALOPS_HEALTH_URL",
                format!("http://127.0.0.1:{}", self.port),
            )
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        c
    }

    /// [`Vm::ops_cmd`] run: (exit code, document, stderr).
    async fn ops(&self, args: &[&str]) -> (i32, Value, String) {
        crate::support::json_output(args, &self.ops_cmd(args).output().await.unwrap())
    }

    /// `calops agent` as on the VM (its environment as cloud-init writes it, the endpoints of
    /// the stand-ins), with `args`.
    fn agent_cmd(&self, bucket: &str, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.calops);
        Self::clean(&mut c);
        c.current_dir(self.vm.path())
            .arg("agent")
            .args(args)
            .env("CALOPS_PROFILE", PROFILE)
            .env("CALOPS_BUCKET", bucket)
            .env("CALOPS_LOCAL_BIND", "127.0.0.1")
            .env("CALOPS_LOCAL_PORT", self.port.to_string())
            .env("CALOPS_AGENT_INTERVAL", "200ms")
            .env("OCI_METADATA_BASE_URL", self.endpoints.metadata.as_str())
            .env(
                "OCI_SDK_AUTH_CLIENT_REGION_URL",
                self.endpoints.auth.as_ref().unwrap().as_str(),
            )
            .env("CALOPS_ENDPOINT_OBJECTSTORAGE", self.oci.base.as_str())
            // The service it starts reaches Vault and Monitoring there too.
            .env("CALOPS_ENDPOINT_SECRETS", self.oci.base.as_str())
            .env("CALOPS_ENDPOINT_TELEMETRYINGESTION", self.oci.base.as_str())
            .env("CALOPS_ENDPOINT_EMAILSUBMISSION", self.oci.base.as_str());
        c
    }

    /// Start the agent in the background (its output in the VM directory's `agent.log`).
    fn start_agent(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.vm.path().join("agent.log"))
            .unwrap();
        let mut c = self.agent_cmd(BUCKET, &["--no-progress"]);
        c.stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true);
        self.agent = Some(c.spawn().unwrap());
    }

    fn agent_log(&self) -> String {
        std::fs::read_to_string(self.vm.path().join("agent.log")).unwrap_or_default()
    }

    fn object(&self, key: &str) -> Option<Vec<u8>> {
        self.oci
            .store
            .lock()
            .unwrap()
            .objects
            .get(&(BUCKET.to_string(), key.to_string()))
            .map(|(b, _, _)| b.to_vec())
    }

    fn json_object(&self, key: &str) -> Option<Value> {
        self.object(key)
            .map(|b| serde_json::from_slice(&b).unwrap())
    }

    fn desired(&self) -> Value {
        self.json_object("calops-deploy/desired.json")
            .expect("desired.json")
    }

    fn report(&self, id: &str) -> Value {
        self.json_object(&format!("calops-deploy/reports/{id}.json"))
            .unwrap_or_else(|| panic!("no report on {id}\n{}", self.agent_log()))
    }

    fn root(&self) -> PathBuf {
        self.vm.path().join(".calops").join(PROFILE)
    }

    /// The digest the VM's local target serves now.
    fn serving(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.root().join("run/current.json")).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        v["digest"].as_str().map(String::from)
    }

    /// `calops serve` processes of the VM's local target (each a release on the port).
    fn serve_processes(&self) -> usize {
        let root = std::fs::canonicalize(self.root()).unwrap_or(self.root());
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
            .filter(|e| std::fs::read_link(e.path().join("cwd")).ok().as_deref() == Some(&root))
            .filter(|e| {
                std::fs::read(e.path().join("cmdline"))
                    .map(|c| c.split(|b| *b == 0).nth(1) == Some(b"serve"))
                    .unwrap_or(false)
            })
            .count()
    }

    async fn health(&self) -> u16 {
        match reqwest::get(format!("http://127.0.0.1:{}/health", self.port)).await {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Some(a) = &mut self.agent {
            let _ = a.start_kill();
        }
        // Stop what the agent started (service, PostgreSQL, Redis): the same layout as a local
        // profile of the same name.
        let profiles = self.vm.path().join("profiles");
        let _ = std::fs::create_dir_all(&profiles);
        let _ = std::fs::copy(
            self.ops.path().join("profiles/base.toml"),
            profiles.join("base.toml"),
        );
        let _ = std::fs::write(
            profiles.join(format!("{PROFILE}.toml")),
            "extends = \"base\"\ntarget = \"local\"\n",
        );
        let _ = std::process::Command::new(&self.calops)
            .current_dir(self.vm.path())
            .args(["destroy", "--yes", "--profile", PROFILE, "--no-progress"])
            .output();
    }
}

/// Clients requesting `/openapi.json` and `/livez` until stopped, over kept-alive connections
/// and without retries: a request counts as failed unless it got 200 and its whole body.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    errors: Arc<Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(port: u16, clients: usize) -> Load {
        use http_body_util::BodyExt;
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let http: hyper_util::client::legacy::Client<_, http_body_util::Empty<bytes::Bytes>> =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .retry_canceled_requests(false)
                .build_http();
        let tasks = (0..clients)
            .map(|i| {
                let (stop, ok, errors, http) =
                    (stop.clone(), ok.clone(), errors.clone(), http.clone());
                let path = if i % 2 == 0 {
                    "/openapi.json"
                } else {
                    "/livez"
                };
                let url: hyper::Uri = format!("http://127.0.0.1:{port}{path}").parse().unwrap();
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let r = tokio::time::timeout(Duration::from_secs(10), async {
                            let res = http.get(url.clone()).await.map_err(|e| format!("{e:?}"))?;
                            let status = res.status().as_u16();
                            res.into_body()
                                .collect()
                                .await
                                .map_err(|e| format!("body: {e:?}"))?;
                            if status == 200 {
                                Ok(())
                            } else {
                                Err(format!("status {status}"))
                            }
                        })
                        .await
                        .unwrap_or_else(|_| Err("no answer in 10 s".into()));
                        match r {
                            Ok(()) => {
                                ok.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(e) => errors.lock().unwrap().push(format!("{path}: {e}")),
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            errors,
            tasks,
        }
    }

    async fn wait_for_more(&self, n: usize) {
        let target = self.ok.load(Ordering::SeqCst) + n;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.ok.load(Ordering::SeqCst) < target {
            assert!(Instant::now() < deadline, "the load made no progress");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            let _ = t.await;
        }
        (
            self.ok.load(Ordering::SeqCst),
            self.errors.lock().unwrap().clone(),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_agent_takes_releases_switches_under_load_rolls_back_and_reports() {
    let Some(mut vm) =
        Vm::new("the_agent_takes_releases_switches_under_load_rolls_back_and_reports").await
    else {
        return;
    };
    vm.start_agent();
    let (one, two, bad) = (
        vm.release("one", false),
        vm.release("two", false),
        vm.release("bad", true),
    );
    let (d1, d2, dbad) = (Vm::digest(&one), Vm::digest(&two), Vm::digest(&bad));

    // The first release: uploaded by digest, desired, taken, reported, healthy.
    let (code, doc, err) = vm.ops(&["deploy", "--binary", one.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{doc}\n{err}\n{}", vm.agent_log());
    assert_eq!(doc["result"], "deployed");
    assert_eq!(doc["release"]["artifact_digest"], d1.as_str());
    let key1 = format!(
        "calops-deploy/releases/{}/calops",
        d1.trim_start_matches("sha256:")
    );
    assert_eq!(vm.object(&key1).unwrap(), std::fs::read(&one).unwrap());
    let desired = vm.desired();
    assert_eq!(desired["digest"], d1.as_str());
    let report = vm.report(desired["id"].as_str().unwrap());
    assert_eq!(report["outcome"], "switched", "{report}");
    assert_eq!(report["serving"], d1.as_str());
    assert_eq!(vm.serving().as_deref(), Some(d1.as_str()));
    assert_eq!(vm.health().await, 200);

    // A new release under load: not one failed request, one service on the port after.
    let load = Load::start(vm.port, 4);
    load.wait_for_more(20).await;
    let (code, doc, err) = vm.ops(&["deploy", "--binary", two.to_str().unwrap()]).await;
    load.wait_for_more(20).await;
    let (ok, errors) = load.finish().await;
    assert_eq!(code, 0, "{doc}\n{err}\n{}", vm.agent_log());
    assert_eq!(doc["release"]["seq"], 2);
    assert!(ok > 40, "the load ran ({ok} requests)");
    assert!(
        errors.is_empty(),
        "failed requests during the switch: {errors:?}"
    );
    assert_eq!(vm.serving().as_deref(), Some(d2.as_str()));
    assert_eq!(vm.serve_processes(), 1, "the old release exited");

    // A release that fails its checks: the agent keeps release two serving and says why; the
    // deploy reports the rollback and writes release two back as the desired one.
    let (code, doc, err) = vm.ops(&["deploy", "--binary", bad.to_str().unwrap()]).await;
    assert_eq!(code, 1, "{doc}\n{err}");
    assert_eq!(doc["result"], "rolled_back", "{doc}");
    let failed_id = doc["release"]["id"].as_str().unwrap().to_string();
    let report = vm.report(&failed_id);
    assert_eq!(report["outcome"], "rolled_back", "{report}");
    assert_eq!(report["digest"], dbad.as_str());
    assert_eq!(report["serving"], d2.as_str());
    let reason = report["reason"].as_str().unwrap();
    assert!(
        reason.contains("exited during start") && reason.contains("fails its checks"),
        "{reason}"
    );
    assert!(
        doc["release"]["failure"]
            .as_str()
            .unwrap()
            .contains("rolled_back"),
        "{doc}"
    );
    let desired = vm.desired();
    assert_eq!(
        desired["digest"],
        d2.as_str(),
        "the previous release is desired again"
    );
    assert_eq!(
        vm.report(desired["id"].as_str().unwrap())["outcome"],
        "switched"
    );
    assert_eq!(vm.serving().as_deref(), Some(d2.as_str()));
    assert_eq!(vm.health().await, 200);
    assert_eq!(vm.serve_processes(), 1);

    // `rollback`: to release one, through the agent.
    let (code, doc, err) = vm.ops(&["rollback"]).await;
    assert_eq!(code, 0, "{doc}\n{err}\n{}", vm.agent_log());
    assert_eq!(doc["release"]["restores"], 1, "{doc}");
    assert_eq!(vm.desired()["digest"], d1.as_str());
    assert_eq!(vm.serving().as_deref(), Some(d1.as_str()));

    // The token the agent holds expires: it gets a new one and goes on.
    let federations = vm.imds.lock().unwrap().federations;
    {
        let mut t = vm.oci.tokens.lock().unwrap();
        let held: Vec<String> = t.session_keys.keys().cloned().collect();
        t.expired.extend(held);
    }
    let (code, doc, err) = vm.ops(&["deploy", "--binary", two.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{doc}\n{err}\n{}", vm.agent_log());
    assert_eq!(vm.serving().as_deref(), Some(d2.as_str()));
    assert!(
        vm.imds.lock().unwrap().federations > federations,
        "the agent federated again"
    );
    assert!(
        vm.oci
            .store
            .lock()
            .unwrap()
            .failures
            .iter()
            .any(|f| f.contains("expired")),
        "the stand-in refused the expired token"
    );

    // The VM's cluster archives its WAL into the bucket, signed as the instance principal, and
    // the operator lists it from there with the API key.
    let deadline = Instant::now() + Duration::from_secs(60);
    let wal = |vm: &Vm| {
        vm.oci
            .store
            .lock()
            .unwrap()
            .objects
            .keys()
            .filter(|(b, k)| b == BUCKET && k.starts_with("backups/wal/"))
            .count()
    };
    while wal(&vm) == 0 {
        assert!(
            Instant::now() < deadline,
            "no WAL archived into the bucket\n{}",
            vm.agent_log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (code, doc, err) = vm.ops(&["backup", "list"]).await;
    assert_eq!(code, 0, "{doc}\n{err}");
    assert!(doc["wal"]["objects"].as_u64().unwrap() >= 1, "{doc}");
    assert_eq!(doc["store"], format!("oci://testns/{BUCKET}/backups/"));

    // The same ledger and lock as OCI: releases, status, lock.
    let (code, doc, _) = vm.ops(&["releases"]).await;
    assert_eq!(code, 0);
    assert_eq!(
        crate::support::release_outcomes(&doc),
        [
            "succeeded",
            "succeeded",
            "rolled_back",
            "succeeded",
            "succeeded"
        ]
    );
    let (code, doc, err) = vm.ops(&["status"]).await;
    assert_eq!(code, 0, "{doc}\n{err}");
    assert_eq!(doc["healthy"], true, "{doc}");
    assert_eq!(doc["report"]["serving"], d2.as_str());
    let (code, doc, _) = vm.ops(&["lock", "status"]).await;
    assert_eq!(code, 0);
    assert!(doc["lock"].is_null(), "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_deploys_have_one_winner_and_a_killed_agent_converges_when_restarted() {
    let Some(mut vm) =
        Vm::new("racing_deploys_have_one_winner_and_a_killed_agent_converges_when_restarted").await
    else {
        return;
    };
    vm.start_agent();
    let (one, two) = (vm.release("one", false), vm.release("two", false));
    let (d1, d2) = (Vm::digest(&one), Vm::digest(&two));

    // Two deploys at once: exactly one takes the lock and deploys; the other is told who holds it.
    let (args_a, args_b) = (
        ["deploy", "--binary", one.to_str().unwrap()],
        ["deploy", "--binary", two.to_str().unwrap()],
    );
    let (a, b) = tokio::join!(vm.ops(&args_a), vm.ops(&args_b));
    let codes = [a.0, b.0];
    assert_eq!(
        codes.iter().filter(|c| **c == 0).count(),
        1,
        "{a:?}\n{b:?}\n{}",
        vm.agent_log()
    );
    let (winner, loser) = if a.0 == 0 { (&a, &b) } else { (&b, &a) };
    assert!(loser.2.contains("deploy lock is held by"), "{}", loser.2);
    let won = winner.1["release"]["artifact_digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(vm.serving().as_deref(), Some(won.as_str()));
    let next = if won == d1 { two.clone() } else { one.clone() };
    let dnext = if won == d1 { d2.clone() } else { d1.clone() };

    // The agent is killed while it switches to the next release: once restarted it takes the
    // same desired release again and finishes; never more than two releases on the port, and
    // exactly one after.
    let deploy = vm
        .ops_cmd(&["deploy", "--binary", next.to_str().unwrap()])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while vm.serve_processes() < 2 {
        assert!(
            Instant::now() < deadline,
            "no candidate started\n{}",
            vm.agent_log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut agent = vm.agent.take().unwrap();
    let pid = agent.id().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = agent.wait().await;
    let desired = vm.desired();
    assert_eq!(desired["digest"], dnext.as_str());
    let id = desired["id"].as_str().unwrap().to_string();
    assert!(
        vm.object(&format!("calops-deploy/reports/{id}.json"))
            .is_none(),
        "killed before it reported"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(vm.serve_processes() <= 2);
    vm.start_agent();
    let out = deploy.wait_with_output().await.unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{doc}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        vm.agent_log()
    );
    assert_eq!(vm.report(&id)["outcome"], "switched");
    assert_eq!(vm.serving().as_deref(), Some(dnext.as_str()));
    assert_eq!(vm.serve_processes(), 1, "one release on the port");
    assert_eq!(vm.health().await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_that_does_not_match_its_digest_is_refused_and_reported() {
    let Some(vm) = Vm::new("a_binary_that_does_not_match_its_digest_is_refused_and_reported").await
    else {
        return;
    };
    let one = vm.release("one", false);
    let digest = Vm::digest(&one);
    let text = std::fs::read_to_string(ops_profile(&vm)).unwrap();
    let desired = json!({
        "id": "tampered-1", "seq": 1, "digest": digest, "size": 10, "profile": PROFILE,
        "profile_files": [{"name": format!("{PROFILE}.toml"), "text": text}],
        "written_at": "2026-01-01T00:00:00Z", "written_by": "test@here", "reason": "deploy",
    });
    {
        let mut st = vm.oci.store.lock().unwrap();
        let put = |st: &mut crate::support::oci::Store, key: &str, body: Vec<u8>| {
            st.objects.insert(
                (BUCKET.to_string(), key.to_string()),
                (
                    body.into(),
                    format!("e-{key}"),
                    "application/octet-stream".into(),
                ),
            );
        };
        put(
            &mut st,
            "calops-deploy/desired.json",
            desired.to_string().into_bytes(),
        );
        // What is stored under the digest is not what the digest names.
        let mut bytes = std::fs::read(&one).unwrap();
        bytes.extend_from_slice(b"# tampered\n");
        put(
            &mut st,
            &format!(
                "calops-deploy/releases/{}/calops",
                digest.trim_start_matches("sha256:")
            ),
            bytes,
        );
    }
    let out = vm
        .agent_cmd(BUCKET, &["--once", "--json"])
        .output()
        .await
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{doc}");
    assert_eq!(doc["report"]["outcome"], "refused");
    let reason = doc["report"]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&digest) && reason.contains("nothing was switched"),
        "{reason}"
    );
    assert_eq!(
        vm.report("tampered-1")["outcome"],
        "refused",
        "reported in the bucket"
    );
    assert!(!vm.root().join("run").exists(), "nothing was started");
    assert_eq!(vm.serve_processes(), 0);
    // Reported once: the next poll has nothing to do.
    let out = vm
        .agent_cmd(BUCKET, &["--once", "--json"])
        .output()
        .await
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((out.status.code(), &doc["report"]), (Some(0), &Value::Null));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_a_clear_error_for_the_agent_and_the_deploy() {
    let Some(vm) = Vm::new("a_missing_bucket_is_a_clear_error_for_the_agent_and_the_deploy").await
    else {
        return;
    };
    let out = vm
        .agent_cmd("no-such-bucket", &["--once"])
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("`no-such-bucket` does not exist") && err.contains("CALOPS_BUCKET"),
        "{err}"
    );
    vm.oci.store.lock().unwrap().buckets.remove(BUCKET);
    let one = vm.release("one", false);
    let (code, doc, err) = vm.ops(&["deploy", "--binary", one.to_str().unwrap()]).await;
    assert_eq!(code, 1, "{doc}");
    assert!(
        err.contains(&format!("`{BUCKET}` does not exist")) && err.contains("apply the stack"),
        "{err}"
    );
    assert!(vm
        .oci
        .store
        .lock()
        .unwrap()
        .objects
        .keys()
        .all(|(b, _)| b != BUCKET));
}

const PAGE_KEY_SECRET: &str =
    "ocid1.vaultsecret.oc1.ap-sydney-1.amaaaaaapagekeysecretexample000000000000000000000000000";

/// The service the agent starts on the VM signs its OCI calls as the VM's instance principal
/// (the runtime contract the agent gives it): it resolves a `vault:` secret with GetSecretBundle,
/// posts its metrics with PostMetricData, and submits a booking's mail with Email Delivery's
/// SubmitRawEmail (`[service] mail_sender`), all to the signature-checking stand-in, which
/// knows no resource principal token (one would be refused) and records who signed each call.
/// `calops status` then reads the live figures for the VM's dimensions from Monitoring.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_on_the_vm_reads_vault_posts_metrics_and_sends_mail_as_the_instance_principal()
{
    let test =
        "the_service_on_the_vm_reads_vault_posts_metrics_and_sends_mail_as_the_instance_principal";
    let extra = format!(
        "CALOPS_METRICS_INTERVAL = \"1s\"\nCALOPS_MAIL_POLL = \"200ms\"\n\n[service.secrets]\nCALOPS_PAGE_KEY = \"vault:{PAGE_KEY_SECRET}\"\n\n[service]\nmail_sender = \"{MAIL_SENDER}\"\n"
    );
    // The submitted messages are read with Python's email and icalendar packages.
    let Some(py) = crate::mail::python(test) else {
        return;
    };
    let Some(mut vm) = Vm::with_profile(test, &extra).await else {
        return;
    };
    vm.oci
        .store
        .lock()
        .unwrap()
        .secrets
        .insert(PAGE_KEY_SECRET.into(), "k".repeat(64));
    // The stack the operator applied: its Terraform state (written by the real terraform) in
    // the state bucket, with the DKIM record the sender's domain must publish.
    let Some(state) = crate::freetier::state_with_dkim_output(test, DKIM.0, DKIM.1) else {
        return;
    };
    {
        let mut st = vm.oci.store.lock().unwrap();
        let mut bucket = st.buckets[BUCKET].clone();
        bucket["name"] = "calops-tfstate".into();
        st.buckets.insert("calops-tfstate".into(), bucket);
        st.objects.insert(
            (
                "calops-tfstate".into(),
                format!("{PROFILE}/terraform.tfstate"),
            ),
            (
                state.into(),
                "\"tfstate-1\"".into(),
                "application/json".into(),
            ),
        );
    }
    vm.start_agent();
    let one = vm.release("one", false);
    let digest = Vm::digest(&one);
    let (code, doc, err) = vm.ops(&["deploy", "--binary", one.to_str().unwrap()]).await;
    let log = |vm: &Vm| {
        let serve = std::fs::read_dir(vm.root().join("logs"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        format!("{}\n{serve}", vm.agent_log())
    };
    assert_eq!(code, 0, "{doc}\n{err}\n{}", log(&vm));
    assert_eq!(vm.serving().as_deref(), Some(digest.as_str()));
    // The deploy names the DNS record to publish (`--json`: under the release's details).
    assert_eq!(
        doc["release"]["details"]["mail_dkim_cname"],
        json!({"name": DKIM.0, "value": DKIM.1}),
        "{doc}"
    );
    let bundle = format!("/20190301/secretbundles/{PAGE_KEY_SECRET}");
    // The metrics of the first interval arrive within a few seconds.
    let deadline = Instant::now() + Duration::from_secs(20);
    while vm.oci.store.lock().unwrap().metric_posts.is_empty() {
        assert!(
            Instant::now() < deadline,
            "no PostMetricData within 20 s: {:?}\n{}",
            vm.oci.store.lock().unwrap().failures,
            log(&vm)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let release = &digest.trim_start_matches("sha256:")[..12];
    {
        let st = vm.oci.store.lock().unwrap();
        let vault = st.signers(&bundle);
        assert!(!vault.is_empty(), "the vault: secret was not read");
        assert!(
            vault.iter().all(|s| *s == Signer::InstancePrincipal),
            "GetSecretBundle signed as {vault:?}"
        );
        let posts = st.signers("/20180401/metrics");
        assert!(
            !posts.is_empty() && posts.iter().all(|s| *s == Signer::InstancePrincipal),
            "PostMetricData signed as {posts:?}"
        );
        assert!(
            st.metric_rejections.is_empty(),
            "{:?}",
            st.metric_rejections
        );
        // In the VM's compartment, namespace and dimensions (slot `vm`, the release's digest).
        let post = &st.metric_posts[0];
        let item = &post["metricData"][0];
        assert_eq!(item["namespace"], calops::runtime::telemetry::NAMESPACE);
        assert_eq!(
            item["compartmentId"],
            "ocid1.compartment.oc1..aaaaaaaafreeaucompartmentexample000000000000000000000000"
        );
        assert_eq!(item["dimensions"]["slot"], "vm");
        assert_eq!(item["dimensions"]["release"], release);
    }
    // `calops status` reads the live figures from Monitoring with the operator's key, for the
    // VM's dimensions, like the container target's.
    let mut status = vm.ops_cmd(&["status"]);
    status.env("CALOPS_ENDPOINT_TELEMETRY", vm.oci.base.as_str());
    let out = status.output().await.unwrap();
    let (code, doc, err) = crate::support::json_output(&["status"], &out);
    assert_eq!(code, 0, "{doc}\n{err}");
    assert_eq!(doc["figures_error"], Value::Null, "{doc}");
    assert!(doc["figures"].is_object(), "{doc}");
    assert_eq!(doc["alarms_error"], Value::Null, "{doc}");
    {
        let st = vm.oci.store.lock().unwrap();
        assert!(!st.metric_queries.is_empty());
        let want = format!("{{slot = \"vm\", release = \"{release}\"");
        assert!(
            st.metric_queries.iter().all(|q| q.contains(&want)),
            "{:?}",
            st.metric_queries
        );
        let summarize = st.signers("/20180401/metrics/actions/summarizeMetricsData");
        assert!(
            summarize.iter().all(|s| *s == Signer::ApiKey),
            "{summarize:?}"
        );
    }

    // A booking on the VM: its confirmations are submitted to Email Delivery in the stack's
    // compartment, from the approved sender, signed as the instance principal.
    let key = vm.seed().await;
    let uid = vm.book(&key, "zoe").await;
    let deadline = Instant::now() + Duration::from_secs(40);
    let mails = loop {
        let mails = vm.oci.store.lock().unwrap().raw_emails.clone();
        if mails.len() >= 2 {
            break mails;
        }
        assert!(
            Instant::now() < deadline,
            "the booking's mail was not submitted within 40 s ({} so far): {:?}\n{}",
            mails.len(),
            vm.oci.store.lock().unwrap().failures,
            log(&vm)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut to: Vec<&str> = mails
        .iter()
        .map(|(h, _)| h["recipients"].as_str())
        .collect();
    to.sort();
    assert_eq!(to, ["host@demo.example.com", "zoe@example.com"]);
    let maildir = tempfile::tempdir().unwrap();
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir(maildir.path().join(sub)).unwrap();
    }
    for (i, (h, body)) in mails.iter().enumerate() {
        assert_eq!(h["sender"], MAIL_SENDER);
        assert_eq!(h["content-type"], "message/rfc822");
        assert_eq!(
            h["compartment-id"],
            "ocid1.compartment.oc1..aaaaaaaafreeaucompartmentexample000000000000000000000000"
        );
        std::fs::write(maildir.path().join(format!("new/{i}.eml")), body).unwrap();
    }
    // The whole MIME message each: to its recipient, from the sender, the confirmation with
    // the booking's invitation.
    let booking = vm.booking(&key, &uid).await;
    let title = booking["data"]["title"].as_str().unwrap_or_default();
    let parsed = crate::mail::read(&py, maildir.path());
    assert_eq!(parsed.len(), mails.len());
    for (m, (h, _)) in parsed.iter().zip(&mails) {
        let to = m["to"].as_str().unwrap();
        assert!(to.ends_with(&format!("<{}>", h["recipients"])), "{m}");
        assert!(m["from"].as_str().unwrap().contains(MAIL_SENDER), "{m}");
        let subject = m["subject"].as_str().unwrap();
        assert!(subject.starts_with("Confirmed: "), "{subject}");
        assert!(
            !title.is_empty() && subject.contains(title),
            "{subject} / {booking}"
        );
        assert_eq!(m["ics"]["method"], "REQUEST", "{m}");
        // Links, where there are any, go through the load balancer, never the VM's address.
        let text = m.to_string();
        assert!(
            !text.contains("0.0.0.0") && !text.contains("127.0.0.1"),
            "{m}"
        );
    }
    // The attendee's message has the booking pages' links, on the load balancer's hostname.
    let zoe = parsed
        .iter()
        .find(|m| m["to"].as_str().unwrap().ends_with("<zoe@example.com>"))
        .unwrap();
    assert!(
        zoe["plain"]
            .as_str()
            .unwrap()
            .contains("https://book.example.com.au/"),
        "{zoe}"
    );
    let st = vm.oci.store.lock().unwrap();
    let submits = st.signers(calops::service::mail::transport::SUBMIT_RAW_EMAIL_PATH);
    assert!(
        submits.len() >= 2 && submits.iter().all(|s| *s == Signer::InstancePrincipal),
        "SubmitRawEmail signed as {submits:?}"
    );
}

const MAIL_SENDER: &str = "bookings@example.com.au";
const DKIM: (&str, &str) = (
    "calops-ap-sydney-1._domainkey.example.com.au",
    "calops-ap-sydney-1.example.com.au.dkim.syd1.oracleemaildelivery.com",
);

fn ops_profile(vm: &Vm) -> PathBuf {
    vm.ops
        .path()
        .join("profiles")
        .join(format!("{PROFILE}.toml"))
}

// ---------------------------------------------------------------------------------------------
// The VM's backups through the agent: `backup now` and `restore` are requests in the bucket.

impl Vm {
    /// The VM's cluster, as its superuser, on database `db`.
    fn db_url(&self, db: &str) -> String {
        let pg = self.root().join("pg");
        let pw = std::fs::read_to_string(pg.join("superuser.password")).unwrap();
        let port = std::fs::read_to_string(pg.join("port")).unwrap();
        format!(
            "postgres://calops:{}@127.0.0.1:{}/{db}",
            pw.trim(),
            port.trim()
        )
    }

    async fn sql(&self, q: &str) -> Vec<String> {
        crate::support::sql(&self.db_url("calops"), q).await
    }

    /// Wait until the segment holding the VM cluster's current WAL position is archived.
    async fn wait_archived(&self) {
        let wanted = self
            .sql("SELECT pg_walfile_name(pg_current_wal_lsn())")
            .await
            .remove(0);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let last = self
                .sql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
                .await
                .remove(0);
            if last.len() >= 24 && last[..24] >= wanted[..] {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{wanted} not archived (last {last})\n{}",
                self.agent_log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The demo organization on the VM's service (as a local deploy seeds it): its API key and
    /// event type.
    async fn seed(&self) -> (String, i64) {
        let layout = calops::deploy::local::layout::Layout::new(self.vm.path(), PROFILE);
        let current: Value =
            serde_json::from_str(&std::fs::read_to_string(layout.current()).unwrap()).unwrap();
        let admin = std::fs::read_to_string(layout.secret("admin-token")).unwrap();
        calops::deploy::local::seed::ensure(
            &layout,
            &format!("http://127.0.0.1:{}", current["private_port"]),
            &format!("http://127.0.0.1:{}", self.port),
            admin.trim(),
        )
        .await
        .unwrap();
        let key = std::fs::read_to_string(layout.secret("demo-api-key")).unwrap();
        let ids: Value =
            serde_json::from_str(&std::fs::read_to_string(layout.secret("demo.json")).unwrap())
                .unwrap();
        (
            key.trim().to_string(),
            ids["event_type_id"].as_i64().unwrap(),
        )
    }

    async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        crate::support::site::http_async(method, &url, key, body).await
    }

    /// Book the first free demo slot for `who` on the VM's service; the booking's uid.
    async fn book(&self, (key, event_type): &(String, i64), who: &str) -> String {
        let start = jiff::Zoned::now().date();
        let end = start.checked_add(jiff::Span::new().days(14)).unwrap();
        let (_, slots) = self
            .api(
                reqwest::Method::GET,
                &format!("/v2/slots?eventTypeId={event_type}&start={start}&end={end}&timeZone=UTC"),
                key,
                None,
            )
            .await;
        let first = slots["data"]
            .as_object()
            .and_then(|days| days.values().next())
            .and_then(|d| d[0]["start"].as_str())
            .unwrap_or_else(|| panic!("no free slot: {slots}"))
            .to_string();
        let body = json!({
            "start": first, "eventTypeId": event_type,
            "attendee": {"name": who, "email": format!("{who}@example.com"), "timeZone": "UTC"},
        });
        let (status, v) = self
            .api(reqwest::Method::POST, "/v2/bookings", key, Some(&body))
            .await;
        assert_eq!(status, 201, "{v}");
        v["data"]["uid"].as_str().unwrap().to_string()
    }

    /// `GET /v2/bookings/{uid}` on the VM's service.
    async fn booking(&self, key: &(String, i64), uid: &str) -> Value {
        let (_, v) = self
            .api(
                reqwest::Method::GET,
                &format!("/v2/bookings/{uid}"),
                &key.0,
                None,
            )
            .await;
        v
    }

    async fn booking_status(&self, key: &(String, i64), uid: &str) -> String {
        let v = self.booking(key, uid).await;
        v["data"]["status"]
            .as_str()
            .unwrap_or("missing")
            .to_string()
    }
}

/// The whole story of the brief through the real agent and the stand-ins: book, `backup now`
/// (twice at once: taken one after the other), `backup list` shows them and `backup verify`
/// passes from the operator's machine, book again, `restore --to` a time between the bookings
/// without `--yes` (nothing live touched) and with it (the service then has exactly the first
/// booking, the old data kept aside). An unreadable request gets a failed result; a request
/// made while no agent runs waits queued (exit 3) and is answered once one runs; a base backup
/// the bucket refuses fails with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_now_and_restore_run_on_the_vm_through_the_agent() {
    let Some(mut vm) = Vm::new("backup_now_and_restore_run_on_the_vm_through_the_agent").await
    else {
        return;
    };
    vm.start_agent();
    let one = vm.release("one", false);
    let (code, doc, err) = vm.ops(&["deploy", "--binary", one.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{doc}\n{err}\n{}", vm.agent_log());
    let demo = vm.seed().await;
    let ada = vm.book(&demo, "ada").await;

    // Garbage where a request should be: answered with a failed result, not ignored.
    let garbage = "20200101T000000000Z-deadbeef";
    vm.oci.store.lock().unwrap().objects.insert(
        (
            BUCKET.to_string(),
            format!("calops-deploy/requests/{garbage}.json"),
        ),
        (
            b"{not a request".to_vec().into(),
            "e-garbage".into(),
            "application/json".into(),
        ),
    );

    // Two base backups asked at once: both taken, one after the other.
    let (a, b) = tokio::join!(
        vm.ops(&["backup", "now", "--label", "first"]),
        vm.ops(&["backup", "now", "--label", "second"])
    );
    for (code, doc, err) in [&a, &b] {
        assert_eq!(*code, 0, "{doc}\n{err}\n{}", vm.agent_log());
        assert_eq!(doc["request"]["kind"], "backup", "{doc}");
        assert!(
            doc["backup"]["parts"]
                .as_array()
                .is_some_and(|p| !p.is_empty()),
            "{doc}"
        );
    }
    let span = |d: &Value| {
        (
            d["request"]["started_at"]
                .as_str()
                .unwrap()
                .parse::<jiff::Timestamp>()
                .unwrap(),
            d["request"]["finished_at"]
                .as_str()
                .unwrap()
                .parse::<jiff::Timestamp>()
                .unwrap(),
        )
    };
    let ((s1, f1), (s2, f2)) = (span(&a.1), span(&b.1));
    assert!(
        f1 <= s2 || f2 <= s1,
        "the two backups overlapped: {s1}..{f1} and {s2}..{f2}"
    );
    let names: Vec<String> = [&a.1, &b.1]
        .iter()
        .map(|d| d["backup"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_ne!(names[0], names[1]);
    // Stored in the bucket, signed as the instance principal.
    {
        let st = vm.oci.store.lock().unwrap();
        let manifests: Vec<&String> = st
            .objects
            .keys()
            .filter(|(bk, k)| {
                bk == BUCKET && k.starts_with("backups/base/") && k.ends_with("/backup.json")
            })
            .map(|(_, k)| k)
            .collect();
        // (The service's own first base backup, shortly after the first deploy, may be there too.)
        for n in &names {
            assert!(
                manifests.contains(&&format!("backups/base/{n}/backup.json")),
                "{n}: {manifests:?}"
            );
        }
        let puts: Vec<Signer> = st
            .signed_by
            .iter()
            .filter(|(p, _)| p.contains("/o/backups%2Fbase") || p.contains("/o/backups/base"))
            .map(|(_, s)| *s)
            .collect();
        assert!(
            !puts.is_empty() && puts.iter().all(|s| *s == Signer::InstancePrincipal),
            "{puts:?}"
        );
    }
    let failed = vm
        .json_object(&format!("calops-deploy/requests/{garbage}.result.json"))
        .unwrap_or_else(|| {
            panic!(
                "the unreadable request was not answered\n{}",
                vm.agent_log()
            )
        });
    assert_eq!(failed["outcome"], "failed", "{failed}");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains(&format!("requests/{garbage}.json is not a request")),
        "{failed}"
    );

    // The operator sees them in the bucket, and everything a restore needs checks out.
    let (code, doc, err) = vm.ops(&["backup", "list"]).await;
    assert_eq!(code, 0, "{doc}\n{err}");
    let listed: Vec<&str> = doc["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    for n in &names {
        assert!(listed.contains(&n.as_str()), "{n} not in {listed:?}");
    }
    let (code, doc, err) = vm.ops(&["backup", "verify"]).await;
    assert_eq!(code, 0, "{doc}\n{err}");
    assert_eq!(doc["verified"], true, "{doc}");

    // Book again, after a moment that lies between the two bookings.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let between = jiff::Timestamp::now();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let grace = vm.book(&demo, "grace").await;
    vm.wait_archived().await;

    // Without --yes: restored into a new directory on the VM, nothing live touched.
    let (code, doc, err) = vm.ops(&["restore", "--to", &between.to_string()]).await;
    assert_eq!(code, 0, "{doc}\n{err}\n{}", vm.agent_log());
    assert_eq!(doc["started"], false, "{doc}");
    let dir = PathBuf::from(doc["restored"]["dir"].as_str().unwrap());
    assert!(
        dir.starts_with(vm.root().join("restores")) && dir.join("data").is_dir(),
        "{doc}"
    );
    let result = vm
        .json_object(&format!(
            "calops-deploy/requests/{}.result.json",
            doc["request"]["id"].as_str().unwrap()
        ))
        .unwrap();
    let text = result["text"].as_str().unwrap();
    assert!(
        text.contains(dir.to_str().unwrap())
            && text.contains("--yes")
            && text.contains("nothing live was touched"),
        "{text}"
    );
    assert_eq!(
        vm.booking_status(&demo, &grace).await,
        "accepted",
        "live data untouched"
    );

    // With --yes: the service runs on the restored cluster, which has exactly the first booking.
    use std::os::unix::fs::MetadataExt;
    let live_ino = || std::fs::metadata(vm.root().join("pg/data")).unwrap().ino();
    let live_before = live_ino();
    let (code, doc, err) = vm
        .ops(&["restore", "--to", &between.to_string(), "--yes"])
        .await;
    assert_eq!(code, 0, "{doc}\n{err}\n{}", vm.agent_log());
    assert_eq!(doc["started"], true, "{doc}");
    let kept = PathBuf::from(doc["replaced_data_kept_in"].as_str().unwrap());
    assert!(
        kept.join("PG_VERSION").is_file(),
        "the old data is kept: {doc}"
    );
    assert_ne!(live_ino(), live_before, "another data directory is live");
    assert_eq!(vm.health().await, 200);
    assert_eq!(vm.booking_status(&demo, &ada).await, "accepted");
    assert_eq!(vm.booking_status(&demo, &grace).await, "missing");
    assert_eq!(vm.sql("SELECT count(*) FROM bookings").await, ["1"]);
    assert_eq!(vm.serve_processes(), 1);

    // No agent running: the request waits queued, the command says so and how to follow it.
    let mut agent = vm.agent.take().unwrap();
    agent.kill().await.unwrap();
    let (code, doc, err) = vm.ops(&["backup", "now", "--wait", "2s"]).await;
    assert_eq!(code, 3, "{doc}\n{err}");
    assert_eq!(doc["state"], "queued", "{doc}");
    let id = doc["request"].as_str().unwrap().to_string();
    assert!(
        err.contains("still queued") && err.contains(&format!("calops backup wait {id}")),
        "{err}"
    );
    let (code, _, err) = vm
        .ops(&["backup", "wait", "20200101T000000000Z-00000000"])
        .await;
    assert_eq!(code, 1);
    assert!(err.contains("there is no request"), "{err}");
    vm.start_agent();
    let (code, doc, err) = vm.ops(&["backup", "wait", &id]).await;
    assert_eq!(code, 0, "{doc}\n{err}\n{}", vm.agent_log());
    assert_eq!(doc["request"]["id"], id.as_str());
    assert!(doc["backup"]["name"].is_string(), "{doc}");

    // The bucket refuses the base backup's objects: a failed result that says why.
    let (_, doc, _) = vm.ops(&["backup", "list"]).await;
    let before = doc["backups"].as_array().unwrap().len();
    vm.oci.store.lock().unwrap().refuse_puts_under = Some("backups/base/".into());
    let (code, doc, err) = vm.ops(&["backup", "now"]).await;
    vm.oci.store.lock().unwrap().refuse_puts_under = None;
    assert_eq!(code, 1, "{doc}\n{err}");
    let why = doc["error"].as_str().unwrap_or_default();
    assert!(
        why.contains("storing base/") && why.contains("NotAuthorizedOrNotFound"),
        "{doc}\n{err}"
    );
    assert!(
        err.contains("answered request") && err.contains(why),
        "{err}"
    );
    // Nothing half-stored: the parts of the failed backup are not left as a backup.
    let (code, doc, _) = vm.ops(&["backup", "list"]).await;
    assert_eq!(code, 0);
    assert_eq!(doc["backups"].as_array().unwrap().len(), before, "{doc}");
}

/// `restore --yes` on the VM when the service does not pass its checks on the restored
/// database: the old data goes back (the restored data kept beside it) and the release serves
/// on it again; the command fails saying so. The release here refuses to serve when a marker
/// file is in the data directory, and the marker is only in the base backup.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restore_the_service_fails_on_is_switched_back_to_the_old_data() {
    let Some(mut vm) =
        Vm::new("a_restore_the_service_fails_on_is_switched_back_to_the_old_data").await
    else {
        return;
    };
    vm.start_agent();
    let marker = vm.root().join("pg/data/calops-test-refuse-to-serve");
    let picky = vm.ops.path().join("release-picky");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(
            &picky,
            format!(
                "#!/bin/sh\nif [ \"$1\" = serve ] && [ -e {} ]; then echo 'release picky: refusing this database' >&2; exit 3; fi\nexec {} \"$@\"\n",
                marker.display(),
                vm.calops.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&picky, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let (code, doc, err) = vm
        .ops(&["deploy", "--binary", picky.to_str().unwrap()])
        .await;
    assert_eq!(code, 0, "{doc}\n{err}\n{}", vm.agent_log());
    let demo = vm.seed().await;
    let ada = vm.book(&demo, "ada").await;
    // The marker goes into the base backup only.
    std::fs::write(&marker, "").unwrap();
    let (code, doc, err) = vm.ops(&["backup", "now"]).await;
    std::fs::remove_file(&marker).unwrap();
    assert_eq!(code, 0, "{doc}\n{err}\n{}", vm.agent_log());
    let grace = vm.book(&demo, "grace").await;
    vm.wait_archived().await;

    let (code, doc, err) = vm.ops(&["restore", "--latest", "--yes"]).await;
    assert_eq!(code, 1, "{doc}\n{err}\n{}", vm.agent_log());
    let why = doc["error"].as_str().unwrap_or_default();
    assert!(
        why.contains("the old data is live again and serving")
            && why.contains("data.failed-restore-"),
        "{doc}\n{err}"
    );
    // The old data serves again: both bookings; the restored data is kept, not deleted.
    assert_eq!(vm.health().await, 200);
    assert_eq!(vm.booking_status(&demo, &ada).await, "accepted");
    assert_eq!(vm.booking_status(&demo, &grace).await, "accepted");
    assert!(!marker.exists());
    let kept: Vec<String> = std::fs::read_dir(vm.root().join("pg"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("data.failed-restore-"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(vm
        .root()
        .join("pg")
        .join(&kept[0])
        .join("calops-test-refuse-to-serve")
        .exists());
    assert_eq!(vm.serve_processes(), 1);

    // The failed restore archived its own timeline while it was checked. A later restore must
    // follow the old data's timeline, which recorded what came after: a booking made now is in
    // a `restore --latest` from a backup taken after the switch back. (Following the abandoned
    // timeline, recovery fails or misses the booking.)
    let hopper = vm.book(&demo, "hopper").await;
    let (code, doc, err) = vm.ops(&["backup", "now"]).await;
    assert_eq!(code, 0, "{doc}\n{err}\n{}", vm.agent_log());
    let (code, doc, err) = vm.ops(&["backup", "list"]).await;
    assert_eq!(code, 0, "{doc}\n{err}");
    let lovelace = vm.book(&demo, "lovelace").await;
    vm.wait_archived().await;
    let (code, doc, err) = vm.ops(&["restore", "--latest", "--yes"]).await;
    assert_eq!(code, 0, "{doc}\n{err}\n{}", vm.agent_log());
    assert_eq!(vm.health().await, 200);
    for uid in [&ada, &grace, &hopper, &lovelace] {
        assert_eq!(vm.booking_status(&demo, uid).await, "accepted", "{doc}");
    }
}
