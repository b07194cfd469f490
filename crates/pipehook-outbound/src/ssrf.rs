//! Which addresses deliveries may connect to.
//!
//! A payload URL is user input, and the server delivering to it sits inside the operator's network, so by
//! default pipehook refuses every address that is not globally reachable: loopback, private (RFC 1918, IPv6
//! unique-local), link-local (cloud metadata lives there), CGNAT, multicast, documentation and other reserved
//! ranges, for IPv4 and IPv6, and IPv6 forms that embed an IPv4 address (mapped, translated, compatible, NAT64, 6to4) by the
//! address they embed. The check runs on the addresses DNS returned, inside the HTTP client's resolver, so the
//! address vetted is the address connected to (no DNS rebinding between check and connect); literal IP hosts
//! are checked before sending. `allowed` networks (operator configuration) are exempt.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    allowed: Arc<Vec<IpNet>>,
}

/// Why an address was refused; its text is what the delivery log shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused to connect to {addr}: {class} addresses are not allowed for webhook deliveries (PIPEHOOK_OUTBOUND_ALLOWED_NETWORKS can allow them)")]
pub struct Refused {
    pub addr: IpAddr,
    pub class: &'static str,
}

impl AddressPolicy {
    pub fn new(allowed: Vec<IpNet>) -> Self {
        Self { allowed: Arc::new(allowed) }
    }

    /// Parses a comma-separated CIDR list (a bare address means just that address).
    pub fn parse_networks(s: &str) -> Result<Vec<IpNet>, String> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<IpNet>()
                    .or_else(|_| p.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{p:?} is not a CIDR network or an IP address"))
            })
            .collect()
    }

    pub fn check(&self, addr: IpAddr) -> Result<(), Refused> {
        if self.allowed.iter().any(|n| n.contains(&addr)) {
            return Ok(());
        }
        match addr {
            IpAddr::V4(v4) => self.check_v4(v4, addr),
            IpAddr::V6(v6) => {
                if let Some(v4) = embedded_v4(v6) {
                    if self.allowed.iter().any(|n| n.contains(&IpAddr::V4(v4))) {
                        return Ok(());
                    }
                    return self.check_v4(v4, addr);
                }
                match v6_class(v6) {
                    Some(class) => Err(Refused { addr, class }),
                    None => Ok(()),
                }
            }
        }
    }

    fn check_v4(&self, v4: Ipv4Addr, shown: IpAddr) -> Result<(), Refused> {
        match v4_class(v4) {
            Some(class) => Err(Refused { addr: shown, class }),
            None => Ok(()),
        }
    }
}

fn v4_class(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    let class = if ip.is_loopback() {
        "loopback"
    } else if ip.is_private() {
        "private"
    } else if ip.is_link_local() {
        "link-local"
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        "shared (CGNAT)"
    } else if ip.is_multicast() {
        "multicast"
    } else if ip.is_unspecified() || o[0] == 0 {
        "unspecified"
    } else if ip.is_broadcast() || o[0] >= 240 {
        "reserved"
    } else if ip.is_documentation() {
        "documentation"
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        "IETF protocol assignment"
    } else if o[0] == 198 && (o[1] & 0xfe) == 18 {
        "benchmarking"
    } else if o[0] == 192 && o[1] == 88 && o[2] == 99 {
        "6to4 relay anycast"
    } else {
        return None;
    };
    Some(class)
}

fn v6_class(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    let class = if ip.is_loopback() {
        "loopback"
    } else if ip.is_unspecified() {
        "unspecified"
    } else if ip.is_multicast() {
        "multicast"
    } else if (s[0] & 0xfe00) == 0xfc00 {
        "unique-local (private)"
    } else if (s[0] & 0xffc0) == 0xfe80 {
        "link-local"
    } else if (s[0] & 0xffc0) == 0xfec0 {
        "site-local"
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        "documentation"
    } else if s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0 {
        "discard-only"
    } else if s[0] == 0x2001 && s[1] < 0x0200 {
        // 2001::/23: IETF protocol assignments (Teredo 2001::/32, benchmarking 2001:2::/48, ORCHID...).
        "IETF protocol assignment"
    } else if s[0] == 0x2002 {
        "6to4"
    } else if s[0] == 0x0064 && s[1] == 0xff9b {
        "NAT64"
    } else {
        return None;
    };
    Some(class)
}

