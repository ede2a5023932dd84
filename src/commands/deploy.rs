//! `deploy`, `rollback`, `releases`, `status`, `destroy` and `lock`: the release commands.

use crate::cli::{DeployArgs, DestroyArgs, GlobalArgs, LockAction, LockArgs, RollbackArgs};
use crate::deploy::ledger::{Ledger, Outcome, Release};
use crate::deploy::local::{seed, target::LocalTarget};
use crate::deploy::lock::DeployLock;
use crate::deploy::oci::setup as oci_setup;
use crate::deploy::pipeline::{self, Options, RunResult};
use crate::deploy::steps::Interrupt;
use crate::deploy::store::FsStore;
use crate::deploy::store::ObjectStore;
use crate::error::actionable;
use crate::profile::{Profile, Target};
use crate::ui::Ui;
use serde_json::json;
use std::io::IsTerminal;
use std::time::Duration;

pub(super) const LOCK_KEY: &str = "lock.json";
pub(super) const LOCK_LEASE: Duration = Duration::from_secs(60);

pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Commands only the local target has (`destroy`) refuse OCI profiles clearly.
fn ensure_local(profile: &Profile) -> anyhow::Result<()> {
    if profile.target != Target::Local {
        return Err(actionable(
            format!("profile `{}` has target = \"oci\": `calops destroy` removes local deployments only", profile.name),
            format!("to remove the OCI stack, run `terraform destroy` in .calops/{}/terraform (the database and bucket are protected: review the plan)", profile.name),
        ));
    }
    Ok(())
}

/// The local target and its state store.
pub(super) fn local(profile: Profile) -> anyhow::Result<(LocalTarget, FsStore)> {
    ensure_local(&profile)?;
    let cwd = std::env::current_dir()?;
    let t = LocalTarget::new(profile, &cwd)?;
    let store = FsStore::new(t.layout.state());
    Ok((t, store))
}

fn print_result(ui: &Ui, r: &RunResult, demo: Option<&seed::Demo>, url: &str) {
    let mut doc = serde_json::to_value(r).unwrap_or_default();
    doc["url"] = json!(url);
    if let Some(d) = demo {
        doc["demo"] = serde_json::to_value(d).unwrap_or_default();
    }
    ui.result(&doc, || {
        let mut out = format!("{}\nurl: {url}\n", r.message);
        if let Some(d) = demo {
            if let Some(k) = &d.api_key {
                out.push_str(&format!(
                    "demo API key (shown once; saved in {}): {k}\n",
                    d.api_key_file
                ));
            }
            out.push_str(&format!("try: {}\n", d.curl));
        }
        out
    });
}

pub fn deploy(g: &GlobalArgs, args: &DeployArgs, ui: &Ui) -> anyhow::Result<i32> {
    let profile = super::load_profile(g, ui)?;
    if profile.target == Target::Oci {
        return oci_run(
            profile,
            args.image.as_deref(),
            args.no_auto_rollback,
            &args.message,
            None,
            ui,
        );
    }
    if args.image.is_some() {
        return Err(actionable(
            "--image applies to OCI profiles; the local target deploys this calops binary",
            "drop --image, or deploy an OCI profile",
        ));
    }
    let report = crate::doctor::checks::run(Some(&profile));
    if !report.passed() {
        let failed: Vec<String> = report
            .checks
            .iter()
            .filter(|c| c.required && c.status == crate::doctor::Status::Fail)
            .map(|c| {
                format!(
                    "{}: {} (fix: {})",
                    c.name,
                    c.detail,
                    c.fix.clone().unwrap_or_default()
                )
            })
            .collect();
        return Err(actionable(
            format!("prerequisites missing:\n  {}", failed.join("\n  ")),
            "fix them, then run `calops doctor --profile ...` to check",
        ));
    }
    let profile_hash = profile.hash();
    let auto_rollback = profile.deploy.auto_rollback && !args.no_auto_rollback;
    let (mut target, store) = local(profile)?;
    let rt = runtime()?;
    rt.block_on(async {
        let interrupt = Interrupt::default();
        interrupt.install();
        let opts = Options {
            auto_rollback,
            message: args.message.clone(),
            lock_lease: LOCK_LEASE,
            profile_hash,
        };
        let r = pipeline::run(&mut target, store, LOCK_KEY, "", &opts, None, ui, interrupt).await?;
        let url = target.public_url();
        let demo = match seed::existing(&target.layout, &url) {
            Some(d) => Some(d),
            None => match target.current() {
                Some(c) => {
                    let admin = crate::deploy::local::target::stored_secret(
                        &target.layout.secret("admin-token"),
                    )?;
                    seed::ensure(
                        &target.layout,
                        &format!("http://127.0.0.1:{}", c.private_port),
                        &url,
                        &admin,
                    )
                    .await?
                }
                None => None,
            },
        };
        print_result(ui, &r, demo.as_ref(), &url);
        Ok(0)
    })
}

