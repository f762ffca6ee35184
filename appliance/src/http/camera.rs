//! Camera API routes (the Rotoclear seed): current image, snapshots, status,
//! files under the media directory, local recording, configuration sections.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Multipart, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::{ApiError, ApiResult, AppState, body};
use crate::capture::lock;
use crate::files::{PathError, check_file_name, mime_of, resolve};
use crate::record::RecordError;

pub fn routes(st: &Arc<AppState>) -> Router<Arc<AppState>> {
    // `http` is read-only at run time: the limit is fixed when the routes are built.
    let upload_limit = upload_body_limit(st.config().http.max_upload_bytes);
    Router::new()
        .route("/camera.jpeg", get(image))
        .route("/image", get(image))
        .route("/snapshot", post(snapshot))
        .route("/api/camera/status", get(camera_status))
        .route("/api/info", get(info))
        .route("/api/status", get(info))
        .route("/health", get(health))
        .route("/api/health", get(health))
        .route(
            "/upload",
            post(upload).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/download/{*path}", get(download))
        .route("/files/{*path}", get(download).delete(delete))
        .route("/files", get(list_files))
        .route("/api/files", get(list_api_files))
        .route("/api/recording/start", post(record_start))
        .route("/api/recording/stop", post(record_stop))
        .route("/api/recording/status", get(record_status))
        .route("/api/config", get(config_all))
        .route(
            "/api/config/{section}",
            get(config_get).put(config_put).patch(config_patch),
        )
}

impl From<PathError> for ApiError {
    fn from(e: PathError) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "PERMISSION_DENIED", e.to_string())
    }
}

fn camera_missing(st: &AppState) -> ApiError {
    let s = st.capture.video_state();
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "CAMERA_NOT_CONNECTED",
        "Camera device not available",
    )
    .details(json!(
        s.error
            .unwrap_or_else(|| "no frame from the camera yet".into())
    ))
}

fn quality_of(q: Option<&str>, default: u8) -> Result<u8, ApiError> {
    match q {
        None | Some("") => Ok(default),
        Some(s) => s
            .parse::<u8>()
            .ok()
            .filter(|q| (1..=100).contains(q))
            .ok_or_else(|| ApiError::validation(format!("quality `{s}`: expected 1..100"))),
    }
}

async fn jpeg_of_current(st: &AppState, quality: u8) -> Result<Vec<u8>, ApiError> {
    let frame = st
        .capture
        .wait_frame(Duration::from_secs(3))
        .await
        .ok_or_else(|| camera_missing(st))?;
    tokio::task::spawn_blocking(move || {
        crate::convert::i420_to_jpeg(&frame.data, frame.width, frame.height, quality)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)
}

#[derive(Deserialize)]
struct ImageQuery {
    quality: Option<String>,
}

async fn image(
    State(st): State<Arc<AppState>>,
    q: Query<ImageQuery>,
) -> Result<Response, ApiError> {
    let quality = quality_of(q.quality.as_deref(), 85)?;
    let jpeg = jpeg_of_current(&st, quality).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        jpeg,
    )
        .into_response())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SnapshotReq {
    filename: Option<String>,
    quality: Option<u8>,
    #[serde(default)]
    add_timestamp: bool,
    #[serde(default)]
    overwrite: bool,
}

