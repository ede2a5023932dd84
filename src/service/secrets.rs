//! The service's secrets, resolved once at start from their references: each secret setting
//! (`CALOPS_DATABASE_PASSWORD_REF`, `CALOPS_ADMIN_TOKEN_REF`, `CALOPS_WEBHOOK_SECRET_KEY_REF`,
//! `CALOPS_PAGE_KEY_REF`, `CALOPS_SMTP_PASSWORD_REF`) holds `env:NAME` (an environment variable of this process) or `vault:<secret OCID>` (an OCI
//! Vault secret, read with GetSecretBundle as the principal the runtime contract names:
//! the container instance's resource principal, or the `oci-vm` target's instance principal).
//!
//! A value never reaches a log line, a message, `/health` or a child process (the service
//! starts none); every problem names the setting and says what to do.

use crate::oci::client::{OciClient, OciError};
use crate::oci::vault::SecretValue;
use crate::runtime::env::{var, Reference};
use crate::service::problem::Problem;
use std::collections::BTreeMap;

/// The secret settings `serve` reads, by variable.
pub const SETTINGS: [&str; 5] = [
    var::DATABASE_PASSWORD_REF,
    var::ADMIN_TOKEN_REF,
    var::WEBHOOK_SECRET_KEY_REF,
    var::PAGE_KEY_REF,
    var::SMTP_PASSWORD_REF,
];

/// The references given, by setting. `admin_token_ref` is the flag's value (or its variable's).
pub fn given(
    admin_token_ref: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<(&'static str, String)> {
    SETTINGS
        .into_iter()
        .filter_map(|setting| {
            let v = if setting == var::ADMIN_TOKEN_REF {
                admin_token_ref.map(str::to_string)
            } else {
                env(setting)
            };
            v.map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .map(|v| (setting, v))
        })
        .collect()
}

/// Resolved secrets, by setting, and what could not be resolved.
#[derive(Default)]
pub struct Secrets {
    values: BTreeMap<&'static str, SecretValue>,
    pub problems: Vec<Problem>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("resolved", &self.values.keys().collect::<Vec<_>>())
            .field("problems", &self.problems)
            .finish()
    }
}

impl Secrets {
    /// The value of `setting`, when it was given and resolved.
    pub fn get(&self, setting: &str) -> Option<&str> {
        self.values.get(setting).map(SecretValue::expose)
    }

