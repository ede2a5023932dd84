//! Backups on real PostgreSQL: continuous archiving, base backups, verification and
//! point-in-time restore, through the real `calops` binary (PostgreSQL runs it as
//! `archive_command` and `restore_command`) and the real local target.

use crate::support::site::{self, stable_binary, Site};
use calops::backup::config::BackupConfig;
use calops::backup::pgconf::RecoveryTarget;
use calops::backup::store::{AnyStore, FileStore};
use calops::backup::{basebackup, inventory, restore};
use calops::deploy::local::archiving;
use calops::deploy::local::layout::Layout;
use calops::pg::Cluster;
use calops_testkit::have_pg;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// `archive_timeout` in these tests (production: 60 s).
const ARCHIVE_TIMEOUT: u64 = 1;

/// Poll `f` every 50 ms until it gives `Some`, or fail after `limit` saying what was awaited.
fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> (T, Duration) {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return (v, start.elapsed());
        }
        assert!(
            start.elapsed() < limit,
            "gave up after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Run SQL on a cluster; every row's first column as text.
fn sql(url: &str, q: &str) -> Vec<String> {
    rt().block_on(crate::support::sql(url, q))
}

/// Wait until PostgreSQL reports the segment holding the current WAL position as archived;
/// returns how long that took (bounded by archive_timeout plus slack).
fn wait_archived(url: &str) -> Duration {
    let wanted = sql(url, "SELECT pg_walfile_name(pg_current_wal_lsn())").remove(0);
    let (_, took) = wait_for(
        &format!("{wanted} to be archived"),
        Duration::from_secs(ARCHIVE_TIMEOUT + 20),
        || {
            let last = sql(
                url,
                "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver",
            )
            .remove(0);
            (last.len() >= 24 && last[..24] >= wanted[..]).then_some(())
        },
    );
    took
}

// ---------------------------------------------------------------------------------------
// A cluster with archiving, driven through the library (the failure-path tests)
// ---------------------------------------------------------------------------------------

struct Rig {
    _dir: tempfile::TempDir,
    layout: Layout,
    cluster: Option<Cluster>,
    cfg: BackupConfig,
    store: AnyStore,
    calops: PathBuf,
}

impl Rig {
    fn new(test: &str) -> Option<Rig> {
        if !have_pg(test) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let calops = stable_binary(dir.path());
        let layout = Layout::new(dir.path(), "t");
        let mut cluster =
            Cluster::init_or_open(&layout.pg(), calops::pg::Options::default()).unwrap();
        calops_testkit::pg::remove_when_process_exits(&cluster, std::process::id()).unwrap();
        let store_url = url::Url::from_file_path(archiving::store_root(&layout))
            .unwrap()
            .to_string();
        let cfg = BackupConfig {
            version: 1,
            profile: "t".into(),
            store: store_url,
            compression_level: 3,
            // Small parts, so that a backup has several.
            part_size: 64 * 1024,
            schedule: "02:00".into(),
            retention_days: 7,
            retention_count: 2,
            archive_timeout_seconds: ARCHIVE_TIMEOUT as u32,
        };
        archiving::configure(&cluster, &cfg, &layout, &calops).unwrap();
        cluster.start().unwrap();
        rt().block_on(archiving::apply(&mut cluster)).unwrap();
        let store = AnyStore::File(FileStore::new(archiving::store_root(&layout)));
        Some(Rig {
            _dir: dir,
            layout,
            cluster: Some(cluster),
            cfg,
            store,
            calops,
        })
    }

    fn url(&self) -> String {
        self.cluster.as_ref().unwrap().url("postgres")
    }

    fn base_backup(&self) -> calops::backup::catalog::BaseBackup {
        let c = self.cluster.as_ref().unwrap();
        rt().block_on(async {
            let (client, conn) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
                .await
                .unwrap();
            let t = tokio::spawn(conn);
            assert!(basebackup::lock(&client, false).await.unwrap());
            let src =
                basebackup::Source::from_url(&self.url(), c.binaries().bindir.clone()).unwrap();
            let b = basebackup::take(
                &self.store,
                &self.cfg,
                &src,
                &client,
                "test",
                &indicatif::ProgressBar::hidden(),
            )
            .await
            .unwrap();
            drop(client);
            let _ = t.await;
            b
        })
    }

    /// Commit a row and close its segment; wait until it is archived.
    fn write_segment(&self, n: i32) {
        sql(&self.url(), &format!("INSERT INTO marks VALUES ({n})"));
        sql(&self.url(), "SELECT pg_switch_wal()");
        wait_archived(&self.url());
    }

    fn verify(&self) -> inventory::Verified {
        rt().block_on(async {
            let inv = inventory::load(&self.store).await.unwrap();
            let b = inv.newest_before(None).unwrap().clone();
            inventory::verify(&self.store, &inv, &b, &indicatif::ProgressBar::hidden())
                .await
                .unwrap()
        })
    }

    fn restore_into(&self, dir: &Path) -> anyhow::Result<restore::Restored> {
        let req = restore::Request {
            target: RecoveryTarget::Latest,
            backup: None,
            into: dir.to_path_buf(),
            calops: self.calops.clone(),
            config: self.cfg.clone(),
            password: None,
            timeout: Duration::from_secs(60),
            archive: false,
        };
        rt().block_on(restore::restore(
            &self.store,
            &req,
            &indicatif::ProgressBar::hidden(),
        ))
    }

    fn wal_object(&self, segment: &str) -> PathBuf {
        let root = archiving::store_root(&self.layout)
            .join("wal")
            .join(&segment[..8]);
        std::fs::read_dir(&root)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&format!("{segment}."))
            })
            .unwrap_or_else(|| panic!("no object for {segment} in {}", root.display()))
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(c) = self.cluster.take() {
            let _ = c.remove();
        }
    }
}

