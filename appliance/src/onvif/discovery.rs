//! WS-Discovery (SOAP over UDP) for ONVIF cameras: one `Probe` for
//! `dn:NetworkVideoTransmitter` sent to the multicast group (or a directed
//! address), and the `ProbeMatches` answers that relate to it, read with
//! roxmltree (no DTDs, a node limit) into [`DiscoveredDevice`]s.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

use serde::Serialize;

use super::{MAX_DEVICES, OnvifConfig};

const NS_SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";
const NS_WSA: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing";
const NS_WSD: &str = "http://schemas.xmlsoap.org/ws/2005/04/discovery";

/// Largest answer datagram read (a UDP datagram's maximum).
const MAX_DATAGRAM: usize = 65_535;
/// Nodes parsed per answer at most (a real ProbeMatches has about 30).
const NODES_LIMIT: u32 = 2_000;
/// Service URLs and scopes kept per device.
const MAX_SERVICES: usize = 8;
const MAX_SCOPES: usize = 32;
/// Longest text kept from one field.
const MAX_FIELD: usize = 1024;

/// A camera that answered a probe (the seed's fields, plus its address, the
/// raw scopes and types).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DiscoveredDevice {
    /// The endpoint reference, usually `urn:uuid:...`.
    pub uuid: String,
    /// From the `onvif://www.onvif.org/name/...` scope.
    pub name: String,
    /// From the `onvif://www.onvif.org/hardware/...` scope.
    pub hardware: String,
    /// The address the camera answered from (the seed's example shows an IP).
    pub location: String,
    #[serde(skip)]
    pub address: IpAddr,
    /// Its service URLs (`XAddrs`) on its own address.
    pub services: Vec<String>,
    pub scopes: Vec<String>,
    pub types: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("opening the discovery socket: {0}")]
    Socket(std::io::Error),
    #[error("sending the probe to {addr}: {source}")]
    Send {
        addr: String,
        source: std::io::Error,
    },
}

/// The `Probe` message with `message_id` (`urn:uuid:...`).
pub fn probe(message_id: &str) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<e:Envelope xmlns:e="{soap}" xmlns:w="{wsa}" xmlns:d="{wsd}" "#,
            r#"xmlns:dn="http://www.onvif.org/ver10/network/wsdl">"#,
            r#"<e:Header><w:MessageID>{id}</w:MessageID>"#,
            r#"<w:To e:mustUnderstand="true">urn:schemas-xmlsoap-org:ws:2005:04:discovery</w:To>"#,
            r#"<w:Action e:mustUnderstand="true">{wsd}/Probe</w:Action></e:Header>"#,
            r#"<e:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></e:Body>"#,
            r#"</e:Envelope>"#
        ),
        soap = NS_SOAP12,
        wsa = NS_WSA,
        wsd = NS_WSD,
        id = message_id,
    )
}

