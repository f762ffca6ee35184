//! Sessions, participants and live rooms: who met where, when and for how
//! long, as the signaling layer recorded it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::ApiState;
use crate::auth::Team;
use crate::error::{ApiError, ApiResult, ErrorBody, FieldErrors};
use crate::extract::{List, QueryPairs};
use crate::live::LiveMedia;
use crate::store::activity::{ParticipantFilter, ParticipantRow, SessionFilter, SessionRow};
use crate::store::{parse_timestamp, timestamp};

/// A session of a room.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    pub id: String,
    pub room_id: String,
    pub room_friendly_url: String,
    pub room_description: Option<String>,
    /// RFC 3339.
    pub start_time: String,
    /// RFC 3339; null while live.
    pub end_time: Option<String>,
    pub live: bool,
    /// Seconds from start to end (or to now while live).
    pub session_duration: i64,
    /// Everyone who joined, counting each participation.
    pub participants_total: i64,
    /// Participants in the session right now.
    pub participants_live: i64,
    /// Why it ended: `empty`, `session_length`, `ended_by_api`, `server_restart`...
    pub end_reason: Option<String>,
}

fn seconds_between(start: &str, end: Option<&str>) -> i64 {
    let Ok(s) = parse_timestamp(start) else {
        return 0;
    };
    let e = end
        .and_then(|e| parse_timestamp(e).ok())
        .unwrap_or_else(Utc::now);
    (e - s).num_seconds().max(0)
}

impl From<SessionRow> for SessionView {
    fn from(r: SessionRow) -> SessionView {
        SessionView {
            session_duration: seconds_between(&r.started_at, r.ended_at.as_deref()),
            live: r.ended_at.is_none(),
            id: r.id,
            room_id: r.room_id,
            room_friendly_url: r.friendly_url,
            room_description: r.room_description,
            start_time: r.started_at,
            end_time: r.ended_at,
            participants_total: r.participants_total,
            participants_live: r.participants_live,
            end_reason: r.end_reason,
        }
    }
}

/// One participation: a person in one session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ParticipantView {
    pub id: String,
    pub name: String,
    pub external_id: Option<String>,
    pub role: String,
    pub room_id: String,
    pub room_friendly_url: String,
    pub session_id: String,
    /// RFC 3339.
    pub join_time: String,
    /// RFC 3339; null while in the session.
    pub leave_time: Option<String>,
    pub live: bool,
    /// Seconds in the session (so far).
    pub duration: i64,
    /// `left`, `disconnected`, `removed`, `session_ended`, `server_restart`...
    pub leave_reason: Option<String>,
    /// `browser`, `appliance` or `bot`.
    pub device_type: String,
    /// Browser family derived from the user agent (`Chrome`, `Firefox`, ...).
    pub browser: Option<String>,
    pub user_agent: Option<String>,
    /// The appliance's device id, for appliances.
    pub device_id: Option<String>,
    /// When the participant raised their hand (RFC 3339); null when the
    /// hand is down or the participant has left.
    pub hand_raised_at: Option<String>,
    /// The breakout room the participant was last in (null: only ever in
    /// the main room).
    pub breakout_id: Option<String>,
}

/// The browser family of a user agent string.
pub fn browser_family(ua: &str) -> &'static str {
    if ua.contains("Edg/") {
        "Edge"
    } else if ua.contains("OPR/") {
        "Opera"
    } else if ua.contains("Firefox/") {
        "Firefox"
    } else if ua.contains("Chrome/") || ua.contains("Chromium/") {
        "Chrome"
    } else if ua.contains("Safari/") {
        "Safari"
    } else {
        "Other"
    }
}

impl From<ParticipantRow> for ParticipantView {
    fn from(r: ParticipantRow) -> ParticipantView {
        ParticipantView {
            duration: seconds_between(&r.joined_at, r.left_at.as_deref()),
            browser: r
                .user_agent
                .as_deref()
                .filter(|_| r.client_kind == "browser")
                .map(|ua| browser_family(ua).to_string()),
            id: r.id,
            name: r.name,
            external_id: r.external_id,
            role: r.role,
            room_id: r.room_id,
            room_friendly_url: r.friendly_url,
            session_id: r.session_id,
            join_time: r.joined_at,
            leave_time: r.left_at,
            live: r.live,
            leave_reason: r.leave_reason,
            device_type: r.client_kind,
            user_agent: r.user_agent,
            device_id: r.device_id,
            hand_raised_at: r.hand_raised_at,
            breakout_id: r.breakout_id,
        }
    }
}

