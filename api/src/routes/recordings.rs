//! Recordings: list, details, signed download links, bookmarks, archive,
//! deletes, and start/stop of a live room's recording (Digital Samba's
//! `/recordings/start|stop` and eyeson's `POST|DELETE /recording`).

use std::path::{Path as FsPath, PathBuf};

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Serialize;

use crate::auth::Team;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{List, QueryPairs};
use crate::live::{RecordingAction, RecordingRefusal};
use crate::store::recordings::{
    BookmarkRow, FileRow, READY, RecordingFilter, RecordingRow, STATUSES,
};
use crate::store::timestamp;
use crate::{ApiState, files, signed};

/// Longest a download link can be valid (7 days), and the default (1 hour).
pub use crate::signed::{DEFAULT_LINK_MINUTES, MAX_LINK_MINUTES};

/// One track file of a recording.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecordingFileView {
    pub id: String,
    pub participant_id: String,
    pub participant_name: Option<String>,
    pub external_id: Option<String>,
    /// `camera` (camera and microphone) or `screen`.
    pub source: String,
    /// `webm`, or `mkv` for H.264.
    pub container: String,
    pub video_codec: Option<String>,
    pub audio_codec: Option<String>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    /// Where the file starts on the recording's timeline.
    pub offset_ms: i64,
    pub duration_ms: i64,
    /// Bytes.
    pub size: i64,
    /// Frames lost to missing packets or a full recorder queue.
    pub dropped_frames: i64,
    /// The file was closed (or repaired after a crash).
    pub complete: bool,
}

/// A participant seen in a recording.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecordingParticipant {
    pub id: String,
    pub name: Option<String>,
    pub external_id: Option<String>,
}

/// The composite MP4 of a recording.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CompositeView {
    pub container: &'static str,
    pub video_codec: &'static str,
    pub audio_codec: &'static str,
    pub size: i64,
    pub duration_ms: i64,
}

/// A recording.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecordingView {
    pub id: String,
    pub name: String,
    pub room_id: String,
    pub friendly_url: Option<String>,
    pub session_id: Option<String>,
    /// `IN_PROGRESS`, `PROCESSING`, `READY` or `FAILED`.
    pub status: String,
    /// Processing progress in percent.
    pub progress: i64,
    pub started_by: Option<String>,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// Seconds.
    pub duration: i64,
    /// Bytes: the composite plus the track files.
    pub size: i64,
    /// `stopped`, `session_ended`, `insufficient_storage`, `server_restart`...
    pub stop_reason: Option<String>,
    /// The server stopped before the files were finished (crash, power
    /// loss); they were repaired up to their last complete cluster.
    pub interrupted: bool,
    pub failure_reason: Option<String>,
    pub archived: bool,
    pub archived_at: Option<String>,
    /// Packets the recorder could not take (queue full, disk slow).
    pub gaps: i64,
    pub participants: Vec<RecordingParticipant>,
    pub files: Vec<RecordingFileView>,
    pub composite: Option<CompositeView>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<FileRow> for RecordingFileView {
    fn from(f: FileRow) -> Self {
        RecordingFileView {
            id: f.id,
            participant_id: f.participant_id,
            participant_name: f.participant_name,
            external_id: f.external_id,
            source: f.source,
            container: f.container,
            video_codec: f.video_codec,
            audio_codec: f.audio_codec,
            width: f.width,
            height: f.height,
            offset_ms: f.offset_ms,
            duration_ms: f.duration_ms,
            size: f.size,
            dropped_frames: f.dropped_frames,
            complete: f.complete,
        }
    }
}

async fn view(state: &ApiState, r: RecordingRow) -> ApiResult<RecordingView> {
    let files = state.db.recording_files(&r.id).await?;
    Ok(view_with(r, files))
}

