//! Q&A: questions, votes, answers, dismiss/reopen, live answers, export.
//!
//! Every change participants can see is also sent into the live session as a
//! `question_*` event (without private answers; anonymous askers masked).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use crate::ApiState;
use crate::auth::Team;
use crate::collab;
use crate::domain::fields;
use crate::domain::questions::{
    LiveAnswerAction, MAX_ANSWER_CHARS, MAX_QUESTION_CHARS, QuestionStatus,
};
use crate::error::{ApiError, ApiResult, ErrorBody, FieldErrors};
use crate::extract::{JsonObject, List, QueryPairs};
use crate::files::{self, Format};
use crate::live_events::LiveEvent;
use crate::store::chat::Author;
use crate::store::questions::{Answer, NewQuestion, Question, QuestionError, Questions};
use crate::store::rooms::RoomRecord;

impl From<QuestionError> for ApiError {
    fn from(e: QuestionError) -> Self {
        match e {
            QuestionError::NotFound => ApiError::not_found("question"),
            QuestionError::AnswerNotFound => ApiError::not_found("answer"),
            QuestionError::AlreadyVoted | QuestionError::NotVoted => {
                ApiError::Conflict(e.to_string())
            }
            QuestionError::State(m) => ApiError::Conflict(m),
            QuestionError::Store(s) => s.into(),
        }
    }
}

async fn updated(state: &ApiState, room_id: &str, q: &Question) {
    state
        .live
        .broadcast(
            room_id,
            LiveEvent::QuestionUpdated {
                question: q.public(),
            },
        )
        .await;
}

/// Reads the required `participant` (and nothing else) and resolves it.
async fn actor(
    state: &ApiState,
    room: &RoomRecord,
    body: &serde_json::Map<String, Value>,
) -> ApiResult<Author> {
    let mut errors = FieldErrors::new();
    let p = fields::participant(body, false, &mut errors);
    fields::check(errors)?;
    match p {
        Some(p) => collab::author(state, &room.id, p).await,
        None => Err(ApiError::field("participant", "is required")),
    }
}

collab::collection_handlers! {
    Questions => Question, tag = "questions";
    /// List a room's questions with their answers (paginated; `session_id` filters).
    list list_questions = "/api/v1/rooms/{room}/questions", extra_params(("session_id" = Option<String>, Query),);
    /// Delete all Q&A of a room.
    delete_room delete_questions = "/api/v1/rooms/{room}/questions";
    /// Delete all Q&A of a session.
    delete_session delete_session_questions = "/api/v1/sessions/{session}/questions";
}

