//! Signed webhooks with an outbox.
//!
//! - `domain::webhooks`: the pure parts: Cal.com-shaped bodies (`payload`),
//!   `X-Cal-Signature-256` and the timestamped `X-Calops-Signature` (`sign`), retry backoff,
//!   dead letter and the per-subscriber circuit breaker (`policy`), subscription secrets
//!   sealed at rest (`secrets`)
//! - this module: the delivery settings (`CALOPS_WEBHOOK_*`)
//! - `delivery`: the background workers (claim with `FOR UPDATE SKIP LOCKED`, POST, record)
//! - `guard`: their HTTP client, which connects only to permitted addresses, and the errors
//!   an attempt stores
//!
//! Events are written by the booking's own transaction (`store::webhooks::enqueue`), so a
//! committed booking always has its events, and a rolled-back one never does.

pub mod delivery;
pub mod guard;

use crate::service::domain::webhooks::reach::AllowList;
use crate::service::domain::webhooks::secrets::SecretKey;
use crate::service::problem::Problem;
use std::time::Duration;

/// Delivery settings (environment variables `CALOPS_WEBHOOK_*`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Concurrent deliveries per process; 0 turns delivery off in this process.
    pub workers: usize,
    /// Attempts per delivery before it is dead-lettered.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt (with jitter) up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Per-request timeout (connect, send, response headers).
    pub timeout: Duration,
    /// Straight failures that open a subscriber's breaker, and for how long.
    pub breaker_threshold: u32,
    pub breaker_cooldown: Duration,
    /// How often idle workers look for due deliveries without a notification.
    pub poll_interval: Duration,
    /// Seals subscription secrets at rest when set.
    pub secret_key: Option<SecretKey>,
    /// Delivered and dead deliveries older than this are deleted (pending ones never are);
    /// replays reach back this far.
    pub retention: Duration,
    /// Non-public ranges deliveries may reach anyway (`CALOPS_WEBHOOK_ALLOW_PRIVATE`; see
    /// `domain::webhooks::reach`). Empty by default: public addresses only.
    pub allow_private: AllowList,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            workers: 8,
            max_attempts: 8,
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(3600),
            timeout: Duration::from_secs(10),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(60),
            poll_interval: Duration::from_secs(5),
            secret_key: None,
            retention: Duration::from_secs(30 * 86_400),
            allow_private: AllowList::default(),
        }
    }
}

impl Settings {
    /// How long a claimed attempt is reserved for its worker: past it (the worker died),
    /// another worker may make the next attempt.
    pub fn lease(&self) -> Duration {
        self.timeout + Duration::from_secs(5)
    }