/// A recording's view from its row and its files (in their order).
fn view_with(r: RecordingRow, files: Vec<FileRow>) -> RecordingView {
    let mut participants: Vec<RecordingParticipant> = Vec::new();
    for f in &files {
        if !participants.iter().any(|p| p.id == f.participant_id) {
            participants.push(RecordingParticipant {
                id: f.participant_id.clone(),
                name: f.participant_name.clone(),
                external_id: f.external_id.clone(),
            });
        }
    }
    let files_size: i64 = files.iter().map(|f| f.size).sum();
    let duration_ms = match (r.composite_duration_ms, &r.stopped_at) {
        (Some(d), _) => d,
        (None, stopped) => {
            let start = crate::store::parse_timestamp(&r.started_at).ok();
            let end = match stopped {
                Some(s) => crate::store::parse_timestamp(s).ok(),
                None => Some(Utc::now()),
            };
            match (start, end) {
                (Some(a), Some(b)) => (b - a).num_milliseconds().max(0),
                _ => 0,
            }
        }
    };
    let composite = match (&r.composite_path, r.status == READY) {
        (Some(_), true) => Some(CompositeView {
            container: "mp4",
            video_codec: "h264",
            audio_codec: "aac",
            size: r.composite_size.unwrap_or(0),
            duration_ms: r.composite_duration_ms.unwrap_or(0),
        }),
        _ => None,
    };
    RecordingView {
        size: files_size + r.composite_size.unwrap_or(0),
        duration: (duration_ms + 500) / 1000,
        id: r.id,
        name: r.name,
        room_id: r.room_id,
        friendly_url: r.friendly_url,
        session_id: r.session_id,
        status: r.status,
        progress: r.progress,
        started_by: r.started_by,
        started_at: r.started_at,
        ended_at: r.stopped_at,
        stop_reason: r.stop_reason,
        interrupted: r.interrupted,
        failure_reason: r.failure_reason,
        archived: r.archived,
        archived_at: r.archived_at,
        gaps: r.gaps,
        participants,
        files: files.into_iter().map(RecordingFileView::from).collect(),
        composite,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

async fn find(state: &ApiState, team: &Team, id: &str) -> ApiResult<RecordingRow> {
    state
        .db
        .recording(&team.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("recording"))
}

async fn list(
    state: &ApiState,
    team: &Team,
    query: &QueryPairs,
    archived: Option<bool>,
) -> ApiResult<Json<List<RecordingView>>> {
    let (page, _) = query.page()?;
    let mut filter = RecordingFilter {
        archived,
        ..RecordingFilter::default()
    };
    if let Some(r) = query.get("room_id").filter(|r| !r.is_empty()) {
        filter.room_id = Some(crate::collab::room(state, team, r).await?.id);
    }
    if let Some(s) = query.get("session_id").filter(|s| !s.is_empty()) {
        filter.session_id = Some(s.to_string());
    }
    if let Some(s) = query.get("status").filter(|s| !s.is_empty()) {
        let upper = s.to_ascii_uppercase();
        if !STATUSES.contains(&upper.as_str()) {
            return Err(ApiError::field(
                "status",
                "must be one of IN_PROGRESS, PROCESSING, READY, FAILED",
            ));
        }
        filter.status = Some(upper);
    }
    let (total, rows) = state.db.list_recordings(&team.id, &filter, &page).await?;
    // The page's files in one query, not one per recording.
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let mut files = state.db.files_of_recordings(&ids).await?;
    let data = rows
        .into_iter()
        .map(|r| {
            let f = files.remove(&r.id).unwrap_or_default();
            view_with(r, f)
        })
        .collect();
    Ok(Json(List {
        total_count: total,
        data,
    }))
}

/// List recordings (filters `room_id`, `session_id`, `status`; pagination).
#[utoipa::path(get, path = "/api/v1/recordings", tag = "recordings",
    params(("room_id" = Option<String>, Query, description = "UUID or friendly_url"),
           ("session_id" = Option<String>, Query),
           ("status" = Option<String>, Query, description = "IN_PROGRESS|PROCESSING|READY|FAILED"),
           ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query),
           ("order" = Option<String>, Query)),
    responses((status = 200, body = inline(List<RecordingView>)), (status = 422, body = ErrorBody)))]
pub async fn list_recordings(
    State(state): State<ApiState>,
    team: Team,
    query: QueryPairs,
) -> ApiResult<Json<List<RecordingView>>> {
    list(&state, &team, &query, Some(false)).await
}

/// List archived recordings.
#[utoipa::path(get, path = "/api/v1/recordings/archived", tag = "recordings",
    params(("room_id" = Option<String>, Query), ("session_id" = Option<String>, Query),
           ("status" = Option<String>, Query), ("limit" = Option<i64>, Query),
           ("offset" = Option<i64>, Query)),
    responses((status = 200, body = inline(List<RecordingView>)), (status = 422, body = ErrorBody)))]
pub async fn list_archived(
    State(state): State<ApiState>,
    team: Team,
    query: QueryPairs,
) -> ApiResult<Json<List<RecordingView>>> {
    list(&state, &team, &query, Some(true)).await
}

