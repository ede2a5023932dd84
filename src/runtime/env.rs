//! What a container instance of the OCI stack is given: [`ContainerEnv`], the one description
//! both sides use. The renderer writes it ([`ContainerEnv::for_oci`] -> [`RenderedEnv`], the
//! Terraform slot record) and `calops serve` reads the same variables by the names in [`var`]
//! ([`DatabaseSettings::from_env`] for the database, `service::config` for the rest).
//!
//! Every variable has one source ([`EnvValue`]):
//! - a literal the renderer knows (`CALOPS_LISTEN`, the database user, the profile's
//!   `[service.environment]`);
//! - a [`StackValue`], known only to Terraform (the database endpoint, port and CA certificate,
//!   the cache URL, the Object Storage URL) or per instance (the slot name, the image);
//! - a secret, given as a reference, never as a value: secret `NAME` is the variable
//!   `NAME_REF=vault:<secret OCID>` ([`reference_variable`]), which `serve` resolves at start
//!   as the principal [`var::OCI_PRINCIPAL`] names (OCI Vault `GetSecretBundle`).
//!
//! [`ContainerEnv::rendered`] turns it into [`RenderedEnv`], the three maps the Terraform slot
//! record carries (`iac/modules/slots` merges them per instance). A slot freezes its
//! [`RenderedEnv`] when it is staged, so a later change of this contract or of the profile
//! reaches only the next staged slot.
//!
//! Besides this environment, a container instance gets the resource principal variables
//! (`OCI_RESOURCE_PRINCIPAL_VERSION=2.2`, `..._RPST`, `..._PRIVATE_PEM`, `..._REGION`) from OCI
//! itself; `crate::oci::principal` reads them.
//!
//! On the `oci-vm` target the local target starts `serve`, and the agent adds
//! [`vm_service_env`]: `CALOPS_OCI_PRINCIPAL=instance_principal`, the metrics variables and the
//! `vault:` references, so the same `serve` signs as the VM's instance principal.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Probed by the container instance's health check (failure action KILL): must not depend on
/// the database, or a database failover restarts every container.
pub const LIVENESS_PATH: &str = "/livez";
/// Probed by the load balancer: the service is ready to take requests.
pub const READINESS_PATH: &str = "/health";

/// The variable names the container gets and `serve` reads.
pub mod var {
    pub const LISTEN: &str = "CALOPS_LISTEN";
    pub const PORT: &str = "PORT";
    /// The database as one URL (local use); the OCI stack gives the parts below instead.
    pub const DATABASE_URL: &str = "DATABASE_URL";
    pub const DATABASE_HOST: &str = "CALOPS_DATABASE_HOST";
    pub const DATABASE_PORT: &str = "CALOPS_DATABASE_PORT";
    pub const DATABASE_USER: &str = "CALOPS_DATABASE_USER";
    pub const DATABASE_NAME: &str = "CALOPS_DATABASE_NAME";
    /// A secret: given by reference, as [`DATABASE_PASSWORD_REF`] ([`super::reference_variable`]).
    pub const DATABASE_PASSWORD: &str = "CALOPS_DATABASE_PASSWORD";
    pub const DATABASE_PASSWORD_REF: &str = "CALOPS_DATABASE_PASSWORD_REF";
    /// `disable`, `require` or `verify-full` ([`super::SslMode`]).
    pub const DATABASE_SSLMODE: &str = "CALOPS_DATABASE_SSLMODE";
    /// The CA certificate that signs the database's certificate: PEM text, or an absolute path.
    pub const DATABASE_CA_CERT: &str = "CALOPS_DATABASE_CA_CERT";
    pub const REDIS_URL: &str = "REDIS_URL";
    pub const OBJECT_STORAGE_URL: &str = "CALOPS_OBJECT_STORAGE_URL";
    pub const SHUTDOWN_TIMEOUT: &str = "CALOPS_SHUTDOWN_TIMEOUT";
    /// A secret: the bootstrap admin token, as [`ADMIN_TOKEN_REF`].
    pub const ADMIN_TOKEN: &str = "CALOPS_ADMIN_TOKEN";
    pub const ADMIN_TOKEN_REF: &str = "CALOPS_ADMIN_TOKEN_REF";
    /// A secret: the key that seals webhook secrets at rest, as [`WEBHOOK_SECRET_KEY_REF`].
    pub const WEBHOOK_SECRET_KEY: &str = "CALOPS_WEBHOOK_SECRET_KEY";
    pub const WEBHOOK_SECRET_KEY_REF: &str = "CALOPS_WEBHOOK_SECRET_KEY_REF";
    /// A secret: the key that signs the booking pages' links, as [`PAGE_KEY_REF`].
    pub const PAGE_KEY: &str = "CALOPS_PAGE_KEY";
    pub const PAGE_KEY_REF: &str = "CALOPS_PAGE_KEY_REF";
    /// A secret: the SMTP password (with `CALOPS_SMTP_USERNAME`), as [`SMTP_PASSWORD_REF`].
    pub const SMTP_PASSWORD: &str = "CALOPS_SMTP_PASSWORD";
    pub const SMTP_PASSWORD_REF: &str = "CALOPS_SMTP_PASSWORD_REF";
    /// Reported by `/health`, so a deploy can tell which slot answers.
    pub const SLOT: &str = "CALOPS_SLOT";
    /// Reported by `/health`, so a deploy can tell which release answers.
    pub const IMAGE: &str = "CALOPS_IMAGE";
    /// The OCI Monitoring namespace and compartment of the exporter
    /// ([`crate::runtime::telemetry::var`]).
    pub const METRICS_NAMESPACE: &str = crate::runtime::telemetry::var::NAMESPACE;
    pub const METRICS_COMPARTMENT_ID: &str = crate::runtime::telemetry::var::COMPARTMENT_ID;
    /// Who `serve` signs its OCI calls as (Vault, Monitoring, Object Storage):
    /// `resource_principal` (a container instance; the default when unset) or
    /// `instance_principal` (the `oci-vm` target's VM) ([`super::OciPrincipal`]).
    pub const OCI_PRINCIPAL: &str = "CALOPS_OCI_PRINCIPAL";
    /// The SDKs' override of the instance metadata service's base URL (read by
    /// `crate::oci::instance`; the agent passes it on to `serve` on the VM).
    pub const OCI_METADATA_BASE_URL: &str = "OCI_METADATA_BASE_URL";
    /// The SDKs' override of the auth service's base URL (likewise).
    pub const OCI_AUTH_URL: &str = "OCI_SDK_AUTH_CLIENT_REGION_URL";
    /// Where the service's e-mail goes (`oci-email:<compartment OCID>` on OCI).
    pub const MAIL_TRANSPORT: &str = "CALOPS_MAIL_TRANSPORT";
    /// The sender address of the service's e-mail (the approved sender).
    pub const MAIL_FROM: &str = "CALOPS_MAIL_FROM";
}

