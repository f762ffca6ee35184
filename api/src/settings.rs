//! Room settings: every field of the seed's room table, its default, and its validation.
//!
//! Settings travel as JSON objects. [`FIELDS`] is the single table of known
//! fields; [`validate`] checks an incoming object against it (unknown fields are
//! ignored, as real Digital Samba clients send extra ones) and [`RoomSettings`]
//! is the typed view the rest of the server reads.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::FieldErrors;

/// Languages the seed allows for `default_language`.
pub const LANGUAGES: &[&str] = &[
    "ar-SA", "ca-ES", "en", "es-ES", "de-DE", "it-IT", "nb-NO", "nl-NL", "pt-PT", "ro-RO", "zh-CN",
    "zh-TW",
];
pub const PRIVACY: &[&str] = &["public", "private"];
/// The room-wide layouts a moderator or the API can set (`layout_mode`).
pub const LAYOUT_MODES: &[&str] = &["grid", "speaker", "presentation"];
pub const TOOLBAR_POSITIONS: &[&str] = &["bottom", "top", "left", "right"];
pub const MAX_PARTICIPANTS_LIMIT: i64 = 5000;

/// How a field's value is checked.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Bool,
    Int {
        min: i64,
        max: i64,
    },
    Enum(&'static [&'static str]),
    /// A role name; must also be one of the room's roles (checked by the caller).
    RoleName,
    /// A non-empty list of role names that exist in the team (checked by the caller).
    Roles,
    Toolbar,
    NullableColor,
    NullableUrl,
    NullableWatermark,
    NullableDomain,
}

/// Which object is being read or written: a room, or a team's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Room,
    Team,
}

/// Where a field lives: on rooms and team defaults, or on team defaults only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Both,
    DefaultsOnly,
}

#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub scope: Scope,
}

const fn both(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        scope: Scope::Both,
    }
}

/// Every settings field, in response order.
pub const FIELDS: &[Field] = &[
    both("privacy", Kind::Enum(PRIVACY)),
    both("is_locked", Kind::Bool),
    both(
        "max_participants",
        Kind::Int {
            min: 1,
            max: MAX_PARTICIPANTS_LIMIT,
        },
    ),
    both("session_length", Kind::Int { min: 1, max: 1440 }),
    both("default_role", Kind::RoleName),
    both("roles", Kind::Roles),
    both("join_screen_enabled", Kind::Bool),
    both("chat_enabled", Kind::Bool),
    both("qa_enabled", Kind::Bool),
    both("recordings_enabled", Kind::Bool),
    // Convene's: live transcription and captions (docs/transcripts.md).
    both("transcription_enabled", Kind::Bool),
    // Convene's: end-to-end encrypted media (docs/e2ee.md).
    both("e2ee_enabled", Kind::Bool),
    both("screenshare_enabled", Kind::Bool),
    both("raise_hand_enabled", Kind::Bool),
    both("video_on_join_enabled", Kind::Bool),
    both("audio_on_join_enabled", Kind::Bool),
    both("auto_pip_enabled", Kind::Bool),
    both("room_reactions_enabled", Kind::Bool),
    both("invite_participants_advanced_enabled", Kind::Bool),
    both("chat_reactions_enabled", Kind::Bool),
    both("chat_reactions_extended_enabled", Kind::Bool),
    both("virtual_backgrounds_v2_enabled", Kind::Bool),
    both("connection_quality_indicator_enabled", Kind::Bool),
    both("pin_panels_enabled", Kind::Bool),
    both("chat_persistence_enabled", Kind::Bool),
    both("watermark_enabled", Kind::Bool),
    both("watermark_text", Kind::NullableWatermark),
    both("default_language", Kind::Enum(LANGUAGES)),
    both("language_selection_enabled", Kind::Bool),
    both("layout_mode", Kind::Enum(LAYOUT_MODES)),
    both("toolbar", Kind::Toolbar),
    both("topbar_enabled", Kind::Bool),
    both("logo_url", Kind::NullableUrl),
    both("primary_color", Kind::NullableColor),
    both("background_color", Kind::NullableColor),
    Field {
        name: "domain",
        kind: Kind::NullableDomain,
        scope: Scope::DefaultsOnly,
    },
];

