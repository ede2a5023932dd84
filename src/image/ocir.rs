//! OCIR credentials from an OCI API key: a registry token fetched with the signed OCI API call
//! (`GET https://<registry>/20180419/docker/token`, see [`crate::oci::registry`]), used as
//! `BEARER_TOKEN` / token — the same pair `docker login -u BEARER_TOKEN` takes. No OCIR auth
//! token has to be created or stored.
//!
//! Selection ([`choose`], pure): credentials given explicitly (environment variables, a named
//! docker config) always win; with the default source, a `docker login` entry for the registry
//! wins; otherwise, for an OCIR host (`*.ocir.io`, `ocir.<region>.oci.oraclecloud.com`) with an
//! OCI config profile available, the token is fetched.

use super::auth::{self, CredentialSource, Credentials};
use crate::error::actionable;
use crate::oci::client::{OciClient, Service};
use crate::oci::config::{OciConfig, OciProfile};
use std::path::PathBuf;
use url::Url;

/// The username OCIR accepts with a token fetched through the OCI API.
pub const BEARER_USERNAME: &str = "BEARER_TOKEN";

/// Which OCI config profile signs the token request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OciKeySource {
    /// The OCI config file (default `$OCI_CLI_CONFIG_FILE`, else `~/.oci/config`).
    pub config_file: Option<PathBuf>,
    /// The profile (default `$OCI_CLI_PROFILE`, else `DEFAULT`).
    pub profile: Option<String>,
    /// Where to ask for the token instead of `https://<registry>` (private endpoints, tests).
    /// `CALOPS_ENDPOINT_REGISTRY` does the same from the environment.
    pub token_endpoint: Option<Url>,
}

/// True for Oracle Cloud's container registry hosts.
pub fn is_ocir(registry: &str) -> bool {
    let host = registry
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(registry, |(h, _)| h)
        .to_ascii_lowercase();
    host.ends_with(".ocir.io") || (host.starts_with("ocir.") && host.ends_with(".oraclecloud.com"))
}

/// What to do for one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// Use these static credentials (or none: anonymous).
    Static(Option<Credentials>),
    /// Fetch an OCIR token signed with this OCI profile.
    OciToken(OciKeySource),
}

/// Pure selection. `found`: what the static source gave for this registry;
/// `oci_config_exists`: whether the OCI config file the key source names (or the default) is
/// there.
pub fn choose(
    source: &CredentialSource,
    registry: &str,
    found: Option<Credentials>,
    oci_config_exists: bool,
) -> Choice {
    match source {
        CredentialSource::OciApiKey(k) => Choice::OciToken(k.clone()),
        CredentialSource::DockerConfig
            if found.is_none() && is_ocir(registry) && oci_config_exists =>
        {
            Choice::OciToken(OciKeySource::default())
        }
        _ => Choice::Static(found),
    }
}

/// The OCI config file a key source reads (for the "is there one" check).
fn config_path(k: &OciKeySource) -> Option<PathBuf> {
    k.config_file
        .clone()
        .or_else(|| std::env::var_os("OCI_CLI_CONFIG_FILE").map(PathBuf::from))
        .or_else(|| dirs::home_dir().map(|h| h.join(".oci").join("config")))
}

/// Credentials for `registry` from `source`, fetching an OCIR token when [`choose`] says so.
/// Returns them and a description of where they came from (for error messages).
pub async fn resolve(
    source: &CredentialSource,
    registry: &str,
    plain_http: bool,
) -> anyhow::Result<(Option<Credentials>, String)> {
    let found = match source {
        CredentialSource::OciApiKey(_) => None,
        s => auth::lookup(s, registry)?,
    };
    let exists = config_path(&OciKeySource::default()).is_some_and(|p| p.is_file());
    match choose(source, registry, found, exists) {
        Choice::Static(c) => Ok((c, source.to_string())),
        Choice::OciToken(k) => {
            let profile = OciConfig::load(k.config_file.as_deref(), k.profile.as_deref())
                .map_err(|e| {
                    actionable(
                        format!("registry {registry}: cannot load the OCI profile for an OCIR token: {e}"),
                        "fix ~/.oci/config (or the [oci] config_file/config_profile the profile names), or run `docker login` for the registry",
                    )
                })?;
            let from = format!(
                "an OCIR token signed with OCI profile {} ({})",
                profile.profile,
                profile.config_file.display()
            );
            let creds =
                fetch_token(&profile, registry, plain_http, k.token_endpoint.as_ref()).await?;
            Ok((Some(creds), from))
        }
    }
}

