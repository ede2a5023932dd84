//! E-mail to attendees, guests and hosts: confirmations, reschedules, cancellations (each with
//! an iTIP invitation) and reminders.
//!
//! - the outbox rows are written by triggers in the booking's own transaction (migration 10,
//!   `store::mail`), so a committed booking always has its messages and a rolled-back one none
//! - `compose`: the message of one outbox row (plain text, HTML, `text/calendar`), localized
//! - `transport`: SMTP (lettre, rustls; STARTTLS or TLS; credentials by reference) or a Maildir
//! - `delivery`: the background workers (claim with `FOR UPDATE SKIP LOCKED`, send, record)
//! - `pace`: the workers yield to bookings while this process is making them
//! - this module: the settings (`CALOPS_MAIL_*`, `CALOPS_SMTP_*`)

pub mod compose;
pub mod delivery;
pub mod pace;
pub mod transport;

use crate::service::problem::Problem;
use std::path::PathBuf;
use std::time::Duration;

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain connection upgraded with `STARTTLS`, which is required (port 587).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS at all: only for a relay on the same host or in tests.
    None,
}

/// Where messages go.
#[derive(Clone, PartialEq, Eq)]
pub enum Transport {
    Smtp {
        host: String,
        port: u16,
        security: Security,
        username: Option<String>,
        /// Resolved from `CALOPS_SMTP_PASSWORD_REF` (never shown).
        password: Option<String>,
        /// Extra trusted root certificates (PEM), for a relay with a private CA.
        ca_pem: Option<Vec<u8>>,
    },
    /// One file per message in `<dir>/new/` (written in `tmp/` first).
    Maildir(PathBuf),
    /// OCI Email Delivery's HTTPS submission (`SubmitRawEmail`: the whole MIME message,
    /// invitation included), signed as the container instance's resource principal; the
    /// sender (`CALOPS_MAIL_FROM`) must be an approved sender in `compartment_id`.
    OciEmail { compartment_id: String },
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Smtp {
                host,
                port,
                security,
                username,
                password,
                ca_pem,
            } => f
                .debug_struct("Smtp")
                .field("host", host)
                .field("port", port)
                .field("security", security)
                .field("username", username)
                .field("password", &password.as_ref().map(|_| "***"))
                .field("ca", &ca_pem.is_some())
                .finish(),
            Transport::Maildir(p) => f.debug_tuple("Maildir").field(p).finish(),
            Transport::OciEmail { compartment_id } => f
                .debug_struct("OciEmail")
                .field("compartment_id", compartment_id)
                .finish(),
        }
    }
}

/// The setting that refers to the SMTP password (`env:NAME` or `vault:<secret OCID>`).
pub const SMTP_PASSWORD_REF: &str = crate::runtime::env::var::SMTP_PASSWORD_REF;

/// Mail settings (environment variables `CALOPS_MAIL_*`, `CALOPS_SMTP_*`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `None`: mail is off (no outbox rows are written).
    pub transport: Option<Transport>,
    /// The sender address (`From`); the organization's name is its display name.
    pub from: String,
    /// The public address of the booking pages, for the links in messages (`None`: no links).
    pub public_url: Option<String>,
    /// Concurrent sends per process; 0 turns sending off in this process.
    pub workers: usize,
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Per-connection timeout.
    pub timeout: Duration,
    pub poll_interval: Duration,
    /// Sent, dead and skipped messages older than this are deleted.
    pub retention: Duration,
    /// How long the workers may hold mail back while this process keeps making bookings
    /// (`pace`; past it one worker sends until the bookings stop); zero: never.
    pub yield_max: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            transport: None,
            from: String::new(),
            public_url: None,
            workers: 4,
            max_attempts: 10,
            backoff_base: Duration::from_secs(30),
            backoff_max: Duration::from_secs(3600),
            timeout: Duration::from_secs(30),
            poll_interval: Duration::from_secs(5),
            retention: Duration::from_secs(30 * 86_400),
            yield_max: Duration::from_secs(10),
        }
    }
}

impl Settings {
    /// How long a claimed message is reserved for its worker: past it (the worker died), another
    /// worker may send it again. Longer than any send can take, so a live worker never loses it.
    pub fn lease(&self) -> Duration {
        self.timeout * 2 + Duration::from_secs(5)
    }

