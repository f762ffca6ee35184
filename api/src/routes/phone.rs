//! The phone bridge (Digital Samba's `/rooms/{room}/phone/connect|disconnect`
//! and `/rooms/{room}/phone-participants/{callId}/mute|unmute`, docs/phone.md):
//! the dial-in is stored (`store/phone.rs`), the calls live in the server's
//! SIP endpoint and are reached through [`PhoneCalls`](crate::phone::PhoneCalls).

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

use crate::ApiState;
use crate::auth::Team;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::List;
use crate::phone::{self, CallRefusal, PhoneCall};
use crate::store::rooms::RoomRecord;

/// A connected room's dial-in.
#[derive(Debug, Serialize, ToSchema)]
pub struct PhoneInfo {
    pub room_id: String,
    pub phone_enabled: bool,
    /// The extension callers dial (the SIP user part).
    pub extension: String,
    /// The PIN callers enter by DTMF, then `#`.
    pub pin: String,
    /// `sip:<extension>@<host>:<port>` of this server's SIP endpoint;
    /// null when it has none (`--sip-addr` unset).
    pub sip_uri: Option<String>,
    pub created_at: String,
}

/// The answer of a disconnect.
#[derive(Debug, Serialize, ToSchema)]
pub struct Disconnected {
    pub room_id: String,
    pub phone_enabled: bool,
    /// Calls that were ended.
    pub ended_calls: usize,
}

async fn room(state: &ApiState, team: &Team, room: &str) -> ApiResult<RoomRecord> {
    state
        .db
        .room(&team.id, room)
        .await?
        .ok_or_else(|| ApiError::not_found("room"))
}

/// Connect the room to the phone bridge: it gets a dial-in extension and a
/// PIN (kept as they are when it is already connected).
#[utoipa::path(post, path = "/api/v1/rooms/{room}/phone/connect", tag = "phone",
    params(("room" = String, Path, description = "UUID or friendly_url")),
    responses((status = 200, body = PhoneInfo), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn phone_connect(
    State(state): State<ApiState>,
    team: Team,
    Path(key): Path<String>,
) -> ApiResult<Json<PhoneInfo>> {
    let r = room(&state, &team, &key).await?;
    // A phone call is audio the server decodes and mixes: not in a room
    // whose media is end-to-end encrypted.
    if let Some(reason) = crate::settings::e2ee_refusal(&r.settings, "the phone bridge") {
        return Err(ApiError::Conflict(reason));
    }
    let b = state
        .db
        .phone_connect(&team.id, &r.id, phone::new_extension, &phone::new_pin())
        .await?;
    Ok(Json(PhoneInfo {
        sip_uri: state.phone.sip_uri(&b.extension),
        room_id: b.room_id,
        phone_enabled: true,
        extension: b.extension,
        pin: b.pin,
        created_at: b.created_at,
    }))
}

/// Disconnect the room from the phone bridge: its calls end and its
/// dial-in is removed. 409 when it is not connected.
#[utoipa::path(post, path = "/api/v1/rooms/{room}/phone/disconnect", tag = "phone",
    params(("room" = String, Path, description = "UUID or friendly_url")),
    responses((status = 200, body = Disconnected), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn phone_disconnect(
    State(state): State<ApiState>,
    team: Team,
    Path(key): Path<String>,
) -> ApiResult<Json<Disconnected>> {
    let r = room(&state, &team, &key).await?;
    if !state.db.phone_disconnect(&r.id).await? {
        return Err(ApiError::Conflict(
            "the room is not connected to the phone bridge".into(),
        ));
    }
    let ended_calls = state.phone.end_room(&r.id).await;
    Ok(Json(Disconnected {
        room_id: r.id,
        phone_enabled: false,
        ended_calls,
    }))
}

/// List the room's phone calls now (a Convene extension: the ids the
/// mute and unmute endpoints take).
#[utoipa::path(get, path = "/api/v1/rooms/{room}/phone-participants", tag = "phone",
    params(("room" = String, Path, description = "UUID or friendly_url")),
    responses((status = 200, body = List<PhoneCall>), (status = 404, body = ErrorBody)))]
pub async fn phone_participants(
    State(state): State<ApiState>,
    team: Team,
    Path(key): Path<String>,
) -> ApiResult<Json<List<PhoneCall>>> {
    let r = room(&state, &team, &key).await?;
    let data = state.phone.calls(&r.id).await;
    Ok(Json(List {
        total_count: data.len() as i64,
        data,
    }))
}

async fn set_muted(
    state: &ApiState,
    team: &Team,
    key: &str,
    call_id: &str,
    muted: bool,
) -> ApiResult<Json<PhoneCall>> {
    let r = room(state, team, key).await?;
    match state.phone.set_muted(&r.id, call_id, muted).await {
        Ok(call) => Ok(Json(call)),
        Err(CallRefusal::NotFound) => Err(ApiError::not_found("phone participant")),
    }
}

/// Mute a phone participant: its audio stops reaching the room.
#[utoipa::path(post, path = "/api/v1/rooms/{room}/phone-participants/{callId}/mute", tag = "phone",
    params(("room" = String, Path, description = "UUID or friendly_url"),
           ("callId" = String, Path, description = "The call's id")),
    responses((status = 200, body = PhoneCall), (status = 404, body = ErrorBody)))]
pub async fn mute_phone_participant(
    State(state): State<ApiState>,
    team: Team,
    Path((key, call_id)): Path<(String, String)>,
) -> ApiResult<Json<PhoneCall>> {
    set_muted(&state, &team, &key, &call_id, true).await
}

/// Unmute a phone participant.
#[utoipa::path(post, path = "/api/v1/rooms/{room}/phone-participants/{callId}/unmute", tag = "phone",
    params(("room" = String, Path, description = "UUID or friendly_url"),
           ("callId" = String, Path, description = "The call's id")),
    responses((status = 200, body = PhoneCall), (status = 404, body = ErrorBody)))]
pub async fn unmute_phone_participant(
    State(state): State<ApiState>,
    team: Team,
    Path((key, call_id)): Path<(String, String)>,
) -> ApiResult<Json<PhoneCall>> {
    set_muted(&state, &team, &key, &call_id, false).await
}
