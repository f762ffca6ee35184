//! Request pieces shared by the live-collaboration handlers (chat, Q&A,
//! polls, quizzes, messages): room and session lookup and resolving a
//! `participant` reference. The field rules themselves are in
//! [`crate::domain::fields`].

use crate::ApiState;
use crate::auth::Team;
use crate::domain::fields::ParticipantRef;
use crate::error::{ApiError, ApiResult};
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
