//! Guest links: validation of a link request (expiry, role, label, uses)
//! against a room, the link's secret (128 random bits, shown once, stored
//! as SHA-256) and whether a stored link may still admit someone.

use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::FieldErrors;
use crate::store::guest_links::{GuestLinkRecord, NewGuestLink};

/// Shortest and longest lifetime of a link, in seconds (1 minute, 30 days).
pub const MIN_TTL_SECS: i64 = 60;
pub const MAX_TTL_SECS: i64 = 30 * 24 * 3600;
/// Longest label, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// The role a link may only carry with `allow_moderator: true`.
pub const MODERATOR_ROLE: &str = "moderator";

/// Permissions that act on other participants or the session: a role with
/// any of them moderates, whatever its name, and a link may carry it only
/// with `allow_moderator: true`.
pub const MODERATING: &[&str] = &[
    "mute_others",
    "remove_participants",
    "admit_participants",
    "manage_roles",
    "end_session",
];

/// Whether a role with `permissions` moderates (see [`MODERATING`]).
pub fn moderates(permissions: &Map<String, Value>) -> bool {
    MODERATING
        .iter()
        .any(|p| permissions.get(*p).and_then(Value::as_bool) == Some(true))
}

/// A fresh secret: 16 random bytes as 32 hex digits.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What is stored of a secret (hex SHA-256).
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Why a stored link no longer admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    Expired,
    UsedUp,
}

/// Whether `link` may admit one more guest at `now`.
pub fn usable(link: &GuestLinkRecord, now: DateTime<Utc>) -> Result<(), Unusable> {
    let expires = DateTime::parse_from_rfc3339(&link.expires_at)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| Unusable::Expired)?;
    if now >= expires {
        return Err(Unusable::Expired);
    }
    if link.max_uses.is_some_and(|m| link.uses >= m) {
        return Err(Unusable::UsedUp);
    }
    Ok(())
}

