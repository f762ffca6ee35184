//! Roles and permissions.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::ApiState;
use crate::auth::Team;
use crate::error::{ApiError, ApiResult, ErrorBody, FieldErrors};
use crate::extract::{JsonObject, List, QueryPairs};
use crate::permissions::{PERMISSIONS, complete};
use crate::settings::is_role_name;
use crate::store::roles::{RoleChangeError, RoleInput, RoleRecord};

impl From<RoleChangeError> for ApiError {
    fn from(e: RoleChangeError) -> Self {
        match e {
            RoleChangeError::NotFound => ApiError::not_found("role"),
            RoleChangeError::NameTaken(_)
            | RoleChangeError::InUse(..)
            | RoleChangeError::Builtin(_) => ApiError::Conflict(e.to_string()),
            RoleChangeError::Store(s) => s.into(),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RoleView {
    pub id: String,
    pub name: String,
    pub display_name: String,
    pub description: Option<String>,
    /// Every permission name mapped to whether this role grants it.
    #[schema(value_type = Object)]
    pub permissions: Map<String, Value>,
    /// Built-in roles (moderator, speaker, attendee) cannot be deleted or renamed.
    pub builtin: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<RoleRecord> for RoleView {
    fn from(r: RoleRecord) -> Self {
        RoleView {
            id: r.id,
            name: r.name,
            display_name: r.display_name,
            description: r.description,
            permissions: r.permissions,
            builtin: r.builtin,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// The role request body, for the OpenAPI document.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct RoleBody {
    pub name: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    #[schema(value_type = Object)]
    pub permissions: Option<Map<String, Value>>,
}

/// Validates a create (`current` None) or update body.
fn role_input(body: &Map<String, Value>, current: Option<&RoleRecord>) -> ApiResult<RoleInput> {
    let mut errors = FieldErrors::new();
    let name = match (body.get("name"), current) {
        (None, Some(c)) => c.name.clone(),
        (None, None) | (Some(Value::Null), _) => {
            errors.insert("name".into(), vec!["is required".into()]);
            String::new()
        }
        (Some(Value::String(s)), _) if is_role_name(s) => s.clone(),
        (Some(Value::String(_)), _) => {
            errors.insert(
                "name".into(),
                vec!["must be 1 to 64 lowercase letters, digits, '-' or '_'".into()],
            );
            String::new()
        }
        (Some(_), _) => {
            errors.insert("name".into(), vec!["must be a string".into()]);
            String::new()
        }
    };
    let display_name = match body.get("display_name") {
        None | Some(Value::Null) => current
            .map(|c| c.display_name.clone())
            .unwrap_or_else(|| name.clone()),
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= 100 => s.clone(),
        Some(Value::String(_)) => {
            errors.insert(
                "display_name".into(),
                vec!["must be 1 to 100 characters".into()],
            );
            String::new()
        }
        Some(_) => {
            errors.insert("display_name".into(), vec!["must be a string".into()]);
            String::new()
        }
    };
    let description = match body.get("description") {
        None => current.and_then(|c| c.description.clone()),
        Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= 1000 => Some(s.clone()),
        Some(_) => {
            errors.insert(
                "description".into(),
                vec!["must be a string of at most 1000 characters".into()],
            );
            None
        }
    };
    let mut permissions = current
        .map(|c| c.permissions.clone())
        .unwrap_or_else(|| complete(&Map::new()));
    match body.get("permissions") {
        None => {}
        Some(Value::Object(given)) => {
            for (k, v) in given {
                if !PERMISSIONS.contains(&k.as_str()) {
                    errors
                        .entry("permissions".into())
                        .or_default()
                        .push(format!(
                            "unknown permission '{k}' (see GET /api/v1/permissions)"
                        ));
                } else if !v.is_boolean() {
                    errors
                        .entry("permissions".into())
                        .or_default()
                        .push(format!("'{k}' must be a boolean"));
                } else {
                    permissions.insert(k.clone(), v.clone());
                }
            }
        }
        Some(_) => {
            errors.insert(
                "permissions".into(),
                vec!["must be an object of permission name -> boolean".into()],
            );
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::fields(errors));
    }
    Ok(RoleInput {
        name,
        display_name,
        description,
        permissions,
    })
}

/// List the team's roles (built-in and custom).
#[utoipa::path(get, path = "/api/v1/roles", tag = "roles",
    params(("limit" = Option<i64>, Query), ("offset" = Option<i64>, Query), ("order" = Option<String>, Query), ("after" = Option<String>, Query)),
    responses((status = 200, body = List<RoleView>)))]
pub async fn list_roles(
    State(state): State<ApiState>,
    team: Team,
    query: QueryPairs,
) -> ApiResult<Json<List<RoleView>>> {
    let (page, after) = query.page()?;
    if let Some(a) = &after
        && state.db.role(&team.id, a).await?.is_none()
    {
        return Err(ApiError::field(
            "after",
            format!("no role '{a}' to page after"),
        ));
    }
    let (total, roles) = state
        .db
        .list_roles(&team.id, &page, after.as_deref())
        .await?;
    Ok(Json(List {
        total_count: total,
        data: roles.into_iter().map(RoleView::from).collect(),
    }))
}

/// Create a custom role.
#[utoipa::path(post, path = "/api/v1/roles", tag = "roles", request_body = RoleBody,
    responses((status = 201, body = RoleView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_role(
    State(state): State<ApiState>,
    team: Team,
    JsonObject(body): JsonObject,
) -> ApiResult<(StatusCode, Json<RoleView>)> {
    let input = role_input(&body, None)?;
    let role = state.db.create_role(&team.id, &input).await?;
    Ok((StatusCode::CREATED, Json(role.into())))
}

/// Get a role by id or name.
#[utoipa::path(get, path = "/api/v1/roles/{role}", tag = "roles",
    params(("role" = String, Path, description = "id or name")),
    responses((status = 200, body = RoleView), (status = 404, body = ErrorBody)))]
pub async fn get_role(
    State(state): State<ApiState>,
    team: Team,
    Path(role): Path<String>,
) -> ApiResult<Json<RoleView>> {
    let record = state
        .db
        .role(&team.id, &role)
        .await?
        .ok_or_else(|| ApiError::not_found("role"))?;
    Ok(Json(record.into()))
}

/// Update a role's display name, description, permissions (or a custom role's name while unused).
#[utoipa::path(patch, path = "/api/v1/roles/{role}", tag = "roles", request_body = RoleBody,
    params(("role" = String, Path, description = "id or name")),
    responses((status = 200, body = RoleView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_role(
    State(state): State<ApiState>,
    team: Team,
    Path(role): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<RoleView>> {
    let updated = state
        .db
        .update_role(&team.id, &role, |current| role_input(&body, Some(current)))
        .await?;
    Ok(Json(updated.into()))
}

/// Delete a custom role (409 while a room uses it).
#[utoipa::path(delete, path = "/api/v1/roles/{role}", tag = "roles",
    params(("role" = String, Path, description = "id or name")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_role(
    State(state): State<ApiState>,
    team: Team,
    Path(role): Path<String>,
) -> ApiResult<StatusCode> {
    state.db.delete_role(&team.id, &role).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every permission name a role can grant.
#[utoipa::path(get, path = "/api/v1/permissions", tag = "roles",
    responses((status = 200, body = Vec<String>)))]
pub async fn list_permissions(_team: Team) -> Json<Vec<&'static str>> {
    Json(PERMISSIONS.to_vec())
}
