//! Camera API routes (the Rotoclear seed): current image, snapshots, status,
//! files under the media directory, local recording, configuration sections.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiResult, AppState, body};
use crate::capture::lock;
use crate::files::{PathError, check_file_name, resolve};
use crate::record::RecordError;

mod files;
pub use files::FORM_OVERHEAD;
use files::{delete, download, list_api_files, list_files, path_arg, upload, upload_body_limit};

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
