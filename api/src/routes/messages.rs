//! eyeson-style data messages: broadcast `{type, content}` to everyone in the
//! room's live session.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;

use crate::ApiState;
use crate::auth::Team;
use crate::collab;
use crate::domain::fields;
use crate::error::{ApiResult, ErrorBody, FieldErrors};
use crate::extract::JsonObject;
use crate::live_events::LiveEvent;

/// What was delivered.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SentMessage {
    #[serde(rename = "type")]
    pub message_type: String,
    pub content: String,
    pub session_id: String,
    pub created_at: String,
}

/// Broadcast a data message (`type`, `content`) to every participant of the
/// room's live session; 409 when none is live.
#[utoipa::path(post, path = "/api/v1/rooms/{room}/messages", tag = "messages",
    params(("room" = String, Path, description = "UUID or friendly_url")),
    request_body(content = inline(serde_json::Value), description = "{\"type\": \"chat\", \"content\": \"...\"}"),
    responses((status = 201, body = SentMessage), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn send_message(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<(StatusCode, Json<SentMessage>)> {
    let room = collab::room(&state, &team, &room).await?;
    let mut errors = FieldErrors::new();
    let message_type = fields::text(&body, "type", 64, &mut errors);
    let content = fields::text(&body, "content", 16 * 1024, &mut errors);
    fields::check(errors)?;
    let session_id = state
        .db
        .live_session(&room.id)
        .await?
        .ok_or_else(collab::not_live)?;
    let sent = SentMessage {
        message_type: message_type.unwrap_or_default(),
        content: content.unwrap_or_default(),
        session_id,
        created_at: crate::store::now(),
    };
    let event = LiveEvent::Message {
        message_type: sent.message_type.clone(),
        content: sent.content.clone(),
        created_at: sent.created_at.clone(),
    };
    if !state.live.broadcast(&room.id, event).await {
        return Err(collab::not_live());
    }
    Ok((StatusCode::CREATED, Json(sent)))
}