/// Parses `date_start` / `date_end`: a date (`2026-01-31`, the whole day
/// included) or an RFC 3339 date-time. Returns (inclusive from, exclusive
/// until) as stored timestamps.
pub fn date_range(q: &QueryPairs, errors: &mut FieldErrors) -> (Option<String>, Option<String>) {
    let mut parse = |key: &str, end: bool| -> Option<String> {
        let v = q.get(key).filter(|v| !v.is_empty())?;
        if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
            let d = if end { d.succ_opt()? } else { d };
            return d
                .and_hms_opt(0, 0, 0)
                .map(|t| timestamp(DateTime::<Utc>::from_naive_utc_and_offset(t, Utc)));
        }
        match DateTime::parse_from_rfc3339(v) {
            Ok(t) => Some(timestamp(t.with_timezone(&Utc))),
            Err(_) => {
                errors.insert(
                    key.to_string(),
                    vec!["must be a date (YYYY-MM-DD) or an RFC 3339 date-time".into()],
                );
                None
            }
        }
    };
    let from = parse("date_start", false);
    let until = parse("date_end", true);
    if let (Some(f), Some(u)) = (&from, &until)
        && f >= u
    {
        errors.insert(
            "date_end".into(),
            vec!["must not be before date_start".into()],
        );
    }
    (from, until)
}

/// Parses a boolean query flag (`true`/`false`/`1`/`0`).
pub fn bool_param(q: &QueryPairs, key: &str, errors: &mut FieldErrors) -> Option<bool> {
    match q.get(key)?.to_ascii_lowercase().as_str() {
        "" => None,
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => {
            errors.insert(key.to_string(), vec!["must be true or false".into()]);
            None
        }
    }
}

pub(crate) async fn room_id(state: &ApiState, team: &Team, key: &str) -> ApiResult<String> {
    Ok(state
        .db
        .room(&team.id, key)
        .await?
        .ok_or_else(|| ApiError::not_found("room"))?
        .id)
}

async fn sessions_page(
    state: &ApiState,
    team: &Team,
    query: &QueryPairs,
    mut filter: SessionFilter,
) -> ApiResult<Json<List<SessionView>>> {
    let (page, _) = query.page()?;
    let mut errors = FieldErrors::new();
    let (from, until) = date_range(query, &mut errors);
    filter.from = from;
    filter.until = until;
    if let Some(live) = bool_param(query, "live", &mut errors) {
        filter.live = Some(live);
    }
    if !errors.is_empty() {
        return Err(ApiError::fields(errors));
    }
    let (total, rows) = state.db.list_sessions(&team.id, &filter, &page).await?;
    Ok(Json(List {
        total_count: total,
        data: rows.into_iter().map(SessionView::from).collect(),
    }))
}

/// List the team's sessions (filters `room_id`, `live`, `date_start`, `date_end`).
#[utoipa::path(get, path = "/api/v1/sessions", tag = "sessions",
    params(("room_id" = Option<String>, Query, description = "UUID or friendly_url"),
           ("live" = Option<bool>, Query), ("date_start" = Option<String>, Query),
           ("date_end" = Option<String>, Query), ("limit" = Option<i64>, Query),
           ("offset" = Option<i64>, Query), ("order" = Option<String>, Query)),
    responses((status = 200, body = inline(List<SessionView>)), (status = 422, body = ErrorBody)))]
pub async fn list_sessions(
    State(state): State<ApiState>,
    team: Team,
    query: QueryPairs,
) -> ApiResult<Json<List<SessionView>>> {
    let mut filter = SessionFilter::default();
    if let Some(r) = query.get("room_id").filter(|r| !r.is_empty()) {
        filter.room_id = Some(room_id(&state, &team, r).await?);
    }
    sessions_page(&state, &team, &query, filter).await
}

/// List the sessions of one room.
#[utoipa::path(get, path = "/api/v1/rooms/{room}/sessions", tag = "sessions",
    params(("room" = String, Path, description = "UUID or friendly_url")),
    responses((status = 200, body = inline(List<SessionView>)), (status = 404, body = ErrorBody)))]
pub async fn room_sessions(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
    query: QueryPairs,
) -> ApiResult<Json<List<SessionView>>> {
    let filter = SessionFilter {
        room_id: Some(room_id(&state, &team, &room).await?),
        ..SessionFilter::default()
    };
    sessions_page(&state, &team, &query, filter).await
}

