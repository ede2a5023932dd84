//! What the renderer needs, as plain data: [`RenderInput`].
//!
//! It is built from a typed [`Profile`] (plus the deployment slots) with
//! [`RenderInput::from_profile`], or deserialized directly (tests, tools). [`RenderInput::check`]
//! rejects what would render an insecure or invalid stack, with a message that says what to do.

use crate::profile::types::SecretRef;
use crate::profile::{Profile, Target};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Everything the Terraform root module is rendered from. Secrets appear only as references.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderInput {
    /// Profile name (goes into comments and tags).
    pub profile: String,
    /// Installed Terraform version (`1.11.4`), which decides the state backend flavour; `None`
    /// when unknown (the S3-compatible backend, which every version supports, is used).
    #[serde(default)]
    pub terraform_version: Option<String>,
    pub oci: OciInput,
    pub state: StateInput,
    pub network: NetworkInput,
    pub database: DatabaseInput,
    pub cache: CacheInput,
    pub storage: StorageInput,
    pub service: ServiceInput,
    pub load_balancer: LoadBalancerInput,
    pub monitoring: MonitoringInput,
    /// Deployment slots by name (`blue`, `green`).
    #[serde(default)]
    pub slots: BTreeMap<String, Slot>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OciInput {
    pub region: String,
    pub compartment_id: String,
    pub config_profile: String,
    #[serde(default)]
    pub availability_domain: Option<String>,
    #[serde(default)]
    pub object_storage_namespace: Option<String>,
    #[serde(default)]
    pub services_gateway_service_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateBackend {
    Oci,
    Local,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateInput {
    pub backend: StateBackend,
    pub bucket: String,
    pub prefix: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkInput {
    pub vcn_name: String,
    pub vcn_cidr: String,
    pub public_subnet_cidr: String,
    pub private_subnet_cidr: String,
    #[serde(default)]
    pub dns_label: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseInput {
    pub postgres_version: String,
    pub shape: String,
    pub ocpus: f64,
    pub memory_gbs: f64,
    pub instance_count: u32,
    pub storage_iops: u32,
    pub backup_retention_days: u32,
    pub backup_start: String,
    pub admin_username: String,
    /// A secret reference: `vault:ocid1.vaultsecret...` (required for OCI) or `env:NAME`.
    pub admin_password: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheInput {
    pub node_count: u32,
    pub memory_gbs_per_node: f64,
    pub engine_version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageInput {
    pub bucket_name: String,
    pub versioning: bool,
    pub ics_retention_days: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceInput {
    pub shape: String,
    pub ocpus: f64,
    pub memory_gbs: f64,
    pub port: u16,
    pub image_repository: String,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// ENV_NAME -> secret reference (`vault:...`; `env:` is refused for OCI targets).
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    pub graceful_shutdown_seconds: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancerInput {
    pub min_bandwidth_mbps: u32,
    pub max_bandwidth_mbps: u32,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub certificate_id: Option<String>,
    pub idle_timeout_seconds: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitoringInput {
    pub cpu_threshold_percent: u32,
    pub lb_5xx_threshold: u32,
    pub latency_threshold_ms: u32,
    #[serde(default)]
    pub notification_email: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlotState {
    /// Runs and receives traffic.
    Active,
    /// Runs; its load balancer backend is drained (no new connections).
    Draining,
    /// Not rendered: no instance, no backend.
    Absent,
}

impl SlotState {
    pub fn as_str(&self) -> &'static str {
        match self {
            SlotState::Active => "active",
            SlotState::Draining => "draining",
            SlotState::Absent => "absent",
        }
    }
}

/// One deployment slot: the image it runs (pinned by digest) and its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slot {
    #[serde(default)]
    pub image: Option<String>,
    pub state: SlotState,
}

impl Slot {
    pub fn active(image: &str) -> Slot {
        Slot {
            image: Some(image.to_string()),
            state: SlotState::Active,
        }
    }
}

/// The names slots may have.
pub const SLOT_NAMES: &[&str] = &["blue", "green"];

/// True when `image` is `<repository>@sha256:<64 lowercase hex>`.
pub fn is_pinned_image(image: &str) -> bool {
    let Some((repo, digest)) = image.split_once("@sha256:") else {
        return false;
    };
    !repo.is_empty()
        && !repo.contains(char::is_whitespace)
        && digest.len() == 64
        && digest
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// Why an input cannot be rendered: what is wrong, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}\n  fix: {fix}")]
pub struct RenderError {
    pub what: String,
    pub fix: String,
}

pub(crate) fn err(what: impl Into<String>, fix: impl Into<String>) -> RenderError {
    RenderError {
        what: what.into(),
        fix: fix.into(),
    }
}

impl RenderInput {
    /// Build the input from a typed profile and the slots to render. Slots not named keep no
    /// instance (`absent`). `terraform_version` is the installed Terraform, if known.
    pub fn from_profile(
        p: &Profile,
        slots: BTreeMap<String, Slot>,
        terraform_version: Option<String>,
    ) -> Result<RenderInput, RenderError> {
        if p.target != Target::Oci {
            return Err(err(
                format!(
                    "profile `{}` has target = \"local\": there is no Terraform to render",
                    p.name
                ),
                "`calops deploy --profile local` runs the stack on this machine; render an OCI profile instead",
            ));
        }
        let Some(oci) = &p.oci else {
            return Err(err(
                format!("profile `{}` has no [oci] section", p.name),
                "add [oci] with `region` and `compartment_id`",
            ));
        };
        let secret = |r: &SecretRef| r.to_string();
        let admin_password = p
            .database
            .admin_password
            .as_ref()
            .map(secret)
            .ok_or_else(|| {
                err(
                    format!("profile `{}`: [database] admin_password is not set", p.name),
                    "add `admin_password = \"vault:ocid1.vaultsecret...\"` (an OCI Vault secret)",
                )
            })?;
        Ok(RenderInput {
            profile: p.name.clone(),
            terraform_version,
            oci: OciInput {
                region: oci.region.as_str().to_string(),
                compartment_id: oci.compartment_id.as_str().to_string(),
                config_profile: oci.config_profile.clone(),
                availability_domain: oci.availability_domain.clone(),
                object_storage_namespace: oci.object_storage_namespace.clone(),
                services_gateway_service_id: oci
                    .services_gateway_service_id
                    .as_ref()
                    .map(|o| o.as_str().to_string()),
            },
            state: StateInput {
                backend: if p.state.backend == "local" {
                    StateBackend::Local
                } else {
                    StateBackend::Oci
                },
                bucket: p.state.bucket.clone(),
                prefix: p.state.prefix.clone(),
            },
            network: NetworkInput {
                vcn_name: p.network.vcn_name.clone(),
                vcn_cidr: p.network.vcn_cidr.to_string(),
                public_subnet_cidr: p.network.public_subnet_cidr.to_string(),
                private_subnet_cidr: p.network.private_subnet_cidr.to_string(),
                dns_label: p.network.dns_label.clone(),
            },
            database: DatabaseInput {
                postgres_version: p.database.postgres_version.clone(),
                shape: p.database.shape.name().to_string(),
                ocpus: p.database.ocpus,
                memory_gbs: p.database.memory_gbs,
                instance_count: p.database.instance_count,
                storage_iops: p.database.storage_iops,
                backup_retention_days: p.database.backup_retention_days,
                backup_start: p.database.backup_start.clone(),
                admin_username: p.database.admin_username.clone(),
                admin_password,
            },
            cache: CacheInput {
                node_count: p.cache.node_count,
                memory_gbs_per_node: p.cache.memory_gbs_per_node,
                engine_version: p.cache.engine_version.clone(),
            },
            storage: StorageInput {
                bucket_name: p.storage.bucket_name.clone(),
                versioning: p.storage.versioning,
                ics_retention_days: p.storage.ics_retention_days,
            },
            service: ServiceInput {
                shape: p.service.shape.name().to_string(),
                ocpus: p.service.ocpus,
                memory_gbs: p.service.memory_gbs,
                port: p.service.port.get(),
                image_repository: p.service.image_repository.clone(),
                environment: p.service.environment.clone(),
                secrets: p
                    .service
                    .secrets
                    .iter()
                    .map(|(k, v)| (k.clone(), secret(v)))
                    .collect(),
                graceful_shutdown_seconds: p.service.graceful_shutdown_seconds,
            },
            load_balancer: LoadBalancerInput {
                min_bandwidth_mbps: p.load_balancer.min_bandwidth_mbps,
                max_bandwidth_mbps: p.load_balancer.max_bandwidth_mbps,
                hostname: p
                    .load_balancer
                    .hostname
                    .as_ref()
                    .map(|h| h.as_str().to_string()),
                certificate_id: p
                    .load_balancer
                    .certificate_id
                    .as_ref()
                    .map(|o| o.as_str().to_string()),
                idle_timeout_seconds: p.load_balancer.idle_timeout_seconds,
            },
            monitoring: MonitoringInput {
                cpu_threshold_percent: p.monitoring.cpu_threshold_percent,
                lb_5xx_threshold: p.monitoring.lb_5xx_threshold,
                latency_threshold_ms: p.monitoring.latency_threshold_ms,
                notification_email: p
                    .monitoring
                    .notification_email
                    .as_ref()
                    .map(|e| e.as_str().to_string()),
            },
            slots,
        })
    }

    /// Reject inputs that would render an insecure or unusable stack.
    pub fn check(&self) -> Result<(), RenderError> {
        let vault_ocid = |field: &str, reference: &str| -> Result<String, RenderError> {
            match reference.strip_prefix("vault:") {
                Some(ocid) if ocid.starts_with("ocid1.vaultsecret.") => Ok(ocid.to_string()),
                _ if reference.starts_with("env:") => Err(err(
                    format!("{field} is an `env:` reference, which an OCI deployment cannot use: the value would have to pass through Terraform and land in its state"),
                    format!("store the secret in OCI Vault and set {field} = \"vault:ocid1.vaultsecret...\""),
                )),
                // Never echo the value: it may be a secret typed into the wrong field.
                _ => Err(err(
                    format!("{field} is not a secret reference (the value is not shown)"),
                    format!("set {field} = \"vault:ocid1.vaultsecret...\" (an OCI Vault secret OCID)"),
                )),
            }
        };
        vault_ocid("[database] admin_password", &self.database.admin_password)?;
        for (name, r) in &self.service.secrets {
            vault_ocid(&format!("[service.secrets] {name}"), r)?;
            if self.service.environment.contains_key(name)
                || self
                    .service
                    .environment
                    .contains_key(&format!("{name}_SECRET_OCID"))
            {
                return Err(err(
                    format!("`{name}` is both a secret and a plain environment variable"),
                    format!("remove `{name}` from [service.environment]"),
                ));
            }
        }
        for (name, slot) in &self.slots {
            if !SLOT_NAMES.contains(&name.as_str()) {
                return Err(err(
                    format!("unknown deployment slot `{name}`"),
                    format!("slots are named {}", SLOT_NAMES.join(" and ")),
                ));
            }
            match (&slot.image, slot.state) {
                (_, SlotState::Absent) => {}
                (None, s) => {
                    return Err(err(
                        format!("slot `{name}` is {} but has no image", s.as_str()),
                        "give it an image pinned by digest: <repository>@sha256:<64 hex digits>",
                    ))
                }
                (Some(img), _) if !is_pinned_image(img) => {
                    return Err(err(
                        format!("slot `{name}` image `{img}` is not pinned by digest"),
                        "use <repository>@sha256:<64 hex digits> (`calops image build` prints it); tags can change under a running stack",
                    ))
                }
                _ => {}
            }
        }
        if self.load_balancer.min_bandwidth_mbps > self.load_balancer.max_bandwidth_mbps {
            return Err(err(
                format!(
                    "[load_balancer] min_bandwidth_mbps ({}) is above max_bandwidth_mbps ({})",
                    self.load_balancer.min_bandwidth_mbps, self.load_balancer.max_bandwidth_mbps
                ),
                "make min_bandwidth_mbps <= max_bandwidth_mbps",
            ));
        }
        if !(1..=7200).contains(&self.load_balancer.idle_timeout_seconds) {
            return Err(err(
                format!(
                    "[load_balancer] idle_timeout_seconds = {} is outside 1..7200",
                    self.load_balancer.idle_timeout_seconds
                ),
                "OCI listeners accept 1 to 7200 seconds; 300 keeps WebSockets open",
            ));
        }
        Ok(())
    }
}
