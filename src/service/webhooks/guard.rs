//! The HTTP client deliveries use, and what an attempt's failure is stored as.
//!
//! The client connects only where `domain::webhooks::reach` permits: a name is resolved by
//! [`Resolver`], which hands reqwest only the permitted addresses, so the address checked is
//! the address connected to (a name that resolves to something else a moment later, DNS
//! rebinding, gains nothing). reqwest connects to an address literal without resolving it, so
//! literals are checked before the request ([`check_literal`]). Redirects are not followed and
//! no proxy from the environment is used (a proxy would connect on our behalf, unchecked).
//!
//! The stored error of a failed attempt says "refused" for a forbidden address and gives one
//! message for everything else that got no HTTP answer (refused, reset, timed out, not an HTTP
//! server, a name that does not resolve), so delivery history cannot be used to learn which
//! ports are open; the full error goes to the service log.

use crate::service::domain::webhooks::reach::{self, AllowList};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// The stored error of an attempt that got no HTTP answer.
pub const NO_ANSWER: &str =
    "no HTTP answer from the subscriber (the connection failed or timed out)";

/// The client for deliveries: each request within `timeout`, only to permitted addresses.
pub fn client(timeout: Duration, allow: &AllowList) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(Resolver {
            allow: allow.clone(),
        }))
        .user_agent(concat!("calops-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// A forbidden address: its message is what the delivery stores.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// `Err` when `url` names a forbidden address literal (`http://127.0.0.1/`,
/// `http://[::ffff:169.254.169.254]/`, and the spellings the URL parser reads as those, such
/// as `http://2130706433/`). Names pass: the resolver checks what they resolve to.
pub fn check_literal(url: &str, allow: &AllowList) -> Result<(), Refused> {
    let Ok(u) = url::Url::parse(url) else {
        return Ok(());
    };
    let ip = match u.host() {
        Some(url::Host::Ipv4(a)) => IpAddr::V4(a),
        Some(url::Host::Ipv6(a)) => IpAddr::V6(a),
        _ => return Ok(()),
    };
    reach::permitted(ip, allow).map_err(|kind| Refused(reach::refusal(&ip.to_string(), kind)))
}

/// Resolves names with the system resolver and keeps only the permitted addresses.
struct Resolver {
    allow: AllowList,
}

impl Resolve for Resolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let permitted: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match reach::permitted(a.ip(), &allow) {
                    Ok(()) => true,
                    Err(kind) => {
                        refused.get_or_insert(kind);
                        false
                    }
                })
                .collect();
            match (permitted.is_empty(), refused) {
                (true, Some(kind)) => Err(Box::new(Refused(reach::refusal(
                    &format!("{host} (what it resolves to)"),
                    kind,
                )))
                    as Box<dyn std::error::Error + Send + Sync>),
                _ => Ok(Box::new(permitted.into_iter()) as Addrs),
            }
        })
    }
}

/// What a failed request is stored as: the refusal when an address was forbidden, else
/// [`NO_ANSWER`].
pub fn stored_error(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<Refused>() {
            return r.0.clone();
        }
        cur = err.source();
    }
    NO_ANSWER.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_checked_as_the_url_parser_reads_them() {
        let none = AllowList::default();
        for url in [
            "http://127.0.0.1:8080/hook",
            "http://2130706433/hook",
            "http://0x7f.1/hook",
            "http://[::ffff:127.0.0.1]/hook",
            "http://[::ffff:a9fe:a9fe]/latest/meta-data",
            "http://169.254.169.254/opc/v2/instance/",
            "http://[fd00:ec2::254]/",
            "http://0.0.0.0:5432/",
        ] {
            let e = check_literal(url, &none).expect_err(url);
            assert!(e.0.starts_with("refused: "), "{url}: {e}");
        }
        assert!(check_literal("https://hooks.example.com/x", &none).is_ok());
        assert!(check_literal("http://93.184.215.14/x", &none).is_ok());
        let allow = AllowList::parse("127.0.0.0/8").unwrap();
        assert!(check_literal("http://127.0.0.1:8080/hook", &allow).is_ok());
        assert!(check_literal("http://169.254.169.254/", &allow).is_err());
    }

    #[test]
    fn stored_errors_tell_refusals_apart_and_nothing_else() {
        #[derive(Debug)]
        struct Outer(Refused);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("dns error")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let refused = Outer(Refused("refused: x".into()));
        assert_eq!(stored_error(&refused), "refused: x");
        let refused_conn =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let timed_out = std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out");
        assert_eq!(stored_error(&refused_conn), NO_ANSWER);
        assert_eq!(stored_error(&timed_out), stored_error(&refused_conn));
    }
}