async fn find_session(state: &ApiState, team: &Team, id: &str) -> ApiResult<SessionRow> {
    state
        .db
        .session(&team.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("session"))
}

/// Get one session.
#[utoipa::path(get, path = "/api/v1/sessions/{session}", tag = "sessions",
    params(("session" = String, Path)),
    responses((status = 200, body = SessionView), (status = 404, body = ErrorBody)))]
pub async fn get_session(
    State(state): State<ApiState>,
    team: Team,
    Path(session): Path<String>,
) -> ApiResult<Json<SessionView>> {
    Ok(Json(find_session(&state, &team, &session).await?.into()))
}

/// List the participants of a session.
#[utoipa::path(get, path = "/api/v1/sessions/{session}/participants", tag = "sessions",
    params(("session" = String, Path)),
    responses((status = 200, body = inline(List<ParticipantView>)), (status = 404, body = ErrorBody)))]
pub async fn session_participants(
    State(state): State<ApiState>,
    team: Team,
    Path(session): Path<String>,
    query: QueryPairs,
) -> ApiResult<Json<List<ParticipantView>>> {
    let s = find_session(&state, &team, &session).await?;
    let filter = ParticipantFilter {
        session_id: Some(s.id),
        ..ParticipantFilter::default()
    };
    participants_page(&state, &team, &query, filter).await
}

/// Statistics of one session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionStatistics {
    pub session_id: String,
    pub room_id: String,
    pub start_time: String,
    pub end_time: Option<String>,
    pub live: bool,
    /// Seconds.
    pub duration: i64,
    pub participants_total: i64,
    /// Distinct people (by external id, else by participation).
    pub participants_unique: i64,
    /// Most participants in the session at the same time.
    pub peak_participants: i64,
    /// Sum of every participant's minutes.
    pub participation_minutes: f64,
    pub average_minutes_per_participant: f64,
    pub media: LiveMedia,
    pub chat_messages: i64,
    pub questions: i64,
    pub polls: i64,
    pub poll_votes: i64,
    /// Per breakout room of the session: how many participants were in it
    /// (last; see `breakout_id` of the participants).
    pub breakouts: Vec<crate::store::breakouts::BreakoutParticipation>,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Statistics of a session: duration, participants, peak concurrency,
/// minutes, media bytes and collaboration counts.
#[utoipa::path(get, path = "/api/v1/sessions/{session}/statistics", tag = "sessions",
    params(("session" = String, Path)),
    responses((status = 200, body = SessionStatistics), (status = 404, body = ErrorBody)))]
pub async fn session_statistics(
    State(state): State<ApiState>,
    team: Team,
    Path(session): Path<String>,
) -> ApiResult<Json<SessionStatistics>> {
    let s = find_session(&state, &team, &session).await?;
    let stats = state
        .db
        .session_stats(&s.id, &timestamp(Utc::now()))
        .await?;
    let breakouts = state.db.breakout_participation(&s.id).await?;
    let live = s.ended_at.is_none();
    // What is stored: all of an ended session's media; of a live one, what
    // a node that handed it over counted (a cluster drain) — the live
    // counters add the rest.
    let stored = LiveMedia {
        packets_in: s.packets_in.max(0) as u64,
        bytes_in: s.bytes_in.max(0) as u64,
        packets_out: s.packets_out.max(0) as u64,
        bytes_out: s.bytes_out.max(0) as u64,
    };
    let media = if live {
        let now = state.live.media(&s.room_id).await.unwrap_or_default();
        LiveMedia {
            packets_in: stored.packets_in + now.packets_in,
            bytes_in: stored.bytes_in + now.bytes_in,
            packets_out: stored.packets_out + now.packets_out,
            bytes_out: stored.bytes_out + now.bytes_out,
        }
    } else {
        stored
    };
    let minutes = stats.participation_seconds / 60.0;
    Ok(Json(SessionStatistics {
        duration: seconds_between(&s.started_at, s.ended_at.as_deref()),
        session_id: s.id,
        room_id: s.room_id,
        start_time: s.started_at,
        end_time: s.ended_at,
        live,
        participants_total: stats.participants_total,
        participants_unique: stats.participants_unique,
        peak_participants: stats.peak_participants,
        participation_minutes: round2(minutes),
        average_minutes_per_participant: if stats.participants_total > 0 {
            round2(minutes / stats.participants_total as f64)
        } else {
            0.0
        },
        media,
        chat_messages: stats.chat_messages,
        questions: stats.questions,
        polls: stats.polls,
        poll_votes: stats.poll_votes,
        breakouts,
    }))
}

