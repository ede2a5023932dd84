//! Container Instances: get one, list a compartment's (all pages), with lifecycle state.

use crate::oci::client::{encode_path_segment, query, OciClient, OciError, OciRequest, Service};
use reqwest::Method;
use serde::{Deserialize, Serialize};

/// `CREATING`, `UPDATING`, `ACTIVE`, `INACTIVE`, `DELETING`, `DELETED`, `FAILED`.
pub type LifecycleState = String;

/// A container of an instance (the fields calops shows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceContainer {
    pub container_id: String,
    #[serde(default)]
    pub display_name: Option<String>,
}

/// GetContainerInstance (and the summary fields of ListContainerInstances).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerInstance {
    pub id: String,
    pub display_name: String,
    pub compartment_id: String,
    pub lifecycle_state: LifecycleState,
    #[serde(default)]
    pub lifecycle_details: Option<String>,
    #[serde(default)]
    pub availability_domain: Option<String>,
    #[serde(default)]
    pub shape: Option<String>,
    #[serde(default)]
    pub container_count: Option<u32>,
    #[serde(default)]
    pub containers: Vec<InstanceContainer>,
    #[serde(default)]
    pub time_created: Option<String>,
    #[serde(default)]
    pub time_updated: Option<String>,
}

impl ContainerInstance {
    pub fn is_active(&self) -> bool {
        self.lifecycle_state == "ACTIVE"
    }
}

#[derive(Deserialize)]
struct Collection {
    items: Vec<ContainerInstance>,
}

/// Container Instances calls on one client.
#[derive(Debug, Clone, Copy)]
pub struct ContainerInstances<'a> {
    client: &'a OciClient,
}

impl OciClient {
    pub fn container_instances(&self) -> ContainerInstances<'_> {
        ContainerInstances { client: self }
    }
}

impl ContainerInstances<'_> {
    /// GetContainerInstance; `None` when it does not exist.
    pub async fn get(&self, id: &str) -> Result<Option<ContainerInstance>, OciError> {
        let path = format!("/20210415/containerInstances/{}", encode_path_segment(id));
        let url = self.client.url(Service::ContainerInstances, &path)?;
        match self.client.send(OciRequest::new(Method::GET, url)).await {
            Ok(r) => r.json().map(Some),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// ListContainerInstances in a compartment, every page (`opc-next-page`), optionally
    /// filtered by lifecycle state and display name.
    pub async fn list(
        &self,
        compartment_id: &str,
        lifecycle_state: Option<&str>,
        display_name: Option<&str>,
    ) -> Result<Vec<ContainerInstance>, OciError> {
        let mut out = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let q = query(&[
                ("compartmentId", Some(compartment_id)),
                ("lifecycleState", lifecycle_state),
                ("displayName", display_name),
                ("page", page.as_deref()),
            ]);
            let url = self.client.url(
                Service::ContainerInstances,
                &format!("/20210415/containerInstances{q}"),
            )?;
            let resp = self.client.send(OciRequest::new(Method::GET, url)).await?;
            let coll: Collection = resp.json()?;
            out.extend(coll.items);
            match resp.header("opc-next-page") {
                Some(next) if !next.is_empty() && Some(next) != page.as_deref() => {
                    page = Some(next.to_string())
                }
                Some(next) if !next.is_empty() => {
                    return Err(OciError::Other(format!(
                        "ListContainerInstances returned the same opc-next-page `{next}` twice; stopping to avoid a loop"
                    )))
                }
                _ => return Ok(out),
            }
        }
    }
}