/// PostgreSQL processes whose command line names `dir`.
fn servers_on(dir: &Path) -> usize {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("postgres") && c.contains(&needle))
        .count()
}

/// Where a failed restore must leave nothing: no directory, no server.
fn assert_nothing_left(dir: &Path) {
    assert!(!dir.exists(), "{} was left behind", dir.display());
    assert_eq!(
        servers_on(dir),
        0,
        "a server still runs on {}",
        dir.display()
    );
}

#[test]
fn damaged_or_missing_objects_fail_verify_and_restore_by_name() {
    let Some(rig) = Rig::new("damaged_or_missing_objects_fail_verify_and_restore_by_name") else {
        return;
    };
    sql(&rig.url(), "CREATE TABLE marks (n int)");
    // Some data, so the backup has several parts.
    sql(
        &rig.url(),
        "CREATE TABLE filler AS SELECT g, md5(g::text) FROM generate_series(1, 20000) g",
    );
    let b = rig.base_backup();
    assert!(b.parts.len() > 1, "several parts: {}", b.parts.len());
    for n in 1..=3 {
        rig.write_segment(n);
    }
    let good = rig.verify();
    assert!(good.problems.is_empty(), "{:?}", good.problems);
    assert!(good.wal_segments >= 4, "{good:?}");

    // A damaged segment in the middle of the chain.
    let middle = rig.verify().first_wal.unwrap();
    let middle = calops::backup::wal::segment_name(
        1,
        calops::backup::wal::WalFile::parse(&middle, 16 << 20)
            .unwrap()
            .segno()
            .unwrap()
            + 1,
        16 << 20,
    );
    let obj = rig.wal_object(&middle);
    let key = obj
        .strip_prefix(archiving::store_root(&rig.layout))
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let original = std::fs::read(&obj).unwrap();
    let mut bad = original.clone();
    let at = bad.len() / 2;
    bad[at] ^= 0xFF;
    std::fs::write(&obj, &bad).unwrap();
    let v = rig.verify();
    assert!(
        v.problems.iter().any(|p| p.object == key),
        "verify names {key}: {:?}",
        v.problems
    );
    let dir = rig._dir.path().join("restored-damaged");
    let err = format!("{:#}", rig.restore_into(&dir).unwrap_err());
    assert!(err.contains(&key), "restore names {key}: {err}");
    assert_nothing_left(&dir);

    // The same segment missing: a gap, named before anything starts.
    std::fs::remove_file(&obj).unwrap();
    let v = rig.verify();
    let prefix = format!("wal/{}/{middle}.", &middle[..8]);
    assert!(
        v.problems
            .iter()
            .any(|p| p.object.starts_with(&prefix) && p.problem.contains("missing")),
        "{:?}",
        v.problems
    );
    let dir = rig._dir.path().join("restored-missing");
    let err = format!("{:#}", rig.restore_into(&dir).unwrap_err());
    assert!(err.contains(&middle) && err.contains("missing"), "{err}");
    assert_nothing_left(&dir);
    std::fs::write(&obj, &original).unwrap();

    // A damaged base backup part.
    let part = archiving::store_root(&rig.layout).join(&b.parts[1].key);
    let original_part = std::fs::read(&part).unwrap();
    let mut bad = original_part.clone();
    bad[10] ^= 0x01;
    std::fs::write(&part, &bad).unwrap();
    let v = rig.verify();
    assert!(
        v.problems.iter().any(|p| p.object == b.parts[1].key),
        "{:?}",
        v.problems
    );
    let dir = rig._dir.path().join("restored-badpart");
    let err = format!("{:#}", rig.restore_into(&dir).unwrap_err());
    assert!(err.contains(&b.parts[1].key), "{err}");
    assert_nothing_left(&dir);
    std::fs::write(&part, &original_part).unwrap();

    // Repaired, it all restores: every row is back.
    let dir = rig._dir.path().join("restored");
    let r = rig.restore_into(&dir).unwrap();
    assert_eq!(r.timeline, 2);
    let mut c = Cluster::init_or_open(&dir, calops::pg::Options::default()).unwrap();
    c.start().unwrap();
    assert_eq!(
        sql(
            &c.url("postgres"),
            "SELECT string_agg(n::text, ',' ORDER BY n) FROM marks"
        ),
        ["1,2,3"]
    );
    assert_eq!(
        sql(&c.url("postgres"), "SELECT count(*) FROM filler"),
        ["20000"]
    );
    c.remove().unwrap();
}

