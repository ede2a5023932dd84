//! The typed profile and the rules that turn a merged table into one.

use super::node::Origin;
use super::reader::Section;
use super::types::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// Managed PostgreSQL, OCI Cache and Container Instances, deployed by Terraform slots.
    Oci,
    Local,
    /// One compute instance running the service as the local target does (`target =
    /// "oci-vm"`, the Always Free profile `free-au`), deployed by pull.
    #[serde(rename = "oci-vm")]
    OciVm,
}

impl Target {
    /// The value of `target` in a profile.
    pub fn name(self) -> &'static str {
        match self {
            Target::Oci => "oci",
            Target::Local => "local",
            Target::OciVm => "oci-vm",
        }
    }

    /// True for the targets that run on OCI (an [oci] section, a rendered stack).
    pub fn on_oci(self) -> bool {
        matches!(self, Target::Oci | Target::OciVm)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Profile {
    /// The name the profile was found by (file stem).
    pub name: String,
    /// The file it was loaded from, and the files it extends, outermost first.
    pub files: Vec<PathBuf>,
    pub target: Target,
    pub oci: Option<OciSection>,
    pub state: StateSection,
    pub network: NetworkSection,
    pub database: DatabaseSection,
    pub cache: CacheSection,
    pub storage: StorageSection,
    pub service: ServiceSection,
    pub load_balancer: LoadBalancerSection,
    pub monitoring: MonitoringSection,
    pub deploy: DeploySection,
    pub image: ImageSection,
    pub local: LocalSection,
    /// The compute instance of an `oci-vm` target.
    pub vm: VmSection,
    /// Where each value came from (dotted path -> origin), for `--verbose` and later errors.
    #[serde(skip)]
    pub origins: BTreeMap<String, Origin>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OciSection {
    pub region: Region,
    pub compartment_id: Ocid,
    /// Profile name in `~/.oci/config`.
    pub config_profile: String,
    /// Explicit path of the OCI config file (default: `OCI_CLI_CONFIG_FILE` or `~/.oci/config`).
    pub config_file: Option<PathBuf>,
    /// The tenancy's home region (IAM writes go there); `None` looks it up (Identity API).
    pub home_region: Option<Region>,
    /// Pinned availability domains (`availability_domain` or `availability_domains`); empty
    /// looks them up.
    pub availability_domains: Vec<String>,
    pub object_storage_namespace: Option<String>,
    pub services_gateway_service_id: Option<Ocid>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StateSection {
    /// `oci` (Object Storage) or `local` (a file in the work dir).
    pub backend: String,
    pub bucket: String,
    pub prefix: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct NetworkSection {
    pub vcn_name: String,
    pub vcn_cidr: Cidr,
    pub public_subnet_cidr: Cidr,
    pub private_subnet_cidr: Cidr,
    pub dns_label: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatabaseSection {
    pub postgres_version: String,
    pub shape: Shape,
    pub ocpus: f64,
    pub memory_gbs: f64,
    pub instance_count: u32,
    pub storage_iops: u32,
    pub backup_retention_days: u32,
    /// Daily backup start, `HH:MM` UTC.
    pub backup_start: String,
    /// Base backups kept whatever their age (clusters calops runs itself).
    pub backup_retention_count: u32,
    /// The longest a committed transaction waits before its WAL is archived (clusters calops
    /// runs itself; PostgreSQL's `archive_timeout`).
    pub archive_timeout_seconds: u32,
    pub admin_username: String,
    pub admin_password: Option<SecretRef>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CacheSection {
    pub node_count: u32,
    pub memory_gbs_per_node: f64,
    pub engine_version: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StorageSection {
    pub bucket_name: String,
    pub versioning: bool,
    pub ics_retention_days: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceSection {
    pub shape: Shape,
    pub ocpus: f64,
    pub memory_gbs: f64,
    pub port: Port,
    /// Container instances per deployment slot (default 1), spread over fault domains and
    /// availability domains, each its own load balancer backend.
    pub replicas: u32,
    pub image_repository: String,
    /// Non-secret environment variables.
    pub environment: BTreeMap<String, String>,
    /// Environment variables whose values are secrets, by reference.
    pub secrets: BTreeMap<String, SecretRef>,
    pub graceful_shutdown_seconds: u32,
    /// The approved sender of the service's e-mail on OCI (`mail_sender`): the stack renders
    /// an Email Delivery domain and approved sender for it, and the containers send through
    /// `SubmitRawEmail`. `None`: no e-mail.
    pub mail_sender: Option<EmailAddress>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadBalancerSection {
    pub min_bandwidth_mbps: u32,
    pub max_bandwidth_mbps: u32,
    pub hostname: Option<Hostname>,
    /// A Certificates-service certificate OCID for the HTTPS listener.
    pub certificate_id: Option<Ocid>,
    pub idle_timeout_seconds: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct MonitoringSection {
    pub cpu_threshold_percent: u32,
    /// 5xx responses per 5 minutes that raise the alarm.
    pub lb_5xx_threshold: u32,
    pub latency_threshold_ms: u32,
    pub notification_email: Option<EmailAddress>,
    /// The service's own alarms (the runbook's defaults in `profiles/base.toml`): 5xx share of
    /// requests (percent, for 5 minutes).
    pub http_5xx_percent: f64,
    /// Share of failed bookings (percent, for 15 minutes).
    pub booking_failure_percent: f64,
    /// Webhook delivery latency p95 (seconds).
    pub webhook_latency_p95_seconds: f64,
    /// Items waiting in a queue (webhooks, calendar files).
    pub queue_depth: u32,
    /// Seconds since a connected calendar's last good sync.
    pub calendar_sync_age_seconds: u32,
}

impl MonitoringSection {
    /// The thresholds of the service's alarms ([`crate::runtime::telemetry::alarms`]).
    pub fn thresholds(&self) -> crate::runtime::telemetry::Thresholds {
        crate::runtime::telemetry::Thresholds {
            http_5xx_percent: self.http_5xx_percent,
            booking_failure_percent: self.booking_failure_percent,
            webhook_latency_p95_seconds: self.webhook_latency_p95_seconds,
            queue_depth: u64::from(self.queue_depth),
            calendar_sync_age_seconds: u64::from(self.calendar_sync_age_seconds),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DeploySection {
    pub health_timeout_seconds: u32,
    pub auto_rollback: bool,
    /// `blue-green` or `recreate`.
    pub strategy: String,
    /// Keep the previous release's slot drained (instant rollback) instead of removing it.
    pub keep_previous: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageSection {
    /// `native` (cross-compile and assemble, no Docker) or `buildx`.
    pub builder: String,
    /// Base image, pinned by digest.
    pub base: String,
    pub platforms: Vec<String>,
    /// Registry credentials (for OCIR an auth token), by reference.
    pub registry_password: Option<SecretRef>,
    pub registry_username: Option<String>,
}

/// The one compute instance of an `oci-vm` target: it runs PostgreSQL, redis-server and the
/// service, and takes releases from the bucket.
#[derive(Debug, Clone, Serialize)]
pub struct VmSection {
    pub shape: Shape,
    pub ocpus: f64,
    pub memory_gbs: f64,
    /// The boot volume (the system, and PostgreSQL's data unless a block volume is added).
    pub boot_volume_gbs: u32,
    /// A block volume for PostgreSQL's data; 0: none (the data stays on the boot volume).
    pub block_volume_gbs: u32,
    /// A pinned image OCID; `None` takes the newest Oracle Linux 9 aarch64 platform image
    /// (the `oci_core_images` data source).
    pub image_id: Option<Ocid>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LocalSection {
    pub bind: IpAddr,
    pub port: Port,
    /// Use `redis-server` when it is installed.
    pub redis: bool,
}

pub const SECTIONS: &[&str] = &[
    "oci",
    "state",
    "network",
    "database",
    "cache",
    "storage",
    "service",
    "load_balancer",
    "monitoring",
    "deploy",
    "image",
    "local",
    "vm",
];

/// Read the whole profile from the merged root table. Problems accumulate in `sink`.
pub fn read(root: &Section<'_>, name: &str, files: Vec<PathBuf>) -> Option<Profile> {
    root.skip("extends");
    let target = root
        .choice("target", &["oci", "local", "oci-vm"])
        .map(|t| match t.as_str() {
            "oci" => Target::Oci,
            "oci-vm" => Target::OciVm,
            _ => Target::Local,
        });
    let on_oci = target.is_some_and(Target::on_oci);
    let oci = match (target, root.has("oci")) {
        (Some(t), _) if t.on_oci() => root.section("oci").and_then(|s| read_oci(&s, true)),
        (_, true) => root.section("oci").and_then(|s| read_oci(&s, false)),
        _ => None,
    };
    if on_oci && !root.has("oci") {
        root.invalid(
            "oci",
            "an `oci` or `oci-vm` target needs an [oci] section",
            Some("add [oci] with `region` and `compartment_id`".into()),
        );
    }
    let state = root.section("state").and_then(|s| read_state(&s, name));
    let network = root.section("network").and_then(|s| read_network(&s));
    let database = root
        .section("database")
        .and_then(|s| read_database(&s, target));
    let cache = root.section("cache").and_then(|s| read_cache(&s));
    let storage = root.section("storage").and_then(|s| read_storage(&s));
    let service = root.section("service").and_then(|s| read_service(&s));
    let load_balancer = root.section("load_balancer").and_then(|s| read_lb(&s));
    let monitoring = root.section("monitoring").and_then(|s| read_monitoring(&s));
    let deploy = root.section("deploy").and_then(|s| read_deploy(&s));
    let image = root.section("image").and_then(|s| read_image(&s));
    let local = root.section("local").and_then(|s| read_local(&s));
    let vm = root.section("vm").and_then(|s| read_vm(&s));
    let target = target?;
    Some(Profile {
        name: name.to_string(),
        files,
        target,
        oci: if target.on_oci() { Some(oci?) } else { oci },
        state: state?,
        network: network?,
        database: database?,
        cache: cache?,
        storage: storage?,
        service: service?,
        load_balancer: load_balancer?,
        monitoring: monitoring?,
        deploy: deploy?,
        image: image?,
        local: local?,
        vm: vm?,
        origins: BTreeMap::new(),
    })
}

fn read_oci(s: &Section<'_>, required: bool) -> Option<OciSection> {
    let region = s.parsed("region", required, Region::parse);
    let compartment_id = s.parsed("compartment_id", required, |v| {
        Ocid::parse(v, &["compartment", "tenancy"])
    });
    let config_profile = s
        .opt_str("config_profile")
        .unwrap_or_else(|| "DEFAULT".into());
    let config_file = s.opt_str("config_file").map(PathBuf::from);
    let home_region = s.parsed("home_region", false, Region::parse);
    let mut availability_domains = Vec::new();
    if let Some(ad) = s.opt_str("availability_domain") {
        availability_domains.push(ad);
    }
    if let Some(list) = s.str_list("availability_domains") {
        if !availability_domains.is_empty() {
            s.invalid(
                "availability_domains",
                "both `availability_domain` and `availability_domains` are set",
                Some("keep one: `availability_domains = [\"Uocm:AP-SYDNEY-1-AD-1\"]`".into()),
            );
        }
        if list.is_empty() {
            s.invalid(
                "availability_domains",
                "the list is empty",
                Some("name at least one, or remove the key to look them up".into()),
            );
        }
        availability_domains.extend(list);
    }
    for ad in &availability_domains {
        // Names look like `Uocm:AP-SYDNEY-1-AD-1`.
        if !ad.contains("-AD-") {
            s.invalid(
                "availability_domains",
                format!("`{ad}` does not look like an availability domain name"),
                Some(
                    "names look like `Uocm:AP-SYDNEY-1-AD-1` (`oci iam availability-domain list`)"
                        .into(),
                ),
            );
        }
    }
    let object_storage_namespace = s.opt_str("object_storage_namespace");
    if let Some(ns) = &object_storage_namespace {
        if ns.is_empty() || !ns.chars().all(|c| c.is_ascii_alphanumeric()) {
            s.invalid(
                "object_storage_namespace",
                format!("`{ns}` is not an Object Storage namespace (letters and digits only)"),
                Some("`oci os ns get` prints it".into()),
            );
        }
    }
    let services_gateway_service_id = s.parsed("services_gateway_service_id", false, |v| {
        Ocid::parse(v, &["service"])
    });
    s.finish_ref();
    Some(OciSection {
        region: region?,
        compartment_id: compartment_id?,
        config_profile,
        config_file,
        home_region,
        availability_domains,
        object_storage_namespace,
        services_gateway_service_id,
    })
}

fn read_state(s: &Section<'_>, profile: &str) -> Option<StateSection> {
    let backend = s.choice("backend", &["oci", "local"]);
    let bucket = s.parsed("bucket", true, bucket_name);
    let prefix = s.opt_str("prefix").unwrap_or_else(|| profile.to_string());
    s.finish_ref();
    Some(StateSection {
        backend: backend?,
        bucket: bucket?,
        prefix,
    })
}

fn read_network(s: &Section<'_>) -> Option<NetworkSection> {
    let vcn_name = s.req_str("vcn_name");
    let vcn = s.parsed("vcn_cidr", true, Cidr::parse);
    let public = s.parsed("public_subnet_cidr", true, Cidr::parse);
    let private = s.parsed("private_subnet_cidr", true, Cidr::parse);
    let dns_label = s.opt_str("dns_label");
    if let Some(l) = &dns_label {
        let ok = !l.is_empty()
            && l.len() <= 15
            && l.starts_with(|c: char| c.is_ascii_lowercase())
            && l.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !ok {
            s.invalid(
                "dns_label",
                format!("`{l}` is not a VCN DNS label"),
                Some("1 to 15 lower-case letters and digits, starting with a letter".into()),
            );
        }
    }
    if let (Some(vcn), Some(public), Some(private)) = (vcn, public, private) {
        for (key, sub) in [
            ("public_subnet_cidr", public),
            ("private_subnet_cidr", private),
        ] {
            if !vcn.contains(&sub) {
                s.invalid(
                    key,
                    format!("subnet {sub} is outside the VCN {vcn}"),
                    Some(format!("choose a block inside {vcn}, e.g. one /24 of it")),
                );
            }
        }
        if public.overlaps(&private) {
            s.invalid(
                "private_subnet_cidr",
                format!("subnet {private} overlaps the public subnet {public}"),
                Some(
                    "give the two subnets separate blocks, e.g. 10.0.0.0/24 and 10.0.1.0/24".into(),
                ),
            );
        }
    }
    s.finish_ref();
    Some(NetworkSection {
        vcn_name: vcn_name?,
        vcn_cidr: vcn?,
        public_subnet_cidr: public?,
        private_subnet_cidr: private?,
        dns_label,
    })
}

fn shape_and_size(
    s: &Section<'_>,
    table: &'static [ShapeLimits],
) -> (Option<Shape>, Option<f64>, Option<f64>) {
    let shape = s.parsed("shape", true, |v| Shape::parse(v, table));
    let ocpus = s.number("ocpus");
    let mem = s.number("memory_gbs");
    if let (Some(shape), Some(o), Some(m)) = (&shape, ocpus, mem) {
        for (key, problem, allowed) in shape.check(o, m) {
            s.invalid(key, problem, Some(format!("allowed: {allowed}")));
        }
    }
    (shape, ocpus, mem)
}

fn read_vm(s: &Section<'_>) -> Option<VmSection> {
    let (shape, ocpus, memory_gbs) = shape_and_size(s, VM_SHAPES);
    let boot_volume_gbs = s.int_in(
        "boot_volume_gbs",
        50,
        32768,
        " GB (OCI's boot volume sizes)",
    );
    let block_volume_gbs = s.opt_int("block_volume_gbs").unwrap_or(0);
    if block_volume_gbs != 0 && !(50..=32768).contains(&block_volume_gbs) {
        s.invalid(
            "block_volume_gbs",
            format!("{block_volume_gbs} GB is not a block volume size"),
            Some("allowed: 0 (no block volume: data on the boot volume) or 50 to 32768 GB".into()),
        );
    }
    let image_id = s.parsed("image_id", false, |v| Ocid::parse(v, &["image"]));
    s.finish_ref();
    Some(VmSection {
        shape: shape?,
        ocpus: ocpus?,
        memory_gbs: memory_gbs?,
        boot_volume_gbs: boot_volume_gbs? as u32,
        block_volume_gbs: block_volume_gbs.max(0) as u32,
        image_id,
    })
}

fn read_database(s: &Section<'_>, target: Option<Target>) -> Option<DatabaseSection> {
    let postgres_version = s.choice("postgres_version", &["14", "15", "16"]);
    let (shape, ocpus, memory_gbs) = shape_and_size(s, DATABASE_SHAPES);
    let instance_count = s.int_in(
        "instance_count",
        1,
        3,
        " instances (one primary, the rest read replicas)",
    );
    let storage_iops = s.opt_int("storage_iops").unwrap_or(75000);
    if ![75000, 150000, 225000, 300000].contains(&storage_iops) {
        s.invalid(
            "storage_iops",
            format!("{storage_iops} is not an OCI PostgreSQL performance tier"),
            Some("allowed: 75000, 150000, 225000, 300000".into()),
        );
    }
    let backup_retention_days = s.int_in("backup_retention_days", 1, 35, " days");
    let backup_start = s.parsed("backup_start", true, |v| {
        let ok = v.len() == 5
            && v.as_bytes()[2] == b':'
            && v[..2].parse::<u8>().map(|h| h < 24).unwrap_or(false)
            && v[3..].parse::<u8>().map(|m| m < 60).unwrap_or(false);
        if ok {
            Ok(v.to_string())
        } else {
            Err(format!(
                "`{v}` is not a time of day; write `HH:MM` (UTC), e.g. `02:00`"
            ))
        }
    });
    let backup_retention_count = s.opt_int("backup_retention_count").unwrap_or(2);
    if !(1..=100).contains(&backup_retention_count) {
        s.invalid(
            "backup_retention_count",
            format!("{backup_retention_count} base backups is out of range"),
            Some("allowed: 1 to 100".into()),
        );
    }
    let archive_timeout_seconds = s.opt_int("archive_timeout_seconds").unwrap_or(60);
    if !(1..=3600).contains(&archive_timeout_seconds) {
        s.invalid(
            "archive_timeout_seconds",
            format!("{archive_timeout_seconds} seconds is out of range"),
            Some("allowed: 1 to 3600 (60 keeps at most a minute of bookings at risk)".into()),
        );
    }
    let admin_username = s.parsed("admin_username", true, |v| {
        let ok = (1..=63).contains(&v.len())
            && v.starts_with(|c: char| c.is_ascii_lowercase())
            && v.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !["postgres", "admin", "root"].contains(&v);
        if ok { Ok(v.to_string()) } else { Err(format!("`{v}` cannot be the admin user name; use lower-case letters, digits and '_' (not postgres, admin or root)")) }
    });
    let admin_password = s.parsed("admin_password", false, SecretRef::parse);
    if target == Some(Target::Oci) {
        match &admin_password {
            Some(SecretRef::Vault(_)) => {}
            Some(SecretRef::Env(_)) => s.invalid(
                "admin_password",
                "the database password must come from OCI Vault for an `oci` target",
                Some("an `env:` value would be written into Terraform state; store it in a Vault secret and write `vault:ocid1.vaultsecret...`".into()),
            ),
            None if !s.has("admin_password") => s.invalid(
                "admin_password",
                "missing required field for an `oci` target",
                Some("add `admin_password = \"vault:ocid1.vaultsecret...\"` (an OCI Vault secret)".into()),
            ),
            None => {}
        }
    }
    s.finish_ref();
    Some(DatabaseSection {
        postgres_version: postgres_version?,
        shape: shape?,
        ocpus: ocpus?,
        memory_gbs: memory_gbs?,
        instance_count: instance_count? as u32,
        storage_iops: storage_iops as u32,
        backup_retention_days: backup_retention_days? as u32,
        backup_start: backup_start?,
        backup_retention_count: backup_retention_count as u32,
        archive_timeout_seconds: archive_timeout_seconds as u32,
        admin_username: admin_username?,
        admin_password,
    })
}

fn read_cache(s: &Section<'_>) -> Option<CacheSection> {
    let node_count = s.int_in("node_count", 1, 5, " nodes");
    let mem = s.number("memory_gbs_per_node");
    if let Some(m) = mem {
        if !(2.0..=500.0).contains(&m) {
            s.invalid(
                "memory_gbs_per_node",
                format!("{m} GB is out of range"),
                Some("allowed: 2 to 500 GB per node".into()),
            );
        }
    }
    let engine_version = s.choice("engine_version", &["REDIS_7_0", "VALKEY_7_2"]);
    s.finish_ref();
    Some(CacheSection {
        node_count: node_count? as u32,
        memory_gbs_per_node: mem?,
        engine_version: engine_version?,
    })
}

fn bucket_name(v: &str) -> Result<String, String> {
    let ok = (1..=256).contains(&v.len())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if ok {
        Ok(v.to_string())
    } else {
        Err(format!(
            "`{v}` is not a bucket name (letters, digits, '-', '_' and '.', at most 256)"
        ))
    }
}

fn read_storage(s: &Section<'_>) -> Option<StorageSection> {
    let bucket = s.parsed("bucket_name", true, bucket_name);
    let versioning = s.bool("versioning");
    let retention = s.int_in("ics_retention_days", 1, 3650, " days");
    s.finish_ref();
    Some(StorageSection {
        bucket_name: bucket?,
        versioning: versioning?,
        ics_retention_days: retention? as u32,
    })
}

/// Names of environment variables that almost certainly hold secrets.
fn looks_secret(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    [
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "API_KEY",
        "PRIVATE_KEY",
        "CREDENTIAL",
    ]
    .iter()
    .any(|w| n.contains(w))
}

fn env_name_ok(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The most container instances one slot may have (each is a load balancer backend and
/// counts against the tenancy's container instance limits).
pub const MAX_REPLICAS: i64 = 12;

fn read_service(s: &Section<'_>) -> Option<ServiceSection> {
    let (shape, ocpus, memory_gbs) = shape_and_size(s, CONTAINER_SHAPES);
    let port = s.opt_int("port").map(Port::parse);
    let port = match port {
        None => {
            s.int_in("port", 1, 65535, "");
            None
        }
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => {
            s.invalid("port", e, None);
            None
        }
    };
    let image_repository = s.parsed("image_repository", true, |v| {
        let ok = !v.is_empty() && v.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_./".contains(c)) && !v.starts_with('/') && !v.ends_with('/');
        if ok { Ok(v.to_string()) } else { Err(format!("`{v}` is not a repository path (lower-case letters, digits, '-', '_', '.', '/'), e.g. `calops/scheduler`")) }
    });
    let mut environment = BTreeMap::new();
    let sink = s.sink();
    for (k, v, origin) in s.str_map("environment").unwrap_or_default() {
        let path = format!("{}.environment.{k}", s.path);
        if !env_name_ok(&k) {
            sink.error(
                &origin,
                &path,
                format!("`{k}` is not an environment variable name"),
                Some("letters, digits and '_', not starting with a digit".into()),
            );
        } else if looks_secret(&k) {
            sink.error(
                &origin,
                &path,
                "this variable looks like a secret, and secrets are not allowed as literal values (the value is not shown)",
                Some(format!("move it to [service.secrets] as a reference: `{k} = \"env:{k}\"` or `{k} = \"vault:ocid1.vaultsecret...\"`")),
            );
        } else {
            environment.insert(k, v);
        }
    }
    let mut secrets = BTreeMap::new();
    for (k, v, origin) in s.str_map("secrets").unwrap_or_default() {
        let path = format!("{}.secrets.{k}", s.path);
        if !env_name_ok(&k) {
            sink.error(
                &origin,
                &path,
                format!("`{k}` is not an environment variable name"),
                None,
            );
            continue;
        }
        match SecretRef::parse(&v) {
            Ok(r) => {
                secrets.insert(k, r);
            }
            Err(e) => sink.error(&origin, &path, e, None),
        }
    }
    for k in secrets.keys() {
        if environment.contains_key(k) {
            s.invalid(
                "secrets",
                format!("`{k}` is set both in environment and in secrets"),
                Some("keep one".into()),
            );
        }
    }
    let graceful = s.int_in("graceful_shutdown_seconds", 0, 300, " seconds");
    let mail_sender = s.parsed("mail_sender", false, |v| {
        EmailAddress::parse(v).and_then(|e| {
            if crate::service::domain::address::is_mailbox(v) {
                Ok(e)
            } else {
                Err(format!("`{v}` is not an address mail can be sent from"))
            }
        })
    });
    let replicas = if s.has("replicas") {
        s.int_in("replicas", 1, MAX_REPLICAS, " container instances per slot")
    } else {
        Some(1)
    };
    s.finish_ref();
    Some(ServiceSection {
        shape: shape?,
        ocpus: ocpus?,
        memory_gbs: memory_gbs?,
        port: port?,
        replicas: replicas? as u32,
        image_repository: image_repository?,
        environment,
        secrets,
        graceful_shutdown_seconds: graceful? as u32,
        mail_sender,
    })
}

fn read_lb(s: &Section<'_>) -> Option<LoadBalancerSection> {
    let min = s.int_in("min_bandwidth_mbps", 10, 8000, " Mbps");
    let max = s.int_in("max_bandwidth_mbps", 10, 8000, " Mbps");
    if let (Some(a), Some(b)) = (min, max) {
        if a > b {
            s.invalid(
                "min_bandwidth_mbps",
                format!("minimum {a} Mbps is above the maximum {b} Mbps"),
                Some("make min_bandwidth_mbps <= max_bandwidth_mbps".into()),
            );
        }
    }
    let hostname = s.parsed("hostname", false, Hostname::parse);
    let certificate_id = s.parsed("certificate_id", false, |v| {
        Ocid::parse(v, &["certificate"])
    });
    let idle = s.int_in("idle_timeout_seconds", 1, 7200, " seconds");
    s.finish_ref();
    Some(LoadBalancerSection {
        min_bandwidth_mbps: min? as u32,
        max_bandwidth_mbps: max? as u32,
        hostname,
        certificate_id,
        idle_timeout_seconds: idle? as u32,
    })
}

fn read_monitoring(s: &Section<'_>) -> Option<MonitoringSection> {
    let cpu = s.int_in("cpu_threshold_percent", 1, 100, " percent");
    let e5xx = s.int_in("lb_5xx_threshold", 1, 1_000_000, " responses per 5 minutes");
    let lat = s.int_in("latency_threshold_ms", 1, 60_000, " ms");
    let email = s.parsed("notification_email", false, EmailAddress::parse);
    let e5xx_pct = number_in(s, "http_5xx_percent", 0.0, 100.0, " percent");
    let booking = number_in(s, "booking_failure_percent", 0.0, 100.0, " percent");
    let webhook = number_in(s, "webhook_latency_p95_seconds", 0.0, 3600.0, " seconds");
    let queue = s.int_in("queue_depth", 1, 10_000_000, " items");
    let calendar = s.int_in("calendar_sync_age_seconds", 60, 604_800, " seconds");
    s.finish_ref();
    Some(MonitoringSection {
        cpu_threshold_percent: cpu? as u32,
        lb_5xx_threshold: e5xx? as u32,
        latency_threshold_ms: lat? as u32,
        notification_email: email,
        http_5xx_percent: e5xx_pct?,
        booking_failure_percent: booking?,
        webhook_latency_p95_seconds: webhook?,
        queue_depth: queue? as u32,
        calendar_sync_age_seconds: calendar? as u32,
    })
}

/// A number above `lo` and at most `hi` (a threshold of 0 would alarm all the time).
fn number_in(s: &Section<'_>, key: &str, lo: f64, hi: f64, unit: &str) -> Option<f64> {
    let v = s.number(key)?;
    if !(v > lo && v <= hi) {
        s.invalid(
            key,
            format!("{v} is out of range"),
            Some(format!("allowed: more than {lo}, at most {hi}{unit}")),
        );
        return None;
    }
    Some(v)
}

fn read_deploy(s: &Section<'_>) -> Option<DeploySection> {
    let timeout = s.int_in("health_timeout_seconds", 5, 3600, " seconds");
    let auto = s.bool("auto_rollback");
    let strategy = s.choice("strategy", &["blue-green", "recreate"]);
    let keep = s.bool("keep_previous");
    s.finish_ref();
    Some(DeploySection {
        health_timeout_seconds: timeout? as u32,
        auto_rollback: auto?,
        strategy: strategy?,
        keep_previous: keep?,
    })
}

pub const PLATFORMS: &[&str] = &["linux/amd64", "linux/arm64"];

fn read_image(s: &Section<'_>) -> Option<ImageSection> {
    let builder = s.choice("builder", &["native", "buildx"]);
    let base = s.parsed("base", true, |v| {
        match v.split_once("@sha256:") {
            Some((name, d)) if !name.is_empty() && d.len() == 64 && d.chars().all(|c| c.is_ascii_hexdigit()) => Ok(v.to_string()),
            _ => Err(format!("`{v}` is not pinned by digest; write `registry/repo[:tag]@sha256:<64 hex>` so builds are reproducible")),
        }
    });
    let platforms = s.str_list("platforms");
    if let Some(ps) = &platforms {
        if ps.is_empty() {
            s.invalid(
                "platforms",
                "at least one platform is needed",
                Some(format!("allowed: {}", PLATFORMS.join(", "))),
            );
        }
        for p in ps {
            if !PLATFORMS.contains(&p.as_str()) {
                s.invalid(
                    "platforms",
                    format!("`{p}` is not a supported platform"),
                    Some(format!("allowed: {}", PLATFORMS.join(", "))),
                );
            }
        }
    } else if !s.has("platforms") {
        s.invalid(
            "platforms",
            "missing required field",
            Some("add `platforms = [\"linux/amd64\", \"linux/arm64\"]`".into()),
        );
    }
    let registry_username = s.opt_str("registry_username");
    let registry_password = s.parsed("registry_password", false, SecretRef::parse);
    s.finish_ref();
    Some(ImageSection {
        builder: builder?,
        base: base?,
        platforms: platforms?,
        registry_password,
        registry_username,
    })
}

fn read_local(s: &Section<'_>) -> Option<LocalSection> {
    let bind = s.parsed("bind", true, |v| {
        v.parse::<IpAddr>()
            .map_err(|_| format!("`{v}` is not an IP address, e.g. `127.0.0.1`"))
    });
    let port = s
        .int_in("port", 1, 65535, "")
        .and_then(|p| Port::parse(p).ok());
    let redis = s.bool("redis");
    s.finish_ref();
    Some(LocalSection {
        bind: bind?,
        port: port?,
        redis: redis?,
    })
}
