//! OCI Database with PostgreSQL (`/20220915`): DB systems and their backups, and creating a
//! new DB system from a backup (`source.sourceType = BACKUP`) — the restore path that never
//! touches the running system. Paths, fields and enums follow oracle/oci-go-sdk's `psql`
//! package.

use crate::oci::client::{encode_path_segment, query, OciClient, OciError, OciRequest, Service};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

const BASE: &str = "/20220915";

/// A backup (BackupSummary; GetBackup adds fields calops does not use).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backup {
    pub id: String,
    pub display_name: String,
    pub compartment_id: String,
    pub time_created: String,
    /// `CREATING`, `ACTIVE`, `DELETING`, `DELETED`, `FAILED`.
    pub lifecycle_state: String,
    /// `SCHEDULED`, `MANUAL`, `COPIED`.
    #[serde(default)]
    pub source_type: Option<String>,
    /// In GB.
    #[serde(default)]
    pub backup_size: Option<u64>,
    #[serde(default)]
    pub db_system_id: Option<String>,
    /// Days.
    #[serde(default)]
    pub retention_period: Option<u32>,
    #[serde(default)]
    pub lifecycle_details: Option<String>,
}

impl Backup {
    pub fn created(&self) -> Option<jiff::Timestamp> {
        self.time_created.parse().ok()
    }
}

/// A DB system (the fields calops reads; the rest is kept to copy into a restore).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DbSystem {
    pub id: String,
    pub display_name: String,
    pub compartment_id: String,
    pub lifecycle_state: String,
    #[serde(default)]
    pub db_version: Option<String>,
    #[serde(default)]
    pub shape: Option<String>,
    #[serde(default)]
    pub instance_ocpu_count: Option<u32>,
    #[serde(default)]
    pub instance_memory_size_in_gbs: Option<u32>,
    #[serde(default)]
    pub instance_count: Option<u32>,
    #[serde(default)]
    pub admin_username: Option<String>,
    #[serde(default)]
    pub storage_details: Option<Value>,
    #[serde(default)]
    pub network_details: Option<Value>,
    #[serde(default)]
    pub freeform_tags: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Items<T> {
    items: Vec<T>,
}

/// CreateDbSystem from a backup.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateFromBackup {
    pub display_name: String,
    pub compartment_id: String,
    pub db_version: String,
    pub shape: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_ocpu_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_memory_size_in_gbs: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_count: Option<u32>,
    /// `{"systemType": "OCI_OPTIMIZED_STORAGE", "isRegionallyDurable": ..., "iops": ...}`.
    pub storage_details: Value,
    /// `{"username": ..., "passwordDetails": {"passwordType": "VAULT_SECRET", "secretId": ..., "secretVersion": ...}}`.
    pub credentials: Value,
    /// `{"subnetId": ..., "nsgIds": [...]}`.
    pub network_details: Value,
    /// `{"sourceType": "BACKUP", "backupId": ...}`.
    pub source: Value,
    pub freeform_tags: BTreeMap<String, String>,
}

/// What CreateDbSystem answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Created {
    pub db_system: DbSystem,
    pub work_request_id: Option<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct Postgresql<'a> {
    client: &'a OciClient,
}

impl OciClient {
    pub fn postgresql(&self) -> Postgresql<'_> {
        Postgresql { client: self }
    }
}

