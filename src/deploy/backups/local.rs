//! Backups of the local target: its cluster archives continuously into
//! `.calops/<profile>/objects/backups` (set up by `provision`, [`archiving`]); base backups
//! are taken here or by the service's nightly schedule, under the same advisory lock; a
//! restore goes into a new cluster, and is made live only on request, under the deploy lock,
//! with the current release started on it like a rollback.

use super::{Report, Restore};
use crate::backup::pgconf::RecoveryTarget;
use crate::backup::status::Backups;
use crate::backup::store::{AnyStore, BackupStore};
use crate::backup::wal::WalFile;
use crate::backup::{basebackup, inventory, restore as brestore, status};
use crate::deploy::deployment::{self, Deployment, State, LOCK_LEASE};
use crate::deploy::local::archiving;
use crate::deploy::local::layout::Layout;
use crate::deploy::local::target::LocalTarget;
use crate::deploy::pipeline::Options;
use crate::error::{actionable, ExitWithDoc, EXIT_ERROR};
use crate::pg::{self, Cluster};
use crate::profile::Profile;
use crate::ui::Ui;
use indicatif::HumanBytes;
use serde_json::json;
use std::path::{Path, PathBuf};

/// The database the local target's service uses (created by its first deploy). The base
/// backup lock is taken in it: advisory locks are per database, and the service's schedule
/// takes it there.
const SERVICE_DATABASE: &str = "calops";

/// The local target's cluster, when one was ever created.
fn cluster(layout: &Layout) -> anyhow::Result<Option<Cluster>> {
    let dir = layout.pg();
    if !dir.join("data").join("PG_VERSION").is_file() {
        return Ok(None);
    }
    Ok(Some(Cluster::init_or_open(&dir, pg::Options::default())?))
}

/// A session on `database` of the running cluster (adopting a server another process started).
async fn connect(cluster: &mut Cluster, database: &str) -> anyhow::Result<pg::Session> {
    if cluster.running_pid().is_none() {
        return Err(actionable(
            "the local database is not running",
            "start it with `calops deploy --profile ...`",
        ));
    }
    cluster.start()?;
    pg::connect(&cluster.url(database)).await
}

/// The backups of the local target, for `calops status`: the newest base backup and, when the
/// cluster runs, its archiver.
pub async fn status(layout: &Layout) -> Backups {
    let session = match cluster(layout) {
        Ok(Some(mut c)) => connect(&mut c, "postgres").await.ok(),
        _ => None,
    };
    status::of(&archiving::store(layout), session.as_deref()).await
}

/// `backup now`: a base backup of the running cluster, then retention, under the base backup
/// lock (waiting for a backup the service's schedule is taking).
pub async fn now(profile: Profile, label: &str, ui: &Ui) -> anyhow::Result<Report> {
    let (target, _) = deployment::open_local(profile)?;
    now_on(&target, &archiving::store(&target.layout), label, ui).await
}

/// [`now`] on `target`'s cluster, into `st` (where it archives: the layout's files, or on the
/// VM the stack's bucket, for the agent).
pub async fn now_on(
    target: &LocalTarget,
    st: &AnyStore,
    label: &str,
    ui: &Ui,
) -> anyhow::Result<Report> {
    let cfg = archiving::config(
        &target.profile,
        &target.layout,
        target.backup_store.as_deref(),
    );
    let mut cluster = cluster(&target.layout)?.ok_or_else(|| {
        actionable(
            "nothing is deployed, so there is nothing to back up",
            "deploy first with `calops deploy --profile ...`",
        )
    })?;
    let client = connect(&mut cluster, SERVICE_DATABASE).await?;
    let pb = ui.spinner("waiting for the base backup lock");
    if !basebackup::lock(&client, false).await? {
        pb.set_message("another base backup is running (the service's schedule); waiting for it");
        basebackup::lock(&client, true).await?;
    }
    pb.set_message("base backup");
    let src = basebackup::Source::from_url(
        &cluster.url(SERVICE_DATABASE),
        cluster.binaries().bindir.clone(),
    )?;
    // Retention under the lock too.
    let taken = async {
        let b = basebackup::take(st, &cfg, &src, &client, label, &pb).await?;
        anyhow::Ok((b, inventory::retain(st, &cfg).await?))
    }
    .await;
    let _ = basebackup::unlock(&client).await;
    drop(client);
    pb.finish_and_clear();
    let (b, pruned) = taken?;
    let text = format!(
        "base backup {} taken: {} from {} to {} ({} stored in {} part(s))\nretention: kept {}, deleted {} backup(s) and {} WAL object(s)\n",
        b.name,
        HumanBytes(b.tar_bytes),
        b.start_wal,
        b.end_wal,
        HumanBytes(b.stored_bytes()),
        b.parts.len(),
        pruned.kept.len(),
        pruned.deleted_backups.len(),
        pruned.deleted_wal
    );
    Ok(Report {
        doc: json!({"backup": b, "retention": pruned}),
        text,
    })
}