/// Who `serve` signs its OCI calls as, by the runtime contract ([`var::OCI_PRINCIPAL`]): the
/// environment each target gives the service says it, nothing is guessed at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OciPrincipal {
    /// The container instance's resource principal (the `OCI_RESOURCE_PRINCIPAL_*` variables
    /// OCI gives the container): the `oci` target. The default, so slots staged before this
    /// variable existed keep working.
    Resource,
    /// The compute instance's instance principal (metadata service certificates exchanged for
    /// a session token): the `oci-vm` target, set by the agent that starts the service.
    Instance,
}

impl OciPrincipal {
    pub fn as_str(self) -> &'static str {
        match self {
            OciPrincipal::Resource => "resource_principal",
            OciPrincipal::Instance => "instance_principal",
        }
    }

    /// [`var::OCI_PRINCIPAL`] from `env`; unset or empty is [`OciPrincipal::Resource`].
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<OciPrincipal, String> {
        match env(var::OCI_PRINCIPAL).as_deref().map(str::trim) {
            None | Some("") | Some("resource_principal") => Ok(OciPrincipal::Resource),
            Some("instance_principal") => Ok(OciPrincipal::Instance),
            Some(other) => Err(format!(
                "{other:?} is not a principal: use resource_principal (container instances) or instance_principal (the oci-vm target's VM)"
            )),
        }
    }
}

/// The variables of the agent's own environment that `serve` on the VM gets as they are: the
/// SDKs' metadata and auth service overrides, and `CALOPS_ENDPOINT_<SERVICE>` (private
/// endpoints, tests), so that the service reaches OCI exactly as the agent does.
pub fn vm_inherited(name: &str) -> bool {
    name == var::OCI_METADATA_BASE_URL
        || name == var::OCI_AUTH_URL
        || name.starts_with("CALOPS_ENDPOINT_")
}

/// The slot name the service on the VM reports and posts its metrics under.
pub const VM_SLOT: &str = "vm";

/// The slot and image variables of the release with artifact `digest` (`sha256:<hex>`) on the
/// VM: its metrics' `slot` and `release` dimensions (the digest's first 12 hex digits, as on
/// the container target), and what `/health` reports.
pub fn vm_release_env(digest: &str) -> [(String, String); 2] {
    let hex = digest.trim_start_matches("sha256:");
    [
        (var::SLOT.to_string(), VM_SLOT.to_string()),
        (var::IMAGE.to_string(), format!("calops@sha256:{hex}")),
    ]
}

/// What the `oci-vm` target adds to the local target's `serve` environment (pure): sign as the
/// instance principal, post metrics to Monitoring in `compartment_id`, send e-mail through
/// Email Delivery (`SubmitRawEmail` in `compartment_id`) from `mail_sender` when there is one,
/// each `vault:` secret as its `<NAME>_REF`, and the agent's endpoint variables
/// ([`vm_inherited`]) from `inherited`. A `vault:` secret `serve` does not read ([`SECRETS`])
/// is an error naming it.
pub fn vm_service_env(
    compartment_id: &str,
    mail_sender: Option<&str>,
    vault_secrets: &BTreeMap<String, String>,
    inherited: impl IntoIterator<Item = (String, String)>,
) -> Result<BTreeMap<String, String>, String> {
    let mut env = BTreeMap::new();
    env.insert(
        var::OCI_PRINCIPAL.to_string(),
        OciPrincipal::Instance.as_str().to_string(),
    );
    env.insert(
        var::METRICS_NAMESPACE.to_string(),
        crate::runtime::telemetry::NAMESPACE.to_string(),
    );
    env.insert(
        var::METRICS_COMPARTMENT_ID.to_string(),
        compartment_id.to_string(),
    );
    // E-mail through OCI Email Delivery, signed as the instance principal: no password.
    if let Some(sender) = mail_sender {
        env.insert(
            var::MAIL_TRANSPORT.to_string(),
            oci_email_transport(compartment_id),
        );
        env.insert(var::MAIL_FROM.to_string(), sender.to_string());
    }
    for (name, ocid) in vault_secrets {
        if !SECRETS.contains(&name.as_str()) {
            return Err(format!(
                "[service.secrets] {name} is a vault: reference, but calops serve resolves Vault references only for {} (as <NAME>_REF)",
                SECRETS.join(", ")
            ));
        }
        let (k, v) = ContainerEnv::secret_variable(name, ocid);
        env.insert(k, v);
    }
    for (k, v) in inherited {
        if vm_inherited(&k) {
            env.insert(k, v);
        }
    }
    Ok(env)
}

