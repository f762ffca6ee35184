//! Moderation of live participants over REST (a Convene extension beside
//! the seed's paths): mute, remove and role change, handed to the room
//! actor through [`LiveRooms::moderate`](crate::live::LiveRooms::moderate),
//! the same code and checks as a moderator's signaling commands.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::Value;

use crate::ApiState;
use crate::auth::Team;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::JsonObject;
use crate::live::{ModerationAction, ModerationRefusal, MuteSource};

/// A live participant's role after a change.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ParticipantRole {
    pub participant_id: String,
    pub role: String,
}

/// The body of a mute: `{"source": "microphone"|"camera"|"screen"}`
/// (`audio`/`video` accepted), or no source to mute everything.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct MuteBody {
    pub source: Option<MuteSource>,
}

/// The body of a role change.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct RoleBody {
    /// One of the room's roles.
    pub role: String,
}

/// The room, then the participant in its live session (404 otherwise),
/// then the action through the room actor.
async fn moderate(
    state: &ApiState,
    team: &Team,
    room: &str,
    participant: &str,
    action: ModerationAction,
) -> ApiResult<String> {
    let room = crate::collab::room(state, team, room).await?;
    let p = state
        .db
        .participant(&team.id, participant)
        .await?
        .filter(|p| p.room_id == room.id && p.live)
        .ok_or_else(not_live)?;
    let Some(rx) = state.live.moderate(&room.id, &p.id, action).await else {
        return Err(ApiError::Conflict("the room has no live session".into()));
    };
    match rx.await {
        Ok(Ok(())) => Ok(p.id),
        Ok(Err(refusal)) => Err(match refusal {
            ModerationRefusal::NotLive => not_live(),
            ModerationRefusal::UnknownRole(_) => ApiError::field("role", refusal.message()),
            ModerationRefusal::Forbidden(_) => ApiError::Forbidden(refusal.message()),
            ModerationRefusal::Internal => ApiError::internal(refusal.message()),
        }),
        Err(_) => Err(ApiError::Conflict(
            "the room's session ended before the request was handled".into(),
        )),
    }
}

fn not_live() -> ApiError {
    ApiError::NotFound("participant not found in the room's live session".into())
}

/// Mute a live participant's microphone, camera or screen (all of them
/// without `source`); the participant is told `muted_by_moderator`.
#[utoipa::path(post, path = "/api/v1/rooms/{room}/live/participants/{participant}/mute",
    tag = "live", request_body(content = MuteBody, content_type = "application/json"),
    params(("room" = String, Path), ("participant" = String, Path, description = "participant id or external id")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn mute_participant(
    State(state): State<ApiState>,
    team: Team,
    Path((room, participant)): Path<(String, String)>,
    JsonObject(body): JsonObject,
) -> ApiResult<StatusCode> {
    let source = match body.get("source") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            serde_json::from_value::<MuteSource>(v.clone()).map_err(|_| {
                ApiError::field(
                    "source",
                    "must be microphone, camera or screen (or audio, video)",
                )
            })?,
        ),
    };
    let action = ModerationAction::Mute(source);
    moderate(&state, &team, &room, &participant, action).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a live participant from the session (its token is banned from
/// the room until it expires, as a moderator's removal does).
#[utoipa::path(post, path = "/api/v1/rooms/{room}/live/participants/{participant}/remove",
    tag = "live",
    params(("room" = String, Path), ("participant" = String, Path, description = "participant id or external id")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn remove_participant(
    State(state): State<ApiState>,
    team: Team,
    Path((room, participant)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    moderate(&state, &team, &room, &participant, ModerationAction::Remove).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Give a live participant another of the room's roles (promote or
/// demote); its permissions change at once and everyone sees the new role.
#[utoipa::path(put, path = "/api/v1/rooms/{room}/live/participants/{participant}/role",
    tag = "live", request_body(content = RoleBody, content_type = "application/json"),
    params(("room" = String, Path), ("participant" = String, Path, description = "participant id or external id")),
    responses((status = 200, body = ParticipantRole), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_participant_role(
    State(state): State<ApiState>,
    team: Team,
    Path((room, participant)): Path<(String, String)>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<ParticipantRole>> {
    let role = match body.get("role") {
        Some(Value::String(r)) if !r.trim().is_empty() => r.trim().to_string(),
        _ => return Err(ApiError::field("role", "is required (a role name)")),
    };
    let action = ModerationAction::SetRole(role.clone());
    let participant_id = moderate(&state, &team, &room, &participant, action).await?;
    Ok(Json(ParticipantRole {
        participant_id,
        role,
    }))
}
