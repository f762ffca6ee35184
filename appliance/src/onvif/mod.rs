//! ONVIF cameras on the room's LAN (the Rotoclear seed's "ONVIF Integration"):
//! WS-Discovery probes that find them (`discovery`), and SOAP requests sent
//! to one of them with the camera's credentials from the `[onvif]` section
//! added as a WS-Security UsernameToken (`soap`). `http/onvif.rs` serves both.
//!
//! What a discovered camera can make the appliance reach is bounded: only the
//! service URLs it announced on its own address (an answer naming another
//! host is dropped, so a device on the LAN cannot point the proxy anywhere
//! else), and only after a discovery found it.

pub mod discovery;
pub mod soap;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use discovery::{DiscoveredDevice, DiscoveryError};

/// The WS-Discovery multicast group and port (IPv4).
pub const WS_DISCOVERY_ADDR: &str = "239.255.255.250:3702";

/// Most cameras one discovery keeps (the rest are ignored and logged).
pub const MAX_DEVICES: usize = 256;

/// The `[onvif]` section (configuration file or environment; never the API:
/// it holds camera passwords).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OnvifConfig {
    /// IPv4 address of the interface probes are sent from; empty: the
    /// kernel's route for the multicast group.
    pub interface: String,
    /// Where probes go: the WS-Discovery group, or one camera's address for a
    /// directed probe across subnets.
    pub discovery_addr: String,
    /// How long a discovery listens for answers.
    pub discovery_timeout_ms: u64,
    /// Time allowed for a proxied SOAP request (connect + answer).
    pub request_timeout_ms: u64,
    /// Largest SOAP request body accepted, and largest answer relayed.
    pub max_body_bytes: usize,
    /// Credentials per camera.
    pub credentials: Vec<OnvifCredential>,
}

/// One camera's credentials: `device` is its `uuid` (`urn:uuid:...` or the
/// bare UUID) or its IP address.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OnvifCredential {
    pub device: String,
    pub username: String,
    pub password: String,
}

impl Default for OnvifConfig {
    fn default() -> Self {
        OnvifConfig {
            interface: String::new(),
            discovery_addr: WS_DISCOVERY_ADDR.into(),
            discovery_timeout_ms: 2000,
            request_timeout_ms: 5000,
            max_body_bytes: 64 * 1024,
            credentials: Vec::new(),
        }
    }
}

