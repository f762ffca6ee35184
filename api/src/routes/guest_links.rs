//! Guest links of a room: create (the secret is in the URL, shown once),
//! list (paginated, never the secret) and revoke.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;

use crate::ApiState;
use crate::auth::Team;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{JsonObject, List, QueryPairs};
use crate::guest_links;
use crate::store::guest_links::GuestLinkRecord;

/// A guest link as listed (no secret, no URL).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GuestLinkView {
    pub id: String,
    /// The role a guest joins with.
    pub role: String,
    /// The label given at creation.
    pub name: Option<String>,
    pub expires_at: String,
    pub created_at: String,
    /// Joins so far.
    pub uses: i64,
    /// Joins allowed (null: unlimited until expiry).
    pub max_uses: Option<i64>,
}

impl From<GuestLinkRecord> for GuestLinkView {
    fn from(r: GuestLinkRecord) -> Self {
        GuestLinkView {
            id: r.id,
            role: r.role,
            name: r.name,
            expires_at: r.expires_at,
            created_at: r.created_at,
            uses: r.uses,
            max_uses: r.max_uses,
        }
    }
}

/// A created link: the view plus the URL with its secret (only here).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedGuestLink {
    /// `<public-url>/<friendly_url>?guest=<secret>`; the secret is not shown again.
    pub url: String,
    #[serde(flatten)]
    pub link: GuestLinkView,
}

/// The create body, for the OpenAPI document.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct GuestLinkRequest {
    /// When the link stops admitting (RFC 3339, 60 s to 30 days ahead); or `ttl_seconds`.
    pub expires_at: Option<String>,
    /// Lifetime in seconds (60..=2592000); or `expires_at`.
    pub ttl_seconds: Option<i64>,
    /// One of the room's roles; default the room's `default_role`.
    /// `moderator` only with `allow_moderator: true`.
    pub role: Option<String>,
    pub allow_moderator: Option<bool>,
    /// A label (1..=100 characters).
    pub name: Option<String>,
    /// Joins allowed (1..=1000000); default unlimited until expiry.
    pub max_uses: Option<i64>,
}

/// Create a guest link to a room.
#[utoipa::path(post, path = "/api/v1/rooms/{room}/guest-links", tag = "rooms", request_body = GuestLinkRequest,
    params(("room" = String, Path, description = "UUID or friendly_url")),
    responses((status = 201, body = CreatedGuestLink), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_guest_link(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<(StatusCode, Json<CreatedGuestLink>)> {
    let room = state
        .db
        .room(&team.id, &room)
        .await?
        .ok_or_else(|| ApiError::not_found("room"))?;
    let new = guest_links::validate(&body, &room.settings, chrono::Utc::now())
        .map_err(ApiError::fields)?;
    // The moderator rule goes by what the role may do, not by its name (a
    // custom role with moderating permissions, or a moderating default role).
    let allow_moderator = body.get("allow_moderator") == Some(&serde_json::Value::Bool(true));
    if !allow_moderator
        && let Some(role) = state.db.role(&team.id, &new.role).await?
        && guest_links::moderates(&role.permissions)
    {
        return Err(ApiError::field(
            "role",
            format!(
                "'{}' moderates (it may {}): a link with it needs \"allow_moderator\": true",
                new.role,
                guest_links::MODERATING
                    .iter()
                    .filter(|p| role.permissions.get(**p) == Some(&serde_json::Value::Bool(true)))
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let secret = guest_links::new_secret();
    let row = state
        .db
        .create_guest_link(&room.id, &guest_links::secret_hash(&secret), &new)
        .await?;
    tracing::info!(room_id = %room.id, link_id = %row.id, role = %row.role, "guest link created");
    let url = format!(
        "{}?guest={secret}",
        state.config.room_url(&room.friendly_url)
    );
    Ok((
        StatusCode::CREATED,
        Json(CreatedGuestLink {
            url,
            link: row.into(),
        }),
    ))
}

/// List a room's guest links (paginated; the secrets are never shown).
#[utoipa::path(get, path = "/api/v1/rooms/{room}/guest-links", tag = "rooms",
    params(("room" = String, Path, description = "UUID or friendly_url"),
           ("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query), ("order" = Option<String>, Query),
           ("after" = Option<String>, Query)),
    responses((status = 200, body = List<GuestLinkView>), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_guest_links(
    State(state): State<ApiState>,
    team: Team,
    Path(room): Path<String>,
    query: QueryPairs,
) -> ApiResult<Json<List<GuestLinkView>>> {
    let (page, after) = query.page()?;
    let room = state
        .db
        .room(&team.id, &room)
        .await?
        .ok_or_else(|| ApiError::not_found("room"))?;
    if let Some(a) = &after
        && !state.db.guest_link_exists(&room.id, a).await?
    {
        return Err(ApiError::field(
            "after",
            format!("no guest link '{a}' to page after"),
        ));
    }
    let (total, rows) = state
        .db
        .list_guest_links(&room.id, &page, after.as_deref())
        .await?;
    Ok(Json(List {
        total_count: total,
        data: rows.into_iter().map(Into::into).collect(),
    }))
}

/// Revoke a guest link: it admits nobody any more.
#[utoipa::path(delete, path = "/api/v1/rooms/{room}/guest-links/{link}", tag = "rooms",
    params(("room" = String, Path, description = "UUID or friendly_url"), ("link" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_guest_link(
    State(state): State<ApiState>,
    team: Team,
    Path((room, link)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let room = state
        .db
        .room(&team.id, &room)
        .await?
        .ok_or_else(|| ApiError::not_found("room"))?;
    if !state.db.delete_guest_link(&room.id, &link).await? {
        return Err(ApiError::not_found("guest link"));
    }
    tracing::info!(room_id = %room.id, link_id = %link, "guest link revoked");
    Ok(StatusCode::NO_CONTENT)
}
