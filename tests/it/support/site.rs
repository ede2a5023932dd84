//! A local deployment driven through the real `calops` binary: a work directory with the
//! shipped `base` and `local` profiles and its own port, the commands run there with
//! `--profile local`, and the demo organization's API reached over HTTP. Dropping it runs
//! `calops destroy --yes`.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_calops");

/// The calops binary as a file of its own in `dir` (a hard link, else a copy): PostgreSQL runs
/// it (`archive_command`, `restore_command`) long after the test started, and a rebuild must
/// not change it under the test.
pub fn stable_binary(dir: &Path) -> PathBuf {
    let p = dir.join("calops-under-test");
    if std::fs::hard_link(BIN, &p).is_err() {
        std::fs::copy(BIN, &p).unwrap();
    }
    p
}

/// One request to `url`, on a runtime of its own; status and body (JSON, else `null`).
pub fn http(method: reqwest::Method, url: &str, key: &str, body: Option<&Value>) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(http_async(method, url, key, body))
}

/// [`http`] on the caller's runtime.
pub async fn http_async(
    method: reqwest::Method,
    url: &str,
    key: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut r = reqwest::Client::new()
        .request(method.clone(), url)
        .bearer_auth(key);
    // calops' own clients speak the newest Cal.com shapes of versioned routes.
    if let Some(v) = calops_testkit::api_version(method.as_str(), url) {
        r = r.header("cal-api-version", v);
    }
    if let Some(b) = body {
        r = r.json(b);
    }
    match r.send().await {
        Ok(resp) => (
            resp.status().as_u16(),
            resp.json().await.unwrap_or(Value::Null),
        ),
        Err(_) => (0, Value::Null),
    }
}

/// True when the PostgreSQL server binaries a local target runs are installed; otherwise the
/// test is skipped locally (with the reason printed) or fails under CI.
pub fn have_postgres_server(test: &str) -> bool {
    if calops::doctor::tools::postgres_bin_dir().is_some() {
        return true;
    }
    calops_testkit::skip_or_fail(
        test,
        "PostgreSQL server binaries are not installed (run scripts/setup)",
    );
    false
}

pub struct Site {
    pub dir: tempfile::TempDir,
    pub port: u16,
    calops: PathBuf,
    env: Vec<(String, String)>,
}

impl Site {
    /// A new site, or `None` (skipped locally, failed under CI) without PostgreSQL.
    pub fn new(test: &str) -> Option<Site> {
        if !have_postgres_server(test) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let profiles = dir.path().join("profiles");
        std::fs::create_dir(&profiles).unwrap();
        for p in ["base", "local"] {
            let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("profiles")
                .join(format!("{p}.toml"));
            std::fs::copy(src, profiles.join(format!("{p}.toml"))).unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let calops = stable_binary(dir.path());
        Some(Site {
            dir,
            port,
            calops,
            env: Vec::new(),
        })
    }

    /// Run every command with this environment variable too.
    pub fn with_env(mut self, name: &str, value: &str) -> Site {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Append `line` to the `local` profile.
    pub fn append_to_profile(&self, line: &str) {
        let p = self.dir.path().join("profiles/local.toml");
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, format!("{text}{line}\n")).unwrap();
    }

    /// `calops ARGS --profile local --no-progress` in the site, with no `CALOPS_*` variable of
    /// this process but the site's port and its own variables.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.calops);
        c.current_dir(self.dir.path())
            .args(args)
            .args(["--profile", "local", "--no-progress"]);
        for (k, _) in std::env::vars() {
            if k.starts_with("CALOPS_") {
                c.env_remove(k);
            }
        }
        c.env("CALOPS_LOCAL_PORT", self.port.to_string());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Run with --json; return (exit code, document, stderr).
    pub fn json(&self, args: &[&str]) -> (i32, Value, String) {
        let mut a = args.to_vec();
        a.push("--json");
        crate::support::json_output(args, &self.run(&a))
    }

    /// `.calops/local`: the deployment's state.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join(".calops").join("local")
    }

