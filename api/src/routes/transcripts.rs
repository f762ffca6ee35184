//! Transcripts (docs/transcripts.md): a room's or a session's recognised
//! utterances — list, export as txt or json, delete. The session delete is
//! `sessions::delete_session_transcripts` (with the other session deletes).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use crate::ApiState;
use crate::auth::Team;
use crate::collab;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{List, QueryPairs};
use crate::files::{self, Format};
use crate::store::activity::SessionRow;
use crate::store::transcripts::{TranscriptScope, TranscriptSegment};

fn list(segments: Vec<TranscriptSegment>) -> Json<List<TranscriptSegment>> {
    Json(List {
        total_count: segments.len() as i64,
        data: segments,
    })
}

async fn session(state: &ApiState, team: &Team, id: &str) -> ApiResult<SessionRow> {
    state
        .db
        .session(&team.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("session"))
}

/// The export file: json is the list's `data`; txt is one line per segment,
/// `[start_time] name: transcript`.
fn export(segments: &[TranscriptSegment], format: Format, name: &str) -> ApiResult<Response> {
    let body = match format {
        Format::Json => serde_json::to_vec_pretty(segments).map_err(ApiError::internal)?,
        _ => {
            let mut out = String::new();
            for s in segments {
                out.push_str(&format!(
                    "[{}] {}: {}\n",
                    s.start_time, s.participant_name, s.transcript
                ));
            }
            out.into_bytes()
        }
    };
    let name = format!("transcript-{name}.{}", format.ext());
    Ok(files::download(format.content_type(), &name, body))
}

/// List a room's transcripts (every session, in spoken order).
#[utoipa::path(get, path = "/api/v1/rooms/{room}/transcripts", tag = "transcripts",
    params(("room" = String, Path, description = "UUID or friendly_url")),
    responses((status = 200, body = List<TranscriptSegment>), (status = 404, body = ErrorBody)))]
pub async fn room_transcripts(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
) -> ApiResult<Json<List<TranscriptSegment>>> {
    let room = collab::room(&state, &team, &room).await?;
    Ok(list(
        state
            .db
            .transcripts(TranscriptScope::Room(&room.id))
            .await?,
    ))
}

/// Export a room's transcripts as a file (`format` txt (default) or json).
#[utoipa::path(get, path = "/api/v1/rooms/{room}/transcripts/export", tag = "transcripts",
    params(("room" = String, Path, description = "UUID or friendly_url"),
           ("format" = Option<String>, Query, description = "txt (default) or json")),
    responses((status = 200, description = "The transcript as a txt or json file"),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn export_room_transcripts(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
    query: QueryPairs,
) -> ApiResult<Response> {
    let room = collab::room(&state, &team, &room).await?;
    let format = Format::parse(query.get("format"), &[Format::Txt, Format::Json])?;
    let segments = state
        .db
        .transcripts(TranscriptScope::Room(&room.id))
        .await?;
    export(&segments, format, &room.friendly_url)
}

/// Delete every transcript of a room.
#[utoipa::path(delete, path = "/api/v1/rooms/{room}/transcripts", tag = "transcripts",
    params(("room" = String, Path, description = "UUID or friendly_url")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_room_transcripts(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
) -> ApiResult<StatusCode> {
    let room = collab::room(&state, &team, &room).await?;
    state
        .db
        .delete_transcripts(TranscriptScope::Room(&room.id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List a session's transcripts.
#[utoipa::path(get, path = "/api/v1/sessions/{session}/transcripts", tag = "transcripts",
    params(("session" = String, Path)),
    responses((status = 200, body = List<TranscriptSegment>), (status = 404, body = ErrorBody)))]
pub async fn session_transcripts(
    State(state): State<ApiState>,
    team: Team,
    Path(id): Path<String>,
) -> ApiResult<Json<List<TranscriptSegment>>> {
    let s = session(&state, &team, &id).await?;
    Ok(list(
        state
            .db
            .transcripts(TranscriptScope::Session(&s.id))
            .await?,
    ))
}

/// Export a session's transcripts as a file (`format` txt (default) or json).
#[utoipa::path(get, path = "/api/v1/sessions/{session}/transcripts/export", tag = "transcripts",
    params(("session" = String, Path),
           ("format" = Option<String>, Query, description = "txt (default) or json")),
    responses((status = 200, description = "The transcript as a txt or json file"),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn export_session_transcripts(
    State(state): State<ApiState>,
    team: Team,
    Path(id): Path<String>,
    query: QueryPairs,
) -> ApiResult<Response> {
    let s = session(&state, &team, &id).await?;
    let format = Format::parse(query.get("format"), &[Format::Txt, Format::Json])?;
    let segments = state
        .db
        .transcripts(TranscriptScope::Session(&s.id))
        .await?;
    export(&segments, format, &format!("{}-{}", s.friendly_url, s.id))
}
