//! The local target: the service as a background process on this machine, with a private
//! PostgreSQL cluster, redis-server when installed, and files for object storage.
//!
//! A new release starts beside the old one on the same port (`SO_REUSEPORT`, steered so that
//! the old process keeps all traffic), is verified on its own private address, and then takes
//! over: the old process steers new connections to it, drains and exits (SIGUSR1).

use super::layout::Layout;
use super::process::{self, Managed};
use super::redis;
use crate::deploy::ledger::Release;
use crate::deploy::pipeline::{Artifact, Target, VerifyFailure};
use crate::deploy::steps::Steps;
use crate::deploy::store::write_atomic;
use crate::profile::types::SecretRef;
use crate::profile::Profile;
use anyhow::{Context, Result};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// What runs now, as recorded after a switch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Current {
    pub seq: u64,
    pub pid: i32,
    pub digest: String,
    pub private_port: u16,
}

pub struct Candidate {
    pub process: Managed,
    pub private_port: u16,
    pub seq: u64,
    pub digest: String,
}

pub struct LocalTarget {
    pub profile: Profile,
    pub layout: Layout,
    /// The binary to deploy (the running calops by default).
    pub source_binary: PathBuf,
    database_url: Option<String>,
    redis_url: Option<String>,
    /// The cluster's backup configuration (set by provision).
    backup_config: Option<PathBuf>,
    /// Where the cluster archives (a backup store URL); `None`: files under the layout. The VM's
    /// agent sets its bucket.
    pub backup_store: Option<String>,
}

use crate::fsutil::file_digest;

/// Identity of a file's current content as the filesystem sees it.
fn source_key(path: &Path) -> Result<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(format!(
        "{}:{}:{}:{}.{}",
        m.dev(),
        m.ino(),
        m.len(),
        m.mtime(),
        m.mtime_nsec()
    ))
}

/// Read (or create once, mode 0600) a random secret kept under the target's directory.
pub fn stored_secret(path: &Path) -> Result<String> {
    if let Ok(s) = std::fs::read_to_string(path) {
        let s = s.trim().to_string();
        if !s.is_empty() {
            return Ok(s);
        }
    }
    let token = crate::pg::random_token(40);
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    write_atomic(path, format!("{token}\n").as_bytes())?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(token)
}

impl LocalTarget {
    pub fn new(profile: Profile, workdir: &Path) -> Result<LocalTarget> {
        let layout = Layout::new(workdir, &profile.name);
        let source_binary =
            std::env::current_exe().context("finding the calops binary to deploy")?;
        Ok(LocalTarget {
            profile,
            layout,
            source_binary,
            database_url: None,
            redis_url: None,
            backup_config: None,
            backup_store: None,
        })
    }

