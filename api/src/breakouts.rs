//! Breakout rooms' rules (issue 22): the create, close, move and broadcast
//! bodies' validation (pure: no IO, no HTTP), the commands REST hands to a
//! live room through [`crate::live::LiveRooms::breakouts`], and their
//! refusals. The room actor (server `signaling/breakouts.rs`) carries them
//! out; the SQL is in `store/breakouts.rs`.

use serde_json::{Map, Value};

use crate::domain::fields::{self, FieldErrors, Invalid};

/// Most breakouts one session may have.
pub const MAX_BREAKOUTS: usize = 50;
/// Longest breakout name.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest broadcast message.
pub const MAX_MESSAGE_CHARS: usize = 1000;
/// Longest timer (`duration_minutes`): a day.
pub const MAX_DURATION_MINUTES: i64 = 1440;
/// The closing countdown when the request names none.
pub const DEFAULT_COUNTDOWN_SECONDS: u64 = 30;
/// Longest closing countdown.
pub const MAX_COUNTDOWN_SECONDS: u64 = 600;
/// What a move's target is when it is the main room.
pub const MAIN: &str = "main";

/// How participants get into breakouts when they open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Assignment {
    /// Nobody moves until a moderator moves them.
    Manual,
    /// Every live participant that may not admit others (the moderators
    /// stay in the main room) is dealt round-robin in a random order.
    Random,
}

impl Assignment {
    pub fn as_str(self) -> &'static str {
        match self {
            Assignment::Manual => "manual",
            Assignment::Random => "random",
        }
    }

    pub fn parse(s: &str) -> Option<Assignment> {
        match s {
            "manual" => Some(Assignment::Manual),
            "random" => Some(Assignment::Random),
            _ => None,
        }
    }
}

/// A valid create body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBreakouts {
    pub names: Vec<String>,
    pub assignment: Assignment,
    pub duration_minutes: Option<i64>,
}

/// Reads `{"names": [...]}` or `{"count": n}`, `"assignment"` (default
/// `manual`) and `"duration_minutes"` (optional, 1..=1440).
pub fn validate_create(body: &Map<String, Value>) -> Result<NewBreakouts, Invalid> {
    let mut errors = FieldErrors::new();
    let names = match (body.get("names"), body.get("count")) {
        (Some(n), Some(c)) if !n.is_null() && !c.is_null() => {
            fields::push(&mut errors, "names", "give either names or count, not both");
            Vec::new()
        }
        (Some(Value::Array(list)), _) => names(list, &mut errors),
        (Some(v), _) if !v.is_null() => {
            fields::push(&mut errors, "names", "must be an array of strings");
            Vec::new()
        }
        (_, Some(Value::Number(n))) => match n.as_u64() {
            Some(c) if (1..=MAX_BREAKOUTS as u64).contains(&c) => {
                (1..=c).map(|i| format!("Room {i}")).collect()
            }
            _ => {
                fields::push(
                    &mut errors,
                    "count",
                    format!("must be a whole number from 1 to {MAX_BREAKOUTS}"),
                );
                Vec::new()
            }
        },
        (_, Some(v)) if !v.is_null() => {
            fields::push(
                &mut errors,
                "count",
                format!("must be a whole number from 1 to {MAX_BREAKOUTS}"),
            );
            Vec::new()
        }
        _ => {
            fields::push(&mut errors, "names", "names or count is required");
            Vec::new()
        }
    };
    let assignment = match body.get("assignment") {
        None | Some(Value::Null) => Assignment::Manual,
        Some(Value::String(s)) => Assignment::parse(s).unwrap_or_else(|| {
            fields::push(&mut errors, "assignment", "must be manual or random");
            Assignment::Manual
        }),
        Some(_) => {
            fields::push(&mut errors, "assignment", "must be manual or random");
            Assignment::Manual
        }
    };
    let duration_minutes = match body.get("duration_minutes") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_i64() {
            Some(m) if (1..=MAX_DURATION_MINUTES).contains(&m) => Some(m),
            _ => {
                fields::push(
                    &mut errors,
                    "duration_minutes",
                    format!("must be a whole number from 1 to {MAX_DURATION_MINUTES}"),
                );
                None
            }
        },
        Some(_) => {
            fields::push(
                &mut errors,
                "duration_minutes",
                format!("must be a whole number from 1 to {MAX_DURATION_MINUTES}"),
            );
            None
        }
    };
    fields::check(errors)?;
    Ok(NewBreakouts {
        names,
        assignment,
        duration_minutes,
    })
}

