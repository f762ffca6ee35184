//! Live participant counts.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;

use crate::ApiState;
use crate::auth::Team;
use crate::error::{ApiError, ApiResult, ErrorBody};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LiveCount {
    /// Participants in the live session right now (0 when none is live).
    pub live_participants: i64,
}

/// Live participant count of one room.
#[utoipa::path(get, path = "/api/v1/rooms/{room}/live/count", tag = "live",
    params(("room" = String, Path, description = "UUID or friendly_url")),
    responses((status = 200, body = LiveCount), (status = 404, body = ErrorBody)))]
pub async fn room_live_count(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
) -> ApiResult<Json<LiveCount>> {
    let record = state
        .db
        .room(&team.id, &room)
        .await?
        .ok_or_else(|| ApiError::not_found("room"))?;
    Ok(Json(LiveCount {
        live_participants: state.db.live_count_room(&record.id).await?,
    }))
}

/// Live participant count across all the team's rooms.
#[utoipa::path(get, path = "/api/v1/live/count", tag = "live",
    responses((status = 200, body = LiveCount)))]
pub async fn team_live_count(
    State(state): State<ApiState>,
    team: Team,
) -> ApiResult<Json<LiveCount>> {
    Ok(Json(LiveCount {
        live_participants: state.db.live_count_team(&team.id).await?,
    }))
}
