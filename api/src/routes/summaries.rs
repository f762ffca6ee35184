//! Session summaries (docs/transcripts.md, "Summaries"): the seed's
//! `GET /sessions/{session}/summary` and the room-wide summary delete. The
//! session delete is `sessions::delete_session_summaries` (with the other
//! session deletes). Summaries are made after the session ends by the
//! summary worker (crate::summary).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;

use crate::ApiState;
use crate::auth::Team;
use crate::collab;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::store::summaries::{FAILED, SummaryRow};

/// A session's summary, as the seed shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SummaryView {
    /// The summary job's id (UUID).
    pub job_id: String,
    /// `IN_PROGRESS` (queued or being made), `READY` or `FAILED`.
    pub status: String,
    /// The summary; empty until `READY`.
    pub summary: String,
    /// Why the job failed; only with `FAILED` (a Convene extension).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}

impl From<SummaryRow> for SummaryView {
    fn from(r: SummaryRow) -> Self {
        SummaryView {
            job_id: r.id,
            failure_reason: if r.status == FAILED {
                r.failure_reason
            } else {
                None
            },
            status: r.status,
            summary: r.summary,
        }
    }
}

/// Get the AI-generated summary of a session's transcript (made on this
/// server after the session ends; 404 when the session has none: it is
/// still live, transcription was not enabled, nothing was transcribed, or
/// the summary was deleted).
#[utoipa::path(get, path = "/api/v1/sessions/{session}/summary", tag = "sessions",
    params(("session" = String, Path)),
    responses((status = 200, body = SummaryView), (status = 404, body = ErrorBody)))]
pub async fn session_summary(
    State(state): State<ApiState>,
    team: Team,
    Path(session): Path<String>,
) -> ApiResult<Json<SummaryView>> {
    let s = state
        .db
        .session(&team.id, &session)
        .await?
        .ok_or_else(|| ApiError::not_found("session"))?;
    match state.db.session_summary(&s.id).await? {
        Some(row) => Ok(Json(row.into())),
        None if s.ended_at.is_none() => Err(ApiError::NotFound(
            "summary not found: the session is still live; a summary is made after it ends".into(),
        )),
        None => Err(ApiError::NotFound(
            "summary not found: the session has no transcript (transcription was not enabled \
             or nothing was recognised) or its summary was deleted"
                .into(),
        )),
    }
}

/// Delete the AI summaries of every session of a room.
#[utoipa::path(delete, path = "/api/v1/rooms/{room}/summaries", tag = "rooms",
    params(("room" = String, Path, description = "UUID or friendly_url")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_room_summaries(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
) -> ApiResult<StatusCode> {
    let room = collab::room(&state, &team, &room).await?;
    state.db.delete_room_summaries(&room.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
