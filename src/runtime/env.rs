//! What a container instance of the OCI stack is given: [`ContainerEnv`].
//!
//! Every variable has one source ([`EnvValue`]):
//! - a literal the renderer knows (`CALOPS_LISTEN`, the database user, the profile's
//!   `[service.environment]`);
//! - a [`StackValue`], known only to Terraform (the database endpoint, the cache endpoint, the
//!   Object Storage namespace) or per instance (the slot name, the image);
//! - a secret, given as a reference to an OCI Vault secret, never as a value.
//!
//! [`ContainerEnv::rendered`] turns it into [`RenderedEnv`], the three maps the Terraform slot
//! record carries (`iac/modules/slots` merges them per instance). A slot freezes its
//! [`RenderedEnv`] when it is staged, so a later change of this contract or of the profile
//! reaches only the next staged slot.
//!
//! Today's names are the ones the stack has always given. The service half of the OCI runtime
//! work makes `serve` parse exactly this type and changes it here, in one place: the database
//! from parts (host, port, user, database name) with `sslmode` and the CA certificate
//! PostgreSQL's connection details give, secrets as `vault:<ocid>` references instead of
//! `<NAME>_SECRET_OCID` ([`ContainerEnv::secret_variable`]), the Object Storage URL for the
//! native API, and the liveness endpoint [`LIVENESS_PATH`] that the container health check
//! probes.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Probed by the container instance's health check (failure action KILL): must not depend on
/// the database, or a database failover restarts every container.
pub const LIVENESS_PATH: &str = "/livez";
/// Probed by the load balancer: the service is ready to take requests.
pub const READINESS_PATH: &str = "/health";

/// The variable names the container gets.
pub mod var {
    pub const LISTEN: &str = "CALOPS_LISTEN";
    pub const PORT: &str = "PORT";
    pub const DATABASE_HOST: &str = "CALOPS_DATABASE_HOST";
    pub const DATABASE_PORT: &str = "CALOPS_DATABASE_PORT";
    pub const DATABASE_USER: &str = "CALOPS_DATABASE_USER";
    /// A secret: given by reference ([`super::ContainerEnv::secret_variable`]).
    pub const DATABASE_PASSWORD: &str = "DATABASE_PASSWORD";
    pub const REDIS_URL: &str = "REDIS_URL";
    pub const OBJECT_STORAGE_URL: &str = "CALOPS_OBJECT_STORAGE_URL";
    pub const SHUTDOWN_TIMEOUT: &str = "CALOPS_SHUTDOWN_TIMEOUT";
    /// Reported by `/health`, so a deploy can tell which slot answers.
    pub const SLOT: &str = "CALOPS_SLOT";
    /// Reported by `/health`, so a deploy can tell which release answers.
    pub const IMAGE: &str = "CALOPS_IMAGE";
}

/// The PostgreSQL port of OCI Database with PostgreSQL.
pub const DATABASE_PORT: u16 = 5432;
/// The Redis port of OCI Cache.
pub const CACHE_PORT: u16 = 6379;

/// A value only Terraform knows (or, for [`StackValue::is_per_instance`] ones, that each
/// instance gets from its slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StackValue {
    /// Private IP of the PostgreSQL primary endpoint.
    DatabaseHost,
    /// `rediss://<cache primary FQDN>:6379` (OCI Cache accepts TLS only).
    RedisUrl,
    /// `https://objectstorage.<region>.oraclecloud.com/n/<namespace>/b/<bucket>`.
    ObjectStorageUrl,
    /// The slot name (`blue`, `green`).
    Slot,
    /// The image the slot runs, pinned by digest.
    Image,
}

impl StackValue {
    pub const ALL: [StackValue; 5] = [
        StackValue::DatabaseHost,
        StackValue::RedisUrl,
        StackValue::ObjectStorageUrl,
        StackValue::Slot,
        StackValue::Image,
    ];

