//! Waiting for a slot to serve: each of its container instances ACTIVE and each one's load
//! balancer backend OK (signed OCI calls), then `GET <lb>/health` answering from the release
//! being deployed.
//!
//! [`pending`] is pure: it turns what the APIs said into the list of things still awaited, which
//! the deploy shows while it waits.

use super::stack::{LiveInstance, StackOutputs};
use crate::oci::client::OciClient;
use crate::oci::containerinstances::ContainerInstance;
use crate::oci::loadbalancer::BackendHealth;
use serde_json::Value;
use std::time::Duration;

/// A slot that can never become ready (the wait should stop).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Fatal(pub String);

/// What is still awaited for one instance of `slot`, from the instance and backend health;
/// `Err` when waiting is pointless (the instance failed or is gone).
pub fn pending(
    slot: &str,
    live: &LiveInstance,
    instance: Option<&ContainerInstance>,
    backend: Option<&BackendHealth>,
) -> Result<Vec<String>, Fatal> {
    let mut out = Vec::new();
    match instance {
        None => {
            return Err(Fatal(format!(
                "the container instance of slot {slot} ({}) does not exist",
                live.instance_id
            )))
        }
        Some(i)
            if matches!(
                i.lifecycle_state.as_str(),
                "FAILED" | "DELETING" | "DELETED"
            ) =>
        {
            return Err(Fatal(format!(
                "the container instance of slot {slot} ({}) is {}{}",
                live.instance_id,
                i.lifecycle_state,
                i.lifecycle_details
                    .as_deref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            )))
        }
        Some(i) if !i.is_active() => out.push(format!(
            "container instance {} is {}",
            live.key, i.lifecycle_state
        )),
        Some(_) => {}
    }
    let name = live.backend.as_deref().unwrap_or("?");
    match backend {
        None => out.push(format!("backend {name} has no health status yet")),
        Some(b) if b.status != "OK" => {
            let checks: Vec<&str> = b
                .health_check_results
                .iter()
                .map(|c| c.health_check_status.as_str())
                .collect();
            out.push(format!(
                "backend {name} (slot {slot}) is {}{}",
                b.status,
                if checks.is_empty() {
                    String::new()
                } else {
                    format!(" (checks: {})", checks.join(", "))
                }
            ))
        }
        Some(_) => {}
    }
    Ok(out)
}

/// Ask OCI about every instance of `slot` once: what is still pending (empty when all of them
/// are ready to serve).
pub async fn poll_slot(
    client: &OciClient,
    outputs: &StackOutputs,
    slot: &str,
) -> anyhow::Result<Vec<String>> {
    let live = outputs
        .slots
        .get(slot)
        .ok_or_else(|| anyhow::anyhow!("slot {slot} is not in the stack's outputs after apply"))?;
    if live.instances.is_empty() {
        anyhow::bail!("slot {slot} has no container instances in the stack's outputs");
    }
    let mut out = Vec::new();
    for inst in &live.instances {
        let instance = client.container_instances().get(&inst.instance_id).await?;
        let backend = match (
            &outputs.load_balancer_id,
            &outputs.backend_set_name,
            &inst.backend,
        ) {
            (Some(lb), Some(bs), Some(be)) => {
                match client.load_balancer().backend_health(lb, bs, be).await {
                    Ok(h) => Some(h),
                    Err(e) if e.is_not_found() => None,
                    Err(e) => return Err(e.into()),
                }
            }
            _ => anyhow::bail!(
                "the stack's outputs lack load_balancer_id, backend_set_name or the backend of {}; re-render the stack with this calops version",
                inst.key
            ),
        };
        out.extend(pending(slot, inst, instance.as_ref(), backend.as_ref())?);
    }
    Ok(out)
}

/// One answer of `GET <lb>/health`.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthAnswer {
    pub status: u16,
    pub image: Option<String>,
    pub slot: Option<String>,
    pub version: Option<String>,
}

impl HealthAnswer {
    pub fn parse(status: u16, body: &str) -> HealthAnswer {
        let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(String::from);
        HealthAnswer {
            status,
            image: text("image"),
            slot: text("slot"),
            version: text("version"),
        }
    }

