//! The browser client: `web/` embedded at build time, served at
//! `/static/...`, and the room page at `/{friendly_url}` and `/rooms/{id}`.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use convene_api::Db;
use convene_api::store::rooms::RoomRecord;
use serde_json::{Map, Value, json};

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

fn asset(path: &str) -> Option<&'static [u8]> {
    ASSETS.iter().find(|(p, _)| *p == path).map(|(_, b)| *b)
}

/// An embedded file of `web/` by its path under `web/`.
pub fn asset_bytes(path: &str) -> Option<&'static [u8]> {
    asset(path)
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

/// The marker in `web/index.html` that is replaced by the room's public facts.
const ROOM_PLACEHOLDER: &str = "<!-- convene-room -->";

/// Settings a page may see: nothing here is secret (no roles' permissions,
/// no team data, no tokens).
const PUBLIC_SETTINGS: &[&str] = &[
    "is_locked",
    "join_screen_enabled",
    "video_on_join_enabled",
    "audio_on_join_enabled",
    "screenshare_enabled",
    "chat_enabled",
    "connection_quality_indicator_enabled",
    "topbar_enabled",
    "toolbar",
    "default_language",
    "language_selection_enabled",
    "layout_mode",
    "logo_url",
    "primary_color",
    "background_color",
    "watermark_enabled",
    "watermark_text",
    "e2ee_enabled",
];

/// The public facts of a room the page needs before joining.
fn room_facts(room: &RoomRecord) -> Value {
    let mut facts = Map::new();
    facts.insert("id".into(), json!(room.id));
    facts.insert("friendly_url".into(), json!(room.friendly_url));
    facts.insert("description".into(), json!(room.description));
    let private = room.settings.get("privacy").and_then(Value::as_str) == Some("private");
    facts.insert("is_private".into(), json!(private));
    // Only whether there is a password: never the hash.
    facts.insert("has_password".into(), json!(room.password_hash.is_some()));
    for key in PUBLIC_SETTINGS {
        if let Some(v) = room.settings.get(*key) {
            facts.insert((*key).into(), v.clone());
        }
    }
    Value::Object(facts)
}

