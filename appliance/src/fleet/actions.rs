//! What the appliance does for each remote action of the seed:
//! `join_meeting` / `leave_meeting` (the existing meeting code),
//! `screenshot` (the current camera frame as JPEG, base64), `logs` (recent
//! lines of the log ring), `reboot` / `update` (configured commands).

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use super::FleetSettings;
use crate::http::{ApiError, AppState};
use crate::meeting::{JoinOptions, JoinRequest};

/// A failed action: a code the server passes on, and a message.
#[derive(Debug)]
pub struct ActionError {
    pub code: &'static str,
    pub message: String,
}

impl ActionError {
    fn new(code: &'static str, message: impl Into<String>) -> ActionError {
        ActionError {
            code,
            message: message.into(),
        }
    }
}

impl From<ApiError> for ActionError {
    fn from(e: ApiError) -> Self {
        ActionError::new(e.code, e.message)
    }
}

/// How long `reboot` / `update` wait for their command before answering
/// `started` (a reboot command may never return).
const COMMAND_GRACE: Duration = Duration::from_secs(5);

/// Carries out `action` with `params` (validated again here: the server is
/// trusted to send only the seed's actions, but not blindly).
pub async fn run(
    state: &AppState,
    settings: &FleetSettings,
    action: &str,
    params: &Value,
) -> Result<Value, ActionError> {
    match action {
        "join_meeting" => {
            let url = params["url"]
                .as_str()
                .filter(|u| !u.trim().is_empty())
                .ok_or_else(|| ActionError::new("VALIDATION_ERROR", "params.url is required"))?;
            let req = JoinRequest {
                url: url.to_string(),
                platform: params["platform"].as_str().map(str::to_string),
                options: JoinOptions::default(),
                name: params["name"].as_str().map(str::to_string),
            };
            state
                .meetings
                .join(req)
                .await
                .map_err(|e| ActionError::from(ApiError::from(e)))
        }
        "leave_meeting" => state
            .meetings
            .leave()
            .await
            .map_err(|e| ActionError::from(ApiError::from(e))),
        "screenshot" => screenshot(state).await,
        "logs" => {
            let lines = params["lines"].as_u64().unwrap_or(100).clamp(1, 1000) as usize;
            let level = match params["level"].as_str() {
                None => tracing::Level::TRACE,
                Some(l) => crate::logs::parse_level(l)
                    .ok_or_else(|| ActionError::new("VALIDATION_ERROR", format!("level `{l}`")))?,
            };
            let out = state.logs.tail(lines, level);
            Ok(json!({"count": out.len(), "lines": out}))
        }
        "reboot" => command("reboot", &settings.reboot_command, None).await,
        "update" => {
            let version = params["version"].as_str();
            if let Some(v) = version
                && !v
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_'))
            {
                return Err(ActionError::new("VALIDATION_ERROR", "params.version"));
            }
            command("update", &settings.update_command, version).await
        }
        // Not one of the seed's actions: sent only by the server's
        // `POST /devices/{id}/credential/rotate`, never by a user.
        "rotate_credential" => rotate_credential(settings, &params["device_credential"]),
        other => Err(ActionError::new(
            "VALIDATION_ERROR",
            format!(
                "unknown action `{}`",
                other.chars().take(32).collect::<String>()
            ),
        )),
    }
}

/// Whether `c` looks like a device credential the server issues
/// (`cvd_` + 43 base64url characters).
fn is_credential(c: &str) -> bool {
    c.strip_prefix("cvd_").is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Replaces the stored credential (atomically: the credentials file is
/// written to a temporary file, synced and renamed) before answering, so
/// that the server only retires the old credential once the new one is on
/// disk. The next connection (`link::run` reads the file before each) uses
/// it.
fn rotate_credential(settings: &FleetSettings, new: &Value) -> Result<Value, ActionError> {
    let new = new
        .as_str()
        .filter(|c| is_credential(c))
        .ok_or_else(|| ActionError::new("VALIDATION_ERROR", "params.device_credential"))?;
    let path = &settings.credentials_file;
    let mut creds = super::credentials::load(path)
        .map_err(|e| ActionError::new("ACTION_FAILED", e))?
        .ok_or_else(|| ActionError::new("ACTION_FAILED", "no credentials file to update"))?;
    creds.device_credential = new.to_string();
    super::credentials::save(path, &creds).map_err(|e| {
        ActionError::new("ACTION_FAILED", format!("saving {}: {e}", path.display()))
    })?;
    tracing::info!(device = %creds.device_id, "fleet: device credential rotated and saved");
    Ok(json!({"rotated": true}))
}

async fn screenshot(state: &AppState) -> Result<Value, ActionError> {
    let frame = state
        .capture
        .wait_frame(Duration::from_secs(3))
        .await
        .ok_or_else(|| ActionError::new("NO_FRAME", "the camera has delivered no frame"))?;
    let (width, height) = (frame.width, frame.height);
    let jpeg = tokio::task::spawn_blocking(move || {
        crate::convert::i420_to_jpeg(&frame.data, frame.width, frame.height, 85)
    })
    .await
    .map_err(|e| ActionError::new("ACTION_FAILED", e.to_string()))?
    .map_err(|e| ActionError::new("ACTION_FAILED", format!("encoding the JPEG: {e}")))?;
    Ok(json!({
        "content_type": "image/jpeg",
        "width": width,
        "height": height,
        "size": jpeg.len(),
        "data": base64::engine::general_purpose::STANDARD.encode(&jpeg),
    }))
}

/// Runs a configured command (split on whitespace, `{version}` replaced).
/// Answers when it exits within [`COMMAND_GRACE`], else `started`.
async fn command(
    action: &str,
    configured: &str,
    version: Option<&str>,
) -> Result<Value, ActionError> {
    let parts: Vec<String> = configured
        .split_whitespace()
        .map(|p| p.replace("{version}", version.unwrap_or("latest")))
        .collect();
    let Some((bin, args)) = parts.split_first() else {
        return Err(ActionError::new(
            "NOT_CONFIGURED",
            format!("no {action} command is configured on the appliance (fleet.{action}_command)"),
        ));
    };
    tracing::warn!(command = %parts.join(" "), "fleet: running the {action} command");
    let mut child = tokio::process::Command::new(bin)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| ActionError::new("ACTION_FAILED", format!("running `{bin}`: {e}")))?;
    match tokio::time::timeout(COMMAND_GRACE, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(json!({"success": true, "state": "completed"})),
        Ok(Ok(status)) => Err(ActionError::new(
            "ACTION_FAILED",
            format!("the {action} command exited with {status}"),
        )),
        Ok(Err(e)) => Err(ActionError::new("ACTION_FAILED", e.to_string())),
        Err(_) => {
            // Still running (a reboot in progress): let it go on; reap it.
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
            Ok(json!({"success": true, "state": "started"}))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_servers_credential_shape_is_accepted() {
        let good = format!("cvd_{}", "A".repeat(43));
        assert!(is_credential(&good));
        for bad in [
            String::new(),
            "cvd_".into(),
            format!("cvd_{}", "A".repeat(42)),
            format!("cvd_{}", "A".repeat(44)),
            format!("cve_{}", "A".repeat(43)),
            format!("cvd_{}/", "A".repeat(42)),
            format!("cvd_{}\n", "A".repeat(42)),
        ] {
            assert!(!is_credential(&bad), "{bad:?}");
        }
    }
}