/// The release to roll back to: `--to SEQ`, else the newest earlier success that differs from
/// what runs now (artifact or inputs). Only succeeded releases qualify.
fn pick_rollback(
    all: &[Release],
    current: Option<&Release>,
    to: Option<u64>,
) -> anyhow::Result<Release> {
    let to = match to {
        Some(seq) => all.iter().find(|r| r.seq == seq).cloned().ok_or_else(|| {
            actionable(
                format!("there is no release #{seq}"),
                "list them with `calops releases`",
            )
        })?,
        None => {
            let cur = current.ok_or_else(|| {
                actionable(
                    "nothing is deployed, so there is nothing to roll back",
                    "deploy first with `calops deploy --profile ...`",
                )
            })?;
            all.iter()
                .rev()
                .find(|r| {
                    r.outcome == Outcome::Succeeded
                        && r.seq < cur.seq
                        && (r.artifact_digest != cur.artifact_digest
                            || r.inputs_hash != cur.inputs_hash)
                })
                .cloned()
                .ok_or_else(|| {
                    actionable(
                        format!(
                            "no earlier successful release differs from the current one (#{})",
                            cur.seq
                        ),
                        "list them with `calops releases`",
                    )
                })?
        }
    };
    if to.outcome != Outcome::Succeeded {
        return Err(actionable(format!("release #{} did not succeed ({:?}); rolling back to it would restore a broken release", to.seq, to.outcome), "pick a succeeded release from `calops releases`"));
    }
    Ok(to)
}

/// Deploy (or roll back, with `rollback_to`) an `oci` profile.
fn oci_run(
    profile: Profile,
    image: Option<&str>,
    no_auto_rollback: bool,
    message: &str,
    rollback_to: Option<Option<u64>>,
    ui: &Ui,
) -> anyhow::Result<i32> {
    let profile_hash = profile.hash();
    let auto_rollback = profile.deploy.auto_rollback && !no_auto_rollback;
    let workdir = std::path::PathBuf::from(".calops")
        .join(&profile.name)
        .join("terraform");
    let rt = runtime()?;
    rt.block_on(async {
        let mut p = oci_setup::prepare(&profile, image, rollback_to.is_some(), workdir, ui).await?;
        let ledger = Ledger::new(p.state.store.clone(), p.state.ledger_prefix.clone());
        let to = match rollback_to {
            Some(seq) => {
                let all = ledger.list().await?;
                let current = ledger.current().await?;
                Some(pick_rollback(&all, current.as_ref(), seq)?)
            }
            None => None,
        };
        let interrupt = Interrupt::default();
        interrupt.install();
        let opts = Options {
            auto_rollback,
            message: match &to {
                Some(r) => format!("calops rollback to #{}", r.seq),
                None => message.to_string(),
            },
            lock_lease: LOCK_LEASE,
            profile_hash,
        };
        let r = pipeline::run(
            &mut p.target,
            p.state.store.clone(),
            &p.state.lock_key,
            &p.state.ledger_prefix,
            &opts,
            to.as_ref(),
            ui,
            interrupt,
        )
        .await?;
        let url = r
            .release
            .as_ref()
            .and_then(|rel| rel.details.get("url"))
            .and_then(|u| u.as_str())
            .unwrap_or_default()
            .to_string();
        print_result(ui, &r, None, &url);
        Ok(0)
    })
}