/// The typed view of a room's (or a team's default) settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RoomSettings {
    /// `public` (anyone with the URL) or `private` (a token is required).
    pub privacy: String,
    /// When true, joiners wait in a lobby until a moderator admits them.
    pub is_locked: bool,
    pub max_participants: i64,
    /// Maximum session duration in minutes (1..1440).
    pub session_length: i64,
    /// Role of joiners whose token names none; one of `roles`.
    pub default_role: String,
    pub roles: Vec<String>,
    pub join_screen_enabled: bool,
    pub chat_enabled: bool,
    pub qa_enabled: bool,
    pub recordings_enabled: bool,
    /// Live transcription and captions (Convene's; docs/transcripts.md).
    #[serde(default)]
    pub transcription_enabled: bool,
    /// End-to-end encrypted media: browsers encrypt every frame with a key
    /// the server never sees; recording, restreaming and transcription are
    /// refused (Convene's; docs/e2ee.md).
    #[serde(default)]
    pub e2ee_enabled: bool,
    pub screenshare_enabled: bool,
    pub raise_hand_enabled: bool,
    pub video_on_join_enabled: bool,
    pub audio_on_join_enabled: bool,
    pub auto_pip_enabled: bool,
    pub room_reactions_enabled: bool,
    pub invite_participants_advanced_enabled: bool,
    pub chat_reactions_enabled: bool,
    pub chat_reactions_extended_enabled: bool,
    pub virtual_backgrounds_v2_enabled: bool,
    pub connection_quality_indicator_enabled: bool,
    pub pin_panels_enabled: bool,
    pub chat_persistence_enabled: bool,
    pub watermark_enabled: bool,
    pub watermark_text: Option<String>,
    pub default_language: String,
    /// When false, the client shows `default_language` whatever the
    /// browser prefers; when true, the browser's language if the client has it.
    pub language_selection_enabled: bool,
    /// The room-wide layout every client shows: `grid`, `speaker` or
    /// `presentation` (set live by a moderator or `PATCH`).
    pub layout_mode: String,
    pub toolbar: Toolbar,
    pub topbar_enabled: bool,
    pub logo_url: Option<String>,
    pub primary_color: Option<String>,
    pub background_color: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Toolbar {
    /// `bottom`, `top`, `left` or `right`.
    pub position: String,
    pub visible: bool,
}

/// The team defaults: room settings plus the team's `domain`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DefaultSettings {
    #[serde(flatten)]
    pub settings: RoomSettings,
    /// Custom domain for room links (informational).
    pub domain: Option<String>,
}

