//! Content libraries (Digital Samba's "library folders"): create and list
//! libraries, upload, list, read and delete their files, and signed,
//! expiring links to a file or one of its slides.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::auth::Team;
use crate::error::{ApiError, ApiResult, ErrorBody, FieldErrors};
use crate::extract::{JsonObject, List, QueryPairs};
use crate::libraries::sniff::{Kind, sanitise_name};
use crate::libraries::storage;
use crate::store::libraries::{
    FileRow, InsertFileError, LibraryInput, LibraryRow, PROCESSING, READY,
};
use crate::store::{now, timestamp};
use crate::{ApiState, signed};

/// Deepest nesting of library folders.
pub const MAX_DEPTH: usize = 10;
use crate::libraries::{LINK_PURPOSE, media_link};

/// A library (a folder of files; it may sit inside another).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LibraryView {
    pub id: String,
    pub name: String,
    pub external_id: Option<String>,
    /// The library this one is nested in.
    pub parent_id: Option<String>,
    /// The room this library belongs to (deleted with it on `delete_library`).
    pub room_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<LibraryRow> for LibraryView {
    fn from(l: LibraryRow) -> Self {
        LibraryView {
            id: l.id,
            name: l.name,
            external_id: l.external_id,
            parent_id: l.parent_id,
            room_id: l.room_id,
            created_at: l.created_at,
            updated_at: l.updated_at,
        }
    }
}

/// A file of a library.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LibraryFileView {
    pub id: String,
    pub library_id: String,
    /// The name it was uploaded as (sanitised: no path, no control characters).
    pub name: String,
    /// `pdf` or `image`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Sniffed from the content: `application/pdf`, `image/png`, ...
    pub content_type: String,
    /// Bytes.
    pub size: i64,
    /// `processing` (a PDF being converted to slides), `ready` or `failed`.
    pub status: String,
    /// Slides: pages of a converted PDF, 1 for an image, 0 until ready.
    pub pages: i64,
    pub failure_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<FileRow> for LibraryFileView {
    fn from(f: FileRow) -> Self {
        LibraryFileView {
            kind: Kind::from_content_type(&f.content_type)
                .map(Kind::family)
                .unwrap_or("file"),
            id: f.id,
            library_id: f.library_id,
            name: f.name,
            content_type: f.content_type,
            size: f.size,
            status: f.status,
            pages: f.pages,
            failure_reason: f.failure_reason,
            created_at: f.created_at,
            updated_at: f.updated_at,
        }
    }
}

/// The library request body, for the OpenAPI document.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct LibraryBody {
    /// 1 to 200 characters.
    pub name: String,
    pub external_id: Option<String>,
    /// Nest inside this library.
    pub parent_id: Option<String>,
    /// The room (UUID or friendly_url) the library belongs to.
    pub room_id: Option<String>,
}

fn optional_string(
    body: &Map<String, Value>,
    field: &str,
    max: usize,
    errors: &mut FieldErrors,
) -> Option<String> {
    match body.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) if s.chars().count() <= max => Some(s.trim().to_string()),
        Some(Value::String(_)) => {
            errors.insert(
                field.into(),
                vec![format!("must be at most {max} characters")],
            );
            None
        }
        Some(_) => {
            errors.insert(field.into(), vec!["must be a string".into()]);
            None
        }
    }
}

async fn find_library(state: &ApiState, team: &Team, id: &str) -> ApiResult<LibraryRow> {
    state
        .db
        .library(&team.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("library"))
}

async fn find_file(state: &ApiState, library: &LibraryRow, id: &str) -> ApiResult<FileRow> {
    state
        .db
        .library_file(&library.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("library file"))
}

/// List libraries (folders); `parent_id` lists one library's sub-folders,
/// `room_id` (UUID or friendly_url) a room's libraries.
#[utoipa::path(get, path = "/api/v1/libraries", tag = "libraries",
    params(("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query),
           ("order" = Option<String>, Query), ("after" = Option<String>, Query),
           ("parent_id" = Option<String>, Query), ("room_id" = Option<String>, Query)),
    responses((status = 200, body = inline(List<LibraryView>)), (status = 422, body = ErrorBody)))]
