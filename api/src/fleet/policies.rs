//! Configuration policies: CRUD, their targets (groups and devices), and
//! the policies that apply to one device.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

use super::FleetState;
use super::domain;
use super::error::{FleetError, FleetResult};
use super::extract::FleetJson;
use crate::store::fleet::{FleetStoreError, PolicyRecord};

#[derive(Debug, Serialize)]
pub struct TargetView {
    pub groups: Vec<String>,
    pub devices: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct PolicyView {
    pub id: String,
    pub name: String,
    pub priority: i64,
    pub target: TargetView,
    pub config: Map<String, Value>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<PolicyRecord> for PolicyView {
    fn from(p: PolicyRecord) -> Self {
        PolicyView {
            id: p.id,
            name: p.name,
            priority: p.priority,
            target: TargetView {
                groups: p.groups,
                devices: p.devices,
            },
            config: p.config,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct PolicyList {
    pub policies: Vec<PolicyView>,
    pub total: usize,
}

fn list_of(policies: Vec<PolicyRecord>) -> PolicyList {
    let policies: Vec<PolicyView> = policies.into_iter().map(PolicyView::from).collect();
    PolicyList {
        total: policies.len(),
        policies,
    }
}

/// `GET /policies`: highest priority first.
pub async fn list(State(state): State<FleetState>) -> FleetResult<Json<PolicyList>> {
    Ok(Json(list_of(state.db.fleet_policies().await?)))
}

/// `POST /policies`: `name`, `priority` (default 100), `target`
/// (`groups`, `devices`; each must exist), `config`.
pub async fn create(
    State(state): State<FleetState>,
    FleetJson(body): FleetJson,
) -> FleetResult<Response> {
    let new = domain::new_policy(&body)?;
    let policy = state.db.create_fleet_policy(&new).await?;
    super::policy_push::push_all(&state).await;
    Ok((StatusCode::CREATED, Json(PolicyView::from(policy))).into_response())
}

/// `GET /policies/{id}`
pub async fn get_one(
    State(state): State<FleetState>,
    Path(id): Path<String>,
) -> FleetResult<Json<PolicyView>> {
    let policy = state
        .db
        .fleet_policy(&id)
        .await?
        .ok_or_else(|| FleetError::not_found("Policy", &id))?;
    Ok(Json(policy.into()))
}

/// `PATCH /policies/{id}`: any create field; `target` replaces the target.
pub async fn update(
    State(state): State<FleetState>,
    Path(id): Path<String>,
    FleetJson(body): FleetJson,
) -> FleetResult<Json<PolicyView>> {
    let patch = domain::policy_patch(&body)?;
    let policy = state
        .db
        .update_fleet_policy(&id, &patch)
        .await
        .map_err(|e| match e {
            FleetStoreError::NotFound(_) => FleetError::not_found("Policy", &id),
            other => other.into(),
        })?;
    super::policy_push::push_all(&state).await;
    Ok(Json(policy.into()))
}

/// `DELETE /policies/{id}`
pub async fn remove(
    State(state): State<FleetState>,
    Path(id): Path<String>,
) -> FleetResult<StatusCode> {
    if state.db.delete_fleet_policy(&id).await? {
        super::policy_push::push_all(&state).await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(FleetError::not_found("Policy", &id))
    }
}

/// `GET /devices/{id}/policies`: the policies that apply to the device
/// (naming it or its group), highest priority first.
pub async fn for_device(
    State(state): State<FleetState>,
    Path(id): Path<String>,
) -> FleetResult<Json<PolicyList>> {
    if state.db.fleet_device(&id).await?.is_none() {
        return Err(FleetError::not_found("Device", &id));
    }
    Ok(Json(list_of(state.db.device_policies(&id).await?)))
}
