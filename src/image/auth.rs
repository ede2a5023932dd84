//! Registry credentials and the `WWW-Authenticate` challenge. Pure parsing; no network.

use base64::Engine as _;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// A username and password (or token). `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Credentials {{ username: {:?}, password: <redacted> }}",
            self.username
        )
    }
}

impl Credentials {
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// Where registry credentials come from. Values are never stored in profiles: only references.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CredentialSource {
    /// No credentials: anonymous access only.
    None,
    /// `$DOCKER_CONFIG/config.json` or `~/.docker/config.json` (`docker login` writes it).
    #[default]
    DockerConfig,
    /// A docker-style config.json at an explicit path.
    DockerConfigAt(PathBuf),
    /// Environment variables holding the username and the password (names, not values).
    Env {
        username_var: String,
        password_var: String,
    },
    /// An OCIR token fetched with the signed OCI API call, signed with this OCI config profile
    /// (see [`super::ocir`]). With the default [`CredentialSource::DockerConfig`], OCIR hosts
    /// get this automatically when `docker login` has no entry and an OCI config exists.
    OciApiKey(super::ocir::OciKeySource),
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::None => f.write_str("no credentials"),
            CredentialSource::DockerConfig => f.write_str("~/.docker/config.json"),
            CredentialSource::DockerConfigAt(p) => write!(f, "{}", p.display()),
            CredentialSource::Env {
                username_var,
                password_var,
            } => write!(f, "environment variables {username_var}/{password_var}"),
            CredentialSource::OciApiKey(k) => write!(
                f,
                "an OCIR token signed with OCI profile {}",
                k.profile.as_deref().unwrap_or("DEFAULT")
            ),
        }
    }
}

/// The default docker config path: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn default_docker_config() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(d).join("config.json"));
    }
    dirs::home_dir().map(|h| h.join(".docker").join("config.json"))
}

/// Look up credentials for `registry` (host[:port]) from a static source. An OCIR token
/// ([`CredentialSource::OciApiKey`]) needs a network call: [`super::ocir::resolve`] fetches
/// it; here it gives `None`.
pub fn lookup(source: &CredentialSource, registry: &str) -> anyhow::Result<Option<Credentials>> {
    match source {
        CredentialSource::None | CredentialSource::OciApiKey(_) => Ok(None),
        CredentialSource::DockerConfig => match default_docker_config() {
            Some(p) if p.exists() => from_docker_config_file(&p, registry),
            _ => Ok(None),
        },
        CredentialSource::DockerConfigAt(p) => {
            if !p.exists() {
                return Err(crate::error::actionable(
                    format!("registry credentials file {} does not exist", p.display()),
                    "run `docker login REGISTRY` or point to an existing config.json",
                ));
            }
            from_docker_config_file(p, registry)
        }
        CredentialSource::Env {
            username_var,
            password_var,
        } => {
            let get = |var: &str| {
                std::env::var(var).map_err(|_| {
                    crate::error::actionable(
                        format!("registry credentials: environment variable {var} is not set"),
                        format!("export {var}=... before running calops"),
                    )
                })
            };
            Ok(Some(Credentials {
                username: get(username_var)?,
                password: get(password_var)?,
            }))
        }
    }
}

