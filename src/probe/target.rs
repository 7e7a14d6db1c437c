//! Probe targets (see `docs/design.md#ssrf-policy`): a [`ProbeTarget`] can only hold a
//! URL that passed the rules, so code that probes never re-validates and never forgets
//! to.
//!
//! What is decided here, without DNS: the scheme (`https`; plain `http` only with
//! `SAFE_LOCAL`), a host and no userinfo, `ALLOWED_DOMAINS`, IP literals in forbidden
//! ranges and local names. The `url` crate parses hosts the way browsers do, so numeric
//! disguises (`2130706433`, `0x7f.1`, `017700000001`, `127.1`) arrive here as the IPv4
//! address they stand for and meet the same range check. Names are resolved at probe
//! time, where every resolved address is checked again (the client in this module's parent).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use crate::config::Config;

/// The rules a probe target must pass, from the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Allow loopback/private targets and plain http (development and tests only).
    pub safe_local: bool,
    /// Lower-case `example.com` or `*.example.com`; empty means any public host.
    pub allowed_domains: Vec<String>,
}

impl TargetPolicy {
    pub fn from_config(config: &Config) -> Self {
        TargetPolicy {
            safe_local: config.safe_local,
            allowed_domains: config
                .allowed_domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
        }
    }

    /// Whether `host` (a name, lower case, without a trailing dot) is allowed by
    /// `ALLOWED_DOMAINS`. `*.example.com` also matches the apex.
    fn domain_allowed(&self, host: &str) -> bool {
        self.allowed_domains.is_empty()
            || self
                .allowed_domains
                .iter()
                .any(|entry| match entry.strip_prefix("*.") {
                    Some(apex) => {
                        host == apex
                            || host
                                .strip_suffix(apex)
                                .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1)
                    }
                    None => host == entry,
                })
    }
}

/// Why a URL cannot be probed. The text is shown to users as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("not a valid URL ({0})")]
    Malformed(String),
    #[error("only https URLs can be checked (plain http only with SAFE_LOCAL), got {0}:")]
    Scheme(String),
    #[error("the URL has no host")]
    NoHost,
    #[error("URLs with a user name or password are not allowed")]
    Userinfo,
    #[error("a base URL cannot have a query or fragment")]
    QueryOrFragment,
    #[error("{0} is not in ALLOWED_DOMAINS")]
    NotAllowedDomain(String),
    #[error("{0} is a loopback, private, link-local or reserved address")]
    ForbiddenAddress(IpAddr),
    #[error("{0} is a local name, not a public host")]
    LocalName(String),
}

/// A URL that may be probed: normalised (lower-case host, no trailing `/`).
#[derive(Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    url: Url,
    normalised: String,
}

impl fmt::Debug for ProbeTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ProbeTarget")
            .field(&self.normalised)
            .finish()
    }
}

impl fmt::Display for ProbeTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.normalised)
    }
}

impl ProbeTarget {
    /// Parses a base URL a person typed or configured, applying every rule that does
    /// not need DNS.
    pub fn parse(input: &str, policy: &TargetPolicy) -> Result<ProbeTarget, TargetError> {
        let url = Url::parse(input.trim()).map_err(|e| TargetError::Malformed(e.to_string()))?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(TargetError::QueryOrFragment);
        }
        check_url(&url, policy)?;
        let normalised = url.as_str().trim_end_matches('/').to_owned();
        Ok(ProbeTarget { url, normalised })
    }

    /// The normalised form: what settings store and replies show.
    pub fn as_str(&self) -> &str {
        &self.normalised
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The host, as the URL has it (lower case; IPv6 without brackets).
    pub fn host(&self) -> String {
        match self.url.host() {
            Some(Host::Ipv6(ip)) => ip.to_string(),
            Some(host) => host.to_string(),
            None => String::new(),
        }
    }

    /// `path` (which may carry a query) under this base: the base's trailing `/` is
    /// trimmed and `path` appended, so `https://x/app/` + `/health` is
    /// `https://x/app/health`.
    pub fn join(&self, path: &str) -> Url {
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        let base = self.url.path().trim_end_matches('/');
        let path = if path.starts_with('/') {
            format!("{base}{path}")
        } else {
            format!("{base}/{path}")
        };
        let mut url = self.url.clone();
        url.set_path(&path);
        url.set_query(query);
        url
    }
}

