//! The staged rollout of a deployment (docs/fleet.md, "Updates"): every
//! second the runner looks at each active deployment, decides with
//! [`plan`] (pure: the deployment, the time, which devices are online) and
//! applies the decision: devices that reported the new version are
//! confirmed; one that failed, or did not report the version within the
//! confirmation timeout, halts the deployment (the rest are skipped); when
//! no device is updating, the next batch is sent the `update` action — the
//! canary batch first, alone. Offline devices wait for their turn until
//! they come online. All state is in the database, so a restart resumes.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::FleetState;
use super::error::FleetError;
use crate::store::fleet::DeploymentRecord;
use crate::store::{StoreError, parse_timestamp, timestamp};

/// How often the runner looks.
const TICK: Duration = Duration::from_secs(1);

/// What to do with one deployment now.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Devices that now report the version.
    pub confirm: Vec<String>,
    /// Devices that failed, with why.
    pub fail: Vec<(String, String)>,
    /// Devices to send the update to now.
    pub send: Vec<String>,
    /// The deployment ends: its status and reason.
    pub finish: Option<(&'static str, Option<String>)>,
}

/// Decides the next step of a running deployment.
pub fn plan(
    d: &DeploymentRecord,
    now: DateTime<Utc>,
    confirm_timeout: chrono::Duration,
    online: &HashSet<String>,
) -> Plan {
    let mut p = Plan::default();
    let mut updating = 0;
    let mut confirmed = 0;
    let mut failed: Option<String> = None;
    let mut pending_online = Vec::new();
    let mut pending_offline = 0;
    for dev in &d.devices {
        let on_version = dev.version.as_deref() == Some(d.version.as_str());
        match dev.status.as_str() {
            "confirmed" => confirmed += 1,
            "failed" => {
                failed.get_or_insert_with(|| {
                    format!(
                        "device {}: {}",
                        dev.device_id,
                        dev.detail.as_deref().unwrap_or("failed")
                    )
                });
            }
            "sent" | "installed" if on_version => {
                p.confirm.push(dev.device_id.clone());
                confirmed += 1;
            }
            "sent" | "installed" => {
                let sent = dev.sent_at.as_deref().and_then(|t| parse_timestamp(t).ok());
                if sent.is_some_and(|t| now - t > confirm_timeout) {
                    let why = format!(
                        "did not report version {} within {} s of the update",
                        d.version,
                        confirm_timeout.num_seconds()
                    );
                    failed.get_or_insert_with(|| format!("device {}: {why}", dev.device_id));
                    p.fail.push((dev.device_id.clone(), why));
                } else {
                    updating += 1;
                }
            }
            "pending" if on_version => {
                p.confirm.push(dev.device_id.clone());
                confirmed += 1;
            }
            "pending" if online.contains(&dev.device_id) => pending_online.push(&dev.device_id),
            "pending" => pending_offline += 1,
            _ => {}
        }
    }
    if let Some(reason) = failed {
        p.finish = Some(("halted", Some(reason)));
        return p;
    }
    if updating > 0 {
        return p;
    }
    if pending_online.is_empty() {
        if pending_offline == 0 {
            p.finish = Some(("completed", None));
        }
        return p;
    }
    let size = if confirmed == 0 {
        d.canary
    } else {
        d.batch_size
    };
    p.send = pending_online
        .into_iter()
        .take(usize::try_from(size).unwrap_or(1).max(1))
        .cloned()
        .collect();
    p
}

/// The runner; the server spawns it once.
pub async fn run(state: FleetState) {
    let sending: Arc<Mutex<HashSet<(String, String)>>> = Arc::default();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = step(&state, &sending).await {
            tracing::warn!(error = %e, "fleet rollout step failed");
        }
    }
}

async fn step(
    state: &FleetState,
    sending: &Arc<Mutex<HashSet<(String, String)>>>,
) -> Result<(), StoreError> {
    let now = Utc::now();
    let timeout = chrono::Duration::seconds(state.config.update_confirm_secs as i64);
    let online: HashSet<String> = state
        .hub
        .links()
        .await
        .iter()
        .map(|l| l.device_id.clone())
        .collect();
    for d in state.db.active_fleet_deployments(&timestamp(now)).await? {
        if d.status == "scheduled" {
            state
                .db
                .set_fleet_deployment_status(&d.id, "running", None)
                .await?;
            tracing::info!(deployment = %d.id, version = %d.version, "fleet deployment started");
        }
        let p = plan(&d, now, timeout, &online);
        for id in &p.confirm {
            state
                .db
                .set_fleet_deployment_device(&d.id, id, "confirmed", None)
                .await?;
            tracing::info!(deployment = %d.id, device = %id, version = %d.version, "fleet update confirmed");
        }
        for (id, why) in &p.fail {
            state
                .db
                .set_fleet_deployment_device(&d.id, id, "failed", Some(why))
                .await?;
        }
        if let Some((status, reason)) = &p.finish {
            state
                .db
                .set_fleet_deployment_status(&d.id, status, reason.as_deref())
                .await?;
            tracing::info!(deployment = %d.id, status, reason = reason.as_deref().unwrap_or(""), "fleet deployment finished");
            continue;
        }
        for id in p.send {
            send(state, sending, &d.id, &id, &d.version).await?;
        }
    }
    Ok(())
}

