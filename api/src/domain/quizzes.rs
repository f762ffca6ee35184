//! Quizzes: the definition a body may give (create, and PATCH where items
//! with an id update that item), the run lifecycle `created -> launched ->
//! ended` (an ended quiz may be launched again in a new session), and what a
//! valid answer to one of its questions is.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::fields::{self, FieldErrors, Invalid, push};

pub const MAX_TEXT_CHARS: usize = 512;
pub const MAX_QUESTIONS: usize = 100;
pub const MAX_CHOICES: usize = 20;

/// Where a quiz's current run is; stored and returned as `created`,
/// `launched`, `ended`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuizStatus {
    Created,
    Launched,
    Ended,
}

impl QuizStatus {
    /// The stored spelling (exact: statuses are written by this crate only).
    pub fn parse(s: &str) -> Option<QuizStatus> {
        match s {
            "created" => Some(QuizStatus::Created),
            "launched" => Some(QuizStatus::Launched),
            "ended" => Some(QuizStatus::Ended),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            QuizStatus::Created => "created",
            QuizStatus::Launched => "launched",
            QuizStatus::Ended => "ended",
        }
    }

    /// Launching: any quiz not running now (an ended one runs again).
    pub fn launch(self) -> Result<QuizStatus, QuizRefusal> {
        match self {
            QuizStatus::Launched => Err(QuizRefusal::AlreadyLaunched),
            _ => Ok(QuizStatus::Launched),
        }
    }

    /// Ending: only a launched quiz.
    pub fn end(self) -> Result<QuizStatus, QuizRefusal> {
        match self {
            QuizStatus::Launched => Ok(QuizStatus::Ended),
            other => Err(QuizRefusal::EndNotLaunched(other)),
        }
    }

    /// Answers are taken only while the quiz is launched.
    pub fn takes_answers(self) -> Result<(), QuizRefusal> {
        match self {
            QuizStatus::Launched => Ok(()),
            other => Err(QuizRefusal::NotTakingAnswers(other)),
        }
    }

    /// A launched quiz cannot be changed.
    pub fn check_change(self) -> Result<(), QuizRefusal> {
        match self {
            QuizStatus::Launched => Err(QuizRefusal::ChangeWhileLaunched),
            _ => Ok(()),
        }
    }
}