/// The IPv4 address an IPv6 address stands for: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-translated
/// (`::ffff:0:a.b.c.d`), IPv4-compatible (`::a.b.c.d`, deprecated), NAT64 well-known prefix (`64:ff9b::a.b.c.d`) and 6to4 (`2002:AABB:CCDD::`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..6].iter().all(|&x| x == 0) && !(s[6] == 0 && s[7] <= 1) {
        return Some(tail);
    }
    // IPv4-translated (SIIT, RFC 2765: `::ffff:0:a.b.c.d`, `::ffff:0:0/96`).
    if s[..4].iter().all(|&x| x == 0) && s[4] == 0xffff && s[5] == 0 {
        return Some(tail);
    }
    if s[0] == 0x0064 && s[1] == 0xff9b && s[2..6].iter().all(|&x| x == 0) {
        return Some(tail);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8));
    }
    None
}

/// The HTTP client's resolver: system DNS, then only addresses the policy allows. When DNS returns nothing
/// allowed the lookup fails with [`Refused`], so no connection is attempted.
#[derive(Debug, Clone)]
pub struct VettingResolver {
    pub policy: AddressPolicy,
}

impl reqwest::dns::Resolve for VettingResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut first_refusal = None;
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| match policy.check(a.ip()) {
                    Ok(()) => true,
                    Err(r) => {
                        first_refusal.get_or_insert(r);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let err: Box<dyn std::error::Error + Send + Sync> = match first_refusal {
                    Some(r) => Box::new(r),
                    None => format!("{host} did not resolve to any address").into(),
                };
                return Err(err);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(p: &AddressPolicy, s: &str) -> bool {
        p.check(s.parse().unwrap()).is_err()
    }

    #[test]
    fn refuses_every_non_global_class() {
        let p = AddressPolicy::default();
        for bad in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "192.0.0.8",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "2001::1",
            "100::1",
            "::ffff:0:127.0.0.1",
            "::ffff:0:10.0.0.1",
            "::ffff:0:169.254.169.254",
            "::ffff:0:0.0.0.0",
        ] {
            assert!(refused(&p, bad), "{bad} should be refused");
        }
        for good in [
            "93.184.216.34",
            "8.8.8.8",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
            "::ffff:0:1.1.1.1",
        ] {
            assert!(!refused(&p, good), "{good} should be allowed");
        }
    }

    #[test]
    fn allowed_networks_are_exempt_including_mapped_forms() {
        let p = AddressPolicy::new(AddressPolicy::parse_networks("127.0.0.0/8, 10.0.0.5").unwrap());
        assert!(!refused(&p, "127.0.0.1"));
        assert!(!refused(&p, "::ffff:127.0.0.1"));
        assert!(!refused(&p, "::ffff:0:127.0.0.1"));
        assert!(!refused(&p, "10.0.0.5"));
        assert!(refused(&p, "10.0.0.6"));
        assert!(refused(&p, "::1"), "IPv6 loopback is not in 127.0.0.0/8");
        assert!(AddressPolicy::parse_networks("10.0.0.0/8,nope").is_err());
        assert_eq!(AddressPolicy::parse_networks(" ").unwrap(), vec![]);
    }

    #[test]
    fn refusal_text_names_the_class_and_the_setting() {
        let e = AddressPolicy::default().check("169.254.169.254".parse().unwrap()).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("169.254.169.254") && text.contains("link-local"), "{text}");
        assert!(text.contains("PIPEHOOK_OUTBOUND_ALLOWED_NETWORKS"), "{text}");
    }
}