/// Checks any URL Valine is about to fetch (a target, or a redirect hop) against the
/// rules that need no DNS. Query and fragment are fine here: only bases refuse them.
pub fn check_url(url: &Url, policy: &TargetPolicy) -> Result<(), TargetError> {
    match url.scheme() {
        "https" => {}
        "http" if policy.safe_local => {}
        other => return Err(TargetError::Scheme(other.to_owned())),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TargetError::Userinfo);
    }
    let host = url.host().ok_or(TargetError::NoHost)?;
    match host {
        Host::Ipv4(ip) => check_ip(IpAddr::V4(ip), policy),
        Host::Ipv6(ip) => check_ip(IpAddr::V6(ip), policy),
        Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name.is_empty() {
                return Err(TargetError::NoHost);
            }
            if !policy.safe_local && is_local_name(&name) {
                return Err(TargetError::LocalName(name));
            }
            if !policy.domain_allowed(&name) {
                return Err(TargetError::NotAllowedDomain(name));
            }
            Ok(())
        }
    }
}

fn check_ip(ip: IpAddr, policy: &TargetPolicy) -> Result<(), TargetError> {
    // An allowlist names domains; an address would sidestep it.
    if !policy.allowed_domains.is_empty() {
        return Err(TargetError::NotAllowedDomain(ip.to_string()));
    }
    if !policy.safe_local && is_forbidden_ip(ip) {
        return Err(TargetError::ForbiddenAddress(ip));
    }
    Ok(())
}

/// Names that resolve inside the machine or the local network: `localhost` and its
/// subdomains, mDNS `.local`, the private-use `.internal`, `.localdomain`, `.home.arpa`,
/// and single-label names, which resolvers complete with the local search domain.
fn is_local_name(name: &str) -> bool {
    const LOCAL_SUFFIXES: [&str; 5] =
        ["localhost", "local", "internal", "localdomain", "home.arpa"];
    !name.contains('.')
        || LOCAL_SUFFIXES.iter().any(|suffix| {
            name == *suffix
                || name
                    .strip_suffix(suffix)
                    .is_some_and(|rest| rest.ends_with('.'))
        })
}

/// Whether an address must never be probed unless `SAFE_LOCAL`: loopback, unspecified,
/// private, shared (CGNAT), link-local (cloud metadata included), multicast, broadcast,
/// documentation and reserved ranges, and IPv6 forms that embed such an IPv4 address.
pub fn is_forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => is_forbidden_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    const RANGES: [([u8; 4], u32); 15] = [
        ([0, 0, 0, 0], 8),       // "this network", unspecified
        ([10, 0, 0, 0], 8),      // private
        ([100, 64, 0, 0], 10),   // shared address space (CGNAT)
        ([127, 0, 0, 0], 8),     // loopback
        ([169, 254, 0, 0], 16),  // link-local, cloud metadata (169.254.169.254)
        ([172, 16, 0, 0], 12),   // private
        ([192, 0, 0, 0], 24),    // IETF protocol assignments
        ([192, 0, 2, 0], 24),    // documentation (TEST-NET-1)
        ([192, 88, 99, 0], 24),  // 6to4 relay anycast (deprecated)
        ([192, 168, 0, 0], 16),  // private
        ([198, 18, 0, 0], 15),   // benchmarking
        ([198, 51, 100, 0], 24), // documentation (TEST-NET-2)
        ([203, 0, 113, 0], 24),  // documentation (TEST-NET-3)
        ([224, 0, 0, 0], 4),     // multicast
        ([240, 0, 0, 0], 4),     // reserved, broadcast 255.255.255.255
    ];
    RANGES.iter().any(|(net, prefix)| in_v4(ip, *net, *prefix))
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    u128::from(ip) & mask == u128::from(Ipv6Addr::from(net)) & mask
}

fn embedded_v4(ip: Ipv6Addr) -> Ipv4Addr {
    let [.., a, b, c, d] = ip.octets();
    Ipv4Addr::new(a, b, c, d)
}

fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    // Forms that carry an IPv4 address: judged by that address.
    if in_v6(ip, [0, 0, 0, 0, 0, 0xffff, 0, 0], 96) // IPv4-mapped
        || in_v6(ip, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96)
    // NAT64
    {
        return is_forbidden_v4(embedded_v4(ip));
    }
    if in_v6(ip, [0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        // 6to4: the IPv4 address sits in bits 16..48.
        let [_, _, a, b, c, d, ..] = ip.octets();
        return is_forbidden_v4(Ipv4Addr::new(a, b, c, d));
    }
    const RANGES: [([u16; 8], u32); 11] = [
        ([0, 0, 0, 0, 0, 0, 0, 0], 96), // unspecified, loopback, IPv4-compatible (deprecated)
        ([0, 0, 0, 0, 0, 0xffff, 0xffff, 0], 96), // fragments of mapped forms: never routed
        ([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), // local-use NAT64
        ([0x100, 0, 0, 0, 0, 0, 0, 0], 64), // discard-only
        ([0x2001, 0, 0, 0, 0, 0, 0, 0], 23), // IETF protocol assignments (Teredo, benchmarking)
        ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), // documentation
        ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), // documentation (RFC 9637)
        ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), // unique local (private)
        ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), // link-local
        ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), // site-local (deprecated)
        ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), // multicast
    ];
    RANGES.iter().any(|(net, prefix)| in_v6(ip, *net, *prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> TargetPolicy {
        TargetPolicy::default()
    }

    fn local() -> TargetPolicy {
        TargetPolicy {
            safe_local: true,
            allowed_domains: Vec::new(),
        }
    }

    fn allow(domains: &[&str]) -> TargetPolicy {
        TargetPolicy {
            safe_local: false,
            allowed_domains: domains.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn valid_targets_are_normalised() {
        let cases = [
            ("https://Example.COM/", "https://example.com"),
            ("https://example.com", "https://example.com"),
            ("https://example.com:443/app/", "https://example.com/app"),
            ("https://example.com:8443", "https://example.com:8443"),
            (
                "  https://api.example.com/v1  ",
                "https://api.example.com/v1",
            ),
            ("https://8.8.8.8", "https://8.8.8.8"),
            ("https://[2606:4700::1111]/", "https://[2606:4700::1111]"),
        ];
        for (input, normalised) in cases {
            let target = ProbeTarget::parse(input, &strict())
                .unwrap_or_else(|e| panic!("{input} refused: {e}"));
            assert_eq!(target.as_str(), normalised, "{input}");
        }
    }

    #[test]
    fn syntax_rules_refuse_with_a_reason() {
        type Expect = fn(&TargetError) -> bool;
        let cases: [(&str, Expect); 9] = [
            ("not a url", |e| matches!(e, TargetError::Malformed(_))),
            (
                "http://example.com",
                |e| matches!(e, TargetError::Scheme(s) if s == "http"),
            ),
            ("ftp://example.com", |e| matches!(e, TargetError::Scheme(_))),
            ("file:///etc/passwd", |e| {
                matches!(e, TargetError::Scheme(_))
            }),
            ("https://user@example.com", |e| *e == TargetError::Userinfo),
            ("https://user:pw@example.com", |e| {
                *e == TargetError::Userinfo
            }),
            ("https://:pw@example.com", |e| *e == TargetError::Userinfo),
            ("https://example.com/?a=1", |e| {
                *e == TargetError::QueryOrFragment
            }),
            ("https://example.com/#x", |e| {
                *e == TargetError::QueryOrFragment
            }),
        ];
        for (input, expected) in cases {
            let err = ProbeTarget::parse(input, &strict()).unwrap_err();
            assert!(expected(&err), "{input}: {err:?}");
            assert!(!err.to_string().is_empty());
        }
        assert!(
            ProbeTarget::parse("http://example.com", &strict())
                .unwrap_err()
                .to_string()
                .contains("only https")
        );
    }

    #[test]
    fn forbidden_addresses_and_their_disguises_are_refused() {
        let cases = [
            "https://127.0.0.1",
            "https://127.9.9.9",
            "https://0.0.0.0",
            "https://10.1.2.3",
            "https://172.16.0.1",
            "https://172.31.255.255",
            "https://192.168.1.1",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1",
            "https://224.0.0.1",
            "https://255.255.255.255",
            "https://240.0.0.1",
            "https://192.0.2.10",
            "https://198.51.100.1",
            "https://203.0.113.1",
            "https://198.18.0.1",
            "https://192.0.0.8",
            // Numeric disguises of 127.0.0.1.
            "https://2130706433",
            "https://0x7f.1",
            "https://0x7f000001",
            "https://017700000001",
            "https://0177.0.0.1",
            "https://127.1",
            "https://127.0.1",
            // IPv6 and IPv6 forms of IPv4.
            "https://[::1]",
            "https://[::]",
            "https://[::ffff:127.0.0.1]",
            "https://[::ffff:7f00:1]",
            "https://[::ffff:169.254.169.254]",
            "https://[::127.0.0.1]",
            "https://[64:ff9b::10.0.0.1]",
            "https://[2002:7f00:1::]",
            "https://[fc00::1]",
            "https://[fd12:3456::1]",
            "https://[fe80::1]",
            "https://[fec0::1]",
            "https://[ff02::1]",
            "https://[2001:db8::1]",
            "https://[100::1]",
        ];
        for input in cases {
            match ProbeTarget::parse(input, &strict()) {
                Err(TargetError::ForbiddenAddress(_)) => {}
                other => panic!("{input}: {other:?}"),
            }
            // SAFE_LOCAL relaxes exactly this rule.
            assert!(ProbeTarget::parse(input, &local()).is_ok(), "{input}");
        }
    }

    #[test]
    fn public_addresses_stay_allowed() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "169.253.1.1",
            "192.169.0.1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2606:4700::1111",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!is_forbidden_ip(ip), "{ip}");
        }
    }

    #[test]
    fn local_names_are_refused_unless_safe_local() {
        for input in [
            "https://localhost",
            "https://LOCALHOST",
            "https://localhost.",
            "https://app.localhost",
            "https://printer.local",
            "https://db.internal",
            "https://metadata.google.internal",
            "https://box.localdomain",
            "https://nas.home.arpa",
            "https://intranet",
        ] {
            match ProbeTarget::parse(input, &strict()) {
                Err(TargetError::LocalName(_)) => {}
                other => panic!("{input}: {other:?}"),
            }
            assert!(ProbeTarget::parse(input, &local()).is_ok(), "{input}");
        }
        assert!(ProbeTarget::parse("https://localhost.example.com", &strict()).is_ok());
        assert!(ProbeTarget::parse("https://internal.example.com", &strict()).is_ok());
    }

    #[test]
    fn safe_local_allows_http_and_nothing_else() {
        assert!(ProbeTarget::parse("http://127.0.0.1:8080", &local()).is_ok());
        assert!(ProbeTarget::parse("ftp://127.0.0.1", &local()).is_err());
        assert_eq!(
            ProbeTarget::parse("http://u:p@127.0.0.1", &local()).unwrap_err(),
            TargetError::Userinfo
        );
        let with_allowlist = TargetPolicy {
            safe_local: true,
            allowed_domains: vec!["example.com".into()],
        };
        assert!(ProbeTarget::parse("http://other.org", &with_allowlist).is_err());
    }

    #[test]
    fn allowed_domains_match_exactly_or_by_wildcard_with_apex() {
        let policy = allow(&["example.com", "*.example.net"]);
        let ok = [
            "https://example.com",
            "https://EXAMPLE.com",
            "https://example.com.",
            "https://example.net",
            "https://a.example.net",
            "https://a.b.example.net",
        ];
        for input in ok {
            assert!(ProbeTarget::parse(input, &policy).is_ok(), "{input}");
        }
        let refused = [
            "https://www.example.com",
            "https://badexample.net",
            "https://example.net.evil.com",
            "https://example.org",
            "https://93.184.216.34",
            "https://[2606:4700::1111]",
        ];
        for input in refused {
            match ProbeTarget::parse(input, &policy) {
                Err(TargetError::NotAllowedDomain(_)) => {}
                other => panic!("{input}: {other:?}"),
            }
        }
    }

    #[test]
    fn join_trims_the_base_slash_and_keeps_queries() {
        let base = ProbeTarget::parse("https://example.com/app/", &strict()).unwrap();
        assert_eq!(
            base.join("/health").as_str(),
            "https://example.com/app/health"
        );
        assert_eq!(base.join("/").as_str(), "https://example.com/app/");
        assert_eq!(base.join("hello").as_str(), "https://example.com/app/hello");
        assert_eq!(
            base.join("/health?deep=1").as_str(),
            "https://example.com/app/health?deep=1"
        );
        let root = ProbeTarget::parse("https://example.com", &strict()).unwrap();
        assert_eq!(
            root.join("/index.html").as_str(),
            "https://example.com/index.html"
        );
        assert_eq!(root.join("//evil.com/x").host_str(), Some("example.com"));
        assert_eq!(root.host(), "example.com");
    }

    #[test]
    fn redirect_hops_are_checked_with_the_same_rules() {
        let hop = Url::parse("https://169.254.169.254/latest?x=1").unwrap();
        assert!(matches!(
            check_url(&hop, &strict()),
            Err(TargetError::ForbiddenAddress(_))
        ));
        let hop = Url::parse("https://example.com/next?x=1#f").unwrap();
        assert!(check_url(&hop, &strict()).is_ok());
    }
}