pub fn rollback(g: &GlobalArgs, args: &RollbackArgs, ui: &Ui) -> anyhow::Result<i32> {
    let profile = super::load_profile(g, ui)?;
    if profile.target == Target::Oci {
        return oci_run(profile, None, false, "calops rollback", Some(args.to), ui);
    }
    let profile_hash = profile.hash();
    let auto_rollback = profile.deploy.auto_rollback;
    let (mut target, store) = local(profile)?;
    let rt = runtime()?;
    rt.block_on(async {
        let ledger = Ledger::new(store.clone(), "");
        let all = ledger.list().await?;
        let current = ledger.current().await?;
        let to = pick_rollback(&all, current.as_ref(), args.to)?;
        let interrupt = Interrupt::default();
        interrupt.install();
        let opts = Options {
            auto_rollback,
            message: format!("calops rollback to #{}", to.seq),
            lock_lease: LOCK_LEASE,
            profile_hash,
        };
        let r = pipeline::run(
            &mut target,
            store,
            LOCK_KEY,
            "",
            &opts,
            Some(&to),
            ui,
            interrupt,
        )
        .await?;
        print_result(ui, &r, None, &target.public_url());
        Ok(0)
    })
}

pub fn releases(g: &GlobalArgs, ui: &Ui) -> anyhow::Result<i32> {
    let profile = super::load_profile(g, ui)?;
    let list = if profile.target == Target::Oci {
        runtime()?.block_on(async {
            let s = oci_setup::state_store(&profile).await?;
            anyhow::Ok(Ledger::new(s.store, s.ledger_prefix).list().await?)
        })?
    } else {
        let (_, store) = local(profile)?;
        runtime()?.block_on(Ledger::new(store, "").list())?
    };
    ui.result(&json!({ "releases": list }), || {
        if list.is_empty() {
            return "no releases yet\n".into();
        }
        let mut out = format!(
            "{:>4}  {:<20}  {:<9}  {:<12}  {:<15}  {}\n",
            "seq", "time", "kind", "outcome", "artifact", "user"
        );
        for r in &list {
            let when = r.time.strftime("%Y-%m-%d %H:%M:%S").to_string();
            let kind = match r.restores {
                Some(s) => format!("rollback>{s}"),
                None => "deploy".into(),
            };
            let outcome = serde_json::to_value(r.outcome)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            out.push_str(&format!(
                "{:>4}  {when:<20}  {kind:<9}  {outcome:<12}  {:<15}  {}\n",
                r.seq,
                &r.artifact_digest[..r.artifact_digest.len().min(15)],
                r.user
            ));
        }
        out
    });
    Ok(0)
}