    /// Healthy and answered by `image` (matched by digest).
    pub fn from_image(&self, image: &str) -> bool {
        let digest = super::stack::image_digest(image);
        (200..300).contains(&self.status)
            && match (&self.image, digest) {
                (Some(got), Some(d)) => super::stack::image_digest(got) == Some(d),
                (Some(got), None) => got == image,
                _ => false,
            }
    }

    pub fn describe(&self) -> String {
        format!(
            "HTTP {}{}{}",
            self.status,
            self.image
                .as_deref()
                .map(|i| format!(", image {i}"))
                .unwrap_or_default(),
            self.slot
                .as_deref()
                .map(|s| format!(", slot {s}"))
                .unwrap_or_default()
        )
    }
}

/// `GET <base>/health` once.
pub async fn get_health(http: &reqwest::Client, base: &str) -> anyhow::Result<HealthAnswer> {
    let url = format!("{}/health", base.trim_end_matches('/'));
    let r = http
        .get(&url)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("GET {url}: {}", e.without_url()))?;
    let status = r.status().as_u16();
    let body = r.text().await.unwrap_or_default();
    Ok(HealthAnswer::parse(status, &body))
}

/// An HTTP client for health checks (short timeouts; plain HTTP allowed).
pub fn health_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(3))
        .build()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live() -> LiveInstance {
        LiveInstance {
            key: "blue-0".into(),
            instance_id: "ocid1.ci..b".into(),
            private_ip: Some("10.0.1.10".into()),
            backend: Some("10.0.1.10:8080".into()),
            availability_domain: None,
            fault_domain: None,
        }
    }

    fn instance(state: &str) -> ContainerInstance {
        serde_json::from_value(serde_json::json!({"id": "ocid1.ci..b", "displayName": "x",
            "compartmentId": "c", "lifecycleState": state, "lifecycleDetails": "out of capacity"}))
        .unwrap()
    }

    fn backend(status: &str) -> BackendHealth {
        serde_json::from_value(serde_json::json!({"status": status,
            "healthCheckResults": [{"healthCheckStatus": "CONNECT_FAILED"}]}))
        .unwrap()
    }

    #[test]
    fn pending_says_what_is_awaited() {
        let l = live();
        let p = pending(
            "blue",
            &l,
            Some(&instance("CREATING")),
            Some(&backend("CRITICAL")),
        )
        .unwrap();
        assert_eq!(
            p,
            vec![
                "container instance blue-0 is CREATING".to_string(),
                "backend 10.0.1.10:8080 (slot blue) is CRITICAL (checks: CONNECT_FAILED)".into()
            ]
        );
        assert!(
            pending("blue", &l, Some(&instance("ACTIVE")), Some(&backend("OK")))
                .unwrap()
                .is_empty()
        );
        let p = pending("blue", &l, Some(&instance("ACTIVE")), None).unwrap();
        assert_eq!(p, vec!["backend 10.0.1.10:8080 has no health status yet"]);
        let e = pending("blue", &l, Some(&instance("FAILED")), None).unwrap_err();
        assert!(e.0.contains("FAILED: out of capacity"), "{e}");
        assert!(pending("blue", &l, None, None).is_err());
    }

    #[test]
    fn health_answers_match_by_digest() {
        let a = HealthAnswer::parse(
            200,
            r#"{"status":"ok","version":"0.1.0","image":"syd.ocir.io/ns/app@sha256:2","slot":"green"}"#,
        );
        assert!(a.from_image("other.host/ns/app@sha256:2"));
        assert!(!a.from_image("syd.ocir.io/ns/app@sha256:1"));
        assert!(!HealthAnswer::parse(503, r#"{"image":"r@sha256:2"}"#).from_image("r@sha256:2"));
        assert!(!HealthAnswer::parse(200, "not json").from_image("r@sha256:2"));
        assert_eq!(
            a.describe(),
            "HTTP 200, image syd.ocir.io/ns/app@sha256:2, slot green"
        );
    }
}
