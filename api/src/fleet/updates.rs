//! Appliance updates (`/updates`): the seed's list of available updates and
//! deploy call, plus publishing a release and following or cancelling a
//! deployment. The rollout itself is [`super::rollout`].

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use super::FleetState;
use super::auth::FleetUser;
use super::domain::{no_unknown, target};
use super::error::{FleetError, FleetResult};
use super::extract::FleetJson;
use crate::domain::fields::{check, push};
use crate::domain::{FieldErrors, Invalid};
use crate::store::fleet::{DeploymentRecord, NewDeployment, PolicyTarget, ReleaseRecord};
use crate::store::timestamp;

const MAX_VERSION: usize = 64;
const MAX_NOTES: usize = 2000;
const MAX_CANARY: i64 = 100;
const MAX_BATCH: i64 = 1000;
/// How far ahead a deployment may be scheduled.
const MAX_SCHEDULE_DAYS: i64 = 366;

#[derive(Debug, Serialize)]
pub struct ReleaseView {
    pub version: String,
    pub notes: Option<String>,
    pub created_at: String,
    /// Devices whose last heartbeat reported this version.
    pub devices: i64,
}

impl From<ReleaseRecord> for ReleaseView {
    fn from(r: ReleaseRecord) -> Self {
        ReleaseView {
            version: r.version,
            notes: r.notes,
            created_at: r.created_at,
            devices: r.devices,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ReleaseList {
    pub updates: Vec<ReleaseView>,
    pub total: usize,
}

#[derive(Debug, Serialize)]
pub struct DeploymentDeviceView {
    pub device_id: String,
    /// `pending`, `sent`, `installed`, `confirmed`, `failed` or `skipped`.
    pub status: String,
    pub detail: Option<String>,
    /// The version the device last reported.
    pub version: Option<String>,
    pub sent_at: Option<String>,
    pub updated_at: String,
}

#[derive(Debug, Serialize)]
pub struct DeploymentView {
    pub id: String,
    pub version: String,
    /// `scheduled`, `running`, `completed`, `halted` or `cancelled`.
    pub status: String,
    pub schedule: String,
    pub canary: i64,
    pub batch_size: i64,
    pub reason: Option<String>,
    pub created_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub finished_at: Option<String>,
    pub devices: Vec<DeploymentDeviceView>,
}

impl From<DeploymentRecord> for DeploymentView {
    fn from(d: DeploymentRecord) -> Self {
        DeploymentView {
            id: d.id,
            version: d.version,
            status: d.status,
            schedule: d.schedule,
            canary: d.canary,
            batch_size: d.batch_size,
            reason: d.reason,
            created_by: d.created_by,
            created_at: d.created_at,
            updated_at: d.updated_at,
            finished_at: d.finished_at,
            devices: d
                .devices
                .into_iter()
                .map(|x| DeploymentDeviceView {
                    device_id: x.device_id,
                    status: x.status,
                    detail: x.detail,
                    version: x.version,
                    sent_at: x.sent_at,
                    updated_at: x.updated_at,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct DeploymentList {
    pub deployments: Vec<DeploymentView>,
    pub total: usize,
}

/// A version as the appliance's `update` action takes it: 1..=64 of
/// letters, digits and `.-+_`.
pub fn version(v: Option<&Value>, errors: &mut FieldErrors) -> Option<String> {
    match v {
        None | Some(Value::Null) => {
            push(errors, "version", "is required");
            None
        }
        Some(Value::String(s))
            if !s.is_empty()
                && s.len() <= MAX_VERSION
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_')) =>
        {
            Some(s.clone())
        }
        Some(_) => {
            push(
                errors,
                "version",
                format!("must be 1 to {MAX_VERSION} letters, digits and . - + _"),
            );
            None
        }
    }
}

/// `POST /updates/releases`: `version`, optional `notes`.
pub fn new_release(body: &Map<String, Value>) -> Result<(String, Option<String>), Invalid> {
    let mut errors = FieldErrors::new();
    no_unknown(body, &["version", "notes"], &mut errors);
    let v = version(body.get("version"), &mut errors);
    let notes = match body.get("notes") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= MAX_NOTES => Some(s.clone()),
        Some(_) => {
            push(
                &mut errors,
                "notes",
                format!("must be a string of at most {MAX_NOTES} characters"),
            );
            None
        }
    };
    check(errors)?;
    Ok((v.unwrap_or_default(), notes))
}

fn bounded_int(
    body: &Map<String, Value>,
    field: &str,
    default: i64,
    max: i64,
    errors: &mut FieldErrors,
) -> i64 {
    match body.get(field) {
        None | Some(Value::Null) => default,
        Some(v) => match v.as_i64() {
            Some(n) if (1..=max).contains(&n) => n,
            _ => {
                push(errors, field, format!("must be an integer from 1 to {max}"));
                default
            }
        },
    }
}

/// `POST /updates` (the seed's deploy): `version`, `target` (`devices`
/// and/or `groups`, at least one), `schedule` (RFC 3339; default now),
/// `canary` (devices updated first, alone; default 1), `batch_size`
/// (devices per batch after it; default 5).
pub fn new_deployment(
    body: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<NewDeployment, Invalid> {
    let mut errors = FieldErrors::new();
    no_unknown(
        body,
        &["version", "target", "schedule", "canary", "batch_size"],
        &mut errors,
    );
    let v = version(body.get("version"), &mut errors);
    let t = match body.get("target") {
        None | Some(Value::Null) => {
            push(&mut errors, "target", "is required");
            None
        }
        Some(v) => target(v, &mut errors),
    };
    if let Some(t) = &t
        && t.devices.is_empty()
        && t.groups.is_empty()
    {
        push(
            &mut errors,
            "target",
            "must name at least one device or group",
        );
    }
    let schedule = match body.get("schedule") {
        None | Some(Value::Null) => Some(now),
        Some(Value::String(s)) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) if t.with_timezone(&Utc) > now + chrono::Duration::days(MAX_SCHEDULE_DAYS) => {
                push(
                    &mut errors,
                    "schedule",
                    format!("must be within {MAX_SCHEDULE_DAYS} days"),
                );
                None
            }
            Ok(t) => Some(t.with_timezone(&Utc).max(now)),
            Err(_) => {
                push(
                    &mut errors,
                    "schedule",
                    "must be an RFC 3339 time (e.g. 2024-01-16T02:00:00Z)",
                );
                None
            }
        },
        Some(_) => {
            push(&mut errors, "schedule", "must be an RFC 3339 time string");
            None
        }
    };
    let canary = bounded_int(body, "canary", 1, MAX_CANARY, &mut errors);
    let batch_size = bounded_int(body, "batch_size", 5, MAX_BATCH, &mut errors);
    check(errors)?;
    Ok(NewDeployment {
        version: v.unwrap_or_default(),
        target: t.unwrap_or_else(PolicyTarget::default),
        schedule: timestamp(schedule.unwrap_or(now)),
        canary,
        batch_size,
    })
}

/// `GET /updates`: the published releases, newest first.
pub async fn list(State(state): State<FleetState>) -> FleetResult<Json<ReleaseList>> {
    let updates: Vec<ReleaseView> = state
        .db
        .fleet_releases()
        .await?
        .into_iter()
        .map(ReleaseView::from)
        .collect();
    Ok(Json(ReleaseList {
        total: updates.len(),
        updates,
    }))
}

/// `POST /updates/releases`: 201 with the release; 409 when it exists.
pub async fn publish(
    State(state): State<FleetState>,
    FleetJson(body): FleetJson,
) -> FleetResult<Response> {
    let (version, notes) = new_release(&body)?;
    let r = state
        .db
        .create_fleet_release(&version, notes.as_deref())
        .await?;
    tracing::info!(version = %r.version, "fleet release published");
    Ok((StatusCode::CREATED, Json(ReleaseView::from(r))).into_response())
}

/// `POST /updates`: 201 with the deployment (`scheduled`).
pub async fn deploy(
    State(state): State<FleetState>,
    user: FleetUser,
    FleetJson(body): FleetJson,
) -> FleetResult<Response> {
    let new = new_deployment(&body, Utc::now())?;
    let d = state
        .db
        .create_fleet_deployment(&new, Some(&user.email))
        .await?;
    tracing::info!(deployment = %d.id, version = %d.version, devices = d.devices.len(), "fleet deployment created");
    Ok((StatusCode::CREATED, Json(DeploymentView::from(d))).into_response())
}

/// `GET /updates/deployments`: newest first.
pub async fn deployments(State(state): State<FleetState>) -> FleetResult<Json<DeploymentList>> {
    let deployments: Vec<DeploymentView> = state
        .db
        .fleet_deployments()
        .await?
        .into_iter()
        .map(DeploymentView::from)
        .collect();
    Ok(Json(DeploymentList {
        total: deployments.len(),
        deployments,
    }))
}

/// `GET /updates/deployments/{id}`
pub async fn deployment(
    State(state): State<FleetState>,
    Path(id): Path<String>,
) -> FleetResult<Json<DeploymentView>> {
    let d = state
        .db
        .fleet_deployment(&id)
        .await?
        .ok_or_else(|| FleetError::not_found("Deployment", &id))?;
    Ok(Json(d.into()))
}

/// `POST /updates/deployments/{id}/cancel`: devices not yet sent the
/// update are skipped (those already updating carry on). 409 when it has
/// already finished.
pub async fn cancel(
    State(state): State<FleetState>,
    Path(id): Path<String>,
) -> FleetResult<Json<DeploymentView>> {
    let Some(d) = state.db.fleet_deployment(&id).await? else {
        return Err(FleetError::not_found("Deployment", &id));
    };
    if !state
        .db
        .set_fleet_deployment_status(&id, "cancelled", Some("cancelled by an admin"))
        .await?
    {
        return Err(FleetError::Conflict(format!(
            "deployment '{id}' has already finished ({})",
            d.status
        )));
    }
    tracing::info!(deployment = %id, "fleet deployment cancelled");
    let d = state
        .db
        .fleet_deployment(&id)
        .await?
        .ok_or_else(|| FleetError::not_found("Deployment", &id))?;
    Ok(Json(d.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_seeds_deploy_body_is_valid() {
        let now = Utc::now();
        let d = new_deployment(
            &body(
                json!({"version": "1.5.0", "target": {"devices": ["croom-abc123"]},
                         "schedule": "2024-01-16T02:00:00Z"}),
            ),
            now,
        )
        .unwrap();
        assert_eq!(d.version, "1.5.0");
        assert_eq!(d.target.devices, ["croom-abc123"]);
        // A time in the past means now.
        assert_eq!(d.schedule, timestamp(now));
        assert_eq!((d.canary, d.batch_size), (1, 5));
    }

    #[test]
    fn bad_deploy_bodies_name_their_fields() {
        let now = Utc::now();
        let bad = |v: Value| new_deployment(&body(v), now).unwrap_err().0;
        let e = bad(json!({}));
        assert!(
            e.contains_key("version") && e.contains_key("target"),
            "{e:?}"
        );
        let e = bad(json!({"version": "1.0 beta", "target": {"groups": ["a"]}}));
        assert!(e.contains_key("version"), "{e:?}");
        let e = bad(json!({"version": "1", "target": {}}));
        assert!(e.contains_key("target"), "{e:?}");
        let e = bad(json!({"version": "1", "target": {"groups": ["a"]}, "schedule": "tomorrow"}));
        assert!(e.contains_key("schedule"), "{e:?}");
        let e = bad(
            json!({"version": "1", "target": {"groups": ["a"]}, "schedule": "2999-01-01T00:00:00Z"}),
        );
        assert!(e.contains_key("schedule"), "{e:?}");
        let e = bad(
            json!({"version": "1", "target": {"groups": ["a"]}, "canary": 0, "batch_size": 1001}),
        );
        assert!(
            e.contains_key("canary") && e.contains_key("batch_size"),
            "{e:?}"
        );
        let e = bad(json!({"version": "1", "target": {"groups": ["a"]}, "when": "now"}));
        assert!(e.contains_key("when"), "{e:?}");
    }

    #[test]
    fn releases() {
        assert_eq!(
            new_release(&body(json!({"version": "2.0.0+pi", "notes": "faster"}))).unwrap(),
            ("2.0.0+pi".to_string(), Some("faster".to_string()))
        );
        assert!(new_release(&body(json!({"version": ""}))).is_err());
        assert!(new_release(&body(json!({"version": "x".repeat(65)}))).is_err());
        assert!(new_release(&body(json!({"version": "1", "notes": 3}))).is_err());
    }
}