/// The settings a new team starts with (the seed's documented defaults).
pub fn initial_defaults() -> Map<String, Value> {
    let v = json!({
        "privacy": "public",
        "is_locked": false,
        "max_participants": 100,
        "session_length": 1440,
        "default_role": "attendee",
        "roles": ["moderator", "speaker", "attendee"],
        "join_screen_enabled": true,
        "chat_enabled": true,
        "qa_enabled": false,
        "recordings_enabled": false,
        "transcription_enabled": false,
        "e2ee_enabled": false,
        "screenshare_enabled": true,
        "raise_hand_enabled": true,
        "video_on_join_enabled": true,
        "audio_on_join_enabled": false,
        "auto_pip_enabled": false,
        "room_reactions_enabled": true,
        "invite_participants_advanced_enabled": false,
        "chat_reactions_enabled": true,
        "chat_reactions_extended_enabled": false,
        "virtual_backgrounds_v2_enabled": false,
        "connection_quality_indicator_enabled": false,
        "pin_panels_enabled": false,
        "chat_persistence_enabled": false,
        "watermark_enabled": false,
        "watermark_text": null,
        "default_language": "en",
        "language_selection_enabled": true,
        "layout_mode": "grid",
        "toolbar": {"position": "bottom", "visible": true},
        "topbar_enabled": true,
        "logo_url": null,
        "primary_color": null,
        "background_color": null,
        "domain": null
    });
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Fills in any field a stored object lacks (e.g. one added by a later release).
pub fn complete(mut stored: Map<String, Value>, target: Target) -> Map<String, Value> {
    let defaults = initial_defaults();
    for field in FIELDS {
        if target == Target::Room && field.scope == Scope::DefaultsOnly {
            stored.remove(field.name);
            continue;
        }
        if !stored.contains_key(field.name)
            && let Some(v) = defaults.get(field.name)
        {
            stored.insert(field.name.to_string(), v.clone());
        }
    }
    stored
}

/// Checks the known fields of `input` for `scope`, returning the normalized
/// values of those present. Problems are added to `errors`; unknown fields are
/// ignored. `current` is used to merge partial objects (`toolbar`).
pub fn validate(
    input: &Map<String, Value>,
    target: Target,
    current: &Map<String, Value>,
    errors: &mut FieldErrors,
) -> Map<String, Value> {
    let mut out = Map::new();
    for field in FIELDS {
        if target == Target::Room && field.scope == Scope::DefaultsOnly {
            continue;
        }
        let Some(value) = input.get(field.name) else {
            continue;
        };
        match check(field.kind, value, current.get(field.name)) {
            Ok(v) => {
                out.insert(field.name.to_string(), v);
            }
            Err(msg) => errors.entry(field.name.to_string()).or_default().push(msg),
        }
    }
    out
}

fn check(kind: Kind, value: &Value, current: Option<&Value>) -> Result<Value, String> {
    match kind {
        Kind::Bool => match value {
            Value::Bool(_) => Ok(value.clone()),
            _ => Err("must be a boolean".into()),
        },
        Kind::Int { min, max } => match value.as_i64() {
            Some(n) if value.is_i64() || value.is_u64() => {
                if n < min || n > max {
                    Err(format!("must be between {min} and {max}"))
                } else {
                    Ok(Value::from(n))
                }
            }
            _ => Err("must be an integer".into()),
        },
        Kind::Enum(allowed) => match value.as_str() {
            Some(s) if allowed.contains(&s) => Ok(value.clone()),
            Some(_) => Err(format!("must be one of: {}", allowed.join(", "))),
            None => Err("must be a string".into()),
        },
        Kind::RoleName => match value.as_str() {
            Some(s) if is_role_name(s) => Ok(value.clone()),
            Some(_) => Err("must be a role name".into()),
            None => Err("must be a string".into()),
        },
        Kind::Roles => {
            let Some(items) = value.as_array() else {
                return Err("must be an array of role names".into());
            };
            if items.is_empty() {
                return Err("must contain at least one role".into());
            }
            let mut names: Vec<Value> = Vec::with_capacity(items.len());
            for item in items {
                match item.as_str() {
                    Some(s) if is_role_name(s) => {
                        if !names.iter().any(|n| n.as_str() == Some(s)) {
                            names.push(Value::from(s));
                        }
                    }
                    _ => return Err("must be an array of role names".into()),
                }
            }
            Ok(Value::Array(names))
        }
        Kind::Toolbar => {
            let Some(obj) = value.as_object() else {
                return Err("must be an object with `position` and `visible`".into());
            };
            let mut merged = current
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_else(|| {
                    let mut m = Map::new();
                    m.insert("position".into(), Value::from("bottom"));
                    m.insert("visible".into(), Value::from(true));
                    m
                });
            if let Some(p) = obj.get("position") {
                match p.as_str() {
                    Some(s) if TOOLBAR_POSITIONS.contains(&s) => {
                        merged.insert("position".into(), p.clone());
                    }
                    _ => {
                        return Err(format!(
                            "position must be one of: {}",
                            TOOLBAR_POSITIONS.join(", ")
                        ));
                    }
                }
            }
            if let Some(v) = obj.get("visible") {
                if !v.is_boolean() {
                    return Err("visible must be a boolean".into());
                }
                merged.insert("visible".into(), v.clone());
            }
            Ok(Value::Object(merged))
        }
        Kind::NullableColor => nullable_string(value, |s| {
            let hex = s.strip_prefix('#').unwrap_or(s);
            if matches!(hex.len(), 3 | 6 | 8) && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(Value::from(format!("#{hex}")))
            } else {
                Err("must be a hex colour such as #1a2b3c".into())
            }
        }),
        Kind::NullableUrl => nullable_string(value, |s| {
            let ok = (s.starts_with("https://") || s.starts_with("http://"))
                && s.len() <= 2048
                && s.len() > "https://".len()
                && !s.chars().any(|c| c.is_whitespace() || c.is_control());
            if ok {
                Ok(Value::from(s))
            } else {
                Err("must be an http(s) URL of at most 2048 characters".into())
            }
        }),
        Kind::NullableWatermark => nullable_string(value, |s| {
            let n = s.chars().count();
            if !(3..=50).contains(&n) {
                return Err("must be between 3 and 50 characters".into());
            }
            if s.chars().all(is_watermark_char) {
                Ok(Value::from(s))
            } else {
                Err("may contain only Latin letters, numbers, spaces and basic punctuation".into())
            }
        }),
        Kind::NullableDomain => nullable_string(value, |s| {
            let ok = !s.is_empty()
                && s.len() <= 253
                && s.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if ok {
                Ok(Value::from(s.to_ascii_lowercase()))
            } else {
                Err("must be a domain name such as meet.example.com".into())
            }
        }),
    }
}