    pub fn current(&self) -> Option<Current> {
        let text = std::fs::read_to_string(self.layout.current()).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn public_url(&self) -> String {
        format!(
            "http://{}:{}",
            self.profile.local.bind,
            self.profile.local.port.get()
        )
    }

    /// The environment of a `calops serve` process. Values come from the profile, the
    /// generated secrets and the calling environment (for `env:` references); they are passed
    /// to the child process only, never written to disk or printed.
    fn serve_env(&self, private_port: u16) -> Result<BTreeMap<String, String>> {
        let mut env = BTreeMap::new();
        let vm = self.profile.target == crate::profile::Target::OciVm;
        let mut vault = BTreeMap::new();
        for (k, v) in &self.profile.service.environment {
            env.insert(k.clone(), v.clone());
        }
        for (k, r) in &self.profile.service.secrets {
            match r {
                SecretRef::Env(name) => {
                    let v = std::env::var(name).map_err(|_| crate::error::actionable(format!("[service.secrets] {k} refers to env:{name}, which is not set"), format!("export {name}=... before deploying")))?;
                    env.insert(k.clone(), v);
                }
                SecretRef::Vault(ocid) if vm => {
                    vault.insert(k.clone(), ocid.as_str().to_string());
                }
                SecretRef::Vault(_) => {
                    return Err(crate::error::actionable(
                        format!("[service.secrets] {k} is an OCI Vault reference, which the local target cannot read"),
                        "use an `env:NAME` reference in local profiles",
                    ))
                }
            }
        }
        env.insert(
            "DATABASE_URL".into(),
            self.database_url
                .clone()
                .context("the database is not provisioned")?,
        );
        if let Some(r) = &self.redis_url {
            env.insert("REDIS_URL".into(), r.clone());
        }
        if let Some(b) = &self.backup_config {
            env.insert("CALOPS_BACKUP_CONFIG".into(), b.display().to_string());
        }
        env.insert(
            "CALOPS_OBJECT_STORAGE_URL".into(),
            format!("file://{}", absolute(&self.layout.objects()).display()),
        );
        env.insert(
            "CALOPS_ADMIN_TOKEN".into(),
            stored_secret(&self.layout.secret("admin-token"))?,
        );
        env.insert(
            "CALOPS_ADMIN_TOKEN_REF".into(),
            "env:CALOPS_ADMIN_TOKEN".into(),
        );
        // The booking pages' signing key: generated once, kept with the other secrets, so
        // that links survive restarts and releases.
        env.insert(
            "CALOPS_PAGE_KEY".into(),
            stored_secret(&self.layout.secret("page-key"))?,
        );
        env.insert("CALOPS_PAGE_KEY_REF".into(), "env:CALOPS_PAGE_KEY".into());
        env.insert(
            "CALOPS_LISTEN".into(),
            format!(
                "{}:{}",
                self.profile.local.bind,
                self.profile.local.port.get()
            ),
        );
        // E-mail goes to a Maildir under the target's directory (no mail server needed),
        // unless the profile's [service.env] names a transport of its own.
        let own_transport = env.contains_key("CALOPS_MAIL_TRANSPORT");
        if !own_transport {
            env.insert(
                "CALOPS_MAIL_TRANSPORT".into(),
                format!("maildir:{}", absolute(&self.layout.mail()).display()),
            );
            env.entry("CALOPS_MAIL_FROM".into())
                .or_insert_with(|| "bookings@localhost".into());
        }
        // The address the mail's links point at: this machine's, or on the VM the load
        // balancer's (its bind address, 0.0.0.0, reaches no one; no hostname: no links).
        let public_url = if vm {
            crate::runtime::env::vm_public_url(
                self.profile
                    .load_balancer
                    .hostname
                    .as_ref()
                    .map(|h| h.as_str()),
                self.profile.load_balancer.certificate_id.is_some(),
            )
        } else {
            Some(self.public_url())
        };
        if let Some(u) = public_url {
            env.entry("CALOPS_PUBLIC_URL".into()).or_insert(u);
        }
        env.insert("CALOPS_REUSE_PORT".into(), "true".into());
        env.insert(
            "CALOPS_PRIVATE_LISTEN".into(),
            format!("127.0.0.1:{private_port}"),
        );
        env.insert(
            "CALOPS_SHUTDOWN_TIMEOUT".into(),
            format!("{}s", self.profile.service.graceful_shutdown_seconds.max(1)),
        );
        if vm {
            // The oci-vm target's runtime contract: serve signs as the VM's instance principal
            // (Vault, Monitoring, Email Delivery), with the agent's endpoints.
            let compartment = self
                .profile
                .oci
                .as_ref()
                .map(|o| o.compartment_id.as_str().to_string())
                .context("an oci-vm profile has [oci] compartment_id")?;
            // [service] mail_sender sends through Email Delivery, unless [service.environment]
            // names a transport of its own (which wins, as on the container target).
            let mail_sender = self
                .profile
                .service
                .mail_sender
                .as_ref()
                .map(|a| a.as_str())
                .filter(|_| !own_transport);
            let extra = crate::runtime::env::vm_service_env(
                &compartment,
                mail_sender,
                &vault,
                std::env::vars(),
            )
            .map_err(|m| {
                crate::error::actionable(
                    m,
                    "refer to that secret with env:NAME, or use one of those names",
                )
            })?;
            env.extend(extra);
        }
        Ok(env)
    }

    /// Stop serve processes of this target that are neither current nor `keep` (e.g. a failed
    /// release left running for inspection, or a candidate whose deploy was killed, even before
    /// it wrote the pidfile), so the reuseport group holds at most two.
    fn stop_strays(&self, keep: Option<i32>) {
        let current = self.current().map(|c| c.pid);
        // Serve processes run in the layout's root: those without a pidfile are found there.
        for pid in process::find_by_cwd_and_arg(&self.layout.root, "serve") {
            if Some(pid) != current && Some(pid) != keep {
                let m = process::Managed {
                    pid,
                    pidfile: self.layout.run().join(format!("stray-{pid}.pid")),
                    log: PathBuf::from("/dev/null"),
                };
                m.stop(Duration::from_secs(10));
            }
        }
        let Ok(rd) = std::fs::read_dir(self.layout.run()) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !(name.starts_with("serve-") && name.ends_with(".pid")) {
                continue;
            }
            match process::read_pidfile(&p, Path::new("/dev/null")) {
                Some(m) if Some(m.pid) != current && Some(m.pid) != keep => {
                    m.stop(Duration::from_secs(10));
                }
                Some(_) => {}
                None => {
                    let _ = std::fs::remove_file(&p);
                }
            }
        }
    }

