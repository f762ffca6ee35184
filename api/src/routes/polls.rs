//! Polls: CRUD, results, export, publishing results into the live session,
//! and CSV template/import.

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
use crate::domain::polls::{self as rules, Poll, PollInput};
use crate::error::{ApiError, ApiResult, ErrorBody, FieldErrors};
use crate::extract::{JsonObject, List, QueryPairs};
use crate::files::{self, Format};
use crate::live_events::LiveEvent;
use crate::store::polls::{PollError, PollResults, Polls};

impl From<PollError> for ApiError {
    fn from(e: PollError) -> Self {
        match e {
            PollError::NotFound => ApiError::not_found("poll"),
            PollError::State(m) => ApiError::Conflict(m),
            PollError::AlreadyVoted => ApiError::Conflict(e.to_string()),
            PollError::InvalidAnswer(m) => ApiError::field("answer", m),
            PollError::Store(s) => s.into(),
        }
    }
}

collab::collection_handlers! {
    Polls => Poll, tag = "polls";
    /// List a room's polls (paginated).
    list list_polls = "/api/v1/rooms/{room}/polls";
    /// Delete every poll of a room.
    delete_room delete_polls = "/api/v1/rooms/{room}/polls";
    /// Delete the polls launched in a session, and the answers given in it.
    delete_session delete_session_polls = "/api/v1/sessions/{session}/polls";
}

/// Create a poll (`single`, `multiple` or `free`); it starts as a draft.
#[utoipa::path(post, path = "/api/v1/rooms/{room}/polls", tag = "polls",
    params(("room" = String, Path, description = "UUID or friendly_url")),
    request_body(content = inline(serde_json::Value), description = "{\"question\", \"type\", \"anonymous\", \"show_results\", \"options\": [{\"id\"?, \"label\"|\"text\"}]}"),
    responses((status = 200, body = Poll), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_poll(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Poll>> {
    let room = collab::room(&state, &team, &room).await?;
    let input = rules::input(&body, None)?;
    Ok(Json(
        state
            .db
            .create_of::<Polls>(&team.id, &room.id, &input)
            .await?,
    ))
}

/// Get one poll.
#[utoipa::path(get, path = "/api/v1/rooms/{room}/polls/{poll}", tag = "polls",
    params(("room" = String, Path, description = "UUID or friendly_url"), ("poll" = String, Path)),
    responses((status = 200, body = Poll), (status = 404, body = ErrorBody)))]
pub async fn get_poll(
    State(state): State<ApiState>,
    team: Team,
    Path((room, poll)): Path<(String, String)>,
) -> ApiResult<Json<Poll>> {
    let room = collab::room(&state, &team, &room).await?;
    collab::get::<Polls>(&state, &room, &poll).await
}

