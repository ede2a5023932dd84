//! Which addresses webhook deliveries may connect to (server-side request forgery).
//!
//! A subscriber URL is chosen by a tenant, and the service sends POSTs to it from inside the
//! deployment's network: without a rule, a tenant could make the service talk to its own
//! database, Redis, the cloud's instance metadata (`169.254.169.254`, `fd00:ec2::254`) or
//! anything else only reachable from inside. So deliveries go to public unicast addresses
//! only; loopback, private (RFC 1918), shared (100.64/10), link-local, unique-local,
//! documentation, benchmarking, multicast and reserved ranges are refused, with IPv6 forms
//! that embed an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible, NAT64,
//! 6to4) judged by that address. An operator with internal receivers lists their ranges in
//! `CALOPS_WEBHOOK_ALLOW_PRIVATE` ([`AllowList`]).
//!
//! The rule is applied to the addresses a name resolves to, at connect time, by the delivery
//! client (`service::webhooks::delivery`), so a name that resolves differently later (DNS
//! rebinding) cannot slip past a check made earlier.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is not a public unicast address, or `None` when it is one.
pub fn special(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => special_v4(a),
        IpAddr::V6(a) => special_v6(a),
    }
}

fn special_v4(a: Ipv4Addr) -> Option<&'static str> {
    let [o0, o1, o2, _] = a.octets();
    Some(match (o0, o1, o2) {
        (0, _, _) => "an unspecified (\"this network\") address",
        (127, _, _) => "a loopback address",
        (10, _, _) => "a private address",
        (172, 16..=31, _) => "a private address",
        (192, 168, _) => "a private address",
        (100, 64..=127, _) => "a shared (carrier-grade NAT) address",
        (169, 254, _) => "a link-local address (where cloud instance metadata lives)",
        (192, 0, 0) => "an IETF protocol address",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "a documentation address",
        (198, 18..=19, _) => "a benchmarking address",
        (224..=239, _, _) => "a multicast address",
        (240..=255, _, _) => "a reserved or broadcast address",
        _ => return None,
    })
}

fn special_v6(a: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = embedded_v4(a) {
        return special_v4(v4);
    }
    let s = a.segments();
    Some(match s {
        [0, 0, 0, 0, 0, 0, 0, 0] => "an unspecified address",
        [0, 0, 0, 0, 0, 0, 0, 1] => "a loopback address",
        [0x64, 0xff9b, 1, ..] => "a local-use NAT64 address",
        [0x100, 0, 0, 0, ..] => "a discard-only address",
        [0x2001, 0xdb8, ..] => "a documentation address",
        [x, ..] if x & 0xfe00 == 0xfc00 => "a unique-local address",
        [x, ..] if x & 0xffc0 == 0xfe80 => "a link-local address",
        [x, ..] if x & 0xffc0 == 0xfec0 => "a site-local address",
        [x, ..] if x & 0xff00 == 0xff00 => "a multicast address",
        // Global unicast is 2000::/3; everything else is reserved.
        [x, ..] if x & 0xe000 != 0x2000 => "a reserved address",
        _ => return None,
    })
}

/// The IPv4 address inside an IPv6 one that carries it: IPv4-mapped (`::ffff:a.b.c.d`),
/// IPv4-compatible (`::a.b.c.d`, not `::` or `::1`), NAT64 (`64:ff9b::/96`) and 6to4
/// (`2002:AABB:CCDD::/48`).
pub fn embedded_v4(a: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = a.segments();
    let tail = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(tail()),
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => None,
        [0, 0, 0, 0, 0, 0, _, _] => Some(tail()),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail()),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

/// The ranges an operator allows despite [`special`] (`CALOPS_WEBHOOK_ALLOW_PRIVATE`): CIDRs
/// such as `10.20.0.0/16` or single addresses, comma-separated. Empty by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(Vec<IpNet>);

