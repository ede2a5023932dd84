//! A private PostgreSQL cluster started from the machine's server binaries.
//!
//! Used by the service tests and benchmark (a temporary directory, one cluster per run) and by
//! the local deploy target (a persistent directory under `.calops/local/`). The layout of a
//! cluster directory:
//!
//! ```text
//! DIR/data/            the PostgreSQL data directory (owned by the server's OS user)
//! DIR/data/server.log  the server log
//! DIR/superuser.password  the `calops` role's password (mode 0600, never printed)
//! DIR/port             the TCP port of the running server (written by `start`)
//! ```
//!
//! The server listens on 127.0.0.1 only, with its unix socket inside the data directory, and
//! authenticates with scram-sha-256. PostgreSQL refuses to run as root; when this process is
//! root, `initdb` and `postgres` run as a dedicated system user (`calops-pg`, created with
//! `useradd --system` when missing; `nobody` if that fails).

mod binaries;
pub mod connect;
mod user;

pub use binaries::Binaries;
pub use connect::Connector;
pub use user::RunAs;

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The superuser role every cluster is created with.
pub const SUPERUSER: &str = "calops";

/// The port number of a [`Cluster::start_private`] server's socket (it has no TCP listener).
const PRIVATE_PORT: u16 = 5432;

/// How to find and start a cluster.
#[derive(Debug, Clone)]
pub struct Options {
    /// TCP port; `None` picks a free one at start.
    pub port: Option<u16>,
    /// Extra `-c name=value` server settings.
    pub settings: Vec<(String, String)>,
    /// How long `start` waits for the server to accept connections.
    pub start_timeout: Duration,
    /// Serve TLS with this certificate and key, and accept TCP connections with TLS only
    /// (`hostssl` in `pg_hba.conf`, as OCI Database with PostgreSQL does).
    pub tls: Option<ServerTls>,
}

/// A server certificate (chain) and its private key, both PEM.
#[derive(Clone)]
pub struct ServerTls {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerTls(..)")
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            port: None,
            settings: Vec::new(),
            start_timeout: Duration::from_secs(60),
            tls: None,
        }
    }
}

/// A cluster directory, initialised and possibly running. `Debug` never shows the password.
pub struct Cluster {
    dir: PathBuf,
    bins: Binaries,
    run_as: Option<RunAs>,
    password: String,
    port: Option<u16>,
    options: Options,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("dir", &self.dir)
            .field("bins", &self.bins)
            .field("run_as", &self.run_as)
            .field("password", &"<redacted>")
            .field("port", &self.port)
            .field("options", &self.options)
            .finish()
    }
}