async fn snapshot(State(st): State<Arc<AppState>>, req: Option<Json<SnapshotReq>>) -> ApiResult {
    let r = req.map(|j| j.0).unwrap_or_default();
    let quality = quality_of(r.quality.map(|q| q.to_string()).as_deref(), 95)?;
    let now = chrono::Utc::now();
    let stamp = now.format("%Y%m%dT%H%M%SZ").to_string();
    let mut name = r
        .filename
        .unwrap_or_else(|| format!("snapshot_{stamp}.jpg"));
    check_file_name(&name)?;
    let lower = name.to_ascii_lowercase();
    if !(lower.ends_with(".jpg") || lower.ends_with(".jpeg")) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_FORMAT",
            "snapshots are JPEG files: the name must end in .jpg or .jpeg",
        ));
    }
    if r.add_timestamp {
        let (stem, ext) = name.rsplit_once('.').unwrap_or((&name, "jpg"));
        name = format!("{stem}_{stamp}.{ext}");
    }
    st.check_storage(0)?;
    let jpeg = jpeg_of_current(&st, quality).await?;
    let root = st.media_dir();
    // The textual checks and a first look for symlinks (clear errors) ...
    resolve(&root, &format!("snapshots/{name}"))?;
    // ... then written through descriptors: a symlink planted after the
    // checks is never followed, and an existing file is never replaced
    // unless asked (no check-then-write race).
    let (name2, size, overwrite) = (name.clone(), jpeg.len(), r.overwrite);
    tokio::task::spawn_blocking(move || {
        crate::files::write_beneath(&root, "snapshots", &name2, &jpeg, overwrite)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| write_error(e, &format!("snapshots/{name}")))?;
    Ok(Json(json!({
        "success": true, "filename": name, "path": format!("snapshots/{name}"),
        "size": size, "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })))
}

/// The answer to a write beneath the media directory that did not happen.
fn write_error(e: crate::files::WriteError, shown: &str) -> ApiError {
    use crate::files::{OpenError, PlaceError, WriteError};
    match e {
        WriteError::Open(OpenError::Path(p)) => ApiError::from(p),
        WriteError::Open(OpenError::Io(e)) => ApiError::internal(e),
        WriteError::Place(PlaceError::Exists) => ApiError::new(
            StatusCode::CONFLICT,
            "FILE_EXISTS",
            format!("{shown} exists"),
        ),
        WriteError::Place(PlaceError::IsDir) => ApiError::new(
            StatusCode::CONFLICT,
            "FILE_EXISTS",
            format!("{shown} is a directory"),
        ),
        WriteError::Place(PlaceError::Symlink) => ApiError::from(PathError::Symlink),
        WriteError::Place(PlaceError::Io(e)) => ApiError::internal(e),
    }
}

fn camera_json(st: &AppState) -> Value {
    let cfg = st.config();
    let info = st.capture.video_info();
    let s = st.capture.video_state();
    json!({
        "id": 0,
        "connected": s.connected,
        "device": info.as_ref().map(|i| i.device.clone()).unwrap_or(cfg.video.source.clone()),
        "resolution": info.as_ref().map(|i| format!("{}x{}", i.width, i.height)),
        "framerate": info.as_ref().map(|i| i.fps),
        "format": info.as_ref().map(|i| i.format.clone()),
        "frames": s.frames,
        "error": s.error,
    })
}

async fn camera_status(State(st): State<Arc<AppState>>) -> ApiResult {
    let c = camera_json(&st);
    let streaming = c["connected"] == json!(true);
    Ok(Json(
        json!({"cameras": [c], "active_camera": 0, "streaming": streaming}),
    ))
}

async fn info(State(st): State<Arc<AppState>>) -> ApiResult {
    let cfg = st.config();
    let f = crate::system::figures(&st.cpu, &cfg.media_dir);
    let c = camera_json(&st);
    let (ip, _) = crate::system::network();
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime": f.uptime,
        "system": {
            "temperature": f.temperature,
            "cpu_usage": f.cpu_percent,
            "memory": {"total": f.memory_total_mb, "available": f.memory_available_mb,
                       "used": f.memory_total_mb.saturating_sub(f.memory_available_mb)},
            "disk": {"total": f.disk_total_mb, "available": f.disk_available_mb,
                     "used": f.disk_total_mb.saturating_sub(f.disk_available_mb)},
        },
        "camera": {"connected": c["connected"], "resolution": c["resolution"],
                   "framerate": c["framerate"], "recording": st.recorder.is_recording()},
        "network": {"ip": ip, "hostname": std::fs::read_to_string("/proc/sys/kernel/hostname")
                        .map(|h| h.trim().to_string()).unwrap_or_default(),
                    "connected": ip.is_some()},
    })))
}

async fn health(State(st): State<Arc<AppState>>) -> Response {
    let (healthy, v) = super::device::health_value(&st).await;
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(v)).into_response()
}