impl OnvifConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !self.interface.is_empty() && self.interface.parse::<std::net::Ipv4Addr>().is_err() {
            return Err(format!(
                "onvif.interface `{}`: expected an IPv4 address",
                self.interface
            ));
        }
        match self.discovery_addr.parse::<SocketAddr>() {
            Ok(SocketAddr::V4(_)) => {}
            _ => {
                return Err(format!(
                    "onvif.discovery_addr `{}`: expected an IPv4 address and port (e.g. {WS_DISCOVERY_ADDR})",
                    self.discovery_addr
                ));
            }
        }
        if !(100..=30_000).contains(&self.discovery_timeout_ms) {
            return Err("onvif.discovery_timeout_ms must be 100..30000".into());
        }
        if !(100..=60_000).contains(&self.request_timeout_ms) {
            return Err("onvif.request_timeout_ms must be 100..60000".into());
        }
        if !(1024..=4 * 1024 * 1024).contains(&self.max_body_bytes) {
            return Err("onvif.max_body_bytes must be 1024..4194304".into());
        }
        for c in &self.credentials {
            if c.device.trim().is_empty() || c.username.is_empty() {
                return Err("onvif.credentials: every entry needs `device` and `username`".into());
            }
        }
        Ok(())
    }

    /// The credentials for a device, by its UUID or its address.
    pub fn credential_for(&self, dev: &DiscoveredDevice) -> Option<&OnvifCredential> {
        let bare = bare_uuid(&dev.uuid);
        self.credentials.iter().find(|c| {
            let d = c.device.trim();
            bare_uuid(d).eq_ignore_ascii_case(bare) || d.parse::<IpAddr>().ok() == Some(dev.address)
        })
    }

    pub fn discovery_timeout(&self) -> Duration {
        Duration::from_millis(self.discovery_timeout_ms)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

/// `urn:uuid:X` -> `X` (other forms unchanged).
pub fn bare_uuid(s: &str) -> &str {
    s.strip_prefix("urn:uuid:").unwrap_or(s)
}

/// The cameras the last discoveries found, by bare UUID (bounded by
/// [`MAX_DEVICES`]); one discovery runs at a time.
#[derive(Default)]
pub struct Registry {
    devices: Mutex<HashMap<String, DiscoveredDevice>>,
    /// Held for the length of a discovery, so concurrent calls do not open
    /// sockets in parallel (the second waits and gets fresh results too).
    pub running: tokio::sync::Mutex<()>,
}

impl Registry {
    /// Records what a discovery found (replacing earlier entries of the same
    /// devices; devices not seen again stay until the registry is full).
    pub fn record(&self, found: &[DiscoveredDevice]) {
        let mut g = self.devices.lock().unwrap_or_else(|e| e.into_inner());
        for d in found {
            let key = bare_uuid(&d.uuid).to_ascii_lowercase();
            if g.len() >= MAX_DEVICES && !g.contains_key(&key) {
                // Forget devices not seen by this discovery to make room.
                let seen: Vec<String> = found
                    .iter()
                    .map(|f| bare_uuid(&f.uuid).to_ascii_lowercase())
                    .collect();
                g.retain(|k, _| seen.contains(k));
                if g.len() >= MAX_DEVICES {
                    break;
                }
            }
            g.insert(key, d.clone());
        }
    }

    /// A discovered device by `urn:uuid:X` or `X` (case-insensitive).
    pub fn get(&self, id: &str) -> Option<DiscoveredDevice> {
        let g = self.devices.lock().unwrap_or_else(|e| e.into_inner());
        g.get(&bare_uuid(id).to_ascii_lowercase()).cloned()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn dev(uuid: &str, ip: &str) -> DiscoveredDevice {
        DiscoveredDevice {
            uuid: uuid.into(),
            name: String::new(),
            hardware: String::new(),
            location: ip.into(),
            address: ip.parse().unwrap(),
            services: vec![format!("http://{ip}/onvif/device_service")],
            scopes: vec![],
            types: vec![],
        }
    }

    #[test]
    fn credentials_match_by_uuid_in_either_form_or_by_address() {
        let cfg = OnvifConfig {
            credentials: vec![
                OnvifCredential {
                    device: "urn:uuid:AAAA-1".into(),
                    username: "a".into(),
                    password: "pa".into(),
                },
                OnvifCredential {
                    device: "10.0.0.9".into(),
                    username: "b".into(),
                    password: "pb".into(),
                },
            ],
            ..OnvifConfig::default()
        };
        assert_eq!(
            cfg.credential_for(&dev("aaaa-1", "10.0.0.5"))
                .unwrap()
                .username,
            "a"
        );
        assert_eq!(
            cfg.credential_for(&dev("urn:uuid:other", "10.0.0.9"))
                .unwrap()
                .username,
            "b"
        );
        assert!(cfg.credential_for(&dev("urn:uuid:x", "10.0.0.7")).is_none());
    }

    #[test]
    fn validation_names_the_key() {
        let mut c = OnvifConfig {
            interface: "eth0".into(),
            ..OnvifConfig::default()
        };
        assert!(c.validate().unwrap_err().contains("onvif.interface"));
        c.interface = String::new();
        c.discovery_addr = "[::1]:3702".into();
        assert!(c.validate().unwrap_err().contains("onvif.discovery_addr"));
        c.discovery_addr = WS_DISCOVERY_ADDR.into();
        c.discovery_timeout_ms = 0;
        assert!(c.validate().unwrap_err().contains("discovery_timeout_ms"));
        assert!(OnvifConfig::default().validate().is_ok());
    }

    #[test]
    fn the_registry_is_bounded_and_finds_both_id_forms() {
        let r = Registry::default();
        let many: Vec<_> = (0..MAX_DEVICES + 10)
            .map(|i| dev(&format!("urn:uuid:d{i}"), "10.0.0.1"))
            .collect();
        r.record(&many);
        assert!(r.devices.lock().unwrap().len() <= MAX_DEVICES);
        r.record(&[dev("urn:uuid:NEW", "10.0.0.2")]);
        assert!(r.get("new").is_some());
        assert!(r.get("urn:uuid:New").is_some());
        assert!(r.devices.lock().unwrap().len() <= MAX_DEVICES);
    }
}