/// End a live session: every participant is disconnected (`SESSION_ENDED`).
#[utoipa::path(post, path = "/api/v1/sessions/{session}/end", tag = "sessions",
    params(("session" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn end_session(
    State(state): State<ApiState>,
    team: Team,
    Path(session): Path<String>,
) -> ApiResult<StatusCode> {
    let s = find_session(&state, &team, &session).await?;
    if s.ended_at.is_some() {
        return Err(ApiError::Conflict("the session has already ended".into()));
    }
    if !state.live.end_session(&s.room_id).await {
        // Not running in this process (left open by a crash): close the record.
        state.db.end_session(&s.id, "ended_by_api").await?;
        return Ok(StatusCode::NO_CONTENT);
    }
    // The room ends it asynchronously; wait briefly so that a read right
    // after this call sees it ended.
    for _ in 0..50 {
        match state.db.session(&team.id, &s.id).await? {
            Some(r) if r.ended_at.is_none() => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            _ => break,
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn participants_page(
    state: &ApiState,
    team: &Team,
    query: &QueryPairs,
    mut filter: ParticipantFilter,
) -> ApiResult<Json<List<ParticipantView>>> {
    let (page, _) = query.page()?;
    let mut errors = FieldErrors::new();
    let (from, until) = date_range(query, &mut errors);
    filter.from = from;
    filter.until = until;
    if let Some(live) = bool_param(query, "live", &mut errors) {
        filter.live = Some(live);
    }
    if !errors.is_empty() {
        return Err(ApiError::fields(errors));
    }
    let (total, rows) = state.db.list_participants(&team.id, &filter, &page).await?;
    Ok(Json(List {
        total_count: total,
        data: rows.into_iter().map(ParticipantView::from).collect(),
    }))
}

/// List participants (filters `date_start`, `date_end`, `live`, `room_id`, `session_id`).
#[utoipa::path(get, path = "/api/v1/participants", tag = "participants",
    params(("room_id" = Option<String>, Query), ("session_id" = Option<String>, Query),
           ("live" = Option<bool>, Query), ("date_start" = Option<String>, Query),
           ("date_end" = Option<String>, Query), ("limit" = Option<i64>, Query),
           ("offset" = Option<i64>, Query), ("order" = Option<String>, Query)),
    responses((status = 200, body = inline(List<ParticipantView>)), (status = 422, body = ErrorBody)))]
pub async fn list_participants(
    State(state): State<ApiState>,
    team: Team,
    query: QueryPairs,
) -> ApiResult<Json<List<ParticipantView>>> {
    let mut filter = ParticipantFilter::default();
    if let Some(r) = query.get("room_id").filter(|r| !r.is_empty()) {
        filter.room_id = Some(room_id(&state, &team, r).await?);
    }
    if let Some(s) = query.get("session_id").filter(|s| !s.is_empty()) {
        filter.session_id = Some(find_session(&state, &team, s).await?.id);
    }
    participants_page(&state, &team, &query, filter).await
}

/// List the participants of a room (filters `live`, `session_id`, dates).
#[utoipa::path(get, path = "/api/v1/rooms/{room}/participants", tag = "participants",
    params(("room" = String, Path, description = "UUID or friendly_url")),
    responses((status = 200, body = inline(List<ParticipantView>)), (status = 404, body = ErrorBody)))]
pub async fn room_participants(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
    query: QueryPairs,
) -> ApiResult<Json<List<ParticipantView>>> {
    let mut filter = ParticipantFilter {
        room_id: Some(room_id(&state, &team, &room).await?),
        ..ParticipantFilter::default()
    };
    if let Some(s) = query.get("session_id").filter(|s| !s.is_empty()) {
        filter.session_id = Some(find_session(&state, &team, s).await?.id);
    }
    participants_page(&state, &team, &query, filter).await
}

/// Get a participant (by participant id, or the latest participation of an external id).
#[utoipa::path(get, path = "/api/v1/participants/{participant}", tag = "participants",
    params(("participant" = String, Path)),
    responses((status = 200, body = ParticipantView), (status = 404, body = ErrorBody)))]
