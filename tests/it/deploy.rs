//! The release pipeline end to end on the local target, with real processes: a private
//! PostgreSQL cluster, `calops serve` releases on a shared port, and HTTP clients.

use crate::support::site::{http, Site};
use calops::deploy::lock::LockInfo;
use serde_json::Value;
use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A local site for these tests: clients run flat out with one API key below, which the
/// service's default availability and booking limits (Redis-shared) would answer 429.
fn site(test: &str) -> Option<Site> {
    let site = Site::new(test)?;
    site.append_to_profile("CALOPS_RATE_LIMIT_AVAILABILITY = \"off\"");
    site.append_to_profile("CALOPS_RATE_LIMIT_BOOKINGS = \"off\"");
    Some(site)
}

/// Replace the profile's `DEPLOY_MARK` / `CALOPS_DB_POOL_SIZE` line with `line`: a changed
/// profile, so that the next deploy is a new release.
fn set_env_line(site: &Site, line: &str) {
    let p = site.dir.path().join("profiles/local.toml");
    let text = std::fs::read_to_string(&p).unwrap();
    let base: String = text
        .lines()
        .filter(|l| !l.starts_with("DEPLOY_MARK") && !l.starts_with("CALOPS_DB_POOL_SIZE"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&p, format!("{base}{line}\n")).unwrap();
}

const ZONE: &str = "Australia/Sydney";

/// The demo event type's free slot starts over the coming two weeks, earliest first.
fn free_slots(site: &Site) -> Vec<String> {
    let (status, v) = http(
        reqwest::Method::GET,
        &site.slots_url(ZONE),
        &site.api_key(),
        None,
    );
    assert_eq!(status, 200, "{v}");
    v["data"]
        .as_object()
        .into_iter()
        .flat_map(|days| days.values())
        .flat_map(|d| d.as_array().cloned().unwrap_or_default())
        .filter_map(|s| s["start"].as_str().map(str::to_string))
        .collect()
}

/// Clients calling the service until stopped, over kept-alive connections and with no retry
/// of any kind (hyper's pool retries a request that met a connection closed under it;
/// reqwest does not let that be turned off): `gets` clients request slots, `posts` clients
/// book a slot of their own and cancel it, over and over. A request counts as failed unless
/// it got the expected status *and* its whole body.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    errors: Arc<std::sync::Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

type Http = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<bytes::Bytes>,
>;

/// One request: the JSON body when the status is `want` and the body arrived whole.
async fn call(
    http: &Http,
    method: hyper::Method,
    url: &str,
    key: &str,
    body: Option<&Value>,
    want: u16,
) -> Result<Value, String> {
    use http_body_util::BodyExt;
    let mut rq = hyper::Request::builder()
        .method(method.clone())
        .uri(url)
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json");
    // The shapes calops' own clients speak (a request without the header gets Cal.com's
    // oldest one).
    if let Some(v) = calops_testkit::api_version(method.as_str(), url) {
        rq = rq.header("cal-api-version", v);
    }
    let rq = rq
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
        .map_err(|e| e.to_string())?;
    let answered = tokio::time::timeout(Duration::from_secs(10), async {
        let res = http
            .request(rq)
            .await
            .map_err(|e| format!("{method} {url}: {e:?}"))?;
        let status = res.status().as_u16();
        let bytes = res
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{method} {url}: reading the body: {e:?}"))?
            .to_bytes();
        Ok::<_, String>((status, bytes))
    })
    .await
    .map_err(|_| format!("{method} {url}: no answer within 10 s"))??;
    let (status, bytes) = answered;
    if status != want {
        return Err(format!(
            "{method} {url}: status {status}: {}",
            String::from_utf8_lossy(&bytes)
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| format!("{method} {url}: body is not JSON: {e}"))
}

impl Load {
    fn start(site: &Site, gets: usize, posts: usize) -> Load {
        let (stop, ok, failed) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (slots_url, key, base) = (
            site.slots_url(ZONE),
            site.api_key(),
            format!("http://127.0.0.1:{}", site.port),
        );
        let event_type: Value = serde_json::from_str(&site.secret("demo.json")).unwrap();
        let event_type = event_type["event_type_id"].as_i64().unwrap();
        // One free slot per booking client (the latest ones, away from the slots other steps
        // book), booked and cancelled again and again.
        let free: Vec<String> = free_slots(site).into_iter().rev().take(posts).collect();
        assert_eq!(free.len(), posts, "not enough free demo slots");
        let (s, o, f, e) = (stop.clone(), ok.clone(), failed.clone(), errors.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let http: Http = hyper_util::client::legacy::Client::builder(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .retry_canceled_requests(false)
                .build_http();
                let record = {
                    let (o, f, e) = (o.clone(), f.clone(), e.clone());
                    move |r: &Result<Value, String>| match r {
                        Ok(_) => {
                            o.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(err) => {
                            f.fetch_add(1, Ordering::SeqCst);
                            e.lock().unwrap().push(err.clone());
                        }
                    }
                };
                let mut tasks = Vec::new();
                for _ in 0..gets {
                    let (s, http, url, key, record) =
                        (s.clone(), http.clone(), slots_url.clone(), key.clone(), record.clone());
                    tasks.push(tokio::spawn(async move {
                        while !s.load(Ordering::SeqCst) {
                            record(&call(&http, hyper::Method::GET, &url, &key, None, 200).await);
                        }
                    }));
                }
                for start in free {
                    let (s, http, base, key, record) =
                        (s.clone(), http.clone(), base.clone(), key.clone(), record.clone());
                    tasks.push(tokio::spawn(async move {
                        let body = serde_json::json!({
                            "start": start, "eventTypeId": event_type,
                            "attendee": {"name": "Load", "email": "load@example.com", "timeZone": "UTC"},
                        });
                        while !s.load(Ordering::SeqCst) {
                            let url = format!("{base}/v2/bookings");
                            let booked = call(&http, hyper::Method::POST, &url, &key, Some(&body), 201).await;
                            record(&booked);
                            let Ok(b) = booked else { continue };
                            let uid = b["data"]["uid"].as_str().unwrap_or_default().to_string();
                            let url = format!("{base}/v2/bookings/{uid}/cancel");
                            let cancel = serde_json::json!({"cancellationReason": "load"});
                            record(&call(&http, hyper::Method::POST, &url, &key, Some(&cancel), 200).await);
                        }
                    }));
                }
                for t in tasks {
                    let _ = t.await;
                }
            });
        });
        Load {
            stop,
            ok,
            failed,
            errors,
            thread: Some(thread),
        }
    }

    fn ok(&self) -> usize {
        self.ok.load(Ordering::SeqCst)
    }

    /// Wait (up to 60 s) until `n` more requests than now have succeeded.
    fn wait_for_more(&self, n: usize) {
        let target = self.ok() + n;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while self.ok() < target {
            assert!(
                std::time::Instant::now() < deadline,
                "the load made {} of {target} successful requests",
                self.ok()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn finish(mut self) -> (usize, usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        (
            self.ok.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
            self.errors.lock().unwrap().clone(),
        )
    }
}

#[test]
fn local_release_lifecycle() {
    let Some(site) = site("local_release_lifecycle") else {
        return;
    };

    // Cold deploy on an empty directory: demo data seeded, key shown once and saved 0600.
    let (code, doc, stderr) = site.json(&["deploy"]);
    assert_eq!(code, 0, "{doc}\n{stderr}");
    assert_eq!(doc["result"], "deployed");
    assert_eq!(doc["release"]["seq"], 1);
    assert_eq!(doc["release"]["outcome"], "succeeded");
    assert!(doc["demo"]["api_key"].as_str().unwrap().len() > 20);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(site.root().join("secrets/demo-api-key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(site.get(&site.slots_url(ZONE)), 200);
    // First contact: the demo booking page, printed as `booking_url`, serves the booker, and
    // the service's front page points to it.
    let page = doc["booking_url"].as_str().expect("booking_url in --json");
    assert_eq!(doc["demo"]["booking_url"].as_str(), Some(page));
    let prefix = format!("http://127.0.0.1:{}/demo-", site.port);
    assert!(
        page.starts_with(&prefix) && page.ends_with("/demo-host/intro"),
        "{page}"
    );
    let (status, html) = site.get_page(page);
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<h1>Intro call</h1>"), "{html}");
    let (status, home) = site.get_page(&format!("http://127.0.0.1:{}/", site.port));
    assert_eq!(status, 200);
    let path = page
        .strip_prefix(&format!("http://127.0.0.1:{}", site.port))
        .unwrap();
    let demo_host = path.rsplit_once('/').unwrap().0;
    // minijinja's HTML escaping writes `/` as `&#x2f;` in attributes; a browser reads `/`.
    let home = home.replace("&#x2f;", "/");
    assert!(home.contains(&format!("href=\"{demo_host}\"")), "{home}");
    let booking = site.book("ada");
    assert_eq!(site.booking_status(&booking), "accepted");
    // Its e-mail (attendee and host) lands in the target's Maildir, which the deploy names.
    let new = site.root().join("mail/new");
    assert_eq!(
        doc["release"]["details"]["mail"].as_str(),
        Some(new.to_str().unwrap()),
        "{doc}"
    );
    let until = std::time::Instant::now() + Duration::from_secs(20);
    while std::fs::read_dir(&new).map(|d| d.count()).unwrap_or(0) < 2 {
        assert!(
            std::time::Instant::now() < until,
            "no mail in {}",
            new.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The same deploy again does nothing and records nothing.
    let (code, doc, _) = site.json(&["deploy"]);
    assert_eq!(code, 0);
    assert_eq!(doc["result"], "unchanged");
    assert!(
        doc["demo"]["api_key"].is_null(),
        "the key is shown only once"
    );

    set_env_line(&site, "DEPLOY_MARK = \"2\"");
    // A changed deploy while clients keep requesting slots and booking: not one failed
    // request, counting every body that did not arrive whole.
    let load = Load::start(&site, 3, 2);
    load.wait_for_more(20);
    let (code, doc, stderr) = site.json(&["deploy"]);
    // The new release carries the load too before it stops.
    load.wait_for_more(20);
    let (ok, failed, errors) = load.finish();
    assert_eq!(code, 0, "{doc}\n{stderr}");
    assert_eq!(doc["release"]["seq"], 2);
    assert!(ok > 40, "the load ran ({ok} requests)");
    assert_eq!(failed, 0, "failed requests during the switch: {errors:?}");
    assert_eq!(site.serve_processes(), 1, "the old release exited");
    // The data is still there: the booking, the organization's key and event type.
    assert_eq!(site.booking_status(&booking), "accepted");
    assert_eq!(site.get(&site.slots_url(ZONE)), 200);

    // A release that exits at start is rolled back automatically and recorded as such.
    set_env_line(&site, "CALOPS_DB_POOL_SIZE = \"0\"");
    let (code, doc, stderr) = site.json(&["deploy"]);
    assert_eq!(code, 1, "{doc}");
    assert_eq!(doc["result"], "rolled_back");
    assert_eq!(doc["release"]["outcome"], "rolled_back");
    let failure = doc["release"]["failure"].as_str().unwrap();
    assert!(
        failure.contains("verify") && failure.contains("exited during start"),
        "{failure}"
    );
    assert!(
        failure.contains("log excerpt") && failure.to_lowercase().contains("pool"),
        "names the cause: {failure}"
    );
    assert!(stderr.contains("release #2 keeps serving"), "{stderr}");
    assert!(site.healthy(), "the previous release still serves");

    // Rollback goes to the previous successful release, with its recorded configuration.
    set_env_line(&site, "DEPLOY_MARK = \"4\"");
    let (code, doc, _) = site.json(&["deploy"]);
    assert_eq!((code, doc["release"]["seq"].as_u64()), (0, Some(4)));
    let (code, doc, stderr) = site.json(&["rollback"]);
    assert_eq!(code, 0, "{doc}\n{stderr}");
    assert_eq!(doc["release"]["kind"], "rollback");
    assert_eq!(doc["release"]["restores"], 2);
    assert_eq!(
        doc["release"]["details"]["inputs"]["environment"]["DEPLOY_MARK"],
        "2"
    );
    assert!(site.healthy());
    assert_eq!(
        site.get(&site.slots_url(ZONE)),
        200,
        "bookings' organization still there"
    );

    let (_, doc, _) = site.json(&["releases"]);
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
    let (code, doc, _) = site.json(&["status"]);
    assert_eq!(code, 0);
    assert_eq!(doc["healthy"], true);
    assert_eq!(doc["release"]["seq"], 5);
}

fn write_lock(site: &Site, pid: u32, lease_secs: i64, message: &str) {
    let now = jiff::Timestamp::now();
    let info = LockInfo {
        id: "test".into(),
        owner: calops::deploy::lock::whoami(),
        pid,
        started_at: now - jiff::SignedDuration::from_secs(600),
        renewed_at: now,
        lease_expires_at: now + jiff::SignedDuration::from_secs(lease_secs),
        message: message.into(),
    };
    let p = site.root().join("state/lock.json");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, serde_json::to_vec(&info).unwrap()).unwrap();
}

#[test]
fn lock_contention_takeover_and_interrupt() {
    let Some(site) = site("lock_contention_takeover_and_interrupt") else {
        return;
    };
    let (code, doc, stderr) = site.json(&["deploy"]);
    assert_eq!(code, 0, "{doc}\n{stderr}");

    // A live holder: a second deploy fails fast and names it.
    write_lock(&site, std::process::id(), 300, "someone else's deploy");
    let (code, _, stderr) = site.json(&["deploy"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("held by")
            && stderr.contains(&format!("pid {}", std::process::id()))
            && stderr.contains("someone else's deploy"),
        "{stderr}"
    );
    let (_, doc, _) = site.json(&["lock", "status"]);
    assert_eq!(doc["lock"]["message"], "someone else's deploy");
    assert_eq!(doc["expired"], false);
    let (code, _, stderr) = site.json(&["lock", "release"]);
    assert_eq!(
        code, 1,
        "a live lock is not released without --force: {stderr}"
    );
    let (code, doc, _) = site.json(&["lock", "release", "--force"]);
    assert_eq!((code, doc["released"].as_bool()), (0, Some(true)));

    // An expired lease is taken over, loudly.
    write_lock(&site, 999_999, -5, "crashed deploy");
    set_env_line(&site, "DEPLOY_MARK = \"takeover\"");
    let (code, doc, stderr) = site.json(&["deploy"]);
    assert_eq!(code, 0, "{doc}\n{stderr}");
    assert!(
        stderr.contains("took over an expired deploy lock"),
        "{stderr}"
    );
    assert!(doc["took_over_lock_from"]
        .as_str()
        .unwrap()
        .contains("crashed deploy"));

    // Two deploys at once: never two at the same time; a loser names the holder.
    set_env_line(&site, "DEPLOY_MARK = \"race\"");
    let a = site
        .cmd(&["deploy", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let b = site
        .cmd(&["deploy", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let shown = |o: &Output| {
        format!(
            "exit {:?}\nstdout: {}\nstderr: {}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let (won, lost): (Vec<&Output>, Vec<&Output>) =
        [&a, &b].into_iter().partition(|o| o.status.success());
    assert!(
        won.len() == 1 && lost.len() == 1,
        "exactly one of two concurrent deploys wins:\n--- a: {}\n--- b: {}",
        shown(&a),
        shown(&b)
    );
    let doc: Value = serde_json::from_slice(&won[0].stdout).unwrap();
    assert_eq!(doc["result"], "deployed", "{}", shown(won[0]));
    let e = String::from_utf8_lossy(&lost[0].stderr);
    assert_eq!(lost[0].status.code(), Some(1), "{}", shown(lost[0]));
    assert!(e.contains("held by"), "the loser names the holder: {e}");
    let (_, doc, _) = site.json(&["releases"]);
    let races = doc["releases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["details"]["inputs"]["environment"]["DEPLOY_MARK"] == "race")
        .count();
    assert_eq!(races, 1, "one release recorded for the race: {doc}");
    assert!(site.healthy());

    // Ctrl-C in the middle of a deploy: no lock left, the previous release keeps serving.
    set_env_line(&site, "DEPLOY_MARK = \"interrupted\"");
    let child = site
        .cmd(&["deploy"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the deploy holds its lock (it has passed its prerequisite checks and
    // installed its Ctrl-C handler): a fixed delay raced the checks on a loaded machine.
    let lock = site.root().join("state/lock.json");
    let waited = std::time::Instant::now();
    while !lock.exists() && waited.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let code = out.status.code().unwrap();
    assert!(
        code == 130 || code == 0,
        "interrupted (130) or already done (0): {code} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, doc, _) = site.json(&["lock", "status"]);
    assert!(doc["lock"].is_null(), "no lock left: {doc}");
    assert!(site.healthy(), "a release serves");
    assert_eq!(
        site.serve_processes(),
        1,
        "no half-started release left running"
    );
    if code == 130 {
        let (_, doc, _) = site.json(&["releases"]);
        let last = doc["releases"].as_array().unwrap().last().unwrap().clone();
        assert_ne!(last["outcome"], "in_progress", "{last}");
    }
}
