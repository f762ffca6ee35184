//! Signed, expiring download links and serving a file behind one (with
//! Range support): shared by recordings and content libraries.
//!
//! A link carries `expires` (unix seconds) and `signature`, the hex
//! HMAC-SHA256 under the team's developer key of a purpose string, the
//! link's parts and the expiry, one per line. Rotating the key revokes every
//! link; a different purpose or part never verifies.

use std::path::Path;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use tower::ServiceExt;

use crate::error::{ApiError, ApiResult};
use crate::extract::QueryPairs;

/// Longest a download link can be valid (7 days), and the default (1 hour).
pub const MAX_LINK_MINUTES: i64 = 7 * 24 * 60;
pub const DEFAULT_LINK_MINUTES: i64 = 60;

/// `valid_for_minutes` of a link request: 1..=7 days, default 60.
pub fn link_minutes(query: &QueryPairs) -> ApiResult<i64> {
    match query.get("valid_for_minutes").filter(|s| !s.is_empty()) {
        None => Ok(DEFAULT_LINK_MINUTES),
        Some(s) => match s.parse::<i64>() {
            Ok(n) if (1..=MAX_LINK_MINUTES).contains(&n) => Ok(n),
            _ => Err(ApiError::field(
                "valid_for_minutes",
                format!("must be an integer between 1 and {MAX_LINK_MINUTES}"),
            )),
        },
    }
}

/// The expiry of a link valid for `minutes` from now.
pub fn expiry(minutes: i64) -> DateTime<Utc> {
    Utc::now() + ChronoDuration::minutes(minutes)
}

/// Hex HMAC-SHA256 of `purpose`, `parts` and `expires` under `key`.
pub fn signature(key: &str, purpose: &str, parts: &[&str], expires: i64) -> String {
    use hmac::{Hmac, Mac};
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()) else {
        return String::new();
    };
    let mut text = String::from(purpose);
    for p in parts {
        text.push('\n');
        text.push_str(p);
    }
    text.push('\n');
    text.push_str(&expires.to_string());
    mac.update(text.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The refusal of every bad link: forged, altered, expired or malformed
/// links are told apart by nobody.
pub fn denied() -> ApiError {
    ApiError::Forbidden("the download link is invalid or has expired".into())
}

/// `expires` of a link's query (403 when missing or not a number).
pub fn query_expires(query: &QueryPairs) -> ApiResult<i64> {
    query
        .get("expires")
        .and_then(|s| s.parse().ok())
        .ok_or_else(denied)
}

/// Checks a link's signature (constant time) and expiry.
pub fn verify(
    key: &str,
    purpose: &str,
    parts: &[&str],
    expires: i64,
    query: &QueryPairs,
) -> ApiResult<()> {
    let given = query.get("signature").ok_or_else(denied)?;
    let expected = signature(key, purpose, parts, expires);
    let ok: bool = subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), given.as_bytes()).into();
    if !ok || Utc::now().timestamp() > expires {
        return Err(denied());
    }
    Ok(())
}

/// `attachment` with an ASCII fallback `filename` and, for other names, the
/// RFC 5987 `filename*` that keeps the name as given.
pub fn attachment(filename: &str) -> Option<HeaderValue> {
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ' ' | '(' | ')') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut v = format!("attachment; filename=\"{ascii}\"");
    if ascii != filename {
        v.push_str("; filename*=UTF-8''");
        for b in filename.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                v.push(char::from(b));
            } else {
                v.push_str(&format!("%{b:02X}"));
            }
        }
    }
    HeaderValue::from_str(&v).ok()
}

/// Serves the file at `path` for `request` (Range: 206 / 416 by
/// tower-http), as an attachment named `filename`, never cached by
/// intermediaries. A missing file is `not_found`.
pub async fn serve_file(
    path: &Path,
    content_type: &str,
    filename: &str,
    request: Request,
    not_found: &str,
) -> ApiResult<Response> {
    let mut response = tower_http::services::ServeFile::new_with_mime(
        path,
        &content_type.parse().map_err(ApiError::internal)?,
    )
    .oneshot(request)
    .await
    .map_err(ApiError::internal)?
    .map(Body::new);
    if response.status() == StatusCode::NOT_FOUND {
        return Err(ApiError::not_found(not_found));
    }
    let headers = response.headers_mut();
    if let Some(v) = attachment(filename) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_bind_every_part() {
        let s = signature("k", "p", &["r", ""], 10);
        assert_ne!(s, signature("k", "p", &["r", "f"], 10));
        assert_ne!(s, signature("k", "p", &["r", ""], 11));
        assert_ne!(s, signature("k2", "p", &["r", ""], 10));
        assert_ne!(s, signature("k", "q", &["r", ""], 10));
        assert_eq!(s, signature("k", "p", &["r", ""], 10));
    }

    #[test]
    fn attachment_keeps_unicode_names() {
        let v = attachment("Präsentation.pdf").unwrap();
        let s = v.to_str().unwrap();
        assert!(s.contains("filename=\"Pr_sentation.pdf\""), "{s}");
        assert!(s.contains("filename*=UTF-8''Pr%C3%A4sentation.pdf"), "{s}");
        let plain = attachment("a.pdf").unwrap();
        assert_eq!(plain.to_str().unwrap(), "attachment; filename=\"a.pdf\"");
    }
}