    /// Read `CALOPS_WEBHOOK_*` through `env`; every problem at once. `secret_key` is what
    /// `CALOPS_WEBHOOK_SECRET_KEY_REF` refers to, resolved ([`crate::service::secrets`]).
    pub fn from_env(
        env: &dyn Fn(&str) -> Option<String>,
        secret_key: Option<&str>,
    ) -> Result<Settings, Vec<Problem>> {
        let mut s = Settings::default();
        let mut r = crate::service::problem::EnvReader::new(env);
        let (mut workers, mut attempts, mut threshold) = (
            s.workers as u64,
            s.max_attempts as u64,
            s.breaker_threshold as u64,
        );
        r.int("CALOPS_WEBHOOK_WORKERS", 0, 256, &mut workers);
        r.int("CALOPS_WEBHOOK_MAX_ATTEMPTS", 1, 100, &mut attempts);
        r.int("CALOPS_WEBHOOK_BREAKER_THRESHOLD", 1, 1000, &mut threshold);
        (s.workers, s.max_attempts, s.breaker_threshold) =
            (workers as usize, attempts as u32, threshold as u32);
        let mut dur = |setting: &'static str, lo: Duration, hi: Duration, into: &mut Duration| {
            r.duration(setting, lo, hi, into)
        };
        let ms = Duration::from_millis;
        let day = Duration::from_secs(86_400);
        dur("CALOPS_WEBHOOK_BACKOFF", ms(1), day, &mut s.backoff_base);
        dur("CALOPS_WEBHOOK_BACKOFF_MAX", ms(1), day, &mut s.backoff_max);
        dur(
            "CALOPS_WEBHOOK_TIMEOUT",
            ms(100),
            ms(300_000),
            &mut s.timeout,
        );
        dur(
            "CALOPS_WEBHOOK_BREAKER_COOLDOWN",
            ms(1),
            day,
            &mut s.breaker_cooldown,
        );
        dur(
            "CALOPS_WEBHOOK_POLL",
            ms(10),
            ms(600_000),
            &mut s.poll_interval,
        );
        dur(
            "CALOPS_WEBHOOK_RETENTION",
            ms(1000),
            day * 3650,
            &mut s.retention,
        );
        if s.backoff_max < s.backoff_base {
            s.backoff_max = s.backoff_base;
        }
        let mut problems = Vec::new();
        if let Some(v) = r.get("CALOPS_WEBHOOK_ALLOW_PRIVATE") {
            match AllowList::parse(&v) {
                Ok(a) => s.allow_private = a,
                Err(message) => problems.push(Problem {
                    setting: "CALOPS_WEBHOOK_ALLOW_PRIVATE",
                    message,
                }),
            }
        }
        if let Some(v) = secret_key {
            match SecretKey::parse(v) {
                Ok(k) => s.secret_key = Some(k),
                Err(e) => problems.push(Problem {
                    setting: "CALOPS_WEBHOOK_SECRET_KEY_REF",
                    message: format!("the key it refers to {e}"),
                }),
            }
        }
        r.problems.extend(problems);
        r.finish(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_come_from_the_environment_with_every_problem_reported() {
        let s = Settings::from_env(&|_| None, None).unwrap();
        assert_eq!((s.workers, s.max_attempts, s.breaker_threshold), (8, 8, 5));
        assert_eq!(s.breaker_cooldown, Duration::from_secs(60));
        let env = |n: &str| {
            match n {
                "CALOPS_WEBHOOK_BACKOFF" => Some("50ms"),
                "CALOPS_WEBHOOK_MAX_ATTEMPTS" => Some("3"),
                "CALOPS_WEBHOOK_RETENTION" => Some("7days"),
                "CALOPS_WEBHOOK_ALLOW_PRIVATE" => Some("127.0.0.0/8, 10.1.0.0/16"),
                _ => None,
            }
            .map(str::to_string)
        };
        let key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let s = Settings::from_env(&env, Some(key)).unwrap();
        assert_eq!(s.backoff_base, Duration::from_millis(50));
        assert_eq!(s.max_attempts, 3);
        assert_eq!(s.retention, Duration::from_secs(7 * 86_400));
        assert!(s.secret_key.is_some());
        assert_eq!(s.allow_private.to_string(), "127.0.0.0/8,10.1.0.0/16");
        assert!(
            Settings::from_env(&|_| None, None)
                .unwrap()
                .allow_private
                .is_empty(),
            "public addresses only by default"
        );
        assert!(!format!("{s:?}").contains("0123456789abcdef0123"));
        let bad = |n: &str| {
            match n {
                "CALOPS_WEBHOOK_WORKERS" => Some("many"),
                "CALOPS_WEBHOOK_TIMEOUT" => Some("1h"),
                "CALOPS_WEBHOOK_ALLOW_PRIVATE" => Some("internal"),
                _ => None,
            }
            .map(str::to_string)
        };
        let p = Settings::from_env(&bad, Some("hunter2hunter2")).unwrap_err();
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(!p.iter().any(|p| p.message.contains("hunter2")));
        let p = Settings::from_env(&|_| None, Some("abcd")).unwrap_err();
        assert!(p[0].message.contains("not 32"), "{p:?}");
        assert!(!p[0].message.contains("abcd"), "{p:?}");
    }
}