fn name_from(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn rel_of(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .map(|r| r.display().to_string())
        .unwrap_or_default()
}

/// Longest accepted `path` field (a directory under the media directory).
const MAX_PATH_FIELD: usize = 1024;
/// Longest accepted `overwrite` field (`true`, `1`, ...).
const MAX_FLAG_FIELD: usize = 16;
/// Longest accepted field the seed does not know (read and dropped).
const MAX_OTHER_FIELD: usize = 1024;
/// What a whole upload may add to `max_upload_bytes`: boundaries, part
/// headers and the small fields above.
pub const FORM_OVERHEAD: u64 = 64 * 1024;
/// Free space is measured again after this many bytes of an upload.
const FREE_SPACE_RECHECK: u64 = 4 * 1024 * 1024;

/// The body limit of `/upload`: `max_upload_bytes` plus the form's overhead.
/// Applied while the body streams, so it bounds chunked uploads too.
pub fn upload_body_limit(max_upload_bytes: u64) -> usize {
    usize::try_from(max_upload_bytes.saturating_add(FORM_OVERHEAD)).unwrap_or(usize::MAX)
}

fn payload_too_large(message: String) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", message)
}

/// A multipart read error: 413 when the body limit was hit, 400 otherwise.
fn multipart_error(e: axum::extract::multipart::MultipartError, max: u64) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        payload_too_large(format!(
            "the upload is larger than the limit of {max} bytes for the file plus {FORM_OVERHEAD} \
             bytes for the other form fields"
        ))
    } else {
        ApiError::validation(format!("reading the upload: {}", e.body_text()))
    }
}

/// Reads a small form field, refusing it past `limit` bytes (without
/// buffering more than that).
async fn small_field(
    field: &mut axum::extract::multipart::Field<'_>,
    name: &str,
    limit: usize,
    max: u64,
) -> Result<String, ApiError> {
    let mut buf = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, max))? {
        if buf.len() + chunk.len() > limit {
            return Err(payload_too_large(format!(
                "the `{name}` field is limited to {limit} bytes"
            ))
            .details(json!({"field": name, "limit": limit})));
        }
        buf.extend_from_slice(&chunk);
    }
    String::from_utf8(buf)
        .map_err(|_| ApiError::validation(format!("the `{name}` field is not UTF-8 text")))
}