impl Cluster {
    /// Open the cluster in `dir`, running `initdb` first when `dir/data` is not a cluster yet.
    pub fn init_or_open(dir: &Path, options: Options) -> Result<Cluster> {
        let bins = Binaries::locate()?;
        let run_as = RunAs::for_current_process()?;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the cluster directory {}", dir.display()))?;
        let dir = dir
            .canonicalize()
            .with_context(|| format!("resolving {}", dir.display()))?;
        let data = resolve_data(&dir);
        let password_file = dir.join("superuser.password");
        let initialised = data.join("PG_VERSION").is_file();
        let password = if initialised {
            std::fs::read_to_string(&password_file)
                .with_context(|| {
                    format!(
                        "reading {} (the cluster in {} exists but its password file is missing; \
                         remove the directory to start over)",
                        password_file.display(),
                        dir.display()
                    )
                })?
                .trim()
                .to_string()
        } else {
            let password = random_token(32);
            initdb(&bins, run_as.as_ref(), &dir, &password)?;
            write_private(&password_file, &password)?;
            password
        };
        Ok(Cluster {
            dir,
            bins,
            run_as,
            password,
            port: None,
            options,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The data directory (`DIR/data`, or where that symlink points when the cluster had to
    /// be placed under [`RELOCATED_ROOT`]).
    pub fn data_dir(&self) -> PathBuf {
        resolve_data(&self.dir)
    }

    pub fn log_file(&self) -> PathBuf {
        self.data_dir().join("server.log")
    }

    /// The port while running.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Start on this port next time (a restart keeps clients' URLs valid).
    pub fn set_port(&mut self, port: u16) {
        self.options.port = Some(port);
    }

    /// Is a postmaster for this data directory alive (perhaps started by another process)?
    pub fn running_pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        let pid: i32 = text.lines().next()?.trim().parse().ok()?;
        // Signal 0 checks existence without touching the process.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        alive.then_some(pid)
    }

    /// Wait until the server on `port` accepts connections (or `start_timeout`).
    fn wait_ready(&self, port: u16) -> Result<()> {
        wait_ready(
            port,
            &self.password,
            self.options.tls.is_some(),
            self.options.start_timeout,
            &self.log_file(),
        )
    }

    /// Start the server (or adopt one already running on this data directory) and wait until
    /// it accepts connections.
    pub fn start(&mut self) -> Result<u16> {
        if self.running_pid().is_some() {
            if let Some(port) = read_port_from_pidfile(&self.data_dir()) {
                self.port = Some(port);
                self.wait_ready(port)?;
                return Ok(port);
            }
        }
        let port = match self.options.port {
            Some(p) => p,
            None => free_port()?,
        };
        let data = self.data_dir();
        let mut opts = format!(
            "-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{}'",
            data.display()
        );
        for (k, v) in &self.options.settings {
            opts.push_str(&format!(" -c {k}={v}"));
        }
        if let Some(tls) = &self.options.tls {
            self.install_tls(tls)?;
            opts.push_str(" -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key");
        }
        self.pg_ctl_start(&opts, true)?;
        self.wait_ready(port)?;
        std::fs::write(self.dir.join("port"), port.to_string())?;
        self.port = Some(port);
        Ok(port)
    }

    /// `pg_ctl start` with these server options; with `wait`, until it accepts connections
    /// (or `start_timeout`). The postmaster runs in its own session.
    fn pg_ctl_start(&self, opts: &str, wait: bool) -> Result<()> {
        let mut cmd = Command::new(self.bins.path("pg_ctl"));
        cmd.arg("start")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_file())
            .arg("-o")
            .arg(opts)
            .arg(if wait { "-w" } else { "-W" })
            .arg("-t")
            .arg(self.options.start_timeout.as_secs().max(1).to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // The postmaster outlives this process only when started for a persistent directory;
        // its own session keeps a Ctrl-C in our terminal from reaching it.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        user::apply(&mut cmd, self.run_as.as_ref());
        let out = cmd
            .output()
            .with_context(|| format!("running {}", self.bins.path("pg_ctl").display()))?;
        if !out.status.success() {
            bail!(
                "PostgreSQL did not start (pg_ctl: {}).\n{}\n  log excerpt ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                self.log_file().display(),
                log_tail(&self.log_file(), 15)
            );
        }
        Ok(())
    }

    /// Start the server reachable only through a unix socket in its data directory (mode
    /// 0700: this process and the server's user), authenticating with `hba_file`; returns
    /// without waiting (a server in archive recovery may take long to accept connections).
    /// Used by restores, which must not depend on a password file that may be lost.
    pub fn start_private(&mut self, hba_file: &Path) -> Result<()> {
        let opts = format!(
            "-c port={PRIVATE_PORT} -c listen_addresses='' -c unix_socket_directories='{}' -c hba_file='{}'",
            self.data_dir().display(),
            hba_file.display()
        );
        self.pg_ctl_start(&opts, false)
    }

    /// Connection settings for a server started with [`Cluster::start_private`].
    pub fn private_config(&self, database: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host_path(self.data_dir())
            .port(PRIVATE_PORT)
            .user(SUPERUSER)
            .dbname(database)
            .connect_timeout(Duration::from_secs(5));
        c
    }

    /// The directory that holds the data directory (the cluster directory, or its place under
    /// [`RELOCATED_ROOT`]): the server's OS user can reach it.
    pub fn server_home(&self) -> PathBuf {
        let data = self.data_dir();
        data.parent().map(Path::to_path_buf).unwrap_or(data)
    }

    pub fn binaries(&self) -> &Binaries {
        &self.bins
    }

    /// The superuser's password (for child processes' `PGPASSWORD`; never print it).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Put the certificate and key in the data directory (owned by the server's user, mode
    /// 0600 as PostgreSQL requires) and allow TCP connections with TLS only.
    fn install_tls(&self, tls: &ServerTls) -> Result<()> {
        let data = self.data_dir();
        for (name, text) in [("server.crt", &tls.cert_pem), ("server.key", &tls.key_pem)] {
            let path = data.join(name);
            let _ = std::fs::remove_file(&path);
            write_private(&path, text)?;
            if let Some(u) = &self.run_as {
                nix::unistd::chown(&path, Some(u.uid.into()), Some(u.gid.into()))?;
            }
        }
        std::fs::write(
            data.join("pg_hba.conf"),
            "# calops: TCP with TLS only\nlocal all all scram-sha-256\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
        )?;
        Ok(())
    }

    /// Stop the server: a fast shutdown (rolls back open transactions), waiting up to 30 s.
    pub fn stop(&mut self) -> Result<()> {
        if self.running_pid().is_none() {
            self.port = None;
            return Ok(());
        }
        let mut cmd = Command::new(self.bins.path("pg_ctl"));
        cmd.arg("stop")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "fast", "-w", "-t", "30"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        user::apply(&mut cmd, self.run_as.as_ref());
        let out = cmd.output().context("running pg_ctl stop")?;
        if !out.status.success() {
            bail!(
                "PostgreSQL did not stop: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        self.port = None;
        let _ = std::fs::remove_file(self.dir.join("port"));
        Ok(())
    }

    /// A connection URL for `database` (contains the password: never print it).
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{}",
            self.password,
            self.port.unwrap_or(5432),
            database
        )
    }

    /// The URL with the password masked, for messages.
    pub fn display_url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:***@127.0.0.1:{}/{}",
            self.port.unwrap_or(5432),
            database
        )
    }

    /// Create `name` unless it exists. Names are limited to `[a-z0-9_]`.
    pub async fn create_database(&self, name: &str) -> Result<()> {
        if name.is_empty()
            || name.len() > 63
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            bail!("invalid database name {name:?}: use 1-63 characters of a-z, 0-9 and _");
        }
        let (client, conn) = tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
            .await
            .context("connecting to the private PostgreSQL cluster")?;
        let task = tokio::spawn(conn);
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .await?
            .is_some();
        if !exists {
            client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .with_context(|| format!("creating database {name}"))?;
        }
        drop(client);
        let _ = task.await;
        Ok(())
    }