/// Marks the device `sent` and sends it the update in a task of its own
/// (the runner does not wait for devices).
async fn send(
    state: &FleetState,
    sending: &Arc<Mutex<HashSet<(String, String)>>>,
    deployment: &str,
    device: &str,
    version: &str,
) -> Result<(), StoreError> {
    let key = (deployment.to_string(), device.to_string());
    if !sending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key.clone())
    {
        return Ok(());
    }
    let Some(link) = state.hub.link(device).await else {
        sending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        return Ok(());
    };
    state
        .db
        .set_fleet_deployment_device(deployment, device, "sent", None)
        .await?;
    tracing::info!(deployment, device, version, "fleet update sent");
    let (state, sending, version) = (state.clone(), sending.clone(), version.to_string());
    tokio::spawn(async move {
        let (deployment, device) = (&key.0, &key.1);
        let res =
            super::actions::call(&state, device, &link, "update", json!({"version": version}))
                .await;
        let outcome = match res {
            Ok(result) => {
                let said = result["status"].as_str().unwrap_or("completed");
                Some(("installed", format!("the device answered: {said}")))
            }
            // Updating restarts the appliance, so a lost connection or a
            // late answer is expected: its next heartbeat's version decides.
            Err(FleetError::DeviceOffline(_))
            | Err(FleetError::Action {
                code: "DEVICE_TIMEOUT",
                ..
            }) => None,
            Err(e) => Some(("failed", e.to_string())),
        };
        if let Some((status, detail)) = outcome
            && let Err(e) = state
                .db
                .set_fleet_deployment_device(deployment, device, status, Some(&detail))
                .await
        {
            tracing::error!(deployment, device, error = %e, "cannot record an update's outcome");
        }
        sending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fleet::DeploymentDevice;

    fn dep(devices: &[(&str, &str, Option<&str>, Option<&str>)]) -> DeploymentRecord {
        DeploymentRecord {
            id: "deploy-1".into(),
            version: "2.0".into(),
            status: "running".into(),
            schedule: "2026-01-01T00:00:00.000Z".into(),
            canary: 1,
            batch_size: 2,
            reason: None,
            created_by: None,
            created_at: String::new(),
            updated_at: String::new(),
            finished_at: None,
            devices: devices
                .iter()
                .enumerate()
                .map(|(i, (id, status, version, sent_at))| DeploymentDevice {
                    device_id: id.to_string(),
                    position: i as i64,
                    status: status.to_string(),
                    detail: None,
                    sent_at: sent_at.map(str::to_string),
                    updated_at: String::new(),
                    version: version.map(str::to_string),
                })
                .collect(),
        }
    }

    fn online(ids: &[&str]) -> HashSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn at(s: &str) -> DateTime<Utc> {
        parse_timestamp(s).unwrap()
    }

    const T0: &str = "2026-01-01T00:00:00.000Z";
    const T10: &str = "2026-01-01T00:00:10.000Z";
    const T100: &str = "2026-01-01T00:01:40.000Z";

    #[test]
    fn the_canary_goes_alone_then_batches() {
        let t = chrono::Duration::seconds(60);
        let all = online(&["a", "b", "c", "d"]);
        let d = dep(&[
            ("a", "pending", Some("1.0"), None),
            ("b", "pending", None, None),
            ("c", "pending", None, None),
            ("d", "pending", None, None),
        ]);
        assert_eq!(plan(&d, at(T0), t, &all).send, ["a"]);
        // The canary is updating: nothing else is sent.
        let d = dep(&[
            ("a", "installed", Some("1.0"), Some(T0)),
            ("b", "pending", None, None),
            ("c", "pending", None, None),
            ("d", "pending", None, None),
        ]);
        assert_eq!(plan(&d, at(T10), t, &all), Plan::default());
        // It reports 2.0: confirmed, and the first batch of two goes.
        let d = dep(&[
            ("a", "installed", Some("2.0"), Some(T0)),
            ("b", "pending", None, None),
            ("c", "pending", None, None),
            ("d", "pending", None, None),
        ]);
        let p = plan(&d, at(T10), t, &all);
        assert_eq!(p.confirm, ["a"]);
        assert_eq!(p.send, ["b", "c"]);
        // All confirmed: completed.
        let d = dep(&[
            ("a", "confirmed", Some("2.0"), Some(T0)),
            ("b", "confirmed", None, None),
            ("c", "confirmed", None, None),
            ("d", "sent", Some("2.0"), Some(T10)),
        ]);
        let p = plan(&d, at(T10), t, &all);
        assert_eq!(p.confirm, ["d"]);
        assert_eq!(p.finish, Some(("completed", None)));
    }

    #[test]
    fn a_silent_or_failed_device_halts_and_offline_ones_wait() {
        let t = chrono::Duration::seconds(60);
        let d = dep(&[
            ("a", "installed", Some("1.0"), Some(T0)),
            ("b", "pending", None, None),
        ]);
        let p = plan(&d, at(T100), t, &online(&["a", "b"]));
        assert_eq!(p.fail.len(), 1);
        assert!(
            p.fail[0]
                .1
                .contains("did not report version 2.0 within 60 s"),
            "{p:?}"
        );
        assert!(matches!(p.finish, Some(("halted", Some(_)))));
        assert!(p.send.is_empty());

        let d = dep(&[
            ("a", "failed", None, Some(T0)),
            ("b", "pending", None, None),
        ]);
        assert!(matches!(
            plan(&d, at(T10), t, &online(&["b"])).finish,
            Some(("halted", _))
        ));

        // Only offline devices left: wait, neither send nor finish.
        let d = dep(&[
            ("a", "confirmed", Some("2.0"), Some(T0)),
            ("b", "pending", None, None),
        ]);
        assert_eq!(plan(&d, at(T10), t, &online(&["a"])), Plan::default());
        // A device already on the version is confirmed without an update.
        let d = dep(&[("a", "pending", Some("2.0"), None)]);
        let p = plan(&d, at(T10), t, &online(&[]));
        assert_eq!(p.confirm, ["a"]);
        assert_eq!(p.finish, Some(("completed", None)));
    }
}