async fn upload(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    mut mp: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult {
    let cfg = st.config();
    let max = cfg.http.max_upload_bytes;
    let floor = cfg.http.min_free_bytes;
    let file_too_large = || {
        payload_too_large(format!("uploads are limited to {max} bytes"))
            .details(json!({"limit": max}))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max.saturating_add(FORM_OVERHEAD)) {
        return Err(file_too_large());
    }
    st.check_storage(declared.unwrap_or(0))?;
    let mp = mp
        .as_mut()
        .map_err(|e| ApiError::validation(format!("expected multipart/form-data: {e}")))?;
    let root = cfg.media_dir.clone();
    tokio::fs::create_dir_all(&root)
        .await
        .map_err(ApiError::internal)?;
    // The file streams into a temporary file in the media root (created new,
    // never through a symlink) and is renamed into place at the end.
    let tmp_name = format!(".upload-{}.part", uuid::Uuid::new_v4().simple());
    let tmp = root.join(&tmp_name);
    let guard = TempFile(tmp.clone());
    // Free space when the upload started; what it writes must leave `floor` free.
    let avail_at_start = crate::system::disk_space(&root).map(|d| d.1);
    let mut dir = String::new();
    let mut overwrite = false;
    let mut file_name: Option<String> = None;
    let mut size: u64 = 0;
    while let Some(mut field) = mp.next_field().await.map_err(|e| multipart_error(e, max))? {
        let field_name = field.name().unwrap_or("").to_string();
        match field_name.as_str() {
            "path" => dir = small_field(&mut field, "path", MAX_PATH_FIELD, max).await?,
            "overwrite" => {
                let v = small_field(&mut field, "overwrite", MAX_FLAG_FIELD, max).await?;
                overwrite = matches!(v.trim(), "true" | "1" | "yes" | "on");
            }
            "file" => {
                if file_name.is_some() {
                    return Err(ApiError::validation("one `file` field per upload"));
                }
                let name = field
                    .file_name()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::validation("the `file` field has no file name"))?;
                if name.len() > 255 {
                    return Err(ApiError::validation(
                        "the file name is longer than 255 bytes",
                    ));
                }
                check_file_name(&name)?;
                file_name = Some(name);
                let out = {
                    use std::os::unix::fs::OpenOptionsExt as _;
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o644)
                        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
                        .open(&tmp)
                        .map_err(ApiError::internal)?
                };
                let mut out = tokio::fs::File::from_std(out);
                let mut next_check = FREE_SPACE_RECHECK;
                while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, max))? {
                    size += chunk.len() as u64;
                    if size > max {
                        return Err(file_too_large());
                    }
                    // Checked while the body streams, so an upload without
                    // Content-Length (chunked) cannot fill the disk either.
                    if let Some(a) = avail_at_start
                        && size.saturating_add(floor) > a
                    {
                        return Err(st.storage_error(a.saturating_sub(size), floor));
                    }
                    if size >= next_check {
                        next_check = size + FREE_SPACE_RECHECK;
                        st.check_storage(chunk.len() as u64)?;
                    }
                    out.write_all(&chunk).await.map_err(ApiError::internal)?;
                }
                out.flush().await.map_err(ApiError::internal)?;
            }
            other => {
                // Not in the seed: read (bounded) and dropped.
                small_field(&mut field, other, MAX_OTHER_FIELD, max).await?;
            }
        }
    }
    let name = file_name.ok_or_else(|| ApiError::validation("a `file` field is required"))?;
    let dir_rel = dir.trim().trim_end_matches('/').to_string();
    // The textual checks and a first look for symlinks (clear errors) ...
    resolve(&root, &dir_rel)?;
    let rel = if dir_rel.is_empty() {
        name.clone()
    } else {
        format!("{dir_rel}/{name}")
    };
    let shown = rel_of(&root, &resolve(&root, &rel)?);
    // ... then the directories are opened (and created) one by one without
    // following any symlink, and the file is renamed into the directory
    // that was opened: a symlink planted after the checks is never followed.
    let (root2, name2, rel2) = (root.clone(), name.clone(), shown.clone());
    tokio::task::spawn_blocking(move || -> Result<(), ApiError> {
        let root_dir = crate::files::open_root(&root2).map_err(ApiError::internal)?;
        let target_dir =
            crate::files::open_dir_beneath(&root_dir, &dir_rel, true).map_err(|e| match e {
                crate::files::OpenError::Path(p) => ApiError::from(p),
                crate::files::OpenError::Io(e) => ApiError::internal(e),
            })?;
        crate::files::place_file(&root_dir, &tmp_name, &target_dir, &name2, overwrite).map_err(
            |e| match e {
                crate::files::PlaceError::Exists => ApiError::new(
                    StatusCode::CONFLICT,
                    "FILE_EXISTS",
                    format!("{rel2} exists (send overwrite=true to replace it)"),
                ),
                crate::files::PlaceError::IsDir => ApiError::new(
                    StatusCode::CONFLICT,
                    "FILE_EXISTS",
                    format!("{rel2} is a directory"),
                ),
                crate::files::PlaceError::Symlink => ApiError::from(PathError::Symlink),
                crate::files::PlaceError::Io(e) => ApiError::internal(e),
            },
        )
    })
    .await
    .map_err(ApiError::internal)??;
    drop(guard);
    Ok(Json(
        json!({"success": true, "filename": name, "path": shown, "size": size}),
    ))
}

/// Removes a temporary upload unless it was moved into place.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn path_arg(p: Result<axum::extract::Path<String>, PathRejection>) -> Result<String, ApiError> {
    p.map(|p| p.0)
        .map_err(|e| ApiError::validation(format!("bad path: {}", e.body_text())))
}

async fn download(
    State(st): State<Arc<AppState>>,
    p: Result<axum::extract::Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let rel = path_arg(p)?;
    let root = st.media_dir();
    let path = resolve(&root, &rel)?;
    let meta = tokio::fs::metadata(&path).await.map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "FILE_NOT_FOUND",
            format!("{rel} does not exist"),
        )
    })?;
    if !meta.is_file() {
        return Err(ApiError::validation(format!(
            "{rel} is a directory: list it with GET /files?path={rel}"
        )));
    }
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(ApiError::internal)?;
    let stream = futures::stream::unfold(file, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(buf), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, mime_of(&path).to_string()),
            (header::CONTENT_LENGTH, meta.len().to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"{}\"",
                    name_from(&path).replace('"', "")
                ),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

