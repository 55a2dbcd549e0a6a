//! Name constraints of the private CA: the names and addresses it may vouch for. A
//! stolen `ca.key` then cannot sign a certificate for a public site that a till which
//! trusts the CA would accept (RFC 5280 §4.2.1.10, enforced by rustls/webpki, Windows,
//! browsers and OpenSSL alike).

use std::net::IpAddr;

use rcgen::{CidrSubnet, GeneralSubtree, NameConstraints};

use crate::constants::TERMINAL_SERVER_NAME;

/// DNS subtrees every ecrlink CA permits besides the terminal's fixed name: loopback and
/// the special-use suffixes no public site can have (RFC 6761, RFC 8375, ICANN's
/// `internal`), and `lan`, which shop routers hand out and the root zone does not delegate.
pub const PRIVATE_DNS_SUFFIXES: [&str; 5] = ["localhost", "home.arpa", "internal", "local", "lan"];

/// Loopback, RFC 1918, IPv4 link-local, IPv6 loopback, unique-local and link-local.
pub const PRIVATE_NETWORKS: [(&str, u8); 8] = [
    ("127.0.0.0", 8),
    ("10.0.0.0", 8),
    ("172.16.0.0", 12),
    ("192.168.0.0", 16),
    ("169.254.0.0", 16),
    ("::1", 128),
    ("fc00::", 7),
    ("fe80::", 10),
];

/// The permitted subtrees: the terminal's name, the private suffixes and networks, and
/// each extra gateway name (an address becomes a single-host subtree).
pub fn name_constraints(gateway_names: &[String]) -> NameConstraints {
    let mut permitted = vec![GeneralSubtree::DnsName(TERMINAL_SERVER_NAME.into())];
    let dns = PRIVATE_DNS_SUFFIXES.iter().map(|s| s.to_string());
    permitted.extend(dns.map(GeneralSubtree::DnsName));
    for (addr, prefix) in PRIVATE_NETWORKS {
        let addr: IpAddr = addr.parse().expect("literal network");
        permitted.push(GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(
            addr, prefix,
        )));
    }
    for name in gateway_names {
        let subtree = match name.parse::<IpAddr>() {
            Ok(ip) if !is_private(ip) => {
                let bits = if ip.is_ipv4() { 32 } else { 128 };
                GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(ip, bits))
            }
            Ok(_) => continue,
            Err(_) if is_permitted_name(name) => continue,
            Err(_) => GeneralSubtree::DnsName(name.trim_end_matches('.').to_ascii_lowercase()),
        };
        permitted.push(subtree);
    }
    NameConstraints {
        permitted_subtrees: permitted,
        excluded_subtrees: Vec::new(),
    }
}

/// Whether `name` (a DNS name or an IP address) falls in one of `permitted`, the
/// subtrees as `certs show` prints them (`DNS:lan`, `IP:10.0.0.0/8`). An empty list (a CA
/// made before name constraints) permits everything.
pub fn permits(permitted: &[String], name: &str) -> bool {
    if permitted.is_empty() {
        return true;
    }
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let ip = name.parse::<IpAddr>().ok();
    permitted
        .iter()
        .any(|subtree| match (subtree.split_once(':'), ip) {
            (Some(("DNS", base)), None) => {
                let base = base.to_ascii_lowercase();
                name == base || name.ends_with(&format!(".{base}"))
            }
            (Some(("IP", net)), Some(ip)) => net
                .rsplit_once('/')
                .and_then(|(addr, prefix)| Some((addr.parse().ok()?, prefix.parse().ok()?)))
                .is_some_and(|(addr, prefix)| within(ip, addr, prefix)),
            _ => false,
        })
}

fn is_private(ip: IpAddr) -> bool {
    PRIVATE_NETWORKS.iter().any(|(net, prefix)| {
        let net: IpAddr = net.parse().expect("literal network");
        within(ip, net, *prefix)
    })
}

fn is_permitted_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == TERMINAL_SERVER_NAME
        || PRIVATE_DNS_SUFFIXES
            .iter()
            .any(|s| name == *s || name.ends_with(&format!(".{s}")))
}

fn within(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_names_add_nothing_and_public_ones_are_listed() {
        let base = name_constraints(&[]).permitted_subtrees.len();
        let names = [
            "till.shop.lan",
            "192.168.1.5",
            "pos.example.com",
            "203.0.113.7",
        ];
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let all = name_constraints(&names).permitted_subtrees;
        assert_eq!(all.len(), base + 2);
        assert!(all.contains(&GeneralSubtree::DnsName("pos.example.com".into())));
        let host = CidrSubnet::from_addr_prefix("203.0.113.7".parse().unwrap(), 32);
        assert!(all.contains(&GeneralSubtree::IpAddress(host)));
    }

    #[test]
    fn permits_reads_the_printed_subtrees() {
        let printed = [
            "DNS:lan",
            "DNS:till.example.net",
            "IP:10.0.0.0/8",
            "IP:::1/128",
        ];
        let printed: Vec<String> = printed.iter().map(|s| s.to_string()).collect();
        for ok in ["broker.lan", "LAN", "till.example.net", "10.9.8.7", "::1"] {
            assert!(permits(&printed, ok), "{ok}");
        }
        for no in [
            "broker.example.com",
            "evillan",
            "example.net",
            "192.168.1.1",
            "::2",
        ] {
            assert!(!permits(&printed, no), "{no}");
        }
        assert!(permits(&[], "anything.example"), "an unconstrained CA");
    }

    #[test]
    fn private_ranges() {
        for ip in [
            "10.1.2.3",
            "172.31.0.1",
            "192.168.0.9",
            "127.0.0.2",
            "::1",
            "fd00::5",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["172.32.0.1", "8.8.8.8", "2001:db8::1"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }
}
