//! `backup now|list|verify`, `restore`, and the hidden `backup archive-wal|restore-wal` that
//! PostgreSQL runs. Local profiles use calops' own archive; OCI profiles the managed
//! database's backups.

use crate::backup::archive::{self, FetchError, Pushed, EXIT_ABORT_RECOVERY};
use crate::backup::config::BackupConfig;
use crate::backup::pgconf::RecoveryTarget;
use crate::backup::store::BackupStore;
use crate::backup::{basebackup, inventory, local as blocal, restore as brestore, store};
use crate::cli::{ArchiveWalArgs, BackupCommand, GlobalArgs, RestoreArgs, RestoreWalArgs};
use crate::deploy::ledger::Ledger;
use crate::deploy::local::target::LocalTarget;
use crate::error::{actionable, Exit};
use crate::pg::Cluster;
use crate::profile::{Profile, Target};
use crate::ui::Ui;
use serde_json::json;
use std::path::Path;

pub fn run(g: &GlobalArgs, cmd: BackupCommand, ui: &Ui) -> anyhow::Result<i32> {
    match cmd {
        BackupCommand::ArchiveWal(a) => archive_wal(&a),
        BackupCommand::RestoreWal(a) => restore_wal(&a),
        BackupCommand::Now(a) => {
            let p = super::load_profile(g, ui)?;
            if p.target == Target::Oci {
                return super::backup_oci::now(&p, &a.label, ui);
            }
            now(p, &a.label, ui)
        }
        BackupCommand::List => {
            let p = super::load_profile(g, ui)?;
            if p.target == Target::Oci {
                return super::backup_oci::list(&p, ui);
            }
            list(p, ui)
        }
        BackupCommand::Verify(a) => {
            let p = super::load_profile(g, ui)?;
            if p.target == Target::Oci {
                return Err(actionable(
                    format!("profile `{}` uses OCI's managed database, whose backups OCI stores and checks itself", p.name),
                    "drill a restore instead: `calops restore --profile ... ` creates a new DB system from a backup",
                ));
            }
            verify(p, a.backup.as_deref(), ui)
        }
    }
}

fn current_thread() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// `archive_command`: exit 0 only when the file is durably stored.
fn archive_wal(a: &ArchiveWalArgs) -> anyhow::Result<i32> {
    let cfg = BackupConfig::load(&a.config)?;
    let s = store::open(&cfg.store)?;
    let pushed =
        current_thread()?.block_on(archive::push(&s, &a.path, &a.name, cfg.compression_level))?;
    if let Pushed::AlreadyStored { key } = pushed {
        eprintln!("calops: {} was already archived as {key}", a.name);
    }
    Ok(0)
}

/// `restore_command`: 0 fetched, 1 not in the archive, 200 stop recovery.
fn restore_wal(a: &RestoreWalArgs) -> anyhow::Result<i32> {
    let fatal = |m: String| -> anyhow::Error {
        Exit {
            code: EXIT_ABORT_RECOVERY,
            message: Some(m),
        }
        .into()
    };
    let cfg = BackupConfig::load(&a.config)
        .map_err(|e| fatal(format!("{} {e:#}", archive::RESTORE_FAILURE_MARK)))?;
    let s = store::open(&cfg.store)
        .map_err(|e| fatal(format!("{} {e:#}", archive::RESTORE_FAILURE_MARK)))?;
    match current_thread()?.block_on(archive::fetch(&s, &a.name, &a.path)) {
        Ok(_) => Ok(0),
        Err(FetchError::Missing(_)) => Ok(1),
        Err(e @ FetchError::Fatal(_)) => Err(fatal(e.to_string())),
    }
}

/// The local target of a profile, and its cluster when one was ever created.
fn local_cluster(profile: Profile) -> anyhow::Result<(LocalTarget, Option<Cluster>)> {
    let (target, _) = super::deploy::local(profile)?;
    let pg = target.layout.pg();
    let cluster = if pg.join("data").join("PG_VERSION").is_file() {
        Some(Cluster::init_or_open(&pg, crate::pg::Options::default())?)
    } else {
        None
    };
    Ok((target, cluster))
}

