//! Breakout rooms of a room's live session (issue 22; no seed defines
//! them, so they follow the style of the other room endpoints): create,
//! list, open, move a participant, broadcast, close, delete. Rules in
//! `crate::breakouts`, SQL in `store/breakouts.rs`; the live room carries
//! the commands out through [`LiveRooms::breakouts`](crate::live::LiveRooms::breakouts).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;

use crate::ApiState;
use crate::auth::Team;
use crate::breakouts::{self, BreakoutCommand, BreakoutRefusal, BreakoutSpec, Placement};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonObject, List};
use crate::store::breakouts::BreakoutRecord;
use crate::store::rooms::RoomRecord;

/// A breakout room.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BreakoutView {
    pub id: String,
    pub name: String,
    /// 1-based order.
    pub position: i64,
    /// `created`, `open`, `closing` or `closed`.
    pub status: String,
    /// `manual` or `random`.
    pub assignment: String,
    /// The timer: the breakouts start closing this long after opening.
    pub duration_minutes: Option<i64>,
    /// The live session the breakouts belong to.
    pub session_id: String,
    pub opened_at: Option<String>,
    pub closed_at: Option<String>,
    pub created_at: String,
    /// The live participants in this breakout now.
    pub participants: Vec<Placement>,
}

fn view(r: BreakoutRecord, placements: &[Placement]) -> BreakoutView {
    let participants = placements
        .iter()
        .filter(|p| p.breakout_id.as_deref() == Some(r.id.as_str()))
        .cloned()
        .collect();
    BreakoutView {
        id: r.id,
        name: r.name,
        position: r.position,
        status: r.status,
        assignment: r.assignment,
        duration_minutes: r.duration_minutes,
        session_id: r.session_id,
        opened_at: r.opened_at,
        closed_at: r.closed_at,
        created_at: r.created_at,
        participants,
    }
}

fn list(rows: Vec<BreakoutRecord>, placements: &[Placement]) -> List<BreakoutView> {
    List {
        total_count: rows.len() as i64,
        data: rows.into_iter().map(|r| view(r, placements)).collect(),
    }
}

/// The create body, for the OpenAPI document.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct CreateBreakouts {
    /// The breakouts' names (1..=50, each 1..=100 characters, no two
    /// alike); or `count`.
    pub names: Option<Vec<String>>,
    /// How many breakouts, named "Room 1"...; or `names`.
    pub count: Option<u32>,
    /// `manual` (default: moderators move people) or `random` (at opening,
    /// every participant without `admit_participants` is dealt into them).
    pub assignment: Option<String>,
    /// The timer (1..=1440): closing starts this long after opening.
    pub duration_minutes: Option<i64>,
}

/// The close body, for the OpenAPI document.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct CloseBreakouts {
    /// Seconds before everyone returns to the main room (0..=600, default 30).
    pub countdown_seconds: Option<u64>,
}

/// The broadcast body, for the OpenAPI document.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct BroadcastBody {
    /// 1..=1000 characters.
    pub message: String,
}

/// Asks the live room; 409 when it has no live session.
async fn ask(
    state: &ApiState,
    room: &RoomRecord,
    cmd: BreakoutCommand,
) -> ApiResult<Vec<Placement>> {
    let Some(rx) = state.live.breakouts(&room.id, cmd).await else {
        return Err(not_live_room());
    };
    match rx.await {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(BreakoutRefusal::Conflict(m))) => Err(ApiError::Conflict(m)),
        Ok(Err(BreakoutRefusal::NotLive)) => Err(ApiError::NotFound(
            "participant not found in the room's live session".into(),
        )),
        Ok(Err(BreakoutRefusal::UnknownBreakout)) => Err(ApiError::not_found("breakout")),
        Err(_) => Err(ApiError::Conflict(
            "the room's session ended before the request was handled".into(),
        )),
    }
}

fn not_live_room() -> ApiError {
    ApiError::Conflict("the room has no live session: breakouts belong to a live session".into())
}

/// Where everyone is, or nobody when the room is not live.
async fn placements(state: &ApiState, room: &RoomRecord) -> Vec<Placement> {
    match state
        .live
        .breakouts(&room.id, BreakoutCommand::Placements)
        .await
    {
        Some(rx) => rx.await.ok().and_then(Result::ok).unwrap_or_default(),
        None => Vec::new(),
    }
}

