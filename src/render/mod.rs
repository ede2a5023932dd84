//! Profile (+ deployment slots) -> a Terraform root module: pure, deterministic, fast.
//!
//! [`render`] turns a [`RenderInput`] into [`Rendered`] files (the root module from the embedded
//! `templates/*.tf.hbs`, `terraform.tfvars.json`, and a copy of the plain `iac/modules`). Nothing
//! here touches the disk or runs a process except [`write::write_to`]. Same input, same bytes:
//! maps are ordered, there are no timestamps, and [`Rendered::content_hash`] covers every file.

pub mod cloudinit;
pub mod embedded;
pub mod hcl;
pub mod input;
pub mod vm;
pub mod write;

pub use input::{
    is_pinned_image, RenderError, RenderInput, Slot, SlotSpec, SlotState, StateBackend, SLOT_NAMES,
};

use handlebars::Handlebars;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Which Terraform backend stores the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// `terraform.tfstate` in the work directory.
    Local,
    /// Terraform >= 1.12's native `oci` backend (with locking).
    OciNative,
    /// The S3-compatible Object Storage endpoint (no locking).
    S3Compatible,
}

/// The rendered root module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// Relative path -> contents, in sorted order.
    pub files: BTreeMap<String, String>,
    pub backend: BackendKind,
    /// Backend settings the profile does not pin; pass them to `terraform init -backend-config`.
    pub backend_init_config: Vec<&'static str>,
    /// Things the operator should know (no state locking, plain HTTP, ...).
    pub warnings: Vec<String>,
}

impl Rendered {
    /// sha256 over the sorted file names and contents (`name\0contents\0` for each file).
    pub fn content_hash(&self) -> String {
        let mut h = Sha256::new();
        for (name, text) in &self.files {
            h.update(name.as_bytes());
            h.update([0]);
            h.update(text.as_bytes());
            h.update([0]);
        }
        hex::encode(h.finalize())
    }

    /// sha256 of one file's contents.
    pub fn file_hash(text: &str) -> String {
        hex::encode(Sha256::digest(text.as_bytes()))
    }
}

/// The contents of a `-backend-config=FILE` for `terraform init`, completing a backend whose
/// Object Storage namespace the profile does not pin (see [`Rendered::backend_init_config`]).
/// `None` when the backend needs nothing more.
pub fn backend_init_file(r: &Rendered, namespace: &str, region: &str) -> Option<String> {
    if r.backend_init_config.is_empty() {
        return None;
    }
    match r.backend {
        BackendKind::OciNative => Some(format!("namespace = {}\n", hcl::quote(namespace))),
        BackendKind::S3Compatible => Some(format!(
            "endpoints = {{\n  s3 = {}\n}}\n",
            hcl::quote(&format!(
                "https://{namespace}.compat.objectstorage.{region}.oraclecloud.com"
            ))
        )),
        BackendKind::Local => None,
    }
}