/// Connect to the running local cluster.
async fn connect(
    cluster: &mut Cluster,
) -> anyhow::Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>)> {
    if cluster.running_pid().is_none() {
        return Err(actionable(
            "the local database is not running",
            "start it with `calops deploy --profile ...`",
        ));
    }
    cluster.start()?;
    let (client, conn) =
        tokio_postgres::connect(&cluster.url("postgres"), tokio_postgres::NoTls).await?;
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok((client, task))
}

/// The database the local target's service uses (created by its first deploy).
const SERVICE_DATABASE: &str = "calops";

fn now(profile: Profile, label: &str, ui: &Ui) -> anyhow::Result<i32> {
    let cfg = blocal_config(&profile);
    let (target, cluster) = local_cluster(profile)?;
    let mut cluster = cluster.ok_or_else(|| {
        actionable(
            "nothing is deployed, so there is nothing to back up",
            "deploy first with `calops deploy --profile ...`",
        )
    })?;
    let st = blocal::store(&target.layout);
    super::deploy::runtime()?.block_on(async {
        let (client, task) = connect(&mut cluster).await?;
        let pb = ui.spinner("waiting for the base backup lock");
        if !basebackup::lock(&client, false).await? {
            pb.set_message("another base backup is running (the service's schedule); waiting for it");
            basebackup::lock(&client, true).await?;
        }
        pb.set_message("base backup");
        let src = basebackup::Source::from_url(&cluster.url(SERVICE_DATABASE), cluster.binaries().bindir.clone())?;
        let taken = basebackup::take(&st, &cfg, &src, &client, label, &pb).await;
        // Retention under the lock too: no other base backup is in flight meanwhile.
        let pruned = match &taken {
            Ok(_) => Some(inventory::prune(&st, cfg.retention_days, cfg.retention_count, jiff::Timestamp::now()).await),
            Err(_) => None,
        };
        let _ = basebackup::unlock(&client).await;
        drop(client);
        task.abort();
        pb.finish_and_clear();
        let b = taken?;
        let pruned = pruned.expect("pruned after a backup")?;
        ui.result(&json!({"backup": b, "retention": pruned}), || {
            format!(
                "base backup {} taken: {} from {} to {} ({} stored in {} part(s))\nretention: kept {}, deleted {} backup(s) and {} WAL object(s)\n",
                b.name,
                human_bytes(b.tar_bytes),
                b.start_wal,
                b.end_wal,
                human_bytes(b.stored_bytes()),
                b.parts.len(),
                pruned.kept.len(),
                pruned.deleted_backups.len(),
                pruned.deleted_wal
            )
        });
        Ok(0)
    })
}

fn blocal_config(profile: &Profile) -> BackupConfig {
    let layout = crate::deploy::local::layout::Layout::new(
        &std::env::current_dir().unwrap_or_default(),
        &profile.name,
    );
    blocal::config(profile, &layout)
}

pub fn human_bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

/// The archiver's state, from `pg_stat_archiver` (None when the database is not running).
async fn archiver_state(cluster: &mut Cluster) -> Option<serde_json::Value> {
    let (client, task) = connect(cluster).await.ok()?;
    let row = client
        .query_one(
            "SELECT archived_count, last_archived_wal, last_archived_time, failed_count, last_failed_wal, last_failed_time, \
                    EXTRACT(EPOCH FROM now() - last_archived_time)::float8, \
                    (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'), \
                    (SELECT EXTRACT(EPOCH FROM now() - min(modification))::float8 FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready') \
             FROM pg_stat_archiver",
            &[],
        )
        .await
        .ok()?;
    task.abort();
    Some(json!({
        "archived_count": row.get::<_, i64>(0),
        "last_archived_wal": row.get::<_, Option<String>>(1),
        "last_archived_time": row.get::<_, Option<jiff::Timestamp>>(2),
        "failed_count": row.get::<_, i64>(3),
        "last_failed_wal": row.get::<_, Option<String>>(4),
        "last_failed_time": row.get::<_, Option<jiff::Timestamp>>(5),
        "last_archived_age_seconds": row.get::<_, Option<f64>>(6),
        "pending_segments": row.get::<_, i64>(7),
        "oldest_pending_age_seconds": row.get::<_, Option<f64>>(8).unwrap_or(0.0),
    }))
}

