//! Quizzes: CRUD (PATCH updates items by id and creates items without one),
//! results per run, export, and CSV template/import.

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value};

use crate::ApiState;
use crate::auth::Team;
use crate::collab;
use crate::csv;
use crate::domain::Invalid;
use crate::domain::quizzes::{self as rules, Quiz, QuizInput};
use crate::error::{ApiError, ApiResult, ErrorBody, FieldErrors};
use crate::extract::{JsonObject, List, QueryPairs};
use crate::files::{self, Format};
use crate::store::quizzes::{QuizError, QuizRun, Quizzes};

impl From<QuizError> for ApiError {
    fn from(e: QuizError) -> Self {
        match e {
            QuizError::NotFound => ApiError::not_found("quiz"),
            QuizError::State(m) => ApiError::Conflict(m),
            QuizError::AlreadyAnswered => ApiError::Conflict(e.to_string()),
            QuizError::InvalidAnswer(m) => ApiError::field("answer", m),
            QuizError::Store(s) => s.into(),
        }
    }
}

collab::collection_handlers! {
    Quizzes => Quiz, tag = "quizzes";
    /// List a room's quizzes (paginated).
    list list_quizzes = "/api/v1/rooms/{room}/quizzes";
    /// Delete every quiz of a room.
    delete_room delete_quizzes = "/api/v1/rooms/{room}/quizzes";
    /// Delete the quizzes run in a session, and the answers given in it.
    delete_session delete_session_quizzes = "/api/v1/sessions/{session}/quizzes";
}

/// Create a quiz: `title`, time limit, `timing_mode`, `questions` with `choices`.
#[utoipa::path(post, path = "/api/v1/rooms/{room}/quizzes", tag = "quizzes",
    params(("room" = String, Path, description = "UUID or friendly_url")),
    request_body(content = inline(serde_json::Value), description = "{\"title\", \"time_limit_minutes\"|\"time_limit_seconds\", \"timing_mode\", \"questions\": [{\"text\", \"multiple\", \"choices\": [{\"text\", \"correct\"}]}]}"),
    responses((status = 200, body = Quiz), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_quiz(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Quiz>> {
    let room = collab::room(&state, &team, &room).await?;
    let input = rules::input(&body, None)?;
    Ok(Json(
        state
            .db
            .create_of::<Quizzes>(&team.id, &room.id, &input)
            .await?,
    ))
}

/// Get a quiz with its questions and choices.
#[utoipa::path(get, path = "/api/v1/rooms/{room}/quizzes/{quiz}", tag = "quizzes",
    params(("room" = String, Path, description = "UUID or friendly_url"), ("quiz" = String, Path)),
    responses((status = 200, body = Quiz), (status = 404, body = ErrorBody)))]
pub async fn get_quiz(
    State(state): State<ApiState>,
    team: Team,
    Path((room, quiz)): Path<(String, String)>,
) -> ApiResult<Json<Quiz>> {
    let room = collab::room(&state, &team, &room).await?;
    collab::get::<Quizzes>(&state, &room, &quiz).await
}