/// The room's breakouts, 404 when it has none.
async fn existing(state: &ApiState, room: &RoomRecord) -> ApiResult<Vec<BreakoutRecord>> {
    let rows = state.db.breakouts(&room.id).await?;
    if rows.is_empty() {
        return Err(ApiError::NotFound(
            "the room has no breakouts: create them first".into(),
        ));
    }
    Ok(rows)
}

fn status(rows: &[BreakoutRecord]) -> &str {
    rows.first().map_or("closed", |r| r.status.as_str())
}

/// Create the breakout rooms of the room's live session (not yet open).
#[utoipa::path(post, path = "/api/v1/rooms/{room}/breakouts", tag = "breakouts",
    request_body = CreateBreakouts,
    params(("room" = String, Path, description = "UUID or friendly_url")),
    responses((status = 201, body = List<BreakoutView>), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_breakouts(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<(StatusCode, Json<List<BreakoutView>>)> {
    let new = breakouts::validate_create(&body).map_err(ApiError::from)?;
    let room = crate::collab::room(&state, &team, &room).await?;
    let placements = ask(&state, &room, BreakoutCommand::Placements).await?;
    let session = state
        .db
        .live_session_of_room(&team.id, &room.id)
        .await?
        .ok_or_else(not_live_room)?
        .id;
    let rows = state
        .db
        .create_breakouts(
            &room.id,
            &session,
            &new.names,
            new.assignment.as_str(),
            new.duration_minutes,
        )
        .await?
        .ok_or_else(|| {
            ApiError::Conflict(
                "the room already has breakouts in this session that are not closed: close them first"
                    .into(),
            )
        })?;
    tracing::info!(room_id = %room.id, count = rows.len(), "breakouts created");
    Ok((StatusCode::CREATED, Json(list(rows, &placements))))
}

/// List the room's breakouts, with the live participants in each.
#[utoipa::path(get, path = "/api/v1/rooms/{room}/breakouts", tag = "breakouts",
    params(("room" = String, Path, description = "UUID or friendly_url")),
    responses((status = 200, body = List<BreakoutView>), (status = 404, body = ErrorBody)))]
pub async fn list_breakouts(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
) -> ApiResult<Json<List<BreakoutView>>> {
    let room = crate::collab::room(&state, &team, &room).await?;
    let rows = state.db.breakouts(&room.id).await?;
    let placements = placements(&state, &room).await;
    Ok(Json(list(rows, &placements)))
}

