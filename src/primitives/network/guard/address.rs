//! What kind of address an IP is (public, loopback, private, cloud metadata, ...), judging the
//! IPv4-mapped, NAT64 and 6to4 forms by the IPv4 address they carry.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Cloud instance-metadata services: the classic target of server-side request forgery. They
/// stay refused even with `allow_private_addresses`, unless listed in `allowed_private_hosts`.
const METADATA_V4: [Ipv4Addr; 3] = [
    Ipv4Addr::new(169, 254, 169, 254), // AWS, GCP, Azure, Oracle, DigitalOcean, ...
    Ipv4Addr::new(169, 254, 170, 2),   // AWS ECS task metadata
    Ipv4Addr::new(100, 100, 100, 200), // Alibaba Cloud
];
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254); // AWS IMDS

/// What kind of address an IP is, as far as reaching it from agentos goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    Public,
    Loopback,
    /// RFC 1918, IPv6 unique-local (fc00::/7) and the deprecated site-local fec0::/10.
    Private,
    /// 100.64.0.0/10, carrier-grade NAT.
    Shared,
    LinkLocal,
    Unspecified,
    Multicast,
    Broadcast,
    Documentation,
    Metadata,
    /// Everything else that is not publicly routable: 0/8, 240/4, benchmarking, IETF protocol
    /// assignments, IPv6 outside 2000::/3, Teredo, ...
    Reserved,
}

impl AddressKind {
    pub fn describe(self) -> &'static str {
        match self {
            AddressKind::Public => "public",
            AddressKind::Loopback => "loopback",
            AddressKind::Private => "private-network",
            AddressKind::Shared => "carrier-grade-NAT (shared)",
            AddressKind::LinkLocal => "link-local",
            AddressKind::Unspecified => "unspecified",
            AddressKind::Multicast => "multicast",
            AddressKind::Broadcast => "broadcast",
            AddressKind::Documentation => "documentation-only",
            AddressKind::Metadata => "cloud-metadata",
            AddressKind::Reserved => "reserved",
        }
    }
}

