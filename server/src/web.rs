//! The browser client: `web/` embedded at build time, served at
//! `/static/...`, and the room page at `/{friendly_url}` and `/rooms/{id}`.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use convene_api::Db;

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

fn asset(path: &str) -> Option<&'static [u8]> {
    ASSETS.iter().find(|(p, _)| *p == path).map(|(_, b)| *b)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") | Some("mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// `GET /static/{*path}`: a file of `web/` (only files that were embedded:
/// nothing on disk is read, so no path can escape).
pub async fn static_file(Path(path): Path<String>) -> Response {
    match asset(&path) {
        Some(bytes) => {
            let mut r = bytes.into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(&path)),
            );
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            r
        }
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

fn room_page() -> Response {
    match asset("index.html") {
        Some(b) => Html(b).into_response(),
        None => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the browser client was not built into this binary\n",
        )
            .into_response(),
    }
}

fn not_found_page(key: &str) -> Response {
    let safe: String = key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    (
        StatusCode::NOT_FOUND,
        Html(format!(
            "<!doctype html><meta charset=utf-8><title>Room not found</title>\
             <p>There is no room <b>{safe}</b> on this server.</p>"
        )),
    )
        .into_response()
}

/// `GET /{room}` and `GET /rooms/{room}`: the room page, for an existing room.
pub async fn room(State(db): State<Db>, Path(key): Path<String>) -> Response {
    match db.room_by_public_key(&key).await {
        Ok(rooms) if !rooms.is_empty() => room_page(),
        Ok(_) => not_found_page(&key),
        Err(e) => {
            tracing::error!(error = %e, "room page lookup failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
        }
    }
}

/// `GET /`: a short page saying what this is.
pub async fn index() -> Html<&'static str> {
    Html(
        "<!doctype html><meta charset=utf-8><title>Convene</title>\
         <h1>Convene</h1><p>This server hosts video rooms. Open a room link \
         (<code>/&lt;room&gt;</code>) to join. The API is at <code>/api/v1</code>.</p>",
    )
}