    /// Read the settings through `env`; every problem at once.
    /// The SMTP password is `secrets`' [`SMTP_PASSWORD_REF`] (resolved with the service's other
    /// secrets, `env:` or `vault:`; a reference that does not resolve is reported there).
    pub fn from_env(
        env: &dyn Fn(&str) -> Option<String>,
        secrets: &crate::service::secrets::Secrets,
    ) -> Result<Settings, Vec<Problem>> {
        let mut s = Settings::default();
        let mut r = crate::service::problem::EnvReader::new(env);
        let (mut workers, mut attempts) = (s.workers as u64, s.max_attempts as u64);
        r.int("CALOPS_MAIL_WORKERS", 0, 64, &mut workers);
        r.int("CALOPS_MAIL_MAX_ATTEMPTS", 1, 100, &mut attempts);
        (s.workers, s.max_attempts) = (workers as usize, attempts as u32);
        let ms = Duration::from_millis;
        let day = Duration::from_secs(86_400);
        r.duration("CALOPS_MAIL_BACKOFF", ms(1), day, &mut s.backoff_base);
        r.duration("CALOPS_MAIL_BACKOFF_MAX", ms(1), day, &mut s.backoff_max);
        r.duration("CALOPS_MAIL_TIMEOUT", ms(100), ms(600_000), &mut s.timeout);
        r.duration(
            "CALOPS_MAIL_POLL",
            ms(10),
            ms(600_000),
            &mut s.poll_interval,
        );
        r.duration(
            "CALOPS_MAIL_RETENTION",
            ms(1000),
            day * 3650,
            &mut s.retention,
        );
        r.duration(
            "CALOPS_MAIL_YIELD_MAX",
            ms(0),
            ms(600_000),
            &mut s.yield_max,
        );
        if s.backoff_max < s.backoff_base {
            s.backoff_max = s.backoff_base;
        }
        let get = |name: &str| r.get(name);
        let mut problems = Vec::new();
        let mut problem =
            |setting: &'static str, message: String| problems.push(Problem { setting, message });
        if let Some(u) = get("CALOPS_PUBLIC_URL") {
            match url::Url::parse(&u) {
                Ok(p) if matches!(p.scheme(), "http" | "https") && p.host().is_some() => {
                    s.public_url = Some(u.trim_end_matches('/').to_string())
                }
                _ => problem(
                    "CALOPS_PUBLIC_URL",
                    format!("{u:?} is not an http(s) URL such as https://book.example.com"),
                ),
            }
        }
        let transport = get("CALOPS_MAIL_TRANSPORT");
        match transport.as_deref() {
            None | Some("off") => {}
            Some(t) => match parse_transport(t, env, secrets) {
                Ok(t) => s.transport = Some(t),
                Err(p) => problems.extend(p),
            },
        }
        if s.transport.is_some() {
            match get("CALOPS_MAIL_FROM") {
                Some(f) if f.parse::<lettre::Address>().is_ok() => s.from = f,
                Some(f) => problems.push(Problem {
                    setting: "CALOPS_MAIL_FROM",
                    message: format!("{f:?} is not an e-mail address (use e.g. bookings@example.com)"),
                }),
                None => problems.push(Problem {
                    setting: "CALOPS_MAIL_FROM",
                    message: "is required with CALOPS_MAIL_TRANSPORT: the sender address, e.g. bookings@example.com".into(),
                }),
            }
        }
        r.problems.extend(problems);
        r.finish(s)
    }
}