/// The public address of the service on the VM (the booking pages' links in its mail): the
/// load balancer's `[load_balancer] hostname`, over HTTPS when it has a certificate; `None`
/// without a hostname (the VM's own address reaches no one, so no links).
pub fn vm_public_url(hostname: Option<&str>, https: bool) -> Option<String> {
    let scheme = if https { "https" } else { "http" };
    hostname.map(|h| format!("{scheme}://{h}"))
}

/// [`var::MAIL_TRANSPORT`] for OCI Email Delivery's `SubmitRawEmail` in `compartment_id` (the
/// approved sender's), signed as the principal [`var::OCI_PRINCIPAL`] names.
pub fn oci_email_transport(compartment_id: &str) -> String {
    format!("oci-email:{compartment_id}")
}

/// The secrets `serve` reads (each as `<NAME>_REF`). A profile secret outside this list would
/// reach the container without anything reading it, so the renderer refuses it.
pub const SECRETS: [&str; 5] = [
    var::DATABASE_PASSWORD,
    var::ADMIN_TOKEN,
    var::WEBHOOK_SECRET_KEY,
    var::PAGE_KEY,
    var::SMTP_PASSWORD,
];

/// The variable that carries secret `name` as a reference: `<name>_REF`.
pub fn reference_variable(name: &str) -> String {
    format!("{name}_REF")
}

/// The database OCI Database with PostgreSQL creates (the service's tables go there).
pub const OCI_DATABASE_NAME: &str = "postgres";

/// A value only Terraform knows (or, for [`StackValue::is_per_instance`] ones, that each
/// instance gets from its slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StackValue {
    /// FQDN of the PostgreSQL primary endpoint (the name its certificate is issued for).
    DatabaseHost,
    /// Port of the PostgreSQL primary endpoint.
    DatabasePort,
    /// PEM of the CA that signs the database's certificate (PostgreSQL's connection details).
    DatabaseCaCertificate,
    /// `rediss://<cache primary FQDN>:<port>` (OCI Cache accepts TLS only).
    RedisUrl,
    /// `https://objectstorage.<region>.oraclecloud.com/n/<namespace>/b/<bucket>`.
    ObjectStorageUrl,
    /// The slot name (`blue`, `green`).
    Slot,
    /// The image the slot runs, pinned by digest.
    Image,
}

impl StackValue {
    pub const ALL: [StackValue; 7] = [
        StackValue::DatabaseHost,
        StackValue::DatabasePort,
        StackValue::DatabaseCaCertificate,
        StackValue::RedisUrl,
        StackValue::ObjectStorageUrl,
        StackValue::Slot,
        StackValue::Image,
    ];

    /// The key in the slot record's `stack_environment` and in the module's `stack_values`.
    pub fn key(self) -> &'static str {
        match self {
            StackValue::DatabaseHost => "database_host",
            StackValue::DatabasePort => "database_port",
            StackValue::DatabaseCaCertificate => "database_ca_certificate",
            StackValue::RedisUrl => "redis_url",
            StackValue::ObjectStorageUrl => "object_storage_url",
            StackValue::Slot => "slot",
            StackValue::Image => "image",
        }
    }

    pub fn parse(key: &str) -> Option<StackValue> {
        StackValue::ALL.into_iter().find(|v| v.key() == key)
    }

    /// Per-instance values come from the slot itself (`iac/modules/slots`), never from the
    /// stack, and are never frozen.
    pub fn is_per_instance(self) -> bool {
        matches!(self, StackValue::Slot | StackValue::Image)
    }

    /// The root module's expression for a stack value (`None` for per-instance ones). Only
    /// module outputs, variables and locals: a test evaluates these with test endpoints.
    pub fn hcl(self) -> Option<&'static str> {
        match self {
            StackValue::DatabaseHost => Some("module.database.endpoint"),
            StackValue::DatabasePort => Some("module.database.port"),
            StackValue::DatabaseCaCertificate => Some("module.database.ca_certificate"),
            StackValue::RedisUrl => {
                Some("\"rediss://${module.cache.endpoint}:${module.cache.port}\"")
            }
            StackValue::ObjectStorageUrl => Some(
                "\"https://objectstorage.${var.region}.oraclecloud.com/n/${local.object_storage_namespace}/b/${module.storage.bucket_name}\"",
            ),
            StackValue::Slot | StackValue::Image => None,
        }
    }
}

/// Where one variable's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    Literal(String),
    Stack(StackValue),
    /// An OCI Vault secret OCID: the container resolves it at run time with its resource
    /// principal; no secret value passes through Terraform.
    Secret(String),
}

/// The environment of one container, by variable name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerEnv {
    pub vars: BTreeMap<String, EnvValue>,
}

/// What the OCI stack's container environment is made from (all of it from the profile).
#[derive(Debug, Clone)]
pub struct OciParams<'a> {
    pub port: u16,
    /// The stack's compartment: the service posts its metrics there.
    pub compartment_id: &'a str,
    pub graceful_shutdown_seconds: u32,
    pub database_user: &'a str,
    /// OCI Vault secret OCID of the database password.
    pub database_password_secret: &'a str,
    /// `[service.environment]`: wins over the variables above on a clash.
    pub environment: &'a BTreeMap<String, String>,
    /// `[service.secrets]`: NAME -> OCI Vault secret OCID (NAME one of [`SECRETS`]).
    pub secrets: &'a BTreeMap<String, String>,
    /// `[service] mail_sender`: the approved sender (in the stack's compartment) the service
    /// sends its e-mail from, through Email Delivery's `SubmitRawEmail` as its resource
    /// principal; `None`: no e-mail.
    pub mail_sender: Option<&'a str>,
}

