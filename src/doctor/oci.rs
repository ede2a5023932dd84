//! OCI configuration checks for `oci` profiles: the config file and profile (with DEFAULT
//! inheritance), the key file (readable, private, decryptable), the fingerprint, that the
//! config's region and OCIDs are well formed and agree with the calops profile, that Terraform
//! will act as the same identity as calops, and what the stack will expose (plain HTTP, alarms
//! nobody receives).

use super::Check;
use crate::oci::{config::OciConfig, keys};
use crate::profile::types::{Ocid, Region};
use crate::profile::Profile;

/// Split an error's message into (what, fix) at the `fix:` line the OCI module writes.
fn split_fix(e: &dyn std::fmt::Display) -> (String, String) {
    let text = e.to_string();
    let (what, fix) = crate::oci::split_fix(&text);
    (
        what.to_string(),
        fix.unwrap_or("see the message above").to_string(),
    )
}

pub fn checks(p: &Profile) -> Vec<Check> {
    let Some(oci) = &p.oci else { return Vec::new() };
    let mut out = stack_checks(p);
    out.extend(config_checks(p, oci));
    out
}

/// What the rendered stack exposes that the operator should know before users do.
pub fn stack_checks(p: &Profile) -> Vec<Check> {
    let mut out = Vec::new();
    out.push(match &p.load_balancer.certificate_id {
        Some(c) => Check::ok(
            "https",
            false,
            "the load balancer serves HTTPS on 443 and redirects port 80",
        )
        .found(c.as_str()),
        None => Check::warn(
            "https",
            false,
            "no [load_balancer] certificate_id: the service is served over PLAIN HTTP on port 80",
            "set [load_balancer] certificate_id to a Certificates-service certificate OCID (and hostname)",
        ),
    });
    out.push(match &p.monitoring.notification_email {
        Some(e) => Check::ok(
            "alarm-email",
            false,
            format!("alarms are sent to {}", e.as_str()),
        ),
        None => Check::warn(
            "alarm-email",
            false,
            "no [monitoring] notification_email: the alarms publish to a topic nobody is subscribed to",
            "set [monitoring] notification_email = \"ops@example.com\" (confirm the subscription e-mail OCI sends)",
        ),
    });
    out
}

/// The one identity calops and Terraform act as, or why they would differ.
fn terraform_identity(p: &Profile) -> Check {
    use crate::oci::tfprovider;
    let signing = match crate::deploy::oci::account::signing_profile(p) {
        Ok(s) => s,
        Err(e) => {
            let (what, fix) = split_fix(&e);
            return Check::fail("terraform-identity", true, what, fix);
        }
    };
    let calops = format!(
        "{} (key {}, region {}) from [{}] in {}",
        signing
            .api_key_id()
            .unwrap_or_else(|| format!("session token of [{}]", signing.profile)),
        signing.key_file.display(),
        signing.region,
        signing.profile,
        signing.config_file.display()
    );
    let process = |k: &str| std::env::var(k).ok();
    let provider_config = tfprovider::provider_config_path(&process);
    match crate::deploy::oci::account::terraform_env(&signing) {
        Ok(env) => {
            let names: Vec<&str> = env
                .vars
                .keys()
                .filter(|k| k.starts_with("OCI_"))
                .map(String::as_str)
                .collect();
            Check::ok(
                "terraform-identity",
                true,
                format!(
                    "calops and Terraform act as {calops}; Terraform gets it through {} (its own file would be {})",
                    names.join(", "),
                    provider_config
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "unknown".into())
                ),
            )
            .found(signing.api_key_id().unwrap_or_default())
        }
        Err(e) => {
            let (what, fix) = split_fix(&e);
            Check::fail(
                "terraform-identity",
                true,
                format!("calops acts as {calops}, but {what}"),
                fix,
            )
        }
    }
}

fn config_checks(p: &Profile, oci: &crate::profile::model::OciSection) -> Vec<Check> {
    let mut out = Vec::new();
    let profile = match OciConfig::load(oci.config_file.as_deref(), Some(&oci.config_profile)) {
        Ok(c) => {
            out.push(
                Check::ok(
                    "oci-config",
                    true,
                    format!("profile [{}] in {}", c.profile, c.config_file.display()),
                )
                .at(&c.config_file),
            );
            c
        }
        Err(e) => {
            let (what, fix) = split_fix(&e);
            out.push(Check::fail("oci-config", true, what, fix));
            return out;
        }
    };
    // Region and OCIDs in the OCI config.
    let mut bad = Vec::new();
    if let Err(e) = Region::parse(&profile.region) {
        bad.push(format!("region: {e}"));
    }
    if let Err(e) = Ocid::parse(&profile.tenancy, &["tenancy"]) {
        bad.push(format!("tenancy: {e}"));
    }
    if let Some(u) = &profile.user {
        if let Err(e) = Ocid::parse(u, &["user"]) {
            bad.push(format!("user: {e}"));
        }
    }
    if bad.is_empty() {
        let mut c = Check::ok(
            "oci-identity",
            true,
            format!(
                "tenancy, user and region ({}) are well formed",
                profile.region
            ),
        );
        if profile.region != oci.region.as_str() {
            c = Check::warn(
                "oci-identity",
                true,
                format!("the OCI config's region is {} but the calops profile deploys to {}", profile.region, oci.region),
                "that is allowed (calops uses the profile's region for every call); set `region` in the OCI config to silence this",
            );
        }
        out.push(c);
    } else {
        out.push(Check::fail(
            "oci-identity",
            true,
            format!(
                "[{}] in {}: {}",
                profile.profile,
                profile.config_file.display(),
                bad.join("; ")
            ),
            "fix these values in your OCI config (`oci setup config` writes them correctly)",
        ));
    }
    // The key: present, private, decryptable, and the one the config's fingerprint names.
    let key_file = profile.key_file.clone();
    if let Err(e) = keys::check_permissions(&key_file) {
        let (what, fix) = split_fix(&e);
        out.push(Check::fail("oci-key", true, what, fix).at(&key_file));
        return out;
    }
    let key = match keys::load_private_key(&key_file, profile.pass_phrase.as_ref()) {
        Ok(k) => k,
        Err(e) => {
            let (what, fix) = split_fix(&e);
            out.push(Check::fail("oci-key", true, what, fix).at(&key_file));
            return out;
        }
    };
    let actual = keys::fingerprint(&rsa::RsaPublicKey::from(&key));
    out.push(
        Check::ok(
            "oci-key",
            true,
            "API key readable by its owner only, and it decrypts",
        )
        .at(&key_file),
    );
    if profile.is_session_token() {
        out.push(
            Check::ok(
                "oci-fingerprint",
                true,
                "session-token profile: no API-key fingerprint to compare",
            )
            .found(actual),
        );
        out.push(terraform_identity(p));
        return out;
    }
    match &profile.fingerprint {
        Some(expected) => match keys::check_fingerprint(expected, &actual, &key_file) {
            Ok(()) => out.push(
                Check::ok(
                    "oci-fingerprint",
                    true,
                    format!("key fingerprint {actual} matches the config"),
                )
                .found(actual),
            ),
            Err(e) => {
                let (what, fix) = split_fix(&e);
                out.push(Check::fail("oci-fingerprint", true, what, fix).found(actual));
            }
        },
        None => out.push(Check::fail(
            "oci-fingerprint",
            true,
            "the OCI config has no `fingerprint`",
            format!("add `fingerprint={actual}` to [{}]", profile.profile),
        )),
    }
    out.push(terraform_identity(p));
    out
}