    /// Stop the server and delete the cluster: its directory and (when relocated) its data.
    pub fn remove(mut self) -> Result<()> {
        self.stop()?;
        let data = self.data_dir();
        if data != self.dir.join("data") {
            std::fs::remove_dir_all(&data)
                .with_context(|| format!("removing {}", data.display()))?;
            if let Some(parent) = data.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
        std::fs::remove_dir_all(&self.dir)
            .with_context(|| format!("removing {}", self.dir.display()))?;
        Ok(())
    }
}

/// A client whose connection runs on a task of the current tokio runtime; dropping it closes
/// the connection (and so ends the session's advisory locks).
pub struct Session {
    client: tokio_postgres::Client,
    task: tokio::task::JoinHandle<()>,
}

/// Connect to `url` (no TLS: the private clusters listen on 127.0.0.1 only).
pub async fn connect(url: &str) -> Result<Session> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(Session { client, task })
}

impl std::ops::Deref for Session {
    type Target = tokio_postgres::Client;
    fn deref(&self) -> &tokio_postgres::Client {
        &self.client
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Stop at once whatever server runs on `DIR`'s data (SIGQUIT: an immediate shutdown) and
/// delete the cluster directory and its relocated data, if any. For clusters that must not be
/// left behind (a failed restore); needs no password.
pub fn discard(dir: &Path) -> Result<()> {
    let data = resolve_data(dir);
    let pid = std::fs::read_to_string(data.join("postmaster.pid"))
        .ok()
        .and_then(|t| t.lines().next()?.trim().parse::<i32>().ok());
    if let Some(pid) = pid {
        if unsafe { libc::kill(pid, libc::SIGQUIT) } == 0 {
            let deadline = Instant::now() + Duration::from_secs(10);
            while unsafe { libc::kill(pid, 0) } == 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if unsafe { libc::kill(pid, 0) } == 0 {
                unsafe { libc::kill(pid, libc::SIGKILL) };
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    if data != dir.join("data") && data.exists() {
        std::fs::remove_dir_all(&data).with_context(|| format!("removing {}", data.display()))?;
        if let Some(parent) = data.parent() {
            let _ = std::fs::remove_dir_all(parent);
        }
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(())
}

/// Where a root-run cluster's data goes when the cluster directory cannot be reached by the
/// server's user (for example a project under /root): `RELOCATED_ROOT/<hash of DIR>/data`,
/// with `DIR/data` a symlink to it.
pub const RELOCATED_ROOT: &str = "/var/lib/calops-pg";

fn resolve_data(dir: &Path) -> PathBuf {
    let link = dir.join("data");
    match std::fs::read_link(&link) {
        Ok(target) if target.is_absolute() => target,
        _ => link,
    }
}

/// The first ancestor of `dir` that other users cannot search, if any.
fn unsearchable_ancestor(dir: &Path) -> Option<PathBuf> {
    dir.ancestors().skip(1).find_map(|a| {
        let meta = std::fs::metadata(a).ok()?;
        (meta.permissions().mode() & 0o001 == 0).then(|| a.to_path_buf())
    })
}

/// Make `DIR/data` an empty directory the server's OS user owns (mode 0700), placing it
/// under [`RELOCATED_ROOT`] (with `DIR/data` a symlink to it) when that user cannot reach
/// `DIR`. Returns the data directory and the directory holding it (the "server home").
pub fn prepare_data_dir(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let run_as = RunAs::for_current_process()?;
    prepare_data_dir_as(run_as.as_ref(), dir)
}

fn prepare_data_dir_as(run_as: Option<&RunAs>, dir: &Path) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the cluster directory {}", dir.display()))?;
    let mut data = dir.join("data");
    let mut home = dir.to_path_buf();
    if let Some(u) = run_as {
        if let Some(blocked) = unsearchable_ancestor(dir) {
            // The server's user cannot reach DIR: keep the data where it can, link it here.
            let base = relocated_base(dir);
            std::fs::create_dir_all(&base).with_context(|| {
                format!(
                    "{} is not searchable by user {} (PostgreSQL cannot run as root), and \
                     creating {} for the data failed",
                    blocked.display(),
                    u.name,
                    base.display()
                )
            })?;
            for p in [Path::new(RELOCATED_ROOT), base.as_path()] {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o711))?;
            }
            let real = base.join("data");
            if real.exists() {
                bail!(
                    "{} already exists but {} does not point to it; remove one of them",
                    real.display(),
                    data.display()
                );
            }
            std::fs::create_dir_all(&real)?;
            std::os::unix::fs::symlink(&real, &data)
                .with_context(|| format!("linking {} to {}", data.display(), real.display()))?;
            data = real;
            home = base;
        } else {
            // The cluster directory is opened for traversal (not listing) by the server's user.
            let mut perm = std::fs::metadata(dir)?.permissions();
            perm.set_mode(perm.mode() | 0o711);
            std::fs::set_permissions(dir, perm)?;
        }
    }
    std::fs::create_dir_all(&data)?;
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700))?;
    if let Some(u) = run_as {
        nix::unistd::chown(&data, Some(u.uid.into()), Some(u.gid.into()))
            .with_context(|| format!("handing {} to user {}", data.display(), u.name))?;
    }
    Ok((data, home))
}

/// `RELOCATED_ROOT/<hash of path>`: where things the server's user must reach go when `path`
/// is out of its reach.
fn relocated_base(path: &Path) -> PathBuf {
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(path.as_os_str().as_encoded_bytes()));
    Path::new(RELOCATED_ROOT).join(&digest[..16])
}

