//! The SSRF guard: webhook endpoints must be public HTTP(S) addresses.
//!
//! Checked twice: when a webhook is created or changed (its host resolved
//! now), and at every delivery by the HTTP client's resolver
//! ([`GuardedResolver`]), which hands the connector only addresses that pass,
//! so the address checked is the address connected to (a DNS answer that
//! changes between check and connect cannot sneak a private address in).
//! `--webhooks-allow-private` turns both off.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;

/// Why an address may not be a webhook target, or `None` when it may.
pub fn forbidden_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4);
            }
            let s = v6.segments();
            // NAT64 (64:ff9b::/96) embeds an IPv4 address.
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                let o = v6.octets();
                return forbidden_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
            }
            if v6.is_unspecified() {
                Some("an unspecified address")
            } else if v6.is_loopback() {
                Some("a loopback address")
            } else if v6.is_multicast() {
                Some("a multicast address")
            } else if s[0] & 0xffc0 == 0xfe80 {
                Some("a link-local address")
            } else if s[0] & 0xffc0 == 0xfec0 {
                Some("a site-local address")
            } else if s[0] & 0xfe00 == 0xfc00 {
                Some("a private (unique local) address")
            } else if s[0..6] == [0, 0, 0, 0, 0, 0] {
                // IPv4-compatible (deprecated) ::a.b.c.d
                let o = v6.octets();
                forbidden_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
            } else {
                None
            }
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_unspecified() || o[0] == 0 {
        Some("an unspecified address")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_private() {
        Some("a private address")
    } else if ip.is_link_local() {
        Some("a link-local address")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("a carrier-grade NAT address")
    } else if ip.is_broadcast() {
        Some("a broadcast address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if o[0] >= 240 {
        Some("a reserved address")
    } else {
        None
    }
}

/// Parses and checks the form of an endpoint: an absolute http(s) URL with
/// a host and no credentials.
pub fn parse_endpoint(s: &str) -> Result<Url, String> {
    if s.len() > 2048 {
        return Err("must be at most 2048 characters".into());
    }
    let url = Url::parse(s).map_err(|e| format!("must be an http(s) URL ({e})"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err("must be an http or https URL".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; use authorization_header".into());
    }
    Ok(url)
}

/// The host of the URL when it is an IP literal (the URL parser has already
/// normalised forms like `0x7f.1` to dotted IPv4).
fn host_ip(url: &Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok()
}

fn is_localhost_name(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    h == "localhost" || h.ends_with(".localhost")
}

/// The creation-time check: refuses endpoints whose host is, or resolves
/// to, a non-public address. A name that does not resolve (yet) is allowed;
/// the delivery-time check refuses it then if it resolves badly.
pub async fn check_endpoint(url: &Url) -> Result<(), String> {
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or(443);
    check_host(host, port)
        .await
        .map_err(|(host, why)| refusal(&host, why))
}

/// Whether `host` (an IP literal, bracketed or not, or a name resolved now)
/// is public. `Err((what, why))` names the host (and the address it
/// resolved to) and the kind of address. A name that does not resolve
/// within 3 s passes. Also used for RTMP restream targets.
pub async fn check_host(host: &str, port: u16) -> Result<(), (String, &'static str)> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return match forbidden_reason(ip) {
            Some(why) => Err((ip.to_string(), why)),
            None => Ok(()),
        };
    }
    if is_localhost_name(host) {
        return Err((host.to_string(), "a loopback address"));
    }
    let lookup = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::net::lookup_host((host.to_string(), port)),
    )
    .await;
    if let Ok(Ok(addrs)) = lookup {
        for a in addrs {
            if let Some(why) = forbidden_reason(a.ip()) {
                return Err((format!("{host} ({})", a.ip()), why));
            }
        }
    }
    Ok(())
}

fn refusal(host: &str, why: &str) -> String {
    format!(
        "{host} is {why}; webhooks may only target public addresses \
         (the operator can allow private ones with --webhooks-allow-private)"
    )
}

/// The delivery-time check of an endpoint given as an IP literal (which no
/// resolver sees).
pub fn check_literal(url: &Url) -> Result<(), String> {
    match host_ip(url).and_then(|ip| forbidden_reason(ip).map(|why| (ip, why))) {
        Some((ip, why)) => Err(refusal(&ip.to_string(), why)),
        None => Ok(()),
    }
}

/// A resolver for the delivery client that fails when a name resolves to
/// any non-public address, so the connector only ever sees checked
/// addresses.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            if is_localhost_name(&host) {
                return Err(refusal(&host, "a loopback address").into());
            }
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            for a in &addrs {
                if let Some(why) = forbidden_reason(a.ip()) {
                    let e: Box<dyn std::error::Error + Send + Sync> =
                        refusal(&format!("{host} ({})", a.ip()), why).into();
                    return Err(e);
                }
            }
            let it: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(it)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(s: &str) -> bool {
        forbidden_reason(s.parse().unwrap()).is_some()
    }

    #[test]
    fn classifies_addresses() {
        for s in [
            "127.0.0.1",
            "127.9.9.9",
            "0.0.0.0",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(bad(s), "{s} must be refused");
        }
        for s in [
            "8.8.8.8",
            "1.1.1.1",
            "100.128.0.1",
            "172.32.0.1",
            "2001:4860:4860::8888",
            "::ffff:8.8.8.8",
        ] {
            assert!(!bad(s), "{s} must be allowed");
        }
    }

    #[test]
    fn endpoint_form() {
        assert!(parse_endpoint("https://example.com/hook").is_ok());
        assert!(parse_endpoint("ftp://example.com/").is_err());
        assert!(parse_endpoint("not a url").is_err());
        assert!(parse_endpoint("https://u:p@example.com/").is_err());
    }

    #[tokio::test]
    async fn literal_and_localhost_refused() {
        for s in [
            "http://127.0.0.1/",
            "http://[::1]/",
            "http://169.254.169.254/",
            "http://10.0.0.1/",
            "http://localhost:8080/",
        ] {
            let u = parse_endpoint(s).unwrap();
            assert!(check_endpoint(&u).await.is_err(), "{s}");
        }
    }
}