impl std::fmt::Display for QuizStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a quiz refuses a transition, a change or an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuizRefusal {
    #[error("the quiz is already launched")]
    AlreadyLaunched,
    #[error("the quiz is {0}; only a launched quiz can be ended")]
    EndNotLaunched(QuizStatus),
    #[error("the quiz is {0}; answers are taken only while it is launched")]
    NotTakingAnswers(QuizStatus),
    #[error("the quiz is launched: end it before changing it")]
    ChangeWhileLaunched,
    /// The answer does not fit the question (the message says how).
    #[error("{0}")]
    InvalidAnswer(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QuizChoice {
    pub id: String,
    pub text: String,
    pub correct: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QuizQuestion {
    pub id: String,
    pub text: String,
    pub multiple: bool,
    pub choices: Vec<QuizChoice>,
}

/// A quiz as the API returns it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Quiz {
    pub id: String,
    pub title: String,
    /// The time limit in minutes (rounded up), null for none.
    pub time_limit_minutes: Option<i64>,
    pub time_limit_seconds: Option<i64>,
    /// `quiz` (the limit is for the whole quiz) or `question` (per question).
    pub timing_mode: Option<String>,
    /// created | launched | ended
    #[schema(value_type = String)]
    pub status: QuizStatus,
    pub session_id: Option<String>,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub questions: Vec<QuizQuestion>,
    pub created_at: String,
    pub updated_at: String,
}

/// A quiz as participants of a live room see it: without the correct
/// answers (see [`Quiz::for_room`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RoomQuiz {
    pub id: String,
    pub title: String,
    pub time_limit_minutes: Option<i64>,
    pub time_limit_seconds: Option<i64>,
    pub timing_mode: Option<String>,
    pub status: QuizStatus,
    pub session_id: Option<String>,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub questions: Vec<RoomQuizQuestion>,
    pub created_at: String,
    pub updated_at: String,
    /// Seconds left of a running timed quiz (only in a joining
    /// participant's catch-up state).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends_in_seconds: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RoomQuizQuestion {
    pub id: String,
    pub text: String,
    pub multiple: bool,
    pub choices: Vec<RoomQuizChoice>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RoomQuizChoice {
    pub id: String,
    pub text: String,
}

impl Quiz {
    /// The quiz without its correct answers, for the room while it runs;
    /// `ends_in_seconds` is the time left when a participant catches up.
    pub fn for_room(&self, ends_in_seconds: Option<u64>) -> RoomQuiz {
        RoomQuiz {
            id: self.id.clone(),
            title: self.title.clone(),
            time_limit_minutes: self.time_limit_minutes,
            time_limit_seconds: self.time_limit_seconds,
            timing_mode: self.timing_mode.clone(),
            status: self.status,
            session_id: self.session_id.clone(),
            started_at: self.started_at.clone(),
            ended_at: self.ended_at.clone(),
            questions: self
                .questions
                .iter()
                .map(|q| RoomQuizQuestion {
                    id: q.id.clone(),
                    text: q.text.clone(),
                    multiple: q.multiple,
                    choices: q
                        .choices
                        .iter()
                        .map(|c| RoomQuizChoice {
                            id: c.id.clone(),
                            text: c.text.clone(),
                        })
                        .collect(),
                })
                .collect(),
            created_at: self.created_at.clone(),
            updated_at: self.updated_at.clone(),
            ends_in_seconds,
        }
    }
}

/// A validated quiz definition (ids already assigned).
#[derive(Debug, Clone)]
pub struct QuizInput {
    pub title: String,
    pub time_limit_seconds: Option<i64>,
    pub timing_mode: Option<String>,
    pub questions: Vec<QuizQuestion>,
}

fn int_in(
    body: &Map<String, Value>,
    field: &str,
    max: i64,
    errors: &mut FieldErrors,
) -> Option<Option<i64>> {
    match body.get(field) {
        None => None,
        Some(Value::Null) => Some(None),
        Some(v) => match v.as_i64() {
            Some(n) if (1..=max).contains(&n) => Some(Some(n)),
            _ => {
                push(
                    errors,
                    field,
                    format!("must be an integer between 1 and {max}"),
                );
                None
            }
        },
    }
}

/// A text that may come as `text` or an alias (`question`, `label`).
fn item_text(
    obj: &Map<String, Value>,
    aliases: &[&str],
    path: &str,
    current: Option<&str>,
    errors: &mut FieldErrors,
) -> String {
    let v = aliases
        .iter()
        .find_map(|k| obj.get(*k).filter(|v| !v.is_null()));
    match (v, current) {
        (None, Some(c)) => c.to_string(),
        (None, None) => {
            push(errors, path, "is required");
            String::new()
        }
        (Some(Value::String(s)), _) => {
            fields::check_text(s, path, MAX_TEXT_CHARS, errors).unwrap_or_default()
        }
        (Some(_), _) => {
            push(errors, path, "must be a string");
            String::new()
        }
    }
}

fn item_bool(
    obj: &Map<String, Value>,
    field: &str,
    path: &str,
    current: bool,
    errors: &mut FieldErrors,
) -> bool {
    match obj.get(field) {
        None | Some(Value::Null) => current,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            push(errors, path, "must be a boolean");
            current
        }
    }
}

/// The id of an item: on create ignored (fresh UUID); on update it must name
/// an existing item, and a missing id creates one.
fn item_id<'a, T>(
    obj: &Map<String, Value>,
    existing: Option<&'a [T]>,
    id_of: impl Fn(&T) -> &str,
    path: &str,
    errors: &mut FieldErrors,
) -> (String, Option<&'a T>) {
    let fresh = || uuid::Uuid::new_v4().to_string();
    match (obj.get("id"), existing) {
        (Some(Value::String(id)), Some(items)) => match items.iter().find(|i| id_of(i) == id) {
            Some(found) => (id.clone(), Some(found)),
            None => {
                push(
                    errors,
                    path,
                    format!("no item '{id}' to update (omit the id to create one)"),
                );
                (fresh(), None)
            }
        },
        (None | Some(Value::Null), _) | (Some(Value::String(_)), None) => (fresh(), None),
        (Some(_), _) => {
            push(errors, path, "must be a string");
            (fresh(), None)
        }
    }
}

