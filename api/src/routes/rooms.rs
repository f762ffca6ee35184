//! Rooms: create, list, read, update, delete, bulk delete by tags, and room tokens.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ApiState;
use crate::auth::Team;
use crate::error::{ApiError, ApiResult, ErrorBody, FieldErrors};
use crate::extract::{JsonObject, List, QueryPairs};
use crate::live_events::LiveEvent;
use crate::room_password;
use crate::routes::defaults::check_roles;
use crate::settings::{self, RoomSettings, Target};
use crate::store::rooms::{RoomError, RoomInput, RoomRecord};
use crate::tokens::{self, RoomClaims};

/// First path segments the server serves itself (and sub-paths of
/// `/api/v1/rooms/` that are not rooms): never usable as a friendly_url.
pub const RESERVED_PATHS: &[&str] = &[
    "api",
    "rtc",
    "whip",
    "whep",
    "ws",
    "health",
    "ready",
    "healthz",
    "metrics",
    "static",
    "assets",
    "web",
    "rooms",
    "room",
    "live",
    "openapi",
    "docs",
    "admin",
    "login",
    "logout",
    "fleet",
    "devices",
    "recordings",
    "download",
    "downloads",
    "join",
    "tags",
    "live",
    "display",
    "favicon",
    "robots",
    "appliance",
    "sessions",
    "webhooks",
    "events",
    "v1",
    "status",
];

impl From<RoomError> for ApiError {
    fn from(e: RoomError) -> Self {
        match e {
            RoomError::NotFound => ApiError::not_found("room"),
            RoomError::FriendlyUrlTaken(_) => ApiError::Conflict(e.to_string()),
            RoomError::LiveSession => ApiError::Conflict(
                "the room has a live session; end the session before deleting the room".into(),
            ),
            RoomError::Store(s) => s.into(),
        }
    }
}

/// A room as the API returns it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RoomView {
    pub id: String,
    pub friendly_url: String,
    pub description: Option<String>,
    /// `<public-url>/<friendly_url>`: where participants join.
    pub room_url: String,
    pub tags: Vec<String>,
    /// Whether a name-only join must present the room password (the
    /// password itself is write-only).
    pub has_password: bool,
    #[serde(flatten)]
    pub settings: RoomSettings,
    pub created_at: String,
    pub updated_at: String,
}

/// The body of a room create or update (every field optional; an update
/// changes only the fields given).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[allow(dead_code)] // documents the body; handlers validate the raw object
pub struct RoomWrite {
    pub friendly_url: Option<String>,
    pub description: Option<String>,
    pub tags: Option<Vec<String>>,
    /// The room password a join without a token must present (4..=128
    /// characters; null or "" removes it). Write-only: stored as an argon2
    /// hash, never returned (see `has_password`).
    #[schema(write_only, min_length = 4, max_length = 128)]
    pub password: Option<String>,
    #[serde(flatten)]
    pub settings: RoomSettings,
}