/// [`ContainerEnv`] as the Terraform slot record carries it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderedEnv {
    /// Literal variables, secret references included.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Variable -> [`StackValue::key`].
    #[serde(default)]
    pub stack_environment: BTreeMap<String, String>,
    /// Every Vault secret the container reads (sorted, no duplicates): the IAM policy grants
    /// exactly these.
    #[serde(default)]
    pub secret_ids: Vec<String>,
}

impl RenderedEnv {
    /// The environment one instance gets: the literals, then each stack variable's value from
    /// `stack` (by [`StackValue::key`]), as `iac/modules/slots` merges them. `None` names a
    /// stack key `stack` does not have.
    pub fn instance(
        &self,
        stack: &dyn Fn(&str) -> Option<String>,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut env = self.environment.clone();
        for (name, key) in &self.stack_environment {
            let v = stack(key).ok_or_else(|| format!("no stack value `{key}` for {name}"))?;
            env.insert(name.clone(), v);
        }
        Ok(env)
    }
}

impl ContainerEnv {
    /// The environment of the service on the OCI stack.
    pub fn for_oci(p: &OciParams<'_>) -> ContainerEnv {
        let mut e = ContainerEnv::default();
        let lit = |s: String| EnvValue::Literal(s);
        e.set(var::LISTEN, lit(format!("0.0.0.0:{}", p.port)));
        e.set(var::PORT, lit(p.port.to_string()));
        e.set(
            var::DATABASE_HOST,
            EnvValue::Stack(StackValue::DatabaseHost),
        );
        e.set(
            var::DATABASE_PORT,
            EnvValue::Stack(StackValue::DatabasePort),
        );
        e.set(var::DATABASE_USER, lit(p.database_user.to_string()));
        e.set(var::DATABASE_NAME, lit(OCI_DATABASE_NAME.to_string()));
        e.set(
            var::DATABASE_PASSWORD,
            EnvValue::Secret(p.database_password_secret.to_string()),
        );
        // OCI Database with PostgreSQL accepts TLS only; its certificate is checked against
        // the CA its connection details give, for the endpoint's name.
        e.set(
            var::DATABASE_SSLMODE,
            lit(SslMode::VerifyFull.as_str().into()),
        );
        e.set(
            var::DATABASE_CA_CERT,
            EnvValue::Stack(StackValue::DatabaseCaCertificate),
        );
        e.set(var::REDIS_URL, EnvValue::Stack(StackValue::RedisUrl));
        e.set(
            var::OBJECT_STORAGE_URL,
            EnvValue::Stack(StackValue::ObjectStorageUrl),
        );
        // The service stops accepting work a little before the instance is killed.
        e.set(
            var::SHUTDOWN_TIMEOUT,
            lit(format!(
                "{}s",
                p.graceful_shutdown_seconds.saturating_sub(5).max(1)
            )),
        );
        e.set(var::SLOT, EnvValue::Stack(StackValue::Slot));
        e.set(var::IMAGE, EnvValue::Stack(StackValue::Image));
        // The service's own metrics go to OCI Monitoring (signed as the resource principal).
        e.set(
            var::METRICS_NAMESPACE,
            lit(crate::runtime::telemetry::NAMESPACE.into()),
        );
        e.set(var::METRICS_COMPARTMENT_ID, lit(p.compartment_id.into()));
        e.set(
            var::OCI_PRINCIPAL,
            lit(OciPrincipal::Resource.as_str().into()),
        );
        // E-mail through OCI Email Delivery, signed as the resource principal: no password.
        if let Some(sender) = p.mail_sender {
            e.set(
                var::MAIL_TRANSPORT,
                lit(oci_email_transport(p.compartment_id)),
            );
            e.set(var::MAIL_FROM, lit(sender.into()));
        }
        for (k, v) in p.environment {
            e.set(k, lit(v.clone()));
        }
        for (k, ocid) in p.secrets {
            e.set(k, EnvValue::Secret(ocid.clone()));
        }
        e
    }

    pub fn set(&mut self, name: &str, value: EnvValue) {
        self.vars.insert(name.to_string(), value);
    }

    /// How a secret is given to the container: `<NAME>_REF=vault:<ocid>`, which the service
    /// resolves with its resource principal.
    pub fn secret_variable(name: &str, ocid: &str) -> (String, String) {
        (reference_variable(name), format!("vault:{ocid}"))
    }

    /// The Terraform form. Fails when a secret is not one `serve` reads ([`SECRETS`]), or when
    /// two variables would render to the same name (a plain `X_REF` beside a secret `X`).
    pub fn rendered(&self) -> Result<RenderedEnv, String> {
        let mut r = RenderedEnv::default();
        let mut seen = std::collections::BTreeSet::new();
        for (name, value) in &self.vars {
            let (var, v, from_stack) = match value {
                EnvValue::Literal(v) => (name.clone(), v.clone(), false),
                EnvValue::Stack(s) => (name.clone(), s.key().to_string(), true),
                EnvValue::Secret(ocid) => {
                    if !SECRETS.contains(&name.as_str()) {
                        return Err(format!(
                            "calops serve reads no secret named `{name}` (it reads {}), so the container would get it for nothing",
                            SECRETS.join(", ")
                        ));
                    }
                    r.secret_ids.push(ocid.clone());
                    let (var, v) = ContainerEnv::secret_variable(name, ocid);
                    (var, v, false)
                }
            };
            if !seen.insert(var.clone()) {
                return Err(format!(
                    "`{var}` would be set twice in the container environment (a secret NAME is given as `NAME_REF`)"
                ));
            }
            if from_stack {
                r.stack_environment.insert(var, v);
            } else {
                r.environment.insert(var, v);
            }
        }
        r.secret_ids.sort();
        r.secret_ids.dedup();
        Ok(r)
    }
}

