//! Alerts: raised by the server from rules over the appliance connection
//! and its heartbeats, cleared when the condition ends, announced on the
//! WebSocket API (`alert.triggered`, `alert.cleared`).
//!
//! Rules (server flags): a device offline for `--fleet-alert-offline-after`
//! seconds (checked every second by [`run_offline_rule`], which the server
//! spawns), `temperature` above `--fleet-alert-temperature` °C and
//! `disk_percent` above `--fleet-alert-disk` % (checked on each heartbeat).

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::FleetState;
use super::auth::FleetUser;
use super::error::{FleetError, FleetResult};
use super::extract::FleetQuery;
use super::hub::Link;
use crate::store::fleet::{Acknowledged, AlertRecord, NewAlert};

/// An alert as the API returns it.
#[derive(Debug, Serialize)]
pub struct AlertView {
    pub id: String,
    pub device_id: String,
    /// `offline`, `temperature` or `disk`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `warning` or `critical`.
    pub severity: String,
    pub message: String,
    /// `active`, `acknowledged` or `cleared`.
    pub status: String,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub triggered_at: String,
    pub acknowledged_at: Option<String>,
    pub acknowledged_by: Option<String>,
    pub cleared_at: Option<String>,
}

impl From<AlertRecord> for AlertView {
    fn from(a: AlertRecord) -> Self {
        AlertView {
            id: a.id,
            device_id: a.device_id,
            kind: a.kind,
            severity: a.severity,
            message: a.message,
            status: a.status,
            value: a.value,
            threshold: a.threshold,
            triggered_at: a.triggered_at,
            acknowledged_at: a.acknowledged_at,
            acknowledged_by: a.acknowledged_by,
            cleared_at: a.cleared_at,
        }
    }
}

fn announce_raised(state: &FleetState, a: &AlertRecord) {
    tracing::warn!(alert = %a.id, device = %a.device_id, kind = %a.kind, "fleet alert raised");
    state.hub.emit(
        "alert.triggered",
        json!({"alert_id": a.id, "severity": a.severity, "message": a.message,
               "device_id": a.device_id, "alert_type": a.kind}),
    );
}

fn announce_cleared(state: &FleetState, a: &AlertRecord) {
    tracing::info!(alert = %a.id, device = %a.device_id, kind = %a.kind, "fleet alert cleared");
    state.hub.emit(
        "alert.cleared",
        json!({"alert_id": a.id, "device_id": a.device_id, "alert_type": a.kind}),
    );
}

async fn raise(state: &FleetState, new: NewAlert<'_>) {
    match state.db.raise_fleet_alert(&new).await {
        Ok(Some(a)) => announce_raised(state, &a),
        Ok(None) => {}
        Err(e) => tracing::error!(device = %new.device_id, error = %e, "cannot raise an alert"),
    }
}

/// Clears the device's open alert of `kind`, if any.
pub async fn clear(state: &FleetState, device_id: &str, kind: &str) {
    match state.db.clear_fleet_alert(device_id, kind).await {
        Ok(Some(a)) => announce_cleared(state, &a),
        Ok(None) => {}
        Err(e) => tracing::error!(device = %device_id, error = %e, "cannot clear an alert"),
    }
}

/// The threshold rules over one heartbeat's health figures (the device's
/// group may set its own thresholds).
pub async fn on_heartbeat(state: &FleetState, link: &Link, health: &Map<String, Value>) {
    let device_id = link.device_id.as_str();
    let group_config = match state.db.fleet_device_group_config(device_id).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(device = %device_id, error = %e, "cannot read the device's alert thresholds");
            None
        }
    };
    let t = super::alert_rules::thresholds(&state.config, group_config.as_deref());
    let rules = [
        ("temperature", "temperature", t.temperature, "°C"),
        ("disk", "disk_percent", t.disk_percent, "%"),
    ];
    for (kind, field, threshold, unit) in rules {
        let value = health.get(field).and_then(Value::as_f64);
        match (threshold, value) {
            (Some(threshold), Some(v)) if v > threshold => {
                link.set_maybe_alerting(kind, true);
                raise(
                    state,
                    NewAlert {
                        device_id,
                        kind,
                        severity: "warning",
                        message: format!("{field} {v}{unit} is above {threshold}{unit}"),
                        value: Some(v),
                        threshold: Some(threshold),
                    },
                )
                .await;
            }
            // Under the threshold, or the rule is off for this device.
            (_, Some(_)) if link.maybe_alerting(kind) => {
                clear(state, device_id, kind).await;
                link.set_maybe_alerting(kind, false);
            }
            // Known not to be alerting, or no figure to judge.
            _ => {}
        }
    }
}

