//! Receiving an upload (multipart or raw body, streamed to a temp file with
//! the size limit and the type sniffed from the first bytes) and making it
//! durable (fsync, rename into place, fsync the directories) before its row
//! is committed.

use std::path::{Path, PathBuf};

use axum::extract::Request;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::LibraryConfig;
use super::sniff::{Kind, SNIFF_BYTES, sniff};
use crate::error::{ApiError, ApiResult};

/// Room for the multipart envelope around a file of the largest size.
const ENVELOPE_BYTES: u64 = crate::files::ENVELOPE_BYTES as u64;
/// Most parts of one multipart upload.
const MAX_PARTS: usize = 32;
/// Largest multipart text field (`name`).
const MAX_TEXT_FIELD: usize = 4096;
/// Waits for the next piece of an upload, at most `idle` (a stalled or
/// slow-loris client must not hold a temp file and a task forever).
async fn within_idle<T>(
    idle: std::time::Duration,
    next: impl std::future::Future<Output = T>,
) -> ApiResult<T> {
    tokio::time::timeout(idle, next).await.map_err(|_| {
        ApiError::BadRequest(format!(
            "the upload stalled: nothing was received for {} s",
            idle.as_secs()
        ))
    })
}

/// A temp file removed when dropped, unless it was moved into place.
#[derive(Debug)]
pub struct TempFile {
    path: Option<PathBuf>,
}

impl TempFile {
    fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// An upload received in full and synced to disk, not yet in place.
#[derive(Debug)]
pub struct Upload {
    pub kind: Kind,
    pub size: u64,
    /// The name the client gave (the `name` query or field, else the
    /// multipart filename); not yet sanitised.
    pub name: Option<String>,
    temp: TempFile,
}

fn mb(bytes: u64) -> String {
    let mb = bytes as f64 / (1024.0 * 1024.0);
    if mb >= 1.0 {
        format!("{mb:.0} MB")
    } else {
        format!("{bytes} bytes")
    }
}

pub fn too_large(limit: u64) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "the file is too large: a library file can be at most {} ({limit} bytes)",
        mb(limit)
    ))
}

pub fn unsupported() -> ApiError {
    ApiError::UnsupportedMediaType(
        "unsupported file type: a library accepts PDF, PNG, JPEG, GIF and WebP files \
         (the type is read from the file's content, not its name or Content-Type)"
            .into(),
    )
}

/// The file being written: counts bytes against the limit and sniffs the type.
struct Sink {
    file: tokio::fs::File,
    temp: TempFile,
    size: u64,
    head: Vec<u8>,
    kind: Option<Kind>,
    max: u64,
}

impl Sink {
    async fn create(config: &LibraryConfig) -> ApiResult<Sink> {
        let dir = config.tmp_dir();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(ApiError::internal)?;
        let path = dir.join(format!("{}.part", uuid::Uuid::new_v4()));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(ApiError::internal)?;
        Ok(Sink {
            file,
            temp: TempFile { path: Some(path) },
            size: 0,
            head: Vec::with_capacity(SNIFF_BYTES),
            kind: None,
            max: config.max_file_bytes,
        })
    }

    async fn push(&mut self, chunk: &[u8]) -> ApiResult<()> {
        self.size += chunk.len() as u64;
        if self.size > self.max {
            return Err(too_large(self.max));
        }
        if self.kind.is_none() && self.head.len() < SNIFF_BYTES {
            let take = (SNIFF_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
            if self.head.len() >= SNIFF_BYTES {
                // Refused as soon as the type is known, before the rest is read.
                self.kind = Some(sniff(&self.head).ok_or_else(unsupported)?);
            }
        }
        self.file.write_all(chunk).await.map_err(ApiError::internal)
    }

    async fn finish(mut self, name: Option<String>) -> ApiResult<Upload> {
        if self.size == 0 {
            return Err(ApiError::field("file", "is required and must not be empty"));
        }
        let kind = match self.kind {
            Some(k) => k,
            None => sniff(&self.head).ok_or_else(unsupported)?,
        };
        self.file.flush().await.map_err(ApiError::internal)?;
        self.file.sync_all().await.map_err(ApiError::internal)?;
        Ok(Upload {
            kind,
            size: self.size,
            name,
            temp: self.temp,
        })
    }
}

fn read_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!("could not read the upload: {e}"))
}

