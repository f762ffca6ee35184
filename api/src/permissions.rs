//! Permission names and the built-in roles every team has.

use serde_json::{Map, Value};

/// Every permission a role can grant, in the order they are listed.
pub const PERMISSIONS: &[&str] = &[
    // From the seed.
    "broadcast",
    "screenshare",
    "chat",
    "raise_hand",
    "recording",
    "emoji_reactions",
    // What moderation needs.
    "mute_others",
    "remove_participants",
    "admit_participants",
    "manage_polls",
    "manage_qa",
    "manage_roles",
    "end_session",
    "pin_tiles",
];

/// The roles created for every team: `(name, display name, granted permissions)`.
pub const BUILTIN_ROLES: &[(&str, &str, &[&str])] = &[
    ("moderator", "Moderator", PERMISSIONS),
    (
        "speaker",
        "Speaker",
        &[
            "broadcast",
            "screenshare",
            "chat",
            "raise_hand",
            "emoji_reactions",
        ],
    ),
    (
        "attendee",
        "Attendee",
        &["chat", "raise_hand", "emoji_reactions"],
    ),
];

/// A full permission map with exactly `granted` set to true.
pub fn permission_map(granted: &[&str]) -> Map<String, Value> {
    PERMISSIONS
        .iter()
        .map(|p| (p.to_string(), Value::Bool(granted.contains(p))))
        .collect()
}

/// Completes a stored map so that every known permission is present.
pub fn complete(stored: &Map<String, Value>) -> Map<String, Value> {
    PERMISSIONS
        .iter()
        .map(|p| {
            let v = stored.get(*p).and_then(Value::as_bool).unwrap_or(false);
            (p.to_string(), Value::Bool(v))
        })
        .collect()
}
