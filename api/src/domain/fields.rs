//! Field validation shared by every resource's rules: the per-field error
//! map, the [`Invalid`] error that carries it, and readers for text, flag and
//! `participant` fields of a JSON object body. Pure: no IO, no HTTP.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Field name -> list of human-readable problems with that field.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// A body that failed validation: every problem, per field (never empty).
///
/// Displays as `field: problem; field: problem`, the `message` of the 422
/// the REST API answers with and the text of a signaling refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub FieldErrors);

impl Invalid {
    /// One problem with one field.
    pub fn field(field: &str, problem: impl Into<String>) -> Invalid {
        let mut errors = FieldErrors::new();
        errors.insert(field.to_string(), vec![problem.into()]);
        Invalid(errors)
    }

    /// `field: problem` pairs joined with `; `.
    pub fn message(&self) -> String {
        self.0
            .iter()
            .flat_map(|(f, msgs)| msgs.iter().map(move |m| format!("{f}: {m}")))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for Invalid {}

/// Fails with the collected field errors, if any.
pub fn check(errors: FieldErrors) -> Result<(), Invalid> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Invalid(errors))
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn invalid_displays_every_problem_in_field_order() {
        let mut errors = FieldErrors::new();
        push(&mut errors, "b", "two");
        push(&mut errors, "a", "one");
        push(&mut errors, "a", "three");
        let e = check(errors).unwrap_err();
        assert_eq!(e.to_string(), "a: one; a: three; b: two");
        assert!(check(FieldErrors::new()).is_ok());
    }

    #[test]
    fn text_flag_and_opt_text() {
        let b = body(json!({"t": "  ", "u": "ok", "n": 3, "f": true, "g": "yes", "o": null}));
        let mut e = FieldErrors::new();
        assert_eq!(text(&b, "t", 10, &mut e), None);
        assert_eq!(text(&b, "u", 10, &mut e).as_deref(), Some("ok"));
        assert_eq!(text(&b, "u", 1, &mut e), None);
        assert_eq!(text(&b, "n", 10, &mut e), None);
        assert_eq!(text(&b, "missing", 10, &mut e), None);
        assert_eq!(flag(&b, "f", &mut e), Some(true));
        assert_eq!(flag(&b, "g", &mut e), None);
        assert_eq!(opt_text(&b, "o", 5, &mut e), None);
        assert_eq!(
            e,
            FieldErrors::from([
                ("g".into(), vec!["must be a boolean".into()]),
                ("missing".into(), vec!["is required".into()]),
                ("n".into(), vec!["must be a string".into()]),
                ("t".into(), vec!["must not be empty".into()]),
                ("u".into(), vec!["must be at most 1 characters".into()]),
            ])
        );
    }

    #[test]
    fn participant_by_id_or_name() {
        let mut e = FieldErrors::new();
        let id = "0b9c4b7e-7a43-4c55-a5b4-6d3b2f6f2f10";
        assert!(matches!(
            participant(&body(json!({"participant": {"id": id}})), false, &mut e),
            Some(ParticipantRef::Id(x)) if x == id
        ));
        assert!(matches!(
            participant(&body(json!({"participant": {"name": "Ann", "external_id": 7}})), false, &mut e),
            Some(ParticipantRef::Named { name, external_id: Some(x) }) if name == "Ann" && x == "7"
        ));
        assert!(e.is_empty());
        assert!(participant(&body(json!({})), true, &mut e).is_none());
        assert!(e.is_empty());
        assert!(
            participant(&body(json!({"participant": {"id": "nope"}})), false, &mut e).is_none()
        );
        assert_eq!(e["participant.id"], vec!["must be a participant UUID"]);
    }
}