fn questions_field(
    value: &Value,
    current: Option<&[QuizQuestion]>,
    errors: &mut FieldErrors,
) -> Vec<QuizQuestion> {
    let Some(items) = value.as_array() else {
        push(errors, "questions", "must be an array of questions");
        return Vec::new();
    };
    if items.is_empty() || items.len() > MAX_QUESTIONS {
        push(
            errors,
            "questions",
            format!("must have 1 to {MAX_QUESTIONS} questions"),
        );
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = format!("questions.{i}");
        let Some(obj) = item.as_object() else {
            push(errors, &p, "must be an object");
            continue;
        };
        let (id, existing) = item_id(obj, current, |q| q.id.as_str(), &format!("{p}.id"), errors);
        let text = item_text(
            obj,
            &["text", "question"],
            &format!("{p}.text"),
            existing.map(|e| e.text.as_str()),
            errors,
        );
        let multiple = item_bool(
            obj,
            "multiple",
            &format!("{p}.multiple"),
            existing.is_some_and(|e| e.multiple),
            errors,
        );
        let choices = match (obj.get("choices"), existing) {
            (None, Some(e)) => e.choices.clone(),
            (None | Some(Value::Null), _) => {
                push(errors, &format!("{p}.choices"), "is required");
                Vec::new()
            }
            (Some(v), e) => choices_field(v, e.map(|e| e.choices.as_slice()), &p, errors),
        };
        if !choices.is_empty() {
            let correct = choices.iter().filter(|c| c.correct).count();
            if correct == 0 {
                push(
                    errors,
                    &format!("{p}.choices"),
                    "at least one choice must be correct",
                );
            } else if !multiple && correct > 1 {
                push(
                    errors,
                    &format!("{p}.choices"),
                    "a single-answer question has exactly one correct choice (set multiple: true)",
                );
            }
        }
        out.push(QuizQuestion {
            id,
            text,
            multiple,
            choices,
        });
    }
    out
}

fn choices_field(
    value: &Value,
    current: Option<&[QuizChoice]>,
    p: &str,
    errors: &mut FieldErrors,
) -> Vec<QuizChoice> {
    let Some(items) = value.as_array() else {
        push(
            errors,
            &format!("{p}.choices"),
            "must be an array of choices",
        );
        return Vec::new();
    };
    if items.len() < 2 || items.len() > MAX_CHOICES {
        push(
            errors,
            &format!("{p}.choices"),
            format!("must have 2 to {MAX_CHOICES} choices"),
        );
        return Vec::new();
    }
    let mut out = Vec::new();
    for (j, item) in items.iter().enumerate() {
        let cp = format!("{p}.choices.{j}");
        let Some(obj) = item.as_object() else {
            push(errors, &cp, "must be an object");
            continue;
        };
        let (id, existing) = item_id(obj, current, |c| c.id.as_str(), &format!("{cp}.id"), errors);
        let text = item_text(
            obj,
            &["text", "label"],
            &format!("{cp}.text"),
            existing.map(|e| e.text.as_str()),
            errors,
        );
        let correct = item_bool(
            obj,
            "correct",
            &format!("{cp}.correct"),
            existing.is_some_and(|e| e.correct),
            errors,
        );
        out.push(QuizChoice { id, text, correct });
    }
    out
}

/// Validates a create body (`current` None) or a PATCH body into the quiz's next definition.
pub fn input(body: &Map<String, Value>, current: Option<&Quiz>) -> Result<QuizInput, Invalid> {
    let mut errors = FieldErrors::new();
    let title = match (body.get("title"), current) {
        (None, Some(c)) => Some(c.title.clone()),
        _ => fields::text(body, "title", MAX_TEXT_CHARS, &mut errors),
    };
    let minutes = int_in(body, "time_limit_minutes", 1440, &mut errors);
    let seconds = int_in(body, "time_limit_seconds", 86400, &mut errors);
    let time_limit_seconds = match (seconds, minutes) {
        (Some(Some(s)), _) => Some(s),
        (_, Some(Some(m))) => Some(m * 60),
        (Some(None), _) | (_, Some(None)) => None,
        (None, None) => current.and_then(|c| c.time_limit_seconds),
    };
    let timing_mode = match body.get("timing_mode") {
        None => current.and_then(|c| c.timing_mode.clone()),
        Some(Value::Null) => None,
        Some(Value::String(s)) if s == "quiz" || s == "question" => Some(s.clone()),
        Some(_) => {
            push(
                &mut errors,
                "timing_mode",
                "must be \"quiz\", \"question\" or null",
            );
            None
        }
    };
    let questions = match (body.get("questions"), current) {
        (None, Some(c)) => c.questions.clone(),
        (None | Some(Value::Null), None) => {
            push(&mut errors, "questions", "is required");
            Vec::new()
        }
        (Some(v), c) => questions_field(v, c.map(|c| c.questions.as_slice()), &mut errors),
    };
    fields::check(errors)?;
    Ok(QuizInput {
        title: title.unwrap_or_default(),
        time_limit_seconds,
        timing_mode,
        questions,
    })
}

