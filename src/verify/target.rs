//! Probe targets (SPEC §6.1): a URL Valine may check or store as a setting, parsed once
//! into a [`ProbeTarget`] that can only hold an allowed, normalised URL.
//!
//! This is the syntax part of the rules (scheme, host, userinfo, `ALLOWED_DOMAINS`, IP
//! literals and local names); resolving names and pinning connections belongs to the
//! probe.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use crate::config::Config;

/// What targets are allowed, from the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TargetPolicy {
    /// `SAFE_LOCAL`: plain http and loopback/private addresses are allowed.
    pub safe_local: bool,
    /// `ALLOWED_DOMAINS` entries, lower case: `example.com` or `*.example.com`.
    pub allowed_domains: Vec<String>,
}

impl TargetPolicy {
    pub fn from_config(config: &Config) -> Self {
        TargetPolicy {
            safe_local: config.safe_local,
            allowed_domains: config.allowed_domains.clone(),
        }
    }

    fn allows_domain(&self, host: &str) -> bool {
        self.allowed_domains.is_empty()
            || self.allowed_domains.iter().any(|entry| {
                let entry = entry.to_ascii_lowercase();
                match entry.strip_prefix("*.") {
                    Some(apex) => host == apex || host.ends_with(&format!(".{apex}")),
                    None => host == entry,
                }
            })
    }
}

/// A URL that passed the target rules, in normalised form: lower-case host, no
/// fragment, no trailing `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    url: Url,
    normalised: String,
}

/// Why a URL is not an acceptable target; the text is shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("not a valid URL ({0})")]
    Syntax(String),
    #[error("the URL must use https")]
    Scheme,
    #[error("the URL must have a host")]
    NoHost,
    #[error("the URL must not contain a user name or password")]
    UserInfo,
    #[error("{0} is not in ALLOWED_DOMAINS")]
    NotAllowed(String),
    #[error("{0} is a local, private or reserved address")]
    Local(String),
}

impl ProbeTarget {
    pub fn parse(input: &str, policy: &TargetPolicy) -> Result<ProbeTarget, TargetError> {
        let mut url = Url::parse(input.trim()).map_err(|e| TargetError::Syntax(e.to_string()))?;
        match url.scheme() {
            "https" => {}
            "http" if policy.safe_local => {}
            _ => return Err(TargetError::Scheme),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(TargetError::UserInfo);
        }
        let host = match url.host() {
            None => return Err(TargetError::NoHost),
            Some(Host::Domain("")) => return Err(TargetError::NoHost),
            Some(host) => host.to_owned(),
        };
        match &host {
            Host::Domain(name) => {
                let bare = name.trim_end_matches('.');
                if !policy.safe_local && (bare == "localhost" || bare.ends_with(".localhost")) {
                    return Err(TargetError::Local(name.clone()));
                }
                if !policy.allows_domain(bare) {
                    return Err(TargetError::NotAllowed(name.clone()));
                }
            }
            Host::Ipv4(ip) => check_ip(IpAddr::V4(*ip), policy)?,
            Host::Ipv6(ip) => check_ip(IpAddr::V6(*ip), policy)?,
        }
        url.set_fragment(None);
        let normalised = url.as_str().trim_end_matches('/').to_owned();
        Ok(ProbeTarget { url, normalised })
    }

    /// The normalised URL: what is stored, shown and fingerprinted.
    pub fn as_str(&self) -> &str {
        &self.normalised
    }

    pub fn url(&self) -> &Url {
        &self.url
    }
}

/// An IP literal never matches `ALLOWED_DOMAINS`, and only `SAFE_LOCAL` allows the
/// addresses that are not on the public internet.
fn check_ip(ip: IpAddr, policy: &TargetPolicy) -> Result<(), TargetError> {
    if !policy.allowed_domains.is_empty() {
        return Err(TargetError::NotAllowed(ip.to_string()));
    }
    if !policy.safe_local && !is_public(ip) {
        return Err(TargetError::Local(ip.to_string()));
    }
    Ok(())
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || a >= 240
        || (a == 100 && (64..128).contains(&b)))
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || first == 0x2001 && ip.segments()[1] == 0x0db8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> TargetPolicy {
        TargetPolicy::default()
    }

    #[test]
    fn normalises_host_case_trailing_slash_and_fragment() {
        let t = ProbeTarget::parse(" https://App.Example.COM/base/#top ", &strict()).unwrap();
        assert_eq!(t.as_str(), "https://app.example.com/base");
        assert_eq!(t.url().host_str(), Some("app.example.com"));
        let t = ProbeTarget::parse("https://example.com/", &strict()).unwrap();
        assert_eq!(t.as_str(), "https://example.com");
    }

    #[test]
    fn refuses_what_the_rules_forbid() {
        let cases = [
            ("not a url", "not a valid URL"),
            ("http://example.com", "https"),
            ("ftp://example.com", "https"),
            ("https://user:pw@example.com", "user name"),
            ("https://localhost/", "local"),
            ("https://127.0.0.1/", "local"),
            ("https://2130706433/", "local"),
            ("https://[::1]/", "local"),
            ("https://10.1.2.3/", "local"),
            ("https://169.254.169.254/", "local"),
            ("https://[::ffff:192.168.0.1]/", "local"),
        ];
        for (input, reason) in cases {
            let err = ProbeTarget::parse(input, &strict()).unwrap_err();
            assert!(err.to_string().contains(reason), "{input}: {err}");
        }
    }

    #[test]
    fn safe_local_allows_plain_http_and_loopback_only() {
        let local = TargetPolicy {
            safe_local: true,
            ..TargetPolicy::default()
        };
        assert!(ProbeTarget::parse("http://127.0.0.1:8080/", &local).is_ok());
        assert!(ProbeTarget::parse("ftp://127.0.0.1/", &local).is_err());
    }

    #[test]
    fn allowed_domains_match_exactly_or_as_wildcard_with_apex() {
        let policy = TargetPolicy {
            safe_local: false,
            allowed_domains: vec!["example.com".into(), "*.example.org".into()],
        };
        for ok in [
            "https://example.com",
            "https://example.org",
            "https://a.b.example.org",
        ] {
            assert!(ProbeTarget::parse(ok, &policy).is_ok(), "{ok}");
        }
        for bad in [
            "https://a.example.com",
            "https://evil-example.org",
            "https://93.184.216.34",
        ] {
            assert!(ProbeTarget::parse(bad, &policy).is_err(), "{bad}");
        }
    }
}
