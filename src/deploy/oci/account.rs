//! One identity for calops and Terraform, and what the stack needs to know about the tenancy.
//!
//! - [`signing_profile`]: the OCI config profile calops signs with (the profile's
//!   `[oci] config_file` / `config_profile`, or `OCI_CLI_CONFIG_FILE` / `OCI_CLI_PROFILE`), in
//!   the calops profile's region: every call and the Terraform provider use `[oci] region`.
//! - [`terraform_env`]: the same identity for Terraform's OCI provider, through the provider's
//!   own environment variables ([`crate::oci::tfprovider`]); refused when a variable in the
//!   shell would make the provider use another one.
//! - [`account`]: the tenancy OCID (from that profile) and its home region (pinned in
//!   `[oci] home_region`, or from the Identity API), where IAM writes go.

use super::stack::Account;
use crate::error::actionable;
use crate::oci::client::OciClient;
use crate::oci::config::{OciConfig, OciProfile};
use crate::oci::tfprovider::{self, ProviderEnv};
use crate::profile::Profile;
use crate::terraform::command::{EnvSnapshot, ExtraEnv};

/// The OCI config profile calops signs with for `profile`, with the calops profile's region.
pub fn signing_profile(profile: &Profile) -> anyhow::Result<OciProfile> {
    let oci = profile.oci.as_ref().ok_or_else(|| {
        actionable(
            format!("profile `{}` has no [oci] section", profile.name),
            "add [oci] with `region` and `compartment_id`",
        )
    })?;
    let mut cfg = OciConfig::load(oci.config_file.as_deref(), Some(&oci.config_profile))?;
    cfg.region = oci.region.as_str().to_string();
    Ok(cfg)
}

/// The signed client for `profile` (endpoint overrides from `CALOPS_ENDPOINT_*`).
pub fn client(profile: &Profile) -> anyhow::Result<OciClient> {
    Ok(OciClient::from_profile(&signing_profile(profile)?)?)
}

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The environment that makes Terraform's OCI provider act as `signing` (see
/// [`crate::oci::tfprovider`]), checked against what the provider would then resolve.
pub fn terraform_env(signing: &OciProfile) -> anyhow::Result<ProviderEnv> {
    let provider_config = tfprovider::provider_config_path(&process_env);
    let env = tfprovider::provider_env(signing, provider_config.as_deref())?;
    let conflicts = tfprovider::conflicting_env(&process_env, &env);
    if !conflicts.is_empty() {
        return Err(actionable(
            format!(
                "{} in the environment would make Terraform's OCI provider use another identity than calops ({})",
                conflicts.join(", "),
                signing.api_key_id().unwrap_or_else(|| signing.profile.clone())
            ),
            format!("unset {} (calops gives Terraform its identity itself)", conflicts.join(" ")),
        ));
    }
    let seen = |name: &str| env.vars.get(name).cloned().or_else(|| process_env(name));
    let tf = tfprovider::resolve(&seen, provider_config.as_deref(), &signing.region)?;
    let diff = tfprovider::differences(signing, &signing.region, &tf);
    if !diff.is_empty() {
        return Err(actionable(
            format!(
                "Terraform's OCI provider would act as another identity than calops: {}",
                diff.join("; ")
            ),
            "run `calops doctor --profile ...` to see both, and unset the variables it names",
        ));
    }
    Ok(env)
}

/// The process environment for Terraform, with `env` added.
pub fn snapshot_with(env: &ProviderEnv) -> EnvSnapshot {
    EnvSnapshot {
        extra: ExtraEnv(env.vars.clone()),
        ..EnvSnapshot::from_process()
    }
}

/// The tenancy and its home region: the pin, or the Identity API through `client` (`None`
/// makes no call, and leaves an unpinned home region unknown).
pub async fn account(
    profile: &Profile,
    signing: &OciProfile,
    client: Option<&OciClient>,
) -> anyhow::Result<Account> {
    let pinned = profile
        .oci
        .as_ref()
        .and_then(|o| o.home_region.as_ref())
        .map(|r| r.as_str().to_string());
    let home_region = match (pinned, client) {
        (Some(r), _) => Some(r),
        (None, Some(c)) => Some(
            c.identity()
                .home_region(&signing.tenancy)
                .await
                .map_err(|e| {
                    actionable(
                        format!("could not look up the tenancy's home region (IAM writes go there): {e}"),
                        "pin it in the profile: [oci] home_region = \"...\" (`oci iam region-subscription list` shows the one with is-home-region true)",
                    )
                })?,
        ),
        (None, None) => None,
    };
    Ok(Account {
        tenancy_id: Some(signing.tenancy.clone()),
        home_region,
    })
}