/// Get one recording.
#[utoipa::path(get, path = "/api/v1/recordings/{recording}", tag = "recordings",
    params(("recording" = String, Path)),
    responses((status = 200, body = RecordingView), (status = 404, body = ErrorBody)))]
pub async fn get_recording(
    State(state): State<ApiState>,
    team: Team,
    Path(id): Path<String>,
) -> ApiResult<Json<RecordingView>> {
    let r = find(&state, &team, &id).await?;
    Ok(Json(view(&state, r).await?))
}

/// Delete a recording and its files (409 while it is still recording).
#[utoipa::path(delete, path = "/api/v1/recordings/{recording}", tag = "recordings",
    params(("recording" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_recording(
    State(state): State<ApiState>,
    team: Team,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    find(&state, &team, &id).await?;
    let (deleted, skipped) = state.db.delete_recording(&team.id, &id).await?;
    if skipped > 0 && deleted == 0 {
        return Err(ApiError::Conflict(
            "recording is in progress: stop it before deleting it".into(),
        ));
    }
    files::sweep_after_delete(&state.db, &state.config.recordings_dir).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete all recordings of a room (except one still recording).
#[utoipa::path(delete, path = "/api/v1/rooms/{room}/recordings", tag = "recordings",
    params(("room" = String, Path, description = "UUID or friendly_url")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_room_recordings(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
) -> ApiResult<StatusCode> {
    let room_id = crate::collab::room(&state, &team, &room).await?.id;
    state.db.delete_room_recordings(&team.id, &room_id).await?;
    files::sweep_after_delete(&state.db, &state.config.recordings_dir).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete all recordings of a session (except one still recording).
#[utoipa::path(delete, path = "/api/v1/sessions/{session}/recordings", tag = "sessions",
    params(("session" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_session_recordings(
    State(state): State<ApiState>,
    team: Team,
    Path(session): Path<String>,
) -> ApiResult<StatusCode> {
    let s = state
        .db
        .session(&team.id, &session)
        .await?
        .ok_or_else(|| ApiError::not_found("session"))?;
    state.db.delete_session_recordings(&team.id, &s.id).await?;
    files::sweep_after_delete(&state.db, &state.config.recordings_dir).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_archived(
    state: &ApiState,
    team: &Team,
    id: &str,
    archived: bool,
) -> ApiResult<Json<RecordingView>> {
    if !state
        .db
        .set_recording_archived(&team.id, id, archived)
        .await?
    {
        return Err(ApiError::not_found("recording"));
    }
    let r = find(state, team, id).await?;
    Ok(Json(view(state, r).await?))
}

/// Archive a recording (it leaves the default list).
#[utoipa::path(post, path = "/api/v1/recordings/{recording}/archive", tag = "recordings",
    params(("recording" = String, Path)),
    responses((status = 200, body = RecordingView), (status = 404, body = ErrorBody)))]
pub async fn archive_recording(
    State(state): State<ApiState>,
    team: Team,
    Path(id): Path<String>,
) -> ApiResult<Json<RecordingView>> {
    set_archived(&state, &team, &id, true).await
}

/// Unarchive a recording.
#[utoipa::path(post, path = "/api/v1/recordings/{recording}/unarchive", tag = "recordings",
    params(("recording" = String, Path)),
    responses((status = 200, body = RecordingView), (status = 404, body = ErrorBody)))]
pub async fn unarchive_recording(
    State(state): State<ApiState>,
    team: Team,
    Path(id): Path<String>,
) -> ApiResult<Json<RecordingView>> {
    set_archived(&state, &team, &id, false).await
}

/// A bookmark set during a recording.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BookmarkView {
    pub id: String,
    pub name: String,
    /// Position on the recording's timeline, in seconds.
    pub time: f64,
    pub at_ms: i64,
    pub participant_id: Option<String>,
    pub created_at: String,
}

impl From<BookmarkRow> for BookmarkView {
    fn from(b: BookmarkRow) -> Self {
        BookmarkView {
            id: b.id,
            name: b.name,
            time: b.at_ms as f64 / 1000.0,
            at_ms: b.at_ms,
            participant_id: b.participant_id,
            created_at: b.created_at,
        }
    }
}

/// A recording's bookmarks, in time order.
#[utoipa::path(get, path = "/api/v1/recordings/{recording}/bookmarks", tag = "recordings",
    params(("recording" = String, Path)),
    responses((status = 200, body = inline(List<BookmarkView>)), (status = 404, body = ErrorBody)))]
pub async fn list_bookmarks(
    State(state): State<ApiState>,
    team: Team,
    Path(id): Path<String>,
) -> ApiResult<Json<List<BookmarkView>>> {
    let r = find(&state, &team, &id).await?;
    let rows = state.db.bookmarks(&r.id).await?;
    Ok(Json(List {
        total_count: rows.len() as i64,
        data: rows.into_iter().map(BookmarkView::from).collect(),
    }))
}

/// A signed download link.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DownloadLink {
    pub link: String,
    pub valid_until: String,
}