/// Archiving falls behind the plan's 15 minutes of lost data at most: raise the alarm.
pub const ARCHIVE_LAG_ALARM_SECONDS: f64 = 900.0;

/// Backups of the local target for `calops status`: the archiver (how long the oldest
/// finished segment has waited, failures) and the newest base backup.
pub(super) async fn status(layout: &crate::deploy::local::layout::Layout) -> serde_json::Value {
    let st = blocal::store(layout);
    let newest = inventory::load(&st)
        .await
        .ok()
        .and_then(|inv| inv.newest_before(None).cloned());
    let now = jiff::Timestamp::now();
    let mut doc = json!({
        "last_base_backup": newest.as_ref().map(|b| &b.name),
        "last_base_backup_age_seconds": newest.as_ref().map(|b| now.duration_since(b.finished_at).as_secs()),
    });
    let pg = layout.pg();
    if pg.join("data").join("PG_VERSION").is_file() {
        if let Ok(mut c) = Cluster::init_or_open(&pg, crate::pg::Options::default()) {
            if let Some(a) = archiver_state(&mut c).await {
                for (k, v) in a.as_object().into_iter().flatten() {
                    doc[k] = v.clone();
                }
            }
        }
    }
    // Behind: WAL waiting longer than the plan allows, or the nightly base backup missed
    // twice (the first one is taken by the service shortly after the first deploy).
    let lag = doc["oldest_pending_age_seconds"].as_f64().unwrap_or(0.0);
    let stale = newest
        .as_ref()
        .is_some_and(|b| now.duration_since(b.finished_at).as_secs() > 2 * 86_400);
    doc["archive_lag_alarm"] = json!(lag > ARCHIVE_LAG_ALARM_SECONDS || stale);
    doc
}

/// The human line of [`status`].
pub(super) fn status_line(b: &serde_json::Value) -> String {
    let age = |k: &str| {
        b[k].as_f64()
            .or(b[k].as_u64().map(|v| v as f64))
            .map(|s| format!("{}s ago", s.round() as i64))
    };
    format!(
        "backups: last WAL archived {} ({}), {} waiting (oldest {}s), {} failure(s); last base backup {} ({}){}\n",
        b["last_archived_wal"].as_str().unwrap_or("none"),
        age("last_archived_age_seconds").unwrap_or_else(|| "-".into()),
        b["pending_segments"].as_i64().unwrap_or(0),
        b["oldest_pending_age_seconds"].as_f64().unwrap_or(0.0).round() as i64,
        b["failed_count"].as_i64().unwrap_or(0),
        b["last_base_backup"].as_str().unwrap_or("none"),
        age("last_base_backup_age_seconds").unwrap_or_else(|| "-".into()),
        if b["archive_lag_alarm"] == true { " — BEHIND: run `calops backup now` and check the server log" } else { "" }
    )
}