fn clip(s: &str) -> String {
    let s = s.trim();
    if s.len() <= MAX_FIELD {
        return s.to_string();
    }
    let mut end = MAX_FIELD;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// The devices a `ProbeMatches` datagram from `from` names, if it relates to
/// `message_id`. Service URLs that are not http(s) on `from`'s address are
/// dropped, and so is a device left with none. Never panics on any input.
pub fn parse_probe_matches(bytes: &[u8], message_id: &str, from: IpAddr) -> Vec<DiscoveredDevice> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Vec::new();
    };
    let opts = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: NODES_LIMIT,
        ..Default::default()
    };
    let Ok(doc) = roxmltree::Document::parse_with_options(text, opts) else {
        return Vec::new();
    };
    let root = doc.root_element();
    if root.tag_name().name() != "Envelope" {
        return Vec::new();
    }
    let relates = child(root, "Header")
        .and_then(|h| child(h, "RelatesTo"))
        .map(text_of)
        .unwrap_or_default();
    if relates.trim() != message_id {
        return Vec::new();
    }
    let Some(matches) = child(root, "Body").and_then(|b| child(b, "ProbeMatches")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for m in matches
        .children()
        .filter(|c| c.is_element() && c.tag_name().name() == "ProbeMatch")
        .take(MAX_DEVICES)
    {
        let uuid = child(m, "EndpointReference")
            .and_then(|e| child(e, "Address"))
            .map(|a| clip(&text_of(a)))
            .unwrap_or_default();
        if uuid.is_empty() {
            continue;
        }
        let list = |name: &str, max: usize| -> Vec<String> {
            child(m, name)
                .map(text_of)
                .unwrap_or_default()
                .split_ascii_whitespace()
                .take(max)
                .map(clip)
                .collect()
        };
        let services: Vec<String> = list("XAddrs", MAX_SERVICES)
            .into_iter()
            .filter(|s| service_on(s, from))
            .collect();
        if services.is_empty() {
            continue;
        }
        let scopes = list("Scopes", MAX_SCOPES);
        let scope = |kind: &str| {
            let prefix = format!("onvif://www.onvif.org/{kind}/");
            scopes
                .iter()
                .find_map(|s| s.strip_prefix(&prefix))
                .map(|v| {
                    percent_encoding::percent_decode_str(v)
                        .decode_utf8_lossy()
                        .into_owned()
                })
                .unwrap_or_default()
        };
        out.push(DiscoveredDevice {
            name: scope("name"),
            hardware: scope("hardware"),
            location: from.to_string(),
            address: from,
            uuid,
            services,
            types: list("Types", MAX_SCOPES),
            scopes,
        });
    }
    out
}

/// The first child element of `n` with local name `name`.
fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

/// The text directly inside `n`.
fn text_of(n: roxmltree::Node<'_, '_>) -> String {
    n.children()
        .filter(|c| c.is_text())
        .filter_map(|c| c.text())
        .collect::<String>()
}

/// Whether `url` is an http(s) URL whose host is the IP address `from`.
fn service_on(url: &str, from: IpAddr) -> bool {
    let Ok(u) = reqwest::Url::parse(url) else {
        return false;
    };
    if !matches!(u.scheme(), "http" | "https") || !u.username().is_empty() {
        return false;
    }
    match u.host() {
        Some(url::Host::Ipv4(a)) => IpAddr::V4(a) == from,
        Some(url::Host::Ipv6(a)) => IpAddr::V6(a) == from,
        _ => false,
    }
}

/// Sends one probe and collects the answers for the configured time.
pub async fn discover(cfg: &OnvifConfig) -> Result<Vec<DiscoveredDevice>, DiscoveryError> {
    let target: SocketAddr = cfg
        .discovery_addr
        .parse()
        .map_err(|_| DiscoveryError::Socket(std::io::ErrorKind::InvalidInput.into()))?;
    let iface: Option<Ipv4Addr> = cfg.interface.parse().ok();
    let socket = open_socket(iface).map_err(DiscoveryError::Socket)?;
    let message_id = format!("urn:uuid:{}", uuid::Uuid::new_v4());
    socket
        .send_to(probe(&message_id).as_bytes(), target)
        .await
        .map_err(|source| DiscoveryError::Send {
            addr: target.to_string(),
            source,
        })?;
    let deadline = tokio::time::Instant::now() + cfg.discovery_timeout();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut found: Vec<DiscoveredDevice> = Vec::new();
    loop {
        let r = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await;
        let Ok(r) = r else { break };
        let (n, from) = match r {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "onvif discovery receive");
                continue;
            }
        };
        for d in parse_probe_matches(&buf[..n], &message_id, from.ip()) {
            if let Some(old) = found.iter_mut().find(|o| o.uuid == d.uuid) {
                *old = d;
            } else if found.len() < MAX_DEVICES {
                found.push(d);
            }
        }
    }
    Ok(found)
}

