//! `~/.oci/config`: find it, parse it and resolve one profile, the way the OCI CLI and SDKs do.
//!
//! - File: the explicit path, else `$OCI_CLI_CONFIG_FILE`, else `~/.oci/config`.
//! - Profile: the explicit name, else `$OCI_CLI_PROFILE`, else `DEFAULT`.
//! - INI syntax as Python's `configparser` reads it: `[section]` headers, `key = value` or
//!   `key: value` (split at the first `=` or `:`), whitespace around keys and values ignored,
//!   whole-line comments starting with `#` or `;`, keys case-insensitive, section names
//!   case-sensitive. A duplicate section or key is an error (configparser's strict mode).
//! - Every profile inherits the keys of `[DEFAULT]`; its own keys win.
//! - `~` is expanded in `key_file` and `security_token_file`; `security_token_file` marks a
//!   session-token profile (signed with `keyId="ST$<token>"`), which needs no `user`.
//!
//! Errors name the file, the profile and the key. The pass phrase is held in [`PassPhrase`],
//! whose `Debug` is redacted and which has no `Display`.
//!
//! ```no_run
//! use calops::oci::config::OciConfig;
//! let profile = OciConfig::load(None, Some("DEFAULT"))?;
//! println!("{} in {}", profile.tenancy, profile.region);
//! # Ok::<(), calops::oci::config::ConfigError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Environment variable naming the config file (as the OCI CLI reads it).
pub const ENV_CONFIG_FILE: &str = "OCI_CLI_CONFIG_FILE";
/// Environment variable naming the profile (as the OCI CLI reads it).
pub const ENV_PROFILE: &str = "OCI_CLI_PROFILE";
/// The profile used when none is named, and the section every profile inherits from.
pub const DEFAULT_PROFILE: &str = "DEFAULT";

/// A key's pass phrase. Never printed: `Debug` shows `<redacted>` and there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct PassPhrase(String);

impl PassPhrase {
    pub fn new(s: impl Into<String>) -> PassPhrase {
        PassPhrase(s.into())
    }
    /// The secret itself, for decrypting the key. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PassPhrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PassPhrase(<redacted>)")
    }
}

/// One resolved profile of an OCI config file (DEFAULT keys merged in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciProfile {
    /// The config file this came from (for messages).
    pub config_file: PathBuf,
    /// The profile (section) name.
    pub profile: String,
    /// User OCID; absent for session-token profiles.
    pub user: Option<String>,
    pub tenancy: String,
    /// The API key fingerprint the config claims; absent only for session-token profiles.
    pub fingerprint: Option<String>,
    /// Path of the private key, `~` expanded.
    pub key_file: PathBuf,
    pub pass_phrase: Option<PassPhrase>,
    pub region: String,
    /// Session token file, `~` expanded: its presence makes this a session-token profile.
    pub security_token_file: Option<PathBuf>,
}

impl OciProfile {
    /// True when requests are signed with a session token (`keyId="ST$<token>"`).
    pub fn is_session_token(&self) -> bool {
        self.security_token_file.is_some()
    }

    /// The API-key `keyId`: `<tenancy>/<user>/<fingerprint>`; `None` for session-token
    /// profiles (their keyId comes from the token file).
    pub fn api_key_id(&self) -> Option<String> {
        match (&self.user, &self.fingerprint) {
            (Some(u), Some(f)) if !self.is_session_token() => {
                Some(format!("{}/{}/{}", self.tenancy, u, f))
            }
            _ => None,
        }
    }
}

