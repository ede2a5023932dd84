//! The resource principal of an OCI container instance (version 2.2), as Oracle's SDKs read it
//! (`common/auth/resource_principal_key_provider.go` and `federation_client.go` in
//! oci-go-sdk, `oci/auth/signers/` in the Python SDK):
//!
//! - `OCI_RESOURCE_PRINCIPAL_VERSION=2.2`;
//! - `OCI_RESOURCE_PRINCIPAL_RPST`: the resource principal session token (a JWT);
//! - `OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM`: the RSA key the token is bound to, optionally
//!   encrypted with `OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM_PASSPHRASE`;
//! - `OCI_RESOURCE_PRINCIPAL_REGION`: the region to call.
//!
//! Each of the token, key and pass phrase is either the value itself or an absolute path to a
//! file holding it (the key and pass phrase both, or neither). Requests are signed with keyId
//! `ST$<token>` ([`crate::oci::signer::Signer::with_security_token`]). Files are read again
//! when the token expires within [`REFRESH_WINDOW`] (OCI rotates them in place), and after the
//! service refused the token ([`ResourcePrincipal::refresh`], which the client calls once on a
//! 401). A token or key given inline never changes.
//!
//! Pure parts (the variables, the token's expiry) are apart from the file reads. Nothing here
//! puts the token, the key or the pass phrase in a message or in `Debug` output.

use crate::oci::config::PassPhrase;
use crate::oci::keys::{self, KeyError};
use crate::oci::signer::Signer;
use base64::Engine as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const VERSION_VAR: &str = "OCI_RESOURCE_PRINCIPAL_VERSION";
pub const RPST_VAR: &str = "OCI_RESOURCE_PRINCIPAL_RPST";
pub const PRIVATE_PEM_VAR: &str = "OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM";
pub const PASSPHRASE_VAR: &str = "OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM_PASSPHRASE";
pub const REGION_VAR: &str = "OCI_RESOURCE_PRINCIPAL_REGION";
/// Every variable of a version 2.2 resource principal.
pub const VARIABLES: [&str; 5] = [
    VERSION_VAR,
    RPST_VAR,
    PRIVATE_PEM_VAR,
    PASSPHRASE_VAR,
    REGION_VAR,
];
/// The only version calops reads (the one container instances give).
pub const VERSION: &str = "2.2";
/// A token that expires within this is read again before use (the SDKs' buffer).
pub const REFRESH_WINDOW: Duration = Duration::from_secs(5 * 60);

/// What went wrong, naming the variable to look at. Never contains a token, key or pass phrase.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct PrincipalError {
    pub variable: &'static str,
    pub message: String,
}

fn problem(variable: &'static str, message: impl Into<String>) -> PrincipalError {
    PrincipalError {
        variable,
        message: message.into(),
    }
}

/// A value given inline or as the absolute path of a file holding it.
#[derive(Clone, PartialEq, Eq)]
enum Source {
    Inline(String),
    File(PathBuf),
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Inline(_) => f.write_str("<inline>"),
            Source::File(p) => write!(f, "{}", p.display()),
        }
    }
}

impl Source {
    /// The SDKs' rule: a value that is an absolute path is a file.
    fn of(value: &str) -> Source {
        if Path::new(value.trim()).is_absolute() {
            Source::File(PathBuf::from(value.trim()))
        } else {
            Source::Inline(value.to_string())
        }
    }

    fn read(&self, variable: &'static str) -> Result<String, PrincipalError> {
        match self {
            Source::Inline(v) => Ok(v.clone()),
            Source::File(p) => std::fs::read_to_string(p)
                .map_err(|e| problem(variable, format!("cannot read {}: {e}", p.display()))),
        }
    }
}

/// The resource principal variables, checked (nothing read yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalConfig {
    rpst: Source,
    private_pem: Source,
    passphrase: Option<Source>,
    pub region: String,
}

impl PrincipalConfig {
    /// True when the environment has a resource principal at all (its version variable).
    pub fn present(env: &dyn Fn(&str) -> Option<String>) -> bool {
        env(VERSION_VAR).is_some_and(|v| !v.trim().is_empty())
    }

