//! The OCI Terraform provider's credentials: where it finds them, and the environment that makes
//! it act as the identity calops signs with.
//!
//! From the provider's source (`internal/provider/provider.go` and `internal/utils/helpers.go`,
//! v8.28.0):
//! - each credential attribute (`tenancy_ocid`, `user_ocid`, `fingerprint`, `private_key`,
//!   `private_key_path`, `private_key_password`, `auth`, `config_file_profile`) not set in the
//!   provider block defaults to the first non-empty of `TF_VAR_<attr>` and `OCI_<ATTR>`;
//! - what these do not give comes from `<home>/.oci/config`, where home is `TF_HOME_OVERRIDE` or
//!   the passwd entry's home directory (not `$HOME`), profile `config_file_profile` (checked to
//!   exist in that file) or `DEFAULT`; it never reads `OCI_CLI_CONFIG_FILE` nor a calops profile's
//!   `[oci] config_file`;
//! - a key given as content (`private_key`) wins over `private_key_path`.
//!
//! So calops gives the provider its whole identity through those variables ([`provider_env`]):
//! tenancy, user, fingerprint and key path (never the key's content), the pass phrase when the
//! key has one, both spellings, so that a stray `TF_VAR_tenancy_ocid` in the shell cannot win.
//! The region is in the rendered provider block. [`resolve`] replays the provider's rules on an
//! environment, so `calops doctor` can show what Terraform will use and fail when it differs
//! from calops ([`differences`]).

use crate::oci::config::{OciProfile, DEFAULT_PROFILE};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Provider attributes that select or carry credentials.
pub const CREDENTIAL_ATTRS: &[&str] = &[
    "auth",
    "config_file_profile",
    "tenancy_ocid",
    "user_ocid",
    "fingerprint",
    "private_key",
    "private_key_path",
    "private_key_password",
];

/// Both environment variables the provider reads for `attr`, in its order of preference.
pub fn env_names(attr: &str) -> [String; 2] {
    [
        format!("TF_VAR_{attr}"),
        format!("OCI_{}", attr.to_ascii_uppercase()),
    ]
}

/// The environment calops adds to every Terraform run. `Debug` hides the values of secret
/// variables (the key's pass phrase).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProviderEnv {
    pub vars: BTreeMap<String, String>,
}

impl ProviderEnv {
    fn set(&mut self, attr: &str, value: &str) {
        for name in env_names(attr) {
            self.vars.insert(name, value.to_string());
        }
    }

    pub fn is_secret(name: &str) -> bool {
        name.to_ascii_lowercase().ends_with("private_key_password")
    }
}

impl fmt::Debug for ProviderEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (k, v) in &self.vars {
            if ProviderEnv::is_secret(k) {
                m.entry(k, &"<redacted>");
            } else {
                m.entry(k, v);
            }
        }
        m.finish()
    }
}

/// Why calops cannot hand its identity to the provider.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}\n  fix: {fix}")]
pub struct IdentityError {
    pub what: String,
    pub fix: String,
}

/// The environment that makes the provider use `profile` (the OCI config profile calops signs
/// with). `provider_config` is the file the provider itself reads (see [`provider_config_path`]).
pub fn provider_env(
    profile: &OciProfile,
    provider_config: Option<&Path>,
) -> Result<ProviderEnv, IdentityError> {
    let mut env = ProviderEnv::default();
    if profile.is_session_token() {
        // The provider reads session tokens only from its own config file, by profile name.
        if provider_config != Some(profile.config_file.as_path()) {
            return Err(IdentityError {
                what: format!(
                    "profile [{}] in {} signs with a session token, which Terraform's OCI provider reads only from {} (by profile name), so it cannot be handed over",
                    profile.profile,
                    profile.config_file.display(),
                    provider_config
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "~/.oci/config".into())
                ),
                fix: "use an API-key profile, or put the session-token profile in that file".into(),
            });
        }
        env.set("auth", "SecurityToken");
        env.set("config_file_profile", &profile.profile);
        return Ok(env);
    }
    env.set("tenancy_ocid", &profile.tenancy);
    if let Some(u) = &profile.user {
        env.set("user_ocid", u);
    }
    if let Some(f) = &profile.fingerprint {
        env.set("fingerprint", f);
    }
    env.set("private_key_path", &profile.key_file.display().to_string());
    if let Some(p) = &profile.pass_phrase {
        env.set("private_key_password", p.expose());
    }
    Ok(env)
}

/// `<home>/.oci/config` as the provider finds it: home from `TF_HOME_OVERRIDE`, else the passwd
/// entry of the current user (not `$HOME`).
pub fn provider_config_path(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let home = match env("TF_HOME_OVERRIDE").filter(|h| !h.is_empty()) {
        Some(h) => PathBuf::from(h),
        None => nix::unistd::User::from_uid(nix::unistd::Uid::current())
            .ok()
            .flatten()
            .map(|u| u.dir)?,
    };
    Some(home.join(".oci").join("config"))
}