/// The token endpoint: the explicit one, `CALOPS_ENDPOINT_REGISTRY`, else the registry itself.
pub fn token_base(
    registry: &str,
    plain_http: bool,
    explicit: Option<&Url>,
    env_override: Option<&str>,
) -> anyhow::Result<Url> {
    if let Some(u) = explicit {
        return Ok(u.clone());
    }
    if let Some(v) = env_override.filter(|v| !v.trim().is_empty()) {
        return Url::parse(v.trim()).map_err(|e| {
            actionable(
                format!("CALOPS_ENDPOINT_REGISTRY=`{v}` is not a URL ({e})"),
                "use e.g. https://syd.ocir.io, or unset it",
            )
        });
    }
    let scheme = if plain_http { "http" } else { "https" };
    Ok(Url::parse(&format!("{scheme}://{registry}"))?)
}

async fn fetch_token(
    profile: &OciProfile,
    registry: &str,
    plain_http: bool,
    explicit: Option<&Url>,
) -> anyhow::Result<Credentials> {
    let env = std::env::var(Service::Registry.env_var()).ok();
    let base = token_base(registry, plain_http, explicit, env.as_deref())?;
    let client = OciClient::from_profile(profile)?.with_endpoint(Service::Registry, base);
    token_credentials(&client, registry).await
}

/// Ask `client`'s registry endpoint for a token and turn it into registry credentials.
pub async fn token_credentials(client: &OciClient, registry: &str) -> anyhow::Result<Credentials> {
    let t = client.registry().token(None).await.map_err(|e| {
        actionable(
            format!("could not get an OCIR token for {registry} with the OCI API key: {e}"),
            "check that the API key's user may use the registry (policy: manage repos), or run `docker login` with an auth token",
        )
    })?;
    Ok(Credentials {
        username: BEARER_USERNAME.into(),
        password: t.token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials {
            username: "u".into(),
            password: "p".into(),
        }
    }

    #[test]
    fn ocir_hosts() {
        assert!(is_ocir("syd.ocir.io"));
        assert!(is_ocir("IAD.OCIR.IO:443"));
        assert!(is_ocir("ocir.ap-sydney-1.oci.oraclecloud.com"));
        assert!(!is_ocir("ocir.io.example.com"));
        assert!(!is_ocir("127.0.0.1:5000"));
        assert!(!is_ocir("ghcr.io"));
    }

    #[test]
    fn selection_prefers_explicit_then_docker_login_then_oci_key() {
        let dc = CredentialSource::DockerConfig;
        // Default source, OCIR, nothing from docker login, OCI config present: token.
        assert_eq!(
            choose(&dc, "syd.ocir.io", None, true),
            Choice::OciToken(OciKeySource::default())
        );
        // A docker login entry wins.
        assert_eq!(
            choose(&dc, "syd.ocir.io", Some(creds()), true),
            Choice::Static(Some(creds()))
        );
        // No OCI config: stay anonymous (the registry's 401 then says what to do).
        assert_eq!(
            choose(&dc, "syd.ocir.io", None, false),
            Choice::Static(None)
        );
        // Not OCIR: never a token.
        assert_eq!(choose(&dc, "ghcr.io", None, true), Choice::Static(None));
        // Explicit environment credentials always win, even for OCIR.
        let env = CredentialSource::Env {
            username_var: "U".into(),
            password_var: "P".into(),
        };
        assert_eq!(
            choose(&env, "syd.ocir.io", Some(creds()), true),
            Choice::Static(Some(creds()))
        );
        // An explicit OCI key source is used for any host (private endpoints, tests).
        let k = OciKeySource {
            profile: Some("CI".into()),
            ..Default::default()
        };
        assert_eq!(
            choose(
                &CredentialSource::OciApiKey(k.clone()),
                "127.0.0.1:5000",
                None,
                false
            ),
            Choice::OciToken(k)
        );
    }

    #[test]
    fn token_endpoint_choice() {
        let explicit = Url::parse("http://127.0.0.1:9/").unwrap();
        assert_eq!(
            token_base("syd.ocir.io", false, Some(&explicit), Some("https://x")).unwrap(),
            explicit
        );
        assert_eq!(
            token_base("syd.ocir.io", false, None, Some("https://private.example")).unwrap(),
            Url::parse("https://private.example").unwrap()
        );
        assert_eq!(
            token_base("syd.ocir.io", false, None, None)
                .unwrap()
                .as_str(),
            "https://syd.ocir.io/"
        );
        assert_eq!(
            token_base("127.0.0.1:5000", true, None, Some(" "))
                .unwrap()
                .as_str(),
            "http://127.0.0.1:5000/"
        );
        let e = token_base("r", false, None, Some("not a url")).unwrap_err();
        assert!(e.to_string().contains("CALOPS_ENDPOINT_REGISTRY"), "{e}");
    }
}
