//! `status`: the current release of a profile, whether it answers healthy, and its live figures
//! ([`crate::status`]). Local: `/health` of the running release on its private port, its
//! `/metrics` there, and how its backups stand (the archive lag alarm fails the status); OCI:
//! `/health` through the load balancer (or `CALOPS_HEALTH_URL`), which must come from the
//! recorded image, the figures from OCI Monitoring for the live slot and release, and the
//! stack's firing alarms (any fails the status).

use super::deployment::{open_local, open_state};
use super::ledger::Release;
use super::local::{seed, target::LocalTarget};
use crate::profile::{self, Profile};
use crate::status::{figures::StatusFigures, monitoring, scrape};
use serde_json::json;

/// What `calops status` reports: the JSON document, its human text, and the verdict.
pub struct Status {
    pub doc: serde_json::Value,
    pub text: String,
    /// True when the current release answers healthy.
    pub healthy: bool,
    /// True when a release has been recorded.
    pub deployed: bool,
    /// Something to act on that the verdict counts (local: backups are behind; OCI: an alarm
    /// is firing).
    pub warnings: Vec<String>,
    /// Worth saying, not counted in the verdict (the figures could not be read).
    pub notes: Vec<String>,
}

impl Status {
    /// 0 when nothing is deployed yet, or when the release is healthy and nothing needs
    /// acting on; 1 otherwise (not healthy or unreachable, backups behind, an alarm firing).
    /// Figures that cannot be read are a note, not a failure: the health check decides.
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
        profile::Target::OciVm => vm(profile).await,
    }
}

/// How long `status` waits for the figures (Monitoring, or the local `/metrics`) before it
/// reports them unavailable.
const OBSERVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The figures and firing alarms of the live release on OCI, or why they could not be read.
struct Observed {
    figures: Result<StatusFigures, String>,
    alarms: Result<Vec<monitoring::Firing>, String>,
}

async fn observe_oci(profile: &Profile, release: &Release) -> Observed {
    let client = match super::oci::setup::client(profile) {
        Ok(c) => c,
        Err(e) => return Observed::failed(format!("{e:#}")),
    };
    let detail = |k: &str| release.details.get(k).and_then(|v| v.as_str());
    let live = monitoring::Live {
        slot: detail("slot").unwrap_or("none").to_string(),
        release: crate::service::telemetry::release(detail("image")),
    };
    observe(&client, profile, &live).await
}

impl Observed {
    fn failed(e: String) -> Observed {
        Observed {
            figures: Err(e.clone()),
            alarms: Err(e),
        }
    }
}

/// The figures of `live` from OCI Monitoring and the stack's firing alarms (both targets on
/// OCI: the exporter posts the same metrics, only the dimensions differ), within
/// [`OBSERVE_TIMEOUT`].
async fn observe(
    client: &crate::oci::client::OciClient,
    profile: &Profile,
    live: &monitoring::Live,
) -> Observed {
    let Some(oci) = profile.oci.as_ref() else {
        return Observed::failed("the profile has no [oci] section".into());
    };
    let compartment = oci.compartment_id.as_str();
    let both = async {
        tokio::join!(
            monitoring::read(
                client,
                compartment,
                crate::runtime::telemetry::NAMESPACE,
                live
            ),
            monitoring::read_alarms(client, compartment, &profile.network.vcn_name)
        )
    };
    match tokio::time::timeout(OBSERVE_TIMEOUT, both).await {
        Ok((figures, alarms)) => Observed {
            figures: figures.map_err(|e| format!("{e:#}")),
            alarms: alarms.map_err(|e| format!("{e:#}")),
        },
        Err(_) => Observed::failed(format!(
            "OCI Monitoring did not answer within {} s",
            OBSERVE_TIMEOUT.as_secs()
        )),
    }
}