/// Checks an answer (choice ids) to question `question_id` of a launched
/// quiz: one choice for a single-answer question, one or more for a
/// multiple one, each a choice of that question. Returns the ids without
/// duplicates, in the order given.
pub fn answer<'a>(
    quiz: &Quiz,
    question_id: &str,
    choice_ids: &'a [String],
) -> Result<Vec<&'a String>, QuizRefusal> {
    quiz.status.takes_answers()?;
    let question = quiz
        .questions
        .iter()
        .find(|x| x.id == question_id)
        .ok_or_else(|| QuizRefusal::InvalidAnswer(format!("no question '{question_id}'")))?;
    let mut seen = HashSet::new();
    let ids: Vec<&String> = choice_ids.iter().filter(|c| seen.insert(*c)).collect();
    if ids.is_empty() || (!question.multiple && ids.len() != 1) {
        return Err(QuizRefusal::InvalidAnswer(if question.multiple {
            "choose at least one answer".into()
        } else {
            "choose exactly one answer".into()
        }));
    }
    if let Some(bad) = ids
        .iter()
        .find(|c| !question.choices.iter().any(|x| &&x.id == *c))
    {
        return Err(QuizRefusal::InvalidAnswer(format!(
            "'{bad}' is not a choice of this question"
        )));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn quiz(status: QuizStatus) -> Quiz {
        let def = input(
            &body(json!({"title": "T", "questions": [
                {"text": "one?", "choices": [{"text": "a", "correct": true}, {"text": "b"}]},
                {"text": "many?", "multiple": true,
                 "choices": [{"text": "a", "correct": true}, {"text": "b", "correct": true}]}
            ]})),
            None,
        )
        .unwrap();
        Quiz {
            id: "q".into(),
            title: def.title,
            time_limit_minutes: None,
            time_limit_seconds: def.time_limit_seconds,
            timing_mode: def.timing_mode,
            status,
            session_id: None,
            started_at: None,
            ended_at: None,
            questions: def.questions,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn status_spelling_is_the_stored_one() {
        for s in [QuizStatus::Created, QuizStatus::Launched, QuizStatus::Ended] {
            assert_eq!(QuizStatus::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.as_str()));
        }
    }

    #[test]
    fn lifecycle() {
        assert_eq!(QuizStatus::Created.launch(), Ok(QuizStatus::Launched));
        assert_eq!(QuizStatus::Ended.launch(), Ok(QuizStatus::Launched));
        assert_eq!(
            QuizStatus::Launched.launch().unwrap_err().to_string(),
            "the quiz is already launched"
        );
        assert_eq!(QuizStatus::Launched.end(), Ok(QuizStatus::Ended));
        assert_eq!(
            QuizStatus::Created.end().unwrap_err().to_string(),
            "the quiz is created; only a launched quiz can be ended"
        );
        assert_eq!(
            QuizStatus::Launched.check_change().unwrap_err().to_string(),
            "the quiz is launched: end it before changing it"
        );
        assert!(QuizStatus::Ended.check_change().is_ok());
    }

    #[test]
    fn definition() {
        let q = input(
            &body(json!({"title": "T", "time_limit_minutes": 2, "questions": [
                {"question": "x", "choices": [{"label": "a", "correct": true}, {"text": "b"}]}]})),
            None,
        )
        .unwrap();
        assert_eq!(q.time_limit_seconds, Some(120));
        assert_eq!(q.questions[0].text, "x");
        let e = input(
            &body(json!({"title": "T", "timing_mode": "x", "questions": [
                {"text": "x", "choices": [{"text": "a", "correct": true}, {"text": "b", "correct": true}]}]})),
            None,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "questions.0.choices: a single-answer question has exactly one correct choice \
             (set multiple: true); timing_mode: must be \"quiz\", \"question\" or null"
        );
        let current = quiz(QuizStatus::Created);
        let id = current.questions[0].id.clone();
        let next = input(
            &body(json!({"questions": [{"id": id, "text": "renamed"}, {"id": "nope"}]})),
            Some(&current),
        )
        .unwrap_err();
        assert_eq!(
            next.0["questions.1.id"],
            vec!["no item 'nope' to update (omit the id to create one)"]
        );
    }

    #[test]
    fn answers() {
        let q = quiz(QuizStatus::Launched);
        let one = &q.questions[0];
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let a = one.choices[0].id.clone();
        let b = one.choices[1].id.clone();
        let given = ids(&[&a, &a]);
        assert_eq!(answer(&q, &one.id, &given).unwrap(), vec![&a]);
        let msg = |r: Result<Vec<&String>, QuizRefusal>| r.unwrap_err().to_string();
        assert_eq!(
            msg(answer(&q, &one.id, &ids(&[&a, &b]))),
            "choose exactly one answer"
        );
        assert_eq!(
            msg(answer(&q, &q.questions[1].id, &[])),
            "choose at least one answer"
        );
        assert_eq!(msg(answer(&q, "x", &ids(&[&a]))), "no question 'x'");
        assert_eq!(
            msg(answer(&q, &one.id, &ids(&["z"]))),
            "'z' is not a choice of this question"
        );
        let ended = quiz(QuizStatus::Ended);
        assert_eq!(
            msg(answer(&ended, &one.id, &ids(&[&a]))),
            "the quiz is ended; answers are taken only while it is launched"
        );
    }
}
