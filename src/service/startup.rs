//! What `serve` does before it listens, on OCI or anywhere: read the configuration with its
//! secrets resolved (Vault through the principal the runtime contract names: the container
//! instance's resource principal, or the VM's instance principal), then check
//! that the database and Redis can be used as configured. Every failure is one problem naming
//! the variable to change and the fix; no secret is in any of them.

use crate::oci::client::OciClient;
use crate::oci::instance::{Endpoints, InstancePrincipal, InstancePrincipalError};
use crate::oci::principal::{PrincipalConfig, ResourcePrincipal};
use crate::pg::connect::{diagnose, Diagnosis};
use crate::runtime::env::{var, OciPrincipal};
use crate::service::config::{Config, RawConfig};
use crate::service::problem::Problem;
use crate::service::ratelimit::redis_conn::{self, ProbeError};
use crate::service::secrets::{self, Secrets};
use std::sync::Arc;
use std::time::Duration;

/// How long the start-up checks of the database and Redis may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// The configuration as `serve` runs with it: references resolved, everything checked.
pub async fn configure(
    raw: &RawConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Vec<Problem>> {
    let given = raw.references(env);
    let native_storage = raw.object_storage_url.as_deref().is_some_and(|u| {
        matches!(
            crate::service::objstore::Spec::parse(u, env),
            Ok(crate::service::objstore::Spec::Oci(_))
        )
    });
    // The principal is read only when something needs it, and then must be whole. Which one
    // is the runtime contract's (CALOPS_OCI_PRINCIPAL), never guessed.
    let exporter = crate::service::telemetry::Settings::from_env(env)
        .map(|s| s.is_some())
        .unwrap_or(false);
    // Mail through OCI Email Delivery's HTTPS submission signs as the same principal.
    let oci_mail = env("CALOPS_MAIL_TRANSPORT").is_some_and(|t| t.trim().starts_with("oci-email:"));
    let needed = Secrets::needs_vault(&given) || native_storage || exporter || oci_mail;
    let principal = OciPrincipal::from_env(env).map_err(|m| {
        vec![Problem {
            setting: var::OCI_PRINCIPAL,
            message: m,
        }]
    })?;
    let client = match principal {
        _ if !needed => None,
        OciPrincipal::Resource if PrincipalConfig::present(env) => {
            let principal = ResourcePrincipal::from_env(env).map_err(|e| {
                vec![Problem {
                    setting: e.variable,
                    message: format!("{}; fix: the container instance gives these variables itself (resource principal version 2.2): do not set them in the container's environment", e.message),
                }]
            })?;
            Some(OciClient::with_resource_principal(Arc::new(principal)))
        }
        OciPrincipal::Resource => None,
        OciPrincipal::Instance => {
            let principal = instance_principal(env).await.map_err(|e| {
                vec![Problem {
                    setting: var::OCI_PRINCIPAL,
                    message: format!("instance_principal: {e}"),
                }]
            })?;
            Some(OciClient::with_instance_principal(Arc::new(principal)))
        }
    };
    let oci = match client {
        Some(c) => Some(secrets::oci_client(c, env).map_err(|m| {
            vec![Problem {
                setting: "CALOPS_ENDPOINT_*",
                message: m,
            }]
        })?),
        None => None,
    };
    let resolved = Secrets::resolve(&given, env, oci.as_ref()).await;
    raw.validate_with(env, &resolved, oci)
}

/// The VM's instance principal: the metadata and auth services of `env` (the SDKs' overrides,
/// which the agent passes on), a first session token now.
async fn instance_principal(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<InstancePrincipal, InstancePrincipalError> {
    InstancePrincipal::new(Endpoints::from_env(env)?).await
}

/// A failed start-up check: the variable and what to do, on one line.
fn problem(setting: &'static str, message: String) -> Problem {
    Problem { setting, message }
}

/// Connect to the database once, as the pool will: a TLS, certificate, password or `pg_hba`
/// problem is named by its variable.
pub async fn check_database(config: &Config) -> Result<(), Problem> {
    let target = config.database.describe();
    let connected = tokio::time::timeout(CHECK_TIMEOUT, config.database.connect()).await;
    let e = match connected {
        Ok(Ok((client, conn))) => {
            drop(client);
            let _ = conn.await;
            return Ok(());
        }
        Ok(Err(e)) => e,
        Err(_) => {
            return Err(problem(
                var::DATABASE_HOST,
                format!("the database at {target} did not answer within {CHECK_TIMEOUT:?}; fix: check the host, the port and the network path (security rules) to it"),
            ))
        }
    };
    let has_ca = config.database.sslmode() == crate::runtime::env::SslMode::VerifyFull;
    if let Some(d) = diagnose(&e) {
        return Err(match d {
            Diagnosis::UntrustedCertificate(why) => problem(
                var::DATABASE_CA_CERT,
                format!("the certificate of the database at {target} is not signed by {} ({why}); fix: give the CA that signs it (on OCI: the caCertificate of the database's connection details, which the stack passes)", if has_ca { "the CA given" } else { "a trusted CA" }),
            ),
            Diagnosis::NameMismatch(why) => problem(
                var::DATABASE_HOST,
                format!("the certificate of the database at {target} is not issued for that host name ({why}); fix: connect by the name it is issued for (on OCI: the primary endpoint's FQDN)"),
            ),
            Diagnosis::Expired(why) => problem(
                var::DATABASE_CA_CERT,
                format!("the certificate of the database at {target} is expired or not yet valid ({why}); fix: check the clock, or renew the certificate"),
            ),
            Diagnosis::Tls(why) => problem(
                var::DATABASE_SSLMODE,
                format!("TLS with the database at {target} failed ({why}); fix: check that the port serves PostgreSQL with TLS, or set CALOPS_DATABASE_SSLMODE=disable for a database without TLS"),
            ),
        });
    }
    // The error and its causes ("invalid configuration: password missing").
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        return Err(match code {
            // invalid_password
            "28P01" => problem(
                var::DATABASE_PASSWORD_REF,
                format!("the database at {target} refused the password ({}); fix: check the secret CALOPS_DATABASE_PASSWORD_REF refers to", db.message()),
            ),
            // invalid_authorization_specification: pg_hba.conf refused the connection
            "28000" if config.database.sslmode() == crate::runtime::env::SslMode::Disable => problem(
                var::DATABASE_SSLMODE,
                format!("the database at {target} refused a connection without TLS ({}); fix: set CALOPS_DATABASE_SSLMODE=verify-full with CALOPS_DATABASE_CA_CERT (or require)", db.message()),
            ),
            _ => problem(
                var::DATABASE_USER,
                format!("the database at {target} refused the connection ({}: {}); fix: check the user, the database name and the server's access rules", code, db.message()),
            ),
        });
    }
    if text.contains("password missing") {
        return Err(problem(
            var::DATABASE_PASSWORD_REF,
            format!("the database at {target} asks for a password and none is given; fix: set CALOPS_DATABASE_PASSWORD_REF to env:NAME or vault:<secret OCID>"),
        ));
    }
    if text.contains("server does not support TLS") {
        return Err(problem(
            var::DATABASE_SSLMODE,
            format!("the database at {target} does not accept TLS; fix: set CALOPS_DATABASE_SSLMODE=disable, or enable TLS on the server"),
        ));
    }
    Err(problem(
        var::DATABASE_HOST,
        format!("cannot connect to the database at {target} ({text}); fix: check the host, the port and the network path to it"),
    ))
}

/// PING Redis once: down is allowed (rate limits are counted per replica until it answers),
/// configured wrong is not.
pub async fn check_redis(config: &Config) -> Result<(), Problem> {
    let Some(url) = config.redis_url.as_deref() else {
        return Ok(());
    };
    let shown = crate::service::config::redact_url(url);
    match redis_conn::probe(url, CHECK_TIMEOUT).await {
        Ok(()) => Ok(()),
        Err(ProbeError::Unreachable(why)) => {
            tracing::warn!(redis = %shown, error = %why, "Redis does not answer at start: rate limits are counted per replica until it does");
            Ok(())
        }
        Err(ProbeError::Misconfigured(why)) => {
            let fix = if url.starts_with("rediss://") {
                "if the server does not speak TLS use redis://; if its certificate is not trusted, add its CA to the system's trust store"
            } else {
                "if the server speaks TLS (OCI Cache accepts nothing else), use rediss://"
            };
            Err(problem(
                "--redis-url / REDIS_URL",
                format!("{shown} did not answer as Redis ({why}); fix: {fix}"),
            ))
        }
    }
}
