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
