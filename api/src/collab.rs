//! Request pieces shared by the live-collaboration handlers (chat, Q&A,
//! polls, quizzes, messages): room and session lookup, resolving a
//! `participant` reference, and the list/get/delete handlers every
//! room-scoped collection shares ([`Resource`]). The field rules themselves
//! are in [`crate::domain::fields`].

use axum::Json;
use axum::http::StatusCode;
use serde::Serialize;

use crate::ApiState;
use crate::auth::Team;
use crate::domain::fields::ParticipantRef;
use crate::error::{ApiError, ApiResult};
use crate::extract::{List, QueryPairs};
use crate::live_events::LiveEvent;
use crate::store::chat::{Author, ChatMessages, SessionRef};
use crate::store::polls::Polls;
use crate::store::questions::Questions;
use crate::store::quizzes::Quizzes;
use crate::store::room_scoped::Collection;
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

/// 409 for actions that need a live session.
pub fn not_live() -> ApiError {
    ApiError::Conflict(
        "the room has no live session: a participant must be in the room to receive this".into(),
    )
}

/// What the REST routes of a room-scoped collection (polls, quizzes,
/// questions, chat) add to the store's [`Collection`]: how they name a row,
/// whether a list filters by `session_id`, and what the live session hears
/// when rows are deleted. The shared handlers below are generic over it, so
/// each resource's routes keep only what differs.
pub trait Resource: Collection<Item: Serialize> {
    /// The singular noun in messages: `poll` ("poll not found").
    const NOUN: &'static str;
    /// `GET` lists take a `session_id` filter.
    const SESSION_FILTER: bool;
    /// The event for the room's (`None`) or one session's rows deleted.
    fn cleared(session_id: Option<String>) -> LiveEvent;
}

/// A collection whose rows the API deletes one by one.
pub trait DeleteOne: Resource {
    /// The event for one row deleted.
    fn deleted(id: String) -> LiveEvent;
}

impl Resource for Polls {
    const NOUN: &'static str = "poll";
    const SESSION_FILTER: bool = false;
    fn cleared(session_id: Option<String>) -> LiveEvent {
        LiveEvent::PollsCleared { session_id }
    }
}

impl DeleteOne for Polls {
    fn deleted(poll_id: String) -> LiveEvent {
        LiveEvent::PollDeleted { poll_id }
    }
}

impl Resource for Quizzes {
    const NOUN: &'static str = "quiz";
    const SESSION_FILTER: bool = false;
    fn cleared(session_id: Option<String>) -> LiveEvent {
        LiveEvent::QuizzesCleared { session_id }
    }
}

impl DeleteOne for Quizzes {
    fn deleted(quiz_id: String) -> LiveEvent {
        LiveEvent::QuizDeleted { quiz_id }
    }
}

impl Resource for Questions {
    const NOUN: &'static str = "question";
    const SESSION_FILTER: bool = true;
    fn cleared(session_id: Option<String>) -> LiveEvent {
        LiveEvent::QuestionsCleared { session_id }
    }
}

impl DeleteOne for Questions {
    fn deleted(question_id: String) -> LiveEvent {
        LiveEvent::QuestionDeleted { question_id }
    }
}

impl Resource for ChatMessages {
    const NOUN: &'static str = "message";
    const SESSION_FILTER: bool = true;
    fn cleared(session_id: Option<String>) -> LiveEvent {
        LiveEvent::ChatCleared { session_id }
    }
}

/// `GET /rooms/{room}/<items>`: a page after the optional `after` row
/// (422 when it is not a row of the room), filtered by `session_id` where
/// the resource takes it.
pub async fn list<T: Resource>(
    state: &ApiState,
    room: &RoomRecord,
    query: &QueryPairs,
) -> ApiResult<Json<List<T::Item>>> {
    let (page, after) = query.page()?;
    if let Some(a) = &after
        && !state.db.exists_in::<T>(&room.id, a).await?
    {
        return Err(ApiError::field(
            "after",
            format!("no {} '{a}' to page after", T::NOUN),
        ));
    }
    let session = if T::SESSION_FILTER {
        query.get("session_id").filter(|s| !s.is_empty())
    } else {
        None
    };
    let (total, data) = state
        .db
        .page_of::<T>(&room.id, session, &page, after.as_deref())
        .await?;
    Ok(Json(List {
        total_count: total,
        data,
    }))
}

