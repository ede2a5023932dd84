//! Service configuration from flags and environment, checked at start with every problem
//! reported together.

use crate::service::problem::Problem;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

/// What the user gave, unparsed (flags, with environment variables as fallbacks). `Debug`
/// hides the passwords in the URLs.
#[derive(Clone, Default)]
pub struct RawConfig {
    pub listen: Option<String>,
    pub database_url: Option<String>,
    pub redis_url: Option<String>,
    pub object_storage_url: Option<String>,
    pub admin_token_ref: Option<String>,
    pub reuse_port: bool,
    /// A second, private listener (not shared) for verifying a new release before it gets traffic.
    pub private_listen: Option<String>,
    pub db_pool_size: Option<String>,
    pub shutdown_timeout: Option<String>,
    /// `N/PERIOD` or `off` (default 60/min).
    pub rate_limit_availability: Option<String>,
    /// `N/PERIOD` or `off` (default 20/min).
    pub rate_limit_bookings: Option<String>,
    /// How long a Redis call may take before the in-process fallback is used (default 250ms).
    pub redis_timeout: Option<String>,
    /// `on` or `off` (default on).
    pub slot_cache: Option<String>,
    /// `on` or `off` (default off): also serve `/metrics` on the public listener.
    pub metrics_public: Option<String>,
}

impl std::fmt::Debug for RawConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = |u: &Option<String>| u.as_deref().map(redact_url);
        f.debug_struct("RawConfig")
            .field("listen", &self.listen)
            .field("database_url", &url(&self.database_url))
            .field("redis_url", &url(&self.redis_url))
            .field("object_storage_url", &url(&self.object_storage_url))
            .field("admin_token_ref", &self.admin_token_ref)
            .field("reuse_port", &self.reuse_port)
            .field("private_listen", &self.private_listen)
            .field("db_pool_size", &self.db_pool_size)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("rate_limit_availability", &self.rate_limit_availability)
            .field("rate_limit_bookings", &self.rate_limit_bookings)
            .field("redis_timeout", &self.redis_timeout)
            .field("slot_cache", &self.slot_cache)
            .field("metrics_public", &self.metrics_public)
            .finish()
    }
}

#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// How to reach the database (its password resolved, TLS as `sslmode` says).
    pub database: crate::pg::Connector,
    pub redis_url: Option<String>,
    pub object_storage_url: Option<String>,
    /// The OCI client signing as the container instance's resource principal, when the
    /// service runs as one (for the native Object Storage calls).
    pub oci: Option<crate::oci::client::OciClient>,
    /// The bootstrap admin token, resolved from its reference (never logged).
    pub admin_token: Option<String>,
    pub reuse_port: bool,
    pub private_listen: Option<SocketAddr>,
    pub db_pool_size: usize,
    pub shutdown_timeout: Duration,
    /// Rate limits per API key.
    pub rate_limits: crate::service::ratelimit::policy::Limits,
    pub redis_timeout: Duration,
    /// Webhook delivery (`CALOPS_WEBHOOK_*` environment variables).
    pub webhooks: crate::service::webhooks::Settings,
    /// Connected calendars (`CALOPS_CALDAV_*` environment variables).
    pub caldav: crate::service::caldav::Settings,
    /// Serve slot queries from memory, kept fresh by PostgreSQL notifications
    /// (`service::store::cache`).
    pub slot_cache: bool,
    /// The OCI Monitoring exporter (`CALOPS_METRICS_*`); `None` when off.
    pub telemetry: Option<crate::service::telemetry::Settings>,
    /// Serve `/metrics` on the public listener too (it is always on the private one).
    pub metrics_public: bool,
    /// The booking pages' signing key, resolved from `CALOPS_PAGE_KEY_REF` (never logged);
    /// without one the service makes a random key at start.
    pub page_key: Option<String>,
    /// E-mail (`CALOPS_MAIL_*`, `CALOPS_SMTP_*`, `CALOPS_PUBLIC_URL`); off without a transport.
    pub mail: crate::service::mail::Settings,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("database", &self.database)
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field(
                "object_storage_url",
                &self.object_storage_url.as_deref().map(redact_url),
            )
            .field("oci", &self.oci.is_some())
            .field("admin_token", &self.admin_token.as_ref().map(|_| "***"))
            .field("reuse_port", &self.reuse_port)
            .field("private_listen", &self.private_listen)
            .field("db_pool_size", &self.db_pool_size)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("rate_limits", &self.rate_limits)
            .field("redis_timeout", &self.redis_timeout)
            .field("webhooks", &self.webhooks)
            .field("caldav", &self.caldav)
            .field("slot_cache", &self.slot_cache)
            .field("telemetry", &self.telemetry)
            .field("metrics_public", &self.metrics_public)
            .field("page_key", &self.page_key.as_ref().map(|_| "***"))
            .field("mail", &self.mail)
            .finish()
    }
}