/// `backup list`: the base backups, newest first, the archived WAL and the archiver.
pub async fn list(profile: Profile) -> anyhow::Result<Report> {
    let (target, _) = deployment::open_local(profile)?;
    let st = archiving::store(&target.layout);
    let archiver = match cluster(&target.layout)? {
        Some(mut c) => match connect(&mut c, "postgres").await {
            Ok(s) => status::archiver(&s).await.ok(),
            Err(_) => None,
        },
        None => None,
    };
    list_store(&st, archiver).await
}

/// The `backup list` report of the objects in `st` (and the archiver's state, when known).
pub async fn list_store(
    st: &crate::backup::store::AnyStore,
    archiver: Option<crate::backup::status::Archiver>,
) -> anyhow::Result<Report> {
    let inv = inventory::load(st).await?;
    let segments: Vec<_> = inv
        .wal
        .iter()
        .filter(|w| matches!(w.file, WalFile::Segment { .. }))
        .collect();
    let backups: Vec<serde_json::Value> = inv
        .backups
        .iter()
        .rev()
        .map(|b| json!({"name": b.name, "label": b.label, "timeline": b.timeline, "started_at": b.started_at,
            "finished_at": b.finished_at, "start_wal": b.start_wal, "end_wal": b.end_wal,
            "tar_bytes": b.tar_bytes, "stored_bytes": b.stored_bytes(), "parts": b.parts.len()}))
        .collect();
    let mut text = format!("store: {}\n", st.describe());
    if inv.backups.is_empty() {
        text.push_str("no base backups yet (take one with `calops backup now`)\n");
    } else {
        text.push_str(&format!(
            "{:<26}  {:<20}  {:>3}  {:<24}  {:>10}\n",
            "backup", "finished (UTC)", "tli", "start WAL", "stored"
        ));
        for b in inv.backups.iter().rev() {
            text.push_str(&format!(
                "{:<26}  {:<20}  {:>3}  {:<24}  {:>10}\n",
                b.name,
                b.finished_at.strftime("%Y-%m-%d %H:%M:%S"),
                b.timeline,
                b.start_wal,
                HumanBytes(b.stored_bytes()).to_string()
            ));
        }
    }
    text.push_str(&format!(
        "archived WAL: {} segment(s){}\n",
        segments.len(),
        match (segments.first(), segments.last()) {
            (Some(f), Some(l)) => format!(", {} .. {}", f.file_name, l.file_name),
            _ => String::new(),
        }
    ));
    if let Some(a) = &archiver {
        text.push_str(&format!(
            "archiver: last archived {} ({}s ago), {} failure(s){}\n",
            a.last_archived_wal.as_deref().unwrap_or("-"),
            a.last_archived_age_seconds.map_or(-1, |s| s.round() as i64),
            a.failed_count,
            a.last_failed_wal
                .as_ref()
                .map(|w| format!(", last failed {w}"))
                .unwrap_or_default()
        ));
    }
    let doc = json!({
        "store": st.describe(),
        "backups": backups,
        "wal": {"segments": segments.len(), "first": segments.first().map(|w| &w.file_name),
            "last": segments.last().map(|w| &w.file_name), "objects": inv.wal.len()},
        "archiver": archiver,
    });
    Ok(Report { doc, text })
}