fn names(list: &[Value], errors: &mut FieldErrors) -> Vec<String> {
    if list.is_empty() || list.len() > MAX_BREAKOUTS {
        fields::push(
            errors,
            "names",
            format!("must list 1 to {MAX_BREAKOUTS} names"),
        );
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for v in list {
        let Some(s) = v.as_str() else {
            fields::push(errors, "names", "must be an array of strings");
            return Vec::new();
        };
        let Some(name) = fields::check_text(s.trim(), "names", MAX_NAME_CHARS, errors) else {
            return Vec::new();
        };
        if out.iter().any(|n| n.eq_ignore_ascii_case(&name)) {
            fields::push(errors, "names", format!("'{name}' is listed twice"));
            return Vec::new();
        }
        out.push(name);
    }
    out
}

/// Reads the close body's `countdown_seconds` (0..=600, default 30).
pub fn validate_close(body: &Map<String, Value>) -> Result<u64, Invalid> {
    match body.get("countdown_seconds") {
        None | Some(Value::Null) => Ok(DEFAULT_COUNTDOWN_SECONDS),
        Some(Value::Number(n)) => n
            .as_u64()
            .filter(|s| *s <= MAX_COUNTDOWN_SECONDS)
            .ok_or_else(countdown_invalid),
        Some(_) => Err(countdown_invalid()),
    }
}

fn countdown_invalid() -> Invalid {
    Invalid::field(
        "countdown_seconds",
        format!("must be a whole number from 0 to {MAX_COUNTDOWN_SECONDS}"),
    )
}

/// Reads the broadcast body's `message` (1..=1000 characters).
pub fn validate_broadcast(body: &Map<String, Value>) -> Result<String, Invalid> {
    let mut errors = FieldErrors::new();
    let message = fields::text(body, "message", MAX_MESSAGE_CHARS, &mut errors);
    fields::check(errors)?;
    Ok(message.unwrap_or_default().trim().to_string())
}

/// An open breakout, as the room actor is given it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BreakoutSpec {
    pub id: String,
    pub name: String,
}

/// What REST asks of a live room's breakouts.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum BreakoutCommand {
    /// Open these breakouts (random assignment moves people at once; a
    /// duration starts the closing countdown when it runs out).
    Open {
        breakouts: Vec<BreakoutSpec>,
        assignment: Assignment,
        duration_minutes: Option<i64>,
    },
    /// Move a live participant (`to`: a breakout id, `None`: the main room).
    Move {
        participant_id: String,
        to: Option<String>,
    },
    /// A message to everyone, in every breakout and the main room.
    Broadcast { message: String },
    /// Start the closing countdown.
    Close { countdown_seconds: u64 },
    /// Only where everyone is.
    Placements,
}

/// Where a live participant is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Placement {
    pub participant_id: String,
    pub name: String,
    /// Null: the main room.
    pub breakout_id: Option<String>,
}

/// Why the room refused a breakout command; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BreakoutRefusal {
    /// The breakouts are not open (or already open, or closing).
    Conflict(String),
    /// The participant is not in the live session.
    NotLive,
    /// No such open breakout.
    UnknownBreakout,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn count_names_the_rooms_and_names_are_checked() {
        let b = validate_create(&obj(json!({"count": 3, "assignment": "random"}))).unwrap();
        assert_eq!(b.names, ["Room 1", "Room 2", "Room 3"]);
        assert_eq!(b.assignment, Assignment::Random);
        let b =
            validate_create(&obj(json!({"names": [" A ", "B"], "duration_minutes": 5}))).unwrap();
        assert_eq!(b.names, ["A", "B"]);
        assert_eq!(b.duration_minutes, Some(5));
        for (body, field) in [
            (json!({}), "names"),
            (json!({"count": 0}), "count"),
            (json!({"count": 51}), "count"),
            (json!({"count": "2"}), "count"),
            (json!({"names": []}), "names"),
            (json!({"names": ["a", "A"]}), "names"),
            (json!({"names": [""]}), "names"),
            (json!({"names": ["x".repeat(101)]}), "names"),
            (json!({"names": [1]}), "names"),
            (json!({"names": ["a"], "count": 2}), "names"),
            (
                json!({"count": 2, "assignment": "alphabetical"}),
                "assignment",
            ),
            (
                json!({"count": 2, "duration_minutes": 0}),
                "duration_minutes",
            ),
            (
                json!({"count": 2, "duration_minutes": 1.5}),
                "duration_minutes",
            ),
        ] {
            let e = validate_create(&obj(body.clone())).unwrap_err();
            assert!(e.0.contains_key(field), "{body}: {e}");
        }
    }

    #[test]
    fn close_and_broadcast_bodies() {
        assert_eq!(validate_close(&Map::new()).unwrap(), 30);
        assert_eq!(
            validate_close(&obj(json!({"countdown_seconds": 0}))).unwrap(),
            0
        );
        assert!(validate_close(&obj(json!({"countdown_seconds": 601}))).is_err());
        assert!(validate_close(&obj(json!({"countdown_seconds": -1}))).is_err());
        assert_eq!(
            validate_broadcast(&obj(json!({"message": " hi "}))).unwrap(),
            "hi"
        );
        assert!(validate_broadcast(&obj(json!({"message": "  "}))).is_err());
        assert!(validate_broadcast(&Map::new()).is_err());
    }
}
