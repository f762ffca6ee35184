//! Polls: the definition a body may give (create and PATCH), the lifecycle
//! `draft -> launched -> ended`, which changes a launched poll still takes,
//! and what a valid answer is.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::fields::{self, FieldErrors, Invalid, push};

pub const MAX_QUESTION_CHARS: usize = 1000;
pub const MAX_OPTION_CHARS: usize = 255;
pub const MAX_OPTIONS: usize = 50;
/// Longest free-text answer.
pub const MAX_ANSWER_CHARS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PollType {
    Single,
    Multiple,
    Free,
}

impl PollType {
    pub fn parse(s: &str) -> Option<PollType> {
        match s.trim().to_ascii_lowercase().as_str() {
            "single" => Some(PollType::Single),
            "multiple" => Some(PollType::Multiple),
            "free" => Some(PollType::Free),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            PollType::Single => "single",
            PollType::Multiple => "multiple",
            PollType::Free => "free",
        }
    }
}

/// Where a poll is in its lifecycle; stored and returned as `draft`,
/// `launched`, `ended`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PollStatus {
    Draft,
    Launched,
    Ended,
}

impl PollStatus {
    /// The stored spelling (exact: statuses are written by this crate only).
    pub fn parse(s: &str) -> Option<PollStatus> {
        match s {
            "draft" => Some(PollStatus::Draft),
            "launched" => Some(PollStatus::Launched),
            "ended" => Some(PollStatus::Ended),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            PollStatus::Draft => "draft",
            PollStatus::Launched => "launched",
            PollStatus::Ended => "ended",
        }
    }

    /// Launching: only a draft poll.
    pub fn launch(self) -> Result<PollStatus, PollRefusal> {
        match self {
            PollStatus::Draft => Ok(PollStatus::Launched),
            other => Err(PollRefusal::LaunchNotDraft(other)),
        }
    }

    /// Ending: only a launched poll.
    pub fn end(self) -> Result<PollStatus, PollRefusal> {
        match self {
            PollStatus::Launched => Ok(PollStatus::Ended),
            other => Err(PollRefusal::EndNotLaunched(other)),
        }
    }

    /// Answers are taken only while the poll is launched.
    pub fn takes_answers(self) -> Result<(), PollRefusal> {
        match self {
            PollStatus::Launched => Ok(()),
            other => Err(PollRefusal::NotTakingAnswers(other)),
        }
    }
}

impl std::fmt::Display for PollStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PollOption {
    pub id: String,
    pub label: String,
}

/// A poll as the API returns it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Poll {
    pub id: String,
    pub question: String,
    /// draft | launched | ended
    #[schema(value_type = String)]
    pub status: PollStatus,
    #[serde(rename = "type")]
    pub poll_type: PollType,
    /// Deprecated mirror of `type == "multiple"`.
    pub multiple: bool,
    pub anonymous: bool,
    pub show_results: bool,
    pub options: Vec<PollOption>,
    /// The session the poll was launched in.
    pub session_id: Option<String>,
    pub launched_at: Option<String>,
    pub ended_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A validated poll definition.
#[derive(Debug, Clone)]
pub struct PollInput {
    pub question: String,
    pub poll_type: PollType,
    pub anonymous: bool,
    pub show_results: bool,
    pub options: Vec<PollOption>,
}

/// An answer to a poll.
#[derive(Debug, Clone)]
pub enum PollAnswer {
    /// Option ids (one for `single`, one or more for `multiple`).
    Options(Vec<String>),
    /// The text of a `free` poll answer.
    Text(String),
}

/// A checked answer, as stored: the chosen option ids (deduplicated) or the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ballot {
    Options(Vec<String>),
    Text(String),
}