/// `GET /rooms/{room}/<items>/{id}`, or 404.
pub async fn get<T: Resource>(
    state: &ApiState,
    room: &RoomRecord,
    id: &str,
) -> ApiResult<Json<T::Item>> {
    Ok(Json(
        state
            .db
            .one_of::<T>(&room.id, id)
            .await?
            .ok_or_else(|| ApiError::not_found(T::NOUN))?,
    ))
}

/// `DELETE /rooms/{room}/<items>/{id}` (404 when there is none); the live
/// session hears of it.
pub async fn delete_one<T: DeleteOne>(
    state: &ApiState,
    room: &RoomRecord,
    id: String,
) -> ApiResult<StatusCode> {
    if !state.db.delete_of::<T>(&room.id, &id).await? {
        return Err(ApiError::not_found(T::NOUN));
    }
    state.live.broadcast(&room.id, T::deleted(id)).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /rooms/{room}/<items>`; the live session hears of it.
pub async fn delete_room<T: Resource>(
    state: &ApiState,
    team: &Team,
    room: &str,
) -> ApiResult<StatusCode> {
    let room = self::room(state, team, room).await?;
    state.db.delete_room_of::<T>(&room.id).await?;
    state.live.broadcast(&room.id, T::cleared(None)).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /sessions/{session}/<items>`; a live session hears of it.
pub async fn delete_session<T: Resource>(
    state: &ApiState,
    team: &Team,
    session: &str,
) -> ApiResult<StatusCode> {
    let session = self::session(state, team, session).await?;
    state.db.delete_session_of::<T>(&session.id).await?;
    if session.live {
        state
            .live
            .broadcast(&session.room_id, T::cleared(Some(session.id)))
            .await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The list and bulk-delete handlers of a room-scoped collection with their
/// OpenAPI descriptions, so the four collections (polls, quizzes,
/// questions, chat) do not each spell them out: `GET /rooms/{room}/<items>`
/// (paginated, `extra_params` for filters such as `session_id`),
/// `DELETE /rooms/{room}/<items>` and `DELETE /sessions/{session}/<items>`.
/// The handlers call [`list`], [`delete_room`] and [`delete_session`]. Types
/// are resolved where the macro is used (the route module imports
/// `List`, `ErrorBody`, the extractors and the item type).
macro_rules! collection_handlers {
    (
        $Resource:ident => $Item:ident, tag = $tag:literal;
        $(#[$list_attr:meta])*
        list $list:ident = $list_path:literal $(, extra_params($($extra:tt)*))?;
        $(#[$room_attr:meta])*
        delete_room $delete_room:ident = $room_path:literal;
        $(#[$session_attr:meta])*
        delete_session $delete_session:ident = $session_path:literal;
    ) => {
        $(#[$list_attr])*
        #[utoipa::path(get, path = $list_path, tag = $tag,
            params(("room" = String, Path, description = "UUID or friendly_url"), $($($extra)*)?
                   ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query),
                   ("order" = Option<String>, Query), ("after" = Option<String>, Query)),
            responses((status = 200, body = List<$Item>), (status = 404, body = ErrorBody),
                      (status = 422, body = ErrorBody)))]
        pub async fn $list(
            State(state): State<ApiState>,
            team: Team,
            Path(room): Path<String>,
            query: QueryPairs,
        ) -> ApiResult<Json<List<$Item>>> {
            let room = $crate::collab::room(&state, &team, &room).await?;
            $crate::collab::list::<$Resource>(&state, &room, &query).await
        }

        $(#[$room_attr])*
        #[utoipa::path(delete, path = $room_path, tag = $tag,
            params(("room" = String, Path, description = "UUID or friendly_url")),
            responses((status = 204), (status = 404, body = ErrorBody)))]
        pub async fn $delete_room(
            State(state): State<ApiState>,
            team: Team,
            Path(room): Path<String>,
        ) -> ApiResult<StatusCode> {
            $crate::collab::delete_room::<$Resource>(&state, &team, &room).await
        }

        $(#[$session_attr])*
        #[utoipa::path(delete, path = $session_path, tag = $tag,
            params(("session" = String, Path, description = "Session UUID")),
            responses((status = 204), (status = 404, body = ErrorBody)))]
        pub async fn $delete_session(
            State(state): State<ApiState>,
            team: Team,
            Path(session): Path<String>,
        ) -> ApiResult<StatusCode> {
            $crate::collab::delete_session::<$Resource>(&state, &team, &session).await
        }
    };
}
pub(crate) use collection_handlers;