/// Create a question as `participant` (`{id}` or `{name, external_id}`).
#[utoipa::path(post, path = "/api/v1/rooms/{room}/questions", tag = "questions",
    params(("room" = String, Path, description = "UUID or friendly_url")),
    request_body(content = inline(serde_json::Value), description = "{\"participant\", \"question\", \"anonymous\", \"breakout_id\"}"),
    responses((status = 200, body = Question), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_question(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Question>> {
    let room = collab::room(&state, &team, &room).await?;
    let mut errors = FieldErrors::new();
    let p = fields::participant(&body, false, &mut errors);
    let text = fields::text(&body, "question", MAX_QUESTION_CHARS, &mut errors);
    let anonymous = fields::flag(&body, "anonymous", &mut errors).unwrap_or(false);
    let breakout_id = fields::opt_text(&body, "breakout_id", 64, &mut errors);
    fields::check(errors)?;
    let (Some(p), Some(text)) = (p, text) else {
        return Err(ApiError::BadRequest(
            "participant and question are required".into(),
        ));
    };
    let author = collab::author(&state, &room.id, p).await?;
    let session = state.db.live_session(&room.id).await?;
    let q = state
        .db
        .create_question(&NewQuestion {
            team_id: &team.id,
            room_id: &room.id,
            session_id: session.as_deref(),
            author: &author,
            question: &text,
            anonymous,
            breakout_id: breakout_id.as_deref(),
        })
        .await?;
    state
        .live
        .broadcast(
            &room.id,
            LiveEvent::QuestionCreated {
                question: q.public(),
            },
        )
        .await;
    Ok(Json(q))
}

/// Export a room's Q&A (`format` txt or json; `session_id` filters).
#[utoipa::path(get, path = "/api/v1/rooms/{room}/questions/export", tag = "questions",
    params(("room" = String, Path, description = "UUID or friendly_url"),
           ("format" = Option<String>, Query, description = "txt (default) or json"), ("session_id" = Option<String>, Query)),
    responses((status = 200, description = "The Q&A as a file"), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn export_questions(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
    query: QueryPairs,
) -> ApiResult<Response> {
    let room = collab::room(&state, &team, &room).await?;
    let format = Format::parse(query.get("format"), &[Format::Txt, Format::Json])?;
    let session = query.get("session_id").filter(|s| !s.is_empty());
    let questions = state.db.all_of::<Questions>(&room.id, session).await?;
    let body = match format {
        Format::Json => serde_json::to_vec_pretty(&questions).map_err(ApiError::internal)?,
        _ => {
            let mut out = String::new();
            for q in &questions {
                let dismissed = if q.status == QuestionStatus::Dismissed {
                    " (dismissed)"
                } else {
                    ""
                };
                out.push_str(&format!(
                    "[{}] Q: {}: {} ({} votes){dismissed}\n",
                    q.created_at, q.participant_name, q.question, q.votes
                ));
                for a in &q.answers {
                    let private = if a.private { " (private)" } else { "" };
                    out.push_str(&format!(
                        "    [{}] A: {}{private}: {}\n",
                        a.created_at, a.participant_name, a.answer
                    ));
                }
            }
            out.into_bytes()
        }
    };
    Ok(files::download(
        format.content_type(),
        &format!("questions-{}.{}", room.friendly_url, format.ext()),
        body,
    ))
}

/// Update a question's text.
#[utoipa::path(patch, path = "/api/v1/rooms/{room}/questions/{question}", tag = "questions",
    params(("room" = String, Path, description = "UUID or friendly_url"), ("question" = String, Path)),
    request_body(content = inline(serde_json::Value), description = "{\"participant\", \"question\"}"),
    responses((status = 200, body = Question), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_question(
    State(state): State<ApiState>,
    team: Team,
    Path((room, question)): Path<(String, String)>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Question>> {
    let room = collab::room(&state, &team, &room).await?;
    let mut errors = FieldErrors::new();
    let p = fields::participant(&body, false, &mut errors);
    let text = fields::text(&body, "question", MAX_QUESTION_CHARS, &mut errors);
    fields::check(errors)?;
    if let Some(p) = p {
        collab::author(&state, &room.id, p).await?;
    }
    let q = state
        .db
        .update_question(&room.id, &question, &text.unwrap_or_default())
        .await?;
    updated(&state, &room.id, &q).await;
    Ok(Json(q))
}

/// Delete one question (body: the acting `participant`).
#[utoipa::path(delete, path = "/api/v1/rooms/{room}/questions/{question}", tag = "questions",
    params(("room" = String, Path, description = "UUID or friendly_url"), ("question" = String, Path)),
    request_body(content = inline(serde_json::Value), description = "{\"participant\"}"),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn delete_question(
    State(state): State<ApiState>,
    team: Team,
    Path((room, question)): Path<(String, String)>,
    JsonObject(body): JsonObject,
) -> ApiResult<StatusCode> {
    let room = collab::room(&state, &team, &room).await?;
    actor(&state, &room, &body).await?;
    collab::delete_one::<Questions>(&state, &room, question).await
}

async fn set_dismissed(
    state: ApiState,
    team: Team,
    room: String,
    question: String,
    body: serde_json::Map<String, Value>,
    dismissed: bool,
) -> ApiResult<Json<Question>> {
    let room = collab::room(&state, &team, &room).await?;
    actor(&state, &room, &body).await?;
    let q = state
        .db
        .set_question_dismissed(&room.id, &question, dismissed)
        .await?;
    updated(&state, &room.id, &q).await;
    Ok(Json(q))
}

/// Dismiss a question (409 when already dismissed).
#[utoipa::path(post, path = "/api/v1/rooms/{room}/questions/{question}/dismiss", tag = "questions",
    params(("room" = String, Path, description = "UUID or friendly_url"), ("question" = String, Path)),
    request_body(content = inline(serde_json::Value), description = "{\"participant\"}"),
    responses((status = 200, body = Question), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn dismiss_question(
    State(state): State<ApiState>,
    team: Team,
    Path((room, question)): Path<(String, String)>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Question>> {
    set_dismissed(state, team, room, question, body, true).await
}

/// Reopen a dismissed question (409 when it is open).
#[utoipa::path(post, path = "/api/v1/rooms/{room}/questions/{question}/reopen", tag = "questions",
    params(("room" = String, Path, description = "UUID or friendly_url"), ("question" = String, Path)),
    request_body(content = inline(serde_json::Value), description = "{\"participant\"}"),
    responses((status = 200, body = Question), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn reopen_question(
    State(state): State<ApiState>,
    team: Team,
    Path((room, question)): Path<(String, String)>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Question>> {
    set_dismissed(state, team, room, question, body, false).await
}

/// Upvote a question as `participant` (one vote each; 409 on a second).
#[utoipa::path(post, path = "/api/v1/rooms/{room}/questions/{question}/vote", tag = "questions",
    params(("room" = String, Path, description = "UUID or friendly_url"), ("question" = String, Path)),
    request_body(content = inline(serde_json::Value), description = "{\"participant\"}"),
    responses((status = 200, body = Question), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn vote_question(
    State(state): State<ApiState>,
    team: Team,
    Path((room, question)): Path<(String, String)>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Question>> {
    let room = collab::room(&state, &team, &room).await?;
    let voter = actor(&state, &room, &body).await?;
    let q = state.db.vote_question(&room.id, &question, &voter).await?;
    updated(&state, &room.id, &q).await;
    Ok(Json(q))
}

/// Remove `participant`'s vote (409 when they had not voted).
#[utoipa::path(delete, path = "/api/v1/rooms/{room}/questions/{question}/vote", tag = "questions",
    params(("room" = String, Path, description = "UUID or friendly_url"), ("question" = String, Path)),
    request_body(content = inline(serde_json::Value), description = "{\"participant\"}"),
    responses((status = 200, body = Question), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn unvote_question(
    State(state): State<ApiState>,
    team: Team,
    Path((room, question)): Path<(String, String)>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Question>> {
    let room = collab::room(&state, &team, &room).await?;
    let voter = actor(&state, &room, &body).await?;
    let q = state
        .db
        .unvote_question(&room.id, &question, &voter)
        .await?;
    updated(&state, &room.id, &q).await;
    Ok(Json(q))
}

/// Answer a question (`private`: visible to the asker only).
#[utoipa::path(post, path = "/api/v1/rooms/{room}/questions/{question}/answers", tag = "questions",
    params(("room" = String, Path, description = "UUID or friendly_url"), ("question" = String, Path)),
    request_body(content = inline(serde_json::Value), description = "{\"participant\", \"answer\", \"private\"}"),
    responses((status = 200, body = Answer), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_answer(
    State(state): State<ApiState>,
    team: Team,
    Path((room, question)): Path<(String, String)>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Answer>> {
    let room = collab::room(&state, &team, &room).await?;
    let mut errors = FieldErrors::new();
    let p = fields::participant(&body, false, &mut errors);
    let text = fields::text(&body, "answer", MAX_ANSWER_CHARS, &mut errors);
    let private = fields::flag(&body, "private", &mut errors).unwrap_or(false);
    fields::check(errors)?;
    let (Some(p), Some(text)) = (p, text) else {
        return Err(ApiError::BadRequest(
            "participant and answer are required".into(),
        ));
    };
    let author = collab::author(&state, &room.id, p).await?;
    let (a, q) = state
        .db
        .add_answer(&room.id, &question, &author, &text, private)
        .await?;
    updated(&state, &room.id, &q).await;
    Ok(Json(a))
}

/// Update an answer's text (and `private` when given).
#[utoipa::path(patch, path = "/api/v1/rooms/{room}/questions/{question}/answers/{answer}", tag = "questions",
    params(("room" = String, Path, description = "UUID or friendly_url"), ("question" = String, Path), ("answer" = String, Path)),
    request_body(content = inline(serde_json::Value), description = "{\"participant\", \"answer\", \"private\"?}"),
    responses((status = 200, body = Answer), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_answer(
    State(state): State<ApiState>,
    team: Team,
    Path((room, question, answer)): Path<(String, String, String)>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Answer>> {
    let room = collab::room(&state, &team, &room).await?;
    let mut errors = FieldErrors::new();
    let p = fields::participant(&body, false, &mut errors);
    let text = fields::text(&body, "answer", MAX_ANSWER_CHARS, &mut errors);
    let private = fields::flag(&body, "private", &mut errors);
    fields::check(errors)?;
    if let Some(p) = p {
        collab::author(&state, &room.id, p).await?;
    }
    let (a, q) = state
        .db
        .update_answer(
            &room.id,
            &question,
            &answer,
            &text.unwrap_or_default(),
            private,
        )
        .await?;
    updated(&state, &room.id, &q).await;
    Ok(Json(a))
}

/// Delete an answer (body: the acting `participant`).
#[utoipa::path(delete, path = "/api/v1/rooms/{room}/questions/{question}/answers/{answer}", tag = "questions",
    params(("room" = String, Path, description = "UUID or friendly_url"), ("question" = String, Path), ("answer" = String, Path)),
    request_body(content = inline(serde_json::Value), description = "{\"participant\"}"),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn delete_answer(
    State(state): State<ApiState>,
    team: Team,
    Path((room, question, answer)): Path<(String, String, String)>,
    JsonObject(body): JsonObject,
) -> ApiResult<StatusCode> {
    let room = collab::room(&state, &team, &room).await?;
    actor(&state, &room, &body).await?;
    let q = state.db.delete_answer(&room.id, &question, &answer).await?;
    updated(&state, &room.id, &q).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn live(
    state: ApiState,
    team: Team,
    room: String,
    question: String,
    body: serde_json::Map<String, Value>,
    action: LiveAnswerAction,
) -> ApiResult<Json<Question>> {
    let room = collab::room(&state, &team, &room).await?;
    let by = actor(&state, &room, &body).await?;
    let q = state
        .db
        .live_answer(&room.id, &question, action, &by)
        .await?;
    updated(&state, &room.id, &q).await;
    Ok(Json(q))
}

/// Start a live answer (409 when one is in progress).
#[utoipa::path(post, path = "/api/v1/rooms/{room}/questions/{question}/live-answers/start", tag = "questions",
    params(("room" = String, Path, description = "UUID or friendly_url"), ("question" = String, Path)),
    request_body(content = inline(serde_json::Value), description = "{\"participant\"}"),
    responses((status = 200, body = Question), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn start_live_answer(
    State(state): State<ApiState>,
    team: Team,
    Path((room, question)): Path<(String, String)>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Question>> {
    live(state, team, room, question, body, LiveAnswerAction::Start).await
}

/// Stop the live answer in progress: the question counts as answered live.
#[utoipa::path(post, path = "/api/v1/rooms/{room}/questions/{question}/live-answers/stop", tag = "questions",
    params(("room" = String, Path, description = "UUID or friendly_url"), ("question" = String, Path)),
    request_body(content = inline(serde_json::Value), description = "{\"participant\"}"),
    responses((status = 200, body = Question), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn stop_live_answer(
    State(state): State<ApiState>,
    team: Team,
    Path((room, question)): Path<(String, String)>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Question>> {
    live(state, team, room, question, body, LiveAnswerAction::Stop).await
}

/// Cancel the live answer in progress (as if it never started).
#[utoipa::path(post, path = "/api/v1/rooms/{room}/questions/{question}/live-answers/cancel", tag = "questions",
    params(("room" = String, Path, description = "UUID or friendly_url"), ("question" = String, Path)),
    request_body(content = inline(serde_json::Value), description = "{\"participant\"}"),
    responses((status = 200, body = Question), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn cancel_live_answer(
    State(state): State<ApiState>,
    team: Team,
    Path((room, question)): Path<(String, String)>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Question>> {
    live(state, team, room, question, body, LiveAnswerAction::Cancel).await
}