    pub fn secret(&self, name: &str) -> String {
        std::fs::read_to_string(self.root().join("secrets").join(name))
            .unwrap()
            .trim()
            .to_string()
    }

    pub fn api_key(&self) -> String {
        self.secret("demo-api-key")
    }

    /// The service's database on the private cluster.
    pub fn db_url(&self) -> String {
        let pg = self.root().join("pg");
        let pw = std::fs::read_to_string(pg.join("superuser.password")).unwrap();
        let port = std::fs::read_to_string(pg.join("port")).unwrap();
        format!(
            "postgres://calops:{}@127.0.0.1:{}/calops",
            pw.trim(),
            port.trim()
        )
    }

    /// `http://127.0.0.1:PORT{path}` on the site's public port.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `http://127.0.0.1:PORT{path}` on the running release's private listener (`/metrics`
    /// and the operator's `/health`), as recorded in `run/current.json`.
    pub fn private_url(&self, path: &str) -> String {
        let current: Value = serde_json::from_str(
            &std::fs::read_to_string(self.root().join("run/current.json")).unwrap(),
        )
        .unwrap();
        format!("http://127.0.0.1:{}{path}", current["private_port"])
    }

    /// The demo event type's slots over the next two weeks, in `zone`.
    pub fn slots_url(&self, zone: &str) -> String {
        let ids: Value = serde_json::from_str(&self.secret("demo.json")).unwrap();
        let start = jiff::Zoned::now().date();
        let end = start.checked_add(jiff::Span::new().days(14)).unwrap();
        self.url(&format!(
            "/v2/slots?eventTypeId={}&start={start}&end={end}&timeZone={zone}",
            ids["event_type_id"]
        ))
    }

    /// A GET with the demo API key; its status (0 when nothing answered).
    pub fn get(&self, url: &str) -> u16 {
        http(reqwest::Method::GET, url, &self.api_key(), None).0
    }

    /// A GET without a key (a browser's): its status and body.
    pub fn get_page(&self, url: &str) -> (u16, String) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let r = reqwest::Client::new().get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    }

    pub fn healthy(&self) -> bool {
        self.get(&self.url("/health")) == 200
    }

    /// Book the first free demo slot for `who` through the HTTP API; the booking's uid.
    pub fn book(&self, who: &str) -> String {
        let key = self.api_key();
        let (_, slots) = http(reqwest::Method::GET, &self.slots_url("UTC"), &key, None);
        let first = slots["data"]
            .as_object()
            .and_then(|days| days.values().next())
            .and_then(|d| d[0]["start"].as_str())
            .expect("a free slot")
            .to_string();
        let ids: Value = serde_json::from_str(&self.secret("demo.json")).unwrap();
        let body = serde_json::json!({
            "start": first,
            "eventTypeId": ids["event_type_id"],
            "attendee": {"name": who, "email": format!("{who}@example.com"), "timeZone": "UTC"},
        });
        let (status, v) = http(
            reqwest::Method::POST,
            &self.url("/v2/bookings"),
            &key,
            Some(&body),
        );
        assert_eq!(status, 201, "{v}");
        v["data"]["uid"].as_str().unwrap().to_string()
    }

    /// The status of a booking (`accepted`, ...) as the running release reports it.
    pub fn booking_status(&self, uid: &str) -> String {
        let (_, v) = http(
            reqwest::Method::GET,
            &self.url(&format!("/v2/bookings/{uid}")),
            &self.api_key(),
            None,
        );
        v["data"]["status"]
            .as_str()
            .unwrap_or("missing")
            .to_string()
    }

    /// Serve processes whose pidfiles are in run/ and alive.
    pub fn serve_processes(&self) -> usize {
        std::fs::read_dir(self.root().join("run"))
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("serve-"))
                    .filter_map(|e| {
                        std::fs::read_to_string(e.path())
                            .ok()?
                            .trim()
                            .parse::<i32>()
                            .ok()
                    })
                    .filter(|pid| Path::new(&format!("/proc/{pid}")).exists())
                    .count()
            })
            .unwrap_or(0)
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = self.run(&["destroy", "--yes"]);
    }
}
