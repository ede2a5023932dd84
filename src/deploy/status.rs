//! `status`: the current release of a profile and whether it answers healthy. Local: `/health`
//! of the running release on its private port, and how its backups stand (the archive lag
//! alarm fails the status); OCI: `/health` through the load balancer (or
//! `CALOPS_HEALTH_URL`), which must come from the recorded image.

use super::deployment::{open_local, open_state};
use super::ledger::Release;
use super::local::{seed, target::LocalTarget};
use crate::profile::{self, Profile};
use serde_json::json;

/// What `calops status` reports: the JSON document, its human text, and the verdict.
pub struct Status {
    pub doc: serde_json::Value,
    pub text: String,
    /// True when the current release answers healthy.
    pub healthy: bool,
    /// True when a release has been recorded.
    pub deployed: bool,
    /// Something to act on that the verdict counts (local: backups are behind).
    pub warnings: Vec<String>,
}

impl Status {
    /// 0 when nothing is deployed yet, or when the release is healthy and nothing needs
    /// acting on; 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        if !self.deployed || (self.healthy && self.warnings.is_empty()) {
            0
        } else {
            1
        }
    }
}

const NOTHING_DEPLOYED: &str = "no release deployed yet (run `calops deploy --profile ...`)\n";

/// The first line about the current release.
fn deployed(r: &Release) -> String {
    format!(
        "release #{} ({}) deployed {} by {}\n",
        r.seq,
        r.artifact_digest,
        r.time.strftime("%Y-%m-%d %H:%M:%S"),
        r.user
    )
}

pub async fn of(profile: Profile) -> anyhow::Result<Status> {
    match profile.target {
        profile::Target::Oci => oci(profile).await,
        profile::Target::Local => local(profile).await,
        profile::Target::OciVm => Err(super::vm::not_yet(&profile, "status")),
    }
}

async fn oci(profile: Profile) -> anyhow::Result<Status> {
    use super::oci::watch::{get_health, health_client};
    let release = open_state(&profile).await?.ledger().current().await?;
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
    let text = match &release {
        None => NOTHING_DEPLOYED.into(),
        Some(r) => format!(
            "{}slot: {}\nhealth: {}\nurl: {}\n",
            deployed(r),
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
    };
    Ok(Status {
        doc: json!({"release": release, "healthy": healthy, "health": health, "url": url}),
        text,
        healthy,
        deployed: release.is_some(),
        warnings: Vec::new(),
    })
}

async fn local(profile: Profile) -> anyhow::Result<Status> {
    let (target, state) = open_local(profile)?;
    let release = state.ledger().current().await?;
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
    let url = target.public_url();
    let demo = seed::existing(&target.layout, &url);
    let backups = super::backups::local::status(&target.layout).await;
    let doc = json!({"release": release, "running": target.current().is_some(), "healthy": healthy, "health": health, "url": url, "demo": demo, "backups": backups});
    let text = match &release {
        None => NOTHING_DEPLOYED.into(),
        Some(r) => format!(
            "{}health: {}\nurl: {url}\n{}{}",
            deployed(r),
            if healthy { "ok" } else { "NOT HEALTHY" },
            demo.map(|d| format!("try: {}\n", d.curl))
                .unwrap_or_default(),
            backups.line()
        ),
    };
    let warnings = match (&release, backups.archive_lag_alarm) {
        (Some(_), true) => vec![format!("backups are behind: {}", backups.line().trim_end())],
        _ => Vec::new(),
    };
    Ok(Status {
        doc,
        text,
        healthy,
        deployed: release.is_some(),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(deployed: bool, healthy: bool, warnings: &[&str]) -> Status {
        Status {
            doc: json!(null),
            text: String::new(),
            healthy,
            deployed,
            warnings: warnings.iter().map(|w| w.to_string()).collect(),
        }
    }

    #[test]
    fn a_healthy_release_with_backups_behind_fails_the_status() {
        assert_eq!(status(true, true, &[]).exit_code(), 0);
        assert_eq!(status(true, false, &[]).exit_code(), 1);
        assert_eq!(status(true, true, &["backups are behind"]).exit_code(), 1);
        assert_eq!(
            status(false, false, &[]).exit_code(),
            0,
            "nothing deployed yet"
        );
    }
}