fn list(profile: Profile, ui: &Ui) -> anyhow::Result<i32> {
    let (target, cluster) = local_cluster(profile)?;
    let st = blocal::store(&target.layout);
    super::deploy::runtime()?.block_on(async {
        let inv = inventory::load(&st).await?;
        let archiver = match cluster {
            Some(mut c) => archiver_state(&mut c).await,
            None => None,
        };
        let segments: Vec<_> = inv.wal.iter().filter(|w| matches!(w.file, crate::backup::wal::WalFile::Segment { .. })).collect();
        let backups: Vec<serde_json::Value> = inv
            .backups
            .iter()
            .rev()
            .map(|b| json!({"name": b.name, "label": b.label, "timeline": b.timeline, "started_at": b.started_at,
                "finished_at": b.finished_at, "start_wal": b.start_wal, "end_wal": b.end_wal,
                "tar_bytes": b.tar_bytes, "stored_bytes": b.stored_bytes(), "parts": b.parts.len()}))
            .collect();
        let doc = json!({
            "store": st.describe(),
            "backups": backups,
            "wal": {"segments": segments.len(), "first": segments.first().map(|w| &w.file_name),
                "last": segments.last().map(|w| &w.file_name), "objects": inv.wal.len()},
            "archiver": archiver,
        });
        ui.result(&doc, || {
            let mut out = format!("store: {}\n", st.describe());
            if inv.backups.is_empty() {
                out.push_str("no base backups yet (take one with `calops backup now`)\n");
            } else {
                out.push_str(&format!("{:<26}  {:<20}  {:>3}  {:<24}  {:>10}\n", "backup", "finished (UTC)", "tli", "start WAL", "stored"));
                for b in inv.backups.iter().rev() {
                    out.push_str(&format!(
                        "{:<26}  {:<20}  {:>3}  {:<24}  {:>10}\n",
                        b.name,
                        b.finished_at.strftime("%Y-%m-%d %H:%M:%S"),
                        b.timeline,
                        b.start_wal,
                        human_bytes(b.stored_bytes())
                    ));
                }
            }
            out.push_str(&format!(
                "archived WAL: {} segment(s){}\n",
                segments.len(),
                match (segments.first(), segments.last()) {
                    (Some(f), Some(l)) => format!(", {} .. {}", f.file_name, l.file_name),
                    _ => String::new(),
                }
            ));
            if let Some(a) = &doc["archiver"].as_object() {
                out.push_str(&format!(
                    "archiver: last archived {} ({}s ago), {} failure(s){}\n",
                    a["last_archived_wal"].as_str().unwrap_or("-"),
                    a["last_archived_age_seconds"].as_f64().map(|s| s.round() as i64).unwrap_or(-1),
                    a["failed_count"],
                    a["last_failed_wal"].as_str().map(|w| format!(", last failed {w}")).unwrap_or_default()
                ));
            }
            out
        });
        Ok(0)
    })
}

fn verify(profile: Profile, name: Option<&str>, ui: &Ui) -> anyhow::Result<i32> {
    let (target, _) = local_cluster(profile)?;
    let st = blocal::store(&target.layout);
    super::deploy::runtime()?.block_on(async {
        let inv = inventory::load(&st).await?;
        let b = brestore::choose(&inv, RecoveryTarget::Latest, name)?.clone();
        let pb = ui.bytes_bar(b.stored_bytes(), format!("verifying {}", b.name));
        let v = inventory::verify(&st, &inv, &b, &pb).await?;
        pb.finish_and_clear();
        let ok = v.problems.is_empty();
        if !ok {
            let list: Vec<String> = v
                .problems
                .iter()
                .map(|p| format!("{}: {}", p.object, p.problem))
                .collect();
            let msg = format!(
                "base backup {} cannot be restored as it is: {} problem(s):\n  {}",
                v.backup,
                v.problems.len(),
                list.join("\n  ")
            );
            return Err(crate::error::ExitWithDoc {
                code: crate::error::EXIT_ERROR,
                message: msg,
                doc: json!({"verified": false, "result": v}),
            }
            .into());
        }
        ui.result(&json!({"verified": true, "result": v}), || {
            format!(
                "base backup {} and {} WAL segment(s) ({} .. {}) verified: {} object(s), {}\n",
                v.backup,
                v.wal_segments,
                v.first_wal.clone().unwrap_or_default(),
                v.last_wal.clone().unwrap_or_default(),
                v.objects,
                human_bytes(v.bytes)
            )
        });
        Ok(0)
    })
}

/// Parse `--to`.
pub fn parse_time(s: &str) -> anyhow::Result<jiff::Timestamp> {
    s.trim().parse::<jiff::Timestamp>().map_err(|e| {
        actionable(
            format!("--to `{s}` is not an instant ({e})"),
            "write it in RFC 3339 with a zone, e.g. 2025-03-01T09:30:00Z",
        )
    })
}

