//! Egress policy: which URLs, hosts and addresses the network tools may reach.
//!
//! Two independent checks. The caller's `allowedDomains` limit which host names an agent may
//! name in a URL. The operator's address policy limits which IP addresses any request may
//! connect to: only public ones, unless `[network]` allows more. The address check runs on the
//! addresses a host name resolves to (see `client::GuardedResolver`) and on IP literals in URLs.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};

use ipnet::{IpNet, Ipv4Net};
use reqwest::Url;

use super::NetworkConfig;
use crate::registry::SkillScope;

mod address;

pub use address::{AddressKind, classify};

/// Cloud-metadata host names, refused before any lookup unless listed.
const METADATA_HOSTS: [&str; 2] = ["metadata.google.internal", "metadata.goog"];

/// Why a host or address may not be reached. Carried through the HTTP client's error chain from
/// the resolver, so the tool can report exactly this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub host: String,
    pub ip: Option<IpAddr>,
    pub kind: AddressKind,
    /// Set when the address and port are agentos's own HTTP server.
    pub own_port: Option<u16>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(port) = self.own_port {
            return write!(
                f,
                "`{}` port {port} is agentos's own API, which the network tools never reach unless the \
                 operator lists it with its port (`{}:{port}`) in `[network] allowed_private_hosts`",
                self.host, self.host
            );
        }
        let kind = self.kind.describe();
        match self.ip {
            Some(_) if self.host.parse::<IpAddr>().is_ok() => write!(f, "`{}` is a {kind} address", self.host)?,
            Some(ip) => write!(f, "`{}` resolves to {ip}, a {kind} address", self.host)?,
            None => write!(f, "`{}` is a {kind} host", self.host)?,
        }
        if self.kind == AddressKind::Metadata {
            write!(
                f,
                "; agentos never reaches cloud-metadata services unless the operator lists them in \
                 `[network] allowed_private_hosts`"
            )
        } else {
            write!(
                f,
                "; agentos reaches only public addresses unless the operator sets `[network] \
                 allow_private_addresses = true` or lists the host in `allowed_private_hosts`. \
                 Use a public URL instead"
            )
        }
    }
}

impl std::error::Error for Refusal {}

/// The addresses agentos's own HTTP server listens on, once bound. Shared between the server
/// (which fills it) and the network tools (which never reach it unless the operator names it
/// with its port), so an agent cannot call agentos's API from inside agentos.
#[derive(Debug, Default)]
pub struct OwnListeners(RwLock<Vec<SocketAddr>>);

impl OwnListeners {
    pub fn add(&self, addr: SocketAddr) {
        self.0.write().unwrap_or_else(|p| p.into_inner()).push(addr);
    }

    /// Whether a connection to `ip` on `port` reaches one of them. An unknown port counts as a
    /// match when the address does, so not knowing never opens the door.
    fn reached_by(&self, ip: IpAddr, port: Option<u16>) -> bool {
        let listeners = self.0.read().unwrap_or_else(|p| p.into_inner());
        listeners.iter().any(|listener| {
            let same_port = port.is_none_or(|port| port == listener.port());
            let listen_ip = listener.ip().to_canonical();
            // A wildcard listener answers on every local address: every non-public one counts.
            let same_ip = listen_ip == ip || (listen_ip.is_unspecified() && classify(ip) != AddressKind::Public);
            same_port && same_ip
        })
    }
}

/// What an `allowed_private_hosts` entry names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Listed {
    /// A lower-case host name.
    Name(String),
    /// An address or CIDR range.
    Range(IpNet),
}

/// One `allowed_private_hosts` entry: a host, address or range, and the one port it opens
/// (`None`: every port).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    listed: Listed,
    port: Option<u16>,
}

/// The operator's address policy, from `[network]`.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    allow_private: bool,
    entries: Vec<Entry>,
    own: Arc<OwnListeners>,
}

impl AddressPolicy {
    #[cfg(test)]
    pub fn from_config(config: &NetworkConfig) -> Self {
        Self::with_listeners(config, Arc::default())
    }

    /// The policy of `config`, never reaching the addresses `own` lists unless an entry names
    /// them with their port.
    pub fn with_listeners(config: &NetworkConfig, own: Arc<OwnListeners>) -> Self {
        let mut policy = AddressPolicy {
            allow_private: config.allow_private_addresses,
            entries: Vec::new(),
            own,
        };
        for raw in &config.allowed_private_hosts {
            match parse_entry(raw) {
                Ok(Some(entry)) => policy.entries.push(entry),
                Ok(None) => {}
                Err(why) => tracing::warn!(entry = raw, "ignoring [network] allowed_private_hosts entry: {why}"),
            }
        }
        policy
    }