/// `index.html` with the room's facts as a JSON script element. `<` is
/// escaped so no value can close the script element.
fn render_room_page(template: &str, facts: &Value) -> String {
    let json = facts.to_string().replace('<', "\\u003c");
    let tag = format!(r#"<script id="convene-room" type="application/json">{json}</script>"#);
    template.replacen(ROOM_PLACEHOLDER, &tag, 1)
}

fn room_page(room: &RoomRecord) -> Response {
    match asset("index.html") {
        Some(b) => {
            let template = String::from_utf8_lossy(b);
            Html(render_room_page(&template, &room_facts(room))).into_response()
        }
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
        Ok(rooms) => match rooms.first() {
            Some(room) => room_page(room),
            None => not_found_page(&key),
        },
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn text_asset(path: &str) -> &'static str {
        std::str::from_utf8(asset(path).unwrap_or_default()).unwrap_or_default()
    }

    /// A JavaScript string literal at the start of `s` (single or double
    /// quotes, no escapes): its text and the rest after it.
    fn literal(s: &str) -> Option<(String, &str)> {
        let q = s.chars().next().filter(|c| *c == '\'' || *c == '"')?;
        let end = s[1..].find(q)?;
        Some((s[1..=end].to_string(), &s[end + 2..]))
    }

    /// The literal keys of `t('...')` calls in `src`.
    fn t_calls(src: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (i, _) in src.match_indices("t(") {
            let before = src[..i].chars().next_back().unwrap_or(' ');
            if before.is_alphanumeric() || matches!(before, '_' | '.' | '$') {
                continue;
            }
            if let Some((key, _)) = literal(&src[i + 2..]) {
                out.push(key);
            }
        }
        out
    }

    /// The string values of a line such as `const text = { a: 'A', b: 'B' }`.
    fn values(line: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = line;
        while let Some(i) = rest.find(": ") {
            rest = &rest[i + 2..];
            if let Some((v, after)) = literal(rest) {
                out.push(v);
                rest = after;
            }
        }
        out
    }

    /// Every key the client asks `t()` for, as far as the sources show it:
    /// literal calls, the static page (`data-i18n` text, `data-i18n-attrs`
    /// attributes) and the tables whose values reach `t()` indirectly.
    fn client_keys() -> BTreeSet<String> {
        let mut keys = BTreeSet::new();
        for (path, bytes) in ASSETS {
            let Some(src) = path
                .strip_suffix(".js")
                .and(std::str::from_utf8(bytes).ok())
            else {
                continue;
            };
            if path.starts_with("i18n") {
                continue;
            }
            keys.extend(t_calls(src));
            for line in src.lines() {
                let l = line.trim_start();
                let table = l.starts_with("const text = {")
                    || l.starts_with("export const SOURCE_TEXT = {")
                    || (l.contains(": ['")
                        && l.split(':').next().is_some_and(|c| {
                            c.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_')
                        }));
                if table {
                    keys.extend(values(l));
                    if let Some(i) = l.find(": [") {
                        let mut rest = &l[i + 3..];
                        while let Some((v, after)) = literal(rest) {
                            keys.insert(v);
                            rest = after.trim_start_matches([',', ' ']);
                        }
                    }
                }
                if let Some(i) = l.find("what: ") {
                    keys.extend(literal(&l[i + 6..]).map(|(v, _)| v));
                }
            }
        }
        let html = text_asset("index.html");
        for tag in html.split('<').filter(|t| t.contains("data-i18n")) {
            let (attrs, text) = tag.split_once('>').unwrap_or((tag, ""));
            if attrs.split_whitespace().any(|a| a == "data-i18n") && !text.trim().is_empty() {
                keys.insert(text.trim().replace("&amp;", "&"));
            }
            if let Some(i) = attrs.find("data-i18n-attrs=\"") {
                let list = &attrs[i + 17..];
                for name in list[..list.find('"').unwrap_or(0)].split(',') {
                    let pat = format!(" {name}=\"");
                    if let Some(j) = attrs.find(&pat) {
                        let v = &attrs[j + pat.len()..];
                        keys.insert(v[..v.find('"').unwrap_or(0)].replace("&amp;", "&"));
                    }
                }
            }
        }
        keys
    }

    /// The keys of the German table (`'key': '...',` or `key: '...',` lines).
    fn german_keys() -> BTreeSet<String> {
        text_asset("i18n_de.js")
            .lines()
            .map(str::trim_start)
            .filter_map(|l| match literal(l) {
                Some((k, rest)) if rest.starts_with(':') => Some(k),
                Some(_) => None,
                None => l
                    .split_once(':')
                    .map(|(k, _)| k)
                    .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric()))
                    .map(str::to_string),
            })
            .collect()
    }

    #[test]
    fn every_client_string_has_a_german_translation() {
        let keys = client_keys();
        assert!(keys.len() > 150, "the scan found too few keys: {keys:?}");
        for sample in [
            "Join",
            "Leave",
            "Page {n} of {pages}",
            "This room is private",
            "Chat & polls",
        ] {
            assert!(keys.contains(sample), "the scan missed {sample:?}");
        }
        let german = german_keys();
        let missing: Vec<&String> = keys.difference(&german).collect();
        assert!(missing.is_empty(), "no German for: {missing:?}");
    }

    #[test]
    fn room_facts_are_escaped_and_public_only() {
        let mut settings = Map::new();
        settings.insert("privacy".into(), json!("private"));
        settings.insert("join_screen_enabled".into(), json!(false));
        settings.insert("roles".into(), json!(["moderator"]));
        let room = RoomRecord {
            id: "r1".into(),
            team_id: "team-secret".into(),
            friendly_url: "x".into(),
            description: Some("</script><b>hi".into()),
            settings,
            tags: vec![],
            created_at: String::new(),
            updated_at: String::new(),
            password_hash: Some("$argon2id$secret".into()),
        };
        let page = render_room_page("<head><!-- convene-room --></head>", &room_facts(&room));
        assert!(!page.contains("</script><b>"), "{page}");
        assert!(page.contains(r"\u003c/script>"), "{page}");
        assert!(!page.contains("team-secret"));
        assert!(!page.contains("argon2"), "{page}");
        assert!(page.contains(r#""has_password":true"#), "{page}");
        assert!(!page.contains("roles"));
        let start = page.find('{').unwrap();
        let end = page.rfind('}').unwrap();
        let v: Value = serde_json::from_str(&page[start..=end]).unwrap();
        assert_eq!(v["is_private"], true);
        assert_eq!(v["join_screen_enabled"], false);
        assert_eq!(v["description"], "</script><b>hi");
    }
}
