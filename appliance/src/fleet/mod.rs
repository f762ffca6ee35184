//! The appliance's side of the fleet management API (docs/fleet.md): it
//! enrolls once with a one-time enrollment token, keeps the device id and
//! credential it gets in a private file, and then keeps one outbound
//! WebSocket to the server (heartbeats with health figures; remote actions
//! carried out and answered). Outbound only, so appliances behind NAT work.
//!
//! `credentials` (the enrollment call and the file), `link` (the
//! connection, backoff, heartbeats), `actions` (what each action does),
//! `policy` (applying pushed configuration policies).

pub mod actions;
pub mod credentials;
pub mod link;
pub mod policy;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The `[fleet]` section of the configuration (file or
/// `CONVENE_APPLIANCE_FLEET_*`; never the runtime file or the API).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FleetSettings {
    /// The fleet API's base URL, e.g. `http://convene.example:8080/fleet/api/v1`
    /// (or `http://host:8081/api/v1` on the server's `--fleet-addr`). Empty:
    /// the appliance is not managed.
    pub server: String,
    /// One-time enrollment token (`convene fleet enroll-token`), used only
    /// when `credentials_file` does not exist yet.
    pub enrollment_token: String,
    /// Where the device id and credential are kept (mode 0600).
    pub credentials_file: PathBuf,
    /// Seconds between heartbeats.
    pub heartbeat_secs: u64,
    /// Longest wait between reconnection attempts, in seconds.
    pub max_backoff_secs: u64,
    /// Command run by the `reboot` action (split on whitespace); empty: the
    /// action answers NOT_CONFIGURED.
    pub reboot_command: String,
    /// Command run by the `update` action (split on whitespace; `{version}`
    /// is replaced by the requested version); empty: NOT_CONFIGURED.
    pub update_command: String,
}

impl Default for FleetSettings {
    fn default() -> Self {
        FleetSettings {
            server: String::new(),
            enrollment_token: String::new(),
            credentials_file: PathBuf::from("/var/lib/convene-appliance/fleet.json"),
            heartbeat_secs: 30,
            max_backoff_secs: 60,
            reboot_command: String::new(),
            update_command: String::new(),
        }
    }
}

impl FleetSettings {
    /// Checks the section; called with the rest of the configuration.
    pub fn validate(&self) -> Result<(), String> {
        if self.server.is_empty() {
            return Ok(());
        }
        let lower = self.server.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return Err(format!(
                "fleet.server `{}` must be an http:// or https:// URL of the fleet API \
                 (e.g. http://convene:8080/fleet/api/v1)",
                self.server
            ));
        }
        if !(1..=3600).contains(&self.heartbeat_secs) {
            return Err("fleet.heartbeat_secs must be 1..3600".into());
        }
        if !(1..=3600).contains(&self.max_backoff_secs) {
            return Err("fleet.max_backoff_secs must be 1..3600".into());
        }
        Ok(())
    }

    /// The API base without a trailing slash.
    pub fn base(&self) -> String {
        self.server.trim_end_matches('/').to_string()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::config::Config;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_section_comes_from_the_environment_and_the_token_is_hidden() {
        let c = Config::from_parts(
            "[fleet]\nheartbeat_secs = 5\n",
            "test.toml",
            env(&[
                (
                    "CONVENE_APPLIANCE_FLEET_SERVER",
                    "http://convene:8080/fleet/api/v1/",
                ),
                ("CONVENE_APPLIANCE_FLEET_ENROLLMENT_TOKEN", "cve_secret"),
                ("CONVENE_APPLIANCE_FLEET_REBOOT_COMMAND", "sudo reboot"),
            ]),
        )
        .unwrap();
        assert_eq!(c.fleet.base(), "http://convene:8080/fleet/api/v1");
        assert_eq!(c.fleet.enrollment_token, "cve_secret");
        assert_eq!(c.fleet.heartbeat_secs, 5);
        assert_eq!(c.fleet.reboot_command, "sudo reboot");
        let shown = c.redacted_json().to_string();
        assert!(!shown.contains("cve_secret"), "{shown}");
        // The API may not write the section (it is file/env only).
        assert!(crate::config::file_only("fleet", "server"));
    }

    #[test]
    fn bad_settings_are_refused() {
        for (k, v) in [
            ("CONVENE_APPLIANCE_FLEET_SERVER", "convene:8080"),
            ("CONVENE_APPLIANCE_FLEET_HEARTBEAT_SECS", "0"),
        ] {
            let mut e = env(&[(
                "CONVENE_APPLIANCE_FLEET_SERVER",
                "http://convene/fleet/api/v1",
            )]);
            e.push((k.to_string(), v.to_string()));
            assert!(Config::from_parts("", "t", e).is_err(), "{k}={v}");
        }
        // Unmanaged (no server): nothing else is checked.
        assert!(Config::from_parts("", "t", env(&[])).is_ok());
    }
}
