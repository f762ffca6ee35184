//! Device groups: CRUD and membership (a device is in at most one group,
//! the `group` of the device).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

use super::FleetState;
use super::devices::{DeviceList, DeviceView};
use super::domain;
use super::error::{FleetError, FleetResult};
use super::extract::{FleetJson, FleetQuery};
use crate::store::fleet::{FleetStoreError, GroupRecord};

#[derive(Debug, Serialize)]
pub struct GroupView {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub config: Map<String, Value>,
    pub device_count: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl From<GroupRecord> for GroupView {
    fn from(g: GroupRecord) -> Self {
        GroupView {
            id: g.id,
            name: g.name,
            description: g.description,
            config: g.config,
            device_count: g.device_count,
            created_at: g.created_at,
            updated_at: g.updated_at,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct GroupList {
    pub groups: Vec<GroupView>,
    pub total: usize,
}

fn group_not_found(id: &str) -> impl FnOnce(FleetStoreError) -> FleetError + '_ {
    move |e| match e {
        FleetStoreError::NotFound(_) => FleetError::not_found("Group", id),
        other => other.into(),
    }
}

/// `GET /groups`
pub async fn list(State(state): State<FleetState>) -> FleetResult<Json<GroupList>> {
    let groups: Vec<GroupView> = state
        .db
        .fleet_groups()
        .await?
        .into_iter()
        .map(GroupView::from)
        .collect();
    Ok(Json(GroupList {
        total: groups.len(),
        groups,
    }))
}

/// `POST /groups`: `name`, optional `id` (slug; default from the name),
/// `description`, `config`.
pub async fn create(
    State(state): State<FleetState>,
    FleetJson(body): FleetJson,
) -> FleetResult<Response> {
    let new = domain::new_group(&body)?;
    let group = state.db.create_fleet_group(&new).await?;
    Ok((StatusCode::CREATED, Json(GroupView::from(group))).into_response())
}

/// `GET /groups/{id}`
pub async fn get_one(
    State(state): State<FleetState>,
    Path(id): Path<String>,
) -> FleetResult<Json<GroupView>> {
    let group = state
        .db
        .fleet_group(&id)
        .await?
        .ok_or_else(|| FleetError::not_found("Group", &id))?;
    Ok(Json(group.into()))
}

/// `PATCH /groups/{id}`: `name`, `description`, `config` (replaced whole).
pub async fn update(
    State(state): State<FleetState>,
    Path(id): Path<String>,
    FleetJson(body): FleetJson,
) -> FleetResult<Json<GroupView>> {
    let patch = domain::group_patch(&body)?;
    let group = state
        .db
        .update_fleet_group(&id, &patch)
        .await
        .map_err(group_not_found(&id))?;
    Ok(Json(group.into()))
}

/// `DELETE /groups/{id}`: its devices become ungrouped.
pub async fn remove(
    State(state): State<FleetState>,
    Path(id): Path<String>,
) -> FleetResult<StatusCode> {
    if state.db.delete_fleet_group(&id).await? {
        super::policy_push::push_all(&state).await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(FleetError::not_found("Group", &id))
    }
}

/// `GET /groups/{id}/devices?limit=&offset=&status=`: the group's devices.
pub async fn devices(
    State(state): State<FleetState>,
    Path(id): Path<String>,
    query: FleetQuery,
) -> FleetResult<Json<DeviceList>> {
    let (mut filter, limit, offset) = domain::device_list_query(|k| query.get(k))?;
    if state.db.fleet_group(&id).await?.is_none() {
        return Err(FleetError::not_found("Group", &id));
    }
    filter.group = Some(id);
    let (devices, total) = state.db.fleet_devices(&filter, limit, offset).await?;
    Ok(Json(DeviceList {
        devices: devices.into_iter().map(DeviceView::from).collect(),
        total,
        limit,
        offset,
    }))
}

/// `POST /groups/{id}/devices`: `{"devices": [ids]}` move into the group
/// (from any other); all or none.
pub async fn add_devices(
    State(state): State<FleetState>,
    Path(id): Path<String>,
    FleetJson(body): FleetJson,
) -> FleetResult<Json<GroupView>> {
    let ids = domain::group_members(&body)?;
    let group = state
        .db
        .add_group_devices(&id, &ids)
        .await
        .map_err(group_not_found(&id))?;
    super::policy_push::push_all(&state).await;
    Ok(Json(group.into()))
}

/// `DELETE /groups/{id}/devices/{device_id}`: the device leaves the group.
pub async fn remove_device(
    State(state): State<FleetState>,
    Path((id, device_id)): Path<(String, String)>,
) -> FleetResult<StatusCode> {
    state
        .db
        .remove_group_device(&id, &device_id)
        .await
        .map_err(|e| match e {
            FleetStoreError::NotFound(_) => {
                let device_id: String = device_id.chars().take(100).collect();
                let id: String = id.chars().take(100).collect();
                FleetError::NotFound(format!("Device '{device_id}' is not in group '{id}'"))
            }
            other => other.into(),
        })?;
    super::policy_push::push_all(&state).await;
    Ok(StatusCode::NO_CONTENT)
}