    /// Read the variables through `env`; the first problem names its variable.
    pub fn from_env(
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<PrincipalConfig, PrincipalError> {
        let get = |v: &str| env(v).filter(|s| !s.trim().is_empty());
        let required = |v: &'static str| {
            get(v).ok_or_else(|| {
                problem(
                    v,
                    "not set: the service reads OCI Vault secrets and Object Storage as the container instance's resource principal, which OCI gives a container in the OCI_RESOURCE_PRINCIPAL_* variables (check that the container does not set is_resource_principal_disabled)",
                )
            })
        };
        let version = required(VERSION_VAR)?;
        if version.trim() != VERSION {
            return Err(problem(
                VERSION_VAR,
                format!(
                    "is {:?}; calops reads resource principals of version {VERSION} (what container instances give)",
                    version.trim()
                ),
            ));
        }
        let rpst = Source::of(&required(RPST_VAR)?);
        let private_pem = Source::of(&required(PRIVATE_PEM_VAR)?);
        let passphrase = get(PASSPHRASE_VAR).map(|p| Source::of(&p));
        if let Some(p) = &passphrase {
            if matches!(p, Source::File(_)) != matches!(private_pem, Source::File(_)) {
                return Err(problem(
                    PASSPHRASE_VAR,
                    format!("and {PRIVATE_PEM_VAR} must both be file paths or both be values"),
                ));
            }
        }
        let region = required(REGION_VAR)?.trim().to_string();
        Ok(PrincipalConfig {
            rpst,
            private_pem,
            passphrase,
            region,
        })
    }
}

/// A resource principal session token, with the claim calops needs (`exp`).
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken {
    raw: String,
    /// Unix seconds.
    pub expires_at: u64,
}

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl SessionToken {
    /// Parse a JWT's payload for `exp` (the signature is OCI's to check). The error says what
    /// is wrong without the token.
    pub fn parse(raw: &str) -> Result<SessionToken, String> {
        let raw = raw.trim();
        let parts: Vec<&str> = raw.split('.').collect();
        if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
            return Err("is not a session token (a JWT of three dot-separated parts)".into());
        }
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1].trim_end_matches('='))
            .map_err(|_| "is not a session token (its payload is not base64url)".to_string())?;
        let claims: serde_json::Value = serde_json::from_slice(&payload)
            .map_err(|_| "is not a session token (its payload is not JSON)".to_string())?;
        let exp = claims["exp"]
            .as_f64()
            .filter(|e| e.is_finite() && *e >= 0.0)
            .ok_or_else(|| "is not a session token (no numeric `exp` claim)".to_string())?;
        Ok(SessionToken {
            raw: raw.to_string(),
            expires_at: exp as u64,
        })
    }

    fn secs(now: SystemTime) -> u64 {
        now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
    }

    /// Expired, or expiring within `window` (the SDKs refresh then).
    pub fn expires_within(&self, now: SystemTime, window: Duration) -> bool {
        self.expires_at <= Self::secs(now) + window.as_secs()
    }

    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.expires_at <= Self::secs(now)
    }

    fn expiry_text(&self) -> String {
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(self.expires_at))
    }
}

struct Current {
    token: SessionToken,
    signer: Signer,
}

/// The resource principal: signs as `ST$<token>` with its key, reading both again when needed.
pub struct ResourcePrincipal {
    config: PrincipalConfig,
    current: Mutex<Current>,
}

impl std::fmt::Debug for ResourcePrincipal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourcePrincipal")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ResourcePrincipal {
    /// Read the token and key now. Refuses a token that has already expired.
    pub fn load(
        config: PrincipalConfig,
        now: SystemTime,
    ) -> Result<ResourcePrincipal, PrincipalError> {
        let current = read(&config, now)?;
        Ok(ResourcePrincipal {
            config,
            current: Mutex::new(current),
        })
    }

    /// [`PrincipalConfig::from_env`], then [`Self::load`].
    pub fn from_env(
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ResourcePrincipal, PrincipalError> {
        Self::load(PrincipalConfig::from_env(env)?, SystemTime::now())
    }

    pub fn region(&self) -> &str {
        &self.config.region
    }

    /// When the token in use expires (unix seconds).
    pub fn expires_at(&self) -> u64 {
        self.lock().token.expires_at
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The signer to use now. When the token expires within [`REFRESH_WINDOW`], the token and
    /// key are read again first; if that fails or gives the same token, the one in hand is used
    /// while it has not expired.
    pub fn signer(&self, now: SystemTime) -> Result<Signer, PrincipalError> {
        let mut cur = self.lock();
        if cur.token.expires_within(now, REFRESH_WINDOW) {
            match read(&self.config, now) {
                Ok(fresh) => *cur = fresh,
                Err(e) if cur.token.is_expired(now) => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "the resource principal token expires soon and reading it again failed; using the current one")
                }
            }
        }
        Ok(cur.signer.clone())
    }

    /// Read the token and key again after the service refused them (a 401): OCI may have
    /// rotated them since they were read.
    pub fn refresh(&self, now: SystemTime) -> Result<Signer, PrincipalError> {
        let mut cur = self.lock();
        *cur = read(&self.config, now)?;
        Ok(cur.signer.clone())
    }
}