    /// The version a binary reports (`calops X.Y.Z (target)` -> `X.Y.Z`).
    fn artifact_version(path: &Path) -> Option<String> {
        let out = Command::new(path).arg("--version").output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace().nth(1).map(String::from)
    }

    /// GET `http://127.0.0.1:port/path` with a short timeout.
    pub async fn get(port: u16, path: &str) -> Result<(u16, String)> {
        let c = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        let r = c
            .get(format!("http://127.0.0.1:{port}{path}"))
            .send()
            .await?;
        let status = r.status().as_u16();
        Ok((status, r.text().await.unwrap_or_default()))
    }

    /// Stop everything this target runs (service, PostgreSQL, Redis). Data stays on disk.
    pub fn stop_all(&mut self) -> Result<()> {
        if let Some(c) = self.current() {
            if let Some(m) =
                process::read_pidfile(&self.layout.pidfile(c.seq), &self.layout.log(c.seq))
            {
                m.stop(Duration::from_secs(30));
            }
        }
        self.stop_strays(None);
        let _ = std::fs::remove_file(self.layout.current());
        if let Some(r) = redis::running(&self.layout.redis()) {
            r.process.stop(Duration::from_secs(10));
        }
        if self.layout.pg().join("data").exists() {
            let mut cluster =
                crate::pg::Cluster::init_or_open(&self.layout.pg(), crate::pg::Options::default())?;
            cluster.stop()?;
        }
        Ok(())
    }
}

