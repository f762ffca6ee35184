//! The camera API's files under the media directory: upload (multipart,
//! streamed with its limits), download, delete and listing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Multipart, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::files::{PathError, check_file_name, mime_of, resolve};
use crate::http::{ApiError, ApiResult, AppState};

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

pub(super) async fn upload(
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

pub(super) fn path_arg(
    p: Result<axum::extract::Path<String>, PathRejection>,
) -> Result<String, ApiError> {
    p.map(|p| p.0)
        .map_err(|e| ApiError::validation(format!("bad path: {}", e.body_text())))
}

pub(super) async fn download(
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
pub(super) struct DeleteQuery {
    recursive: Option<bool>,
}

pub(super) async fn delete(
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
pub(super) struct ListQuery {
    path: Option<String>,
    directory: Option<String>,
    recursive: Option<bool>,
    filter: Option<String>,
}

pub(super) async fn list_files(State(st): State<Arc<AppState>>, q: Query<ListQuery>) -> ApiResult {
    let dir = q.path.clone().or(q.directory.clone()).unwrap_or_default();
    list(&st, &dir, q.recursive.unwrap_or(false), q.filter.as_deref()).await
}

pub(super) async fn list_api_files(
    State(st): State<Arc<AppState>>,
    q: Query<ListQuery>,
) -> ApiResult {
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