/// Classifies an address. IPv4-mapped IPv6 (`::ffff:a.b.c.d`), NAT64 (`64:ff9b::/96`) and 6to4
/// (`2002::/16`) addresses are judged by the IPv4 address they carry.
pub fn classify(ip: IpAddr) -> AddressKind {
    match ip {
        IpAddr::V4(ip) => classify_v4(ip),
        IpAddr::V6(ip) => classify_v6(ip),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressKind {
    if METADATA_V4.contains(&ip) {
        return AddressKind::Metadata;
    }
    let [a, b, c, _] = ip.octets();
    match (a, b, c) {
        _ if ip.is_unspecified() => AddressKind::Unspecified,
        (0, _, _) => AddressKind::Reserved, // "this network": Linux connects 0.x to itself
        (127, _, _) => AddressKind::Loopback,
        (10, _, _) | (192, 168, _) => AddressKind::Private,
        (172, 16..=31, _) => AddressKind::Private,
        (100, 64..=127, _) => AddressKind::Shared,
        (169, 254, _) => AddressKind::LinkLocal,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => AddressKind::Documentation,
        (192, 0, 0) | (192, 88, 99) | (198, 18..=19, _) => AddressKind::Reserved,
        _ if ip.is_broadcast() => AddressKind::Broadcast,
        (224..=239, _, _) => AddressKind::Multicast,
        (240..=255, _, _) => AddressKind::Reserved,
        _ => AddressKind::Public,
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressKind {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if ip == METADATA_V6 {
        return AddressKind::Metadata;
    }
    if ip.is_unspecified() {
        return AddressKind::Unspecified;
    }
    if ip.is_loopback() {
        return AddressKind::Loopback;
    }
    let s = ip.segments();
    let low_v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return classify_v4(low_v4(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return classify_v4(low_v4(s[1], s[2]));
    }
    match s[0] {
        x if x & 0xff00 == 0xff00 => AddressKind::Multicast,
        x if x & 0xffc0 == 0xfe80 => AddressKind::LinkLocal,
        x if x & 0xffc0 == 0xfec0 => AddressKind::Private,
        x if x & 0xfe00 == 0xfc00 => AddressKind::Private,
        0x2001 if s[1] == 0x0db8 => AddressKind::Documentation,
        0x3fff if s[1] & 0xf000 == 0 => AddressKind::Documentation,
        // 2001::/23: IETF protocol assignments, Teredo (which hides an IPv4 address), ORCHID.
        0x2001 if s[1] < 0x0200 => AddressKind::Reserved,
        // Only 2000::/3 is global unicast; the rest (IPv4-compatible, discard-only,
        // local-use NAT64, unassigned) is nothing agentos should connect to.
        x if x & 0xe000 != 0x2000 => AddressKind::Reserved,
        _ => AddressKind::Public,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(text: &str) -> AddressKind {
        classify(text.parse().unwrap())
    }

    #[test]
    fn ipv4_addresses_are_classified() {
        let cases = [
            ("8.8.8.8", AddressKind::Public),
            ("1.1.1.1", AddressKind::Public),
            ("93.184.216.34", AddressKind::Public),
            ("172.15.255.255", AddressKind::Public),
            ("172.32.0.1", AddressKind::Public),
            ("100.63.255.255", AddressKind::Public),
            ("100.128.0.0", AddressKind::Public),
            ("169.253.255.255", AddressKind::Public),
            ("223.255.255.255", AddressKind::Public),
            ("0.0.0.0", AddressKind::Unspecified),
            ("0.1.2.3", AddressKind::Reserved),
            ("127.0.0.1", AddressKind::Loopback),
            ("127.255.255.254", AddressKind::Loopback),
            ("10.0.0.1", AddressKind::Private),
            ("10.255.255.255", AddressKind::Private),
            ("172.16.0.1", AddressKind::Private),
            ("172.31.255.255", AddressKind::Private),
            ("192.168.1.1", AddressKind::Private),
            ("100.64.0.1", AddressKind::Shared),
            ("100.127.255.255", AddressKind::Shared),
            ("169.254.0.1", AddressKind::LinkLocal),
            ("169.254.169.254", AddressKind::Metadata),
            ("169.254.170.2", AddressKind::Metadata),
            ("100.100.100.200", AddressKind::Metadata),
            ("192.0.2.10", AddressKind::Documentation),
            ("198.51.100.7", AddressKind::Documentation),
            ("203.0.113.255", AddressKind::Documentation),
            ("192.0.0.8", AddressKind::Reserved),
            ("192.88.99.1", AddressKind::Reserved),
            ("198.18.0.1", AddressKind::Reserved),
            ("198.19.255.255", AddressKind::Reserved),
            ("224.0.0.1", AddressKind::Multicast),
            ("239.255.255.250", AddressKind::Multicast),
            ("240.0.0.1", AddressKind::Reserved),
            ("255.255.255.254", AddressKind::Reserved),
            ("255.255.255.255", AddressKind::Broadcast),
        ];
        for (ip, expected) in cases {
            assert_eq!(kind(ip), expected, "{ip}");
        }
    }

    #[test]
    fn ipv6_addresses_are_classified() {
        let cases = [
            ("2606:4700:4700::1111", AddressKind::Public),
            ("2001:4860:4860::8888", AddressKind::Public),
            ("2a00:1450:4001::200e", AddressKind::Public),
            ("::", AddressKind::Unspecified),
            ("::1", AddressKind::Loopback),
            ("fc00::1", AddressKind::Private),
            ("fd12:3456:789a::1", AddressKind::Private),
            ("fec0::1", AddressKind::Private),
            ("fe80::1", AddressKind::LinkLocal),
            ("febf::1", AddressKind::LinkLocal),
            ("ff02::1", AddressKind::Multicast),
            ("ff0e::1", AddressKind::Multicast),
            ("2001:db8::1", AddressKind::Documentation),
            ("3fff::1", AddressKind::Documentation),
            ("fd00:ec2::254", AddressKind::Metadata),
            ("fd00:ec2::253", AddressKind::Private),
            ("2001::1", AddressKind::Reserved),      // Teredo
            ("2001:10::1", AddressKind::Reserved),   // ORCHID
            ("100::1", AddressKind::Reserved),       // discard-only
            ("::7f00:1", AddressKind::Reserved),     // IPv4-compatible 127.0.0.1
            ("64:ff9b:1::1", AddressKind::Reserved), // local-use NAT64
            ("4000::1", AddressKind::Reserved),      // outside 2000::/3
        ];
        for (ip, expected) in cases {
            assert_eq!(kind(ip), expected, "{ip}");
        }
    }

    #[test]
    fn embedded_ipv4_addresses_are_unwrapped() {
        let cases = [
            ("::ffff:127.0.0.1", AddressKind::Loopback),
            ("::ffff:7f00:1", AddressKind::Loopback),
            ("::ffff:10.1.2.3", AddressKind::Private),
            ("::ffff:169.254.169.254", AddressKind::Metadata),
            ("::ffff:0.0.0.0", AddressKind::Unspecified),
            ("::ffff:8.8.8.8", AddressKind::Public),
            ("64:ff9b::127.0.0.1", AddressKind::Loopback),
            ("64:ff9b::a9fe:a9fe", AddressKind::Metadata),
            ("64:ff9b::8.8.8.8", AddressKind::Public),
            ("2002:7f00:1::", AddressKind::Loopback),
            ("2002:c0a8:101::1", AddressKind::Private),
            ("2002:808:808::1", AddressKind::Public),
        ];
        for (ip, expected) in cases {
            assert_eq!(kind(ip), expected, "{ip}");
        }
    }
}
