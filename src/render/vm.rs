//! The root module of an `oci-vm` profile: network, bucket, ONE compute instance with its
//! cloud-init user data ([`super::cloudinit`]), the load balancer, IAM for instance principals,
//! alarms, and Email Delivery when the profile sends mail. Pure and deterministic like
//! [`super::render`], whose backend, lookups and modules it shares.

use super::cloudinit::{self, VmInit};
use super::input::{
    self, err, LoadBalancerInput, MonitoringInput, NetworkInput, OciInput, RenderError, StateInput,
    StorageInput,
};
use super::{embedded, num, Rendered, PLAIN_HTTP_WARNING};
use crate::profile::{Profile, Target};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The consistent device path of the data volume (attached at launch).
pub const DATA_DEVICE: &str = "/dev/oracleoci/oraclevdb";

/// The VM itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmInput {
    pub shape: String,
    pub ocpus: f64,
    pub memory_gbs: f64,
    pub boot_volume_gbs: u32,
    pub block_volume_gbs: u32,
    #[serde(default)]
    pub image_id: Option<String>,
    pub port: u16,
    pub postgres_version: String,
}

/// Everything an `oci-vm` root module is rendered from (no secrets at all).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmRenderInput {
    pub profile: String,
    #[serde(default)]
    pub terraform_version: Option<String>,
    pub oci: OciInput,
    pub state: StateInput,
    pub network: NetworkInput,
    pub storage: StorageInput,
    pub vm: VmInput,
    pub load_balancer: LoadBalancerInput,
    pub monitoring: MonitoringInput,
    /// The OCI Vault secret OCIDs of `[service.secrets]` (sorted, no duplicates): the service
    /// on the VM reads them as the instance principal, which the policy lets read exactly these.
    #[serde(default)]
    pub secret_ids: Vec<String>,
    /// `[service] mail_sender`: the approved sender (Email Delivery) the service on the VM
    /// sends from as the instance principal; none: no e-mail resources, no grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail_sender: Option<String>,
}

impl VmRenderInput {
    pub fn from_profile(
        p: &Profile,
        terraform_version: Option<String>,
    ) -> Result<VmRenderInput, RenderError> {
        if p.target != Target::OciVm {
            return Err(err(
                format!(
                    "profile `{}` has target = \"{}\", not \"oci-vm\"",
                    p.name,
                    p.target.name()
                ),
                "render it with the renderer of its target",
            ));
        }
        let Some(oci) = &p.oci else {
            return Err(err(
                format!("profile `{}` has no [oci] section", p.name),
                "add [oci] with `region` and `compartment_id`",
            ));
        };
        Ok(VmRenderInput {
            profile: p.name.clone(),
            terraform_version,
            oci: input::oci_input(oci),
            state: input::state_input(p),
            network: input::network_input(p),
            storage: input::storage_input(p),
            vm: VmInput {
                shape: p.vm.shape.name().to_string(),
                ocpus: p.vm.ocpus,
                memory_gbs: p.vm.memory_gbs,
                boot_volume_gbs: p.vm.boot_volume_gbs,
                block_volume_gbs: p.vm.block_volume_gbs,
                image_id: p.vm.image_id.as_ref().map(|o| o.as_str().to_string()),
                port: p.service.port.get(),
                postgres_version: p.database.postgres_version.clone(),
            },
            load_balancer: input::load_balancer_input(p),
            // calops runs PostgreSQL on the VM and archives its WAL: the service posts the
            // archive lag, and its alarm is rendered with the runbook's.
            monitoring: MonitoringInput {
                backup_archive_alarm: true,
                ..input::monitoring_input(p)
            },
            secret_ids: vm_secret_ids(p),
            mail_sender: p
                .service
                .mail_sender
                .as_ref()
                .map(|e| e.as_str().to_string()),
        })
    }