/// Why a poll refuses a transition, a change or an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PollRefusal {
    #[error("the poll is {0}; only a draft poll can be launched")]
    LaunchNotDraft(PollStatus),
    #[error("the poll is {0}; only a launched poll can be ended")]
    EndNotLaunched(PollStatus),
    #[error("the poll is {0}; answers are taken only while it is launched")]
    NotTakingAnswers(PollStatus),
    #[error("the poll is {0}: only show_results can change once a poll is launched")]
    Frozen(PollStatus),
    /// The answer does not fit the poll (the message says how).
    #[error("{0}")]
    InvalidAnswer(String),
}

/// Reads `options` (`[{"id"?, "label"|"text"}]`, or strings) for a poll of `kind`.
fn options_field(
    value: Option<&Value>,
    kind: PollType,
    errors: &mut FieldErrors,
) -> Vec<PollOption> {
    let items = match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => {
            push(errors, "options", "must be an array of {\"label\"} objects");
            return Vec::new();
        }
    };
    if kind == PollType::Free {
        if !items.is_empty() {
            push(
                errors,
                "options",
                "a free (short answer) poll has no options",
            );
        }
        return Vec::new();
    }
    if items.len() < 2 || items.len() > MAX_OPTIONS {
        push(
            errors,
            "options",
            format!("a {} poll needs 2 to {MAX_OPTIONS} options", kind.as_str()),
        );
        return Vec::new();
    }
    let mut out: Vec<PollOption> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let (id, label) = match item {
            Value::String(s) => (None, Some(s.clone())),
            Value::Object(o) => {
                let label = o
                    .get("label")
                    .filter(|v| !v.is_null())
                    .or_else(|| o.get("text"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let id = match o.get("id") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) if !s.is_empty() && s.len() <= 64 => Some(s.clone()),
                    Some(_) => {
                        push(
                            errors,
                            &format!("options.{i}.id"),
                            "must be a string of 1 to 64 characters",
                        );
                        continue;
                    }
                };
                (id, label)
            }
            _ => (None, None),
        };
        let Some(label) = label else {
            push(
                errors,
                &format!("options.{i}.label"),
                "is required (a string, as `label` or `text`)",
            );
            continue;
        };
        let Some(label) = fields::check_text(
            &label,
            &format!("options.{i}.label"),
            MAX_OPTION_CHARS,
            errors,
        ) else {
            continue;
        };
        let id = id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        if out.iter().any(|o| o.id == id) {
            push(
                errors,
                &format!("options.{i}.id"),
                "duplicates another option's id",
            );
            continue;
        }
        out.push(PollOption { id, label });
    }
    out
}

/// Validates a create body (`current` None) or a PATCH body into the poll's next definition.
pub fn input(body: &Map<String, Value>, current: Option<&Poll>) -> Result<PollInput, Invalid> {
    let mut errors = FieldErrors::new();
    let question = match (body.get("question"), current) {
        (None, Some(c)) => Some(c.question.clone()),
        _ => fields::text(body, "question", MAX_QUESTION_CHARS, &mut errors),
    };
    let deprecated_multiple = fields::flag(body, "multiple", &mut errors);
    let poll_type = match body.get("type") {
        None | Some(Value::Null) => match (deprecated_multiple, current) {
            (Some(true), _) => PollType::Multiple,
            (Some(false), Some(c)) if c.poll_type == PollType::Multiple => PollType::Single,
            (_, Some(c)) => c.poll_type,
            (_, None) => PollType::Single,
        },
        Some(Value::String(s)) => PollType::parse(s).unwrap_or_else(|| {
            push(&mut errors, "type", "must be one of single, multiple, free");
            PollType::Single
        }),
        Some(_) => {
            push(&mut errors, "type", "must be one of single, multiple, free");
            PollType::Single
        }
    };
    let anonymous = fields::flag(body, "anonymous", &mut errors)
        .or(current.map(|c| c.anonymous))
        .unwrap_or(false);
    let show_results = fields::flag(body, "show_results", &mut errors)
        .or(current.map(|c| c.show_results))
        .unwrap_or(true);
    let options = match (body.get("options"), current) {
        (None, Some(c)) if c.poll_type == poll_type || poll_type != PollType::Free => {
            if poll_type == PollType::Free {
                Vec::new()
            } else if c.options.len() < 2 {
                push(
                    &mut errors,
                    "options",
                    format!(
                        "a {} poll needs 2 to {MAX_OPTIONS} options",
                        poll_type.as_str()
                    ),
                );
                Vec::new()
            } else {
                c.options.clone()
            }
        }
        (v, _) => options_field(v, poll_type, &mut errors),
    };
    fields::check(errors)?;
    Ok(PollInput {
        question: question.unwrap_or_default(),
        poll_type,
        anonymous,
        show_results,
        options,
    })
}

