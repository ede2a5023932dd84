//! `deploy`, `rollback`, `releases`, `status`, `destroy` and `lock`: the release commands.
//! Each opens the profile's deployment (`deploy::deployment`), whatever its target, and
//! prints what the library returns.

use crate::cli::{DeployArgs, DestroyArgs, GlobalArgs, LockAction, LockArgs, RollbackArgs};
use crate::deploy::deployment::{self, Source, LOCK_LEASE};
use crate::deploy::local::seed;
use crate::deploy::lock::DeployLock;
use crate::deploy::pipeline::{Options, RunResult};
use crate::deploy::store::ObjectStore;
use crate::error::actionable;
use crate::profile::Profile;
use crate::ui::Ui;
use serde_json::json;
use std::io::IsTerminal;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// The pipeline's options for `profile`.
fn options(profile: &Profile, no_auto_rollback: bool, message: String) -> Options {
    Options {
        auto_rollback: profile.deploy.auto_rollback && !no_auto_rollback,
        message,
        lock_lease: LOCK_LEASE,
        profile_hash: profile.hash(),
    }
}

fn print_result(ui: &Ui, r: &RunResult, demo: Option<&seed::Demo>, url: &str) {
    let mut doc = serde_json::to_value(r).unwrap_or_default();
    doc["url"] = json!(url);
    if let Some(d) = demo {
        doc["demo"] = serde_json::to_value(d).unwrap_or_default();
        if let Some(u) = &d.booking_url {
            doc["booking_url"] = json!(u);
        }
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
            if let Some(u) = &d.booking_url {
                out.push_str(&format!("booking page: {u}\n"));
            }
            out.push_str(&format!("try: {}\n", d.curl));
        }
        out.push_str(&dns_to_publish(r));
        out
    });
}

/// The DNS records the release's stack asks the operator to publish (today: the mail
/// sender's DKIM key, without which Email Delivery sends unsigned mail), one line each.
fn dns_to_publish(r: &RunResult) -> String {
    let Some(rec) = r
        .release
        .as_ref()
        .and_then(|rel| rel.details.get("mail_dkim_cname"))
    else {
        return String::new();
    };
    match (rec["name"].as_str(), rec["value"].as_str()) {
        (Some(name), Some(value)) => format!(
            "e-mail: publish this DNS record so mail is DKIM-signed (until then it is sent unsigned):\n  {name} CNAME {value}\n"
        ),
        _ => String::new(),
    }
}

pub fn deploy(g: &GlobalArgs, args: &DeployArgs, ui: &Ui) -> anyhow::Result<i32> {
    let profile = super::load_profile(g, ui)?;
    let opts = options(&profile, args.no_auto_rollback, args.message.clone());
    let source = Source::Current {
        image: args.image.as_deref(),
        binary: args.binary.as_deref(),
    };
    runtime()?.block_on(async {
        let mut d = deployment::open(profile, source, ui).await?;
        let r = d.run(&opts, None, ui).await?;
        let url = d.url(&r);
        let demo = d.demo(&url).await?;
        print_result(ui, &r, demo.as_ref(), &url);
        Ok(0)
    })
}

pub fn rollback(g: &GlobalArgs, args: &RollbackArgs, ui: &Ui) -> anyhow::Result<i32> {
    let profile = super::load_profile(g, ui)?;
    let opts = options(&profile, false, String::new());
    runtime()?.block_on(async {
        let mut d = deployment::open(profile, Source::Rollback, ui).await?;
        let to = d.state.rollback_choice(args.to).await?;
        let opts = Options {
            message: format!("calops rollback to #{}", to.seq),
            ..opts
        };
        let r = d.run(&opts, Some(&to), ui).await?;
        print_result(ui, &r, None, &d.url(&r));
        Ok(0)
    })
}

pub fn releases(g: &GlobalArgs, ui: &Ui) -> anyhow::Result<i32> {
    let profile = super::load_profile(g, ui)?;
    let list = runtime()?.block_on(async {
        anyhow::Ok(
            deployment::open_state(&profile)
                .await?
                .ledger()
                .list()
                .await?,
        )
    })?;
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

pub fn status(g: &GlobalArgs, ui: &Ui) -> anyhow::Result<i32> {
    let profile = super::load_profile(g, ui)?;
    let s = runtime()?.block_on(crate::deploy::status::of(profile))?;
    for w in &s.warnings {
        ui.warn(w);
    }
    for n in &s.notes {
        ui.note(n);
    }
    ui.result(&s.doc, || s.text.clone());
    Ok(s.exit_code())
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
    let (mut target, state) = deployment::open_local(profile)?;
    let rt = runtime()?;
    rt.block_on(async {
        let lock = state.lock();
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
    let state = rt.block_on(deployment::open_state(&profile))?;
    lock_with(state.lock(), args, ui, &rt)
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
            let dead = info.holder_dead_here();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn result(details: serde_json::Value) -> RunResult {
        let release = serde_json::from_value(json!({
            "seq": 3, "id": "r3", "kind": "deploy", "time": "2026-12-06T10:00:00Z",
            "user": "ops", "artifact_digest": "sha256:1", "profile_hash": "p",
            "inputs_hash": "i", "outcome": "succeeded", "details": details
        }))
        .unwrap();
        RunResult {
            result: "deployed".into(),
            release: Some(release),
            message: "release #3 is live".into(),
            took_over_lock_from: None,
        }
    }

    #[test]
    fn the_dkim_record_to_publish_is_printed_when_the_stack_sends_mail() {
        let r = result(json!({"url": "https://lb", "mail_dkim_cname": {
            "name": "calops-ap-sydney-1._domainkey.example.com",
            "value": "calops-ap-sydney-1.example.com.dkim.syd1.oracleemaildelivery.com"}}));
        assert_eq!(
            dns_to_publish(&r),
            "e-mail: publish this DNS record so mail is DKIM-signed (until then it is sent unsigned):\n  calops-ap-sydney-1._domainkey.example.com CNAME calops-ap-sydney-1.example.com.dkim.syd1.oracleemaildelivery.com\n"
        );
        assert_eq!(dns_to_publish(&result(json!({"url": "https://lb"}))), "");
    }
}