/// `backup verify`: download and check everything a restore from `name` (default: the one a
/// `restore --latest` uses) would read; a problem fails with every object named.
pub async fn verify(profile: Profile, name: Option<&str>, ui: &Ui) -> anyhow::Result<Report> {
    let (target, _) = deployment::open_local(profile)?;
    verify_store(&archiving::store(&target.layout), name, ui).await
}

/// `backup verify` of the objects in `st`.
pub async fn verify_store(
    st: &crate::backup::store::AnyStore,
    name: Option<&str>,
    ui: &Ui,
) -> anyhow::Result<Report> {
    let inv = inventory::load(st).await?;
    let b = brestore::choose(&inv, RecoveryTarget::Latest, name)?.clone();
    let pb = ui.bytes_bar(b.stored_bytes(), format!("verifying {}", b.name));
    let v = inventory::verify(st, &inv, &b, &pb).await?;
    pb.finish_and_clear();
    if !v.problems.is_empty() {
        let list: Vec<String> = v
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.object, p.problem))
            .collect();
        return Err(ExitWithDoc {
            code: EXIT_ERROR,
            message: format!(
                "base backup {} cannot be restored as it is: {} problem(s):\n  {}",
                v.backup,
                v.problems.len(),
                list.join("\n  ")
            ),
            doc: json!({"verified": false, "result": v}),
        }
        .into());
    }
    let text = format!(
        "base backup {} and {} WAL segment(s) ({} .. {}) verified: {} object(s), {}\n",
        v.backup,
        v.wal_segments,
        v.first_wal.clone().unwrap_or_default(),
        v.last_wal.clone().unwrap_or_default(),
        v.objects,
        HumanBytes(v.bytes)
    );
    Ok(Report {
        doc: json!({"verified": true, "result": v}),
        text,
    })
}

/// `restore`: into a new cluster directory; with `start`, made the live one.
pub async fn restore(profile: Profile, req: &Restore, ui: &Ui) -> anyhow::Result<Report> {
    let (target, state) = deployment::open_local(profile)?;
    let st = archiving::store(&target.layout);
    restore_on(target, state, &st, req, ui).await
}

/// [`restore`] of `target`'s cluster from `st` (on the VM: the agent, from the bucket).
pub async fn restore_on(
    target: LocalTarget,
    state: State,
    st: &AnyStore,
    req: &Restore,
    ui: &Ui,
) -> anyhow::Result<Report> {
    let layout = target.layout.clone();
    let live = layout.pg();
    if req.start && std::fs::symlink_metadata(live.join("data")).is_ok() && !req.yes {
        return Err(actionable(
            format!("--start would replace the live database in {} (it would be kept aside, not deleted)", live.display()),
            "add --yes to replace it, or restore without --start to inspect the copy first",
        ));
    }
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    let into = match &req.into {
        Some(d) => std::path::absolute(d)?,
        None => std::path::absolute(layout.root.join("restores").join(&stamp))?,
    };
    let request = brestore::Request {
        target: req.target,
        backup: req.backup.clone(),
        into: into.clone(),
        calops: std::env::current_exe()?,
        config: archiving::config(&target.profile, &layout, target.backup_store.as_deref()),
        // The restored cluster keeps the live one's password, so the service's URL stays valid.
        password: std::fs::read_to_string(live.join("superuser.password"))
            .ok()
            .map(|s| s.trim().to_string()),
        timeout: req.timeout,
        archive: req.start,
    };
    let pb = ui.bytes_bar(0, "restoring");
    let restored = brestore::restore(st, &request, &pb).await;
    pb.finish_and_clear();
    let restored = restored?;
    let name = target.profile.name.clone();
    let mut text = format!(
        "restored base backup {} into {}, recovered to {} (last transaction {}), timeline {}\n",
        restored.backup,
        restored.dir.display(),
        restored.target,
        restored
            .recovered_to
            .map(|t| t.to_string())
            .unwrap_or_else(|| "none replayed".into()),
        restored.timeline
    );
    let mut doc = json!({"restored": restored, "started": false});
    if req.start {
        let aside = make_live(target, state, &into, &stamp, ui).await?;
        doc["started"] = json!(true);
        doc["replaced_data_kept_in"] = json!(aside);
        text.push_str("it is now the live database, and the service runs on it\n");
        if let Some(a) = aside {
            text.push_str(&format!("the replaced data is kept in {}\n", a.display()));
        }
    } else {
        let again = match req.target {
            RecoveryTarget::Latest => "--latest".to_string(),
            RecoveryTarget::Time(t) => format!("--to {t}"),
        };
        let flags = if target.profile.target == crate::profile::Target::OciVm {
            "--yes"
        } else {
            "--start --yes"
        };
        text.push_str(&format!(
            "nothing live was touched. To make this restore live: calops restore --profile {name} {again} --backup {} {flags}\n",
            doc["restored"]["backup"].as_str().unwrap_or_default()
        ));
    }
    Ok(Report { doc, text })
}