fn from_docker_config_file(path: &Path, registry: &str) -> anyhow::Result<Option<Credentials>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    from_docker_config(&text, registry).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Find credentials for `registry` in the text of a docker `config.json` (`auths` section).
/// Keys may carry a scheme or path (`https://index.docker.io/v1/`).
pub fn from_docker_config(text: &str, registry: &str) -> anyhow::Result<Option<Credentials>> {
    #[derive(serde::Deserialize)]
    struct Entry {
        auth: Option<String>,
        username: Option<String>,
        password: Option<String>,
    }
    #[derive(serde::Deserialize)]
    struct Config {
        #[serde(default)]
        auths: BTreeMap<String, Entry>,
        #[serde(default, rename = "credHelpers")]
        cred_helpers: BTreeMap<String, String>,
    }
    let cfg: Config = serde_json::from_str(text)
        .map_err(|e| anyhow::anyhow!("not a valid docker config.json: {e}"))?;
    let want = normalize_registry(registry);
    let Some(entry) = cfg
        .auths
        .iter()
        .find(|(k, _)| normalize_registry(k) == want)
        .map(|(_, v)| v)
    else {
        if let Some((_, helper)) = cfg
            .cred_helpers
            .iter()
            .find(|(k, _)| normalize_registry(k) == want)
        {
            return Err(crate::error::actionable(
                format!("credentials for {registry} are kept by docker-credential-{helper}, which calops does not call"),
                "pass --username-env/--password-env naming variables that hold them",
            ));
        }
        return Ok(None);
    };
    if let Some(auth) = &entry.auth {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| anyhow::anyhow!("the `auth` entry for {registry} is not base64"))?;
        let raw = String::from_utf8(raw)
            .map_err(|_| anyhow::anyhow!("the `auth` entry for {registry} is not UTF-8"))?;
        let (u, p) = raw.split_once(':').ok_or_else(|| {
            anyhow::anyhow!("the `auth` entry for {registry} is not user:password")
        })?;
        return Ok(Some(Credentials {
            username: u.to_string(),
            password: p.to_string(),
        }));
    }
    match (&entry.username, &entry.password) {
        (Some(u), Some(p)) => Ok(Some(Credentials {
            username: u.clone(),
            password: p.clone(),
        })),
        _ => Ok(None),
    }
}

fn normalize_registry(s: &str) -> String {
    let s = s
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = s.split('/').next().unwrap_or("");
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".into(),
        h => h.to_ascii_lowercase(),
    }
}

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic {
        realm: Option<String>,
    },
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parse `Bearer realm="...",service="...",scope="..."` or `Basic realm="..."`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic {
            realm: params.get("realm").cloned(),
        }),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        }),
        _ => None,
    }
}

fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(c) if *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            val.push(n)
                        }
                    }
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                val.push(*c);
                chars.next();
            }
        }
        out.insert(key.trim().to_ascii_lowercase(), val.trim().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_and_basic_challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            }
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic {
                realm: Some("Registry Realm".into())
            })
        );
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    #[test]
    fn finds_docker_config_credentials_by_normalized_host() {
        let auth = base64::engine::general_purpose::STANDARD.encode("u:p:w");
        let text = format!(
            r#"{{"auths":{{"https://127.0.0.1:5000/v2/":{{"auth":"{auth}"}},"https://index.docker.io/v1/":{{"username":"d","password":"x"}}}}}}"#
        );
        let c = from_docker_config(&text, "127.0.0.1:5000")
            .unwrap()
            .unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p:w"));
        assert_eq!(
            from_docker_config(&text, "docker.io")
                .unwrap()
                .unwrap()
                .username,
            "d"
        );
        assert_eq!(from_docker_config(&text, "other:1").unwrap(), None);
        assert!(from_docker_config(r#"{"auths":{"h":{"auth":"%%"}}}"#, "h").is_err());
        assert!(from_docker_config("nope", "h").is_err());
        let helper = r#"{"credHelpers":{"syd.ocir.io":"oci"}}"#;
        let e = from_docker_config(helper, "syd.ocir.io")
            .unwrap_err()
            .to_string();
        assert!(e.contains("docker-credential-oci"), "{e}");
    }

    #[test]
    fn debug_never_shows_the_password() {
        let c = Credentials {
            username: "u".into(),
            password: "s3cret".into(),
        };
        assert!(!format!("{c:?}").contains("s3cret"));
        assert_eq!(c.basic_header(), "Basic dTpzM2NyZXQ=");
    }

    #[test]
    fn env_source_reports_missing_variable_by_name() {
        let src = CredentialSource::Env {
            username_var: "CALOPS_TEST_NO_SUCH_USER_VAR".into(),
            password_var: "CALOPS_TEST_NO_SUCH_PASS_VAR".into(),
        };
        let e = lookup(&src, "r").unwrap_err().to_string();
        assert!(e.contains("CALOPS_TEST_NO_SUCH_USER_VAR"), "{e}");
    }
}
