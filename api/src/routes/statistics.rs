//! Usage statistics: team-wide, per room and per participant, over a date
//! range (`date_start`, `date_end`) and grouped by day, week or month
//! (`group_by`, also `grouping`/`group`). Computed by SQL.

use axum::Json;
use axum::extract::{Path, State};
use chrono::Utc;
use serde::Serialize;

use crate::ApiState;
use crate::auth::Team;
use crate::error::{ApiError, ApiResult, ErrorBody, FieldErrors};
use crate::extract::QueryPairs;
use crate::routes::sessions::{date_range, room_id};
use crate::store::statistics::{
    Grouping, LiveTotals, ParticipantTotals, Period, RoomTotals, Scope, SessionTotals,
};
use crate::store::timestamp;

/// Statistics of a range.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Statistics {
    /// The range asked for (RFC 3339; null = unbounded).
    pub date_start: Option<String>,
    pub date_end: Option<String>,
    /// `day`, `week` or `month`.
    pub group_by: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rooms: Option<RoomTotals>,
    pub sessions: SessionTotals,
    pub participants: ParticipantTotals,
    pub recordings: i64,
    /// Activity per period, oldest first (periods without activity are left out).
    pub periods: Vec<Period>,
}

/// What is happening right now.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CurrentStatistics {
    #[serde(flatten)]
    pub live: LiveTotals,
    /// RFC 3339.
    pub timestamp: String,
}

struct Range {
    scope: Scope,
    grouping: Grouping,
    group_name: &'static str,
}

fn range(team: &Team, q: &QueryPairs) -> ApiResult<Range> {
    let mut errors = FieldErrors::new();
    let (from, until) = date_range(q, &mut errors);
    let raw = ["group_by", "grouping", "group"]
        .iter()
        .find_map(|k| q.get(k).filter(|v| !v.is_empty()).map(|v| (*k, v)));
    let grouping = match raw {
        None => Grouping::Day,
        Some((key, v)) => Grouping::parse(v).unwrap_or_else(|| {
            errors.insert(key.to_string(), vec!["must be day, week or month".into()]);
            Grouping::Day
        }),
    };
    if !errors.is_empty() {
        return Err(ApiError::fields(errors));
    }
    Ok(Range {
        scope: Scope {
            team_id: team.id.clone(),
            from,
            until,
            now: timestamp(Utc::now()),
            ..Scope::default()
        },
        grouping,
        group_name: match grouping {
            Grouping::Day => "day",
            Grouping::Week => "week",
            Grouping::Month => "month",
        },
    })
}

async fn compute(state: &ApiState, r: Range, with_rooms: bool) -> ApiResult<Statistics> {
    let db = &state.db;
    let rooms = if with_rooms {
        Some(db.room_totals(&r.scope).await?)
    } else {
        None
    };
    Ok(Statistics {
        date_start: r.scope.from.clone(),
        date_end: r.scope.until.clone(),
        group_by: r.group_name,
        rooms,
        sessions: db.session_totals(&r.scope).await?,
        participants: db.participant_totals(&r.scope).await?,
        recordings: db.recording_count(&r.scope).await?,
        periods: db.periods(&r.scope, r.grouping).await?,
    })
}

const RANGE_PARAMS: &str =
    "date_start, date_end (YYYY-MM-DD or RFC 3339), group_by (day|week|month)";

/// Team statistics: rooms, sessions, participants, recordings, per period.
#[utoipa::path(get, path = "/api/v1/statistics", tag = "statistics",
    description = RANGE_PARAMS,
    responses((status = 200, body = Statistics), (status = 422, body = ErrorBody)))]
pub async fn team_statistics(
    State(state): State<ApiState>,
    team: Team,
    q: QueryPairs,
) -> ApiResult<Json<Statistics>> {
    Ok(Json(compute(&state, range(&team, &q)?, true).await?))
}

/// Room usage statistics.
#[utoipa::path(get, path = "/api/v1/statistics/rooms", tag = "statistics",
    description = RANGE_PARAMS,
    responses((status = 200, body = Statistics), (status = 422, body = ErrorBody)))]
pub async fn rooms_statistics(
    State(state): State<ApiState>,
    team: Team,
    q: QueryPairs,
) -> ApiResult<Json<Statistics>> {
    Ok(Json(compute(&state, range(&team, &q)?, true).await?))
}

/// Participant statistics.
#[utoipa::path(get, path = "/api/v1/statistics/participants", tag = "statistics",
    description = RANGE_PARAMS,
    responses((status = 200, body = Statistics), (status = 422, body = ErrorBody)))]