/// Validates a create body for a room with `settings` at `now`.
pub fn validate(
    body: &Map<String, Value>,
    settings: &Map<String, Value>,
    now: DateTime<Utc>,
) -> Result<NewGuestLink, FieldErrors> {
    let mut errors = FieldErrors::new();
    let mut push = |f: &str, m: String| errors.entry(f.to_string()).or_default().push(m);
    let expires_at = match (body.get("expires_at"), body.get("ttl_seconds")) {
        (Some(_), Some(_)) => {
            push(
                "expires_at",
                "give expires_at or ttl_seconds, not both".into(),
            );
            None
        }
        (None, None) => {
            push("expires_at", "expires_at or ttl_seconds is required".into());
            None
        }
        (Some(v), None) => match v.as_str().map(DateTime::parse_from_rfc3339) {
            Some(Ok(t)) => {
                let t = t.with_timezone(&Utc);
                let ttl = (t - now).num_seconds();
                if (MIN_TTL_SECS..=MAX_TTL_SECS).contains(&ttl) {
                    Some(t)
                } else {
                    push(
                        "expires_at",
                        format!(
                            "must be {MIN_TTL_SECS} s to 30 days from now (it is {ttl} s from now)"
                        ),
                    );
                    None
                }
            }
            _ => {
                push("expires_at", "must be an RFC 3339 timestamp".into());
                None
            }
        },
        (None, Some(v)) => match v.as_i64() {
            Some(s) if (MIN_TTL_SECS..=MAX_TTL_SECS).contains(&s) => {
                Some(now + Duration::seconds(s))
            }
            _ => {
                push(
                    "ttl_seconds",
                    format!("must be an integer from {MIN_TTL_SECS} to {MAX_TTL_SECS}"),
                );
                None
            }
        },
    };
    let allow_moderator = match body.get("allow_moderator") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            push("allow_moderator", "must be a boolean".into());
            false
        }
    };
    let room_roles: Vec<&str> = settings
        .get("roles")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let default_role = settings
        .get("default_role")
        .and_then(Value::as_str)
        .unwrap_or("attendee");
    let role = match body.get("role") {
        None | Some(Value::Null) => Some(default_role.to_string()),
        Some(Value::String(r)) if !room_roles.contains(&r.as_str()) => {
            push("role", format!("'{r}' is not one of this room's roles"));
            None
        }
        Some(Value::String(r)) if r == MODERATOR_ROLE && !allow_moderator => {
            push(
                "role",
                "a moderator link needs \"allow_moderator\": true".into(),
            );
            None
        }
        Some(Value::String(r)) => Some(r.clone()),
        Some(_) => {
            push("role", "must be a string".into());
            None
        }
    };
    let name = match body.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= MAX_NAME_CHARS => {
            Some(s.trim().to_string())
        }
        Some(_) => {
            push("name", format!("must be 1 to {MAX_NAME_CHARS} characters"));
            None
        }
    };
    let max_uses = match body.get("max_uses") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64() {
            Some(n) if (1..=1_000_000).contains(&n) => Some(n),
            _ => {
                push("max_uses", "must be an integer from 1 to 1000000".into());
                None
            }
        },
    };
    match (expires_at, role) {
        (Some(t), Some(role)) if errors.is_empty() => Ok(NewGuestLink {
            role,
            name,
            max_uses,
            expires_at: crate::store::timestamp(t),
        }),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn room() -> Map<String, Value> {
        obj(json!({"roles": ["moderator", "speaker", "attendee"], "default_role": "attendee"}))
    }

    fn link(expires_at: &str, uses: i64, max_uses: Option<i64>) -> GuestLinkRecord {
        GuestLinkRecord {
            id: "l".into(),
            room_id: "r".into(),
            role: "attendee".into(),
            name: None,
            max_uses,
            uses,
            expires_at: expires_at.into(),
            created_at: "2026-01-01T00:00:00.000000Z".into(),
        }
    }

    #[test]
    fn expiry_and_uses_with_an_injected_clock() {
        let t0: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let l = link("2026-01-01T00:01:00.000000Z", 0, Some(1));
        assert_eq!(usable(&l, t0), Ok(()));
        assert_eq!(usable(&l, t0 + Duration::seconds(59)), Ok(()));
        assert_eq!(
            usable(&l, t0 + Duration::seconds(60)),
            Err(Unusable::Expired)
        );
        assert_eq!(
            usable(&link("2026-01-01T00:01:00.000000Z", 1, Some(1)), t0),
            Err(Unusable::UsedUp)
        );
        assert_eq!(
            usable(&link("2026-01-01T00:01:00.000000Z", 9, None), t0),
            Ok(())
        );
    }

    #[test]
    fn validation() {
        let now: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let l = validate(&obj(json!({"ttl_seconds": 60})), &room(), now).unwrap();
        assert_eq!(l.role, "attendee");
        assert_eq!(l.expires_at, "2026-01-01T00:01:00.000000Z");
        for bad in [
            json!({}),
            json!({"ttl_seconds": 59}),
            json!({"ttl_seconds": MAX_TTL_SECS + 1}),
            json!({"expires_at": "2025-12-31T23:59:00Z"}),
            json!({"expires_at": "yesterday"}),
            json!({"ttl_seconds": 60, "expires_at": "2026-01-02T00:00:00Z"}),
            json!({"ttl_seconds": 60, "role": "ghost"}),
            json!({"ttl_seconds": 60, "role": "moderator"}),
            json!({"ttl_seconds": 60, "max_uses": 0}),
            json!({"ttl_seconds": 60, "name": ""}),
        ] {
            assert!(validate(&obj(bad.clone()), &room(), now).is_err(), "{bad}");
        }
        let m = validate(
            &obj(json!({"expires_at": "2026-01-02T00:00:00Z", "role": "moderator", "allow_moderator": true, "max_uses": 3, "name": " Guests "})),
            &room(),
            now,
        )
        .unwrap();
        assert_eq!(
            (m.role.as_str(), m.max_uses, m.name.as_deref()),
            ("moderator", Some(3), Some("Guests"))
        );
        assert_eq!(secret_hash(&new_secret()).len(), 64);
        assert_ne!(new_secret(), new_secret());
    }
}
