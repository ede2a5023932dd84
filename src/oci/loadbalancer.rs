//! Load Balancer health: a backend set's overall health and one backend's health checks.

use crate::oci::client::{encode_path_segment, OciClient, OciError, OciRequest, Service};
use reqwest::Method;
use serde::{Deserialize, Serialize};

/// `OK`, `WARNING`, `CRITICAL` or `UNKNOWN`.
pub type HealthStatus = String;

/// GetBackendSetHealth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendSetHealth {
    pub status: HealthStatus,
    #[serde(default)]
    pub warning_state_backend_names: Vec<String>,
    #[serde(default)]
    pub critical_state_backend_names: Vec<String>,
    #[serde(default)]
    pub unknown_state_backend_names: Vec<String>,
    pub total_backend_count: u32,
}

impl BackendSetHealth {
    pub fn is_ok(&self) -> bool {
        self.status == "OK"
    }
}

/// One health check result of a backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckResult {
    #[serde(default)]
    pub subnet_id: Option<String>,
    #[serde(default)]
    pub source_ip_address: Option<String>,
    #[serde(default)]
    pub timestamp: Option<String>,
    /// `OK`, `INVALID_STATUS_CODE`, `TIMED_OUT`, `REGEX_MISMATCH`, `CONNECT_FAILED`, ...
    pub health_check_status: String,
}

/// GetBackendHealth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendHealth {
    pub status: HealthStatus,
    #[serde(default)]
    pub health_check_results: Vec<HealthCheckResult>,
}

/// Load Balancer calls on one client.
#[derive(Debug, Clone, Copy)]
pub struct LoadBalancer<'a> {
    client: &'a OciClient,
}

impl OciClient {
    pub fn load_balancer(&self) -> LoadBalancer<'_> {
        LoadBalancer { client: self }
    }
}

impl LoadBalancer<'_> {
    /// GetBackendSetHealth.
    pub async fn backend_set_health(
        &self,
        load_balancer_id: &str,
        backend_set: &str,
    ) -> Result<BackendSetHealth, OciError> {
        let path = format!(
            "/20170115/loadBalancers/{}/backendSets/{}/health",
            encode_path_segment(load_balancer_id),
            encode_path_segment(backend_set)
        );
        let url = self.client.url(Service::LoadBalancer, &path)?;
        self.client
            .send(OciRequest::new(Method::GET, url))
            .await?
            .json()
    }

    /// GetBackendHealth; `backend` is `ip:port`.
    pub async fn backend_health(
        &self,
        load_balancer_id: &str,
        backend_set: &str,
        backend: &str,
    ) -> Result<BackendHealth, OciError> {
        let path = format!(
            "/20170115/loadBalancers/{}/backendSets/{}/backends/{}/health",
            encode_path_segment(load_balancer_id),
            encode_path_segment(backend_set),
            encode_path_segment(backend)
        );
        let url = self.client.url(Service::LoadBalancer, &path)?;
        self.client
            .send(OciRequest::new(Method::GET, url))
            .await?
            .json()
    }
}