#[derive(Deserialize)]
struct DeleteQuery {
    recursive: Option<bool>,
}

async fn delete(
    State(st): State<Arc<AppState>>,
    p: Result<axum::extract::Path<String>, PathRejection>,
    q: Query<DeleteQuery>,
) -> ApiResult {
    let rel = path_arg(p)?;
    let root = st.media_dir();
    let path = resolve(&root, &rel)?;
    if path == root {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "the media directory itself cannot be deleted",
        ));
    }
    let meta = tokio::fs::symlink_metadata(&path).await.map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "FILE_NOT_FOUND",
            format!("{rel} does not exist"),
        )
    })?;
    if meta.is_dir() {
        if q.recursive == Some(true) {
            tokio::fs::remove_dir_all(&path)
                .await
                .map_err(ApiError::internal)?;
        } else {
            tokio::fs::remove_dir(&path).await.map_err(|_| {
                ApiError::new(
                    StatusCode::CONFLICT,
                    "DIRECTORY_NOT_EMPTY",
                    format!("{rel} is not empty: add ?recursive=true"),
                )
            })?;
        }
    } else {
        tokio::fs::remove_file(&path)
            .await
            .map_err(ApiError::internal)?;
    }
    Ok(Json(
        json!({"success": true, "deleted": rel_of(&root, &path)}),
    ))
}

#[derive(Deserialize)]
struct ListQuery {
    path: Option<String>,
    directory: Option<String>,
    recursive: Option<bool>,
    filter: Option<String>,
}

async fn list_files(State(st): State<Arc<AppState>>, q: Query<ListQuery>) -> ApiResult {
    let dir = q.path.clone().or(q.directory.clone()).unwrap_or_default();
    list(&st, &dir, q.recursive.unwrap_or(false), q.filter.as_deref()).await
}

async fn list_api_files(State(st): State<Arc<AppState>>, q: Query<ListQuery>) -> ApiResult {
    let dir = q.directory.clone().or(q.path.clone()).unwrap_or_default();
    list(&st, &dir, q.recursive.unwrap_or(false), q.filter.as_deref()).await
}

async fn list(st: &AppState, rel: &str, recursive: bool, filter: Option<&str>) -> ApiResult {
    let root = st.media_dir();
    let _ = tokio::fs::create_dir_all(&root).await;
    let dir = resolve(&root, rel)?;
    if !tokio::fs::metadata(&dir)
        .await
        .map(|m| m.is_dir())
        .unwrap_or(false)
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "FILE_NOT_FOUND",
            format!("directory `{rel}` does not exist"),
        ));
    }
    let filter = filter.map(|f| f.trim_start_matches('.').to_ascii_lowercase());
    let mut files = Vec::new();
    let (mut total, mut nfiles, mut ndirs) = (0u64, 0u64, 0u64);
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        let mut rd = tokio::fs::read_dir(&d).await.map_err(ApiError::internal)?;
        while let Some(e) = rd.next_entry().await.map_err(ApiError::internal)? {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".upload-") {
                continue;
            }
            let Ok(m) = tokio::fs::symlink_metadata(e.path()).await else {
                continue;
            };
            let modified = m.modified().ok().map(|t| {
                chrono::DateTime::<chrono::Utc>::from(t)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            });
            let shown = e
                .path()
                .strip_prefix(&dir)
                .map(|p| p.display().to_string())
                .unwrap_or(name.clone());
            if m.is_dir() {
                // With an extension filter only matching files are listed.
                if filter.is_none() {
                    ndirs += 1;
                    files.push(json!({"name": shown, "type": "directory", "modified": modified}));
                }
                if recursive {
                    stack.push(e.path());
                }
            } else if m.is_file() {
                let ext = Path::new(&name)
                    .extension()
                    .map(|x| x.to_string_lossy().to_ascii_lowercase());
                if let Some(f) = &filter
                    && ext.as_deref() != Some(f.as_str())
                {
                    continue;
                }
                nfiles += 1;
                total += m.len();
                files.push(json!({"name": shown, "size": m.len(), "modified": modified,
                                  "type": "file", "mime_type": mime_of(&e.path())}));
            }
        }
    }
    files.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(Json(
        json!({"path": rel_of(&root, &dir), "files": files, "total_size": total,
                   "file_count": nfiles, "directory_count": ndirs}),
    ))
}

