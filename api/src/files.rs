//! File downloads (exports, templates) and uploads (CSV imports) over HTTP.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Largest accepted import file.
pub const MAX_UPLOAD_BYTES: usize = 2 * 1024 * 1024;
/// Room for the multipart envelope around a file of the largest size.
pub const ENVELOPE_BYTES: usize = 64 * 1024;

/// An upload's `Content-Type` (empty when absent) and whether its declared
/// length is over `max_body` bytes (the caller answers 413 before reading).
pub fn upload_head(req: &Request, max_body: u64) -> (String, bool) {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let over = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|len| len > max_body);
    (content_type, over)
}

/// A file answer: `Content-Type` and `Content-Disposition: attachment; filename=...`.
pub fn download(content_type: &'static str, filename: &str, body: impl Into<Body>) -> Response {
    let safe: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut r = (StatusCode::OK, body.into()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

pub const CSV: &str = "text/csv; charset=utf-8";
pub const TXT: &str = "text/plain; charset=utf-8";
pub const JSON: &str = "application/json";

/// An export format asked for with `format=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Txt,
    Json,
}

impl Format {
    /// Parses `format` against the allowed formats (the first is the default).
    pub fn parse(value: Option<&str>, allowed: &[Format]) -> Result<Format, ApiError> {
        let Some(v) = value.filter(|v| !v.is_empty()) else {
            return Ok(allowed[0]);
        };
        let f = match v.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "txt" | "text" => Some(Format::Txt),
            "json" => Some(Format::Json),
            _ => None,
        };
        match f {
            Some(f) if allowed.contains(&f) => Ok(f),
            _ => Err(ApiError::field(
                "format",
                format!(
                    "must be one of {}",
                    allowed
                        .iter()
                        .map(|f| f.ext())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    pub fn ext(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Txt => "txt",
            Format::Json => "json",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => CSV,
            Format::Txt => TXT,
            Format::Json => JSON,
        }
    }
}

fn too_large() -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "the file is too large: imports accept at most {} MB",
        MAX_UPLOAD_BYTES / (1024 * 1024)
    ))
}

/// Reads an uploaded file: the `file` part of a `multipart/form-data` body
/// (or its only file part), or the raw body for `text/csv` / `text/plain`.
/// Larger than [`MAX_UPLOAD_BYTES`] is a 413, sent after the rest of the
/// body was read and dropped (`extract::BodyRest::drain`).
pub async fn read_upload(req: Request) -> Result<Vec<u8>, ApiError> {
    let (req, rest) = crate::extract::keep_rest(req);
    let file = read_upload_body(req).await;
    if file.is_err() {
        rest.drain().await;
    }
    file
}

async fn read_upload_body(req: Request) -> Result<Vec<u8>, ApiError> {
    let (content_type, over) = upload_head(&req, (MAX_UPLOAD_BYTES + ENVELOPE_BYTES) as u64);
    if over {
        return Err(too_large());
    }
    let body = axum::body::to_bytes(req.into_body(), MAX_UPLOAD_BYTES + ENVELOPE_BYTES)
        .await
        .map_err(|_| too_large())?;
    let file = if content_type
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        let boundary = multer::parse_boundary(&content_type)
            .map_err(|_| ApiError::BadRequest("multipart/form-data without a boundary".into()))?;
        multipart_file(body, boundary).await?
    } else {
        body.to_vec()
    };
    if file.len() > MAX_UPLOAD_BYTES {
        return Err(too_large());
    }
    if file.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::field("file", "is required and must not be empty"));
    }
    Ok(file)
}

/// The content of the part named `file` (else the first part with a
/// filename), parsed by `multer` as library uploads are.
async fn multipart_file(body: axum::body::Bytes, boundary: String) -> Result<Vec<u8>, ApiError> {
    let bad = |_| ApiError::BadRequest("malformed multipart/form-data body".into());
    let body = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut form = multer::Multipart::new(body, boundary);
    let mut fallback = None;
    while let Some(field) = form.next_field().await.map_err(bad)? {
        let named_file = field.name() == Some("file");
        if named_file || (fallback.is_none() && field.file_name().is_some()) {
            let content = field.bytes().await.map_err(bad)?.to_vec();
            if named_file {
                return Ok(content);
            }
            fallback = Some(content);
        }
    }
    fallback.ok_or_else(|| {
        ApiError::field(
            "file",
            "is required: send the CSV as the multipart field `file`",
        )
    })
}

/// Removes the files of recordings that no longer exist, after any delete
/// that can take recordings with it (recordings, rooms, resources); a
/// failure is logged, not answered: the rows are already gone.
pub async fn sweep_after_delete(db: &crate::Db, recordings_dir: &std::path::Path) {
    if let Err(e) = sweep_recordings(db, recordings_dir).await {
        tracing::warn!(error = %e, "could not remove deleted recordings' files");
    }
}

/// Removes the directories under `recordings_dir` whose recording no longer
/// exists in the database (after deletes, and at startup). Only names that
/// are UUIDs are considered, so nothing else in the directory is touched.
pub async fn sweep_recordings(
    db: &crate::Db,
    recordings_dir: &std::path::Path,
) -> Result<usize, String> {
    let ids: std::collections::HashSet<String> = db
        .recording_ids()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .collect();
    let mut removed = 0;
    let mut entries = match tokio::fs::read_dir(recordings_dir).await {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e.to_string()),
    };
    while let Some(entry) = entries.next_entry().await.map_err(|e| e.to_string())? {
        let name = entry.file_name().to_string_lossy().into_owned();
        if uuid::Uuid::parse_str(&name).is_err() || ids.contains(&name) {
            continue;
        }
        let is_dir = entry.file_type().await.map(|t| t.is_dir()).unwrap_or(false);
        if is_dir && tokio::fs::remove_dir_all(entry.path()).await.is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_of(body: &'static [u8], boundary: &str) -> Result<Vec<u8>, ApiError> {
        futures_util::FutureExt::now_or_never(multipart_file(
            axum::body::Bytes::from_static(body),
            boundary.to_string(),
        ))
        .expect("the body is in memory")
    }

    #[test]
    fn finds_the_file_part() {
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\nContent-Type: text/csv\r\n\r\na,b\r\nc,d\r\n\r\n--XX--\r\n";
        assert_eq!(file_of(body, "XX").unwrap(), b"a,b\r\nc,d\r\n");
        assert_eq!(
            multer::parse_boundary("multipart/form-data; boundary=\"XX\"").unwrap(),
            "XX"
        );
    }

    #[test]
    fn takes_the_first_named_file_when_no_part_is_called_file() {
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n--XX\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"a.csv\"\r\n\r\na,b\r\n--XX\r\nContent-Disposition: form-data; name=\"other\"; filename=\"b.csv\"\r\n\r\nc,d\r\n--XX--\r\n";
        assert_eq!(file_of(body, "XX").unwrap(), b"a,b");
    }

    #[test]
    fn refuses_a_form_without_a_file_and_a_broken_one() {
        let no_file =
            b"--XX\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n--XX--\r\n";
        assert!(matches!(
            file_of(no_file, "XX"),
            Err(ApiError::Validation { .. })
        ));
        for broken in [
            &b"no boundary anywhere"[..],
            b"--XX\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\na,b",
            b"--XX\r\nno blank line after the headers",
        ] {
            match futures_util::FutureExt::now_or_never(multipart_file(
                axum::body::Bytes::from_static(broken),
                "XX".into(),
            ))
            .unwrap()
            {
                Err(ApiError::BadRequest(m)) => assert!(m.contains("malformed"), "{m}"),
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(broken)),
            }
        }
    }
}