/// Read the token and key (the side effect) and check the token has not expired.
fn read(config: &PrincipalConfig, now: SystemTime) -> Result<Current, PrincipalError> {
    let token =
        SessionToken::parse(&config.rpst.read(RPST_VAR)?).map_err(|m| problem(RPST_VAR, m))?;
    if token.is_expired(now) {
        return Err(problem(
            RPST_VAR,
            format!(
                "the resource principal session token expired at {}; OCI renews it in place, so a token that stays expired means the container runs outside a live container instance (or the clock is wrong): restart the container instance",
                token.expiry_text()
            ),
        ));
    }
    let pass = match &config.passphrase {
        Some(p) => Some(PassPhrase::new(p.read(PASSPHRASE_VAR)?.trim().to_string())),
        None => None,
    };
    let pem = config.private_pem.read(PRIVATE_PEM_VAR)?;
    let where_ = match &config.private_pem {
        Source::File(p) => p.clone(),
        Source::Inline(_) => PathBuf::from(PRIVATE_PEM_VAR),
    };
    let key = keys::parse_private_key_pem(&pem, pass.as_ref(), &where_).map_err(|e| match e {
        KeyError::PassPhraseRequired { .. } => problem(
            PASSPHRASE_VAR,
            "not set, but the resource principal's key is encrypted",
        ),
        KeyError::Decrypt { .. } => problem(
            PASSPHRASE_VAR,
            "does not decrypt the resource principal's key",
        ),
        _ => problem(
            PRIVATE_PEM_VAR,
            "is not an RSA private key in PEM form (PKCS#1 or PKCS#8)",
        ),
    })?;
    Ok(Current {
        signer: Signer::with_security_token(&token.raw, key),
        token,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A JWT-shaped token expiring at `exp` (unix seconds); the signature part is not checked.
    pub(crate) fn token(exp: u64, id: &str) -> String {
        let b = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        format!(
            "{}.{}.c2lnbmF0dXJl",
            b(serde_json::json!({"alg": "RS256", "typ": "JWT"})),
            b(serde_json::json!({"exp": exp, "res_tenant": "ocid1.tenancy.oc1..t", "jti": id}))
        )
    }

    pub(crate) fn test_key_pem() -> String {
        use rsa::pkcs8::EncodePrivateKey;
        static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        KEY.get_or_init(|| {
            let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
            key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
                .unwrap()
                .to_string()
        })
        .clone()
    }

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_750_000_000)
    }

    fn env(pairs: &[(&str, String)]) -> impl Fn(&str) -> Option<String> {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        move |n: &str| m.get(n).cloned()
    }

    #[test]
    fn tokens_expire_with_the_sdk_buffer() {
        let t = SessionToken::parse(&token(1_750_000_000 + 600, "a")).unwrap();
        assert!(!t.is_expired(now()));
        assert!(!t.expires_within(now(), REFRESH_WINDOW), "10 min left");
        let soon = SessionToken::parse(&token(1_750_000_000 + 299, "b")).unwrap();
        assert!(
            soon.expires_within(now(), REFRESH_WINDOW),
            "under 5 min left"
        );
        assert!(!soon.is_expired(now()));
        let gone = SessionToken::parse(&token(1_750_000_000, "c")).unwrap();
        assert!(gone.is_expired(now()));
        for bad in ["x", "a.b", "a.!!.c", "a.e30.c"] {
            let e = SessionToken::parse(bad).unwrap_err();
            assert!(e.contains("session token"), "{e}");
        }
        assert!(!format!("{t:?}").contains(&token(1_750_000_000 + 600, "a")));
    }

    #[test]
    fn the_variables_are_checked_and_named() {
        let full = [
            (VERSION_VAR, "2.2".to_string()),
            (RPST_VAR, token(1_750_000_600, "a")),
            (PRIVATE_PEM_VAR, "/run/rp/key.pem".to_string()),
            (REGION_VAR, "ap-sydney-1".to_string()),
        ];
        let c = PrincipalConfig::from_env(&env(&full)).unwrap();
        assert_eq!(c.region, "ap-sydney-1");
        assert_eq!(c.private_pem, Source::File("/run/rp/key.pem".into()));
        assert!(matches!(c.rpst, Source::Inline(_)));
        assert!(!format!("{c:?}").contains("eyJ"), "{c:?}");
        for missing in [VERSION_VAR, RPST_VAR, PRIVATE_PEM_VAR, REGION_VAR] {
            let some: Vec<_> = full
                .iter()
                .filter(|(k, _)| *k != missing)
                .cloned()
                .collect();
            let e = PrincipalConfig::from_env(&env(&some)).unwrap_err();
            assert_eq!(e.variable, missing, "{e}");
        }
        let mut v1 = full.to_vec();
        v1[0].1 = "1.1".into();
        assert_eq!(
            PrincipalConfig::from_env(&env(&v1)).unwrap_err().variable,
            VERSION_VAR
        );
        let mut mixed = full.to_vec();
        mixed.push((PASSPHRASE_VAR, "inline-pass".into()));
        let e = PrincipalConfig::from_env(&env(&mixed)).unwrap_err();
        assert_eq!(e.variable, PASSPHRASE_VAR);
        assert!(!e.to_string().contains("inline-pass"));
    }

    /// Files are read again when the token expires within five minutes, and on `refresh`; an
    /// expired token is refused by name.
    #[test]
    fn file_based_tokens_are_read_again_when_they_expire_soon() {
        let dir = tempfile::tempdir().unwrap();
        let (tok, key) = (dir.path().join("rpst"), dir.path().join("key.pem"));
        std::fs::write(&key, test_key_pem()).unwrap();
        let t0 = 1_750_000_000u64;
        std::fs::write(&tok, token(t0 + 3600, "first")).unwrap();
        let config = PrincipalConfig::from_env(&env(&[
            (VERSION_VAR, "2.2".into()),
            (RPST_VAR, tok.display().to_string()),
            (PRIVATE_PEM_VAR, key.display().to_string()),
            (REGION_VAR, "ap-sydney-1".into()),
        ]))
        .unwrap();
        let rp = ResourcePrincipal::load(config.clone(), now()).unwrap();
        let first = rp.signer(now()).unwrap();
        assert!(
            first.key_id().starts_with("ST$")
                && first.key_id().ends_with(&token(t0 + 3600, "first"))
        );
        // A rotation on disk is not noticed while the token in hand is good for long...
        std::fs::write(&tok, token(t0 + 7200, "second")).unwrap();
        assert_eq!(rp.signer(now()).unwrap().key_id(), first.key_id());
        // ... but is once it expires within five minutes,
        let later = now() + Duration::from_secs(3600 - 299);
        let second = rp.signer(later).unwrap();
        assert!(second.key_id().ends_with(&token(t0 + 7200, "second")));
        // and at once on refresh (after a 401).
        std::fs::write(&tok, token(t0 + 9000, "third")).unwrap();
        assert!(rp
            .refresh(now())
            .unwrap()
            .key_id()
            .ends_with(&token(t0 + 9000, "third")));
        // An expired token is refused, naming the variable, without the token.
        std::fs::write(&tok, token(t0 - 1, "old")).unwrap();
        let e = ResourcePrincipal::load(config, now()).unwrap_err();
        assert_eq!(e.variable, RPST_VAR);
        assert!(e.message.contains("expired"), "{e}");
        assert!(!e.to_string().contains("eyJ"), "{e}");
        // A key that is not one is named too (and not printed).
        std::fs::write(&tok, token(t0 + 3600, "x")).unwrap();
        std::fs::write(&key, "not a key").unwrap();
        let e = rp.refresh(now()).unwrap_err();
        assert_eq!(e.variable, PRIVATE_PEM_VAR);
        assert!(!e.to_string().contains("not a key"));
    }
}