/// Raises `offline` alerts for devices offline longer than their threshold
/// (the server's, or their group's); runs until the process ends (the
/// server spawns it).
pub async fn run_offline_rule(state: FleetState) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let devices = match state.db.fleet_devices_offline().await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "cannot check devices for the offline alert");
                continue;
            }
        };
        let now = chrono::Utc::now();
        for (id, last_seen, group_config) in devices {
            let Some(after) =
                super::alert_rules::thresholds(&state.config, group_config.as_deref())
                    .offline_after_secs
            else {
                continue;
            };
            let Ok(seen) = crate::store::parse_timestamp(&last_seen) else {
                continue;
            };
            if now - seen <= chrono::Duration::seconds(i64::try_from(after).unwrap_or(i64::MAX / 2))
            {
                continue;
            }
            raise(
                &state,
                NewAlert {
                    device_id: &id,
                    kind: "offline",
                    severity: "critical",
                    message: format!("Device offline (not seen since {last_seen})"),
                    value: None,
                    threshold: Some(after as f64),
                },
            )
            .await;
        }
    }
}

/// The alert list (the devices list's shape).
#[derive(Debug, Serialize)]
pub struct AlertList {
    pub alerts: Vec<AlertView>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

/// `GET /alerts?status=active|acknowledged|cleared&device=&limit=&offset=`
pub async fn list(
    State(state): State<FleetState>,
    query: FleetQuery,
) -> FleetResult<Json<AlertList>> {
    let mut problems = crate::domain::FieldErrors::new();
    let status = query.get("status");
    if let Some(s) = &status
        && !["active", "acknowledged", "cleared"].contains(&s.as_str())
    {
        problems.insert(
            "status".into(),
            vec!["must be active, acknowledged or cleared".into()],
        );
    }
    let number =
        |key: &str, default: i64, lo: i64, hi: i64, problems: &mut crate::domain::FieldErrors| {
            match query.get(key) {
                None => default,
                Some(v) => match v.parse::<i64>() {
                    Ok(n) if (lo..=hi).contains(&n) => n,
                    _ => {
                        problems.insert(
                            key.into(),
                            vec![format!("must be a whole number from {lo} to {hi}")],
                        );
                        default
                    }
                },
            }
        };
    let limit = number("limit", 50, 1, 500, &mut problems);
    let offset = number("offset", 0, 0, i64::from(i32::MAX), &mut problems);
    if !problems.is_empty() {
        return Err(FleetError::Validation(crate::domain::Invalid(problems)));
    }
    let device = query.get("device");
    let (alerts, total) = state
        .db
        .fleet_alerts(status.as_deref(), device.as_deref(), limit, offset)
        .await?;
    Ok(Json(AlertList {
        alerts: alerts.into_iter().map(AlertView::from).collect(),
        total,
        limit,
        offset,
    }))
}

/// `POST /alerts/{id}/acknowledge` (admin).
pub async fn acknowledge(
    State(state): State<FleetState>,
    user: FleetUser,
    Path(id): Path<String>,
) -> FleetResult<Json<AlertView>> {
    match state.db.acknowledge_fleet_alert(&id, &user.id).await? {
        Acknowledged::Done(a) => Ok(Json(a.into())),
        Acknowledged::NotFound => Err(FleetError::not_found("Alert", &id)),
        Acknowledged::Cleared(_) => Err(FleetError::Conflict(format!(
            "alert '{id}' is already cleared (its condition ended)"
        ))),
    }
}
