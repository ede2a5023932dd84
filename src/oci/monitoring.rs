//! Monitoring's read calls (the `telemetry` endpoint), as oci-go-sdk `monitoring` defines them:
//! SummarizeMetricsData (`POST /20180401/metrics/actions/summarizeMetricsData?compartmentId=`,
//! body `SummarizeMetricsDataDetails`, answer a list of `MetricData`) and ListAlarmsStatus
//! (`GET /20180401/alarms/status?compartmentId=`, answer a list of `AlarmStatusSummary`, paged
//! with `opc-next-page`). Posting metrics is the service's exporter
//! (`crate::service::telemetry`).

use super::client::{query, OciClient, OciError, OciRequest, Service};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const BASE: &str = "/20180401";

/// `SummarizeMetricsDataDetails`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SummarizeDetails {
    pub namespace: String,
    /// MQL, without a condition.
    pub query: String,
    /// RFC 3339.
    pub start_time: String,
    pub end_time: String,
    /// `1m`, `5m`, `1h`, `1d`.
    pub resolution: String,
}

/// `AggregatedDatapoint`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Datapoint {
    pub timestamp: String,
    pub value: f64,
}

/// `MetricData`: one stream's aggregated datapoints.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricData {
    pub name: String,
    #[serde(default)]
    pub dimensions: BTreeMap<String, String>,
    #[serde(default)]
    pub aggregated_datapoints: Vec<Datapoint>,
}

/// `AlarmStatusSummary`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmStatus {
    pub id: String,
    pub display_name: String,
    pub severity: String,
    /// `FIRING`, `OK` or `SUSPENDED`.
    pub status: String,
    #[serde(default)]
    pub timestamp_triggered: Option<String>,
    #[serde(default)]
    pub alarm_summary: Option<String>,
}

pub struct Monitoring<'a> {
    client: &'a OciClient,
}

impl OciClient {
    pub fn monitoring(&self) -> Monitoring<'_> {
        Monitoring { client: self }
    }
}

impl Monitoring<'_> {
    /// SummarizeMetricsData in `compartment_id`.
    pub async fn summarize(
        &self,
        compartment_id: &str,
        details: &SummarizeDetails,
    ) -> Result<Vec<MetricData>, OciError> {
        let url = self.client.url(
            Service::Telemetry,
            &format!(
                "{BASE}/metrics/actions/summarizeMetricsData{}",
                query(&[("compartmentId", Some(compartment_id))])
            ),
        )?;
        let resp = self
            .client
            .send(OciRequest::new(Method::POST, url).json(details)?)
            .await?;
        resp.json()
    }

    /// ListAlarmsStatus in `compartment_id`, every page.
    pub async fn alarms_status(&self, compartment_id: &str) -> Result<Vec<AlarmStatus>, OciError> {
        let mut out = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let url = self.client.url(
                Service::Telemetry,
                &format!(
                    "{BASE}/alarms/status{}",
                    query(&[
                        ("compartmentId", Some(compartment_id)),
                        ("page", page.as_deref())
                    ])
                ),
            )?;
            let resp = self.client.send(OciRequest::new(Method::GET, url)).await?;
            out.extend(resp.json::<Vec<AlarmStatus>>()?);
            match resp.header("opc-next-page") {
                Some(n) if !n.is_empty() && Some(n) != page.as_deref() => {
                    page = Some(n.to_string())
                }
                _ => return Ok(out),
            }
        }
    }
}