/// What the figures and alarms add to the document and the verdict: (figures, figures_error,
/// alarms_firing, alarms_error); a firing alarm is a warning, what could not be read a note.
fn observed_json(
    o: &Observed,
    warnings: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> [serde_json::Value; 4] {
    let (f, fe) = figures_json(&o.figures);
    if let Err(e) = &o.figures {
        notes.push(format!("figures unavailable: {e}"));
    }
    let (a, ae) = match &o.alarms {
        Ok(a) => {
            warnings.extend(
                a.iter()
                    .map(|f| format!("alarm firing: {} ({})", f.name, f.severity)),
            );
            (json!(a), json!(null))
        }
        Err(e) => {
            notes.push(format!("alarm status unavailable: {e}"));
            (json!(null), json!(e))
        }
    };
    [f, fe, a, ae]
}

fn alarms_text(alarms: &Result<Vec<monitoring::Firing>, String>) -> String {
    match alarms {
        Ok(a) if a.is_empty() => "alarms: none firing\n".into(),
        Ok(a) => {
            let mut out = String::from("alarms FIRING:\n");
            for f in a {
                out.push_str(&format!(
                    "  {} ({}){}{}\n",
                    f.name,
                    f.severity,
                    f.since
                        .as_deref()
                        .map(|s| format!(" since {s}"))
                        .unwrap_or_default(),
                    f.summary
                        .as_deref()
                        .map(|s| format!(": {s}"))
                        .unwrap_or_default()
                ));
            }
            out
        }
        Err(e) => format!("alarms: unknown ({e})\n"),
    }
}

fn figures_text(figures: &Result<StatusFigures, String>) -> String {
    match figures {
        Ok(f) => f.table(),
        Err(e) => format!("figures: unavailable ({e})\n"),
    }
}

/// `figures` and its error as the JSON document has them (one is null).
fn figures_json(figures: &Result<StatusFigures, String>) -> (serde_json::Value, serde_json::Value) {
    match figures {
        Ok(f) => (json!(f), json!(null)),
        Err(e) => (json!(null), json!(e)),
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
    let health = async {
        match &url {
            Some(u) => Some(
                get_health(&health_client(), u)
                    .await
                    .map_err(|e| format!("{e:#}")),
            ),
            None => None,
        }
    };
    let observe = async {
        match &release {
            Some(r) => Some(observe_oci(&profile, r).await),
            None => None,
        }
    };
    let (answer, observed) = tokio::join!(health, observe);
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
    let mut warnings = Vec::new();
    let mut notes = Vec::new();
    let [figures, figures_error, alarms, alarms_error] = match &observed {
        None => [json!(null), json!(null), json!(null), json!(null)],
        Some(o) => observed_json(o, &mut warnings, &mut notes),
    };
    let text = match (&release, &observed) {
        (None, _) | (_, None) => NOTHING_DEPLOYED.into(),
        (Some(r), Some(o)) => format!(
            "{}slot: {}\nhealth: {}\nurl: {}\n{}{}",
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
            url.as_deref().unwrap_or("?"),
            figures_text(&o.figures),
            alarms_text(&o.alarms)
        ),
    };
    Ok(Status {
        doc: json!({"release": release, "healthy": healthy, "health": health, "url": url,
            "figures": figures, "figures_error": figures_error,
            "alarms_firing": alarms, "alarms_error": alarms_error}),
        text,
        healthy,
        deployed: release.is_some(),
        warnings,
        notes,
    })
}

/// `oci-vm`: the ledger's current release, the desired release and the agent's report on it,
/// and `/health` through the load balancer (or `CALOPS_HEALTH_URL`).
async fn vm(profile: Profile) -> anyhow::Result<Status> {
    use super::oci::watch::{get_health, health_client};
    use super::store::ObjectStore;
    use super::vm::objects::{self, Desired, Report, ReportOutcome};
    let s = super::oci::setup::state_store(&profile).await?;
    let release = super::ledger::Ledger::new(s.store.clone(), s.ledger_prefix.clone())
        .current()
        .await?;
    let bucket = super::ocistore::OciStore::new(
        s.client.clone(),
        &s.location.namespace,
        &profile.storage.bucket_name,
    );
    let read = |b: Option<(Vec<u8>, super::store::Etag)>| b.map(|(b, _)| b);
    let desired: Option<Desired> =
        read(bucket.get(objects::DESIRED).await?).and_then(|b| serde_json::from_slice(&b).ok());
    let report: Option<Report> = match &desired {
        Some(d) => read(bucket.get(&objects::report_key(&d.id)).await?)
            .and_then(|b| serde_json::from_slice(&b).ok()),
        None => None,
    };
    let url = super::vm::target::health_url(&profile)?;
    let answer = get_health(&health_client(), &url)
        .await
        .map_err(|e| format!("{e:#}"));
    let switched = match (&release, &report) {
        (Some(r), Some(rep)) => {
            rep.outcome == ReportOutcome::Switched
                && rep.serving.as_deref() == Some(r.artifact_digest.as_str())
        }
        _ => false,
    };
    let healthy = switched && matches!(&answer, Ok(a) if (200..300).contains(&a.status));
    // The live figures, as the exporter on the VM posts them (slot `vm`, the release's digest),
    // read with the operator's key like the container target's.
    let observed = match &release {
        Some(r) => Some(observe(&s.client, &profile, &vm_live(&r.artifact_digest)).await),
        None => None,
    };
    let (mut warnings, mut notes) = (Vec::new(), Vec::new());
    let [figures, figures_error, alarms, alarms_error] = match &observed {
        None => [json!(null), json!(null), json!(null), json!(null)],
        Some(o) => observed_json(o, &mut warnings, &mut notes),
    };
    let health = match &answer {
        Ok(a) => json!({"status": a.status, "version": a.version}),
        Err(e) => json!({"error": e}),
    };
    let agent = match (&desired, &report) {
        (None, _) => "no desired release in the bucket".to_string(),
        (Some(d), None) => format!("release #{} desired; no report from the agent yet", d.seq),
        (Some(_), Some(r)) => format!("desired {}", r.summary()),
    };
    let text = match &release {
        None => NOTHING_DEPLOYED.into(),
        Some(r) => format!(
            "{}agent: {agent}\nhealth: {}\nurl: {url}\n{}{}",
            deployed(r),
            if healthy {
                "ok".to_string()
            } else {
                format!("NOT HEALTHY ({health})")
            },
            observed
                .as_ref()
                .map(|o| figures_text(&o.figures))
                .unwrap_or_default(),
            observed
                .as_ref()
                .map(|o| alarms_text(&o.alarms))
                .unwrap_or_default(),
        ),
    };
    Ok(Status {
        doc: json!({"release": release, "desired": desired, "report": report, "healthy": healthy, "health": health, "url": url,
            "figures": figures, "figures_error": figures_error,
            "alarms_firing": alarms, "alarms_error": alarms_error}),
        text,
        healthy,
        deployed: release.is_some(),
        warnings,
        notes,
    })
}

/// The dimensions the service on the VM posts its metrics under for release `digest`
/// ([`crate::runtime::env::vm_release_env`]).
fn vm_live(digest: &str) -> monitoring::Live {
    let [(_, slot), (_, image)] = crate::runtime::env::vm_release_env(digest);
    monitoring::Live {
        slot,
        release: crate::service::telemetry::release(Some(&image)),
    }
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
    let observed = match target.current() {
        Some(c) => Some(
            scrape::read(
                &reqwest::Client::builder()
                    .timeout(OBSERVE_TIMEOUT / 2)
                    .build()?,
                &format!("http://127.0.0.1:{}", c.private_port),
            )
            .await
            .map_err(|e| format!("{e:#}")),
        ),
        None => None,
    };
    let mut notes = Vec::new();
    let (figures, figures_error) = match &observed {
        Some(o) => {
            if let Err(e) = o {
                notes.push(format!("figures unavailable: {e}"));
            }
            figures_json(o)
        }
        None => (json!(null), json!(null)),
    };
    let doc = json!({"release": release, "running": target.current().is_some(), "healthy": healthy, "health": health, "url": url, "demo": demo, "backups": backups, "figures": figures, "figures_error": figures_error});
    let text = match &release {
        None => NOTHING_DEPLOYED.into(),
        Some(r) => format!(
            "{}health: {}\nurl: {url}\n{}{}{}",
            deployed(r),
            if healthy { "ok" } else { "NOT HEALTHY" },
            demo.map(|d| format!("try: {}\n", d.curl))
                .unwrap_or_default(),
            backups.line(),
            observed.as_ref().map(figures_text).unwrap_or_default()
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
        notes,
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
            notes: vec!["figures unavailable: connection refused".into()],
        }
    }

    #[test]
    fn a_healthy_release_with_backups_behind_or_an_alarm_firing_fails_the_status() {
        assert_eq!(status(true, true, &[]).exit_code(), 0);
        assert_eq!(status(true, false, &[]).exit_code(), 1);
        assert_eq!(status(true, true, &["backups are behind"]).exit_code(), 1);
        assert_eq!(
            status(
                true,
                true,
                &["alarm firing: calops-prod-au-service-5xx (CRITICAL)"]
            )
            .exit_code(),
            1
        );
        assert_eq!(
            status(false, false, &[]).exit_code(),
            0,
            "nothing deployed yet"
        );
    }
}
