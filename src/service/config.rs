//! Service configuration from flags and environment, checked at start with every problem
//! reported together.

use crate::service::problem::Problem;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

/// What the user gave, unparsed (flags, with environment variables as fallbacks).
#[derive(Debug, Clone, Default)]
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
}

#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    pub redis_url: Option<String>,
    pub object_storage_url: Option<String>,
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
            .field("database_url", &redact_url(&self.database_url))
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field(
                "object_storage_url",
                &self.object_storage_url.as_deref().map(redact_url),
            )
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

/// The booking pages' key from `CALOPS_PAGE_KEY_REF` (`env:NAME`); `Ok(None)` when unset.
pub fn page_key(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<String>, Problem> {
    const SETTING: &str = "CALOPS_PAGE_KEY_REF";
    let Some(r) = env(SETTING)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
    else {
        return Ok(None);
    };
    let problem = |message: String| Problem {
        setting: SETTING,
        message,
    };
    let name = r.strip_prefix("env:").filter(|n| !n.is_empty()).ok_or_else(|| {
        problem("is not a reference: use env:NAME, naming the environment variable that holds the key (at least 32 characters, e.g. from `openssl rand -hex 32`)".into())
    })?;
    match env(name) {
        None => Err(problem(format!(
            "refers to environment variable {name}, which is not set"
        ))),
        Some(v) if v.trim().len() < MIN_PAGE_KEY_LEN => Err(problem(format!(
            "the key in {name} is shorter than {MIN_PAGE_KEY_LEN} characters; generate one with `openssl rand -hex 32`"
        ))),
        Some(v) => Ok(Some(v.trim().to_string())),
    }
}

impl RawConfig {
    /// Validate everything; `env` resolves `env:NAME` references.
    pub fn validate(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Vec<Problem>> {
        let mut problems = Vec::new();
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
        let database_url = match self.database_url.as_deref().map(str::trim) {
            None | Some("") => {
                problem(
                    "--database-url / DATABASE_URL",
                    "required: a PostgreSQL URL such as postgres://user:password@127.0.0.1:5432/calops".into(),
                );
                None
            }
            Some(u) => {
                let scheme_ok = u.starts_with("postgres://") || u.starts_with("postgresql://");
                if !scheme_ok || tokio_postgres::Config::from_str(u).is_err() {
                    problem(
                        "--database-url / DATABASE_URL",
                        format!("{} is not a PostgreSQL URL (postgres://user:password@host:port/database)", redact_url(u)),
                    );
                    None
                } else {
                    Some(u.to_string())
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
                if let Err(why) = crate::service::objstore::Spec::parse(u, env) {
                    problem(
                        "--object-storage-url / CALOPS_OBJECT_STORAGE_URL",
                        format!("{}: {why}", redact_url(u.split('?').next().unwrap_or(u))),
                    );
                }
                Some(u.to_string())
            }
        };
        let admin_token = match self.admin_token_ref.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(r) => match r.strip_prefix("env:") {
                Some(name) if !name.is_empty() => match env(name) {
                    None => {
                        problem(
                            "--admin-token-ref / CALOPS_ADMIN_TOKEN_REF",
                            format!("refers to environment variable {name}, which is not set"),
                        );
                        None
                    }
                    Some(v) if v.trim().len() < MIN_TOKEN_LEN => {
                        problem(
                            "--admin-token-ref / CALOPS_ADMIN_TOKEN_REF",
                            format!("the token in {name} is shorter than {MIN_TOKEN_LEN} characters; generate one with `openssl rand -hex 32`"),
                        );
                        None
                    }
                    Some(v) => Some(v.trim().to_string()),
                },
                _ => {
                    problem(
                        "--admin-token-ref / CALOPS_ADMIN_TOKEN_REF",
                        "is not a reference: use env:NAME, naming the environment variable that holds the token (the value is not shown; the token itself never goes on the command line)".into(),
                    );
                    None
                }
            },
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
        let slot_cache = match self.slot_cache.as_deref().map(str::trim) {
            None | Some("") | Some("on") => true,
            Some("off") => false,
            Some(other) => {
                problem(
                    "--slot-cache / CALOPS_SLOT_CACHE",
                    format!("{other:?}: use on or off"),
                );
                true
            }
        };
        let webhooks = crate::service::webhooks::Settings::from_env(env).unwrap_or_else(|p| {
            problems.extend(p);
            Default::default()
        });
        let caldav = crate::service::caldav::Settings::from_env(env).unwrap_or_else(|p| {
            problems.extend(p);
            Default::default()
        });
        let page_key = page_key(env).unwrap_or_else(|p| {
            problems.push(p);
            None
        });
        let mail = crate::service::mail::Settings::from_env(env).unwrap_or_else(|p| {
            problems.extend(p);
            Default::default()
        });
        match (listen, database_url) {
            (Some(listen), Some(database_url)) if problems.is_empty() => Ok(Config {
                listen,
                database_url,
                redis_url,
                object_storage_url,
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
        };
        let problems = raw.validate(&no_env).unwrap_err();
        assert_eq!(problems.len(), 11, "{problems:#?}");
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
        let p = short.validate(&|_| Some("abc".into())).unwrap_err();
        assert!(p[0].message.contains("shorter"));
        assert!(!p[0].message.contains("abc"));
    }

    #[test]
    fn the_page_key_resolves_from_its_reference_and_is_never_shown() {
        let key = "k".repeat(40);
        let env = |n: &str| match n {
            "CALOPS_PAGE_KEY_REF" => Some("env:PK".to_string()),
            "PK" => Some(key.clone()),
            _ => None,
        };
        assert_eq!(page_key(&env).unwrap().as_deref(), Some(key.as_str()));
        assert_eq!(page_key(&no_env).unwrap(), None);
        let literal = |n: &str| (n == "CALOPS_PAGE_KEY_REF").then(|| key.clone());
        let p = page_key(&literal).unwrap_err();
        assert!(
            p.message.contains("env:NAME") && !p.message.contains(&key),
            "{p}"
        );
        let short = |n: &str| match n {
            "CALOPS_PAGE_KEY_REF" => Some("env:PK".to_string()),
            "PK" => Some("short-secret".to_string()),
            _ => None,
        };
        let p = page_key(&short).unwrap_err();
        assert!(p.message.contains("shorter") && !p.message.contains("short-secret"));
        let c = RawConfig {
            database_url: Some("postgres://u@127.0.0.1/db".into()),
            ..Default::default()
        }
        .validate(&env)
        .unwrap();
        assert!(!format!("{c:?}").contains(&key));
    }
}
