//! The OCI Monitoring exporter: on OCI the service posts its key figures every minute
//! (PostMetricData, signed as the principal the runtime contract names: the container
//! instance's resource principal, or the `oci-vm` target's instance principal), in the namespace
//! and compartment the runtime contract gives ([`crate::runtime::telemetry::var`]). Locally it
//! is off and `/metrics` is all there is.
//!
//! - [`snapshot`]: one interval's figures from two readings of the cumulative counters (pure);
//! - [`body`]: snapshot -> PostMetricData bodies, named from the one list of
//!   [`crate::runtime::telemetry::METRICS`] the rendered alarms use too (pure);
//! - [`queue`]: the bounded queue between them (drops the oldest when full, counted);
//! - [`exporter`]: the two background tasks (snapshot every interval; post with a short
//!   timeout), never on a request's path. What Monitoring refuses or does not answer in time
//!   is dropped and counted (`calops_metrics_export_dropped_total` in `/metrics`).

pub mod body;
pub mod exporter;
pub mod exposition;
pub mod queue;
pub mod snapshot;

use crate::runtime::telemetry::var;
use crate::service::problem::Problem;
use std::collections::BTreeMap;
use std::time::Duration;

/// How the exporter runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub namespace: String,
    pub compartment_id: String,
    pub interval: Duration,
    /// How long one PostMetricData call may take before its data is dropped.
    pub timeout: Duration,
    /// Metric streams held while Monitoring is slow or down.
    pub capacity: usize,
    /// The slot and release dimensions.
    pub dimensions: BTreeMap<String, String>,
}

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
pub const POST_TIMEOUT: Duration = Duration::from_secs(5);
/// About 30 minutes of metrics at the usual ~60 streams a minute.
pub const CAPACITY: usize = 2_000;

/// The release dimension of an image reference: its digest's first 12 hex digits, or its tag.
pub fn release(image: Option<&str>) -> String {
    match image.map(str::trim).filter(|i| !i.is_empty()) {
        None => "local".into(),
        Some(i) => match i.split_once("@sha256:") {
            Some((_, d)) => d.chars().take(12).collect(),
            None => i
                .rsplit_once(':')
                .filter(|(_, tag)| !tag.contains('/'))
                .map(|(_, tag)| tag.to_string())
                .unwrap_or_else(|| "untagged".into()),
        },
    }
}

impl Settings {
    /// From the contract's variables: `None` when the exporter is off (neither the namespace
    /// nor the compartment set); every problem names its variable.
    pub fn from_env(
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Settings>, Vec<Problem>> {
        let get = |n: &str| {
            env(n)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut problems = Vec::new();
        let (namespace, compartment) = match (get(var::NAMESPACE), get(var::COMPARTMENT_ID)) {
            (None, None) => return Ok(None),
            (Some(_), None) => {
                return Err(vec![Problem {
                    setting: var::COMPARTMENT_ID,
                    message: format!("is not set, but {} is: set both (the compartment OCID the metrics belong to) or neither", var::NAMESPACE),
                }])
            }
            (None, Some(c)) => (crate::runtime::telemetry::NAMESPACE.to_string(), c),
            (Some(n), Some(c)) => (n, c),
        };
        if let Err(m) = crate::runtime::telemetry::check_namespace(&namespace) {
            problems.push(Problem {
                setting: var::NAMESPACE,
                message: m,
            });
        }
        if !(compartment.starts_with("ocid1.compartment.")
            || compartment.starts_with("ocid1.tenancy."))
        {
            problems.push(Problem {
                setting: var::COMPARTMENT_ID,
                message: "is not a compartment OCID (ocid1.compartment...)".into(),
            });
        }
        let interval = match get(var::INTERVAL) {
            None => DEFAULT_INTERVAL,
            Some(t) => match humantime::parse_duration(&t) {
                Ok(d) if d >= Duration::from_secs(1) && d <= Duration::from_secs(3600) => d,
                _ => {
                    problems.push(Problem {
                        setting: var::INTERVAL,
                        message: format!("{t:?}: use a duration from 1s to 1h, such as 60s"),
                    });
                    DEFAULT_INTERVAL
                }
            },
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        let dimensions = BTreeMap::from([
            (
                "slot".to_string(),
                get(crate::runtime::env::var::SLOT).unwrap_or_else(|| "none".into()),
            ),
            (
                "release".to_string(),
                release(get(crate::runtime::env::var::IMAGE).as_deref()),
            ),
        ]);
        Ok(Some(Settings {
            namespace,
            compartment_id: compartment,
            interval,
            timeout: POST_TIMEOUT,
            capacity: CAPACITY,
            dimensions,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exporter_is_on_only_with_the_contract_variables() {
        let none = |_: &str| None;
        assert_eq!(Settings::from_env(&none).unwrap(), None);
        let env = |n: &str| {
            match n {
                "CALOPS_METRICS_NAMESPACE" => Some("calops"),
                "CALOPS_METRICS_COMPARTMENT_ID" => Some("ocid1.compartment.oc1..c"),
                "CALOPS_SLOT" => Some("green"),
                "CALOPS_IMAGE" => Some("syd.ocir.io/ns/calops@sha256:0123456789abcdef0123"),
                _ => None,
            }
            .map(String::from)
        };
        let s = Settings::from_env(&env).unwrap().unwrap();
        assert_eq!(s.interval, DEFAULT_INTERVAL);
        assert_eq!(s.dimensions["slot"], "green");
        assert_eq!(s.dimensions["release"], "0123456789ab");
        let bad = |n: &str| match n {
            "CALOPS_METRICS_NAMESPACE" => Some("oci_calops".to_string()),
            "CALOPS_METRICS_INTERVAL" => Some("0s".to_string()),
            other => env(other),
        };
        let p = Settings::from_env(&bad).unwrap_err();
        let settings: Vec<_> = p.iter().map(|p| p.setting).collect();
        assert_eq!(
            settings,
            ["CALOPS_METRICS_NAMESPACE", "CALOPS_METRICS_INTERVAL"]
        );
        let half = |n: &str| (n == "CALOPS_METRICS_NAMESPACE").then(|| "calops".to_string());
        assert_eq!(
            Settings::from_env(&half).unwrap_err()[0].setting,
            "CALOPS_METRICS_COMPARTMENT_ID"
        );
        assert_eq!(release(Some("calops:1.4.0")), "1.4.0");
        assert_eq!(release(Some("localhost:5000/calops")), "untagged");
        assert_eq!(release(None), "local");
    }

    #[test]
    fn on_the_vm_the_exporter_is_on_with_the_vms_compartment_and_dimensions() {
        use crate::runtime::env::{vm_release_env, vm_service_env};
        let mut vm =
            vm_service_env("ocid1.compartment.oc1..vm", None, &Default::default(), []).unwrap();
        vm.extend(vm_release_env("sha256:0123456789abcdef00"));
        let s = Settings::from_env(&|n: &str| vm.get(n).cloned())
            .unwrap()
            .expect("the exporter is on");
        assert_eq!(s.namespace, "calops");
        assert_eq!(s.compartment_id, "ocid1.compartment.oc1..vm");
        assert_eq!(s.dimensions["slot"], "vm");
        assert_eq!(s.dimensions["release"], "0123456789ab");
    }
}