/// `major.minor` of a Terraform version string such as `1.11.4` or `v1.12.0-beta1`.
pub fn parse_terraform_version(v: &str) -> Option<(u32, u32)> {
    let v = v.trim().trim_start_matches('v');
    let mut parts = v.split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn registry() -> &'static Handlebars<'static> {
    static REG: OnceLock<Handlebars<'static>> = OnceLock::new();
    REG.get_or_init(|| {
        let mut h = Handlebars::new();
        h.set_strict_mode(true);
        h.register_escape_fn(handlebars::no_escape);
        for (name, text) in embedded::TEMPLATES.iter().chain(embedded::VM_TEMPLATES) {
            // The templates are part of the binary and covered by tests: a failure here is a
            // build defect, reported when the template is used.
            let _ = h.register_template_string(name, *text);
        }
        h
    })
}

/// A JSON number without a spurious `.0` for whole values (`2` rather than `2.0`).
pub(crate) fn num(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

/// The state backend of a root module: its kind, the template context, what `init` must be
/// told, the oldest Terraform that understands it, and warnings.
pub(crate) struct Backend {
    pub kind: BackendKind,
    pub ctx: Value,
    pub init_config: Vec<&'static str>,
    pub required_version: &'static str,
    pub warnings: Vec<String>,
}

/// The object of the Terraform state under `[state] prefix` in the state bucket (both OCI
/// backends).
pub fn state_key(prefix: &str) -> String {
    format!("{}/terraform.tfstate", prefix.trim_matches('/'))
}

pub(crate) fn backend(
    state: &input::StateInput,
    oci: &input::OciInput,
    terraform_version: Option<&str>,
) -> Backend {
    let mut warnings = Vec::new();
    let mut init_config = Vec::new();
    let state_key = state_key(&state.prefix);
    let native = terraform_version
        .and_then(parse_terraform_version)
        .is_some_and(|v| v >= (1, 12));
    let backend_kind = match state.backend {
        StateBackend::Local => BackendKind::Local,
        StateBackend::Oci if native => BackendKind::OciNative,
        StateBackend::Oci => BackendKind::S3Compatible,
    };
    let ns = oci.object_storage_namespace.as_deref();
    match backend_kind {
        BackendKind::S3Compatible => {
            warnings.push(format!(
                "state backend: Terraform {} has no native `oci` backend (needs >= 1.12), so the state uses the S3-compatible Object Storage endpoint, which has NO state locking: never run two applies at once, or upgrade Terraform",
                terraform_version.unwrap_or("(version unknown)")
            ));
            if ns.is_none() {
                init_config.push("endpoints");
            }
        }
        BackendKind::OciNative if ns.is_none() => init_config.push("namespace"),
        _ => {}
    }
    let endpoint = ns.map(|n| {
        hcl::quote(&format!(
            "https://{n}.compat.objectstorage.{}.oraclecloud.com",
            oci.region
        ))
    });
    let backend = json!({
        "local": backend_kind == BackendKind::Local,
        "oci": backend_kind == BackendKind::OciNative,
        "s3": backend_kind == BackendKind::S3Compatible,
        "bucket": hcl::quote(&state.bucket),
        "key": hcl::quote(&state_key),
        "region": hcl::quote(&oci.region),
        "config_profile": hcl::quote(&oci.config_profile),
        "namespace": ns.map(hcl::quote),
        "endpoint": endpoint,
    });
    // The oldest Terraform that understands the chosen backend: `endpoints`, `use_path_style`
    // and `skip_s3_checksum` of the s3 backend need 1.6; the native oci backend needs 1.12.
    let required_version = match backend_kind {
        BackendKind::Local => ">= 1.5.0",
        BackendKind::S3Compatible => ">= 1.6.0",
        BackendKind::OciNative => ">= 1.12.0",
    };
    Backend {
        kind: backend_kind,
        ctx: backend,
        init_config,
        required_version,
        warnings,
    }
}

/// Warnings about the IAM inputs Terraform would have to ask for.
pub(crate) fn iam_warnings(oci: &input::OciInput, warnings: &mut Vec<String>) {
    if oci.home_region.is_none() {
        warnings.push(
            "IAM: the tenancy's home region is not known, so `home_region` is left for Terraform to ask: pin `[oci] home_region` (`oci iam region-subscription list` shows it), or let `calops plan`/`deploy` look it up".into(),
        );
    }
    if oci.tenancy_id.is_none() {
        warnings.push(
            "IAM: the tenancy OCID is not known (no OCI config was read), so `tenancy_ocid` is left for Terraform to ask; `calops plan`/`deploy` take it from the OCI config they sign with".into(),
        );
    }
}

/// The `pins` of the lookups template.
pub(crate) fn pins(oci: &input::OciInput) -> Value {
    json!({
        "availability_domains": !oci.availability_domains.is_empty(),
        "object_storage_namespace": oci.object_storage_namespace.is_some(),
        "services_gateway_service_id": oci.services_gateway_service_id.is_some(),
    })
}

/// Render the root module for `input`.
pub fn render(input: &RenderInput) -> Result<Rendered, RenderError> {
    input.check()?;
    let oci = &input.oci;
    let Backend {
        kind: backend_kind,
        ctx: backend,
        init_config,
        required_version,
        mut warnings,
    } = self::backend(&input.state, oci, input.terraform_version.as_deref());

    if input.load_balancer.certificate_id.is_none() {
        warnings.push(PLAIN_HTTP_WARNING.into());
    }
    iam_warnings(oci, &mut warnings);
    if !input.slots.values().any(|s| s.state == SlotState::Active) {
        warnings.push(
            "no active slot: no container instance will take traffic (render with --image REPO@sha256:DIGEST)".into(),
        );
    }

    let ctx = json!({
        "profile": input.profile,
        "required_version": hcl::quote(required_version),
        "backend": backend,
        "stack_values": stack_values(),
        "pins": pins(oci),
    });
    let mut files = render_templates(embedded::TEMPLATES, &ctx)?;
    for (path, text) in embedded::MODULE_FILES {
        files.insert(path.to_string(), text.to_string());
    }
    files.insert("terraform.tfvars.json".into(), tfvars(input)?);

    Ok(Rendered {
        files,
        backend: backend_kind,
        backend_init_config: init_config,
        warnings,
    })
}

/// Render `templates` (name, text) with `ctx`: output name -> text. A name's `vm/` prefix
/// (the `oci-vm` root module's own templates) is not part of the output name.
pub(crate) fn render_templates(
    templates: &[(&str, &str)],
    ctx: &Value,
) -> Result<BTreeMap<String, String>, RenderError> {
    let reg = registry();
    let mut files = BTreeMap::new();
    for (name, _) in templates {
        let text = reg.render(name, ctx).map_err(|e| {
            input::err(
                format!("template {name}.hbs failed to render: {e}"),
                "this is a bug in calops; please report it with the profile (secrets are references only)",
            )
        })?;
        files.insert(name.trim_start_matches("vm/").to_string(), text);
    }
    Ok(files)
}

/// Printed (render, plan, deploy, doctor) for a profile without a certificate.
pub const PLAIN_HTTP_WARNING: &str = "load balancer: no [load_balancer] certificate_id, so the service is served over PLAIN HTTP on port 80 (no HTTPS listener, no redirect): set certificate_id to a Certificates-service certificate OCID before real users sign in";

/// The `stack_values` local of the root module, from [`crate::runtime::StackValue`].
fn stack_values() -> Value {
    let values: Vec<_> = crate::runtime::StackValue::ALL
        .iter()
        .filter_map(|v| v.hcl().map(|hcl| (v.key(), hcl)))
        .collect();
    // `terraform fmt` aligns the `=` of consecutive attributes.
    let width = values.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    values
        .into_iter()
        .map(|(k, hcl)| json!({ "key": format!("{k:width$}"), "hcl": hcl }))
        .collect()
}

/// The root variables both root modules have: profile, account, network, bucket, load
/// balancer and alarms.
pub(crate) fn shared_tfvars(
    profile: &str,
    oci: &input::OciInput,
    n: &input::NetworkInput,
    s: &input::StorageInput,
    lb: &input::LoadBalancerInput,
    m: &input::MonitoringInput,
) -> BTreeMap<&'static str, Value> {
    let mut v: BTreeMap<&str, Value> = BTreeMap::new();
    v.insert("profile", json!(profile));
    v.insert("name", json!(n.vcn_name));
    v.insert("region", json!(oci.region));
    v.insert("compartment_id", json!(oci.compartment_id));
    if let Some(x) = &oci.tenancy_id {
        v.insert("tenancy_ocid", json!(x));
    }
    if let Some(x) = &oci.home_region {
        v.insert("home_region", json!(x));
    }
    if !oci.availability_domains.is_empty() {
        v.insert("availability_domains", json!(oci.availability_domains));
    }
    if let Some(x) = &oci.object_storage_namespace {
        v.insert("object_storage_namespace", json!(x));
    }
    if let Some(x) = &oci.services_gateway_service_id {
        v.insert("services_gateway_service_id", json!(x));
    }
    v.insert("vcn_cidr", json!(n.vcn_cidr));
    v.insert("public_subnet_cidr", json!(n.public_subnet_cidr));
    v.insert("private_subnet_cidr", json!(n.private_subnet_cidr));
    v.insert("dns_label", json!(n.dns_label));
    v.insert("bucket_name", json!(s.bucket_name));
    v.insert("bucket_versioning", json!(s.versioning));
    v.insert("ics_retention_days", json!(s.ics_retention_days));
    v.insert("lb_min_bandwidth_mbps", json!(lb.min_bandwidth_mbps));
    v.insert("lb_max_bandwidth_mbps", json!(lb.max_bandwidth_mbps));
    v.insert("lb_certificate_id", json!(lb.certificate_id));
    v.insert("lb_hostname", json!(lb.hostname));
    v.insert("lb_idle_timeout_seconds", json!(lb.idle_timeout_seconds));
    v.insert("notification_email", json!(m.notification_email));
    v.insert("cpu_threshold_percent", json!(m.cpu_threshold_percent));
    v.insert("lb_5xx_threshold", json!(m.lb_5xx_threshold));
    v.insert("latency_threshold_ms", json!(m.latency_threshold_ms));
    v
}

/// The non-secret inputs of the root module. Secrets appear only as Vault secret OCIDs.
fn tfvars(input: &RenderInput) -> Result<String, RenderError> {
    let oci = &input.oci;
    let vault = |r: &str| r.strip_prefix("vault:").unwrap_or(r).to_string();
    let slots = input.resolved_slots()?;
    let profile_spec = input.profile_spec()?;
    let mut v = shared_tfvars(
        &input.profile,
        oci,
        &input.network,
        &input.storage,
        &input.load_balancer,
        &input.monitoring,
    );
    let d = &input.database;
    v.insert("db_postgres_version", json!(d.postgres_version));
    v.insert("db_shape", json!(d.shape));
    v.insert("db_ocpus", num(d.ocpus));
    v.insert("db_memory_gbs", num(d.memory_gbs));
    v.insert("db_instance_count", json!(d.instance_count));
    v.insert("db_storage_iops", json!(d.storage_iops));
    v.insert("db_admin_username", json!(d.admin_username));
    v.insert(
        "db_admin_password_secret_id",
        json!(vault(&d.admin_password)),
    );
    v.insert("db_backup_retention_days", json!(d.backup_retention_days));
    v.insert("db_backup_start", json!(d.backup_start));
    let c = &input.cache;
    v.insert("cache_node_count", json!(c.node_count));
    v.insert("cache_memory_gbs_per_node", num(c.memory_gbs_per_node));
    v.insert("cache_engine_version", json!(c.engine_version));
    let svc = &input.service;
    v.insert("image_repository", json!(svc.image_repository));
    v.insert("service_port", json!(svc.port));
    v.insert(
        "service_readiness_path",
        json!(crate::runtime::READINESS_PATH),
    );
    v.insert("service_secret_ids", json!(profile_spec.env.secret_ids));
    v.insert("slots", slots_json(&slots));
    v.insert(
        "metrics_namespace",
        json!(crate::runtime::telemetry::NAMESPACE),
    );
    v.insert("service_alarms", service_alarms(&input.monitoring));
    // null: no e-mail (no Email Delivery resources, no grant, no mail variables).
    v.insert("mail_sender", json!(svc.mail_sender));
    // serde_json may preserve insertion order (feature unification); the BTreeMap above and
    // the BTreeMaps inside are already sorted, so the output is stable either way.
    let mut text = serde_json::to_string_pretty(&v).unwrap_or_default();
    text.push('\n');
    Ok(text)
}

/// The alarms on the service's own metrics ([`crate::runtime::telemetry::alarms`]), by key.
fn service_alarms(m: &input::MonitoringInput) -> Value {
    let alarms: BTreeMap<&str, Value> =
        crate::runtime::telemetry::alarms(&m.thresholds, m.backup_archive_alarm)
            .into_iter()
            .map(|a| {
                (
                    a.key,
                    json!({
                        "namespace": crate::runtime::telemetry::NAMESPACE,
                        "query": a.query,
                        "severity": a.severity,
                        "summary": a.summary,
                        "pending_duration": a.pending_duration,
                    }),
                )
            })
            .collect();
    json!(alarms)
}

/// The slot records, with whole numbers written without a fraction (`2`, not `2.0`).
fn slots_json(slots: &BTreeMap<String, Slot>) -> Value {
    let mut v = serde_json::to_value(slots).unwrap_or_default();
    for record in v.as_object_mut().into_iter().flat_map(|m| m.values_mut()) {
        for key in ["ocpus", "memory_gbs"] {
            if let Some(x) = record.get(key).and_then(Value::as_f64) {
                record[key] = num(x);
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terraform_versions() {
        assert_eq!(parse_terraform_version("1.11.4"), Some((1, 11)));
        assert_eq!(parse_terraform_version("v1.12.0-beta1"), Some((1, 12)));
        assert_eq!(parse_terraform_version("garbage"), None);
        assert!((1, 12) > (1, 11) && (2, 0) > (1, 12));
    }

    #[test]
    fn every_embedded_template_compiles() {
        let mut h = Handlebars::new();
        for (name, text) in embedded::TEMPLATES {
            h.register_template_string(name, *text)
                .unwrap_or_else(|e| panic!("templates/{name}.hbs: {e}"));
        }
        for (name, _) in embedded::TEMPLATES {
            assert!(registry().get_template(name).is_some(), "{name}");
        }
    }

    #[test]
    fn whole_numbers_have_no_fraction() {
        assert_eq!(num(2.0).to_string(), "2");
        assert_eq!(num(0.5).to_string(), "0.5");
    }
}