impl RoomView {
    pub fn new(state: &ApiState, r: RoomRecord) -> ApiResult<RoomView> {
        let settings: RoomSettings =
            serde_json::from_value(Value::Object(r.settings)).map_err(ApiError::internal)?;
        Ok(RoomView {
            room_url: state.config.room_url(&r.friendly_url),
            id: r.id,
            friendly_url: r.friendly_url,
            description: r.description,
            tags: r.tags,
            has_password: r.password_hash.is_some(),
            settings,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// Checks a friendly_url: 1..32 of letters, digits, `-`, `_`; not a reserved
/// path; not shaped like a UUID (it would shadow room ids).
pub fn check_friendly_url(s: &str) -> Result<(), String> {
    if s.is_empty() || s.chars().count() > 32 {
        return Err("must be 1 to 32 characters".into());
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err("must be URL-safe: letters, digits, '-' and '_' only".into());
    }
    if RESERVED_PATHS.iter().any(|r| r.eq_ignore_ascii_case(s)) {
        return Err(format!("'{s}' is reserved by the server"));
    }
    if uuid::Uuid::parse_str(s).is_ok() {
        return Err("must not be a UUID".into());
    }
    Ok(())
}

fn tags_field(value: &Value) -> Result<Vec<String>, String> {
    let items = value
        .as_array()
        .ok_or_else(|| "must be an array of strings".to_string())?;
    if items.len() > 50 {
        return Err("at most 50 tags".into());
    }
    let mut tags = Vec::with_capacity(items.len());
    for item in items {
        let Some(s) = item.as_str() else {
            return Err("must be an array of strings".into());
        };
        let s = s.trim();
        if s.is_empty() || s.chars().count() > 64 {
            return Err("each tag must be 1 to 64 characters".into());
        }
        if !tags.iter().any(|t: &String| t == s) {
            tags.push(s.to_string());
        }
    }
    Ok(tags)
}

/// Validates a create (current = team defaults) or update body into the
/// room's next state.
fn room_input(
    body: &Map<String, Value>,
    current_settings: &Map<String, Value>,
    current: Option<&RoomRecord>,
    team_roles: &[String],
    password_hash: Option<Option<String>>,
) -> ApiResult<RoomInput> {
    let mut errors = FieldErrors::new();
    let mut push = |f: &str, m: String| errors.entry(f.to_string()).or_default().push(m);
    let friendly_url = match body.get("friendly_url") {
        None => None,
        Some(Value::Null) if current.is_none() => None,
        Some(Value::String(s)) => match check_friendly_url(s) {
            Ok(()) => Some(s.clone()),
            Err(m) => {
                push("friendly_url", m);
                None
            }
        },
        Some(_) => {
            push("friendly_url", "must be a string".into());
            None
        }
    };
    let description = match body.get("description") {
        None => current.and_then(|c| c.description.clone()),
        Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= 4096 => Some(s.clone()),
        Some(Value::String(_)) => {
            push("description", "must be at most 4096 characters".into());
            None
        }
        Some(_) => {
            push("description", "must be a string or null".into());
            None
        }
    };
    let tags = match body.get("tags") {
        None => current.map(|c| c.tags.clone()).unwrap_or_default(),
        Some(v) => tags_field(v).unwrap_or_else(|m| {
            push("tags", m);
            Vec::new()
        }),
    };
    let changes = settings::validate(body, Target::Room, current_settings, &mut errors);
    let mut next = settings::complete(current_settings.clone(), Target::Room);
    next.extend(changes);
    check_roles(&next, team_roles, body, true, &mut errors);
    settings::check_e2ee(&next, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::fields(errors));
    }
    Ok(RoomInput {
        friendly_url,
        description,
        settings: next,
        tags,
        password_hash,
    })
}

/// Create a room; every field is optional and defaults to the team's settings.
#[utoipa::path(post, path = "/api/v1/rooms", tag = "rooms", request_body = RoomWrite,
    responses((status = 200, body = RoomView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_room(
    State(state): State<ApiState>,
    team: Team,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<RoomView>> {
    let defaults = state
        .db
        .team_by_id(&team.id)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("team no longer exists".into()))?
        .default_settings;
    let roles = state.db.role_names(&team.id).await?;
    let password = room_password::hashed_change(&body).await?;
    let input = room_input(&body, &defaults, None, &roles, password)?;
    let room = state.db.create_room(&team.id, &input).await?;
    tracing::info!(room_id = %room.id, friendly_url = %room.friendly_url, "room created");
    Ok(Json(RoomView::new(&state, room)?))
}

/// List the team's rooms (paginated; `tag` filters).
#[utoipa::path(get, path = "/api/v1/rooms", tag = "rooms",
    params(("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query), ("order" = Option<String>, Query),
           ("after" = Option<String>, Query), ("tag" = Option<String>, Query)),
    responses((status = 200, body = List<RoomView>), (status = 422, body = ErrorBody)))]
pub async fn list_rooms(
    State(state): State<ApiState>,
    team: Team,
    query: QueryPairs,
) -> ApiResult<Json<List<RoomView>>> {
    let (page, after) = query.page()?;
    if let Some(a) = &after
        && !state.db.room_exists(&team.id, a).await?
    {
        return Err(ApiError::field(
            "after",
            format!("no room '{a}' to page after"),
        ));
    }
    let tags = query.all("tag");
    let (total, rooms) = state
        .db
        .list_rooms(&team.id, &page, after.as_deref(), &tags)
        .await?;
    let data = rooms
        .into_iter()
        .map(|r| RoomView::new(&state, r))
        .collect::<ApiResult<_>>()?;
    Ok(Json(List {
        total_count: total,
        data,
    }))
}

/// Get a room by UUID or friendly_url.
#[utoipa::path(get, path = "/api/v1/rooms/{room}", tag = "rooms",
    params(("room" = String, Path, description = "UUID or friendly_url")),
    responses((status = 200, body = RoomView), (status = 404, body = ErrorBody)))]
pub async fn get_room(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
) -> ApiResult<Json<RoomView>> {
    let record = state
        .db
        .room(&team.id, &room)
        .await?
        .ok_or_else(|| ApiError::not_found("room"))?;
    Ok(Json(RoomView::new(&state, record)?))
}

/// Update a room; only the fields given change.
#[utoipa::path(patch, path = "/api/v1/rooms/{room}", tag = "rooms", request_body = RoomWrite,
    params(("room" = String, Path, description = "UUID or friendly_url")),
    responses((status = 200, body = RoomView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_room(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<RoomView>> {
    // Hashed before the write transaction (argon2 is slow on purpose).
    let password = room_password::hashed_change(&body).await?;
    let record = state
        .db
        .update_room(&team.id, &room, |current, roles| {
            room_input(&body, &current.settings, Some(current), roles, password)
        })
        .await?;
    // A new room-wide layout reaches a live session at once (no session:
    // the stored setting is what its first joiners get).
    if body.contains_key("layout_mode")
        && let Some(mode) = record.settings.get("layout_mode").and_then(Value::as_str)
    {
        state
            .live
            .broadcast(
                &record.id,
                LiveEvent::Layout {
                    mode: mode.to_string(),
                    by: None,
                },
            )
            .await;
    }
    // So does transcription turned on or off (docs/transcripts.md).
    if body.contains_key("transcription_enabled") {
        let on = record
            .settings
            .get("transcription_enabled")
            .and_then(Value::as_bool);
        state
            .live
            .transcription(&record.id, on.unwrap_or(false))
            .await;
    }
    Ok(Json(RoomView::new(&state, record)?))
}

/// `delete_library` of a delete: from the JSON body, else the query.
fn delete_library_flag(body: &Map<String, Value>, query: &QueryPairs) -> ApiResult<bool> {
    match body.get("delete_library") {
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::Null) | None => match query.get("delete_library") {
            None | Some("") | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(_) => Err(ApiError::field("delete_library", "must be a boolean")),
        },
        Some(_) => Err(ApiError::field("delete_library", "must be a boolean")),
    }
}

/// Delete a room (refused with 409 while it has a live session). With
/// `delete_library` (body or query) the room's content libraries go too;
/// otherwise they stay, no longer linked to a room.
#[utoipa::path(delete, path = "/api/v1/rooms/{room}", tag = "rooms",
    params(("room" = String, Path, description = "UUID or friendly_url"),
           ("delete_library" = Option<bool>, Query, description = "also delete the room's libraries")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_room(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
    query: QueryPairs,
    JsonObject(body): JsonObject,
) -> ApiResult<StatusCode> {
    let delete_library = delete_library_flag(&body, &query)?;
    let id = state.db.room(&team.id, &room).await?.map(|r| r.id);
    state.db.delete_room(&team.id, &room).await?;
    // The room's recordings went with it (cascade); so do their files.
    crate::files::sweep_after_delete(&state.db, &state.config.recordings_dir).await;
    if let Some(id) = id {
        crate::libraries::after_room_delete(
            &state.db,
            &state.config.libraries,
            &team.id,
            &[id],
            delete_library,
        )
        .await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Delete the stored resources of a room (its chat, Q&A, polls, quizzes;
/// recordings have their own `DELETE /rooms/{room}/recordings`).
#[utoipa::path(delete, path = "/api/v1/rooms/{room}/resources", tag = "rooms",
    params(("room" = String, Path, description = "UUID or friendly_url")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_room_resources(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
) -> ApiResult<StatusCode> {
    let record = state
        .db
        .room(&team.id, &room)
        .await?
        .ok_or_else(|| ApiError::not_found("room"))?;
    state.db.delete_room_resources(&record.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BulkDeleteItem {
    pub id: String,
    pub friendly_url: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SkippedRoom {
    pub id: String,
    pub friendly_url: String,
    pub reason: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BulkDeleteResult {
    pub deleted: Vec<BulkDeleteItem>,
    pub skipped: Vec<SkippedRoom>,
}

async fn bulk_delete(
    state: &ApiState,
    team: &Team,
    body: &Map<String, Value>,
) -> ApiResult<Response> {
    let tags = match body.get("tags") {
        Some(v) => tags_field(v).map_err(|m| ApiError::field("tags", m))?,
        None => return Err(ApiError::field("tags", "is required")),
    };
    if tags.is_empty() {
        return Err(ApiError::field("tags", "must name at least one tag"));
    }
    let mut errors = FieldErrors::new();
    for flag in ["delete_resources", "delete_history", "delete_library"] {
        if let Some(v) = body.get(flag)
            && !v.is_boolean()
        {
            errors.insert(flag.into(), vec!["must be a boolean".into()]);
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::fields(errors));
    }
    let delete_library = matches!(body.get("delete_library"), Some(Value::Bool(true)));
    let result = state.db.delete_rooms_by_tags(&team.id, &tags).await?;
    crate::files::sweep_after_delete(&state.db, &state.config.recordings_dir).await;
    let deleted: Vec<String> = result.deleted.iter().map(|(id, _)| id.clone()).collect();
    crate::libraries::after_room_delete(
        &state.db,
        &state.config.libraries,
        &team.id,
        &deleted,
        delete_library,
    )
    .await;
    tracing::info!(
        deleted = result.deleted.len(),
        skipped = result.skipped.len(),
        "rooms deleted by tags"
    );
    let body = BulkDeleteResult {
        deleted: result
            .deleted
            .into_iter()
            .map(|(id, friendly_url)| BulkDeleteItem { id, friendly_url })
            .collect(),
        skipped: result
            .skipped
            .into_iter()
            .map(|(id, friendly_url)| SkippedRoom {
                id,
                friendly_url,
                reason: "room has a live session".into(),
            })
            .collect(),
    };
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// Delete every room carrying any of the given tags (rooms with a live session are skipped).
#[utoipa::path(delete, path = "/api/v1/rooms/tags", tag = "rooms",
    responses((status = 202, body = BulkDeleteResult), (status = 422, body = ErrorBody)))]
pub async fn delete_rooms_by_tags(
    State(state): State<ApiState>,
    team: Team,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    bulk_delete(&state, &team, &body).await
}

/// Same as `DELETE /api/v1/rooms/tags` (the form live clients use).
#[utoipa::path(delete, path = "/api/v1/rooms", tag = "rooms",
    responses((status = 202, body = BulkDeleteResult), (status = 422, body = ErrorBody)))]
pub async fn delete_rooms(
    State(state): State<ApiState>,
    team: Team,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    bulk_delete(&state, &team, &body).await
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub token: String,
    /// `<room_url>?token=...`
    pub link: String,
}

/// Generate a room token (HS256, signed with the developer key) and join link.
#[utoipa::path(post, path = "/api/v1/rooms/{room}/token", tag = "tokens", request_body = RoomClaims,
    params(("room" = String, Path, description = "UUID or friendly_url")),
    responses((status = 200, body = TokenResponse), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_token(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<TokenResponse>> {
    let record = state
        .db
        .room(&team.id, &room)
        .await?
        .ok_or_else(|| ApiError::not_found("room"))?;
    let claims = tokens::claims_from_request(&team, &record, &body)?;
    let token = tokens::mint(&claims, &team.developer_key).map_err(ApiError::internal)?;
    let link = format!(
        "{}?token={token}",
        state.config.room_url(&record.friendly_url)
    );
    Ok(Json(TokenResponse { token, link }))
}

#[cfg(test)]
mod openapi_tests {
    /// Room create and update document the write-only `password`.
    #[test]
    fn room_bodies_document_a_write_only_password() {
        let doc = serde_json::to_value(crate::openapi()).unwrap();
        for (path, method) in [("/api/v1/rooms", "post"), ("/api/v1/rooms/{room}", "patch")] {
            let schema = &doc["paths"][path][method]["requestBody"]["content"]["application/json"]
                ["schema"]["$ref"];
            assert_eq!(schema, "#/components/schemas/RoomWrite", "{path}");
        }
        let text = serde_json::to_string(&doc["components"]["schemas"]["RoomWrite"]).unwrap();
        let write = &doc["components"]["schemas"]["RoomWrite"];
        let password = find_property(write, "password").expect(&text);
        assert_eq!(password["writeOnly"], true, "{text}");
        assert_eq!(password["minLength"], 4, "{text}");
        assert!(find_property(write, "friendly_url").is_some(), "{text}");
    }

    fn find_property<'a>(v: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
        if let Some(p) = v.get("properties").and_then(|p| p.get(name)) {
            return Some(p);
        }
        v.get("allOf")?
            .as_array()?
            .iter()
            .find_map(|s| find_property(s, name))
    }
}
