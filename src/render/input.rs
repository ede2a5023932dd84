//! What the renderer needs, as plain data: [`RenderInput`].
//!
//! It is built from a typed [`Profile`] (plus the deployment slots) with
//! [`RenderInput::from_profile`], or deserialized directly (tests, tools). [`RenderInput::check`]
//! rejects what would render an insecure or invalid stack, with a message that says what to do.

use crate::profile::types::SecretRef;
use crate::profile::{Profile, Target};
use crate::runtime::env::{ContainerEnv, OciParams};
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
    /// The tenancy OCID (the dynamic group lives in the tenancy): from the OCI config calops
    /// signs with. `None` renders without it (Terraform then asks for `tenancy_ocid`).
    #[serde(default)]
    pub tenancy_id: Option<String>,
    /// The tenancy's home region, where IAM writes go: pinned (`[oci] home_region`) or looked
    /// up with the Identity API. `None` renders without it (Terraform asks for `home_region`).
    #[serde(default)]
    pub home_region: Option<String>,
    /// Pinned availability domains (replicas are spread over them); empty looks them up.
    #[serde(default)]
    pub availability_domains: Vec<String>,
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
    /// Container instances per slot (each its own load balancer backend).
    #[serde(default = "one")]
    pub replicas: u32,
    pub image_repository: String,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// ENV_NAME -> secret reference (`vault:...`; `env:` is refused for OCI targets).
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    pub graceful_shutdown_seconds: u32,
    /// The approved sender of the service's e-mail (Email Delivery); none: no e-mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail_sender: Option<String>,
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
    /// Thresholds of the alarms on the service's own metrics (`runtime::telemetry`).
    #[serde(default)]
    pub thresholds: crate::runtime::telemetry::Thresholds,
    /// Render the alarm on WAL archiving falling behind: only targets where calops runs
    /// PostgreSQL itself (and archives its WAL) post that metric.
    #[serde(default)]
    pub backup_archive_alarm: bool,
}

pub use crate::runtime::slot::{is_pinned_image, Slot, SlotSpec, SlotState, SLOT_NAMES};