fn nullable_string(
    value: &Value,
    f: impl FnOnce(&str) -> Result<Value, String>,
) -> Result<Value, String> {
    match value {
        Value::Null => Ok(Value::Null),
        Value::String(s) => f(s),
        _ => Err("must be a string or null".into()),
    }
}

/// Role names: 1..64 of lowercase letters, digits, `_` and `-`.
pub fn is_role_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn is_watermark_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || c == ' '
        || ".,:;!?'\"-_()&@#/+%*=".contains(c)
        // Latin-1 Supplement and Latin Extended-A/B letters (é, ß, ł, ...).
        || (('\u{00C0}'..='\u{024F}').contains(&c) && c != '\u{00D7}' && c != '\u{00F7}')
}

/// Whether a room's settings ask for end-to-end encrypted media.
pub fn e2ee_enabled(settings: &Map<String, Value>) -> bool {
    settings
        .get("e2ee_enabled")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Why `what` (recording, restreaming, transcription) cannot run in a room
/// with these settings: `Some(reason)` in an E2EE room, whose media the
/// server cannot decode.
pub fn e2ee_refusal(settings: &Map<String, Value>, what: &str) -> Option<String> {
    e2ee_enabled(settings).then(|| {
        format!(
            "{what} is not available in an end-to-end encrypted room (e2ee_enabled): \
             the server cannot decode its media"
        )
    })
}

/// A room's settings after a write: live transcription needs audio the
/// server can decode, so it cannot be on together with E2EE.
pub fn check_e2ee(next: &Map<String, Value>, errors: &mut FieldErrors) {
    let transcription = next
        .get("transcription_enabled")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if transcription && e2ee_enabled(next) {
        errors
            .entry("transcription_enabled".into())
            .or_default()
            .push(
                "cannot be true in an end-to-end encrypted room (e2ee_enabled): \
             the server cannot hear encrypted audio"
                    .into(),
            );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn e2ee_refuses_what_needs_clear_media() {
        let mut s = complete(Map::new(), Target::Room);
        assert!(!e2ee_enabled(&s));
        assert_eq!(e2ee_refusal(&s, "recording"), None);
        let mut errors = FieldErrors::new();
        s.insert("transcription_enabled".into(), Value::Bool(true));
        check_e2ee(&s, &mut errors);
        assert!(errors.is_empty());
        s.insert("e2ee_enabled".into(), Value::Bool(true));
        let why = e2ee_refusal(&s, "recording").unwrap();
        assert!(why.starts_with("recording is not available") && why.contains("e2ee_enabled"));
        check_e2ee(&s, &mut errors);
        assert!(errors["transcription_enabled"][0].contains("e2ee_enabled"));
    }

    #[test]
    fn table_and_typed_view_agree() {
        let defaults = initial_defaults();
        let typed: DefaultSettings =
            serde_json::from_value(Value::Object(defaults.clone())).unwrap();
        let back = serde_json::to_value(&typed).unwrap();
        let mut keys: Vec<_> = back.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        let mut table: Vec<_> = FIELDS.iter().map(|f| f.name.to_string()).collect();
        table.sort();
        assert_eq!(keys, table);
        assert_eq!(back, Value::Object(defaults));
    }

    #[test]
    fn rejects_wrong_types_and_ranges() {
        let input: Map<String, Value> = serde_json::from_value(json!({
            "max_participants": "50",
            "session_length": 0,
            "chat_enabled": "yes",
            "privacy": "secret",
            "primary_color": "red",
            "watermark_text": "ab",
            "default_language": "fr",
            "unknown_field": 1
        }))
        .unwrap();
        let mut errors = FieldErrors::new();
        let out = validate(&input, Target::Room, &Map::new(), &mut errors);
        assert!(out.is_empty());
        for f in [
            "max_participants",
            "session_length",
            "chat_enabled",
            "privacy",
            "primary_color",
            "watermark_text",
            "default_language",
        ] {
            assert!(errors.contains_key(f), "{f} should be refused");
        }
        assert!(!errors.contains_key("unknown_field"));
    }

    #[test]
    fn normalizes_colours_and_merges_toolbar() {
        let input: Map<String, Value> = serde_json::from_value(json!({
            "primary_color": "FF0000",
            "toolbar": {"position": "top"},
            "watermark_text": "Café confidentiel"
        }))
        .unwrap();
        let mut errors = FieldErrors::new();
        let out = validate(&input, Target::Room, &initial_defaults(), &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(out["primary_color"], json!("#FF0000"));
        assert_eq!(out["toolbar"], json!({"position": "top", "visible": true}));
    }
}