// ---------------------------------------------------------------------------------------------
// What `serve` reads: references and the database settings, parsed from the same names.

/// A reference to a secret, never its value: `env:NAME` (an environment variable of the
/// service's process) or `vault:<secret OCID>` (an OCI Vault secret, read with the resource
/// principal).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reference {
    Env(String),
    Vault(String),
}

impl Reference {
    /// Parse a reference. The error never repeats the input: it may be a pasted secret.
    pub fn parse(text: &str) -> Result<Reference, String> {
        let t = text.trim();
        if let Some(name) = t.strip_prefix("env:") {
            let ok = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            return if ok {
                Ok(Reference::Env(name.to_string()))
            } else {
                Err("an `env:` reference needs an environment variable name, like env:CALOPS_DB_PASSWORD".into())
            };
        }
        if let Some(id) = t.strip_prefix("vault:") {
            return if id.starts_with("ocid1.vaultsecret.") && !id.contains(char::is_whitespace) {
                Ok(Reference::Vault(id.to_string()))
            } else {
                Err("a `vault:` reference needs an OCI Vault secret OCID, like vault:ocid1.vaultsecret.oc1.ap-sydney-1.<id>".into())
            };
        }
        Err("is not a reference (the value is not shown): use env:NAME, naming the environment variable that holds it, or vault:<secret OCID>".into())
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reference::Env(n) => write!(f, "env:{n}"),
            Reference::Vault(o) => write!(f, "vault:{o}"),
        }
    }
}

/// How the database connection is protected (`sslmode`, as libpq names them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP (a local database).
    Disable,
    /// TLS, the server's certificate not checked.
    Require,
    /// TLS, the certificate checked against the CA (or the public roots) and the host name.
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Require => "require",
            SslMode::VerifyFull => "verify-full",
        }
    }

    pub fn parse(text: &str) -> Result<SslMode, String> {
        match text.trim() {
            "disable" => Ok(SslMode::Disable),
            "require" => Ok(SslMode::Require),
            "verify-full" => Ok(SslMode::VerifyFull),
            other => Err(format!(
                "{other:?} is not supported: use disable, require or verify-full"
            )),
        }
    }
}

/// A certificate given as PEM text or as the absolute path of a PEM file (the convention of
/// OCI's resource principal variables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pem {
    Text(String),
    File(PathBuf),
}

impl Pem {
    pub fn parse(text: &str) -> Pem {
        let t = text.trim();
        if std::path::Path::new(t).is_absolute() {
            Pem::File(PathBuf::from(t))
        } else {
            Pem::Text(text.to_string())
        }
    }
}

/// Where the database is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    /// `DATABASE_URL` (its password, if any, stays in it).
    Url(String),
    /// `CALOPS_DATABASE_HOST`, `_PORT` (default 5432), `_USER`, `_NAME` (default = user).
    Parts {
        host: String,
        port: u16,
        user: String,
        name: String,
    },
}

/// The database settings of `serve`, from the variables in [`var`].
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseSettings {
    pub target: DatabaseTarget,
    /// `CALOPS_DATABASE_PASSWORD_REF`.
    pub password: Option<Reference>,
    /// `CALOPS_DATABASE_SSLMODE`; default `disable` (`DATABASE_URL`'s own `sslmode` also counts).
    pub sslmode: SslMode,
    /// `CALOPS_DATABASE_CA_CERT`.
    pub ca: Option<Pem>,
}

impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let target = match &self.target {
            DatabaseTarget::Url(_) => "DATABASE_URL".to_string(),
            DatabaseTarget::Parts {
                host,
                port,
                user,
                name,
            } => format!("{user}@{host}:{port}/{name}"),
        };
        f.debug_struct("DatabaseSettings")
            .field("target", &target)
            .field("password", &self.password)
            .field("sslmode", &self.sslmode)
            .field("ca", &self.ca.as_ref().map(|_| "given"))
            .finish()
    }
}