/// Where a credential came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Identity {
    pub tenancy: Option<String>,
    pub user: Option<String>,
    pub fingerprint: Option<String>,
    /// The key file; `None` when the key is given as content or not at all.
    pub key_file: Option<PathBuf>,
    /// Set when the key comes as content, from this environment variable.
    pub key_content_from: Option<String>,
    pub region: String,
    /// Session-token authentication (the token file of a profile in the provider's file).
    pub session_token: bool,
    /// What the values came from, for people.
    pub source: String,
}

/// What the provider will use, given the environment Terraform runs with (`env`), the
/// provider's own config file, and the region of the rendered provider block.
pub fn resolve(
    env: &dyn Fn(&str) -> Option<String>,
    provider_config: Option<&Path>,
    region: &str,
) -> Result<Identity, IdentityError> {
    let get = |attr: &str| -> Option<(String, String)> {
        env_names(attr)
            .into_iter()
            .find_map(|n| env(&n).filter(|v| !v.is_empty()).map(|v| (n, v)))
    };
    let profile_name = get("config_file_profile").map(|(_, v)| v);
    let file = match provider_config {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => {
                Some(
                    crate::oci::config::parse(&text, path).map_err(|e| IdentityError {
                        what: format!(
                            "Terraform's OCI provider would read {}: {e}",
                            path.display()
                        ),
                        fix: "fix that file, or let calops give the provider its identity".into(),
                    })?,
                )
            }
            Err(_) => None,
        },
        None => None,
    };
    // A named profile must exist in the provider's file, or the provider stops.
    if let Some(name) = &profile_name {
        if file.as_ref().and_then(|f| f.merged(name)).is_none() {
            return Err(IdentityError {
                what: format!(
                    "Terraform's OCI provider would fail: config_file_profile is `{name}` but {} has no [{name}]",
                    provider_config
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "~/.oci/config".into())
                ),
                fix: "unset TF_VAR_config_file_profile / OCI_CONFIG_FILE_PROFILE".into(),
            });
        }
    }
    let from_file = file
        .as_ref()
        .and_then(|f| f.merged(profile_name.as_deref().unwrap_or(DEFAULT_PROFILE)));
    let file_value = |key: &str| from_file.as_ref().and_then(|m| m.get(key).cloned());
    let mut sources = Vec::new();
    let mut uses_file = false;
    let mut pick = |attr: &str, file_key: &str| -> Option<String> {
        match get(attr) {
            Some((name, v)) => {
                sources.push(name);
                Some(v)
            }
            None => {
                let v = file_value(file_key);
                uses_file |= v.is_some();
                v
            }
        }
    };
    let session_token = get("auth").is_some_and(|(_, a)| a.eq_ignore_ascii_case("SecurityToken"));
    let tenancy = pick("tenancy_ocid", "tenancy");
    let user = pick("user_ocid", "user");
    let fingerprint = pick("fingerprint", "fingerprint");
    let key_content_from = get("private_key").map(|(name, _)| name);
    let key_file = match &key_content_from {
        Some(_) => None,
        None => pick("private_key_path", "key_file").map(PathBuf::from),
    };
    let mut source = if sources.is_empty() {
        String::new()
    } else {
        format!("environment ({})", sources.join(", "))
    };
    if uses_file {
        if !source.is_empty() {
            source.push_str(" and ");
        }
        source.push_str(&format!(
            "[{}] in {}",
            profile_name.as_deref().unwrap_or(DEFAULT_PROFILE),
            provider_config
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ));
    }
    if source.is_empty() {
        source = "nothing (no credentials found)".into();
    }
    Ok(Identity {
        tenancy,
        user,
        fingerprint,
        key_file,
        key_content_from,
        region: region.to_string(),
        session_token,
        source,
    })
}

/// How what Terraform will use differs from what calops signs with (empty when they agree).
pub fn differences(calops: &OciProfile, region: &str, tf: &Identity) -> Vec<String> {
    let mut out = Vec::new();
    if calops.is_session_token() {
        if !tf.session_token {
            out.push("calops signs with a session token, Terraform with an API key".into());
        }
        return out;
    }
    let mut cmp = |what: &str, ours: Option<&str>, theirs: Option<&str>| {
        if ours != theirs {
            out.push(format!(
                "{what}: calops uses {}, Terraform {}",
                ours.unwrap_or("none"),
                theirs.unwrap_or("none")
            ));
        }
    };
    cmp("tenancy", Some(&calops.tenancy), tf.tenancy.as_deref());
    cmp("user", calops.user.as_deref(), tf.user.as_deref());
    cmp(
        "fingerprint",
        calops.fingerprint.as_deref(),
        tf.fingerprint.as_deref(),
    );
    cmp("region", Some(region), Some(&tf.region));
    match (&tf.key_content_from, &tf.key_file) {
        (Some(var), _) => out.push(format!(
            "key: calops uses {}, Terraform the key content in ${var}",
            calops.key_file.display()
        )),
        (None, Some(k)) if *k != calops.key_file => out.push(format!(
            "key: calops uses {}, Terraform {}",
            calops.key_file.display(),
            k.display()
        )),
        (None, None) => out.push(format!(
            "key: calops uses {}, Terraform none",
            calops.key_file.display()
        )),
        _ => {}
    }
    out
}

