//! Request pieces shared by the live-collaboration handlers (chat, Q&A,
//! polls, quizzes, messages): room and session lookup, the `participant`
//! object, and text and flag fields.

use serde_json::{Map, Value};

use crate::ApiState;
use crate::auth::Team;
use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::store::chat::{Author, SessionRef};
use crate::store::rooms::RoomRecord;

/// The team's room by UUID or friendly_url, or 404.
pub async fn room(state: &ApiState, team: &Team, key: &str) -> ApiResult<RoomRecord> {
    state
        .db
        .room(&team.id, key)
        .await?
        .ok_or_else(|| ApiError::not_found("room"))
}

/// The team's session by id, or 404.
pub async fn session(state: &ApiState, team: &Team, id: &str) -> ApiResult<SessionRef> {
    state
        .db
        .team_session(&team.id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("session"))
}

pub fn push(errors: &mut FieldErrors, field: &str, message: impl Into<String>) {
    errors
        .entry(field.to_string())
        .or_default()
        .push(message.into());
}

/// A required text field of 1..=`max` characters (not blank).
pub fn text(
    body: &Map<String, Value>,
    field: &str,
    max: usize,
    errors: &mut FieldErrors,
) -> Option<String> {
    match body.get(field) {
        None | Some(Value::Null) => {
            push(errors, field, "is required");
            None
        }
        Some(Value::String(s)) => check_text(s, field, max, errors),
        Some(_) => {
            push(errors, field, "must be a string");
            None
        }
    }
}

/// Checks a text value of 1..=`max` characters (not blank).
pub fn check_text(s: &str, field: &str, max: usize, errors: &mut FieldErrors) -> Option<String> {
    if s.trim().is_empty() {
        push(errors, field, "must not be empty");
        None
    } else if s.chars().count() > max {
        push(errors, field, format!("must be at most {max} characters"));
        None
    } else {
        Some(s.to_string())
    }
}

/// An optional boolean (`None` when absent or null).
pub fn flag(body: &Map<String, Value>, field: &str, errors: &mut FieldErrors) -> Option<bool> {
    match body.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            push(errors, field, "must be a boolean");
            None
        }
    }
}

/// An optional nullable string of at most `max` characters.
pub fn opt_text(
    body: &Map<String, Value>,
    field: &str,
    max: usize,
    errors: &mut FieldErrors,
) -> Option<String> {
    match body.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= max => Some(s.clone()),
        Some(Value::String(_)) => {
            push(errors, field, format!("must be at most {max} characters"));
            None
        }
        Some(_) => {
            push(errors, field, "must be a string or null");
            None
        }
    }
}

/// The `participant` object of a request, before lookup.
#[derive(Debug, Clone)]
pub enum ParticipantRef {
    /// `{"id": "uuid"}`: an existing participant of the room.
    Id(String),
    /// `{"name": "...", "external_id": "..."}`: someone named by the caller.
    Named {
        name: String,
        external_id: Option<String>,
    },
}

/// Reads `participant` (`{id}` or `{name, external_id}`); required unless `optional`.
pub fn participant(
    body: &Map<String, Value>,
    optional: bool,
    errors: &mut FieldErrors,
) -> Option<ParticipantRef> {
    const FIELD: &str = "participant";
    let obj = match body.get(FIELD) {
        None | Some(Value::Null) if optional => return None,
        None | Some(Value::Null) => {
            push(
                errors,
                FIELD,
                "is required: {\"id\": participant UUID} or {\"name\", \"external_id\"}",
            );
            return None;
        }
        Some(Value::Object(o)) => o,
        Some(_) => {
            push(errors, FIELD, "must be an object");
            return None;
        }
    };
    match obj.get("id") {
        Some(Value::String(id)) if uuid::Uuid::parse_str(id).is_ok() => {
            return Some(ParticipantRef::Id(id.clone()));
        }
        Some(Value::Null) | None => {}
        Some(_) => {
            push(errors, "participant.id", "must be a participant UUID");
            return None;
        }
    }
    let name = match obj.get("name") {
        Some(Value::String(n)) => check_text(n, "participant.name", 100, errors),
        None | Some(Value::Null) => {
            push(
                errors,
                FIELD,
                "must have an `id`, or a `name` (with an optional `external_id`)",
            );
            None
        }
        Some(_) => {
            push(errors, "participant.name", "must be a string");
            None
        }
    }?;
    let external_id = match obj.get("external_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= 256 => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => {
            push(
                errors,
                "participant.external_id",
                "must be a string of at most 256 characters",
            );
            return None;
        }
    };
    Some(ParticipantRef::Named { name, external_id })
}

/// Resolves a participant reference in a room into an [`Author`] (422 when
/// the id names no participant of the room).
pub async fn author(state: &ApiState, room_id: &str, p: ParticipantRef) -> ApiResult<Author> {
    match p {
        ParticipantRef::Id(id) => {
            state
                .db
                .participant_author(room_id, &id)
                .await?
                .ok_or_else(|| {
                    ApiError::field(
                        "participant.id",
                        format!("no participant '{id}' in this room"),
                    )
                })
        }
        ParticipantRef::Named { name, external_id } => Ok(Author {
            participant_id: None,
            name,
            external_id,
        }),
    }
}

/// Fails with the collected field errors, if any.
pub fn check(errors: FieldErrors) -> ApiResult<()> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::fields(errors))
    }
}

/// 409 for actions that need a live session.
pub fn not_live() -> ApiError {
    ApiError::Conflict(
        "the room has no live session: a participant must be in the room to receive this".into(),
    )
}