/// `status` of an `oci` profile: the current release and `/health` through the load balancer.
fn oci_status(profile: Profile, ui: &Ui) -> anyhow::Result<i32> {
    use crate::deploy::oci::watch::{get_health, health_client};
    let rt = runtime()?;
    let (release, url, answer) = rt.block_on(async {
        let s = oci_setup::state_store(&profile).await?;
        let release = Ledger::new(s.store, s.ledger_prefix).current().await?;
        let url = std::env::var("CALOPS_HEALTH_URL").ok().or_else(|| {
            release
                .as_ref()
                .and_then(|r| r.details.get("url"))
                .and_then(|u| u.as_str())
                .map(String::from)
        });
        let answer = match &url {
            Some(u) => Some(
                get_health(&health_client(), u)
                    .await
                    .map_err(|e| format!("{e:#}")),
            ),
            None => None,
        };
        anyhow::Ok((release, url, answer))
    })?;
    let image = release
        .as_ref()
        .and_then(|r| r.details.get("image"))
        .and_then(|i| i.as_str())
        .map(String::from);
    let healthy = match (&answer, &image) {
        (Some(Ok(a)), Some(i)) => a.from_image(i),
        _ => false,
    };
    let health = match &answer {
        Some(Ok(a)) => {
            json!({"status": a.status, "image": a.image, "slot": a.slot, "version": a.version})
        }
        Some(Err(e)) => json!({"error": e}),
        None => json!(null),
    };
    ui.result(
        &json!({"release": release, "healthy": healthy, "health": health, "url": url}),
        || match &release {
            None => "no release deployed yet (run `calops deploy --profile ...`)\n".into(),
            Some(r) => format!(
                "release #{} ({}) deployed {} by {}\nslot: {}\nhealth: {}\nurl: {}\n",
                r.seq,
                r.artifact_digest,
                r.time.strftime("%Y-%m-%d %H:%M:%S"),
                r.user,
                r.details
                    .get("slot")
                    .and_then(|s| s.as_str())
                    .unwrap_or("?"),
                if healthy {
                    "ok".to_string()
                } else {
                    format!("NOT HEALTHY ({health})")
                },
                url.as_deref().unwrap_or("?")
            ),
        },
    );
    Ok(if healthy || release.is_none() { 0 } else { 1 })
}

pub fn status(g: &GlobalArgs, ui: &Ui) -> anyhow::Result<i32> {
    let profile = super::load_profile(g, ui)?;
    if profile.target == Target::Oci {
        return oci_status(profile, ui);
    }
    let (target, store) = local(profile)?;
    let rt = runtime()?;
    let (release, healthy, health, backups) = rt.block_on(async {
        let release = Ledger::new(store, "").current().await?;
        let (healthy, health) = match target.current() {
            Some(c) => match LocalTarget::get(c.private_port, "/health").await {
                Ok((status, body)) => (
                    (200..300).contains(&status),
                    serde_json::from_str(&body).unwrap_or_default(),
                ),
                Err(e) => (false, json!({"error": e.to_string()})),
            },
            None => (false, json!(null)),
        };
        let backups = super::backup::status(&target.layout).await;
        anyhow::Ok((release, healthy, health, backups))
    })?;
    let url = target.public_url();
    let demo = seed::existing(&target.layout, &url);
    let alarm = release.is_some() && backups["archive_lag_alarm"] == true;
    if alarm {
        ui.warn(format!("backups are behind: {backups}"));
    }
    ui.result(&json!({"release": release, "running": target.current().is_some(), "healthy": healthy, "health": health, "url": url, "demo": demo, "backups": backups}), || match &release {
        None => "no release deployed yet (run `calops deploy --profile ...`)\n".into(),
        Some(r) => format!(
            "release #{} ({}) deployed {} by {}\nhealth: {}\nurl: {url}\n{}",
            r.seq,
            r.artifact_digest,
            r.time.strftime("%Y-%m-%d %H:%M:%S"),
            r.user,
            if healthy { "ok" } else { "NOT HEALTHY" },
            demo.map(|d| format!("try: {}\n", d.curl)).unwrap_or_default()
        ) + &super::backup::status_line(&backups),
    });
    Ok(if (healthy && !alarm) || release.is_none() {
        0
    } else {
        1
    })
}