/// Open the breakouts: participants can be moved into them (random
/// assignment moves everyone but the moderators at once).
#[utoipa::path(post, path = "/api/v1/rooms/{room}/breakouts/open", tag = "breakouts",
    params(("room" = String, Path, description = "UUID or friendly_url")),
    responses((status = 200, body = List<BreakoutView>), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn open_breakouts(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
) -> ApiResult<Json<List<BreakoutView>>> {
    let room = crate::collab::room(&state, &team, &room).await?;
    let rows = existing(&state, &room).await?;
    if status(&rows) != "created" {
        return Err(ApiError::Conflict(format!(
            "the breakouts are {}: only new breakouts can be opened",
            status(&rows)
        )));
    }
    let first = &rows[0];
    let cmd = BreakoutCommand::Open {
        breakouts: rows
            .iter()
            .map(|r| BreakoutSpec {
                id: r.id.clone(),
                name: r.name.clone(),
            })
            .collect(),
        assignment: breakouts::Assignment::parse(&first.assignment)
            .unwrap_or(breakouts::Assignment::Manual),
        duration_minutes: first.duration_minutes,
    };
    let placements = ask(&state, &room, cmd).await?;
    state
        .db
        .set_breakouts_status(&room.id, &["created"], "open")
        .await?;
    tracing::info!(room_id = %room.id, "breakouts opened");
    Ok(Json(list(state.db.breakouts(&room.id).await?, &placements)))
}

/// Close the breakouts: everyone gets a countdown, then returns to the main room.
#[utoipa::path(post, path = "/api/v1/rooms/{room}/breakouts/close", tag = "breakouts",
    request_body = CloseBreakouts,
    params(("room" = String, Path, description = "UUID or friendly_url")),
    responses((status = 200, body = List<BreakoutView>), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn close_breakouts(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<List<BreakoutView>>> {
    let countdown_seconds = breakouts::validate_close(&body).map_err(ApiError::from)?;
    let room = crate::collab::room(&state, &team, &room).await?;
    let rows = existing(&state, &room).await?;
    if status(&rows) != "open" {
        return Err(ApiError::Conflict(format!(
            "the breakouts are {}: only open breakouts can be closed",
            status(&rows)
        )));
    }
    let placements = ask(&state, &room, BreakoutCommand::Close { countdown_seconds }).await?;
    state
        .db
        .set_breakouts_status(&room.id, &["open"], "closing")
        .await?;
    tracing::info!(room_id = %room.id, countdown_seconds, "breakouts closing");
    Ok(Json(list(state.db.breakouts(&room.id).await?, &placements)))
}

/// Move a live participant into an open breakout, or back to the main
/// room with `main` as the breakout.
#[utoipa::path(put, path = "/api/v1/rooms/{room}/breakouts/{breakout}/participants/{participant}",
    tag = "breakouts",
    params(("room" = String, Path, description = "UUID or friendly_url"),
        ("breakout" = String, Path, description = "a breakout id, or `main`"),
        ("participant" = String, Path, description = "participant id or external id")),
    responses((status = 200, body = Placement), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn move_participant(
    State(state): State<ApiState>,
    team: Team,
    Path((room, breakout, participant)): Path<(String, String, String)>,
) -> ApiResult<Json<Placement>> {
    let room = crate::collab::room(&state, &team, &room).await?;
    let rows = existing(&state, &room).await?;
    let to = if breakout == breakouts::MAIN {
        None
    } else {
        let row = rows
            .iter()
            .find(|r| r.id == breakout)
            .ok_or_else(|| ApiError::not_found("breakout"))?;
        Some(row.id.clone())
    };
    if status(&rows) != "open" {
        return Err(ApiError::Conflict(format!(
            "the breakouts are {}: participants move only while they are open",
            status(&rows)
        )));
    }
    let p = state
        .db
        .participant(&team.id, &participant)
        .await?
        .filter(|p| p.room_id == room.id && p.live)
        .ok_or_else(|| {
            ApiError::NotFound("participant not found in the room's live session".into())
        })?;
    let cmd = BreakoutCommand::Move {
        participant_id: p.id.clone(),
        to,
    };
    let placements = ask(&state, &room, cmd).await?;
    placements
        .into_iter()
        .find(|x| x.participant_id == p.id)
        .map(Json)
        .ok_or_else(|| {
            ApiError::NotFound("participant not found in the room's live session".into())
        })
}

/// Send a message to everyone, in every breakout and the main room.
#[utoipa::path(post, path = "/api/v1/rooms/{room}/breakouts/broadcast", tag = "breakouts",
    request_body = BroadcastBody,
    params(("room" = String, Path, description = "UUID or friendly_url")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn broadcast_to_breakouts(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<StatusCode> {
    let message = breakouts::validate_broadcast(&body).map_err(ApiError::from)?;
    let room = crate::collab::room(&state, &team, &room).await?;
    let rows = existing(&state, &room).await?;
    if !matches!(status(&rows), "open" | "closing") {
        return Err(ApiError::Conflict(format!(
            "the breakouts are {}: broadcasts go to open breakouts",
            status(&rows)
        )));
    }
    ask(&state, &room, BreakoutCommand::Broadcast { message }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete the room's breakouts (only when none is open or closing).
#[utoipa::path(delete, path = "/api/v1/rooms/{room}/breakouts", tag = "breakouts",
    params(("room" = String, Path, description = "UUID or friendly_url")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_breakouts(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
) -> ApiResult<StatusCode> {
    let room = crate::collab::room(&state, &team, &room).await?;
    match state.db.delete_breakouts(&room.id).await? {
        None => Err(ApiError::Conflict(
            "the breakouts are open: close them first".into(),
        )),
        Some(0) => Err(ApiError::NotFound("the room has no breakouts".into())),
        Some(_) => {
            tracing::info!(room_id = %room.id, "breakouts deleted");
            Ok(StatusCode::NO_CONTENT)
        }
    }
}