    /// True when `given` has a Vault reference (which needs the resource principal).
    pub fn needs_vault(given: &[(&'static str, String)]) -> bool {
        given
            .iter()
            .any(|(_, r)| matches!(Reference::parse(r), Ok(Reference::Vault(_))))
    }

    /// Resolve every reference: `env:` ones from `env`, `vault:` ones through `vault` (all at
    /// once). Without a client, a Vault reference is a problem.
    pub async fn resolve(
        given: &[(&'static str, String)],
        env: &dyn Fn(&str) -> Option<String>,
        vault: Option<&OciClient>,
    ) -> Secrets {
        let mut s = Secrets::default();
        let mut fetch = Vec::new();
        for (setting, text) in given {
            match Reference::parse(text) {
                Err(m) => s.problem(setting, m),
                Ok(Reference::Env(name)) => match env(&name).filter(|v| !v.trim().is_empty()) {
                    Some(v) => {
                        s.values.insert(setting, SecretValue::new(v.trim()));
                    }
                    None => s.problem(
                        setting,
                        format!("refers to environment variable {name}, which is not set; fix: set {name}, or refer to an OCI Vault secret (vault:<secret OCID>)"),
                    ),
                },
                Ok(Reference::Vault(ocid)) => match vault {
                    Some(client) => fetch.push(async move {
                        (*setting, ocid.clone(), client.vault().secret_bundle(&ocid).await)
                    }),
                    None => s.problem(
                        setting,
                        "is an OCI Vault reference, which needs the container instance's resource principal (OCI_RESOURCE_PRINCIPAL_VERSION and the rest are not set); fix: run on an OCI container instance, or use env:NAME".into(),
                    ),
                },
            }
        }
        for (setting, ocid, got) in futures::future::join_all(fetch).await {
            match got {
                Ok(v) => {
                    s.values.insert(setting, v);
                }
                Err(e) => s.problem(setting, vault_problem(&ocid, &e)),
            }
        }
        s
    }

    /// [`Self::resolve`] for `env:` references only (no Vault), synchronously.
    pub fn resolve_env(
        given: &[(&'static str, String)],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Secrets {
        futures::executor::block_on(Secrets::resolve(given, env, None))
    }

    fn problem(&mut self, setting: &'static str, message: String) {
        self.problems.push(Problem { setting, message });
    }
}

/// What Vault's answer means, and what to do.
fn vault_problem(ocid: &str, e: &OciError) -> String {
    match (e.status(), e.code()) {
        (Some(404), code) => format!(
            "OCI Vault has no secret {ocid} that this service may read (404 {}); fix: check the OCID, and that the stack's policy lets its dynamic group (the container instances, or the oci-vm target's VM) `read secret-bundles` on it (calops writes that grant for every secret of the profile when the stack is applied)",
            code.unwrap_or("NotAuthorizedOrNotFound")
        ),
        (Some(401), _) => format!(
            "OCI Vault refused the service's signature reading {ocid} (401, also after renewing the token); fix: check the clock, and that the container instance runs with its resource principal enabled (on the oci-vm target: that the VM is in the stack's dynamic group)"
        ),
        (Some(status), code) => format!(
            "OCI Vault answered {status} {} reading {ocid}; fix: try again, or check the secret in the console",
            code.unwrap_or_default()
        ),
        (None, _) => format!(
            "reading {ocid} from OCI Vault failed: {}; fix: check the network path to the Vault endpoint (the service gateway of the private subnet)",
            e.to_string().lines().next().unwrap_or_default()
        ),
    }
}

/// The client the service calls OCI with: `client` (signed as the runtime contract's
/// principal), with any `CALOPS_ENDPOINT_<SERVICE>` override from `env` (private endpoints,
/// tests) and the service's retry policy.
pub fn oci_client(
    client: Result<OciClient, OciError>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<OciClient, String> {
    client
        .and_then(|c| c.with_endpoint_overrides(env))
        .map(|c| {
            c.with_retry_policy(crate::oci::client::RetryPolicy {
                max_attempts: 3,
                base_delay: std::time::Duration::from_millis(200),
                max_delay: std::time::Duration::from_secs(2),
                max_total: std::time::Duration::from_secs(20),
            })
        })
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_references_resolve_and_problems_name_the_setting() {
        let env = |n: &str| match n {
            "CALOPS_DATABASE_PASSWORD_REF" => Some("env:DB_PW".to_string()),
            "CALOPS_WEBHOOK_SECRET_KEY_REF" => Some("vault:ocid1.vaultsecret.oc1..k".to_string()),
            "DB_PW" => Some("s3cret".to_string()),
            _ => None,
        };
        let g = given(Some("hunter2-not-a-ref"), &env);
        assert_eq!(g.len(), 3);
        assert!(Secrets::needs_vault(&g));
        let s = Secrets::resolve_env(&g, &env);
        assert_eq!(s.get(var::DATABASE_PASSWORD_REF), Some("s3cret"));
        let settings: Vec<&str> = s.problems.iter().map(|p| p.setting).collect();
        assert_eq!(
            settings,
            [var::ADMIN_TOKEN_REF, var::WEBHOOK_SECRET_KEY_REF]
        );
        let shown = format!("{s:?} {:?}", s.problems);
        assert!(
            !shown.contains("s3cret") && !shown.contains("hunter2"),
            "{shown}"
        );
        assert!(s.problems[1].message.contains("resource principal"));
    }
}