/// `smtp://host[:port][?tls=starttls|none]`, `smtps://host[:port]`, `oci-email:COMPARTMENT`
/// or `maildir:PATH`.
fn parse_transport(
    t: &str,
    env: &dyn Fn(&str) -> Option<String>,
    secrets: &crate::service::secrets::Secrets,
) -> Result<Transport, Vec<Problem>> {
    const SETTING: &str = "CALOPS_MAIL_TRANSPORT";
    let bad = |message: String| {
        vec![Problem {
            setting: SETTING,
            message,
        }]
    };
    if let Some(dir) = t.strip_prefix("maildir:") {
        if dir.trim().is_empty() {
            return Err(bad(
                "maildir: needs a directory, e.g. maildir:.calops/local/mail".into(),
            ));
        }
        return Ok(Transport::Maildir(PathBuf::from(dir.trim())));
    }
    if let Some(c) = t.strip_prefix("oci-email:") {
        let c = c.trim();
        if !c.starts_with("ocid1.compartment.") && !c.starts_with("ocid1.tenancy.") {
            return Err(bad(format!(
                "oci-email: needs the OCID of the approved sender's compartment, e.g. oci-email:ocid1.compartment.oc1..aaaa (got {c:?})"
            )));
        }
        return Ok(Transport::OciEmail {
            compartment_id: c.to_string(),
        });
    }
    let u = url::Url::parse(t).map_err(|_| {
        bad(format!(
            "{t:?}: use smtp://HOST:587 (STARTTLS), smtps://HOST:465 (TLS), oci-email:COMPARTMENT_OCID, or maildir:DIRECTORY"
        ))
    })?;
    if !u.username().is_empty() || u.password().is_some() {
        return Err(bad(
            "has credentials in it: put the user in CALOPS_SMTP_USERNAME and the password behind CALOPS_SMTP_PASSWORD_REF (env:NAME or vault:<secret OCID>)".into(),
        ));
    }
    let (security, default_port) = match u.scheme() {
        "smtp" => (Security::StartTls, 587),
        "smtps" => (Security::Tls, 465),
        other => {
            return Err(bad(format!(
                "scheme {other:?}: use smtp:// (STARTTLS), smtps:// (TLS) or maildir:"
            )))
        }
    };
    let Some(host) = u.host_str().filter(|h| !h.is_empty()) else {
        return Err(bad(format!("{t:?} names no host")));
    };
    let mut security = security;
    for (k, v) in u.query_pairs() {
        match (k.as_ref(), v.as_ref(), security) {
            ("tls", "starttls", Security::StartTls) => {}
            ("tls", "none", Security::StartTls) => security = Security::None,
            _ => {
                return Err(bad(format!(
                    "unknown option {k}={v}: smtp:// takes ?tls=starttls (default) or ?tls=none (a local relay only)"
                )))
            }
        }
    }
    let mut problems = Vec::new();
    let username = env("CALOPS_SMTP_USERNAME")
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty());
    let password_given = env(SMTP_PASSWORD_REF).is_some_and(|v| !v.trim().is_empty());
    let password = secrets.get(SMTP_PASSWORD_REF).map(str::to_string);
    if password_given != username.is_some() {
        problems.push(Problem {
            setting: "CALOPS_SMTP_USERNAME",
            message: "and CALOPS_SMTP_PASSWORD_REF go together: set both or neither".into(),
        });
    }
    let ca_pem = match env("CALOPS_SMTP_CA_FILE").map(|v| v.trim().to_string()) {
        Some(p) if !p.is_empty() => match std::fs::read(&p) {
            Ok(b) if lettre::transport::smtp::client::Certificate::from_pem(&b).is_ok() => Some(b),
            Ok(_) => {
                problems.push(Problem {
                    setting: "CALOPS_SMTP_CA_FILE",
                    message: format!("{p}: not a PEM certificate"),
                });
                None
            }
            Err(e) => {
                problems.push(Problem {
                    setting: "CALOPS_SMTP_CA_FILE",
                    message: format!("{p}: {e}"),
                });
                None
            }
        },
        _ => None,
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Transport::Smtp {
        host: host.to_string(),
        port: u.port().unwrap_or(default_port),
        security,
        username,
        password,
        ca_pem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::secrets::Secrets;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |n| {
            pairs
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        }
    }

    /// The settings from `pairs` as `serve` reads them: the secrets resolved first (`env:` only
    /// here), their problems reported before the mail settings'.
    fn read(pairs: &[(&str, &str)]) -> Result<Settings, Vec<Problem>> {
        let env = env(pairs);
        let secrets = Secrets::resolve_env(&crate::service::secrets::given(None, &env), &env);
        match Settings::from_env(&env, &secrets) {
            Ok(s) if secrets.problems.is_empty() => Ok(s),
            Ok(_) => Err(secrets.problems.clone()),
            Err(p) => Err(secrets.problems.iter().cloned().chain(p).collect()),
        }
    }

    #[test]
    fn mail_is_off_by_default_and_transports_parse() {
        let s = read(&[]).unwrap();
        assert!(s.transport.is_none());
        let s = read(&[
            ("CALOPS_MAIL_TRANSPORT", "smtp://mail.example.com"),
            ("CALOPS_MAIL_FROM", "bookings@example.com"),
            ("CALOPS_SMTP_USERNAME", "ocid1.user..x"),
            ("CALOPS_SMTP_PASSWORD_REF", "env:SMTP_PW"),
            ("SMTP_PW", "hunter2-secret"),
        ])
        .unwrap();
        match s.transport.as_ref().unwrap() {
            Transport::Smtp {
                host,
                port,
                security,
                password,
                ..
            } => {
                assert_eq!((host.as_str(), *port), ("mail.example.com", 587));
                assert_eq!(*security, Security::StartTls);
                assert_eq!(password.as_deref(), Some("hunter2-secret"));
            }
            t => panic!("{t:?}"),
        }
        assert!(!format!("{s:?}").contains("hunter2"));
        let s = read(&[
            ("CALOPS_MAIL_TRANSPORT", "smtps://mail.example.com"),
            ("CALOPS_MAIL_FROM", "b@example.com"),
        ])
        .unwrap();
        assert!(matches!(
            s.transport,
            Some(Transport::Smtp {
                port: 465,
                security: Security::Tls,
                ..
            })
        ));
        let s = read(&[
            ("CALOPS_MAIL_TRANSPORT", "maildir:.calops/local/mail"),
            ("CALOPS_MAIL_FROM", "b@example.com"),
        ])
        .unwrap();
        assert_eq!(
            s.transport,
            Some(Transport::Maildir(".calops/local/mail".into()))
        );
    }

    #[test]
    fn bad_mail_settings_are_all_reported_without_secrets() {
        let p = read(&[
            (
                "CALOPS_MAIL_TRANSPORT",
                "smtp://user:hunter2@mail.example.com",
            ),
            ("CALOPS_MAIL_WORKERS", "lots"),
            ("CALOPS_PUBLIC_URL", "book.example.com"),
        ])
        .unwrap_err();
        let settings: Vec<&str> = p.iter().map(|p| p.setting).collect();
        assert_eq!(
            settings,
            [
                "CALOPS_MAIL_WORKERS",
                "CALOPS_PUBLIC_URL",
                "CALOPS_MAIL_TRANSPORT"
            ],
            "{p:?}"
        );
        assert!(!format!("{p:?}").contains("hunter2"));
        let p = read(&[
            ("CALOPS_MAIL_TRANSPORT", "smtp://mail.example.com"),
            ("CALOPS_MAIL_FROM", "not an address"),
            ("CALOPS_SMTP_USERNAME", "u"),
            ("CALOPS_SMTP_PASSWORD_REF", "hunter2"),
        ])
        .unwrap_err();
        // Both problems at once: the reference (resolved with the other secrets) and the sender.
        let settings: Vec<&str> = p.iter().map(|p| p.setting).collect();
        assert_eq!(
            settings,
            ["CALOPS_SMTP_PASSWORD_REF", "CALOPS_MAIL_FROM"],
            "{p:?}"
        );
        assert!(!format!("{p:?}").contains("hunter2"));
        // A user without a password reference, and the other way round.
        for pairs in [
            &[("CALOPS_SMTP_USERNAME", "u")][..],
            &[
                ("CALOPS_SMTP_PASSWORD_REF", "env:SMTP_PW"),
                ("SMTP_PW", "pw"),
            ][..],
        ] {
            let mut all = vec![
                ("CALOPS_MAIL_TRANSPORT", "smtp://mail.example.com"),
                ("CALOPS_MAIL_FROM", "b@example.com"),
            ];
            all.extend_from_slice(pairs);
            let p = read(&all).unwrap_err();
            assert_eq!(p.len(), 1, "{p:?}");
            assert_eq!(p[0].setting, "CALOPS_SMTP_USERNAME");
        }
        // A `vault:` reference is taken (resolved through Vault at start, like the others).
        let env = env(&[(
            "CALOPS_SMTP_PASSWORD_REF",
            "vault:ocid1.vaultsecret.oc1..smtp",
        )]);
        let given = crate::service::secrets::given(None, &env);
        assert!(Secrets::needs_vault(&given), "{given:?}");
        let p = read(&[
            ("CALOPS_MAIL_TRANSPORT", "smtp://mail.example.com"),
            ("CALOPS_MAIL_FROM", "not an address"),
        ])
        .unwrap_err();
        assert_eq!(p[0].setting, "CALOPS_MAIL_FROM");
    }
}