impl From<RecordError> for ApiError {
    fn from(e: RecordError) -> Self {
        match e {
            RecordError::InProgress => {
                ApiError::new(StatusCode::CONFLICT, "RECORDING_IN_PROGRESS", e.to_string())
            }
            RecordError::NotRecording => {
                ApiError::new(StatusCode::CONFLICT, "NOT_RECORDING", e.to_string())
            }
            RecordError::Format(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_FORMAT", m)
            }
            RecordError::Io(m) => ApiError::internal(m),
            RecordError::Path(p) => ApiError::from(p),
        }
    }
}

#[derive(Deserialize, Default)]
struct RecordReq {
    filename: Option<String>,
    duration: Option<u64>,
}

async fn record_start(State(st): State<Arc<AppState>>, req: Option<Json<RecordReq>>) -> ApiResult {
    let r = req.map(|j| j.0).unwrap_or_default();
    st.check_storage(0)?;
    if st.capture.latest_frame().is_none()
        && st
            .capture
            .wait_frame(Duration::from_secs(3))
            .await
            .is_none()
    {
        return Err(camera_missing(&st));
    }
    let name = r.filename.unwrap_or_else(|| {
        format!(
            "recording_{}.webm",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        )
    });
    let cfg = st.config();
    resolve(&cfg.media_dir, &format!("recordings/{name}"))?;
    let v = st.recorder.start(
        &st.capture,
        &cfg.media_dir,
        &name,
        cfg.video.fps,
        cfg.video.bitrate_kbps,
        r.duration.filter(|d| *d > 0).map(Duration::from_secs),
    )?;
    Ok(Json(v))
}

async fn record_stop(State(st): State<Arc<AppState>>) -> ApiResult {
    let st2 = st.clone();
    let f = tokio::task::spawn_blocking(move || st2.recorder.stop())
        .await
        .map_err(ApiError::internal)??;
    let mut v = serde_json::to_value(f).map_err(ApiError::internal)?;
    v["success"] = json!(true);
    Ok(Json(v))
}

async fn record_status(State(st): State<Arc<AppState>>) -> ApiResult {
    let free = crate::system::disk_space(&st.media_dir()).map(|d| d.1);
    Ok(Json(st.recorder.status(free)))
}

/// Config sections served under `/api/config/{section}` (`camera` is `video`).
/// PUT/PATCH are written to the runtime file (`runtime_config`, only the keys
/// sent); the `--config` file is never written.
fn section_key(s: &str) -> Option<&'static str> {
    Some(match s {
        "camera" | "video" => "video",
        "audio" => "audio",
        "device" => "device",
        "rtc" => "rtc",
        "system" => "system",
        "calendar" => "calendar",
        "http" => "http",
        "onvif" => "onvif",
        _ => return None,
    })
}

async fn config_all(State(st): State<Arc<AppState>>) -> ApiResult {
    Ok(Json(st.config().redacted_json()))
}

async fn config_get(
    State(st): State<Arc<AppState>>,
    p: Result<axum::extract::Path<String>, PathRejection>,
) -> ApiResult {
    let s = path_arg(p)?;
    let key =
        section_key(&s).ok_or_else(|| ApiError::not_found(format!("no config section `{s}`")))?;
    Ok(Json(st.config().redacted_json()[key].clone()))
}

async fn config_put(
    State(st): State<Arc<AppState>>,
    p: Result<axum::extract::Path<String>, PathRejection>,
    req: Result<Json<Value>, JsonRejection>,
) -> ApiResult {
    config_write(st, path_arg(p)?, body(req)?, true).await
}

async fn config_patch(
    State(st): State<Arc<AppState>>,
    p: Result<axum::extract::Path<String>, PathRejection>,
    req: Result<Json<Value>, JsonRejection>,
) -> ApiResult {
    config_write(st, path_arg(p)?, body(req)?, false).await
}