/// What went wrong reading the config. Every variant names the file; most name the profile
/// and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("OCI config file {} not found\n  fix: create it with `oci setup config`, or point --oci-config / ${ENV_CONFIG_FILE} at your config file", path.display())]
    NotFound { path: PathBuf },
    #[error("cannot read OCI config file {}: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}:{line}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("profile [{profile}] not found in OCI config file {}{}\n  fix: use one of the profiles there with --oci-profile or ${ENV_PROFILE}, or add a [{profile}] section", path.display(), fmt_available(available))]
    MissingProfile {
        path: PathBuf,
        profile: String,
        available: Vec<String>,
    },
    #[error("profile [{profile}] in OCI config file {} has no `{key}` (nor does [DEFAULT])\n  fix: add `{key}=...` to [{profile}] ({hint})", path.display())]
    MissingKey {
        path: PathBuf,
        profile: String,
        key: String,
        hint: &'static str,
    },
    #[error("profile [{profile}] in OCI config file {}: `{key}` {why}", path.display())]
    InvalidValue {
        path: PathBuf,
        profile: String,
        key: String,
        why: String,
    },
    #[error("cannot find the home directory to expand `~` in {what}")]
    NoHome { what: String },
}

fn fmt_available(available: &[String]) -> String {
    if available.is_empty() {
        " (the file has no profiles)".to_string()
    } else {
        format!(" (profiles there: {})", available.join(", "))
    }
}

/// The parsed file: sections in file order, each a map of lowercase key -> value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigFile {
    pub path: PathBuf,
    /// Sections other than DEFAULT, in file order.
    pub sections: Vec<(String, BTreeMap<String, String>)>,
    /// The `[DEFAULT]` section (empty when absent).
    pub defaults: BTreeMap<String, String>,
}

/// Entry point: locate, read and resolve.
pub struct OciConfig;

impl OciConfig {
    /// Load one profile. `file` and `profile` override `$OCI_CLI_CONFIG_FILE` /
    /// `$OCI_CLI_PROFILE`; the defaults are `~/.oci/config` and `DEFAULT`.
    pub fn load(file: Option<&Path>, profile: Option<&str>) -> Result<OciProfile, ConfigError> {
        let env_file = std::env::var_os(ENV_CONFIG_FILE).map(PathBuf::from);
        let env_profile = std::env::var(ENV_PROFILE).ok();
        let home = dirs::home_dir();
        let (path, name) = resolve_location(
            file,
            profile,
            env_file.as_deref(),
            env_profile.as_deref(),
            home.as_deref(),
        )?;
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ConfigError::NotFound { path })
            }
            Err(error) => return Err(ConfigError::Read { path, error }),
        };
        let parsed = parse(&text, &path)?;
        parsed.profile(&name, home.as_deref())
    }
}

/// Which file and which profile: explicit > environment > default. Pure (no I/O) for tests.
pub fn resolve_location(
    file: Option<&Path>,
    profile: Option<&str>,
    env_file: Option<&Path>,
    env_profile: Option<&str>,
    home: Option<&Path>,
) -> Result<(PathBuf, String), ConfigError> {
    let path = match file.or(env_file.filter(|p| !p.as_os_str().is_empty())) {
        Some(p) => expand_tilde(p, home, "the OCI config file path")?,
        None => match home {
            Some(h) => h.join(".oci").join("config"),
            None => {
                return Err(ConfigError::NoHome {
                    what: "the default OCI config path ~/.oci/config".into(),
                })
            }
        },
    };
    let name = profile
        .or(env_profile.filter(|p| !p.is_empty()))
        .unwrap_or(DEFAULT_PROFILE)
        .to_string();
    Ok((path, name))
}

/// Expand a leading `~` or `~/` with `home`.
pub fn expand_tilde(p: &Path, home: Option<&Path>, what: &str) -> Result<PathBuf, ConfigError> {
    let s = p.to_string_lossy();
    if s == "~" || s.starts_with("~/") {
        let home = home.ok_or_else(|| ConfigError::NoHome { what: what.into() })?;
        let rest = s.trim_start_matches('~').trim_start_matches('/');
        Ok(if rest.is_empty() {
            home.to_path_buf()
        } else {
            home.join(rest)
        })
    } else {
        Ok(p.to_path_buf())
    }
}