/// Update a quiz. `questions` (and their `choices`) with an id update that
/// item; without an id they are created; items left out are removed.
/// A launched quiz cannot be changed (409).
#[utoipa::path(patch, path = "/api/v1/rooms/{room}/quizzes/{quiz}", tag = "quizzes",
    params(("room" = String, Path, description = "UUID or friendly_url"), ("quiz" = String, Path)),
    request_body(content = inline(serde_json::Value), description = "Any field of the create body; items with ids update"),
    responses((status = 200, body = Quiz), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_quiz(
    State(state): State<ApiState>,
    team: Team,
    Path((room, quiz)): Path<(String, String)>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Quiz>> {
    let room = collab::room(&state, &team, &room).await?;
    let updated = state
        .db
        .update_of::<Quizzes, _>(&room.id, &quiz, |current| {
            current
                .status
                .check_change()
                .map_err(|r| ApiError::Conflict(r.to_string()))?;
            Ok::<_, ApiError>(rules::input(&body, Some(current))?)
        })
        .await?;
    Ok(Json(updated))
}

/// Delete a quiz and its answers.
#[utoipa::path(delete, path = "/api/v1/rooms/{room}/quizzes/{quiz}", tag = "quizzes",
    params(("room" = String, Path, description = "UUID or friendly_url"), ("quiz" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_quiz(
    State(state): State<ApiState>,
    team: Team,
    Path((room, quiz)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let room = collab::room(&state, &team, &room).await?;
    collab::delete_one::<Quizzes>(&state, &room, quiz).await
}

/// Results of a quiz per run: per question the number who answered, per choice its voters.
#[utoipa::path(get, path = "/api/v1/rooms/{room}/quizzes/{quiz}/results", tag = "quizzes",
    params(("room" = String, Path, description = "UUID or friendly_url"), ("quiz" = String, Path),
           ("session_id" = Option<String>, Query)),
    responses((status = 200, body = Vec<QuizRun>), (status = 404, body = ErrorBody)))]
pub async fn quiz_results(
    State(state): State<ApiState>,
    team: Team,
    Path((room, quiz)): Path<(String, String)>,
    query: QueryPairs,
) -> ApiResult<Json<Vec<QuizRun>>> {
    let room = collab::room(&state, &team, &room).await?;
    let Json(quiz) = collab::get::<Quizzes>(&state, &room, &quiz).await?;
    let session = query.get("session_id").filter(|s| !s.is_empty());
    Ok(Json(state.db.quiz_results(&quiz, session).await?))
}

/// Export the results of every quiz of the room (`format` csv, txt or json).
#[utoipa::path(get, path = "/api/v1/rooms/{room}/quizzes/export", tag = "quizzes",
    params(("room" = String, Path, description = "UUID or friendly_url"),
           ("format" = Option<String>, Query, description = "csv (default), txt or json"), ("session_id" = Option<String>, Query)),
    responses((status = 200, description = "The quiz results as a file"), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn export_quizzes(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
    query: QueryPairs,
) -> ApiResult<Response> {
    let room = collab::room(&state, &team, &room).await?;
    let format = Format::parse(
        query.get("format"),
        &[Format::Csv, Format::Txt, Format::Json],
    )?;
    let session = query.get("session_id").filter(|s| !s.is_empty());
    let mut runs = Vec::new();
    for q in state.db.all_of::<Quizzes>(&room.id, None).await? {
        runs.extend(state.db.quiz_results(&q, session).await?);
    }
    let body = match format {
        Format::Json => serde_json::to_vec_pretty(&runs).map_err(ApiError::internal)?,
        Format::Csv => {
            let mut w = csv::Writer::new();
            w.row(&[
                "quiz_id",
                "quiz",
                "session_id",
                "question",
                "answered",
                "choice",
                "correct",
                "voted",
                "voters",
            ]);
            for r in &runs {
                for q in &r.questions {
                    for c in &q.votes {
                        let voters: Vec<&str> = c.voters.iter().map(|v| v.name.as_str()).collect();
                        w.row(&[
                            r.id.as_str(),
                            &r.title,
                            r.session_id.as_deref().unwrap_or(""),
                            &q.question,
                            &q.voted.to_string(),
                            &c.text,
                            if c.correct { "true" } else { "false" },
                            &c.voted.to_string(),
                            &voters.join("; "),
                        ]);
                    }
                }
            }
            w.finish().into_bytes()
        }
        Format::Txt => {
            let mut out = String::new();
            for r in &runs {
                out.push_str(&format!(
                    "{} (session {}, {})\n",
                    r.title,
                    r.session_id.as_deref().unwrap_or("-"),
                    r.status
                ));
                for q in &r.questions {
                    out.push_str(&format!("  {} ({} answered)\n", q.question, q.voted));
                    for c in &q.votes {
                        let mark = if c.correct { " [correct]" } else { "" };
                        out.push_str(&format!("    - {}{mark}: {}\n", c.text, c.voted));
                    }
                }
                out.push('\n');
            }
            out.into_bytes()
        }
    };
    Ok(files::download(
        format.content_type(),
        &format!("quizzes-{}.{}", room.friendly_url, format.ext()),
        body,
    ))
}

const TEMPLATE_HEADER: [&str; 6] = [
    "quiz_title",
    "time_limit_minutes",
    "question",
    "multiple",
    "choices",
    "correct",
];

/// Download the CSV template for quiz import.
#[utoipa::path(get, path = "/api/v1/rooms/{room}/quizzes/template", tag = "quizzes",
    params(("room" = String, Path, description = "UUID or friendly_url")),
    responses((status = 200, description = "CSV: quiz_title,time_limit_minutes,question,multiple,choices (| separated),correct (| separated choice numbers)"), (status = 404, body = ErrorBody)))]
pub async fn quiz_template(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
) -> ApiResult<Response> {
    collab::room(&state, &team, &room).await?;
    let mut w = csv::Writer::new();
    w.row(&TEMPLATE_HEADER);
    w.row(&[
        "My quiz",
        "10",
        "Question #1",
        "false",
        "Correct answer|Wrong answer",
        "1",
    ]);
    w.row(&[
        "My quiz",
        "10",
        "Question #2 (multiple choice)",
        "true",
        "Correct answer #1|Wrong answer|Correct answer #2",
        "1|3",
    ]);
    Ok(files::download(
        files::CSV,
        "quizzes-template.csv",
        w.finish(),
    ))
}

/// Parses an import file into quizzes (rows with the same title form one
/// quiz), or every problem, line by line.
pub fn parse_import(bytes: &[u8]) -> Result<Vec<QuizInput>, Vec<String>> {
    let records = csv::parse(bytes).map_err(|e| vec![e])?;
    let mut problems = Vec::new();
    // title -> (first line, time limit, questions as JSON)
    let mut quizzes: Vec<(String, usize, Option<String>, Vec<Value>)> = Vec::new();
    let mut rows = records.iter().peekable();
    if let Some(first) = rows.peek()
        && first
            .cells
            .first()
            .is_some_and(|c| c.trim().eq_ignore_ascii_case("quiz_title"))
    {
        rows.next();
    }
    for r in rows {
        let line = r.line;
        if r.cells.len() != TEMPLATE_HEADER.len() {
            problems.push(format!(
                "line {line}: expected {} columns ({}), found {}",
                TEMPLATE_HEADER.len(),
                TEMPLATE_HEADER.join(","),
                r.cells.len()
            ));
            continue;
        }
        let c = &r.cells;
        let multiple = match c[3].trim().to_ascii_lowercase().as_str() {
            "" | "false" | "no" | "0" => false,
            "true" | "yes" | "1" => true,
            other => {
                problems.push(format!(
                    "line {line}: multiple must be true or false, not '{other}'"
                ));
                continue;
            }
        };
        let choices: Vec<&str> = c[4]
            .split('|')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let mut correct = Vec::new();
        let mut bad = false;
        for n in c[5].split('|').map(str::trim).filter(|s| !s.is_empty()) {
            match n.parse::<usize>() {
                Ok(k) if (1..=choices.len()).contains(&k) => correct.push(k - 1),
                _ => {
                    problems.push(format!(
                        "line {line}: correct must list choice numbers from 1 to {}, not '{n}'",
                        choices.len()
                    ));
                    bad = true;
                }
            }
        }
        if bad {
            continue;
        }
        let question = serde_json::json!({
            "text": c[2],
            "multiple": multiple,
            "choices": choices.iter().enumerate().map(|(i, t)| serde_json::json!({"text": t, "correct": correct.contains(&i)})).collect::<Vec<_>>(),
        });
        let limit = Some(c[1].trim().to_string()).filter(|s| !s.is_empty());
        match quizzes.iter_mut().find(|q| q.0 == c[0]) {
            Some(q) => q.3.push(question),
            None => quizzes.push((c[0].clone(), line, limit, vec![question])),
        }
    }
    let mut out = Vec::new();
    for (title, line, limit, questions) in quizzes {
        let mut body = Map::new();
        body.insert("title".into(), Value::from(title));
        if let Some(l) = &limit {
            match l.parse::<i64>() {
                Ok(n) => {
                    body.insert("time_limit_minutes".into(), Value::from(n));
                }
                Err(_) => {
                    problems.push(format!(
                        "line {line}: time_limit_minutes must be a whole number, not '{l}'"
                    ));
                    continue;
                }
            }
        }
        body.insert("questions".into(), Value::Array(questions));
        match rules::input(&body, None) {
            Ok(q) => out.push(q),
            Err(Invalid(errors)) => {
                for (field, msgs) in errors {
                    for m in msgs {
                        problems.push(format!("line {line}: {field} {m}"));
                    }
                }
            }
        }
    }
    if out.is_empty() && problems.is_empty() {
        problems.push("the file has no quiz rows".into());
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Import quizzes from a CSV file (multipart field `file`, at most 2 MB).
/// All rows are checked first: any bad row is reported and nothing is imported.
#[utoipa::path(post, path = "/api/v1/rooms/{room}/quizzes/import", tag = "quizzes",
    params(("room" = String, Path, description = "UUID or friendly_url")),
    request_body(content = String, content_type = "multipart/form-data", description = "field `file`: CSV or TXT, max 2 MB"),
    responses((status = 200, body = List<Quiz>), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn import_quizzes(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
    req: Request,
) -> ApiResult<Json<List<Quiz>>> {
    let room = collab::room(&state, &team, &room).await?;
    let bytes = files::read_upload(req).await?;
    let inputs = parse_import(&bytes).map_err(|problems| {
        let mut errors = FieldErrors::new();
        errors.insert("file".into(), problems);
        ApiError::fields(errors)
    })?;
    let quizzes = state
        .db
        .create_all_of::<Quizzes>(&team.id, &room.id, &inputs)
        .await?;
    Ok(Json(List {
        total_count: quizzes.len() as i64,
        data: quizzes,
    }))
}