    /// The cloud-init inputs.
    pub fn init(&self) -> VmInit {
        VmInit {
            profile: self.profile.clone(),
            region: self.oci.region.clone(),
            bucket: self.storage.bucket_name.clone(),
            port: self.vm.port,
            postgres_version: self.vm.postgres_version.clone(),
            data_device: (self.vm.block_volume_gbs > 0).then(|| DATA_DEVICE.to_string()),
        }
    }
}

/// The Vault secrets of `[service.secrets]`, sorted, without duplicates.
fn vm_secret_ids(p: &Profile) -> Vec<String> {
    let ids: std::collections::BTreeSet<String> = p
        .service
        .secrets
        .values()
        .filter_map(|r| match r {
            crate::profile::types::SecretRef::Vault(o) => Some(o.as_str().to_string()),
            crate::profile::types::SecretRef::Env(_) => None,
        })
        .collect();
    ids.into_iter().collect()
}

/// Render the `oci-vm` root module.
pub fn render_vm(input: &VmRenderInput) -> Result<Rendered, RenderError> {
    if !["15", "16"].contains(&input.vm.postgres_version.as_str()) {
        return Err(err(
            format!(
                "[database] postgres_version = \"{}\": the VM installs PostgreSQL from Oracle Linux 9's AppStream module streams, which have 15 and 16",
                input.vm.postgres_version
            ),
            "set [database] postgres_version = \"16\" (or \"15\")",
        ));
    }
    let oci = &input.oci;
    let b = super::backend(&input.state, oci, input.terraform_version.as_deref());
    let mut warnings = b.warnings;
    if input.load_balancer.certificate_id.is_none() {
        warnings.push(PLAIN_HTTP_WARNING.into());
    }
    super::iam_warnings(oci, &mut warnings);
    let ctx = json!({
        "profile": input.profile,
        "required_version": super::hcl::quote(b.required_version),
        "backend": b.ctx,
        "pins": super::pins(oci),
    });
    let shared: Vec<(&str, &str)> = embedded::TEMPLATES
        .iter()
        .filter(|(n, _)| embedded::SHARED_TEMPLATES.contains(n))
        .copied()
        .collect();
    let mut files = super::render_templates(&shared, &ctx)?;
    files.extend(super::render_templates(embedded::VM_TEMPLATES, &ctx)?);
    for (path, text) in embedded::VM_MODULE_FILES {
        files.insert(path.to_string(), text.to_string());
    }
    files.insert(
        "cloud-init.yaml".into(),
        cloudinit::cloud_config(&input.init()).to_user_data(),
    );
    files.insert("terraform.tfvars.json".into(), tfvars(input));
    Ok(Rendered {
        files,
        backend: b.kind,
        backend_init_config: b.init_config,
        warnings,
    })
}

fn tfvars(input: &VmRenderInput) -> String {
    let mut v = super::shared_tfvars(
        &input.profile,
        &input.oci,
        &input.network,
        &input.storage,
        &input.load_balancer,
        &input.monitoring,
    );
    let vm = &input.vm;
    v.insert("service_port", json!(vm.port));
    v.insert(
        "service_readiness_path",
        json!(crate::runtime::READINESS_PATH),
    );
    v.insert("vm_shape", json!(vm.shape));
    v.insert("vm_ocpus", num(vm.ocpus));
    v.insert("vm_memory_gbs", num(vm.memory_gbs));
    v.insert("vm_boot_volume_gbs", json!(vm.boot_volume_gbs));
    v.insert("vm_block_volume_gbs", json!(vm.block_volume_gbs));
    v.insert("vm_image_id", json!(vm.image_id));
    v.insert("service_secret_ids", json!(input.secret_ids));
    v.insert(
        "metrics_namespace",
        json!(crate::runtime::telemetry::NAMESPACE),
    );
    v.insert("service_alarms", super::service_alarms(&input.monitoring));
    // null: no e-mail (no Email Delivery resources, no grant).
    v.insert("mail_sender", json!(input.mail_sender));
    let mut text = serde_json::to_string_pretty(&v).unwrap_or_default();
    text.push('\n');
    text
}
