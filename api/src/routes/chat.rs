//! Chat: list, export, send as the API into the live session, delete.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use crate::ApiState;
use crate::auth::Team;
use crate::collab;
use crate::domain::chat as rules;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonObject, List, QueryPairs};
use crate::files::{self, Format};
use crate::live_events::LiveEvent;
use crate::store::chat::{Author, ChatMessage, ChatMessages, NewChatMessage};

collab::collection_handlers! {
    ChatMessages => ChatMessage, tag = "chat";
    /// List a room's chat messages (paginated; `session_id` filters).
    list list_chat = "/api/v1/rooms/{room}/chat", extra_params(("session_id" = Option<String>, Query),);
    /// Delete every chat message of a room.
    delete_room delete_chat = "/api/v1/rooms/{room}/chat";
    /// Delete every chat message of a session.
    delete_session delete_session_chat = "/api/v1/sessions/{session}/chat";
}

/// Export a room's chat as a file (`format` txt or json; `session_id` filters).
#[utoipa::path(get, path = "/api/v1/rooms/{room}/chat/export", tag = "chat",
    params(("room" = String, Path, description = "UUID or friendly_url"),
           ("format" = Option<String>, Query, description = "txt (default) or json"),
           ("session_id" = Option<String>, Query)),
    responses((status = 200, description = "The chat as a txt or json file"), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn export_chat(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
    query: QueryPairs,
) -> ApiResult<Response> {
    let room = collab::room(&state, &team, &room).await?;
    let format = Format::parse(query.get("format"), &[Format::Txt, Format::Json])?;
    let session = query.get("session_id").filter(|s| !s.is_empty());
    let messages = state.db.all_of::<ChatMessages>(&room.id, session).await?;
    let body = match format {
        Format::Json => serde_json::to_vec_pretty(&messages).map_err(ApiError::internal)?,
        _ => {
            let mut out = String::new();
            for m in &messages {
                let private = if m.recipient_id.is_some() {
                    " (private)"
                } else {
                    ""
                };
                out.push_str(&format!(
                    "[{}] {}{private}: {}\n",
                    m.created_at, m.participant_name, m.message
                ));
            }
            out.into_bytes()
        }
    };
    let name = match session {
        Some(s) => format!("chat-{}-{s}.{}", room.friendly_url, format.ext()),
        None => format!("chat-{}.{}", room.friendly_url, format.ext()),
    };
    Ok(files::download(format.content_type(), &name, body))
}

/// Send a chat message as the API into the room's live session (409 when none is live).
#[utoipa::path(post, path = "/api/v1/rooms/{room}/chat", tag = "chat",
    params(("room" = String, Path, description = "UUID or friendly_url")),
    request_body(content = inline(serde_json::Value), description = "{\"message\": \"Hello!\"}"),
    responses((status = 200, body = ChatMessage), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn send_chat(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<ChatMessage>> {
    let room = collab::room(&state, &team, &room).await?;
    let rules::ChatInput {
        message: text,
        breakout_id,
    } = rules::input(&body)?;
    let session = state
        .db
        .live_session(&room.id)
        .await?
        .ok_or_else(collab::not_live)?;
    let author = Author::api();
    let msg = state
        .db
        .add_chat_message(&NewChatMessage {
            team_id: &team.id,
            room_id: &room.id,
            session_id: Some(&session),
            author: &author,
            message: &text,
            breakout_id: breakout_id.as_deref(),
            recipient_id: None,
        })
        .await?;
    if !state
        .live
        .broadcast(
            &room.id,
            LiveEvent::ChatMessage {
                message: msg.clone(),
                private: false,
            },
        )
        .await
    {
        state.db.delete_chat_message(&msg.id).await?;
        return Err(collab::not_live());
    }
    Ok(Json(msg))
}