    /// May a connection to `ip` on `port` (when known), reached through the host name `host`,
    /// be made?
    pub fn check_address(&self, host: &str, ip: IpAddr, port: Option<u16>) -> Result<(), Refusal> {
        let ip = ip.to_canonical();
        let kind = classify(ip);
        let refusal = |own_port| Refusal {
            host: host.to_owned(),
            ip: Some(ip),
            kind,
            own_port,
        };
        if kind != AddressKind::Public && self.own.reached_by(ip, port) {
            return match port {
                Some(port) if self.is_listed_with_port(host, ip, port) => Ok(()),
                _ => Err(refusal(Some(port.unwrap_or_default()))),
            };
        }
        if kind == AddressKind::Public || self.is_listed(host, ip, port) {
            return Ok(());
        }
        if self.allow_private && kind != AddressKind::Metadata {
            return Ok(());
        }
        Err(refusal(None))
    }

    /// Refuses metadata host names before any lookup (their addresses are refused as well).
    pub fn check_name(&self, host: &str) -> Result<(), Refusal> {
        let host = normalize_host(host);
        let listed = self
            .entries
            .iter()
            .any(|entry| entry.listed == Listed::Name(host.clone()));
        if METADATA_HOSTS.contains(&host.as_str()) && !listed {
            return Err(Refusal {
                host,
                ip: None,
                kind: AddressKind::Metadata,
                own_port: None,
            });
        }
        Ok(())
    }

    fn names(&self, entry: &Entry, host: &str, ip: IpAddr) -> bool {
        match &entry.listed {
            Listed::Name(name) => *name == normalize_host(host),
            Listed::Range(net) => net.contains(&ip),
        }
    }

    /// Listed for this port, or for every port. An unknown port matches only port-less entries.
    fn is_listed(&self, host: &str, ip: IpAddr, port: Option<u16>) -> bool {
        self.entries
            .iter()
            .any(|entry| self.names(entry, host, ip) && (entry.port.is_none() || entry.port == port))
    }

    /// Listed with exactly this port.
    fn is_listed_with_port(&self, host: &str, ip: IpAddr, port: u16) -> bool {
        self.entries
            .iter()
            .any(|entry| entry.port == Some(port) && self.names(entry, host, ip))
    }
}

/// `nas.lan`, `nas.lan:8080`, `10.0.0.5`, `10.0.0.5:8080`, `fd00::1`, `[fd00::1]:8080`,
/// `192.168.1.0/24` or `fd00::/8`. `Ok(None)` for an empty entry.
fn parse_entry(raw: &str) -> Result<Option<Entry>, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let (host, port) = split_port(raw)?;
    let host = normalize_host(host);
    if host.is_empty() {
        return Err("no host before the port".into());
    }
    let listed = match parse_range(&host) {
        Some(range) => Listed::Range(range),
        None if host.contains('/') => return Err("not a valid CIDR range".into()),
        None if host.contains(':') => return Err("not a valid IPv6 address (write `[addr]:port` with a port)".into()),
        None => Listed::Name(host),
    };
    Ok(Some(Entry { listed, port }))
}

/// Splits `host:port` and `[v6]:port`; a bare IPv6 address has no port.
fn split_port(raw: &str) -> Result<(&str, Option<u16>), String> {
    let parse = |port: &str| {
        port.parse::<u16>()
            .ok()
            .filter(|port| *port > 0)
            .map(Some)
            .ok_or_else(|| format!("`{port}` is not a port (1 to 65535)"))
    };
    if let Some(rest) = raw.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, "")) => Ok((host, None)),
            Some((host, tail)) => match tail.strip_prefix(':') {
                Some(port) => Ok((host, parse(port)?)),
                None => Err("expected `[addr]:port`".into()),
            },
            None => Err("an unclosed `[`".into()),
        };
    }
    match raw.split_once(':') {
        Some((host, port)) if !port.contains(':') => Ok((host, parse(port)?)),
        _ => Ok((raw, None)),
    }
}

