//! Backups of OCI's managed database: its own backups, through the PostgreSQL API. A restore
//! creates a new DB system from a backup; the running one is only ever read.

use super::{Report, Restore};
use crate::backup::pgconf::RecoveryTarget;
use crate::error::actionable;
use crate::oci::client::OciClient;
use crate::oci::psql::{self, Backup, DbSystem};
use crate::oci::workrequests::{WaitOptions, POSTGRESQL};
use crate::profile::types::SecretRef;
use crate::profile::Profile;
use crate::ui::Ui;
use serde_json::json;

fn compartment(p: &Profile) -> anyhow::Result<String> {
    p.oci
        .as_ref()
        .map(|o| o.compartment_id.as_str().to_string())
        .ok_or_else(|| {
            actionable(
                format!("profile `{}` has no [oci] section", p.name),
                "add [oci] with `compartment_id`",
            )
        })
}

/// The profile's DB system: `explicit`, else the one tagged `calops-profile = <profile>`.
async fn db_system(
    client: &OciClient,
    p: &Profile,
    explicit: Option<&str>,
) -> anyhow::Result<DbSystem> {
    let pg = client.postgresql();
    if let Some(id) = explicit {
        return pg.get_db_system(id).await?.ok_or_else(|| {
            actionable(
                format!("DB system {id} does not exist"),
                "check the OCID (`oci psql db-system list`)",
            )
        });
    }
    let all = pg.list_db_systems(&compartment(p)?).await?;
    let mine: Vec<DbSystem> = all
        .into_iter()
        .filter(|d| d.freeform_tags.get("calops-profile") == Some(&p.name))
        .filter(|d| !matches!(d.lifecycle_state.as_str(), "DELETED" | "DELETING"))
        .collect();
    match mine.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(actionable(
            format!(
                "no DB system tagged calops-profile = {} in the compartment",
                p.name
            ),
            "deploy the profile first, or pass --db-system OCID",
        )),
        many => Err(actionable(
            format!(
                "{} DB systems are tagged calops-profile = {}: {}",
                many.len(),
                p.name,
                many.iter()
                    .map(|d| d.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "pass --db-system OCID",
        )),
    }
}

fn backup_line(b: &Backup) -> String {
    format!(
        "{:<24}  {:<9}  {:<9}  {:>6}  {}  {}\n",
        b.time_created.get(..19).unwrap_or(&b.time_created),
        b.lifecycle_state,
        b.source_type.as_deref().unwrap_or("-"),
        b.backup_size
            .map(|g| format!("{g} GB"))
            .unwrap_or_else(|| "-".into()),
        b.display_name,
        b.id
    )
}

/// `backup list`: the DB system's backups, as OCI lists them.
pub async fn list(p: &Profile) -> anyhow::Result<Report> {
    let client = crate::deploy::oci::setup::client(p)?;
    let sys = db_system(&client, p, None).await?;
    let backups = client
        .postgresql()
        .list_backups(&compartment(p)?, &sys.id)
        .await?;
    let mut text = format!("DB system {} ({})\n", sys.display_name, sys.id);
    if backups.is_empty() {
        text.push_str("no backups yet\n");
    }
    for b in &backups {
        text.push_str(&backup_line(b));
    }
    Ok(Report {
        doc: json!({"db_system": sys.id, "backups": backups}),
        text,
    })
}

/// `backup now`: ask OCI for a manual backup of the DB system.
pub async fn now(p: &Profile, label: &str) -> anyhow::Result<Report> {
    let client = crate::deploy::oci::setup::client(p)?;
    let sys = db_system(&client, p, None).await?;
    let token = uuid::Uuid::new_v4().simple().to_string();
    let (b, wr) = client
        .postgresql()
        .create_backup(&compartment(p)?, &sys.id, label, &token)
        .await?;
    let text = format!(
        "OCI is taking backup {} of {} ({})\n",
        b.id, sys.display_name, b.lifecycle_state
    );
    Ok(Report {
        doc: json!({"backup": b, "work_request_id": wr}),
        text,
    })
}

/// The backup a restore uses: `--backup`, else the newest ACTIVE one created at or before the
/// target time (any time for `--latest`).
fn pick(
    backups: &[Backup],
    explicit: Option<&str>,
    target: RecoveryTarget,
) -> anyhow::Result<Backup> {
    if let Some(id) = explicit {
        return backups.iter().find(|b| b.id == id).cloned().ok_or_else(|| {
            actionable(
                format!("backup {id} is not one of this DB system's backups"),
                "list them with `calops backup list`",
            )
        });
    }
    let before = match target {
        RecoveryTarget::Time(t) => Some(t),
        RecoveryTarget::Latest => None,
    };
    backups
        .iter()
        .filter(|b| b.lifecycle_state == "ACTIVE")
        .filter(|b| before.is_none_or(|t| b.created().is_some_and(|c| c <= t)))
        .max_by(|a, b| a.time_created.cmp(&b.time_created))
        .cloned()
        .ok_or_else(|| {
            actionable(
                "no ACTIVE backup fits the target",
                "list them with `calops backup list`",
            )
        })
}

/// `restore`: a new DB system from the chosen backup (waiting for it unless `no_wait`).
pub async fn restore(p: &Profile, req: &Restore, ui: &Ui) -> anyhow::Result<Report> {
    if req.start || req.into.is_some() {
        return Err(actionable(
            "--start and --into apply to the local target; an OCI restore always creates a new DB system",
            "drop them; point the service at the new DB system once you have checked it",
        ));
    }
    let secret = match &p.database.admin_password {
        Some(SecretRef::Vault(ocid)) => ocid.to_string(),
        _ => {
            return Err(actionable(
                "[database] admin_password must be a vault: reference to create a DB system",
                "set admin_password = \"vault:ocid1.vaultsecret...\"",
            ))
        }
    };
    let client = crate::deploy::oci::setup::client(p)?;
    let pg = client.postgresql();
    let sys = db_system(&client, p, req.db_system.as_deref()).await?;
    let backups = pg.list_backups(&compartment(p)?, &sys.id).await?;
    let backup = pick(&backups, req.backup.as_deref(), req.target)?;
    let stamp = jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S").to_string();
    let name = req
        .name
        .clone()
        .unwrap_or_else(|| format!("{}-restored-{stamp}", sys.display_name));
    let details = psql::restore_details(&sys, &backup, &name, &secret, req.subnet_id.as_deref())
        .map_err(|e| actionable(e, "pass --subnet-id OCID"))?;
    let token = uuid::Uuid::new_v4().simple().to_string();
    let created = pg.create_from_backup(&details, &token).await?;
    let mut state = created.db_system.lifecycle_state.clone();
    if let (false, Some(wr)) = (req.no_wait, &created.work_request_id) {
        let pb = ui.spinner(format!(
            "creating DB system {name} from backup {}",
            backup.display_name
        ));
        let done = client
            .work_requests(POSTGRESQL)
            .wait(wr, &WaitOptions::default(), |w| {
                pb.set_message(format!(
                    "creating {name}: {} {:.0}%",
                    w.status, w.percent_complete
                ))
            })
            .await;
        pb.finish_and_clear();
        let done = done?;
        state = if done.status == "SUCCEEDED" {
            "ACTIVE".into()
        } else {
            done.status
        };
    }
    let text = format!(
        "new DB system {name} ({}) from backup {} ({}): {state}\nthe running DB system {} was not touched; point the service at the new one once you have checked it\n",
        created.db_system.id, backup.display_name, backup.time_created, sys.id
    );
    Ok(Report {
        doc: json!({"db_system": created.db_system.id, "display_name": name, "state": state,
            "backup": backup, "work_request_id": created.work_request_id, "source_db_system": sys.id}),
        text,
    })
}