/// Receives the body of an upload: `multipart/form-data` (the part named
/// `file`, else the first part with a filename; an optional `name` part),
/// or any other body as the file itself. `name` is the `name` query
/// parameter, which wins over the rest. An upload refused part way (too
/// large, not a type a library takes) has the rest of its body read and
/// dropped before the answer, so that the client sees the answer and not
/// a reset connection (`extract::BodyRest::drain`).
pub async fn receive(
    req: Request,
    config: &LibraryConfig,
    name: Option<String>,
) -> ApiResult<Upload> {
    let (req, rest) = crate::extract::keep_rest(req);
    let received = receive_body(req, config, name).await;
    if received.is_err() {
        rest.drain().await;
    }
    received
}

async fn receive_body(
    req: Request,
    config: &LibraryConfig,
    name: Option<String>,
) -> ApiResult<Upload> {
    let (content_type, over) =
        crate::files::upload_head(&req, config.max_file_bytes.saturating_add(ENVELOPE_BYTES));
    if over {
        return Err(too_large(config.max_file_bytes));
    }
    let body = req.into_body().into_data_stream();
    if !content_type
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        let mut sink = Sink::create(config).await?;
        let mut body = body;
        while let Some(chunk) = within_idle(config.upload_idle, body.next()).await? {
            sink.push(&chunk.map_err(read_error)?).await?;
        }
        return sink.finish(name).await;
    }
    let boundary = multer::parse_boundary(&content_type)
        .map_err(|_| ApiError::BadRequest("multipart/form-data without a boundary".into()))?;
    let mut form = multer::Multipart::new(body, boundary);
    let mut name_field: Option<String> = None;
    let mut upload: Option<(Sink, Option<String>)> = None;
    let mut other_bytes: u64 = 0;
    let mut parts = 0;
    while let Some(mut field) = within_idle(config.upload_idle, form.next_field())
        .await?
        .map_err(read_error)?
    {
        parts += 1;
        if parts > MAX_PARTS {
            return Err(ApiError::BadRequest(format!(
                "too many form parts: at most {MAX_PARTS}"
            )));
        }
        let field_name = field.name().unwrap_or("").to_string();
        let is_file = field_name == "file" || field.file_name().is_some();
        if is_file && upload.is_none() {
            let filename = field.file_name().map(str::to_string);
            let mut sink = Sink::create(config).await?;
            while let Some(chunk) = within_idle(config.upload_idle, field.chunk())
                .await?
                .map_err(read_error)?
            {
                sink.push(&chunk).await?;
            }
            upload = Some((sink, filename));
        } else if is_file {
            return Err(ApiError::BadRequest(
                "one file per request: send each file in its own upload".into(),
            ));
        } else {
            // A text part: `name` is kept, the rest read and dropped, all bounded.
            let mut text: Vec<u8> = Vec::new();
            while let Some(chunk) = within_idle(config.upload_idle, field.chunk())
                .await?
                .map_err(read_error)?
            {
                other_bytes += chunk.len() as u64;
                if other_bytes > ENVELOPE_BYTES {
                    return Err(ApiError::PayloadTooLarge(
                        "the form's fields besides the file are too large".into(),
                    ));
                }
                if field_name == "name" {
                    text.extend_from_slice(&chunk);
                }
            }
            if field_name == "name" {
                if text.len() > MAX_TEXT_FIELD {
                    return Err(ApiError::field("name", "is too long"));
                }
                name_field = Some(String::from_utf8_lossy(&text).into_owned());
            }
        }
    }
    let (sink, filename) = upload.ok_or_else(|| {
        ApiError::field(
            "file",
            "is required: send the file as the multipart field `file`",
        )
    })?;
    sink.finish(name.or(name_field).or(filename)).await
}

async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    tokio::fs::File::open(dir).await?.sync_all().await
}

/// Moves a received upload to `files/<id>/original`, durably: the file was
/// synced when received; the new directory and its parent are synced
/// after the rename. Only then may the row be committed.
pub async fn place(config: &LibraryConfig, upload: &mut Upload, id: &str) -> ApiResult<()> {
    let dir = config.file_dir(id);
    let from = upload
        .temp
        .path()
        .ok_or_else(|| ApiError::internal("upload already placed"))?
        .to_path_buf();
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(ApiError::internal)?;
    tokio::fs::rename(&from, config.original(id))
        .await
        .map_err(ApiError::internal)?;
    upload.temp.path = None;
    sync_dir(&dir).await.map_err(ApiError::internal)?;
    sync_dir(&config.files_dir())
        .await
        .map_err(ApiError::internal)?;
    Ok(())
}

/// Removes one file's directory (original and slides).
pub async fn remove(config: &LibraryConfig, id: &str) {
    if let Err(e) = tokio::fs::remove_dir_all(config.file_dir(id)).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(file = id, error = %e, "could not remove a library file");
    }
}
