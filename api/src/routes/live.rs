//! Live rooms: participant counts and who is in each live session.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;

use crate::ApiState;
use crate::auth::Team;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::List;
use crate::store::activity::{ParticipantFilter, SessionRow};
use crate::store::{Order, Page};

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

/// A live room with its participant count.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LiveRoom {
    /// The room id.
    pub id: String,
    /// Rooms have no external id in Convene: always null (kept for clients
    /// that read it).
    pub external_id: Option<String>,
    pub friendly_url: String,
    /// The live session, null when the room is not live.
    pub session_id: Option<String>,
    /// Start of the live session (RFC 3339), null when not live.
    pub start_time: Option<String>,
    /// Seconds since the session started.
    pub session_duration: i64,
    pub live_participants: i64,
}

/// A participant in a live session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LiveParticipant {
    pub id: String,
    pub external_id: Option<String>,
    pub name: String,
    pub role: String,
    /// RFC 3339.
    pub join_time: String,
    /// When the hand went up (RFC 3339), null when it is down.
    pub hand_raised_at: Option<String>,
}

/// A live room with its participants.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LiveRoomParticipants {
    pub id: String,
    pub external_id: Option<String>,
    pub friendly_url: String,
    pub session_id: Option<String>,
    pub start_time: Option<String>,
    pub session_duration: i64,
    pub live_participants: Vec<LiveParticipant>,
}

fn live_room(room_id: String, friendly_url: String, s: Option<&SessionRow>) -> LiveRoom {
    LiveRoom {
        id: room_id,
        external_id: None,
        friendly_url,
        session_id: s.map(|s| s.id.clone()),
        start_time: s.map(|s| s.started_at.clone()),
        session_duration: s.map_or(0, |s| since(&s.started_at)),
        live_participants: s.map_or(0, |s| s.participants_live),
    }
}

fn since(ts: &str) -> i64 {
    crate::store::parse_timestamp(ts)
        .map(|t| (chrono::Utc::now() - t).num_seconds().max(0))
        .unwrap_or(0)
}

async fn with_participants(
    state: &ApiState,
    team: &Team,
    r: LiveRoom,
) -> ApiResult<LiveRoomParticipants> {
    let participants = match &r.session_id {
        None => Vec::new(),
        Some(sid) => {
            let filter = ParticipantFilter {
                session_id: Some(sid.clone()),
                live: Some(true),
                ..ParticipantFilter::default()
            };
            let page = Page {
                limit: i64::MAX,
                offset: 0,
                order: Order::Asc,
            };
            state
                .db
                .list_participants(&team.id, &filter, &page)
                .await?
                .1
                .into_iter()
                .map(|p| LiveParticipant {
                    id: p.id,
                    external_id: p.external_id,
                    name: p.name,
                    role: p.role,
                    join_time: p.joined_at,
                    hand_raised_at: p.hand_raised_at,
                })
                .collect()
        }
    };
    Ok(LiveRoomParticipants {
        id: r.id,
        external_id: r.external_id,
        friendly_url: r.friendly_url,
        session_id: r.session_id,
        start_time: r.start_time,
        session_duration: r.session_duration,
        live_participants: participants,
    })
}

/// Every room of the team with a live session, with participant counts.
#[utoipa::path(get, path = "/api/v1/rooms/live", tag = "live",
    responses((status = 200, body = inline(List<LiveRoom>))))]
pub async fn live_rooms(
    State(state): State<ApiState>,
    team: Team,
) -> ApiResult<Json<List<LiveRoom>>> {
    let data: Vec<LiveRoom> = state
        .db
        .live_sessions(&team.id)
        .await?
        .into_iter()
        .map(|s| live_room(s.room_id.clone(), s.friendly_url.clone(), Some(&s)))
        .collect();
    Ok(Json(List {
        total_count: data.len() as i64,
        data,
    }))
}

/// Every live room of the team with its participants.
#[utoipa::path(get, path = "/api/v1/rooms/live/participants", tag = "live",
    responses((status = 200, body = inline(List<LiveRoomParticipants>))))]
pub async fn live_rooms_participants(
    State(state): State<ApiState>,
    team: Team,
) -> ApiResult<Json<List<LiveRoomParticipants>>> {
    let mut data = Vec::new();
    for s in state.db.live_sessions(&team.id).await? {
        let r = live_room(s.room_id.clone(), s.friendly_url.clone(), Some(&s));
        data.push(with_participants(&state, &team, r).await?);
    }
    Ok(Json(List {
        total_count: data.len() as i64,
        data,
    }))
}

async fn one_live_room(state: &ApiState, team: &Team, room: &str) -> ApiResult<LiveRoom> {
    let record = state
        .db
        .room(&team.id, room)
        .await?
        .ok_or_else(|| ApiError::not_found("room"))?;
    let s = state.db.live_session_of_room(&team.id, &record.id).await?;
    Ok(live_room(record.id, record.friendly_url, s.as_ref()))
}

/// The live state of one room (zero participants when not live).
#[utoipa::path(get, path = "/api/v1/rooms/{room}/live", tag = "live",
    params(("room" = String, Path, description = "UUID or friendly_url")),
    responses((status = 200, body = LiveRoom), (status = 404, body = ErrorBody)))]
pub async fn room_live(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
) -> ApiResult<Json<LiveRoom>> {
    Ok(Json(one_live_room(&state, &team, &room).await?))
}

/// The live participants of one room.
#[utoipa::path(get, path = "/api/v1/rooms/{room}/live/participants", tag = "live",
    params(("room" = String, Path, description = "UUID or friendly_url")),
    responses((status = 200, body = LiveRoomParticipants), (status = 404, body = ErrorBody)))]
pub async fn room_live_participants(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
) -> ApiResult<Json<LiveRoomParticipants>> {
    let r = one_live_room(&state, &team, &room).await?;
    Ok(Json(with_participants(&state, &team, r).await?))
}