/// A problem with one variable: (variable, what is wrong and what to do).
pub type VarProblem = (&'static str, String);

impl DatabaseSettings {
    /// Parse from the environment; every problem is reported, each naming its variable.
    /// `url` is `DATABASE_URL` (or `--database-url`).
    pub fn from_env(
        url: Option<&str>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<DatabaseSettings, Vec<VarProblem>> {
        let get = |n: &str| env(n).filter(|v| !v.trim().is_empty());
        let mut problems: Vec<VarProblem> = Vec::new();
        let host = get(var::DATABASE_HOST).map(|h| h.trim().to_string());
        let url = url.map(str::trim).filter(|u| !u.is_empty());
        let mut url_sslmode = None;
        let target = match (url, host) {
            (Some(_), Some(_)) => {
                problems.push((
                    var::DATABASE_HOST,
                    "and DATABASE_URL are both set: give the database either as one URL or as CALOPS_DATABASE_HOST/PORT/USER/NAME".into(),
                ));
                None
            }
            (Some(u), None) => match split_sslmode(u) {
                Ok((rest, mode)) => {
                    url_sslmode = mode;
                    Some(DatabaseTarget::Url(rest))
                }
                Err(m) => {
                    problems.push((var::DATABASE_URL, m));
                    None
                }
            },
            (None, Some(host)) => {
                let port = match get(var::DATABASE_PORT) {
                    None => Some(5432),
                    Some(p) => match p.trim().parse::<u16>() {
                        Ok(n) if n > 0 => Some(n),
                        _ => {
                            problems.push((
                                var::DATABASE_PORT,
                                format!("{p:?} is not a port: use a number such as 5432"),
                            ));
                            None
                        }
                    },
                };
                let user = get(var::DATABASE_USER).map(|u| u.trim().to_string());
                if user.is_none() {
                    problems.push((
                        var::DATABASE_USER,
                        "required with CALOPS_DATABASE_HOST: the database user to log in as".into(),
                    ));
                }
                match (port, user) {
                    (Some(port), Some(user)) => Some(DatabaseTarget::Parts {
                        host,
                        port,
                        name: get(var::DATABASE_NAME)
                            .map(|n| n.trim().to_string())
                            .unwrap_or_else(|| user.clone()),
                        user,
                    }),
                    _ => None,
                }
            }
            (None, None) => {
                problems.push((
                    var::DATABASE_URL,
                    "required: a PostgreSQL URL such as postgres://user@127.0.0.1:5432/calops, or CALOPS_DATABASE_HOST/PORT/USER/NAME with CALOPS_DATABASE_PASSWORD_REF".into(),
                ));
                None
            }
        };
        let password = match get(var::DATABASE_PASSWORD_REF) {
            None => None,
            Some(r) => match Reference::parse(&r) {
                Ok(r) => Some(r),
                Err(m) => {
                    problems.push((var::DATABASE_PASSWORD_REF, m));
                    None
                }
            },
        };
        let sslmode = match get(var::DATABASE_SSLMODE) {
            Some(m) => SslMode::parse(&m).unwrap_or_else(|e| {
                problems.push((var::DATABASE_SSLMODE, e));
                SslMode::Disable
            }),
            None => url_sslmode.unwrap_or(SslMode::Disable),
        };
        let ca = get(var::DATABASE_CA_CERT).map(|c| Pem::parse(&c));
        if ca.is_some() && sslmode != SslMode::VerifyFull {
            problems.push((
                var::DATABASE_CA_CERT,
                format!(
                    "is given but CALOPS_DATABASE_SSLMODE is {}, which does not check certificates: set CALOPS_DATABASE_SSLMODE=verify-full",
                    sslmode.as_str()
                ),
            ));
        }
        match target {
            Some(target) if problems.is_empty() => Ok(DatabaseSettings {
                target,
                password,
                sslmode,
                ca,
            }),
            _ => Err(problems),
        }
    }
}

/// Take `sslmode=` out of a PostgreSQL URL's query (tokio-postgres knows no `verify-full`).
fn split_sslmode(u: &str) -> Result<(String, Option<SslMode>), String> {
    let scheme_ok = u.starts_with("postgres://") || u.starts_with("postgresql://");
    let parsed = url::Url::parse(u)
        .ok()
        .filter(|_| scheme_ok)
        .ok_or_else(|| {
            "is not a PostgreSQL URL (postgres://user:password@host:port/database)".to_string()
        })?;
    let mut mode = None;
    let mut rest = parsed.clone();
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter_map(|(k, v)| {
            if k == "sslmode" {
                mode = Some(v.to_string());
                None
            } else {
                Some((k.to_string(), v.to_string()))
            }
        })
        .collect();
    if kept.is_empty() {
        rest.set_query(None);
    } else {
        rest.query_pairs_mut().clear().extend_pairs(kept);
    }
    let mode = match mode {
        None => None,
        Some(m) => Some(SslMode::parse(&m).map_err(|e| format!("sslmode {e}"))?),
    };
    Ok((rest.to_string(), mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params<'a>(
        env: &'a BTreeMap<String, String>,
        secrets: &'a BTreeMap<String, String>,
    ) -> OciParams<'a> {
        OciParams {
            port: 3000,
            compartment_id: "ocid1.compartment.oc1..c",
            graceful_shutdown_seconds: 30,
            database_user: "calops",
            database_password_secret: "ocid1.vaultsecret.oc1..db",
            environment: env,
            secrets,
            mail_sender: None,
        }
    }

    #[test]
    fn the_oci_environment_names_every_source() {
        let env = BTreeMap::from([("RUST_LOG".to_string(), "info".to_string())]);
        let secrets = BTreeMap::from([(
            "CALOPS_ADMIN_TOKEN".to_string(),
            "ocid1.vaultsecret.oc1..admin".to_string(),
        )]);
        let r = ContainerEnv::for_oci(&params(&env, &secrets))
            .rendered()
            .unwrap();
        assert_eq!(r.environment["CALOPS_LISTEN"], "0.0.0.0:3000");
        assert_eq!(r.environment["CALOPS_SHUTDOWN_TIMEOUT"], "25s");
        assert_eq!(r.environment["RUST_LOG"], "info");
        assert_eq!(r.environment["CALOPS_DATABASE_SSLMODE"], "verify-full");
        assert_eq!(r.environment["CALOPS_DATABASE_NAME"], "postgres");
        assert_eq!(
            r.environment["CALOPS_DATABASE_PASSWORD_REF"],
            "vault:ocid1.vaultsecret.oc1..db"
        );
        assert_eq!(
            r.environment["CALOPS_ADMIN_TOKEN_REF"],
            "vault:ocid1.vaultsecret.oc1..admin"
        );
        assert_eq!(r.stack_environment["CALOPS_DATABASE_HOST"], "database_host");
        assert_eq!(r.stack_environment["CALOPS_DATABASE_PORT"], "database_port");
        assert_eq!(
            r.stack_environment["CALOPS_DATABASE_CA_CERT"],
            "database_ca_certificate"
        );
        assert_eq!(r.stack_environment["REDIS_URL"], "redis_url");
        assert_eq!(r.stack_environment["CALOPS_SLOT"], "slot");
        assert_eq!(
            r.secret_ids,
            ["ocid1.vaultsecret.oc1..admin", "ocid1.vaultsecret.oc1..db"]
        );
        // No name is in two maps, and no secret is given by value.
        assert!(r
            .environment
            .keys()
            .all(|k| !r.stack_environment.contains_key(k)));
        assert!(!r.environment.contains_key("CALOPS_DATABASE_PASSWORD"));
    }

    #[test]
    fn the_profile_environment_wins_and_clashes_are_refused() {
        let env = BTreeMap::from([("REDIS_URL".to_string(), "redis://elsewhere".to_string())]);
        let none = BTreeMap::new();
        let r = ContainerEnv::for_oci(&params(&env, &none))
            .rendered()
            .unwrap();
        assert_eq!(r.environment["REDIS_URL"], "redis://elsewhere");
        assert!(!r.stack_environment.contains_key("REDIS_URL"));
        let clash = BTreeMap::from([("CALOPS_DATABASE_PASSWORD_REF".to_string(), "x".to_string())]);
        let e = ContainerEnv::for_oci(&params(&clash, &none))
            .rendered()
            .unwrap_err();
        assert!(e.contains("set twice"), "{e}");
        let unknown = BTreeMap::from([(
            "SMTP_PASSWORD".to_string(),
            "ocid1.vaultsecret.oc1..smtp".to_string(),
        )]);
        let e = ContainerEnv::for_oci(&params(&none, &unknown))
            .rendered()
            .unwrap_err();
        assert!(
            e.contains("SMTP_PASSWORD") && e.contains("CALOPS_ADMIN_TOKEN"),
            "{e}"
        );
    }

    #[test]
    fn stack_values_have_keys_and_expressions() {
        for v in StackValue::ALL {
            assert_eq!(StackValue::parse(v.key()), Some(v));
            assert_eq!(v.hcl().is_none(), v.is_per_instance(), "{v:?}");
        }
        assert_eq!(StackValue::parse("nope"), None);
    }

    #[test]
    fn secret_reference_names_follow_one_rule() {
        for (secret, reference) in [
            (var::DATABASE_PASSWORD, var::DATABASE_PASSWORD_REF),
            (var::ADMIN_TOKEN, var::ADMIN_TOKEN_REF),
            (var::WEBHOOK_SECRET_KEY, var::WEBHOOK_SECRET_KEY_REF),
            (var::PAGE_KEY, var::PAGE_KEY_REF),
            (var::SMTP_PASSWORD, var::SMTP_PASSWORD_REF),
        ] {
            assert!(SECRETS.contains(&secret));
            assert_eq!(reference_variable(secret), reference);
        }
    }

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |n: &str| m.get(n).cloned()
    }

    /// What the renderer writes is what `serve` parses: the OCI environment, with stack values
    /// filled in, gives the database from parts with verify-full, the CA and the Vault password.
    #[test]
    fn serve_parses_what_the_renderer_writes() {
        let none = BTreeMap::new();
        let r = ContainerEnv::for_oci(&params(&none, &none))
            .rendered()
            .unwrap();
        let stack = |k: &str| {
            Some(
                match k {
                    "database_host" => "primary.db.example",
                    "database_port" => "5432",
                    "database_ca_certificate" => "-----BEGIN CERTIFICATE-----\nx\n",
                    _ => "other",
                }
                .to_string(),
            )
        };
        let env = r.instance(&stack).unwrap();
        let s = DatabaseSettings::from_env(None, &|n| env.get(n).cloned()).unwrap();
        assert_eq!(
            s.target,
            DatabaseTarget::Parts {
                host: "primary.db.example".into(),
                port: 5432,
                user: "calops".into(),
                name: "postgres".into()
            }
        );
        assert_eq!(s.sslmode, SslMode::VerifyFull);
        assert_eq!(
            s.password,
            Some(Reference::Vault("ocid1.vaultsecret.oc1..db".into()))
        );
        assert!(matches!(s.ca, Some(Pem::Text(ref t)) if t.starts_with("-----BEGIN")));
        assert!(r
            .instance(&|_| None)
            .unwrap_err()
            .contains("no stack value"));
    }

    #[test]
    fn database_settings_report_each_problem_by_variable() {
        let e = DatabaseSettings::from_env(None, &lookup(&[])).unwrap_err();
        assert_eq!(e[0].0, "DATABASE_URL");
        let e = DatabaseSettings::from_env(
            Some("postgres://u@h/db"),
            &lookup(&[("CALOPS_DATABASE_HOST", "h")]),
        )
        .unwrap_err();
        assert_eq!(e[0].0, "CALOPS_DATABASE_HOST");
        let e = DatabaseSettings::from_env(
            None,
            &lookup(&[
                ("CALOPS_DATABASE_HOST", "h"),
                ("CALOPS_DATABASE_PORT", "x"),
                ("CALOPS_DATABASE_PASSWORD_REF", "hunter2"),
                ("CALOPS_DATABASE_SSLMODE", "prefer"),
            ]),
        )
        .unwrap_err();
        let vars: Vec<&str> = e.iter().map(|p| p.0).collect();
        assert_eq!(
            vars,
            [
                "CALOPS_DATABASE_PORT",
                "CALOPS_DATABASE_USER",
                "CALOPS_DATABASE_PASSWORD_REF",
                "CALOPS_DATABASE_SSLMODE"
            ]
        );
        assert!(!format!("{e:?}").contains("hunter2"));
        // A CA without verify-full would be silently unused.
        let e = DatabaseSettings::from_env(
            Some("postgres://u@h/db"),
            &lookup(&[("CALOPS_DATABASE_CA_CERT", "/etc/ca.pem")]),
        )
        .unwrap_err();
        assert_eq!(e[0].0, "CALOPS_DATABASE_CA_CERT");
        // The URL's own sslmode counts, and leaves the URL.
        let s = DatabaseSettings::from_env(
            Some("postgres://u:pw@h:5433/db?sslmode=verify-full&application_name=x"),
            &lookup(&[("CALOPS_DATABASE_CA_CERT", "/etc/ca.pem")]),
        )
        .unwrap();
        assert_eq!(s.sslmode, SslMode::VerifyFull);
        assert_eq!(s.ca, Some(Pem::File("/etc/ca.pem".into())));
        assert_eq!(
            s.target,
            DatabaseTarget::Url("postgres://u:pw@h:5433/db?application_name=x".into())
        );
        assert!(!format!("{s:?}").contains("pw"));
    }

    #[test]
    fn references_parse_without_echoing_values() {
        assert_eq!(
            Reference::parse("env:DB_PW").unwrap(),
            Reference::Env("DB_PW".into())
        );
        assert_eq!(
            Reference::parse("vault:ocid1.vaultsecret.oc1.ap-sydney-1.abc").unwrap(),
            Reference::Vault("ocid1.vaultsecret.oc1.ap-sydney-1.abc".into())
        );
        for bad in ["hunter2", "env:", "vault:ocid1.user.oc1..x", "env:1X"] {
            let e = Reference::parse(bad).unwrap_err();
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn the_principal_is_the_contracts_and_the_vm_signs_as_its_instance() {
        let none = |_: &str| None;
        assert_eq!(OciPrincipal::from_env(&none), Ok(OciPrincipal::Resource));
        let given =
            |v: &'static str| move |n: &str| (n == var::OCI_PRINCIPAL).then(|| v.to_string());
        assert_eq!(
            OciPrincipal::from_env(&given("instance_principal")),
            Ok(OciPrincipal::Instance)
        );
        assert_eq!(
            OciPrincipal::from_env(&given("resource_principal")),
            Ok(OciPrincipal::Resource)
        );
        assert!(OciPrincipal::from_env(&given("api_key"))
            .unwrap_err()
            .contains("instance_principal"));
        // The container target says so explicitly.
        let env = ContainerEnv::for_oci(&params(&BTreeMap::new(), &BTreeMap::new()));
        assert_eq!(
            env.vars[var::OCI_PRINCIPAL],
            EnvValue::Literal("resource_principal".into())
        );
        // The VM: instance principal, metrics on, secrets by reference, the agent's endpoints.
        let secrets = BTreeMap::from([(
            var::PAGE_KEY.to_string(),
            "ocid1.vaultsecret.oc1..p".to_string(),
        )]);
        let inherited = [
            ("OCI_METADATA_BASE_URL", "http://127.0.0.1:1/opc/v2"),
            ("OCI_SDK_AUTH_CLIENT_REGION_URL", "http://127.0.0.1:2"),
            ("CALOPS_ENDPOINT_SECRETS", "http://127.0.0.1:3"),
            ("CALOPS_BUCKET", "not passed on"),
            ("HOME", "/root"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let vm = vm_service_env("ocid1.compartment.oc1..c", None, &secrets, inherited).unwrap();
        let keys: Vec<&str> = vm.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "CALOPS_ENDPOINT_SECRETS",
                "CALOPS_METRICS_COMPARTMENT_ID",
                "CALOPS_METRICS_NAMESPACE",
                "CALOPS_OCI_PRINCIPAL",
                "CALOPS_PAGE_KEY_REF",
                "OCI_METADATA_BASE_URL",
                "OCI_SDK_AUTH_CLIENT_REGION_URL",
            ]
        );
        assert_eq!(vm["CALOPS_OCI_PRINCIPAL"], "instance_principal");
        assert_eq!(vm["CALOPS_PAGE_KEY_REF"], "vault:ocid1.vaultsecret.oc1..p");
        let env = |n: &str| vm.get(n).cloned();
        assert_eq!(OciPrincipal::from_env(&env), Ok(OciPrincipal::Instance));
        let odd = BTreeMap::from([(
            "MY_TOKEN".to_string(),
            "ocid1.vaultsecret.oc1..x".to_string(),
        )]);
        let e = vm_service_env("ocid1.compartment.oc1..c", None, &odd, []).unwrap_err();
        assert!(
            e.contains("MY_TOKEN") && e.contains("CALOPS_PAGE_KEY"),
            "{e}"
        );
        // Without [service] mail_sender the VM's env names no transport (the local target's
        // Maildir default stays); with it, Email Delivery in the stack's compartment as the
        // container target has it, signed as the instance principal.
        assert!(!vm.contains_key(var::MAIL_TRANSPORT) && !vm.contains_key(var::MAIL_FROM));
        let mail = vm_service_env(
            "ocid1.compartment.oc1..c",
            Some("bookings@example.com"),
            &BTreeMap::new(),
            [],
        )
        .unwrap();
        assert_eq!(
            mail[var::MAIL_TRANSPORT],
            "oci-email:ocid1.compartment.oc1..c"
        );
        assert_eq!(mail[var::MAIL_FROM], "bookings@example.com");
        assert_eq!(mail[var::OCI_PRINCIPAL], "instance_principal");
        assert_eq!(
            vm_public_url(Some("book.example.com.au"), true).as_deref(),
            Some("https://book.example.com.au")
        );
        assert_eq!(
            vm_public_url(Some("book.example.com.au"), false).as_deref(),
            Some("http://book.example.com.au")
        );
        assert_eq!(vm_public_url(None, true), None);
        let [slot, image] = vm_release_env("sha256:0123456789abcdef00");
        assert_eq!(slot, (var::SLOT.to_string(), VM_SLOT.to_string()));
        assert_eq!(image.1, "calops@sha256:0123456789abcdef00");
    }
}