/// Swap the restored cluster in (under the deploy lock, everything stopped), then start the
/// current release again on it through the pipeline, verified like a deploy. Returns where
/// the replaced data was kept.
async fn make_live(
    mut target: LocalTarget,
    state: State,
    restored: &Path,
    stamp: &str,
    ui: &Ui,
) -> anyhow::Result<Option<PathBuf>> {
    let lock = state.lock();
    let held = lock
        .acquire("calops restore --start", jiff::Timestamp::now())
        .await?;
    let swapped = target
        .stop_all()
        .and_then(|()| brestore::swap_into(restored, &target.layout.pg(), stamp));
    lock.release(&held).await?;
    let aside = swapped?;
    let Some(current) = state.ledger().current().await? else {
        ui.warn(
            "no release was ever deployed: only the database was started (run `calops deploy`)",
        );
        let mut c = Cluster::init_or_open(&target.layout.pg(), pg::Options::default())?;
        archiving::configure(
            &c,
            &archiving::config(
                &target.profile,
                &target.layout,
                target.backup_store.as_deref(),
            ),
            &target.layout,
            &std::env::current_exe()?,
        )?;
        c.start()?;
        return Ok(aside);
    };
    let opts = Options {
        auto_rollback: true,
        message: format!(
            "calops restore: release #{} on the restored database",
            current.seq
        ),
        lock_lease: LOCK_LEASE,
        profile_hash: target.profile.hash(),
    };
    let mut d = Deployment {
        target: deployment::Target::Local(Box::new(target)),
        state,
    };
    let failed = match d.run(&opts, Some(&current), ui).await {
        Ok(_) => return Ok(aside),
        Err(e) => e,
    };
    // The release did not pass its checks on the restored database: the old data goes back
    // (the restored data is kept beside it), and the release starts again on it.
    let (deployment::Target::Local(target), Some(old)) = (&mut d.target, aside) else {
        return Err(failed);
    };
    let live = target.layout.pg();
    let kept = live.join(format!("data.failed-restore-{stamp}"));
    let held = lock
        .acquire("calops restore: switching back", jiff::Timestamp::now())
        .await?;
    let back = target.stop_all().and_then(|()| {
        std::fs::rename(live.join("data"), &kept)?;
        std::fs::rename(&old, live.join("data"))?;
        Ok(())
    });
    lock.release(&held).await?;
    if let Err(e) = back {
        return Err(failed.context(format!(
            "and switching back to the old data ({}) failed: {e:#}",
            old.display()
        )));
    }
    let opts = Options {
        message: format!(
            "calops restore: release #{} back on the old data",
            current.seq
        ),
        ..opts
    };
    let again = d.run(&opts, Some(&current), ui).await;
    let msg = format!(
        "the service did not pass its checks on the restored database, so the old data is live again{}; the restored data is kept in {}",
        if again.is_ok() { " and serving" } else { " (but the release did not start on it either: run `calops rollback`)" },
        kept.display()
    );
    Err(failed.context(msg))
}