/// A signed, expiring link to the composite MP4 (or, with `file`, one track
/// file) that needs no further authentication.
#[utoipa::path(get, path = "/api/v1/recordings/{recording}/download", tag = "recordings",
    params(("recording" = String, Path),
           ("valid_for_minutes" = Option<i64>, Query, description = "1..10080, default 60"),
           ("file" = Option<String>, Query, description = "a track file id instead of the composite")),
    responses((status = 200, body = DownloadLink), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn download_link(
    State(state): State<ApiState>,
    team: Team,
    Path(id): Path<String>,
    query: QueryPairs,
) -> ApiResult<Json<DownloadLink>> {
    let minutes = signed::link_minutes(&query)?;
    let r = find(&state, &team, &id).await?;
    let file = query.get("file").filter(|s| !s.is_empty());
    match file {
        Some(fid) => {
            let files = state.db.recording_files(&r.id).await?;
            let f = files
                .iter()
                .find(|f| f.id == fid)
                .ok_or_else(|| ApiError::not_found("recording file"))?;
            if !f.complete {
                return Err(ApiError::Conflict(
                    "the file is still being written: try again after the recording stops".into(),
                ));
            }
        }
        None => {
            if r.status != READY || r.composite_path.is_none() {
                return Err(ApiError::Conflict(format!(
                    "recording is not ready (status {}): the composite is available once it is READY",
                    r.status
                )));
            }
        }
    }
    let until = signed::expiry(minutes);
    let expires = until.timestamp();
    let sig = link_signature(&team.developer_key, &r.id, file.unwrap_or(""), expires);
    let mut link = format!(
        "{}/api/v1/recordings/{}/media?expires={expires}&signature={sig}",
        state.config.public_url.trim_end_matches('/'),
        r.id
    );
    if let Some(f) = file {
        link.push_str("&file=");
        link.push_str(f);
    }
    Ok(Json(DownloadLink {
        link,
        valid_until: timestamp(until),
    }))
}

/// HMAC-SHA256 (hex) of the link's recording, file and expiry under the
/// team's developer key: rotating the key revokes every link.
fn link_signature(key: &str, recording: &str, file: &str, expires: i64) -> String {
    signed::signature(key, "recording-link", &[recording, file], expires)
}

/// Serves a signed link (no other authentication): the composite, or the
/// track file named by `file`, with Range support.
pub async fn serve_media(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    query: QueryPairs,
    request: Request,
) -> Response {
    match serve_media_inner(&state, &id, &query, request).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn serve_media_inner(
    state: &ApiState,
    id: &str,
    query: &QueryPairs,
    request: Request,
) -> ApiResult<Response> {
    let denied = signed::denied;
    let expires = signed::query_expires(query)?;
    let file = query.get("file").unwrap_or("");
    let r = state.db.recording_by_id(id).await?.ok_or_else(denied)?;
    let team = state.db.team_by_id(&r.team_id).await?.ok_or_else(denied)?;
    signed::verify(
        &team.developer_key,
        "recording-link",
        &[&r.id, file],
        expires,
        query,
    )?;
    let dir = state.config.recordings_dir.join(&r.id);
    let (rel, content_type, filename) = if file.is_empty() {
        let rel = r
            .composite_path
            .clone()
            .filter(|_| r.status == READY)
            .ok_or_else(|| ApiError::Conflict("recording is not ready".into()))?;
        (rel, "video/mp4", format!("recording-{}.mp4", r.id))
    } else {
        let files = state.db.recording_files(&r.id).await?;
        let f = files
            .into_iter()
            .find(|f| f.id == file)
            .ok_or_else(|| ApiError::not_found("recording file"))?;
        let ct = if f.container == "mkv" {
            "video/x-matroska"
        } else if f.video_codec.is_none() {
            "audio/webm"
        } else {
            "video/webm"
        };
        let name = format!(
            "recording-{}-{}-{}.{}",
            r.id, f.participant_id, f.source, f.container
        );
        (f.path, ct, name)
    };
    let path = safe_join(&dir, &rel).ok_or_else(|| ApiError::not_found("recording file"))?;
    signed::serve_file(&path, content_type, &filename, request, "recording file").await
}

/// `dir/rel` when `rel` is a plain relative path without `..`.
fn safe_join(dir: &FsPath, rel: &str) -> Option<PathBuf> {
    let p = FsPath::new(rel);
    let plain = p
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    (plain && !rel.is_empty()).then(|| dir.join(p))
}

async fn control(
    state: &ApiState,
    team: &Team,
    room: &str,
    action: RecordingAction,
) -> ApiResult<Json<RecordingView>> {
    let r = state
        .db
        .room(&team.id, room)
        .await?
        .ok_or_else(|| ApiError::not_found("room"))?;
    if matches!(action, RecordingAction::Start)
        && let Some(reason) = crate::settings::e2ee_refusal(&r.settings, "recording")
    {
        return Err(ApiError::Conflict(reason));
    }
    let Some(rx) = state.live.recording(&r.id, action).await else {
        return Err(ApiError::Conflict(
            "the room has no live session: recording needs participants in the room".into(),
        ));
    };
    let id = match rx.await {
        Ok(Ok(id)) => id,
        Ok(Err(RecordingRefusal { code, message })) => {
            return Err(match code {
                "INSUFFICIENT_STORAGE" => ApiError::InsufficientStorage(message),
                "FORBIDDEN" => ApiError::Forbidden(message),
                _ => ApiError::Conflict(message),
            });
        }
        Err(_) => {
            return Err(ApiError::Conflict(
                "the room's session ended before the request was handled".into(),
            ));
        }
    };
    let rec = find(state, team, &id).await?;
    Ok(Json(view(state, rec).await?))
}

/// Start recording the room's live session (409 when one is running or no
/// session is live, 507 when the disk is below its floor).
#[utoipa::path(post, path = "/api/v1/rooms/{room}/recordings/start", tag = "recordings",
    params(("room" = String, Path, description = "UUID or friendly_url")),
    responses((status = 200, body = RecordingView), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 507, body = ErrorBody)))]