/// `10.0.0.5`, `fd00::1`, `192.168.1.0/24` or `fd00::/8`. Addresses are compared in canonical
/// form (`::ffff:10.0.0.5` is `10.0.0.5`), so IPv4-mapped entries become IPv4 ones.
fn parse_range(entry: &str) -> Option<IpNet> {
    let net = match entry.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => IpNet::from(entry.parse::<IpAddr>().ok()?),
    };
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, v6.prefix_len() - 96).ok().map(IpNet::V4),
            None => Some(net),
        },
        _ => Some(net),
    }
}

/// Lower case, without a trailing dot or IPv6 brackets.
fn normalize_host(host: &str) -> String {
    let host = host.trim().trim_end_matches('.');
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    host.to_ascii_lowercase()
}

/// The host of a URL as agentos compares it: a lower-case domain, or an IP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Domain(String),
    Ip(IpAddr),
}

impl Target {
    pub fn of(url: &Url) -> Option<Self> {
        // The URL parser has already turned every IPv4 spelling (`0x7f.1`, `2130706433`) into
        // dotted form, and IPv6 hosts carry brackets, so parsing tells the two kinds apart.
        let host = normalize_host(url.host_str()?);
        if host.is_empty() {
            return None;
        }
        Some(match host.parse::<IpAddr>() {
            Ok(ip) => Target::Ip(ip),
            Err(_) => Target::Domain(host),
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Domain(domain) => f.write_str(domain),
            Target::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// Whether the caller's `allowedDomains` let it reach `target`. Empty allows every host; `*`
/// allows every host; `example.com` allows it and its subdomains; `*.example.com` allows only
/// subdomains; an IP address allows exactly that address.
pub fn domain_allowed(target: &Target, allowed: &[String]) -> bool {
    if allowed.is_empty() {
        return true;
    }
    allowed.iter().any(|entry| {
        let entry = normalize_entry(entry);
        match target {
            _ if entry == "*" => true,
            Target::Ip(ip) => entry
                .parse::<IpAddr>()
                .is_ok_and(|e| e.to_canonical() == ip.to_canonical()),
            Target::Domain(host) => match entry.strip_prefix("*.") {
                Some(parent) => is_subdomain(host, parent),
                None => *host == entry || is_subdomain(host, &entry),
            },
        }
    })
}

fn is_subdomain(host: &str, parent: &str) -> bool {
    !parent.is_empty()
        && host.len() > parent.len()
        && host.ends_with(parent)
        && host.as_bytes()[host.len() - parent.len() - 1] == b'.'
}

/// An allowlist entry in the form hosts take in URLs: lower case, punycode for
/// international names.
fn normalize_entry(entry: &str) -> String {
    let entry = normalize_host(entry);
    if entry.is_ascii() {
        return entry;
    }
    let (wildcard, name) = match entry.strip_prefix("*.") {
        Some(name) => ("*.", name),
        None => ("", entry.as_str()),
    };
    match Url::parse(&format!("http://{name}/"))
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
    {
        Some(ascii) => format!("{wildcard}{ascii}"),
        None => entry,
    }
}

/// Checks one hop's URL before anything is sent: scheme, the caller's allowed domains, and the
/// address policy for IP literals and metadata names. Returns a message for the model.
/// `skill` is the skill a host call comes through: its declared domains must allow the host too.
pub fn check_url(
    url: &Url,
    allowed_domains: &[String],
    skill: Option<&SkillScope>,
    policy: &AddressPolicy,
) -> Result<Target, String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "only http and https URLs can be fetched; `{}` has the scheme `{}`",
            url,
            url.scheme()
        ));
    }
    let Some(target) = Target::of(url) else {
        return Err(format!(
            "`{url}` has no host; give a full URL such as https://example.com/path"
        ));
    };
    if !domain_allowed(&target, allowed_domains) {
        return Err(format!(
            "`{target}` is not in this agent's allowedDomains ({}); use a URL on one of those hosts, \
             or ask the operator to add `{target}` to the agent's allowedDomains",
            allowed_domains.join(", ")
        ));
    }
    if let Some(skill) = skill
        && (skill.domains.is_empty() || !domain_allowed(&target, &skill.domains))
    {
        let declared = if skill.domains.is_empty() {
            "none".to_owned()
        } else {
            skill.domains.join(", ")
        };
        return Err(format!(
            "`{target}` is not among the domains skill `{}` declares in its manifest ({declared}); \
             a skill reaches only hosts that both it and the agent allow",
            skill.name
        ));
    }
    let host = target.to_string();
    match &target {
        Target::Ip(ip) => policy.check_address(&host, *ip, url.port_or_known_default()),
        Target::Domain(domain) => policy.check_name(domain),
    }
    .map_err(|refusal| format!("refused: {refusal}"))?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow_private: bool, hosts: &[&str]) -> AddressPolicy {
        AddressPolicy::from_config(&NetworkConfig {
            allow_private_addresses: allow_private,
            allowed_private_hosts: hosts.iter().map(|h| h.to_string()).collect(),
            ..NetworkConfig::default()
        })
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn by_default_only_public_addresses_pass() {
        let policy = policy(false, &[]);
        assert!(policy.check_address("example.com", ip("93.184.216.34"), None).is_ok());
        assert!(policy.check_address("example.com", ip("2606:4700::1"), None).is_ok());
        for private in [
            "127.0.0.1",
            "::1",
            "10.0.0.1",
            "::ffff:192.168.0.1",
            "169.254.169.254",
            "fe80::1",
            "0.0.0.0",
        ] {
            let refusal = policy.check_address("evil.example", ip(private), None).unwrap_err();
            assert_eq!(refusal.host, "evil.example");
            let message = refusal.to_string();
            assert!(
                message.contains("evil.example") && message.contains("[network]"),
                "{message}"
            );
        }
        let message = policy
            .check_address("127.0.0.1", ip("127.0.0.1"), None)
            .unwrap_err()
            .to_string();
        assert!(message.starts_with("`127.0.0.1` is a loopback address"), "{message}");
        let message = policy
            .check_address("localhost", ip("::ffff:127.0.0.1"), None)
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("`localhost` resolves to 127.0.0.1, a loopback"),
            "{message}"
        );
    }

    #[test]
    fn allow_private_opens_everything_but_metadata() {
        let policy = policy(true, &[]);
        for private in ["127.0.0.1", "::1", "10.0.0.1", "fd12::1", "fe80::1", "100.64.0.1"] {
            assert!(policy.check_address("h", ip(private), None).is_ok(), "{private}");
        }
        for metadata in [
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "fd00:ec2::254",
            "100.100.100.200",
        ] {
            let refusal = policy.check_address("h", ip(metadata), None).unwrap_err();
            assert_eq!(refusal.kind, AddressKind::Metadata, "{metadata}");
            assert!(refusal.to_string().contains("cloud-metadata"));
        }
        assert!(policy.check_name("metadata.google.internal").is_err());
        assert!(policy.check_name("Metadata.Google.Internal.").is_err());
        assert!(policy.check_name("example.com").is_ok());
    }

    #[test]
    fn listed_private_hosts_pass_by_name_address_or_range() {
        let policy = policy(
            false,
            &[
                "NAS.lan.",
                "10.0.0.5",
                "192.168.1.0/24",
                "fd00::/8",
                "169.254.169.254",
                "bad/99",
                "metadata.google.internal",
            ],
        );
        assert!(policy.check_address("nas.lan", ip("10.9.9.9"), None).is_ok());
        assert!(policy.check_address("other.lan", ip("10.9.9.9"), None).is_err());
        assert!(policy.check_address("x", ip("10.0.0.5"), None).is_ok());
        assert!(policy.check_address("x", ip("::ffff:10.0.0.5"), None).is_ok());
        assert!(policy.check_address("x", ip("10.0.0.6"), None).is_err());
        assert!(policy.check_address("x", ip("192.168.1.200"), None).is_ok());
        assert!(policy.check_address("x", ip("192.168.2.1"), None).is_err());
        assert!(policy.check_address("x", ip("fd12::1"), None).is_ok());
        assert!(policy.check_address("x", ip("fe80::1"), None).is_err());
        assert!(policy.check_address("x", ip("169.254.169.254"), None).is_ok());
        assert!(policy.check_name("metadata.google.internal").is_ok());
        assert!(policy.check_address("x", ip("127.0.0.1"), None).is_err());
    }

    #[test]
    fn entries_with_a_port_open_only_that_port() {
        let policy = policy(false, &["localhost:8080", "10.0.0.5:5432", "[fd00::1]:443", "nas.lan"]);
        assert!(policy.check_address("localhost", ip("127.0.0.1"), Some(8080)).is_ok());
        assert!(policy.check_address("localhost", ip("127.0.0.1"), Some(7777)).is_err());
        assert!(
            policy.check_address("localhost", ip("127.0.0.1"), None).is_err(),
            "unknown port"
        );
        assert!(policy.check_address("x", ip("10.0.0.5"), Some(5432)).is_ok());
        assert!(policy.check_address("x", ip("10.0.0.5"), Some(22)).is_err());
        assert!(policy.check_address("x", ip("fd00::1"), Some(443)).is_ok());
        assert!(policy.check_address("x", ip("fd00::1"), Some(80)).is_err());
        assert!(
            policy.check_address("nas.lan", ip("10.1.1.1"), Some(22)).is_ok(),
            "no port: every port"
        );
    }

    #[test]
    fn entries_parse_with_and_without_ports() {
        let entry = |raw: &str| parse_entry(raw).map(|e| e.map(|e| (e.listed, e.port)));
        let name = |n: &str| Listed::Name(n.into());
        let range = |r: &str| Listed::Range(r.parse().unwrap());
        assert_eq!(entry("NAS.lan."), Ok(Some((name("nas.lan"), None))));
        assert_eq!(entry("localhost:8080"), Ok(Some((name("localhost"), Some(8080)))));
        assert_eq!(entry("10.0.0.5:80"), Ok(Some((range("10.0.0.5/32"), Some(80)))));
        assert_eq!(entry("fd00::1"), Ok(Some((range("fd00::1/128"), None))));
        assert_eq!(entry("[fd00::1]:443"), Ok(Some((range("fd00::1/128"), Some(443)))));
        assert_eq!(entry("[fd00::1]"), Ok(Some((range("fd00::1/128"), None))));
        assert_eq!(entry("  "), Ok(None));
        for bad in [
            "host:0",
            "host:70000",
            "host:http",
            ":80",
            "[fd00::1",
            "[fd00::1]x",
            "bad/99",
            "fd00::zz",
        ] {
            assert!(entry(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn agentos_own_address_is_reached_only_when_named_with_its_port() {
        let own = Arc::new(OwnListeners::default());
        own.add("127.0.0.1:7777".parse().unwrap());
        let config = |hosts: &[&str], allow_private: bool| NetworkConfig {
            allow_private_addresses: allow_private,
            allowed_private_hosts: hosts.iter().map(|h| h.to_string()).collect(),
            ..NetworkConfig::default()
        };
        for open in [
            AddressPolicy::with_listeners(&config(&["localhost", "127.0.0.1"], false), own.clone()),
            AddressPolicy::with_listeners(&config(&[], true), own.clone()),
        ] {
            let refusal = open
                .check_address("localhost", ip("127.0.0.1"), Some(7777))
                .unwrap_err();
            assert_eq!(refusal.own_port, Some(7777));
            assert!(refusal.to_string().contains("agentos's own API"), "{refusal}");
            assert!(open.check_address("localhost", ip("127.0.0.1"), None).is_err());
            assert!(open.check_address("localhost", ip("127.0.0.1"), Some(8080)).is_ok());
        }
        let named = AddressPolicy::with_listeners(&config(&["localhost:7777"], false), own.clone());
        assert!(named.check_address("localhost", ip("127.0.0.1"), Some(7777)).is_ok());
        let wildcard = Arc::new(OwnListeners::default());
        wildcard.add("0.0.0.0:7777".parse().unwrap());
        let open = AddressPolicy::with_listeners(&config(&[], true), wildcard);
        assert!(open.check_address("x", ip("10.0.0.7"), Some(7777)).is_err());
        assert!(open.check_address("x", ip("10.0.0.7"), Some(7778)).is_ok());
    }

    #[test]
    fn ranges_parse_and_match() {
        let net = |text: &str| text.parse::<IpNet>().unwrap();
        assert_eq!(parse_range("10.0.0.0/8"), Some(net("10.0.0.0/8")));
        assert_eq!(parse_range("::ffff:10.0.0.1"), Some(net("10.0.0.1/32")));
        assert_eq!(parse_range("::ffff:10.0.0.0/104"), Some(net("10.0.0.0/8")));
        assert_eq!(parse_range("10.0.0.0/33"), None);
        assert_eq!(parse_range("fd00::/129"), None);
        assert_eq!(parse_range("example.com"), None);
        let within = |address: &str, range: &str| parse_range(range).unwrap().contains(&ip(address));
        assert!(within("1.2.3.4", "0.0.0.0/0"));
        assert!(within("10.255.0.1", "10.0.0.0/8"));
        assert!(!within("11.0.0.1", "10.0.0.0/8"));
        assert!(within("fd00::1", "fd00::/16"));
        assert!(!within("fd01::1", "fd00::/16"));
        assert!(!within("10.0.0.1", "fd00::/0"));
    }

    fn allowed(url: &str, domains: &[&str]) -> bool {
        let domains: Vec<String> = domains.iter().map(|d| d.to_string()).collect();
        domain_allowed(&Target::of(&Url::parse(url).unwrap()).unwrap(), &domains)
    }

    #[test]
    fn allowed_domains_match_exactly_or_as_parent() {
        assert!(allowed("https://anything.example/", &[]));
        assert!(allowed("https://anything.example/", &["*"]));
        assert!(allowed("https://example.com/", &["example.com"]));
        assert!(allowed("https://API.Example.COM./x", &["example.com"]));
        assert!(allowed("https://a.b.example.com/", &["Example.com."]));
        assert!(!allowed("https://badexample.com/", &["example.com"]));
        assert!(!allowed("https://example.com.evil.net/", &["example.com"]));
        assert!(!allowed("https://com/", &["example.com"]));
        assert!(allowed("https://api.example.com/", &["*.example.com"]));
        assert!(!allowed("https://example.com/", &["*.example.com"]));
        assert!(!allowed("https://other.org/", &["example.com", "*.example.net"]));
        assert!(allowed("https://other.org/", &["example.com", "other.org"]));
        assert!(allowed("https://xn--bcher-kva.example/", &["bücher.example"]));
        assert!(allowed("https://shop.xn--bcher-kva.example/", &["*.Bücher.example"]));
    }

    #[test]
    fn ip_hosts_match_only_exact_entries() {
        assert!(allowed("http://127.0.0.1:8080/", &["127.0.0.1"]));
        assert!(!allowed("http://127.0.0.1/", &["localhost"]));
        assert!(!allowed("http://10.0.0.1/", &["0.0.1"]));
        assert!(!allowed("http://10.0.0.1/", &["*.0.0.1"]));
        assert!(allowed("http://[::1]/", &["[::1]"]));
        assert!(allowed("http://[::1]/", &["::1"]));
        assert!(allowed("http://[::ffff:7f00:1]/", &["127.0.0.1"]));
        assert!(allowed("http://localhost/", &["localhost"]));
    }

    #[test]
    fn urls_are_checked_before_sending() {
        let strict = policy(false, &[]);
        let check = |url: &str, domains: &[&str], policy: &AddressPolicy| {
            let domains: Vec<String> = domains.iter().map(|d| d.to_string()).collect();
            check_url(&Url::parse(url).unwrap(), &domains, None, policy)
        };
        assert_eq!(
            check("https://example.com/a", &[], &strict),
            Ok(Target::Domain("example.com".into()))
        );
        let error = check("ftp://example.com/file", &[], &strict).unwrap_err();
        assert!(
            error.contains("only http and https") && error.contains("`ftp`"),
            "{error}"
        );
        assert!(
            check("file:///etc/passwd", &[], &strict)
                .unwrap_err()
                .contains("only http and https")
        );
        let error = check("https://other.org/", &["example.com"], &strict).unwrap_err();
        assert!(
            error.contains("`other.org` is not in this agent's allowedDomains (example.com)"),
            "{error}"
        );
        // Every spelling of loopback that the URL parser normalizes is caught.
        for url in [
            "http://127.0.0.1/",
            "http://127.1/",
            "http://0x7f.0.0.1/",
            "http://2130706433/",
            "http://017700000001/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0/",
        ] {
            let error = check(url, &[], &strict).unwrap_err();
            assert!(
                error.starts_with("refused: ") && error.contains("allow_private_addresses"),
                "{url}: {error}"
            );
        }
        let error = check("http://169.254.169.254/latest/meta-data/", &[], &policy(true, &[])).unwrap_err();
        assert!(error.contains("cloud-metadata"), "{error}");
        let error = check("http://metadata.google.internal/", &[], &policy(true, &[])).unwrap_err();
        assert!(error.contains("cloud-metadata"), "{error}");
        assert!(check("http://127.0.0.1:9/", &[], &policy(true, &[])).is_ok());
    }
}