pub async fn list_libraries(
    State(state): State<ApiState>,
    team: Team,
    query: QueryPairs,
) -> ApiResult<Json<List<LibraryView>>> {
    let (page, after) = query.page()?;
    let parent = query.get("parent_id").filter(|s| !s.is_empty());
    let room = match query.get("room_id").filter(|s| !s.is_empty()) {
        None => None,
        // An unknown room has no libraries: an empty list, as other filters.
        Some(key) => Some(
            state
                .db
                .room(&team.id, key)
                .await?
                .map(|r| r.id)
                .unwrap_or_default(),
        ),
    };
    let (total_count, rows) = state
        .db
        .list_libraries(&team.id, parent, room.as_deref(), &page, after.as_deref())
        .await?;
    Ok(Json(List {
        total_count,
        data: rows.into_iter().map(LibraryView::from).collect(),
    }))
}

/// Create a library (folder), optionally inside another and for a room.
#[utoipa::path(post, path = "/api/v1/libraries", tag = "libraries", request_body = LibraryBody,
    responses((status = 201, body = LibraryView), (status = 422, body = ErrorBody)))]
pub async fn create_library(
    State(state): State<ApiState>,
    team: Team,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let mut errors = FieldErrors::new();
    let name = match body.get("name") {
        Some(Value::String(s)) if !s.trim().is_empty() && s.trim().chars().count() <= 200 => {
            s.trim().to_string()
        }
        Some(Value::String(_)) => {
            errors.insert("name".into(), vec!["must be 1 to 200 characters".into()]);
            String::new()
        }
        None | Some(Value::Null) => {
            errors.insert("name".into(), vec!["is required".into()]);
            String::new()
        }
        Some(_) => {
            errors.insert("name".into(), vec!["must be a string".into()]);
            String::new()
        }
    };
    let external_id = optional_string(&body, "external_id", 255, &mut errors);
    let parent_id = optional_string(&body, "parent_id", 64, &mut errors);
    let room_key = optional_string(&body, "room_id", 255, &mut errors);
    if let Some(p) = &parent_id {
        // Walk up: the parent must be the team's and the nesting bounded.
        let mut depth = 1;
        let mut next = Some(p.clone());
        while let Some(id) = next {
            match state.db.library(&team.id, &id).await? {
                None => {
                    errors.insert("parent_id".into(), vec!["no such library".into()]);
                    break;
                }
                Some(l) => next = l.parent_id,
            }
            depth += 1;
            if depth > MAX_DEPTH {
                errors.insert(
                    "parent_id".into(),
                    vec![format!("libraries nest at most {MAX_DEPTH} deep")],
                );
                break;
            }
        }
    }
    let mut room_id = None;
    if let Some(key) = &room_key {
        match state.db.room(&team.id, key).await? {
            Some(r) => room_id = Some(r.id),
            None => {
                errors.insert("room_id".into(), vec!["no such room".into()]);
            }
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::fields(errors));
    }
    let row = state
        .db
        .create_library(
            &team.id,
            LibraryInput {
                parent_id,
                room_id,
                name,
                external_id,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(LibraryView::from(row))).into_response())
}

/// Get a library.
#[utoipa::path(get, path = "/api/v1/libraries/{library}", tag = "libraries",
    params(("library" = String, Path)),
    responses((status = 200, body = LibraryView), (status = 404, body = ErrorBody)))]
pub async fn get_library(
    State(state): State<ApiState>,
    team: Team,
    Path(library): Path<String>,
) -> ApiResult<Json<LibraryView>> {
    Ok(Json(find_library(&state, &team, &library).await?.into()))
}