pub async fn start_recording(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
) -> ApiResult<Json<RecordingView>> {
    control(&state, &team, &room, RecordingAction::Start).await
}

/// Stop the room's running recording (409 when none is running).
#[utoipa::path(post, path = "/api/v1/rooms/{room}/recordings/stop", tag = "recordings",
    params(("room" = String, Path, description = "UUID or friendly_url")),
    responses((status = 200, body = RecordingView), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn stop_recording(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
) -> ApiResult<Json<RecordingView>> {
    control(&state, &team, &room, RecordingAction::Stop).await
}

/// eyeson: start recording (`POST /rooms/{room}/recording`).
#[utoipa::path(post, path = "/api/v1/rooms/{room}/recording", tag = "recordings",
    params(("room" = String, Path, description = "UUID or friendly_url")),
    responses((status = 201, body = RecordingView), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 507, body = ErrorBody)))]
pub async fn eyeson_start(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
) -> ApiResult<Response> {
    let v = control(&state, &team, &room, RecordingAction::Start).await?;
    Ok((StatusCode::CREATED, v).into_response())
}

/// eyeson: stop recording (`DELETE /rooms/{room}/recording`).
#[utoipa::path(delete, path = "/api/v1/rooms/{room}/recording", tag = "recordings",
    params(("room" = String, Path, description = "UUID or friendly_url")),
    responses((status = 200, body = RecordingView), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn eyeson_stop(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
) -> ApiResult<Json<RecordingView>> {
    control(&state, &team, &room, RecordingAction::Stop).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_join_refuses_escapes() {
        let d = FsPath::new("/data/rec");
        assert!(safe_join(d, "a.webm").is_some());
        assert!(safe_join(d, "composite/out.mp4").is_some());
        assert!(safe_join(d, "../x").is_none());
        assert!(safe_join(d, "/etc/passwd").is_none());
        assert!(safe_join(d, "a/../../b").is_none());
        assert!(safe_join(d, "").is_none());
    }

    #[test]
    fn signatures_bind_every_part() {
        let s = link_signature("k", "r", "", 10);
        assert_eq!(s.len(), 64);
        assert_ne!(s, link_signature("k", "r", "f", 10));
        assert_ne!(s, link_signature("k", "r", "", 11));
        assert_ne!(s, link_signature("k2", "r", "", 10));
        assert_eq!(s, link_signature("k", "r", "", 10));
    }
}