impl AllowList {
    /// Parse `10.0.0.0/8, 127.0.0.1, fd00::/8`; the error names the entry that is not one.
    pub fn parse(text: &str) -> Result<AllowList, String> {
        let mut nets = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let net = part
                .parse::<IpNet>()
                .or_else(|_| part.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    format!(
                        "{part:?} is not an address range: use CIDRs such as 10.0.0.0/8 or 127.0.0.1/32, comma-separated"
                    )
                })?;
            nets.push(net.trunc());
        }
        Ok(AllowList(nets))
    }

    /// Does the list cover `ip` (or the IPv4 address it embeds)?
    pub fn covers(&self, ip: IpAddr) -> bool {
        let v4 = match ip {
            IpAddr::V6(a) => embedded_v4(a).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.0
            .iter()
            .any(|n| n.contains(&ip) || v4.is_some_and(|v| n.contains(&v)))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Display for AllowList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|n| n.to_string()).collect();
        f.write_str(&parts.join(","))
    }
}

/// May a delivery connect to `ip`? `Err` says what kind of address it is.
pub fn permitted(ip: IpAddr, allow: &AllowList) -> Result<(), &'static str> {
    match special(ip) {
        Some(kind) if !allow.covers(ip) => Err(kind),
        _ => Ok(()),
    }
}

/// The message for a refused address (stored with the delivery and shown at creation):
/// what it is and the setting that allows it.
pub fn refusal(what: &str, kind: &str) -> String {
    format!(
        "refused: {what} is {kind}; webhooks go to public addresses only (CALOPS_WEBHOOK_ALLOW_PRIVATE lists ranges to allow)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_public_unicast_addresses_are_reachable() {
        for public in [
            "93.184.215.14",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "2a00:1450:4001::200e",
        ] {
            assert_eq!(special(ip(public)), None, "{public}");
        }
        for (addr, kind) in [
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("0.0.0.0", "unspecified"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "shared"),
            ("100.100.100.200", "shared"),
            ("169.254.169.254", "link-local"),
            ("192.0.0.192", "IETF"),
            ("198.18.0.1", "benchmarking"),
            ("203.0.113.9", "documentation"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("fe80::1", "link-local"),
            ("fd00:ec2::254", "unique-local"),
            ("fc00::1", "unique-local"),
            ("ff02::1", "multicast"),
            ("2001:db8::1", "documentation"),
            ("100::1", "discard"),
            ("4000::1", "reserved"),
            // IPv6 forms of IPv4 addresses are judged by the IPv4 address.
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::ffff:10.0.0.1", "private"),
            ("::127.0.0.1", "loopback"),
            ("64:ff9b::a00:1", "private"),
            ("2002:7f00:1::", "loopback"),
            ("2002:a9fe:a9fe::1", "link-local"),
        ] {
            let got = special(ip(addr)).unwrap_or_else(|| panic!("{addr} passed"));
            assert!(got.contains(kind), "{addr}: {got}");
        }
        assert_eq!(special(ip("::ffff:8.8.8.8")), None);
        assert_eq!(
            embedded_v4("::ffff:7f00:1".parse().unwrap()),
            Some(Ipv4Addr::LOCALHOST)
        );
    }

    #[test]
    fn the_allow_list_lets_named_ranges_through() {
        let none = AllowList::default();
        assert!(permitted(ip("127.0.0.1"), &none).is_err());
        assert!(permitted(ip("8.8.8.8"), &none).is_ok());
        let allow = AllowList::parse(" 127.0.0.0/8, 10.20.0.5 ,fd00::/8").unwrap();
        assert_eq!(allow.to_string(), "127.0.0.0/8,10.20.0.5/32,fd00::/8");
        assert!(permitted(ip("127.0.0.1"), &allow).is_ok());
        assert!(permitted(ip("::ffff:127.0.0.1"), &allow).is_ok());
        assert!(permitted(ip("10.20.0.5"), &allow).is_ok());
        assert!(permitted(ip("10.20.0.6"), &allow).is_err());
        assert!(permitted(ip("fd00:ec2::254"), &allow).is_ok());
        assert!(permitted(ip("169.254.169.254"), &allow).is_err());
        let e = AllowList::parse("10.0.0.0/8,localhost").unwrap_err();
        assert!(e.contains("\"localhost\""), "{e}");
        assert!(AllowList::parse("").unwrap().is_empty());
        let m = refusal("127.0.0.1", "a loopback address");
        assert!(m.contains("CALOPS_WEBHOOK_ALLOW_PRIVATE"), "{m}");
    }
}