/// Parse the text of a config file. `path` is only used in messages.
pub fn parse(text: &str, path: &Path) -> Result<ConfigFile, ConfigError> {
    let mut out = ConfigFile {
        path: path.to_path_buf(),
        ..Default::default()
    };
    // None = before the first section; Some(None) = DEFAULT; Some(Some(i)) = sections[i].
    let mut current: Option<Option<usize>> = None;
    let mut seen_default = false;
    let syntax = |line: usize, message: String| ConfigError::Syntax {
        path: path.to_path_buf(),
        line,
        message,
    };
    for (i, raw) in text.lines().enumerate() {
        let lineno = i + 1;
        let line = raw.trim_start_matches('\u{feff}').trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) else {
                return Err(syntax(
                    lineno,
                    format!("section header `{line}` is not closed with `]`"),
                ));
            };
            let name = name.trim();
            if name.is_empty() {
                return Err(syntax(lineno, "empty section name `[]`".into()));
            }
            if name == DEFAULT_PROFILE {
                if seen_default {
                    return Err(syntax(lineno, "section [DEFAULT] appears twice".into()));
                }
                seen_default = true;
                current = Some(None);
            } else {
                if out.sections.iter().any(|(n, _)| n == name) {
                    return Err(syntax(lineno, format!("section [{name}] appears twice")));
                }
                out.sections.push((name.to_string(), BTreeMap::new()));
                current = Some(Some(out.sections.len() - 1));
            }
            continue;
        }
        let Some(split) = line.find(['=', ':']) else {
            return Err(syntax(
                lineno,
                format!("expected `key = value`, found `{}`", redact_line(line)),
            ));
        };
        let key = line[..split].trim().to_ascii_lowercase();
        let value = line[split + 1..].trim().to_string();
        if key.is_empty() {
            return Err(syntax(lineno, "a line starts with `=` (no key)".into()));
        }
        let (section_name, map) = match current {
            None => {
                return Err(syntax(
                    lineno,
                    format!("key `{key}` appears before any [section] header"),
                ))
            }
            Some(None) => (DEFAULT_PROFILE.to_string(), &mut out.defaults),
            Some(Some(idx)) => {
                let (n, m) = &mut out.sections[idx];
                (n.clone(), m)
            }
        };
        if map.contains_key(&key) {
            return Err(syntax(
                lineno,
                format!("key `{key}` appears twice in [{section_name}]"),
            ));
        }
        map.insert(key, value);
    }
    Ok(out)
}

/// Show a malformed line without leaking a value that might be a pass phrase.
fn redact_line(line: &str) -> String {
    if line.to_ascii_lowercase().contains("pass") {
        "<line hidden: it may hold a pass phrase>".into()
    } else {
        line.chars().take(60).collect()
    }
}

impl ConfigFile {
    /// Names of the profiles in the file, DEFAULT first when present.
    pub fn profile_names(&self) -> Vec<String> {
        let mut v = Vec::new();
        if !self.defaults.is_empty() {
            v.push(DEFAULT_PROFILE.to_string());
        }
        v.extend(self.sections.iter().map(|(n, _)| n.clone()));
        v
    }

    /// The merged keys of `name` (DEFAULT first, then the profile's own).
    pub fn merged(&self, name: &str) -> Option<BTreeMap<String, String>> {
        if name == DEFAULT_PROFILE {
            return (!self.defaults.is_empty()).then(|| self.defaults.clone());
        }
        let (_, own) = self.sections.iter().find(|(n, _)| n == name)?;
        let mut m = self.defaults.clone();
        m.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        Some(m)
    }