/// Update a poll. A launched or ended poll only takes `show_results`.
#[utoipa::path(patch, path = "/api/v1/rooms/{room}/polls/{poll}", tag = "polls",
    params(("room" = String, Path, description = "UUID or friendly_url"), ("poll" = String, Path)),
    request_body(content = inline(serde_json::Value), description = "Any field of the create body"),
    responses((status = 200, body = Poll), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_poll(
    State(state): State<ApiState>,
    team: Team,
    Path((room, poll)): Path<(String, String)>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Poll>> {
    let room = collab::room(&state, &team, &room).await?;
    let updated = state
        .db
        .update_of::<Polls, _>(&room.id, &poll, |current| {
            let next = rules::input(&body, Some(current))?;
            rules::check_update(current, &next).map_err(|r| ApiError::Conflict(r.to_string()))?;
            Ok::<_, ApiError>(next)
        })
        .await?;
    Ok(Json(updated))
}

/// Delete one poll and its answers.
#[utoipa::path(delete, path = "/api/v1/rooms/{room}/polls/{poll}", tag = "polls",
    params(("room" = String, Path, description = "UUID or friendly_url"), ("poll" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_poll(
    State(state): State<ApiState>,
    team: Team,
    Path((room, poll)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let room = collab::room(&state, &team, &room).await?;
    collab::delete_one::<Polls>(&state, &room, poll).await
}

/// Results of a poll per option, and free-text answers (`session_id` filters).
#[utoipa::path(get, path = "/api/v1/rooms/{room}/polls/{poll}/results", tag = "polls",
    params(("room" = String, Path, description = "UUID or friendly_url"), ("poll" = String, Path),
           ("session_id" = Option<String>, Query)),
    responses((status = 200, body = PollResults), (status = 404, body = ErrorBody)))]
pub async fn poll_results(
    State(state): State<ApiState>,
    team: Team,
    Path((room, poll)): Path<(String, String)>,
    query: QueryPairs,
) -> ApiResult<Json<PollResults>> {
    let room = collab::room(&state, &team, &room).await?;
    let session = query.get("session_id").filter(|s| !s.is_empty());
    Ok(Json(
        state
            .db
            .poll_results(&room.id, &poll, session)
            .await?
            .ok_or_else(|| ApiError::not_found("poll"))?,
    ))
}

/// Publish a poll's results to everyone in the (live) session.
#[utoipa::path(post, path = "/api/v1/sessions/{session}/polls/{poll}/publish-results", tag = "polls",
    params(("session" = String, Path, description = "Session UUID"), ("poll" = String, Path)),
    responses((status = 200, body = PollResults), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn publish_results(
    State(state): State<ApiState>,
    team: Team,
    Path((session, poll)): Path<(String, String)>,
) -> ApiResult<Json<PollResults>> {
    let session = collab::session(&state, &team, &session).await?;
    let results = state
        .db
        .poll_results(&session.room_id, &poll, Some(&session.id))
        .await?
        .ok_or_else(|| ApiError::not_found("poll"))?;
    if !session.live {
        return Err(ApiError::Conflict(
            "the session has ended: results can only be published into a live session".into(),
        ));
    }
    if !state
        .live
        .broadcast(
            &session.room_id,
            LiveEvent::PollResults {
                poll_id: results.id.clone(),
                results: results.clone(),
            },
        )
        .await
    {
        return Err(collab::not_live());
    }
    Ok(Json(results))
}

/// Export the results of every poll of the room (`format` csv, txt or json).
#[utoipa::path(get, path = "/api/v1/rooms/{room}/polls/export", tag = "polls",
    params(("room" = String, Path, description = "UUID or friendly_url"),
           ("format" = Option<String>, Query, description = "csv (default), txt or json"),
           ("session_id" = Option<String>, Query)),
    responses((status = 200, description = "The poll results as a file"), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn export_polls(
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
    let mut all = Vec::new();
    for p in state.db.all_of::<Polls>(&room.id, None).await? {
        all.push(state.db.results_of(p, session).await?);
    }
    let body = match format {
        Format::Json => serde_json::to_vec_pretty(&all).map_err(ApiError::internal)?,
        Format::Csv => {
            let mut w = csv::Writer::new();
            w.row(&[
                "poll_id", "question", "type", "status", "answer", "votes", "voters",
            ]);
            for r in &all {
                for o in &r.options {
                    let voters: Vec<&str> = o.voters.iter().map(|v| v.name.as_str()).collect();
                    w.row(&[
                        r.id.as_str(),
                        &r.question,
                        r.poll_type.as_str(),
                        r.status.as_str(),
                        &o.label,
                        &o.votes.to_string(),
                        &voters.join("; "),
                    ]);
                }
                for a in &r.answers {
                    w.row(&[
                        r.id.as_str(),
                        &r.question,
                        r.poll_type.as_str(),
                        r.status.as_str(),
                        &a.text,
                        "1",
                        a.participant_name.as_deref().unwrap_or(""),
                    ]);
                }
            }
            w.finish().into_bytes()
        }
        Format::Txt => {
            let mut out = String::new();
            for r in &all {
                out.push_str(&format!(
                    "{} ({}, {}, {} answered)\n",
                    r.question,
                    r.poll_type.as_str(),
                    r.status,
                    r.total_votes
                ));
                for o in &r.options {
                    out.push_str(&format!("  - {}: {}\n", o.label, o.votes));
                }
                for a in &r.answers {
                    match &a.participant_name {
                        Some(n) => out.push_str(&format!("  - {n}: {}\n", a.text)),
                        None => out.push_str(&format!("  - {}\n", a.text)),
                    }
                }
                out.push('\n');
            }
            out.into_bytes()
        }
    };
    Ok(files::download(
        format.content_type(),
        &format!("polls-{}.{}", room.friendly_url, format.ext()),
        body,
    ))
}

const TEMPLATE_HEADER: [&str; 4] = ["question", "type", "anonymous", "options"];

/// Download the CSV template for poll import.
#[utoipa::path(get, path = "/api/v1/rooms/{room}/polls/template", tag = "polls",
    params(("room" = String, Path, description = "UUID or friendly_url")),
    responses((status = 200, description = "CSV: question,type,anonymous,options (options separated by |)"), (status = 404, body = ErrorBody)))]
pub async fn poll_template(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
) -> ApiResult<Response> {
    collab::room(&state, &team, &room).await?;
    let mut w = csv::Writer::new();
    w.row(&TEMPLATE_HEADER);
    w.row(&[
        "What topic should we cover next?",
        "single",
        "false",
        "API Design|Security|Performance",
    ]);
    w.row(&[
        "Which days suit you?",
        "multiple",
        "true",
        "Monday|Wednesday|Friday",
    ]);
    w.row(&["Any other feedback?", "free", "true", ""]);
    Ok(files::download(
        files::CSV,
        "polls-template.csv",
        w.finish(),
    ))
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "" | "false" | "no" | "0" | "n" => Some(false),
        "true" | "yes" | "1" | "y" => Some(true),
        _ => None,
    }
}

/// Parses an import file into poll definitions, or every problem, line by line.
pub fn parse_import(bytes: &[u8]) -> Result<Vec<PollInput>, Vec<String>> {
    let records = csv::parse(bytes).map_err(|e| vec![e])?;
    let mut problems = Vec::new();
    let mut polls = Vec::new();
    let mut rows = records.iter().peekable();
    if let Some(first) = rows.peek()
        && first
            .cells
            .first()
            .is_some_and(|c| c.trim().eq_ignore_ascii_case("question"))
    {
        rows.next();
    }
    for r in rows {
        let line = r.line;
        if r.cells.len() != TEMPLATE_HEADER.len() {
            problems.push(format!(
                "line {line}: expected {} columns (question,type,anonymous,options), found {}",
                TEMPLATE_HEADER.len(),
                r.cells.len()
            ));
            continue;
        }
        let mut body = Map::new();
        body.insert("question".into(), Value::from(r.cells[0].clone()));
        let kind = if r.cells[1].trim().is_empty() {
            "single"
        } else {
            r.cells[1].trim()
        };
        body.insert("type".into(), Value::from(kind));
        match parse_bool(&r.cells[2]) {
            Some(b) => {
                body.insert("anonymous".into(), Value::from(b));
            }
            None => {
                problems.push(format!(
                    "line {line}: anonymous must be true or false, not '{}'",
                    r.cells[2]
                ));
                continue;
            }
        }
        let options: Vec<Value> = r.cells[3]
            .split('|')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Value::from)
            .collect();
        body.insert("options".into(), Value::Array(options));
        match rules::input(&body, None) {
            Ok(p) => polls.push(p),
            Err(Invalid(errors)) => {
                for (field, msgs) in errors {
                    for m in msgs {
                        problems.push(format!("line {line}: {field} {m}"));
                    }
                }
            }
        }
    }
    if polls.is_empty() && problems.is_empty() {
        problems.push("the file has no poll rows".into());
    }
    if problems.is_empty() {
        Ok(polls)
    } else {
        Err(problems)
    }
}

/// Import polls from a CSV file (multipart field `file`, at most 2 MB). All
/// rows are checked first: any bad row is reported by line and nothing is imported.
#[utoipa::path(post, path = "/api/v1/rooms/{room}/polls/import", tag = "polls",
    params(("room" = String, Path, description = "UUID or friendly_url")),
    request_body(content = String, content_type = "multipart/form-data", description = "field `file`: CSV or TXT, max 2 MB"),
    responses((status = 200, body = List<Poll>), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn import_polls(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
    req: Request,
) -> ApiResult<Json<List<Poll>>> {
    let room = collab::room(&state, &team, &room).await?;
    let bytes = files::read_upload(req).await?;
    let inputs = parse_import(&bytes).map_err(|problems| {
        let mut errors = FieldErrors::new();
        errors.insert("file".into(), problems);
        ApiError::fields(errors)
    })?;
    let polls = state
        .db
        .create_all_of::<Polls>(&team.id, &room.id, &inputs)
        .await?;
    Ok(Json(List {
        total_count: polls.len() as i64,
        data: polls,
    }))
}