pub fn restore(g: &GlobalArgs, args: &RestoreArgs, ui: &Ui) -> anyhow::Result<i32> {
    let profile = super::load_profile(g, ui)?;
    let target = match &args.to {
        Some(t) => RecoveryTarget::Time(parse_time(t)?),
        None => RecoveryTarget::Latest,
    };
    if profile.target == Target::Oci {
        return super::backup_oci::restore(&profile, args, target, ui);
    }
    let cfg = blocal_config(&profile);
    let (mut target_rt, _) = local_cluster(profile.clone())?;
    let layout = target_rt.layout.clone();
    let live = layout.pg();
    let live_exists = std::fs::symlink_metadata(live.join("data")).is_ok();
    if args.start && live_exists && !args.yes {
        return Err(actionable(
            format!("--start would replace the live database in {} (it would be kept aside, not deleted)", live.display()),
            "add --yes to replace it, or restore without --start to inspect the copy first",
        ));
    }
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    let into = match &args.into {
        Some(d) => std::path::absolute(d)?,
        None => std::path::absolute(layout.root.join("restores").join(&stamp))?,
    };
    let password = std::fs::read_to_string(live.join("superuser.password"))
        .ok()
        .map(|s| s.trim().to_string());
    let req = brestore::Request {
        target,
        backup: args.backup.clone(),
        into: into.clone(),
        calops: std::env::current_exe()?,
        config: cfg,
        password,
        timeout: args.timeout,
        archive: args.start,
    };
    let st = blocal::store(&layout);
    let rt = super::deploy::runtime()?;
    let restored = rt.block_on(async {
        let pb = ui.bytes_bar(0, "restoring");
        let r = brestore::restore(&st, &req, &pb).await;
        pb.finish_and_clear();
        r
    })?;
    let name = target_rt.profile.name.clone();
    let mut doc = json!({"restored": restored, "started": false});
    let mut started = None;
    if args.start {
        let aside = rt.block_on(make_live(&mut target_rt, &into, &stamp, ui))?;
        doc["started"] = json!(true);
        doc["replaced_data_kept_in"] = json!(aside);
        started = Some(aside);
    }
    ui.result(&doc, || {
        let mut out = format!(
            "restored base backup {} into {}, recovered to {} (last transaction {}), timeline {}\n",
            restored.backup,
            restored.dir.display(),
            restored.target,
            restored.recovered_to.map(|t| t.to_string()).unwrap_or_else(|| "none replayed".into()),
            restored.timeline
        );
        match &started {
            Some(aside) => {
                out.push_str("it is now the live database, and the service runs on it\n");
                if let Some(a) = aside {
                    out.push_str(&format!("the replaced data is kept in {}\n", a.display()));
                }
            }
            None => out.push_str(&format!(
                "nothing live was touched. To make a restore live: calops restore --profile {name} --start --yes\n"
            )),
        }
        out
    });
    Ok(0)
}

/// Swap the restored cluster in (under the deploy lock, everything stopped), then start the
/// current release again on it, verified like a deploy.
async fn make_live(
    target: &mut LocalTarget,
    restored: &Path,
    stamp: &str,
    ui: &Ui,
) -> anyhow::Result<Option<std::path::PathBuf>> {
    use crate::deploy::lock::DeployLock;
    use crate::deploy::store::FsStore;
    let store = FsStore::new(target.layout.state());
    let lock = DeployLock::new(
        store.clone(),
        super::deploy::LOCK_KEY,
        super::deploy::LOCK_LEASE,
    );
    let held = lock
        .acquire("calops restore --start", jiff::Timestamp::now())
        .await?;
    let swapped = (|| {
        target.stop_all()?;
        brestore::swap_into(restored, &target.layout.pg(), stamp)
    })();
    lock.release(&held).await?;
    let aside = swapped?;
    let ledger = Ledger::new(store.clone(), "");
    match ledger.current().await? {
        Some(cur) => {
            let interrupt = crate::deploy::steps::Interrupt::default();
            interrupt.install();
            let opts = crate::deploy::pipeline::Options {
                auto_rollback: true,
                message: format!(
                    "calops restore: release #{} on the restored database",
                    cur.seq
                ),
                lock_lease: super::deploy::LOCK_LEASE,
                profile_hash: target.profile.hash(),
            };
            crate::deploy::pipeline::run(
                target,
                store,
                super::deploy::LOCK_KEY,
                "",
                &opts,
                Some(&cur),
                ui,
                interrupt,
            )
            .await?;
        }
        None => {
            ui.warn(
                "no release was ever deployed: only the database was started (run `calops deploy`)",
            );
            let mut c = Cluster::init_or_open(&target.layout.pg(), crate::pg::Options::default())?;
            blocal::configure(
                &c,
                &blocal::config(&target.profile, &target.layout),
                &target.layout,
                &std::env::current_exe()?,
            )?;
            c.start()?;
        }
    }
    Ok(aside)
}