    /// Resolve and validate one profile. `home` expands `~` in paths.
    pub fn profile(&self, name: &str, home: Option<&Path>) -> Result<OciProfile, ConfigError> {
        let m = self
            .merged(name)
            .ok_or_else(|| ConfigError::MissingProfile {
                path: self.path.clone(),
                profile: name.to_string(),
                available: self.profile_names(),
            })?;
        let get = |key: &str| m.get(key).filter(|v| !v.is_empty()).cloned();
        let need = |key: &str, hint: &'static str| {
            get(key).ok_or_else(|| ConfigError::MissingKey {
                path: self.path.clone(),
                profile: name.to_string(),
                key: key.to_string(),
                hint,
            })
        };
        let security_token_file = match get("security_token_file") {
            Some(p) => Some(expand_tilde(
                Path::new(&p),
                home,
                &format!("security_token_file of [{name}]"),
            )?),
            None => None,
        };
        let session = security_token_file.is_some();
        let user = if session {
            get("user")
        } else {
            Some(need(
                "user",
                "the OCID of your user, e.g. ocid1.user.oc1..aaaa...",
            )?)
        };
        let tenancy = need(
            "tenancy",
            "the OCID of your tenancy, e.g. ocid1.tenancy.oc1..aaaa...",
        )?;
        let region = need("region", "e.g. region=ap-sydney-1")?;
        let fingerprint = if session {
            get("fingerprint")
        } else {
            Some(need(
                "fingerprint",
                "the API key fingerprint shown in the console under your user's API keys",
            )?)
        };
        let key_file = need("key_file", "the path of your API signing private key (PEM)")?;
        let key_file = expand_tilde(Path::new(&key_file), home, &format!("key_file of [{name}]"))?;
        let invalid = |key: &str, why: String| ConfigError::InvalidValue {
            path: self.path.clone(),
            profile: name.to_string(),
            key: key.to_string(),
            why,
        };
        if let Some(fp) = &fingerprint {
            if !is_fingerprint(fp) {
                return Err(invalid(
                    "fingerprint",
                    format!("is `{fp}`, not 16 colon-separated hex pairs like 12:34:...:ef"),
                ));
            }
        }
        if !tenancy.starts_with("ocid1.") {
            return Err(invalid(
                "tenancy",
                format!("is `{tenancy}`, not an OCID (ocid1.tenancy...)"),
            ));
        }
        if let Some(u) = &user {
            if !u.starts_with("ocid1.") {
                return Err(invalid(
                    "user",
                    format!("is `{u}`, not an OCID (ocid1.user...)"),
                ));
            }
        }
        if region.contains(char::is_whitespace) || region.contains('/') {
            return Err(invalid(
                "region",
                format!("is `{region}`, not a region identifier like ap-sydney-1"),
            ));
        }
        Ok(OciProfile {
            config_file: self.path.clone(),
            profile: name.to_string(),
            user,
            tenancy,
            fingerprint: fingerprint.map(|f| f.to_ascii_lowercase()),
            key_file,
            pass_phrase: get("pass_phrase").map(PassPhrase),
            region,
            security_token_file,
        })
    }
}