/// A PATCH of a launched or ended poll may only change `show_results`.
pub fn check_update(current: &Poll, next: &PollInput) -> Result<(), PollRefusal> {
    if current.status != PollStatus::Draft
        && (next.question != current.question
            || next.poll_type != current.poll_type
            || next.anonymous != current.anonymous
            || next.options != current.options)
    {
        return Err(PollRefusal::Frozen(current.status));
    }
    Ok(())
}

/// Checks an answer against the poll: the poll must be launched, a free poll
/// takes 1..=1000 characters of text, a single poll exactly one of its
/// options, a multiple poll one or more (duplicates dropped).
pub fn ballot(poll: &Poll, answer: PollAnswer) -> Result<Ballot, PollRefusal> {
    poll.status.takes_answers()?;
    let invalid = |m: &str| PollRefusal::InvalidAnswer(m.to_string());
    match (poll.poll_type, answer) {
        (PollType::Free, PollAnswer::Text(t)) => {
            let t = t.trim().to_string();
            if t.is_empty() || t.chars().count() > MAX_ANSWER_CHARS {
                return Err(invalid("the answer must be 1 to 1000 characters"));
            }
            Ok(Ballot::Text(t))
        }
        (PollType::Free, PollAnswer::Options(_)) => Err(invalid("a free poll takes a text answer")),
        (_, PollAnswer::Text(_)) => Err(invalid("this poll takes option ids")),
        (kind, PollAnswer::Options(ids)) => {
            let mut seen = HashSet::new();
            let ids: Vec<String> = ids.into_iter().filter(|i| seen.insert(i.clone())).collect();
            if ids.is_empty() || (kind == PollType::Single && ids.len() != 1) {
                return Err(invalid(if kind == PollType::Single {
                    "choose exactly one option"
                } else {
                    "choose at least one option"
                }));
            }
            if let Some(bad) = ids
                .iter()
                .find(|i| !poll.options.iter().any(|o| &o.id == *i))
            {
                return Err(PollRefusal::InvalidAnswer(format!(
                    "'{bad}' is not an option of this poll"
                )));
            }
            Ok(Ballot::Options(ids))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn poll(kind: PollType, status: PollStatus) -> Poll {
        Poll {
            id: "p".into(),
            question: "Q".into(),
            status,
            poll_type: kind,
            multiple: kind == PollType::Multiple,
            anonymous: false,
            show_results: true,
            options: vec![
                PollOption {
                    id: "a".into(),
                    label: "A".into(),
                },
                PollOption {
                    id: "b".into(),
                    label: "B".into(),
                },
            ],
            session_id: None,
            launched_at: None,
            ended_at: None,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn status_spelling_is_the_stored_one() {
        for s in [PollStatus::Draft, PollStatus::Launched, PollStatus::Ended] {
            assert_eq!(PollStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
        }
        assert_eq!(PollStatus::parse("Draft"), None);
    }

    #[test]
    fn lifecycle() {
        assert_eq!(PollStatus::Draft.launch(), Ok(PollStatus::Launched));
        assert_eq!(
            PollStatus::Launched.launch().unwrap_err().to_string(),
            "the poll is launched; only a draft poll can be launched"
        );
        assert_eq!(PollStatus::Launched.end(), Ok(PollStatus::Ended));
        assert_eq!(
            PollStatus::Draft.end().unwrap_err().to_string(),
            "the poll is draft; only a launched poll can be ended"
        );
        assert!(PollStatus::Launched.takes_answers().is_ok());
        assert_eq!(
            PollStatus::Ended.takes_answers().unwrap_err().to_string(),
            "the poll is ended; answers are taken only while it is launched"
        );
    }

    #[test]
    fn create_body() {
        let p = input(
            &body(json!({"question": "Q?", "options": ["x", {"label": "y", "id": "b"}]})),
            None,
        )
        .unwrap();
        assert_eq!(p.poll_type, PollType::Single);
        assert!(p.show_results && !p.anonymous);
        assert_eq!(p.options[1].id, "b");
        let e = input(&body(json!({"type": "nope", "options": "x"})), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "options: must be an array of {\"label\"} objects; question: is required; \
             type: must be one of single, multiple, free"
        );
        let e = input(
            &body(json!({"question": "Q", "type": "free", "options": ["a"]})),
            None,
        )
        .unwrap_err();
        assert_eq!(
            e.0["options"],
            vec!["a free (short answer) poll has no options"]
        );
        let e = input(&body(json!({"question": "Q", "options": ["a", {"id": "x", "label": "b"}, {"id": "x", "text": "c"}]})), None)
            .unwrap_err();
        assert_eq!(e.0["options.2.id"], vec!["duplicates another option's id"]);
    }

    #[test]
    fn patch_keeps_what_it_does_not_name() {
        let current = poll(PollType::Single, PollStatus::Draft);
        let p = input(&body(json!({"multiple": true})), Some(&current)).unwrap();
        assert_eq!(p.poll_type, PollType::Multiple);
        assert_eq!(p.options, current.options);
        assert_eq!(p.question, "Q");
    }

    #[test]
    fn a_launched_poll_takes_only_show_results() {
        let current = poll(PollType::Single, PollStatus::Launched);
        let same = input(&body(json!({"show_results": false})), Some(&current)).unwrap();
        assert!(check_update(&current, &same).is_ok());
        let changed = input(&body(json!({"question": "R"})), Some(&current)).unwrap();
        assert_eq!(
            check_update(&current, &changed).unwrap_err().to_string(),
            "the poll is launched: only show_results can change once a poll is launched"
        );
        let draft = poll(PollType::Single, PollStatus::Draft);
        assert!(check_update(&draft, &changed).is_ok());
    }

    #[test]
    fn answers() {
        let ids = |v: &[&str]| PollAnswer::Options(v.iter().map(|s| s.to_string()).collect());
        let single = poll(PollType::Single, PollStatus::Launched);
        assert_eq!(
            ballot(&single, ids(&["a", "a"])),
            Ok(Ballot::Options(vec!["a".into()]))
        );
        let msg = |r: Result<Ballot, PollRefusal>| r.unwrap_err().to_string();
        assert_eq!(
            msg(ballot(&single, ids(&["a", "b"]))),
            "choose exactly one option"
        );
        assert_eq!(
            msg(ballot(&single, ids(&["z"]))),
            "'z' is not an option of this poll"
        );
        assert_eq!(
            msg(ballot(&single, PollAnswer::Text("x".into()))),
            "this poll takes option ids"
        );
        let multiple = poll(PollType::Multiple, PollStatus::Launched);
        assert_eq!(
            msg(ballot(&multiple, ids(&[]))),
            "choose at least one option"
        );
        let free = poll(PollType::Free, PollStatus::Launched);
        assert_eq!(
            ballot(&free, PollAnswer::Text(" hi ".into())),
            Ok(Ballot::Text("hi".into()))
        );
        assert_eq!(
            msg(ballot(&free, PollAnswer::Text("  ".into()))),
            "the answer must be 1 to 1000 characters"
        );
        assert_eq!(
            msg(ballot(&free, ids(&["a"]))),
            "a free poll takes a text answer"
        );
        let draft = poll(PollType::Single, PollStatus::Draft);
        assert!(matches!(
            ballot(&draft, ids(&["a"])),
            Err(PollRefusal::NotTakingAnswers(PollStatus::Draft))
        ));
    }
}