pub fn destroy(g: &GlobalArgs, args: &DestroyArgs, ui: &Ui) -> anyhow::Result<i32> {
    let profile = super::load_profile(g, ui)?;
    let name = profile.name.clone();
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            return Err(actionable(
                "destroy needs confirmation",
                format!("pass --yes, or run it in a terminal and type `{name}`"),
            ));
        }
        eprint!(
            "This stops everything profile `{name}` runs{}. Type the profile name to confirm: ",
            if args.purge {
                " and DELETES its data"
            } else {
                " (data is kept)"
            }
        );
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim() != name {
            return Err(actionable(
                "not confirmed; nothing was changed",
                format!("type `{name}` exactly, or pass --yes"),
            ));
        }
    }
    let (mut target, store) = local(profile)?;
    let rt = runtime()?;
    rt.block_on(async {
        let lock = DeployLock::new(store, LOCK_KEY, LOCK_LEASE);
        let held = lock
            .acquire("calops destroy", jiff::Timestamp::now())
            .await?;
        let r = target.stop_all();
        lock.release(&held).await?;
        r
    })?;
    if args.purge {
        std::fs::remove_dir_all(&target.layout.root)?;
    }
    ui.result(&json!({"destroyed": name, "purged": args.purge}), || {
        if args.purge {
            format!(
                "stopped everything for `{name}` and deleted {}\n",
                target.layout.root.display()
            )
        } else {
            format!(
                "stopped everything for `{name}`; data kept in {} (use --purge to delete it)\n",
                target.layout.root.display()
            )
        }
    });
    Ok(0)
}

pub fn lock(g: &GlobalArgs, args: &LockArgs, ui: &Ui) -> anyhow::Result<i32> {
    let profile = super::load_profile(g, ui)?;
    let rt = runtime()?;
    if profile.target == Target::Oci {
        let s = rt.block_on(oci_setup::state_store(&profile))?;
        return lock_with(
            DeployLock::new(s.store, s.lock_key, LOCK_LEASE),
            args,
            ui,
            &rt,
        );
    }
    let (_, store) = local(profile)?;
    lock_with(DeployLock::new(store, LOCK_KEY, LOCK_LEASE), args, ui, &rt)
}

/// `lock status` / `lock release` on either target's store.
fn lock_with<S: ObjectStore>(
    lock: DeployLock<S>,
    args: &LockArgs,
    ui: &Ui,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<i32> {
    let now = jiff::Timestamp::now();
    match args.action {
        LockAction::Status => {
            let info = rt.block_on(lock.status())?;
            let expired = info.as_ref().map(|i| i.expired(now));
            ui.result(&json!({"lock": info, "expired": expired}), || match &info {
                None => "the deploy lock is free\n".into(),
                Some(i) => format!(
                    "held by {} (pid {}) since {}: \"{}\"; lease {} {}\n",
                    i.owner,
                    i.pid,
                    i.started_at,
                    i.message,
                    if i.expired(now) {
                        "expired at"
                    } else {
                        "runs until"
                    },
                    i.lease_expires_at
                ),
            });
            Ok(0)
        }
        LockAction::Release { force } => {
            let Some(info) = rt.block_on(lock.status())? else {
                ui.result(
                    &json!({"released": false, "reason": "the lock is free"}),
                    || "the deploy lock is free\n".into(),
                );
                return Ok(0);
            };
            let same_host =
                info.owner.split('@').nth(1) == crate::deploy::lock::whoami().split('@').nth(1);
            let dead = same_host
                && nix::sys::signal::kill(nix::unistd::Pid::from_raw(info.pid as i32), None)
                    .is_err();
            if !(force || info.expired(now) || dead) {
                return Err(actionable(
                    format!(
                        "the lock is held by {} (pid {}) and its lease runs until {}",
                        info.owner, info.pid, info.lease_expires_at
                    ),
                    "wait for that deploy, or pass --force if you are sure it is gone",
                ));
            }
            rt.block_on(lock.force_release())?;
            if force && !(info.expired(now) || dead) {
                ui.warn(format!(
                    "forcibly released a live lock held by {} (pid {})",
                    info.owner, info.pid
                ));
            }
            ui.result(&json!({"released": true, "holder": info}), || {
                format!(
                    "released the deploy lock held by {} (pid {})\n",
                    info.owner, info.pid
                )
            });
            Ok(0)
        }
    }
}