/// `aa:bb:...` with 16 hex pairs.
pub fn is_fingerprint(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 16
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const FP: &str = "08:d9:53:ac:d4:90:8c:d0:fe:f2:29:24:68:2a:ec:ed";

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        let mut f = std::fs::File::create(&p).unwrap();
        f.write_all(text.as_bytes()).unwrap();
        p
    }

    fn sample() -> String {
        format!(
            "# a comment\n\
             ; another comment\n\
             [DEFAULT]\n\
             user=ocid1.user.oc1..default\n\
             fingerprint={FP}\n\
             key_file=~/.oci/oci_api_key.pem\n\
             tenancy=ocid1.tenancy.oc1..tenancy\n\
             region=ap-sydney-1\n\
             \n\
             [SYD]\n\
             region = ap-melbourne-1\n\
             [TOKEN]\n\
             security_token_file=~/.oci/sessions/TOKEN/token\n\
             pass_phrase=s3cret-phrase\n"
        )
    }

    #[test]
    fn default_inheritance_and_tilde() {
        let cfg = parse(&sample(), Path::new("/cfg")).unwrap();
        let home = Path::new("/home/op");
        let p = cfg.profile("SYD", Some(home)).unwrap();
        assert_eq!(p.region, "ap-melbourne-1");
        assert_eq!(p.user.as_deref(), Some("ocid1.user.oc1..default"));
        assert_eq!(p.key_file, PathBuf::from("/home/op/.oci/oci_api_key.pem"));
        assert_eq!(
            p.api_key_id().unwrap(),
            format!("ocid1.tenancy.oc1..tenancy/ocid1.user.oc1..default/{FP}")
        );
        let d = cfg.profile("DEFAULT", Some(home)).unwrap();
        assert_eq!(d.region, "ap-sydney-1");
        assert!(!d.is_session_token());
    }

    #[test]
    fn session_token_profile() {
        let cfg = parse(&sample(), Path::new("/cfg")).unwrap();
        let p = cfg.profile("TOKEN", Some(Path::new("/h"))).unwrap();
        assert!(p.is_session_token());
        assert_eq!(
            p.security_token_file.as_deref(),
            Some(Path::new("/h/.oci/sessions/TOKEN/token"))
        );
        assert_eq!(p.api_key_id(), None);
        assert_eq!(p.pass_phrase.as_ref().unwrap().expose(), "s3cret-phrase");
        // The pass phrase never shows up in Debug output.
        let dbg = format!("{p:?}");
        assert!(!dbg.contains("s3cret"), "{dbg}");
        assert!(dbg.contains("<redacted>"));
    }

    #[test]
    fn session_token_profile_without_user() {
        let text = format!(
            "[S]\nfingerprint={FP}\nkey_file=/k.pem\ntenancy=ocid1.tenancy.oc1..t\nregion=us-ashburn-1\nsecurity_token_file=/tok\n"
        );
        let p = parse(&text, Path::new("/c"))
            .unwrap()
            .profile("S", None)
            .unwrap();
        assert_eq!(p.user, None);
        assert!(p.is_session_token());
    }

    #[test]
    fn comments_odd_spacing_and_case() {
        let text = format!(
            "\u{feff}  # indented comment\n\
             \n\
             [ DEFAULT ]\n\
             \tUSER   =    ocid1.user.oc1..u   \n\
             Fingerprint:{FP}\n\
             KEY_FILE= /keys/k.pem\n\
             tenancy   :ocid1.tenancy.oc1..t\n\
             ;region=wrong\n\
             Region=sa-saopaulo-1\n"
        );
        let p = parse(&text, Path::new("/c"))
            .unwrap()
            .profile("DEFAULT", None)
            .unwrap();
        assert_eq!(p.user.as_deref(), Some("ocid1.user.oc1..u"));
        assert_eq!(p.fingerprint.as_deref(), Some(FP));
        assert_eq!(p.key_file, PathBuf::from("/keys/k.pem"));
        assert_eq!(p.tenancy, "ocid1.tenancy.oc1..t");
        assert_eq!(p.region, "sa-saopaulo-1");
    }

    #[test]
    fn missing_profile_lists_available() {
        let cfg = parse(&sample(), Path::new("/etc/oci/config")).unwrap();
        let e = cfg.profile("PROD", None).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, ConfigError::MissingProfile { .. }));
        assert!(
            msg.contains("[PROD]") && msg.contains("/etc/oci/config"),
            "{msg}"
        );
        assert!(msg.contains("DEFAULT, SYD, TOKEN"), "{msg}");
    }

    #[test]
    fn missing_key_names_file_profile_and_key() {
        let text = "[P]\nuser=ocid1.user.oc1..u\ntenancy=ocid1.tenancy.oc1..t\nregion=x-y-1\nkey_file=/k\n";
        let e = parse(text, Path::new("/my/config"))
            .unwrap()
            .profile("P", None)
            .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("/my/config") && msg.contains("[P]") && msg.contains("`fingerprint`"),
            "{msg}"
        );
    }

    #[test]
    fn syntax_errors_carry_line_numbers() {
        let e = parse("[A]\nuser=x\nnonsense line\n", Path::new("/c")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/c:3: expected `key = value`, found `nonsense line`"
        );
        let e = parse("user=x\n", Path::new("/c")).unwrap_err();
        assert!(e.to_string().contains("before any [section]"));
        let e = parse("[A]\nuser=x\nUSER=y\n", Path::new("/c")).unwrap_err();
        assert!(e
            .to_string()
            .contains("/c:3: key `user` appears twice in [A]"));
        let e = parse("[A]\n[A]\n", Path::new("/c")).unwrap_err();
        assert!(e.to_string().contains("section [A] appears twice"));
        let e = parse("[A\n", Path::new("/c")).unwrap_err();
        assert!(e.to_string().contains("not closed"));
        // A malformed line that may be a pass phrase is not echoed.
        let e = parse("[A]\npass_phrase hunter2\n", Path::new("/c")).unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
    }

    #[test]
    fn invalid_values() {
        let text = "[P]\nuser=ocid1.user.oc1..u\ntenancy=ocid1.tenancy.oc1..t\nregion=r-1\nkey_file=/k\nfingerprint=zz\n";
        let e = parse(text, Path::new("/c"))
            .unwrap()
            .profile("P", None)
            .unwrap_err();
        assert!(e.to_string().contains("`fingerprint` is `zz`"), "{e}");
    }

    #[test]
    fn location_precedence() {
        let home = Some(Path::new("/home/u"));
        let (p, n) = resolve_location(None, None, None, None, home).unwrap();
        assert_eq!(p, PathBuf::from("/home/u/.oci/config"));
        assert_eq!(n, "DEFAULT");
        let (p, n) = resolve_location(
            None,
            None,
            Some(Path::new("~/alt/config")),
            Some("ENVP"),
            home,
        )
        .unwrap();
        assert_eq!(p, PathBuf::from("/home/u/alt/config"));
        assert_eq!(n, "ENVP");
        let (p, n) = resolve_location(
            Some(Path::new("/explicit")),
            Some("ARG"),
            Some(Path::new("/env")),
            Some("ENVP"),
            home,
        )
        .unwrap();
        assert_eq!(p, PathBuf::from("/explicit"));
        assert_eq!(n, "ARG");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Any text: parse returns, never panics.
        #[test]
        fn parse_never_panics(text in "\\PC{0,200}") {
            let _ = parse(&text, Path::new("/c"));
        }

        /// Keys and values survive odd spacing, either delimiter and key case.
        #[test]
        fn spacing_and_delimiters_round_trip(
            entries in proptest::collection::btree_map("[a-z_]{1,12}", "[A-Za-z0-9._/~:=-]{1,20}", 1..8),
            pad in "[ \t]{0,3}",
            colon in proptest::bool::ANY,
            upper in proptest::bool::ANY,
        ) {
            let mut text = String::from("[P]\n");
            for (k, v) in &entries {
                let key = if upper { k.to_ascii_uppercase() } else { k.clone() };
                let delim = if colon { ":" } else { "=" };
                text.push_str(&format!("{pad}{key}{pad}{delim}{pad}{v}{pad}\n"));
            }
            let cfg = parse(&text, Path::new("/c")).unwrap();
            let merged = cfg.merged("P").unwrap();
            proptest::prop_assert_eq!(&merged, &entries);
        }
    }

    #[test]
    fn load_from_disk_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "config", &sample());
        let p = OciConfig::load(Some(&path), Some("SYD")).unwrap();
        assert_eq!(p.config_file, path);
        assert_eq!(p.profile, "SYD");
        let missing = dir.path().join("nope");
        let e = OciConfig::load(Some(&missing), None).unwrap_err();
        assert!(matches!(e, ConfigError::NotFound { .. }));
        assert!(e.to_string().contains("oci setup config"));
    }
}