#[test]
fn archiving_waits_out_an_unavailable_store_and_deletes_nothing() {
    let Some(rig) = Rig::new("archiving_waits_out_an_unavailable_store_and_deletes_nothing") else {
        return;
    };
    use std::os::unix::fs::PermissionsExt;
    sql(&rig.url(), "CREATE TABLE marks (n int)");
    rig.base_backup();
    let wal_dir = archiving::store_root(&rig.layout).join("wal");
    // The store goes away for the server's user: archive_command cannot write.
    std::fs::set_permissions(&wal_dir, std::fs::Permissions::from_mode(0o000)).unwrap();
    sql(&rig.url(), "INSERT INTO marks VALUES (1)");
    let pending = sql(&rig.url(), "SELECT pg_walfile_name(pg_current_wal_lsn())").remove(0);
    sql(&rig.url(), "SELECT pg_switch_wal()");
    let (failed_wal, _) = wait_for("a failed archive attempt", Duration::from_secs(20), || {
        let r = sql(
            &rig.url(),
            "SELECT failed_count || ' ' || coalesce(last_failed_wal, '') FROM pg_stat_archiver",
        )
        .remove(0);
        let (n, wal) = r.split_once(' ').unwrap();
        (n.parse::<i64>().unwrap() > 0).then(|| wal.to_string())
    });
    assert_eq!(failed_wal, pending);
    // PostgreSQL keeps the segment, even through checkpoints, until it is stored.
    sql(
        &rig.url(),
        "INSERT INTO marks VALUES (2); SELECT pg_switch_wal(); CHECKPOINT; CHECKPOINT",
    );
    let pg_wal = rig.cluster.as_ref().unwrap().data_dir().join("pg_wal");
    assert!(pg_wal.join(&pending).is_file(), "{pending} was kept");
    assert!(pg_wal
        .join("archive_status")
        .join(format!("{pending}.ready"))
        .is_file());
    // The store is back: the segments are pushed, in order, with the right content.
    std::fs::set_permissions(&wal_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    wait_archived(&rig.url());
    rig.wal_object(&pending);
    let v = rig.verify();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    assert!(v.last_wal.unwrap() > pending);
}

// ---------------------------------------------------------------------------------------
// The whole story on the local target, through the CLI
// ---------------------------------------------------------------------------------------

#[test]
fn book_archive_lose_the_cluster_and_restore_to_a_point_in_time() {
    let Some(site) = Site::new("book_archive_lose_the_cluster_and_restore_to_a_point_in_time")
    else {
        return;
    };
    let site = site.with_env(
        "CALOPS_DATABASE_ARCHIVE_TIMEOUT_SECONDS",
        &ARCHIVE_TIMEOUT.to_string(),
    );
    let (code, doc, stderr) = site.json(&["deploy"]);
    assert_eq!(code, 0, "{doc}\n{stderr}");
    // `backup now` waits while another base backup holds the lock (as the service's nightly
    // schedule takes it: in the service's database, advisory locks being per database).
    let holder = rt();
    let held = holder.block_on(async {
        let c = calops::pg::connect(&site.db_url()).await.unwrap();
        assert!(basebackup::lock(&c, true).await.unwrap());
        c
    });
    let child = site
        .cmd(&["backup", "now", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(
        "`backup now` to wait for the base backup lock",
        Duration::from_secs(30),
        || {
            let waiting = sql(
                &site.db_url(),
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
                 WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = 'calops'",
            );
            (waiting[0] != "0").then_some(())
        },
    );
    drop(held);
    let out = child.wait_with_output().unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert!(
        out.status.success(),
        "{doc}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(doc["backup"]["parts"]
        .as_array()
        .is_some_and(|p| !p.is_empty()));

    // Book; PostgreSQL archives the booking's WAL within archive_timeout (+ slack).
    let first = site.book("ada");
    let took = wait_archived(&site.db_url());
    assert!(
        took < Duration::from_secs(ARCHIVE_TIMEOUT + 10),
        "archived after {took:?}"
    );
    let between = jiff::Timestamp::now();
    let second = site.book("grace");
    let took = wait_archived(&site.db_url());
    assert!(
        took < Duration::from_secs(ARCHIVE_TIMEOUT + 10),
        "archived after {took:?}"
    );

    // Making a restore live over live data needs --yes.
    let (code, doc, _) = site.json(&["restore", "--latest", "--start"]);
    assert_eq!(code, 1);
    assert!(
        doc["error"]["message"].as_str().unwrap().contains("--yes"),
        "{doc}"
    );
    assert!(
        !site.root().join("restores").exists(),
        "nothing was restored"
    );

    // Lose the cluster: the server killed, its data directory deleted.
    let pg = site.root().join("pg");
    let data = std::fs::canonicalize(pg.join("data")).unwrap();
    let pid: i32 = std::fs::read_to_string(data.join("postmaster.pid"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::fs::remove_dir_all(&data).unwrap();
    if pg.join("data").is_symlink() {
        std::fs::remove_file(pg.join("data")).unwrap();
    }

    // To a time between the two bookings: exactly the first one is there.
    let drill = site.dir.path().join("drill");
    let (code, doc, stderr) = site.json(&[
        "restore",
        "--to",
        &between.to_string(),
        "--into",
        drill.to_str().unwrap(),
    ]);
    if code != 0 {
        let listing = Command::new("find")
            .arg(site.root().join("objects/backups"))
            .output()
            .unwrap();
        let logs = Command::new("sh")
            .arg("-c")
            .arg(format!("tail -n 30 {}/logs/*.log", site.root().display()))
            .output()
            .unwrap();
        panic!(
            "{doc}\n{stderr}\n{}\n{}",
            String::from_utf8_lossy(&listing.stdout),
            String::from_utf8_lossy(&logs.stdout)
        );
    }
    assert_eq!(doc["started"], false);
    let mut c = Cluster::init_or_open(&drill, calops::pg::Options::default()).unwrap();
    c.start().unwrap();
    let uids = sql(
        &c.url("calops"),
        "SELECT uid FROM bookings ORDER BY created_at",
    );
    assert_eq!(
        uids,
        std::slice::from_ref(&first),
        "only the booking made before {between}"
    );
    c.remove().unwrap();

    // Everything archived, made live, with the service on it: both bookings.
    let (code, doc, stderr) = site.json(&["restore", "--latest", "--start"]);
    assert_eq!(code, 0, "{doc}\n{stderr}");
    assert_eq!(doc["started"], true);
    assert_eq!(site.booking_status(&first), "accepted");
    assert_eq!(site.booking_status(&second), "accepted");
    let uids = sql(&site.db_url(), "SELECT count(*) FROM bookings");
    assert_eq!(uids, ["2"]);
    // The restored cluster archives on its new timeline (its history file too: verify follows
    // the backup's timeline 1 onto timeline 2).
    let third = site.book("linus");
    let took = wait_archived(&site.db_url());
    assert!(took < Duration::from_secs(ARCHIVE_TIMEOUT + 10));
    let (code, doc, _) = site.json(&["backup", "list"]);
    assert_eq!(code, 0);
    assert!(
        doc["wal"]["last"].as_str().unwrap().starts_with("00000002"),
        "{doc}"
    );
    let (code, doc, stderr) = site.json(&["backup", "verify"]);
    assert_eq!(code, 0, "{doc}\n{stderr}");
    assert_eq!(doc["result"]["latest_timeline"], 2);
    assert_eq!(site.booking_status(&third), "accepted");
    // The service shows the backup gauges (from its schedule's checks) in /metrics, on its
    // private listener.
    let (gauges, _) = wait_for("backup gauges in /metrics", Duration::from_secs(30), || {
        let text = rt().block_on(async {
            reqwest::get(site.private_url("/metrics"))
                .await
                .ok()?
                .text()
                .await
                .ok()
        })?;
        text.contains("calops_backup_last_base_backup_age_seconds")
            .then_some(text)
    });
    for name in [
        "calops_backup_last_archived_age_seconds",
        "calops_backup_archive_pending_age_seconds",
        "calops_backup_archive_failures_total",
    ] {
        let line = gauges
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in\n{gauges}"));
        let v: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!((0.0..900.0).contains(&v), "{line}");
    }
    let (code, doc, stderr) = site.json(&["status"]);
    assert_eq!(code, 0, "{doc}\n{stderr}");
    assert_eq!(doc["backups"]["archive_lag_alarm"], false, "{doc}");
    assert_eq!(doc["backups"]["failed_count"], 0, "{doc}");
    assert!(doc["backups"]["last_base_backup"].is_string(), "{doc}");

    // `status` shows the running service's figures, read from its /metrics: after one slot
    // query, one booking and the same slot booked again, exactly those three more requests, one
    // more booking created and one more conflict; the backup gauges and the backlog are there.
    let f = &doc["figures"];
    assert_eq!(f["source"], "metrics", "{doc}\n{stderr}");
    let before = f["traffic"][0].clone();
    assert_eq!(before["window"], "since start", "{f}");
    assert_eq!(f["traffic"][1]["window"], "last 1s", "{f}");
    assert!(
        f["backups"]["calops_backup_last_base_backup_age_seconds"].is_number(),
        "{f}"
    );
    assert!(f["queues"]["webhooks"]["depth"].is_u64(), "{f}");
    assert!(f["db_pool_saturation_percent"].is_number(), "{f}");
    let key = site.api_key();
    let (_, slots) = site::http(reqwest::Method::GET, &site.slots_url("UTC"), &key, None);
    let start = slots["data"]
        .as_object()
        .and_then(|days| days.values().next())
        .and_then(|d| d[0]["start"].as_str())
        .expect("a free slot")
        .to_string();
    let ids: serde_json::Value = serde_json::from_str(&site.secret("demo.json")).unwrap();
    let body = serde_json::json!({"start": start, "eventTypeId": ids["event_type_id"],
        "attendee": {"name": "Ida", "email": "ida@example.com", "timeZone": "UTC"}});
    let url = site.url("/v2/bookings");
    let (s1, v1) = site::http(reqwest::Method::POST, &url, &key, Some(&body));
    let (s2, v2) = site::http(reqwest::Method::POST, &url, &key, Some(&body));
    assert_eq!((s1, s2), (201, 409), "{v1}\n{v2}");
    let (code, doc, stderr) = site.json(&["status"]);
    assert_eq!(code, 0, "{doc}\n{stderr}");
    let after = &doc["figures"]["traffic"][0];
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    assert_eq!(
        n(&after["requests"]),
        n(&before["requests"]) + 3,
        "{before}\n{after}"
    );
    assert_eq!(
        n(&after["bookings_created"]),
        n(&before["bookings_created"]) + 1,
        "{before}\n{after}"
    );
    assert_eq!(
        n(&after["bookings_failed"]["conflict"]),
        n(&before["bookings_failed"]["conflict"]) + 1,
        "{before}\n{after}"
    );
    assert_eq!(after["errors_5xx"], before["errors_5xx"], "{after}");
}