pub async fn participants_statistics(
    State(state): State<ApiState>,
    team: Team,
    q: QueryPairs,
) -> ApiResult<Json<Statistics>> {
    Ok(Json(compute(&state, range(&team, &q)?, false).await?))
}

/// Session statistics.
#[utoipa::path(get, path = "/api/v1/statistics/sessions", tag = "statistics",
    description = RANGE_PARAMS,
    responses((status = 200, body = Statistics), (status = 422, body = ErrorBody)))]
pub async fn sessions_statistics(
    State(state): State<ApiState>,
    team: Team,
    q: QueryPairs,
) -> ApiResult<Json<Statistics>> {
    Ok(Json(compute(&state, range(&team, &q)?, false).await?))
}

/// Recording statistics.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecordingStatistics {
    pub date_start: Option<String>,
    pub date_end: Option<String>,
    pub recordings: i64,
}

/// Recording statistics (recordings made in the range).
#[utoipa::path(get, path = "/api/v1/statistics/recordings", tag = "statistics",
    description = RANGE_PARAMS,
    responses((status = 200, body = RecordingStatistics), (status = 422, body = ErrorBody)))]
pub async fn recordings_statistics(
    State(state): State<ApiState>,
    team: Team,
    q: QueryPairs,
) -> ApiResult<Json<RecordingStatistics>> {
    let r = range(&team, &q)?;
    Ok(Json(RecordingStatistics {
        recordings: state.db.recording_count(&r.scope).await?,
        date_start: r.scope.from,
        date_end: r.scope.until,
    }))
}

async fn current(
    state: &ApiState,
    team: &Team,
    room: Option<&str>,
) -> ApiResult<CurrentStatistics> {
    Ok(CurrentStatistics {
        live: state.db.live_totals(&team.id, room).await?,
        timestamp: timestamp(Utc::now()),
    })
}

/// What is live now across the team.
#[utoipa::path(get, path = "/api/v1/statistics/current", tag = "statistics",
    responses((status = 200, body = CurrentStatistics)))]
pub async fn current_statistics(
    State(state): State<ApiState>,
    team: Team,
) -> ApiResult<Json<CurrentStatistics>> {
    Ok(Json(current(&state, &team, None).await?))
}

/// What is live now across the team (same as `/statistics/current`).
#[utoipa::path(get, path = "/api/v1/statistics/team/current", tag = "statistics",
    responses((status = 200, body = CurrentStatistics)))]
pub async fn team_current_statistics(
    State(state): State<ApiState>,
    team: Team,
) -> ApiResult<Json<CurrentStatistics>> {
    Ok(Json(current(&state, &team, None).await?))
}

/// Statistics of one room.
#[utoipa::path(get, path = "/api/v1/rooms/{room}/statistics", tag = "statistics",
    description = RANGE_PARAMS,
    params(("room" = String, Path, description = "UUID or friendly_url")),
    responses((status = 200, body = Statistics), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn room_statistics(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
    q: QueryPairs,
) -> ApiResult<Json<Statistics>> {
    let id = room_id(&state, &team, &room).await?;
    let mut r = range(&team, &q)?;
    r.scope.room_id = Some(id);
    Ok(Json(compute(&state, r, false).await?))
}

/// What is live now in one room.
#[utoipa::path(get, path = "/api/v1/rooms/{room}/statistics/current", tag = "statistics",
    params(("room" = String, Path, description = "UUID or friendly_url")),
    responses((status = 200, body = CurrentStatistics), (status = 404, body = ErrorBody)))]
pub async fn room_current_statistics(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
) -> ApiResult<Json<CurrentStatistics>> {
    let id = room_id(&state, &team, &room).await?;
    Ok(Json(current(&state, &team, Some(&id)).await?))
}

/// Statistics of one participant (participant id or external id: every
/// session that person joined).
#[utoipa::path(get, path = "/api/v1/participants/{participant}/statistics", tag = "statistics",
    description = RANGE_PARAMS,
    params(("participant" = String, Path)),
    responses((status = 200, body = Statistics), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn participant_statistics(
    State(state): State<ApiState>,
    team: Team,
    Path(participant): Path<String>,
    q: QueryPairs,
) -> ApiResult<Json<Statistics>> {
    let p = state
        .db
        .participant(&team.id, &participant)
        .await?
        .ok_or_else(|| ApiError::not_found("participant"))?;
    let key = if p.id == participant {
        p.id
    } else {
        p.external_id.unwrap_or(p.id)
    };
    let mut r = range(&team, &q)?;
    r.scope.participant = Some(key);
    Ok(Json(compute(&state, r, false).await?))
}