    /// The key in the slot record's `stack_environment` and in the module's `stack_values`.
    pub fn key(self) -> &'static str {
        match self {
            StackValue::DatabaseHost => "database_host",
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

    /// The root module's expression for a stack value (`None` for per-instance ones).
    pub fn hcl(self) -> Option<&'static str> {
        match self {
            StackValue::DatabaseHost => Some("module.database.endpoint"),
            StackValue::RedisUrl => Some("\"rediss://${module.cache.endpoint}:6379\""),
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
    pub graceful_shutdown_seconds: u32,
    pub database_user: &'a str,
    /// OCI Vault secret OCID of the database password.
    pub database_password_secret: &'a str,
    /// `[service.environment]`: wins over the variables above on a clash.
    pub environment: &'a BTreeMap<String, String>,
    /// `[service.secrets]`: NAME -> OCI Vault secret OCID.
    pub secrets: &'a BTreeMap<String, String>,
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
        e.set(var::DATABASE_PORT, lit(DATABASE_PORT.to_string()));
        e.set(var::DATABASE_USER, lit(p.database_user.to_string()));
        e.set(
            var::DATABASE_PASSWORD,
            EnvValue::Secret(p.database_password_secret.to_string()),
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

    /// How a secret is given to the container: today `<NAME>_SECRET_OCID=<ocid>`, which the
    /// service resolves with its resource principal.
    pub fn secret_variable(name: &str, ocid: &str) -> (String, String) {
        (format!("{name}_SECRET_OCID"), ocid.to_string())
    }

    /// The Terraform form. Fails when two variables would render to the same name (a plain
    /// `X_SECRET_OCID` beside a secret `X`).
    pub fn rendered(&self) -> Result<RenderedEnv, String> {
        let mut r = RenderedEnv::default();
        let mut seen = std::collections::BTreeSet::new();
        for (name, value) in &self.vars {
            let (var, v, from_stack) = match value {
                EnvValue::Literal(v) => (name.clone(), v.clone(), false),
                EnvValue::Stack(s) => (name.clone(), s.key().to_string(), true),
                EnvValue::Secret(ocid) => {
                    r.secret_ids.push(ocid.clone());
                    let (var, v) = ContainerEnv::secret_variable(name, ocid);
                    (var, v, false)
                }
            };
            if !seen.insert(var.clone()) {
                return Err(format!(
                    "`{var}` would be set twice in the container environment (a secret is given as `<NAME>_SECRET_OCID`)"
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

#[cfg(test)]
mod tests {
    use super::*;

    fn params<'a>(
        env: &'a BTreeMap<String, String>,
        secrets: &'a BTreeMap<String, String>,
    ) -> OciParams<'a> {
        OciParams {
            port: 3000,
            graceful_shutdown_seconds: 30,
            database_user: "calops",
            database_password_secret: "ocid1.vaultsecret.oc1..db",
            environment: env,
            secrets,
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
        assert_eq!(
            r.environment["DATABASE_PASSWORD_SECRET_OCID"],
            "ocid1.vaultsecret.oc1..db"
        );
        assert_eq!(
            r.environment["CALOPS_ADMIN_TOKEN_SECRET_OCID"],
            "ocid1.vaultsecret.oc1..admin"
        );
        assert_eq!(r.stack_environment["CALOPS_DATABASE_HOST"], "database_host");
        assert_eq!(r.stack_environment["REDIS_URL"], "redis_url");
        assert_eq!(r.stack_environment["CALOPS_SLOT"], "slot");
        assert_eq!(
            r.secret_ids,
            ["ocid1.vaultsecret.oc1..admin", "ocid1.vaultsecret.oc1..db"]
        );
        // No name is in two maps.
        assert!(r
            .environment
            .keys()
            .all(|k| !r.stack_environment.contains_key(k)));
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
        let clash =
            BTreeMap::from([("DATABASE_PASSWORD_SECRET_OCID".to_string(), "x".to_string())]);
        let e = ContainerEnv::for_oci(&params(&clash, &none))
            .rendered()
            .unwrap_err();
        assert!(e.contains("set twice"), "{e}");
    }

    #[test]
    fn stack_values_have_keys_and_expressions() {
        for v in StackValue::ALL {
            assert_eq!(StackValue::parse(v.key()), Some(v));
            assert_eq!(v.hcl().is_none(), v.is_per_instance(), "{v:?}");
        }
        assert_eq!(StackValue::parse("nope"), None);
    }
}