/// A URL with any password replaced by `***`.
pub fn redact_url(u: &str) -> String {
    match url::Url::parse(u) {
        Ok(mut p) => {
            if p.password().is_some() {
                let _ = p.set_password(Some("***"));
            }
            p.to_string()
        }
        Err(_) => "<unparsable URL>".into(),
    }
}

pub const DEFAULT_LISTEN: &str = "0.0.0.0:3000";
/// The shortest bootstrap admin token accepted.
pub const MIN_TOKEN_LEN: usize = 24;
/// The shortest booking-page key accepted.
pub const MIN_PAGE_KEY_LEN: usize = 32;

impl RawConfig {
    /// The secret references given (flags and environment), by setting.
    pub fn references(&self, env: &dyn Fn(&str) -> Option<String>) -> Vec<(&'static str, String)> {
        crate::service::secrets::given(self.admin_token_ref.as_deref(), env)
    }

    /// Validate everything, resolving `env:NAME` references from `env` (a `vault:` reference
    /// is a problem here: [`Self::validate_with`] takes secrets resolved through Vault).
    pub fn validate(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Vec<Problem>> {
        let secrets = crate::service::secrets::Secrets::resolve_env(&self.references(env), env);
        self.validate_with(env, &secrets, None)
    }

    /// Validate everything with the secrets resolved already (their problems are reported
    /// with the rest), and the resource principal's client when there is one.
    pub fn validate_with(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
        secrets: &crate::service::secrets::Secrets,
        oci: Option<crate::oci::client::OciClient>,
    ) -> Result<Config, Vec<Problem>> {
        use crate::runtime::env::var;
        let mut problems = secrets.problems.clone();
        let mut problem =
            |setting: &'static str, message: String| problems.push(Problem { setting, message });
        let listen_text = self.listen.clone().unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen = SocketAddr::from_str(&listen_text)
            .map_err(|_| {
                problem(
                    "--listen / CALOPS_LISTEN",
                    format!(
                        "{listen_text:?} is not an address: use HOST:PORT such as 0.0.0.0:3000"
                    ),
                )
            })
            .ok();
        let database = match crate::runtime::env::DatabaseSettings::from_env(
            self.database_url.as_deref(),
            env,
        ) {
            Err(ps) => {
                for (setting, message) in ps {
                    let setting = if setting == var::DATABASE_URL {
                        "--database-url / DATABASE_URL"
                    } else {
                        setting
                    };
                    problem(setting, message);
                }
                None
            }
            Ok(settings) => {
                let password = secrets.get(var::DATABASE_PASSWORD_REF);
                match crate::pg::Connector::new(&settings, password) {
                    Ok(c) => Some(c),
                    Err(m) => {
                        let (setting, message) = match m.split_once(": ") {
                            Some(("CALOPS_DATABASE_CA_CERT", rest)) => {
                                (var::DATABASE_CA_CERT, rest.to_string())
                            }
                            _ => ("--database-url / DATABASE_URL", m.clone()),
                        };
                        problem(setting, message);
                        None
                    }
                }
            }
        };
        let redis_url = match self.redis_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(u) => {
                let ok = url::Url::parse(u)
                    .map(|p| matches!(p.scheme(), "redis" | "rediss") && p.host().is_some())
                    .unwrap_or(false);
                if !ok {
                    problem(
                        "--redis-url / REDIS_URL",
                        format!("{} is not a Redis URL (redis://host:port)", redact_url(u)),
                    );
                }
                Some(u.to_string())
            }
        };
        let object_storage_url = match self.object_storage_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(u) => {
                // Checks the form and resolves the credential references (values never shown).
                match crate::service::objstore::Spec::parse(u, env) {
                    Err(why) => problem(
                        "--object-storage-url / CALOPS_OBJECT_STORAGE_URL",
                        format!("{}: {why}", redact_url(u.split('?').next().unwrap_or(u))),
                    ),
                    Ok(crate::service::objstore::Spec::Oci(_)) if oci.is_none() => problem(
                        "--object-storage-url / CALOPS_OBJECT_STORAGE_URL",
                        format!("{} is OCI Object Storage's native API, which the service calls as the container instance's resource principal, but OCI_RESOURCE_PRINCIPAL_VERSION is not set; fix: run on an OCI container instance, or use s3:// or file:// storage", redact_url(u)),
                    ),
                    Ok(_) => {}
                }
                Some(u.to_string())
            }
        };
        let admin_token = match secrets.get(var::ADMIN_TOKEN_REF) {
            None => None,
            Some(v) if v.trim().len() < MIN_TOKEN_LEN => {
                problem(
                    "--admin-token-ref / CALOPS_ADMIN_TOKEN_REF",
                    format!("the token it refers to is shorter than {MIN_TOKEN_LEN} characters; generate one with `openssl rand -hex 32`"),
                );
                None
            }
            Some(v) => Some(v.trim().to_string()),
        };
        let page_key = match secrets.get(var::PAGE_KEY_REF) {
            None => None,
            Some(v) if v.trim().len() < MIN_PAGE_KEY_LEN => {
                problem(
                    var::PAGE_KEY_REF,
                    format!("the key it refers to is shorter than {MIN_PAGE_KEY_LEN} characters; generate one with `openssl rand -hex 32`"),
                );
                None
            }
            Some(v) => Some(v.trim().to_string()),
        };
        let db_pool_size = match self.db_pool_size.as_deref() {
            None => 16,
            Some(s) => match s.parse::<usize>() {
                Ok(n) if (1..=1000).contains(&n) => n,
                _ => {
                    problem(
                        "--db-pool-size / CALOPS_DB_POOL_SIZE",
                        format!("{s:?}: use 1 to 1000"),
                    );
                    16
                }
            },
        };
        let shutdown_timeout = match self.shutdown_timeout.as_deref() {
            None => Duration::from_secs(20),
            Some(s) => match humantime::parse_duration(s) {
                Ok(d) if d <= Duration::from_secs(3600) => d,
                _ => {
                    problem(
                        "--shutdown-timeout / CALOPS_SHUTDOWN_TIMEOUT",
                        format!("{s:?}: use a duration such as 20s, at most 1h"),
                    );
                    Duration::from_secs(20)
                }
            },
        };
        let private_listen = match self.private_listen.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(t) => match SocketAddr::from_str(t) {
                Ok(a) => Some(a),
                Err(_) => {
                    problem(
                        "--private-listen / CALOPS_PRIVATE_LISTEN",
                        format!("{t:?} is not an address: use HOST:PORT such as 127.0.0.1:3001"),
                    );
                    None
                }
            },
        };
        let mut limit =
            |setting: &'static str,
             text: &Option<String>,
             default: crate::service::ratelimit::policy::Limit| {
                match text.as_deref().map(str::trim) {
                    None | Some("") => Some(default),
                    Some(t) => {
                        crate::service::ratelimit::policy::parse_limit(t).unwrap_or_else(|m| {
                            problem(setting, m);
                            Some(default)
                        })
                    }
                }
            };
        let rate_limits = crate::service::ratelimit::policy::Limits {
            availability: limit(
                "--rate-limit-availability / CALOPS_RATE_LIMIT_AVAILABILITY",
                &self.rate_limit_availability,
                crate::service::ratelimit::policy::DEFAULT_AVAILABILITY,
            ),
            bookings: limit(
                "--rate-limit-bookings / CALOPS_RATE_LIMIT_BOOKINGS",
                &self.rate_limit_bookings,
                crate::service::ratelimit::policy::DEFAULT_BOOKINGS,
            ),
        };
        let default_redis_timeout = crate::service::ratelimit::redis_conn::DEFAULT_TIMEOUT;
        let redis_timeout = match self.redis_timeout.as_deref().map(str::trim) {
            None | Some("") => default_redis_timeout,
            Some(s) => match humantime::parse_duration(s) {
                Ok(d) if d >= Duration::from_millis(10) && d <= Duration::from_secs(10) => d,
                _ => {
                    problem(
                        "--redis-timeout / CALOPS_REDIS_TIMEOUT",
                        format!("{s:?}: use a duration from 10ms to 10s, such as 250ms"),
                    );
                    default_redis_timeout
                }
            },
        };
        let mut on_off = |setting: &'static str, text: &Option<String>, default: bool| match text
            .as_deref()
            .map(str::trim)
        {
            None | Some("") => default,
            Some("on") => true,
            Some("off") => false,
            Some(other) => {
                problem(setting, format!("{other:?}: use on or off"));
                default
            }
        };
        let slot_cache = on_off("--slot-cache / CALOPS_SLOT_CACHE", &self.slot_cache, true);
        let metrics_public = on_off(
            "--metrics-public / CALOPS_METRICS_PUBLIC",
            &self.metrics_public,
            false,
        );
        let webhooks = crate::service::webhooks::Settings::from_env(
            env,
            secrets.get(var::WEBHOOK_SECRET_KEY_REF),
        )
        .unwrap_or_else(|p| {
            problems.extend(p);
            Default::default()
        });
        let telemetry = crate::service::telemetry::Settings::from_env(env).unwrap_or_else(|p| {
            problems.extend(p);
            None
        });
        if telemetry.is_some() && oci.is_none() {
            problems.push(Problem {
                setting: crate::runtime::telemetry::var::COMPARTMENT_ID,
                message: "turns on posting metrics to OCI Monitoring, which the service does as the container instance's resource principal, but OCI_RESOURCE_PRINCIPAL_VERSION is not set; fix: run on an OCI container instance, or unset CALOPS_METRICS_NAMESPACE and CALOPS_METRICS_COMPARTMENT_ID".into(),
            });
        }
        let caldav = crate::service::caldav::Settings::from_env(env).unwrap_or_else(|p| {
            problems.extend(p);
            Default::default()
        });
        let mail = crate::service::mail::Settings::from_env(env, secrets).unwrap_or_else(|p| {
            problems.extend(p);
            Default::default()
        });
        match (listen, database) {
            (Some(listen), Some(database)) if problems.is_empty() => Ok(Config {
                listen,
                database,
                redis_url,
                object_storage_url,
                oci,
                admin_token,
                reuse_port: self.reuse_port,
                private_listen,
                db_pool_size,
                shutdown_timeout,
                rate_limits,
                redis_timeout,
                webhooks,
                caldav,
                slot_cache,
                telemetry,
                metrics_public,
                page_key,
                mail,
            }),
            _ => Err(problems),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let raw = RawConfig {
            listen: Some("localhost".into()),
            database_url: None,
            redis_url: Some("http://x".into()),
            object_storage_url: Some("ftp://x".into()),
            admin_token_ref: Some("hunter2hunter2".into()),
            db_pool_size: Some("0".into()),
            shutdown_timeout: Some("forever".into()),
            reuse_port: false,
            private_listen: None,
            rate_limit_availability: Some("60 per minute".into()),
            rate_limit_bookings: Some("0/min".into()),
            redis_timeout: Some("1h".into()),
            slot_cache: Some("sometimes".into()),
            metrics_public: Some("yes".into()),
        };
        let problems = raw.validate(&no_env).unwrap_err();
        assert_eq!(problems.len(), 12, "{problems:#?}");
        assert!(problems
            .iter()
            .any(|p| p.setting == "--slot-cache / CALOPS_SLOT_CACHE"));
        // A token passed where its reference belongs is not echoed.
        assert!(problems.iter().any(|p| p.message.contains("env:NAME")));
        assert!(!problems.iter().any(|p| p.message.contains("hunter2")));
    }

    #[test]
    fn references_resolve_and_secrets_are_redacted() {
        let raw = RawConfig {
            database_url: Some("postgres://calops:s3cret@127.0.0.1:5432/calops".into()),
            admin_token_ref: Some("env:BOOT".into()),
            ..Default::default()
        };
        let env = |n: &str| (n == "BOOT").then(|| "x".repeat(32));
        let c = raw.validate(&env).unwrap();
        assert_eq!(c.admin_token.as_deref(), Some("x".repeat(32).as_str()));
        assert_eq!(c.listen.to_string(), "0.0.0.0:3000");
        assert_eq!(
            c.rate_limits,
            crate::service::ratelimit::policy::Limits::default()
        );
        assert_eq!(c.redis_timeout, Duration::from_millis(250));
        assert!(c.slot_cache, "the slot cache is on by default");
        assert!(!c.metrics_public, "/metrics is private by default");
        let tuned = RawConfig {
            rate_limit_availability: Some("120/min".into()),
            rate_limit_bookings: Some("off".into()),
            redis_timeout: Some("50ms".into()),
            slot_cache: Some("off".into()),
            ..raw.clone()
        }
        .validate(&env)
        .unwrap();
        assert_eq!(tuned.rate_limits.availability.unwrap().requests, 120);
        assert_eq!(tuned.rate_limits.bookings, None);
        assert_eq!(tuned.redis_timeout, Duration::from_millis(50));
        assert!(!tuned.slot_cache);
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("xxxxxxxx"),
            "{shown}"
        );
        let raw_shown = format!(
            "{:?}",
            RawConfig {
                redis_url: Some("rediss://:r3dispw@cache:6379".into()),
                object_storage_url: Some("https://u:0bjpw@host/bucket".into()),
                ..raw.clone()
            }
        );
        for secret in ["s3cret", "r3dispw", "0bjpw"] {
            assert!(!raw_shown.contains(secret), "{raw_shown}");
        }

        let missing = RawConfig {
            admin_token_ref: Some("env:NOPE".into()),
            ..raw.clone()
        };
        let p = missing.validate(&env).unwrap_err();
        assert!(p[0].message.contains("NOPE"));
        let short = RawConfig {
            admin_token_ref: Some("env:SHORT".into()),
            ..raw
        };
        let p = short
            .validate(&|n| (n == "SHORT").then(|| "abc".into()))
            .unwrap_err();
        assert!(p[0].message.contains("shorter"));
        assert!(!p[0].message.contains("abc"));
    }

    /// The database from the parts the OCI stack gives, its password by reference; a Vault
    /// reference needs the resource principal, and says so naming its variable.
    #[test]
    fn the_database_comes_from_parts_and_references() {
        let env = |n: &str| {
            match n {
                "CALOPS_DATABASE_HOST" => Some("db.example"),
                "CALOPS_DATABASE_USER" => Some("calops"),
                "CALOPS_DATABASE_NAME" => Some("postgres"),
                "CALOPS_DATABASE_SSLMODE" => Some("require"),
                "CALOPS_DATABASE_PASSWORD_REF" => Some("env:DB_PW"),
                "DB_PW" => Some("pw-s3cret"),
                _ => None,
            }
            .map(String::from)
        };
        let c = RawConfig::default().validate(&env).unwrap();
        assert_eq!(c.database.describe(), "calops@db.example:5432/postgres");
        assert_eq!(c.database.config().get_password(), Some(&b"pw-s3cret"[..]));
        assert!(!format!("{c:?}").contains("pw-s3cret"));
        let vault = |n: &str| match n {
            "CALOPS_DATABASE_PASSWORD_REF" => {
                Some("vault:ocid1.vaultsecret.oc1.ap-sydney-1.db".to_string())
            }
            other => env(other),
        };
        let p = RawConfig::default().validate(&vault).unwrap_err();
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].setting, "CALOPS_DATABASE_PASSWORD_REF");
        assert!(p[0].message.contains("resource principal"), "{p:?}");
        let native = RawConfig {
            object_storage_url: Some(
                "https://objectstorage.ap-sydney-1.oraclecloud.com/n/ns/b/bucket".into(),
            ),
            ..Default::default()
        };
        let p = native.validate(&env).unwrap_err();
        assert!(
            p[0].message.contains("OCI_RESOURCE_PRINCIPAL_VERSION"),
            "{p:?}"
        );
    }

    #[test]
    fn the_page_key_resolves_from_its_reference_and_is_never_shown() {
        let key = "k".repeat(40);
        let with = |pk: &'static str, value: String| {
            move |n: &str| match n {
                "CALOPS_PAGE_KEY_REF" => Some(pk.to_string()),
                "PK" => Some(value.clone()),
                _ => None,
            }
        };
        let base = RawConfig {
            database_url: Some("postgres://u@127.0.0.1/db".into()),
            ..Default::default()
        };
        let c = base.validate(&with("env:PK", key.clone())).unwrap();
        assert_eq!(c.page_key.as_deref(), Some(key.as_str()));
        assert!(!format!("{c:?}").contains(&key));
        assert_eq!(base.validate(&no_env).unwrap().page_key, None);
        let literal = |n: &str| (n == "CALOPS_PAGE_KEY_REF").then(|| key.clone());
        let p = base.validate(&literal).unwrap_err();
        assert_eq!(p[0].setting, "CALOPS_PAGE_KEY_REF", "{p:?}");
        assert!(
            p[0].message.contains("env:NAME") && !p[0].message.contains(&key),
            "{p:?}"
        );
        let p = base
            .validate(&with("env:PK", "short-secret".into()))
            .unwrap_err();
        assert_eq!(p[0].setting, "CALOPS_PAGE_KEY_REF", "{p:?}");
        assert!(p[0].message.contains("shorter") && !p[0].message.contains("short-secret"));
    }
}