/// Make `path` a directory the server's OS user can write (mode 0700), for files PostgreSQL's
/// own commands write (the WAL archive). When the server's user cannot reach `path`, the
/// directory is created under [`RELOCATED_ROOT`] and `path` becomes a symlink to it.
pub fn server_writable_dir(path: &Path) -> Result<PathBuf> {
    let run_as = RunAs::for_current_process()?;
    let Some(u) = run_as else {
        std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
        return Ok(path.to_path_buf());
    };
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Ok(path.to_path_buf());
    }
    let parent = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let real = if unsearchable_ancestor(path).is_some() {
        let base = relocated_base(path);
        std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
        std::fs::set_permissions(RELOCATED_ROOT, std::fs::Permissions::from_mode(0o711))?;
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o711))?;
        let real = base.join(path.file_name().unwrap_or_default());
        std::fs::create_dir_all(&real)?;
        if !path.exists() {
            std::os::unix::fs::symlink(&real, path)
                .with_context(|| format!("linking {} to {}", path.display(), real.display()))?;
        }
        real
    } else {
        std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
        path.to_path_buf()
    };
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700))?;
    nix::unistd::chown(&real, Some(u.uid.into()), Some(u.gid.into()))
        .with_context(|| format!("handing {} to user {}", real.display(), u.name))?;
    Ok(path.to_path_buf())
}