/// List the files of a library.
#[utoipa::path(get, path = "/api/v1/libraries/{library}/files", tag = "libraries",
    params(("library" = String, Path), ("limit" = Option<i64>, Query),
           ("offset" = Option<i64>, Query), ("order" = Option<String>, Query),
           ("after" = Option<String>, Query)),
    responses((status = 200, body = inline(List<LibraryFileView>)), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn list_files(
    State(state): State<ApiState>,
    team: Team,
    Path(library): Path<String>,
    query: QueryPairs,
) -> ApiResult<Json<List<LibraryFileView>>> {
    let (page, after) = query.page()?;
    let library = find_library(&state, &team, &library).await?;
    let (total_count, rows) = state
        .db
        .list_library_files(&library.id, &page, after.as_deref())
        .await?;
    Ok(Json(List {
        total_count,
        data: rows.into_iter().map(LibraryFileView::from).collect(),
    }))
}

/// Upload a file: `multipart/form-data` (field `file`, optional field
/// `name`) or the raw bytes as the body (`name` query parameter). PDF, PNG,
/// JPEG, GIF or WebP, sniffed from the content. A PDF is `processing` until
/// its pages are slides.
#[utoipa::path(post, path = "/api/v1/libraries/{library}/files", tag = "libraries",
    params(("library" = String, Path), ("name" = Option<String>, Query, description = "the file's name")),
    responses((status = 201, body = LibraryFileView), (status = 404, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn upload_file(
    State(state): State<ApiState>,
    team: Team,
    Path(library): Path<String>,
    query: QueryPairs,
    request: Request,
) -> ApiResult<Response> {
    let library = find_library(&state, &team, &library).await?;
    let config = &state.config.libraries;
    let max_team = i64::try_from(config.max_team_bytes).unwrap_or(i64::MAX);
    let used = state.db.library_bytes_used(&team.id).await?;
    let quota_error = |used: i64| {
        ApiError::PayloadTooLarge(format!(
            "the team's library storage is full: at most {} bytes in total ({used} used)",
            config.max_team_bytes
        ))
    };
    if used >= max_team {
        return Err(quota_error(used));
    }
    let name = query.get("name").map(str::to_string);
    let mut upload = storage::receive(request, config, name).await?;
    let size = i64::try_from(upload.size).unwrap_or(i64::MAX);
    let kind = upload.kind;
    let id = uuid::Uuid::new_v4().to_string();
    let ts = now();
    let row = FileRow {
        id: id.clone(),
        team_id: team.id.clone(),
        library_id: library.id.clone(),
        name: sanitise_name(upload.name.as_deref(), kind),
        content_type: kind.content_type().to_string(),
        size,
        status: if kind == Kind::Pdf { PROCESSING } else { READY }.to_string(),
        pages: if kind == Kind::Pdf { 0 } else { 1 },
        failure_reason: None,
        created_at: ts.clone(),
        updated_at: ts,
    };
    if used.saturating_add(size) > max_team {
        return Err(quota_error(used));
    }
    storage::place(config, &mut upload, &id).await?;
    match state.db.insert_library_file(&row, max_team).await {
        Ok(()) => {}
        Err(e) => {
            storage::remove(config, &id).await;
            return Err(match e {
                InsertFileError::Quota { used } => quota_error(used),
                InsertFileError::LibraryGone => ApiError::not_found("library"),
                InsertFileError::Store(s) => s.into(),
            });
        }
    }
    let mut row = row;
    if kind == Kind::Pdf && !state.library_jobs.try_enqueue(&id) {
        let reason = "the conversion queue is full: upload the file again later".to_string();
        state
            .db
            .finish_library_file(&id, Err(reason.clone()))
            .await?;
        row.status = crate::store::libraries::FAILED.into();
        row.failure_reason = Some(reason);
    }
    tracing::info!(file = %id, library = %library.id, size, kind = kind.ext(), "library file stored");
    Ok((StatusCode::CREATED, Json(LibraryFileView::from(row))).into_response())
}

/// Get a library file (its conversion status and page count).
#[utoipa::path(get, path = "/api/v1/libraries/{library}/files/{file}", tag = "libraries",
    params(("library" = String, Path), ("file" = String, Path)),
    responses((status = 200, body = LibraryFileView), (status = 404, body = ErrorBody)))]
pub async fn get_file(
    State(state): State<ApiState>,
    team: Team,
    Path((library, file)): Path<(String, String)>,
) -> ApiResult<Json<LibraryFileView>> {
    let library = find_library(&state, &team, &library).await?;
    Ok(Json(find_file(&state, &library, &file).await?.into()))
}

/// Delete a library file (its original and slides go with it).
#[utoipa::path(delete, path = "/api/v1/libraries/{library}/files/{file}", tag = "libraries",
    params(("library" = String, Path), ("file" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_file(
    State(state): State<ApiState>,
    team: Team,
    Path((library, file)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let library = find_library(&state, &team, &library).await?;
    if !state.db.delete_library_file(&library.id, &file).await? {
        return Err(ApiError::not_found("library file"));
    }
    // The id is a row's (a UUID we made): never a path from the request.
    storage::remove(&state.config.libraries, &file).await;
    Ok(StatusCode::NO_CONTENT)
}

/// A signed download link.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FileLink {
    pub link: String,
    pub valid_until: String,
}

/// A signed, expiring link to the file (or, with `page`, one slide: a PNG)
/// that needs no further authentication.
#[utoipa::path(get, path = "/api/v1/libraries/{library}/files/{file}/download", tag = "libraries",
    params(("library" = String, Path), ("file" = String, Path),
           ("valid_for_minutes" = Option<i64>, Query, description = "1..10080, default 60"),
           ("page" = Option<i64>, Query, description = "a slide, 1..pages")),
    responses((status = 200, body = FileLink), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn download_link(
    State(state): State<ApiState>,
    team: Team,
    Path((library, file)): Path<(String, String)>,
    query: QueryPairs,
) -> ApiResult<Json<FileLink>> {
    let minutes = signed::link_minutes(&query)?;
    let page = match query.get("page").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            s.parse::<i64>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| ApiError::field("page", "must be a positive integer"))?,
        ),
    };
    let library = find_library(&state, &team, &library).await?;
    let f = find_file(&state, &library, &file).await?;
    if let Some(p) = page {
        if f.status != READY {
            return Err(ApiError::Conflict(format!(
                "the file's slides are not ready (status {})",
                f.status
            )));
        }
        if p > f.pages {
            return Err(ApiError::field(
                "page",
                format!("must be between 1 and {} (the file's pages)", f.pages),
            ));
        }
    }
    let until = signed::expiry(minutes);
    let link = media_link(
        &state.config.public_url,
        &team.developer_key,
        &library.id,
        &f.id,
        page,
        until.timestamp(),
    );
    Ok(Json(FileLink {
        link,
        valid_until: timestamp(until),
    }))
}

/// Serves a signed link (no other authentication), with Range support.
pub async fn serve_media(
    State(state): State<ApiState>,
    Path((library, file)): Path<(String, String)>,
    query: QueryPairs,
    request: Request,
) -> Response {
    match serve_media_inner(&state, &library, &file, &query, request).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn serve_media_inner(
    state: &ApiState,
    library: &str,
    file: &str,
    query: &QueryPairs,
    request: Request,
) -> ApiResult<Response> {
    let denied = signed::denied;
    let expires = signed::query_expires(query)?;
    let page = query.get("page").unwrap_or("");
    let f = state
        .db
        .library_file_by_id(file)
        .await?
        .filter(|f| f.library_id == library)
        .ok_or_else(denied)?;
    let team = state.db.team_by_id(&f.team_id).await?.ok_or_else(denied)?;
    signed::verify(
        &team.developer_key,
        LINK_PURPOSE,
        &[&f.id, page],
        expires,
        query,
    )?;
    let config = &state.config.libraries;
    if page.is_empty() {
        return signed::serve_file(
            &config.original(&f.id),
            &f.content_type,
            &f.name,
            request,
            "library file",
        )
        .await;
    }
    let n: i64 = page.parse().map_err(|_| denied())?;
    if f.content_type != Kind::Pdf.content_type() {
        // An image is its own one slide.
        return signed::serve_file(
            &config.original(&f.id),
            &f.content_type,
            &f.name,
            request,
            "library file",
        )
        .await;
    }
    let stem = f.name.strip_suffix(".pdf").unwrap_or(&f.name);
    signed::serve_file(
        &config.slide(&f.id, n),
        "image/png",
        &format!("{stem}-{n}.png"),
        request,
        "slide",
    )
    .await
}
