//! Real CalDAV servers for tests, from the venv scripts/setup makes (`/opt/calops-venv`):
//! Radicale (htpasswd auth, storage in a temporary directory) and Xandikos (no auth of its
//! own; it ignores the credentials sent). Each listens on 127.0.0.1 on a free port, can be
//! killed and restarted on the same port with its data, and is killed when dropped.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The venv with Radicale, Xandikos and the `caldav` client.
pub const VENV: &str = "/opt/calops-venv/bin";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Radicale,
    Xandikos,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Radicale => "radicale",
            Kind::Xandikos => "xandikos",
        }
    }
}

/// A CalDAV server of one account (`USER` / `PASSWORD`).
pub struct TestCalDav {
    pub kind: Kind,
    pub port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

pub const USER: &str = "alice";
pub const PASSWORD: &str = "s3cret-calendar-pw";

impl TestCalDav {
    /// `None` (after printing SKIP, or a panic under CI) when the server is not installed.
    pub fn start(test: &str, kind: Kind) -> Option<TestCalDav> {
        let bin = crate::require_tool(test, &format!("{VENV}/{}", kind.name()))?;
        let port = calops::pg::free_port().expect("a free port");
        let dir = tempfile::Builder::new()
            .prefix("calops-caldav-")
            .tempdir()
            .expect("a temporary directory");
        std::fs::write(dir.path().join("users"), format!("{USER}:{PASSWORD}\n"))
            .expect("htpasswd file");
        let mut s = TestCalDav {
            kind,
            port,
            bin,
            dir,
            child: None,
        };
        s.restart().expect("the CalDAV server starts");
        Some(s)
    }

    /// The server's root URL (what a user types in).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// The URL of the account's calendar `name`.
    pub fn calendar_url(&self, name: &str) -> String {
        match self.kind {
            Kind::Radicale => format!("{}{USER}/{name}/", self.url()),
            Kind::Xandikos => format!("{}user/calendars/{name}/", self.url()),
        }
    }

    /// SIGKILL the server.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start (again) on the same port with the same data; wait until it answers.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        let d = self.dir.path();
        let log = std::fs::File::create(d.join("server.log"))?;
        let mut cmd = Command::new(&self.bin);
        match self.kind {
            Kind::Radicale => {
                cmd.args(["--config", ""])
                    .args(["--server-hosts", &format!("127.0.0.1:{}", self.port)])
                    .arg("--storage-filesystem-folder")
                    .arg(d.join("collections"))
                    .args([
                        "--auth-type",
                        "htpasswd",
                        "--auth-htpasswd-encryption",
                        "plain",
                    ])
                    .arg("--auth-htpasswd-filename")
                    .arg(d.join("users"))
                    .args(["--logging-level", "warning"]);
            }
            Kind::Xandikos => {
                cmd.args(["serve", "--defaults", "-l", "127.0.0.1"])
                    .args(["-p", &self.port.to_string()])
                    .arg("-d")
                    .arg(d.join("collections"))
                    .arg("--state-dir")
                    .arg(d.join("state"));
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.kind.name()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "{} did not listen within 20 s: {}",
            self.kind.name(),
            std::fs::read_to_string(d.join("server.log")).unwrap_or_default()
        )
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn http() -> reqwest::Client {
        reqwest::Client::new()
    }

    /// Create calendar `name` (MKCALENDAR); returns its URL.
    pub async fn make_calendar(&self, name: &str) -> Result<String> {
        let url = self.calendar_url(name);
        let body = format!(
            r#"<?xml version="1.0" encoding="utf-8"?><c:mkcalendar xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:set><d:prop><d:displayname>{name}</d:displayname></d:prop></d:set></c:mkcalendar>"#
        );
        let r = Self::http()
            .request(reqwest::Method::from_bytes(b"MKCALENDAR")?, &url)
            .basic_auth(USER, Some(PASSWORD))
            .header("Content-Type", "application/xml")
            .body(body)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("MKCALENDAR {url}: {}", r.status());
        }
        Ok(url)
    }

    /// Store calendar object `file` (e.g. `weekly.ics`) in calendar `calendar` (its URL).
    pub async fn put(&self, calendar: &str, file: &str, ics: &str) -> Result<()> {
        let r = Self::http()
            .put(format!("{calendar}{file}"))
            .basic_auth(USER, Some(PASSWORD))
            .header("Content-Type", "text/calendar; charset=utf-8")
            .body(ics.to_string())
            .send()
            .await?;
        if !r.status().is_success() {
            bail!(
                "PUT {calendar}{file}: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }

    /// Remove calendar object `file` from `calendar`.
    pub async fn delete(&self, calendar: &str, file: &str) -> Result<()> {
        let r = Self::http()
            .delete(format!("{calendar}{file}"))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("DELETE {calendar}{file}: {}", r.status());
        }
        Ok(())
    }
}

impl Drop for TestCalDav {
    fn drop(&mut self) {
        self.kill();
    }
}
