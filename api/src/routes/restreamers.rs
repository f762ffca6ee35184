//! RTMP restreaming of a live room (Digital Samba's
//! `/rooms/{room}/restreamers/start|stop`): the body is validated here
//! (`domain::restream`), the target's host checked against the webhooks'
//! SSRF rules, and the room actor starts or stops the stream through
//! [`LiveRooms::restream`](crate::live::LiveRooms::restream). Nothing is
//! stored: a restream lives as long as the room's session.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::ApiState;
use crate::auth::Team;
use crate::domain::restream::{self, RestreamTarget};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::JsonObject;
use crate::live::{RecordingRefusal, RestreamAction, RestreamInfo};
use crate::webhooks::guard;

/// The body of a start (documentation only; validated field by field).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct StartRestreamBody {
    /// `youtube`, `vimeo` or `cloudflare`; not with `server_url`.
    #[serde(rename = "type")]
    pub provider: Option<String>,
    /// `rtmp://` or `rtmps://` server; not with `type`.
    pub server_url: Option<String>,
    /// Required; never returned or logged.
    pub stream_key: String,
}

/// The restreams a call started or stopped.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RestreamList {
    pub data: Vec<RestreamInfo>,
}

/// Refuses a target whose host is not a public address (the webhooks'
/// rules), unless the operator allowed private targets. Checked again by
/// the server before every connection attempt.
pub async fn check_target(state: &ApiState, t: &RestreamTarget) -> ApiResult<()> {
    if state.config.restream_allow_private {
        return Ok(());
    }
    let Some((host, port)) = t.host_port() else {
        return Err(ApiError::field("server_url", "must name a host"));
    };
    guard::check_host(&host, port).await.map_err(|(what, why)| {
        ApiError::field(
            "server_url",
            format!(
                "{what} is {why}; restreams may only target public addresses \
                 (the operator can allow private ones with --restream-allow-private)"
            ),
        )
    })
}

async fn control(
    state: &ApiState,
    team: &Team,
    room: &str,
    action: RestreamAction,
) -> ApiResult<Vec<RestreamInfo>> {
    let r = state
        .db
        .room(&team.id, room)
        .await?
        .ok_or_else(|| ApiError::not_found("room"))?;
    if matches!(action, RestreamAction::Start(_))
        && let Some(reason) = crate::settings::e2ee_refusal(&r.settings, "restreaming")
    {
        return Err(ApiError::Conflict(reason));
    }
    let Some(rx) = state.live.restream(&r.id, action) else {
        return Err(ApiError::Conflict(
            "the room has no live session: restreaming needs participants in the room".into(),
        ));
    };
    match rx.await {
        Ok(Ok(list)) => Ok(list),
        Ok(Err(RecordingRefusal { code, message })) => Err(match code {
            "FORBIDDEN" => ApiError::Forbidden(message),
            "INTERNAL" => ApiError::Internal(message),
            _ => ApiError::Conflict(message),
        }),
        Err(_) => Err(ApiError::Conflict(
            "the room's session ended before the request was handled".into(),
        )),
    }
}

/// Start restreaming the room's live session to an RTMP(S) target: the
/// room composed (screen share large, else a grid of cameras; all audio
/// mixed), H.264 + AAC in FLV. 409 with no live session, when the same
/// destination is already streamed, or at the per-room limit; 422 for a
/// bad body or a non-public target.
#[utoipa::path(post, path = "/api/v1/rooms/{room}/restreamers/start", tag = "restreamers",
    params(("room" = String, Path, description = "UUID or friendly_url")),
    request_body = StartRestreamBody,
    responses((status = 200, body = RestreamInfo), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn start_restreaming(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<RestreamInfo>> {
    let target = restream::parse_start(&body)?;
    check_target(&state, &target).await?;
    let mut started = control(&state, &team, &room, RestreamAction::Start(target)).await?;
    started
        .pop()
        .map(Json)
        .ok_or_else(|| ApiError::Internal("the room started no restream".into()))
}

/// Stop the room's restreams: all of them (empty body), or those to one
/// `type` / `server_url` (and `stream_key`). 409 when none matches.
#[utoipa::path(post, path = "/api/v1/rooms/{room}/restreamers/stop", tag = "restreamers",
    params(("room" = String, Path, description = "UUID or friendly_url")),
    responses((status = 200, body = RestreamList), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn stop_restreaming(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let selector = restream::parse_stop(&body)?;
    let data = control(&state, &team, &room, RestreamAction::Stop(selector)).await?;
    Ok((StatusCode::OK, Json(RestreamList { data })).into_response())
}
