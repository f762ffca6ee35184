//! The room's display (TV) over HDMI-CEC (`cec-ctl` from v4l-utils, or the
//! command in `system.cec_ctl`): power on or standby, for the device API's
//! `POST /api/v1/display/power` and for a fleet policy's
//! `display.hdmi_cec`, which turns the display on when the appliance joins
//! a meeting and to standby when it leaves ([`run`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::capture::lock;
use crate::http::AppState;

/// Finds `cmd` as a path or on PATH.
pub fn find_binary(cmd: &str) -> Option<PathBuf> {
    if cmd.contains('/') {
        let p = PathBuf::from(cmd);
        return p.is_file().then_some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(cmd))
            .find(|p| p.is_file())
    })
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CecError {
    /// The CEC tool is not installed (or not where `system.cec_ctl` says).
    #[error("{0}")]
    Unavailable(String),
    /// It ran and failed.
    #[error("{0}")]
    Failed(String),
}

/// Powers the display on (`--image-view-on`) or to standby through `cec_ctl`.
pub async fn cec_power(cec_ctl: &str, on: bool) -> Result<(), CecError> {
    let Some(bin) = find_binary(cec_ctl) else {
        return Err(CecError::Unavailable(format!(
            "HDMI-CEC is not available: `{cec_ctl}` was not found (install v4l-utils, or set system.cec_ctl)"
        )));
    };
    let args: &[&str] = if on {
        &["--to", "0", "--image-view-on"]
    } else {
        &["--to", "0", "--standby"]
    };
    let out = tokio::process::Command::new(&bin)
        .args(args)
        .output()
        .await
        .map_err(|e| CecError::Failed(format!("running {}: {e}", bin.display())))?;
    if !out.status.success() {
        return Err(CecError::Failed(format!(
            "cec-ctl failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// What the display does on a meeting change, given whether a fleet policy
/// asks for CEC control: `Some(true)` power on, `Some(false)` standby.
pub fn on_meeting_change(cec: bool, was_live: bool, live: bool) -> Option<bool> {
    (cec && was_live != live).then_some(live)
}

/// Follows the meeting: with `display.hdmi_cec` set by policy, the display
/// is powered on when a meeting starts and put to standby when it ends.
/// Runs until the process ends (one check a second).
pub async fn run(state: Arc<AppState>) {
    let mut was_live = state.meetings.live_generation().await.is_some();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let live = state.meetings.live_generation().await.is_some();
        let cec = state.fleet_display_cec.load(Ordering::Relaxed);
        if let Some(on) = on_meeting_change(cec, was_live, live) {
            let tool = state.config().system.cec_ctl;
            match cec_power(&tool, on).await {
                Ok(()) => {
                    tracing::info!(on, "display: powered by the meeting (fleet policy)");
                    lock(&state.settings).display_power = if on { "on" } else { "off" }.into();
                    state.save_settings();
                }
                Err(e) => tracing::warn!(error = %e, "display: HDMI-CEC failed"),
            }
        }
        was_live = live;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_display_follows_the_meeting_only_under_the_policy() {
        assert_eq!(on_meeting_change(true, false, true), Some(true));
        assert_eq!(on_meeting_change(true, true, false), Some(false));
        assert_eq!(on_meeting_change(true, true, true), None);
        assert_eq!(on_meeting_change(false, false, true), None);
    }
}