fn one() -> u32 {
    1
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

/// The OCID in a `vault:ocid1.vaultsecret...` reference, or why the reference cannot be used.
pub fn vault_secret_ocid(field: &str, reference: &str) -> Result<String, RenderError> {
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
}

/// The [oci] inputs (the tenancy is filled in later, from the OCI config calops signs with).
pub(crate) fn oci_input(oci: &crate::profile::OciSection) -> OciInput {
    OciInput {
        region: oci.region.as_str().to_string(),
        compartment_id: oci.compartment_id.as_str().to_string(),
        config_profile: oci.config_profile.clone(),
        tenancy_id: None,
        home_region: oci.home_region.as_ref().map(|r| r.as_str().to_string()),
        availability_domains: oci.availability_domains.clone(),
        object_storage_namespace: oci.object_storage_namespace.clone(),
        services_gateway_service_id: oci
            .services_gateway_service_id
            .as_ref()
            .map(|o| o.as_str().to_string()),
    }
}

pub(crate) fn state_input(p: &Profile) -> StateInput {
    StateInput {
        backend: if p.state.backend == "local" {
            StateBackend::Local
        } else {
            StateBackend::Oci
        },
        bucket: p.state.bucket.clone(),
        prefix: p.state.prefix.clone(),
    }
}

pub(crate) fn network_input(p: &Profile) -> NetworkInput {
    NetworkInput {
        vcn_name: p.network.vcn_name.clone(),
        vcn_cidr: p.network.vcn_cidr.to_string(),
        public_subnet_cidr: p.network.public_subnet_cidr.to_string(),
        private_subnet_cidr: p.network.private_subnet_cidr.to_string(),
        dns_label: p.network.dns_label.clone(),
    }
}

pub(crate) fn storage_input(p: &Profile) -> StorageInput {
    StorageInput {
        bucket_name: p.storage.bucket_name.clone(),
        versioning: p.storage.versioning,
        ics_retention_days: p.storage.ics_retention_days,
    }
}

pub(crate) fn load_balancer_input(p: &Profile) -> LoadBalancerInput {
    LoadBalancerInput {
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
    }
}

pub(crate) fn monitoring_input(p: &Profile) -> MonitoringInput {
    MonitoringInput {
        cpu_threshold_percent: p.monitoring.cpu_threshold_percent,
        lb_5xx_threshold: p.monitoring.lb_5xx_threshold,
        latency_threshold_ms: p.monitoring.latency_threshold_ms,
        notification_email: p
            .monitoring
            .notification_email
            .as_ref()
            .map(|e| e.as_str().to_string()),
        thresholds: p.monitoring.thresholds(),
        backup_archive_alarm: false,
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
            oci: oci_input(oci),
            state: state_input(p),
            network: network_input(p),
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
            storage: storage_input(p),
            service: ServiceInput {
                shape: p.service.shape.name().to_string(),
                ocpus: p.service.ocpus,
                memory_gbs: p.service.memory_gbs,
                port: p.service.port.get(),
                replicas: p.service.replicas,
                image_repository: p.service.image_repository.clone(),
                environment: p.service.environment.clone(),
                secrets: p
                    .service
                    .secrets
                    .iter()
                    .map(|(k, v)| (k.clone(), secret(v)))
                    .collect(),
                graceful_shutdown_seconds: p.service.graceful_shutdown_seconds,
                mail_sender: p
                    .service
                    .mail_sender
                    .as_ref()
                    .map(|e| e.as_str().to_string()),
            },
            load_balancer: load_balancer_input(p),
            monitoring: monitoring_input(p),
            slots,
        })
    }

    /// What a slot staged now is made from: the profile's service settings and the container
    /// environment of [`ContainerEnv::for_oci`].
    pub fn profile_spec(&self) -> Result<SlotSpec, RenderError> {
        let db_secret =
            vault_secret_ocid("[database] admin_password", &self.database.admin_password)?;
        let mut secrets = BTreeMap::new();
        for (name, r) in &self.service.secrets {
            secrets.insert(
                name.clone(),
                vault_secret_ocid(&format!("[service.secrets] {name}"), r)?,
            );
        }
        let svc = &self.service;
        let env = ContainerEnv::for_oci(&OciParams {
            port: svc.port,
            compartment_id: &self.oci.compartment_id,
            graceful_shutdown_seconds: svc.graceful_shutdown_seconds,
            database_user: &self.database.admin_username,
            database_password_secret: &db_secret,
            environment: &svc.environment,
            secrets: &secrets,
            mail_sender: svc.mail_sender.as_deref(),
        })
        .rendered()
        .map_err(|e| err(e, "rename the variable in [service.environment]"))?;
        Ok(SlotSpec {
            shape: svc.shape.clone(),
            ocpus: svc.ocpus,
            memory_gbs: svc.memory_gbs,
            replicas: svc.replicas,
            graceful_shutdown_seconds: svc.graceful_shutdown_seconds,
            liveness_path: crate::runtime::LIVENESS_PATH.to_string(),
            env,
        })
    }

    /// The slots as rendered: a live slot without a spec gets [`Self::profile_spec`].
    pub fn resolved_slots(&self) -> Result<BTreeMap<String, Slot>, RenderError> {
        let mut out = BTreeMap::new();
        for name in SLOT_NAMES {
            let mut slot = self.slots.get(name).cloned().unwrap_or_else(Slot::absent);
            if slot.is_live() && slot.spec.is_none() {
                slot.spec = Some(self.profile_spec()?);
            }
            out.insert(name.to_string(), slot);
        }
        Ok(out)
    }

    /// Reject inputs that would render an insecure or unusable stack.
    pub fn check(&self) -> Result<(), RenderError> {
        vault_secret_ocid("[database] admin_password", &self.database.admin_password)?;
        for (name, r) in &self.service.secrets {
            vault_secret_ocid(&format!("[service.secrets] {name}"), r)?;
            let serve_reads: Vec<&str> = crate::runtime::env::SECRETS
                .into_iter()
                .filter(|s| *s != crate::runtime::env::var::DATABASE_PASSWORD)
                .collect();
            if !serve_reads.contains(&name.as_str()) {
                return Err(err(
                    format!("[service.secrets] {name}: calops serve reads no secret of that name, so the container would get it for nothing"),
                    format!(
                        "use one of {} (the database password comes from [database] admin_password)",
                        serve_reads.join(", ")
                    ),
                ));
            }
            if self.service.environment.contains_key(name)
                || self
                    .service
                    .environment
                    .contains_key(&crate::runtime::env::reference_variable(name))
            {
                return Err(err(
                    format!("`{name}` is both a secret and a plain environment variable"),
                    format!("remove `{name}` from [service.environment]"),
                ));
            }
        }
        let t = &self.monitoring.thresholds;
        for (field, v, hi) in [
            ("http_5xx_percent", t.http_5xx_percent, 100.0),
            ("booking_failure_percent", t.booking_failure_percent, 100.0),
            (
                "webhook_latency_p95_seconds",
                t.webhook_latency_p95_seconds,
                3600.0,
            ),
        ] {
            if !(v > 0.0 && v <= hi) {
                return Err(err(
                    format!("[monitoring] {field} = {v} is out of range"),
                    format!("use more than 0 and at most {hi}"),
                ));
            }
        }
        if t.queue_depth == 0
            || t.backup_archive_lag_seconds == 0
            || t.calendar_sync_age_seconds == 0
        {
            return Err(err(
                "[monitoring] queue_depth, calendar_sync_age_seconds and the archive lag threshold must be at least 1",
                "an alarm at 0 would fire all the time: use the defaults (1000 items, 1800 s, 900 s)",
            ));
        }
        let max = crate::profile::model::MAX_REPLICAS as u32;
        if !(1..=max).contains(&self.service.replicas) {
            return Err(err(
                format!(
                    "[service] replicas = {} is outside 1..{max}",
                    self.service.replicas
                ),
                "give each slot 1 to 12 container instances (2 or 3 spread them over fault domains)",
            ));
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
            if let Some(spec) = slot.spec.as_ref().filter(|_| slot.is_live()) {
                if spec.replicas == 0 {
                    return Err(err(
                        format!("slot `{name}` has 0 replicas"),
                        "a live slot runs at least one container instance",
                    ));
                }
            }
        }
        // The container environment renders (no variable set twice).
        self.profile_spec()?;
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