/// Copy `src` into the release store under its digest, unless it is there already. The digest
/// of an unchanged file is remembered by (device, inode, size, mtime), so an unchanged
/// re-deploy does not hash the binary again. Returns the artifact and whether it was reused.
fn store_artifact(src: &Path, layout: &Layout) -> Result<(Artifact, bool)> {
    let cache = layout.root.join("releases").join(".source-digest.json");
    let key = source_key(src)?;
    let cached: Option<(String, String)> = std::fs::read_to_string(&cache)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let digest = match cached {
        Some((k, d)) if k == key => d,
        _ => file_digest(src)?,
    };
    let dest = layout.artifact(&digest);
    let artifact = Artifact {
        digest: digest.clone(),
        location: dest.display().to_string(),
    };
    let len = |p: &Path| std::fs::metadata(p).ok().map(|m| m.len());
    // Artifacts are verified when stored (below), so an existing one of the right size is it.
    if dest.is_file() && len(&dest) == len(src) {
        let _ = write_atomic(&cache, serde_json::to_string(&(key, &digest))?.as_bytes());
        return Ok((artifact, true));
    }
    let dir = dest.parent().context("artifact path has a parent")?;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(".calops.tmp");
    std::fs::copy(src, &tmp)
        .with_context(|| format!("copying {} to {}", src.display(), tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    if file_digest(&tmp)? != digest {
        let _ = std::fs::remove_file(&tmp);
        anyhow::bail!(
            "{} changed while it was being copied; deploy again",
            src.display()
        );
    }
    std::fs::rename(&tmp, &dest)?;
    let _ = write_atomic(&cache, serde_json::to_string(&(key, &digest))?.as_bytes());
    Ok((artifact, false))
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

impl Target for LocalTarget {
    type Candidate = Candidate;

    async fn build(&mut self, steps: &mut Steps<'_>) -> Result<(Artifact, bool)> {
        let src = self.source_binary.clone();
        let layout = self.layout.clone();
        steps
            .run(
                "build",
                "copying the calops binary into the release store",
                Duration::from_secs(120),
                async move { store_artifact(&src, &layout) },
            )
            .await
            .map_err(Into::into)
    }

    fn inputs(&self) -> serde_json::Value {
        serde_json::json!({
            "environment": self.profile.service.environment,
            "secrets": self.profile.service.secrets,
            "graceful_shutdown_seconds": self.profile.service.graceful_shutdown_seconds,
        })
    }

    fn restore_inputs(&mut self, inputs: &serde_json::Value) -> Result<()> {
        let s = &mut self.profile.service;
        if let Some(env) = inputs.get("environment") {
            s.environment = serde_json::from_value(env.clone())
                .context("the release's recorded environment is unreadable")?;
        }
        if let Some(secrets) = inputs.get("secrets").and_then(|v| v.as_object()) {
            let mut out = BTreeMap::new();
            for (k, v) in secrets {
                let text = v
                    .as_str()
                    .context("a recorded secret reference is not text")?;
                out.insert(
                    k.clone(),
                    SecretRef::parse(text)
                        .map_err(|e| anyhow::anyhow!("recorded secret reference {k}: {e}"))?,
                );
            }
            s.secrets = out;
        }
        if let Some(g) = inputs
            .get("graceful_shutdown_seconds")
            .and_then(|v| v.as_u64())
        {
            s.graceful_shutdown_seconds = g as u32;
        }
        Ok(())
    }

    async fn clean_up_interrupted(&mut self) {
        self.stop_strays(None);
    }

    async fn provision(&mut self, steps: &mut Steps<'_>) -> Result<bool> {
        let layout = self.layout.clone();
        let want_redis = self.profile.local.redis;
        let backup_cfg =
            super::archiving::config(&self.profile, &self.layout, self.backup_store.as_deref());
        let source_binary = self.source_binary.clone();
        let (db, redis_url, backup_config, changed) = steps
            .run(
                "provision",
                "starting PostgreSQL (and Redis) under .calops",
                Duration::from_secs(180),
                async move {
                    let mut changed = false;
                    let fresh = !layout.pg().join("data").join("PG_VERSION").exists();
                    let mut cluster = crate::pg::Cluster::init_or_open(
                        &layout.pg(),
                        crate::pg::Options::default(),
                    )?;
                    let was_running = cluster.running_pid().is_some();
                    changed |= !was_running;
                    // Continuous archiving: archive_command runs the stored release binary
                    // (never rewritten), linked where the server's OS user reaches it.
                    let (archiver, _) = store_artifact(&source_binary, &layout)?;
                    super::archiving::configure(
                        &cluster,
                        &backup_cfg,
                        &layout,
                        Path::new(&archiver.location),
                    )?;
                    // `start` adopts a server already running on this cluster (and learns its port).
                    cluster.start()?;
                    changed |= super::archiving::apply(&mut cluster).await?;
                    if fresh {
                        cluster.create_database("calops").await?;
                        changed = true;
                    }
                    let redis_url = if want_redis {
                        match redis::ensure(&layout.redis())? {
                            Some((r, started)) => {
                                changed |= started;
                                Some(r.url())
                            }
                            None => None,
                        }
                    } else {
                        None
                    };
                    std::fs::create_dir_all(layout.objects())?;
                    let backup_config = crate::backup::install::config_path(&cluster.server_home());
                    Ok((cluster.url("calops"), redis_url, backup_config, changed))
                },
            )
            .await?;
        if self.profile.local.redis && redis_url.is_none() {
            steps.ui().warn("redis-server is not installed: the service uses in-process rate limits (apt-get install redis-server)");
        }
        self.database_url = Some(db);
        self.redis_url = redis_url;
        self.backup_config = Some(backup_config);
        Ok(changed)
    }

    async fn is_serving(&self, release: &Release) -> bool {
        let Some(c) = self.current() else {
            return false;
        };
        if c.seq != release.seq || c.digest != release.artifact_digest {
            return false;
        }
        let alive =
            process::read_pidfile(&self.layout.pidfile(c.seq), &self.layout.log(c.seq)).is_some();
        alive && matches!(Self::get(c.private_port, "/health").await, Ok((200, _)))
    }

    async fn artifact_available(&self, release: &Release) -> bool {
        self.layout.artifact(&release.artifact_digest).is_file()
    }

    async fn start(&mut self, artifact: &Artifact, release: &Release) -> Result<Candidate> {
        self.stop_strays(None);
        let private_port = process::free_port()?;
        let mut env = self.serve_env(private_port)?;
        if self.profile.target == crate::profile::Target::OciVm {
            env.extend(crate::runtime::env::vm_release_env(&artifact.digest));
        }
        let bin = self.layout.artifact(&artifact.digest);
        let mut cmd = Command::new(&bin);
        cmd.arg("serve").env_clear();
        for k in ["PATH", "HOME", "LANG", "TZ"] {
            if let Ok(v) = std::env::var(k) {
                cmd.env(k, v);
            }
        }
        cmd.envs(&env).current_dir(&self.layout.root);
        let m = process::spawn_detached(
            cmd,
            &self.layout.pidfile(release.seq),
            &self.layout.log(release.seq),
        )?;
        Ok(Candidate {
            process: m,
            private_port,
            seq: release.seq,
            digest: artifact.digest.clone(),
        })
    }

    async fn verify(&mut self, c: &Candidate, _release: &Release) -> Result<(), VerifyFailure> {
        let fail = |check: String| VerifyFailure {
            check,
            log_excerpt: c.process.log_tail(20),
        };
        // 1. Health on the private address.
        loop {
            if !c.process.alive() {
                return Err(fail(format!(
                    "the new release (pid {}) exited during start",
                    c.process.pid
                )));
            }
            if let Ok((200, _)) = Self::get(c.private_port, "/health").await {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // 2. The version it reports is the artifact's.
        let (_, body) = Self::get(c.private_port, "/health")
            .await
            .map_err(|e| fail(format!("/health: {e}")))?;
        let health: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| fail(format!("/health is not JSON: {e}")))?;
        let want = Self::artifact_version(&self.layout.artifact(&c.digest));
        let got = health
            .get("version")
            .and_then(|v| v.as_str())
            .map(String::from);
        if want.is_some() && got != want {
            return Err(fail(format!(
                "/health reports version {:?}, the artifact is {:?}",
                got, want
            )));
        }
        // 3. A smoke request through the API layer.
        match Self::get(c.private_port, "/openapi.json").await {
            Ok((200, b)) if b.contains("\"openapi\"") => Ok(()),
            Ok((s, _)) => Err(fail(format!(
                "smoke request GET /openapi.json answered {s}"
            ))),
            Err(e) => Err(fail(format!("smoke request GET /openapi.json failed: {e}"))),
        }
    }

    async fn switch(&mut self, c: Candidate) -> Result<()> {
        let old = self.current().and_then(|cur| {
            process::read_pidfile(&self.layout.pidfile(cur.seq), &self.layout.log(cur.seq))
        });
        if let Some(old) = old.filter(|o| o.pid != c.process.pid) {
            // The old process steers new connections to the new one, drains, and exits.
            old.signal(Signal::SIGUSR1)?;
            let grace =
                Duration::from_secs(self.profile.service.graceful_shutdown_seconds as u64 + 10);
            old.wait_exit(grace);
            let _ = std::fs::remove_file(&old.pidfile);
        }
        let cur = Current {
            seq: c.seq,
            pid: c.process.pid,
            digest: c.digest.clone(),
            private_port: c.private_port,
        };
        write_atomic(
            &self.layout.current(),
            serde_json::to_string_pretty(&cur)?.as_bytes(),
        )?;
        Ok(())
    }

    async fn discard(&mut self, c: Candidate) -> Result<()> {
        c.process.stop(Duration::from_secs(10));
        Ok(())
    }

    fn details(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("url".into(), self.public_url().into());
        m.insert(
            "mail".into(),
            absolute(&self.layout.mail())
                .join("new")
                .display()
                .to_string()
                .into(),
        );
        if let Some(c) = self.current() {
            m.insert("pid".into(), c.pid.into());
            m.insert(
                "log".into(),
                self.layout.log(c.seq).display().to_string().into(),
            );
        }
        m
    }

    fn verify_timeout(&self) -> Duration {
        Duration::from_secs(self.profile.deploy.health_timeout_seconds as u64)
    }
}