pub async fn get_participant(
    State(state): State<ApiState>,
    team: Team,
    Path(participant): Path<String>,
) -> ApiResult<Json<ParticipantView>> {
    Ok(Json(
        state
            .db
            .participant(&team.id, &participant)
            .await?
            .ok_or_else(|| ApiError::not_found("participant"))?
            .into(),
    ))
}

/// List the sessions a participant (id or external id) took part in.
#[utoipa::path(get, path = "/api/v1/participants/{participant}/sessions", tag = "participants",
    params(("participant" = String, Path)),
    responses((status = 200, body = inline(List<SessionView>)), (status = 404, body = ErrorBody)))]
pub async fn participant_sessions(
    State(state): State<ApiState>,
    team: Team,
    Path(participant): Path<String>,
    query: QueryPairs,
) -> ApiResult<Json<List<SessionView>>> {
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
    let filter = SessionFilter {
        participant: Some(key),
        ..SessionFilter::default()
    };
    sessions_page(&state, &team, &query, filter).await
}

async fn hand(
    state: &ApiState,
    team: &Team,
    room: &str,
    participant: &str,
    raised: bool,
) -> ApiResult<StatusCode> {
    let room_id = room_id(state, team, room).await?;
    let p = state
        .db
        .participant(&team.id, participant)
        .await?
        .filter(|p| p.room_id == room_id && p.live)
        .ok_or_else(|| {
            ApiError::NotFound("participant not found in the room's live session".into())
        })?;
    if !state.live.set_hand(&room_id, &p.id, raised).await {
        return Err(ApiError::Conflict("the room has no live session".into()));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Raise a participant's hand in the live session (everyone in the room sees it).
#[utoipa::path(post, path = "/api/v1/rooms/{room}/participants/{participant}/raise-hand",
    tag = "participants",
    params(("room" = String, Path), ("participant" = String, Path, description = "participant id or external id")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn raise_hand(
    State(state): State<ApiState>,
    team: Team,
    Path((room, participant)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    hand(&state, &team, &room, &participant, true).await
}

/// Lower a participant's hand in the live session.
#[utoipa::path(post, path = "/api/v1/rooms/{room}/participants/{participant}/lower-hand",
    tag = "participants",
    params(("room" = String, Path), ("participant" = String, Path, description = "participant id or external id")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn lower_hand(
    State(state): State<ApiState>,
    team: Team,
    Path((room, participant)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    hand(&state, &team, &room, &participant, false).await
}

/// Deletes a session's rows of a later feature's table (whatever exists).
async fn delete_later_rows(
    state: &ApiState,
    team: &Team,
    session: &str,
    table: &str,
) -> ApiResult<StatusCode> {
    let s = find_session(state, team, session).await?;
    state.db.delete_session_rows(table, &s.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete the session's transcripts.
#[utoipa::path(delete, path = "/api/v1/sessions/{session}/transcripts", tag = "sessions",
    params(("session" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_session_transcripts(
    State(state): State<ApiState>,
    team: Team,
    Path(session): Path<String>,
) -> ApiResult<StatusCode> {
    delete_later_rows(&state, &team, &session, "transcripts").await
}

/// Delete the session's AI summaries.
#[utoipa::path(delete, path = "/api/v1/sessions/{session}/summaries", tag = "sessions",
    params(("session" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_session_summaries(
    State(state): State<ApiState>,
    team: Team,
    Path(session): Path<String>,
) -> ApiResult<StatusCode> {
    delete_later_rows(&state, &team, &session, "summaries").await
}

/// Hard-delete everything stored for a session; with `delete_history`
/// also anonymise its participants' personal data.
#[utoipa::path(delete, path = "/api/v1/sessions/{session}/resources", tag = "sessions",
    params(("session" = String, Path)),
    request_body(content = Object, description = "optional: {\"delete_history\": bool}"),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn delete_session_resources(
    State(state): State<ApiState>,
    team: Team,
    Path(session): Path<String>,
    crate::extract::JsonObject(body): crate::extract::JsonObject,
) -> ApiResult<StatusCode> {
    let delete_history = match body.get("delete_history") {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::field("delete_history", "must be a boolean")),
    };
    let s = find_session(&state, &team, &session).await?;
    state
        .db
        .delete_session_resources(&s.id, delete_history)
        .await?;
    crate::files::sweep_after_delete(&state.db, &state.config.recordings_dir).await;
    Ok(StatusCode::NO_CONTENT)
}
