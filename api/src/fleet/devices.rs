//! Devices: enrollment (one-time tokens, device credentials), list with
//! filters, get, update, delete.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::auth::{FleetUser, not_blocked, unix_now};
use super::error::{FleetError, FleetResult};
use super::extract::{ClientIp, FleetJson, FleetQuery};
use super::{FleetState, domain, issue_enrollment_token, random_secret};
use crate::store::fleet::DeviceRecord;
use crate::store::teams::key_hash;

/// A device as the API returns it (the seed's list fields first).
#[derive(Debug, Serialize)]
pub struct DeviceView {
    pub id: String,
    pub name: String,
    /// `online` | `offline`.
    pub status: &'static str,
    /// The group id, or null.
    pub group: Option<String>,
    pub last_seen: Option<String>,
    pub version: Option<String>,
    /// The latest heartbeat's figures (the seed's `health`: `cpu_percent`,
    /// `memory_percent`, `temperature`, `disk_percent`, and `uptime`);
    /// null before the first heartbeat.
    pub health: Option<serde_json::Map<String, serde_json::Value>>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub tags: Vec<String>,
    pub enrolled_at: String,
    pub updated_at: String,
    /// `GET /devices/{id}` only: what the appliance last reported about the
    /// policies pushed to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyReportView>,
}

/// The device's report on its policies.
#[derive(Debug, Serialize)]
pub struct PolicyReportView {
    /// The merged configuration's revision it answered for.
    pub revision: String,
    /// `applied` or `failed`.
    pub status: String,
    pub reason: Option<String>,
    pub reported_at: String,
}

impl From<DeviceRecord> for DeviceView {
    fn from(d: DeviceRecord) -> Self {
        DeviceView {
            id: d.id,
            name: d.name,
            status: d.status.as_str(),
            group: d.group_id,
            last_seen: d.last_seen,
            version: d.version,
            health: d.health,
            model: d.model,
            serial: d.serial,
            tags: d.tags,
            enrolled_at: d.enrolled_at,
            updated_at: d.updated_at,
            policy: None,
        }
    }
}

/// The device list (the seed's shape).
#[derive(Debug, Serialize)]
pub struct DeviceList {
    pub devices: Vec<DeviceView>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

/// `GET /devices?status=&group=&limit=&offset=`
pub async fn list(
    State(state): State<FleetState>,
    query: FleetQuery,
) -> FleetResult<Json<DeviceList>> {
    let (filter, limit, offset) = domain::device_list_query(|k| query.get(k))?;
    let (devices, total) = state.db.fleet_devices(&filter, limit, offset).await?;
    Ok(Json(DeviceList {
        devices: devices.into_iter().map(DeviceView::from).collect(),
        total,
        limit,
        offset,
    }))
}

/// `GET /devices/{id}`
pub async fn get_one(
    State(state): State<FleetState>,
    Path(id): Path<String>,
) -> FleetResult<Json<DeviceView>> {
    let device = state
        .db
        .fleet_device(&id)
        .await?
        .ok_or_else(|| FleetError::not_found("Device", &id))?;
    let mut view = DeviceView::from(device);
    view.policy = state
        .db
        .fleet_policy_report(&id)
        .await?
        .map(|r| PolicyReportView {
            revision: r.revision,
            status: r.status,
            reason: r.reason,
            reported_at: r.reported_at,
        });
    Ok(Json(view))
}

/// `PATCH /devices/{id}`: `name`, `group`, `tags`. Nothing changes unless
/// the whole body is valid.
pub async fn update(
    State(state): State<FleetState>,
    Path(id): Path<String>,
    FleetJson(body): FleetJson,
) -> FleetResult<Json<DeviceView>> {
    let patch = domain::device_patch(&body)?;
    let device = state
        .db
        .update_fleet_device(&id, &patch)
        .await
        .map_err(|e| match e {
            crate::store::fleet::FleetStoreError::NotFound(_) => {
                FleetError::not_found("Device", &id)
            }
            other => other.into(),
        })?;
    super::policy_push::push_all(&state).await;
    Ok(Json(device.into()))
}

/// `DELETE /devices/{id}`: the device and its credential are gone.
pub async fn remove(
    State(state): State<FleetState>,
    Path(id): Path<String>,
) -> FleetResult<StatusCode> {
    if state.db.delete_fleet_device(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(FleetError::not_found("Device", &id))
    }
}

/// An enrollment token as created (the token itself is shown only here).
#[derive(Debug, Serialize)]
pub struct EnrollmentTokenView {
    pub id: String,
    pub token: String,
    pub expires_at: String,
    pub expires_in: i64,
    pub group: Option<String>,
}

/// `POST /enrollment-tokens` (admin): `expires_in` seconds (default 3600),
/// `group` the enrolled device joins.
pub async fn create_enrollment_token(
    State(state): State<FleetState>,
    user: FleetUser,
    FleetJson(body): FleetJson,
) -> FleetResult<Response> {
    let (ttl, group) = domain::enrollment_token_request(&body)?;
    let (record, token) =
        issue_enrollment_token(&state.db, ttl, group.as_deref(), Some(&user.id)).await?;
    Ok((
        StatusCode::CREATED,
        Json(EnrollmentTokenView {
            id: record.id,
            token,
            expires_at: record.expires_at,
            expires_in: ttl,
            group: record.group_id,
        }),
    )
        .into_response())
}

/// What an enrolling appliance gets back: its id and its credential
/// (shown once; the server keeps only its hash).
#[derive(Debug, Serialize)]
pub struct Enrolled {
    pub device_id: String,
    pub device_credential: String,
    pub device: DeviceView,
}

/// A new device id in the seed's style: `croom-` and 16 hex digits.
fn new_device_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    format!("croom-{}", hex::encode(bytes))
}

/// `POST /devices/enroll` (no user token): `token` (a one-time enrollment
/// token), `name`, `model`, `serial`, `version`. A token that is unknown,
/// expired or already used is a 401 and counts as a failure of the address.
pub async fn enroll(
    State(state): State<FleetState>,
    ClientIp(ip): ClientIp,
    FleetJson(body): FleetJson,
) -> FleetResult<Response> {
    let now = unix_now();
    not_blocked(&state, ip, now)?;
    let (token, new) = domain::enroll_request(&body)?;
    let credential = random_secret("cvd");
    let device_id = new_device_id();
    // The token is found by its SHA-256, never compared itself: timing can
    // at most reveal how much of a stored hash a guess's hash shares, which
    // says nothing about the token (the developer keys' reasoning too).
    let device = state
        .db
        .enroll_device(&key_hash(&token), &device_id, &key_hash(&credential), &new)
        .await?;
    let Some(device) = device else {
        if let Some(ip) = ip {
            state.ip_limits.failed(ip, now);
        }
        return Err(FleetError::Unauthorized(
            "the enrollment token is invalid, expired or already used".into(),
        ));
    };
    tracing::info!(device = %device.id, name = %device.name, "fleet device enrolled");
    Ok((
        StatusCode::CREATED,
        Json(Enrolled {
            device_id: device.id.clone(),
            device_credential: credential,
            device: device.into(),
        }),
    )
        .into_response())
}