/// Process variables that would make the provider use another identity whatever calops adds:
/// a key given as content, or another authentication method.
pub fn conflicting_env(env: &dyn Fn(&str) -> Option<String>, added: &ProviderEnv) -> Vec<String> {
    ["private_key", "auth", "config_file_profile"]
        .iter()
        .flat_map(|a| env_names(a))
        .filter(|n| !added.vars.contains_key(n))
        .filter(|n| env(n).is_some_and(|v| !v.is_empty()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::config::PassPhrase;

    fn profile(dir: &Path) -> OciProfile {
        OciProfile {
            config_file: dir.join("other-config"),
            profile: "ADMIN".into(),
            user: Some("ocid1.user.oc1..u".into()),
            tenancy: "ocid1.tenancy.oc1..t".into(),
            fingerprint: Some("aa:bb".into()),
            key_file: dir.join("admin.pem"),
            pass_phrase: Some(PassPhrase::new("s3cret")),
            region: "ap-sydney-1".into(),
            security_token_file: None,
        }
    }

    fn lookup(vars: BTreeMap<String, String>) -> impl Fn(&str) -> Option<String> {
        move |k| vars.get(k).cloned()
    }

    #[test]
    fn the_provider_env_carries_calops_identity_and_wins_over_its_file() {
        let dir = tempfile::tempdir().unwrap();
        // The provider's own file names somebody else.
        let home_config = dir.path().join("home-config");
        std::fs::write(
            &home_config,
            "[DEFAULT]\nuser=ocid1.user.oc1..other\ntenancy=ocid1.tenancy.oc1..other\nfingerprint=cc:dd\nkey_file=/elsewhere.pem\nregion=us-ashburn-1\n",
        )
        .unwrap();
        let p = profile(dir.path());
        let env = provider_env(&p, Some(&home_config)).unwrap();
        assert_eq!(env.vars["OCI_TENANCY_OCID"], "ocid1.tenancy.oc1..t");
        assert_eq!(env.vars["TF_VAR_user_ocid"], "ocid1.user.oc1..u");
        assert_eq!(env.vars["OCI_PRIVATE_KEY_PASSWORD"], "s3cret");
        assert!(!env.vars.contains_key("OCI_PRIVATE_KEY"), "never the key");
        assert!(!format!("{env:?}").contains("s3cret"));
        let tf = resolve(&lookup(env.vars.clone()), Some(&home_config), "ap-sydney-1").unwrap();
        assert_eq!(differences(&p, "ap-sydney-1", &tf), Vec::<String>::new());
        assert!(tf.source.starts_with("environment"), "{}", tf.source);
        // Without calops' variables, the provider reads its own file: another identity.
        let bare = resolve(&lookup(BTreeMap::new()), Some(&home_config), "ap-sydney-1").unwrap();
        let d = differences(&p, "ap-sydney-1", &bare);
        assert!(d.iter().any(|x| x.starts_with("tenancy")), "{d:?}");
        assert!(d.iter().any(|x| x.contains("/elsewhere.pem")), "{d:?}");
        assert!(bare.source.contains("[DEFAULT]"), "{}", bare.source);
    }

    #[test]
    fn conflicts_and_session_tokens_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = profile(dir.path());
        let env = provider_env(&p, None).unwrap();
        let shell = BTreeMap::from([("TF_VAR_private_key".to_string(), "-----BEGIN".to_string())]);
        assert_eq!(
            conflicting_env(&lookup(shell.clone()), &env),
            ["TF_VAR_private_key"]
        );
        let mut all = shell;
        all.extend(env.vars.clone());
        let tf = resolve(&lookup(all), None, "ap-sydney-1").unwrap();
        let d = differences(&p, "ap-sydney-1", &tf);
        assert!(d.iter().any(|x| x.contains("$TF_VAR_private_key")), "{d:?}");
        // A named profile missing from the provider's file stops the provider.
        let named = BTreeMap::from([("OCI_CONFIG_FILE_PROFILE".to_string(), "X".to_string())]);
        assert!(resolve(&lookup(named), None, "r").is_err());
        // A session-token profile outside the provider's file cannot be handed over.
        let mut st = p.clone();
        st.security_token_file = Some(dir.path().join("token"));
        let e = provider_env(&st, Some(Path::new("/home/u/.oci/config"))).unwrap_err();
        assert!(e.what.contains("session token"), "{e}");
        let ok = provider_env(&st, Some(&st.config_file.clone())).unwrap();
        assert_eq!(ok.vars["OCI_AUTH"], "SecurityToken");
        assert_eq!(ok.vars["OCI_CONFIG_FILE_PROFILE"], "ADMIN");
    }
}