async fn config_write(st: Arc<AppState>, section: String, body: Value, replace: bool) -> ApiResult {
    let key = section_key(&section)
        .ok_or_else(|| ApiError::not_found(format!("no config section `{section}`")))?;
    if key == "http" || key == "onvif" {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            format!(
                "the {key} section (addresses, keys, credentials, limits) can only be changed in the configuration file"
            ),
        ));
    }
    // The seed wraps the section: {"camera": {...}}; a bare object is accepted too.
    let mut patch = body
        .get(&section)
        .or_else(|| body.get(key))
        .cloned()
        .unwrap_or(body);
    if !patch.is_object() {
        return Err(ApiError::validation("expected a JSON object"));
    }
    let current = st.config();
    // Commands the agent runs come from the configuration file only: a client
    // that can change them could run anything on the device. Sending the
    // current value (a GET sent back) is accepted and ignored.
    let current_section = serde_json::to_value(&current).map_err(ApiError::internal)?[key].clone();
    if let Some(p) = patch.as_object_mut() {
        let protected: Vec<String> = p
            .keys()
            .filter(|k| crate::config::file_only(key, k))
            .cloned()
            .collect();
        for k in protected {
            if p.get(&k) != current_section.get(&k) {
                return Err(ApiError::validation(format!(
                    "`{key}.{k}` is a command the device runs: it can only be set in the \
                     configuration file ({}), not through the API",
                    st.config_path.display()
                ))
                .details(json!({"field": k, "section": key,
                                "config_file": st.config_path.display().to_string()})));
            }
            p.remove(&k);
        }
    }
    if key == "video" && st.recorder.is_recording() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "RECORDING_IN_PROGRESS",
            "camera settings cannot change during a recording",
        ));
    }
    let mut all = serde_json::to_value(&current).map_err(ApiError::internal)?;
    if replace {
        // Keys not sent go back to the configuration file's values (or the
        // defaults), as they will after a restart.
        let base = serde_json::to_value(&st.base).map_err(ApiError::internal)?;
        all[key] = base[key].clone();
    }
    if let (Some(target), Some(p)) = (all[key].as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            if !target.contains_key(k) {
                return Err(ApiError::validation(format!("unknown key `{key}.{k}`"))
                    .details(json!({"field": k})));
            }
            target.insert(k.clone(), v.clone());
        }
    }
    let new: crate::config::Config = serde_json::from_value(all)
        .map_err(|e| ApiError::validation(format!("invalid {key} settings: {e}")))?;
    // Re-validate through the same rules as the file.
    let text = toml::to_string(&new).map_err(ApiError::internal)?;
    let new = crate::config::Config::from_parts(&text, "api", Vec::new()).map_err(|e| {
        let code = if e.to_string().contains("video size") {
            "INVALID_RESOLUTION"
        } else {
            "VALIDATION_ERROR"
        };
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, e.to_string())
    })?;
    let restart = key == "video" && (new.video != current.video)
        || key == "audio" && new.audio.source != current.audio.source;
    // Written to the runtime file first: a change lands in the file and in
    // memory, or (when the file cannot be written) in neither.
    let keys: Vec<String> = patch
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    let runtime = current.runtime_config.clone();
    {
        let _file = lock(&st.config_file_lock);
        crate::config::persist_section(&runtime, &new, key, &keys, replace).map_err(|e| {
            tracing::error!(error = %e, "configuration change not saved");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "CONFIG_WRITE_FAILED",
                format!("the change was not applied: {e}"),
            )
            .details(json!({"config_file": runtime.display().to_string()}))
        })?;
        *lock(&st.cfg) = new;
    }
    // Keys an environment variable sets win over the file at the next start.
    let overridden: Vec<String> = keys
        .iter()
        .map(|k| crate::config::env_var_of(key, k))
        .filter(|var| std::env::var_os(var).is_some())
        .collect();
    let mut v = st.config().redacted_json()[key].clone();
    if let Some(o) = v.as_object_mut() {
        o.insert("restart_required".into(), json!(restart));
        o.insert("persisted".into(), json!(true));
        o.insert("config_file".into(), json!(runtime.display().to_string()));
        o.insert("overridden_by_env".into(), json!(overridden));
    }
    Ok(Json(v))
}