/// Hand everything under `path` to the server's OS user (after calops wrote it as root).
pub fn hand_to_server(path: &Path) -> Result<()> {
    let Some(u) = RunAs::for_current_process()? else {
        return Ok(());
    };
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p)?;
        nix::unistd::fchownat(
            None,
            &p,
            Some(u.uid.into()),
            Some(u.gid.into()),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .with_context(|| format!("handing {} to user {}", p.display(), u.name))?;
        if meta.is_dir() {
            for e in std::fs::read_dir(&p)? {
                stack.push(e?.path());
            }
        }
    }
    Ok(())
}

fn initdb(bins: &Binaries, run_as: Option<&RunAs>, dir: &Path, password: &str) -> Result<()> {
    let (data, staging) = prepare_data_dir_as(run_as, dir)?;
    let data = data.as_path();
    // The password goes through a file readable only by the server's user, then is removed.
    let pwfile = staging.join(".initdb-pw");
    write_private(&pwfile, password)?;
    if let Some(u) = run_as {
        nix::unistd::chown(&pwfile, Some(u.uid.into()), Some(u.gid.into()))?;
    }
    let mut cmd = Command::new(bins.path("initdb"));
    cmd.arg("-D")
        .arg(data)
        .arg("-U")
        .arg(SUPERUSER)
        .arg("--pwfile")
        .arg(&pwfile)
        .args([
            "-A",
            "scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    user::apply(&mut cmd, run_as);
    let out = cmd.output().context("running initdb")?;
    let _ = std::fs::remove_file(&pwfile);
    if !out.status.success() {
        bail!(
            "initdb failed for {}: {}",
            data.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// A random token of `n` lowercase hex characters.
pub fn random_token(n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
        .collect()
}

/// A TCP port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

fn read_port_from_pidfile(data: &Path) -> Option<u16> {
    // Line 4 of postmaster.pid is the port.
    let text = std::fs::read_to_string(data.join("postmaster.pid")).ok()?;
    text.lines().nth(3)?.trim().parse().ok()
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Poll until a login over TCP succeeds.
/// Runs on its own thread with its own runtime, so it works from sync and async callers alike.
fn wait_ready(port: u16, password: &str, tls: bool, timeout: Duration, log: &Path) -> Result<()> {
    std::thread::scope(|s| {
        s.spawn(|| wait_ready_blocking(port, password, tls, timeout, log))
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the readiness check panicked")))
    })
}

fn wait_ready_blocking(
    port: u16,
    password: &str,
    tls: bool,
    timeout: Duration,
    log: &Path,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let url = format!("postgres://{SUPERUSER}:{password}@127.0.0.1:{port}/postgres");
    let mut connector = Connector::plain(&url)?;
    if tls {
        let settings = crate::runtime::env::DatabaseSettings {
            target: crate::runtime::env::DatabaseTarget::Url(url.clone()),
            password: None,
            sslmode: crate::runtime::env::SslMode::Require,
            ca: None,
        };
        connector = Connector::new(&settings, None).map_err(|e| anyhow::anyhow!(e))?;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    loop {
        let attempt = rt.block_on(async {
            let (client, conn) = connector.connect().await?;
            let task = tokio::spawn(conn);
            client.simple_query("SELECT 1").await?;
            drop(client);
            let _ = task.await;
            Ok::<_, tokio_postgres::Error>(())
        });
        match attempt {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                bail!(
                    "PostgreSQL on 127.0.0.1:{port} did not accept connections within {:?}: {e}\n  log excerpt ({}):\n{}",
                    timeout,
                    log.display(),
                    log_tail(log, 15)
                );
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_is_read_from_line_four_of_the_pid_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("postmaster.pid"),
            "123\n/data\n1700000000\n54321\n/data\n127.0.0.1\n",
        )
        .unwrap();
        assert_eq!(read_port_from_pidfile(dir.path()), Some(54321));
    }

    #[test]
    fn random_tokens_are_hex_and_differ() {
        let a = random_token(32);
        let b = random_token(32);
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn debug_never_shows_the_password() {
        let c = Cluster {
            dir: PathBuf::from("/tmp/pg"),
            bins: Binaries {
                bindir: PathBuf::from("/usr/lib/postgresql/15/bin"),
            },
            run_as: None,
            password: "pg-pass-6f1e2d".into(),
            port: Some(5432),
            options: Options::default(),
        };
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("pg-pass-6f1e2d") && shown.contains("5432"),
            "{shown}"
        );
    }
}