impl Postgresql<'_> {
    /// Every page of a list call (`opc-next-page`).
    async fn list_all<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&str, Option<&str>)],
    ) -> Result<Vec<T>, OciError> {
        let mut out = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let mut p: Vec<(&str, Option<&str>)> = params.to_vec();
            p.push(("page", page.as_deref()));
            let url = self
                .client
                .url(Service::Postgresql, &format!("{BASE}{path}{}", query(&p)))?;
            let resp = self.client.send(OciRequest::new(Method::GET, url)).await?;
            out.extend(resp.json::<Items<T>>()?.items);
            match resp.header("opc-next-page") {
                Some(n) if !n.is_empty() && Some(n) != page.as_deref() => {
                    page = Some(n.to_string())
                }
                _ => return Ok(out),
            }
        }
    }

    /// ListDbSystems in a compartment.
    pub async fn list_db_systems(&self, compartment_id: &str) -> Result<Vec<DbSystem>, OciError> {
        self.list_all("/dbSystems", &[("compartmentId", Some(compartment_id))])
            .await
    }

    /// GetDbSystem; `None` when it does not exist.
    pub async fn get_db_system(&self, id: &str) -> Result<Option<DbSystem>, OciError> {
        let url = self.client.url(
            Service::Postgresql,
            &format!("{BASE}/dbSystems/{}", encode_path_segment(id)),
        )?;
        match self.client.send(OciRequest::new(Method::GET, url)).await {
            Ok(r) => r.json().map(Some),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// ListBackups of one DB system (`id` filters by DB system), newest first.
    pub async fn list_backups(
        &self,
        compartment_id: &str,
        db_system_id: &str,
    ) -> Result<Vec<Backup>, OciError> {
        let mut b: Vec<Backup> = self
            .list_all(
                "/backups",
                &[
                    ("compartmentId", Some(compartment_id)),
                    ("id", Some(db_system_id)),
                    ("sortBy", Some("timeCreated")),
                    ("sortOrder", Some("DESC")),
                ],
            )
            .await?;
        b.sort_by(|x, y| y.time_created.cmp(&x.time_created));
        Ok(b)
    }

    /// CreateBackup: a manual backup of a DB system.
    pub async fn create_backup(
        &self,
        compartment_id: &str,
        db_system_id: &str,
        display_name: &str,
        retry_token: &str,
    ) -> Result<(Backup, Option<String>), OciError> {
        let url = self
            .client
            .url(Service::Postgresql, &format!("{BASE}/backups"))?;
        let body = serde_json::json!({"displayName": display_name, "compartmentId": compartment_id,
            "dbSystemId": db_system_id, "description": "calops backup now"});
        let req = OciRequest::new(Method::POST, url)
            .json(&body)?
            .header("opc-retry-token", retry_token)?;
        let resp = self.client.send(req).await?;
        Ok((
            resp.json()?,
            resp.header("opc-work-request-id").map(String::from),
        ))
    }

    /// CreateDbSystem from a backup (a new system; the source is only read).
    pub async fn create_from_backup(
        &self,
        details: &CreateFromBackup,
        retry_token: &str,
    ) -> Result<Created, OciError> {
        let url = self
            .client
            .url(Service::Postgresql, &format!("{BASE}/dbSystems"))?;
        let req = OciRequest::new(Method::POST, url)
            .json(details)?
            .header("opc-retry-token", retry_token)?;
        let resp = self.client.send(req).await?;
        Ok(Created {
            db_system: resp.json()?,
            work_request_id: resp.header("opc-work-request-id").map(String::from),
        })
    }
}

/// The body of a restore: the source system's shape, sizes, storage and network (its private
/// IP left for OCI to choose), credentials from the profile's Vault secret, tags marking it as
/// a restore (not the profile's live system).
pub fn restore_details(
    source: &DbSystem,
    backup: &Backup,
    display_name: &str,
    admin_secret_id: &str,
    subnet_id: Option<&str>,
) -> Result<CreateFromBackup, String> {
    let mut network = source
        .network_details
        .clone()
        .unwrap_or_else(|| serde_json::json!({}));
    if let Some(obj) = network.as_object_mut() {
        obj.remove("primaryDbEndpointPrivateIp");
        if let Some(s) = subnet_id {
            obj.insert("subnetId".into(), Value::String(s.to_string()));
        }
    }
    if network.get("subnetId").and_then(Value::as_str).is_none() {
        return Err("the source DB system's subnet is unknown; pass --subnet-id".into());
    }
    let mut storage = source.storage_details.clone().unwrap_or_else(
        || serde_json::json!({"systemType": "OCI_OPTIMIZED_STORAGE", "isRegionallyDurable": true}),
    );
    if let Some(obj) = storage.as_object_mut() {
        obj.entry("systemType")
            .or_insert_with(|| Value::String("OCI_OPTIMIZED_STORAGE".into()));
    }
    let mut tags: BTreeMap<String, String> = source
        .freeform_tags
        .iter()
        .filter(|(k, _)| k.as_str() != "calops-profile")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(p) = source.freeform_tags.get("calops-profile") {
        tags.insert("calops-restore-of".into(), p.clone());
    }
    tags.insert("calops-restored-from".into(), backup.id.clone());
    Ok(CreateFromBackup {
        display_name: display_name.to_string(),
        compartment_id: source.compartment_id.clone(),
        db_version: source
            .db_version
            .clone()
            .ok_or("the source DB system has no dbVersion")?,
        shape: source
            .shape
            .clone()
            .ok_or("the source DB system has no shape")?,
        instance_ocpu_count: source.instance_ocpu_count,
        instance_memory_size_in_gbs: source.instance_memory_size_in_gbs,
        instance_count: source.instance_count,
        storage_details: storage,
        credentials: serde_json::json!({
            "username": source.admin_username.clone().unwrap_or_else(|| "calops".into()),
            "passwordDetails": {"passwordType": "VAULT_SECRET", "secretId": admin_secret_id, "secretVersion": "1"},
        }),
        network_details: network,
        source: serde_json::json!({"sourceType": "BACKUP", "backupId": backup.id}),
        freeform_tags: tags,
    })
}
