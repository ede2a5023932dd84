//! Work requests (the standard `workRequests` API of Container Instances, PostgreSQL, Redis):
//! get one, and wait until it is done with a progress callback.
//!
//! ```no_run
//! # async fn demo(client: calops::oci::client::OciClient) -> Result<(), calops::oci::client::OciError> {
//! use calops::oci::workrequests::{WaitOptions, CONTAINER_INSTANCES};
//! let wr = client
//!     .work_requests(CONTAINER_INSTANCES)
//!     .wait("ocid1.coreservicesworkrequest...", &WaitOptions::default(), |wr| {
//!         eprintln!("{} {}%", wr.status, wr.percent_complete)
//!     })
//!     .await?;
//! # let _ = wr; Ok(()) }
//! ```

use crate::oci::client::{encode_path_segment, OciClient, OciError, OciRequest, Service};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// Which service's work requests, and its API version path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkRequestApi {
    pub service: Service,
    pub version: &'static str,
}

pub const CONTAINER_INSTANCES: WorkRequestApi = WorkRequestApi {
    service: Service::ContainerInstances,
    version: "20210415",
};
pub const POSTGRESQL: WorkRequestApi = WorkRequestApi {
    service: Service::Postgresql,
    version: "20220915",
};
pub const REDIS: WorkRequestApi = WorkRequestApi {
    service: Service::Redis,
    version: "20220315",
};

/// A resource a work request touches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkRequestResource {
    pub entity_type: String,
    pub action_type: String,
    pub identifier: String,
    #[serde(default)]
    pub entity_uri: Option<String>,
}

/// GetWorkRequest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkRequest {
    pub id: String,
    pub operation_type: String,
    /// `ACCEPTED`, `IN_PROGRESS`, `WAITING`, `NEEDS_ATTENTION`, `FAILED`, `SUCCEEDED`,
    /// `CANCELING`, `CANCELED`.
    pub status: String,
    #[serde(default)]
    pub percent_complete: f32,
    #[serde(default)]
    pub resources: Vec<WorkRequestResource>,
    #[serde(default)]
    pub time_accepted: Option<String>,
    #[serde(default)]
    pub time_started: Option<String>,
    #[serde(default)]
    pub time_finished: Option<String>,
}

impl WorkRequest {
    /// True once the status can no longer change.
    pub fn is_done(&self) -> bool {
        matches!(self.status.as_str(), "SUCCEEDED" | "FAILED" | "CANCELED")
    }
}

/// One error of a failed work request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkRequestError {
    pub code: String,
    pub message: String,
    #[serde(default)]
    pub timestamp: Option<String>,
}

#[derive(Deserialize)]
struct ErrorCollection {
    items: Vec<WorkRequestError>,
}

/// How to wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitOptions {
    pub poll_interval: Duration,
    pub timeout: Duration,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions {
            poll_interval: Duration::from_secs(5),
            timeout: Duration::from_secs(30 * 60),
        }
    }
}

/// Work request calls of one service on one client.
#[derive(Debug, Clone, Copy)]
pub struct WorkRequests<'a> {
    client: &'a OciClient,
    api: WorkRequestApi,
}

impl OciClient {
    pub fn work_requests(&self, api: WorkRequestApi) -> WorkRequests<'_> {
        WorkRequests { client: self, api }
    }
}

impl WorkRequests<'_> {
    fn url(&self, id: &str, suffix: &str) -> Result<url::Url, OciError> {
        let path = format!(
            "/{}/workRequests/{}{suffix}",
            self.api.version,
            encode_path_segment(id)
        );
        self.client.url(self.api.service, &path)
    }

    /// GetWorkRequest.
    pub async fn get(&self, id: &str) -> Result<WorkRequest, OciError> {
        let url = self.url(id, "")?;
        self.client
            .send(OciRequest::new(Method::GET, url))
            .await?
            .json()
    }

    /// ListWorkRequestErrors (first page: enough to say why it failed).
    pub async fn errors(&self, id: &str) -> Result<Vec<WorkRequestError>, OciError> {
        let url = self.url(id, "/errors")?;
        let c: ErrorCollection = self
            .client
            .send(OciRequest::new(Method::GET, url))
            .await?
            .json()?;
        Ok(c.items)
    }

    /// Poll until the work request is done, calling `progress` after every poll. `SUCCEEDED`
    /// returns it; `FAILED` or `CANCELED` is a [`OciError::WorkRequestFailed`] carrying its
    /// errors; running past `opts.timeout` is a [`OciError::WorkRequestTimeout`].
    pub async fn wait(
        &self,
        id: &str,
        opts: &WaitOptions,
        mut progress: impl FnMut(&WorkRequest),
    ) -> Result<WorkRequest, OciError> {
        let start = Instant::now();
        loop {
            let wr = self.get(id).await?;
            progress(&wr);
            if wr.is_done() {
                if wr.status == "SUCCEEDED" {
                    return Ok(wr);
                }
                let errors = self.errors(id).await.unwrap_or_default();
                return Err(OciError::WorkRequestFailed {
                    id: id.to_string(),
                    operation: wr.operation_type,
                    status: wr.status,
                    errors: errors
                        .into_iter()
                        .map(|e| format!("{}: {}", e.code, e.message))
                        .collect(),
                });
            }
            if start.elapsed() + opts.poll_interval > opts.timeout {
                return Err(OciError::WorkRequestTimeout {
                    id: id.to_string(),
                    waited: start.elapsed(),
                    status: wr.status,
                    percent_complete: wr.percent_complete,
                });
            }
            tokio::time::sleep(opts.poll_interval).await;
        }
    }
}