fn open_socket(iface: Option<Ipv4Addr>) -> std::io::Result<tokio::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    let local = iface.unwrap_or(Ipv4Addr::UNSPECIFIED);
    if let Some(a) = iface {
        s.set_multicast_if_v4(&a)?;
    }
    // Cameras on this host (and the test's responder) get the probe too.
    s.set_multicast_loop_v4(true)?;
    s.set_multicast_ttl_v4(1)?;
    s.set_nonblocking(true)?;
    s.bind(&SocketAddr::V4(SocketAddrV4::new(local, 0)).into())?;
    tokio::net::UdpSocket::from_std(s.into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const ID: &str = "urn:uuid:11111111-2222-3333-4444-555555555555";

    fn matches(relates: &str, xaddrs: &str) -> String {
        format!(
            r#"<?xml version="1.0"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="{NS_SOAP12}" xmlns:wsa="{NS_WSA}" xmlns:d="{NS_WSD}">
 <SOAP-ENV:Header><wsa:RelatesTo>{relates}</wsa:RelatesTo></SOAP-ENV:Header>
 <SOAP-ENV:Body><d:ProbeMatches><d:ProbeMatch>
  <wsa:EndpointReference><wsa:Address>urn:uuid:cam-1</wsa:Address></wsa:EndpointReference>
  <d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types>
  <d:Scopes>onvif://www.onvif.org/type/video_encoder onvif://www.onvif.org/name/IP%20Camera%201
   onvif://www.onvif.org/hardware/AXIS%20P1375</d:Scopes>
  <d:XAddrs>{xaddrs}</d:XAddrs>
  <d:MetadataVersion>1</d:MetadataVersion>
 </d:ProbeMatch></d:ProbeMatches></SOAP-ENV:Body>
</SOAP-ENV:Envelope>"#
        )
    }

    #[test]
    fn a_probe_match_becomes_the_seed_fields() {
        let from: IpAddr = "192.168.1.200".parse().unwrap();
        let x = "http://192.168.1.200/onvif/device_service http://10.9.9.9/onvif/device_service \
                 http://192.168.1.200:8080/onvif/media_service";
        let d = parse_probe_matches(matches(ID, x).as_bytes(), ID, from);
        assert_eq!(d.len(), 1);
        let d = &d[0];
        assert_eq!(d.uuid, "urn:uuid:cam-1");
        assert_eq!(d.name, "IP Camera 1");
        assert_eq!(d.hardware, "AXIS P1375");
        assert_eq!(d.location, "192.168.1.200");
        // The service on another host is dropped.
        assert_eq!(
            d.services,
            vec![
                "http://192.168.1.200/onvif/device_service",
                "http://192.168.1.200:8080/onvif/media_service"
            ]
        );
        assert_eq!(d.types, vec!["dn:NetworkVideoTransmitter", "tds:Device"]);
        assert_eq!(d.scopes.len(), 3);
    }

    #[test]
    fn answers_to_other_probes_or_naming_other_hosts_are_ignored() {
        let from: IpAddr = "192.168.1.200".parse().unwrap();
        let ok = "http://192.168.1.200/onvif/device_service";
        assert!(parse_probe_matches(matches("urn:uuid:other", ok).as_bytes(), ID, from).is_empty());
        let elsewhere =
            "http://169.254.169.254/latest ftp://192.168.1.200/x http://user@192.168.1.200/";
        assert!(parse_probe_matches(matches(ID, elsewhere).as_bytes(), ID, from).is_empty());
    }

    #[test]
    fn garbage_dtds_and_huge_documents_give_nothing() {
        let from: IpAddr = "10.0.0.1".parse().unwrap();
        for bad in [
            &b"\xff\xfe"[..],
            b"",
            b"<a>",
            b"<!DOCTYPE x [<!ENTITY a 'b'>]><Envelope/>",
            b"<Envelope><Header><RelatesTo>x</RelatesTo></Header></Envelope>",
        ] {
            assert!(parse_probe_matches(bad, ID, from).is_empty());
        }
        let many = format!("<Envelope>{}</Envelope>", "<a/>".repeat(5000));
        assert!(parse_probe_matches(many.as_bytes(), ID, from).is_empty());
    }

    #[test]
    fn the_probe_is_well_formed_and_carries_its_id() {
        let p = probe(ID);
        let doc = roxmltree::Document::parse(&p).unwrap();
        let id = doc
            .descendants()
            .find(|n| n.tag_name().name() == "MessageID")
            .and_then(|n| n.text())
            .unwrap();
        assert_eq!(id, ID);
        assert_eq!(doc.root_element().tag_name().namespace(), Some(NS_SOAP12));
    }
}
