//! `GET/PATCH /api/v1`: the team's default room settings.

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value};

use crate::ApiState;
use crate::auth::Team;
use crate::error::{ApiError, ApiResult, ErrorBody, FieldErrors};
use crate::extract::JsonObject;
use crate::settings::{self, DefaultSettings, Target};

fn view(settings: Map<String, Value>) -> ApiResult<Json<DefaultSettings>> {
    serde_json::from_value(Value::Object(settings))
        .map(Json)
        .map_err(ApiError::internal)
}

/// Get the default settings new rooms take.
#[utoipa::path(get, path = "/api/v1", tag = "defaults",
    responses((status = 200, body = DefaultSettings), (status = 401, body = ErrorBody)))]
pub async fn get_defaults(
    State(state): State<ApiState>,
    team: Team,
) -> ApiResult<Json<DefaultSettings>> {
    let record = state
        .db
        .team_by_id(&team.id)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("team no longer exists".into()))?;
    view(settings::complete(record.default_settings, Target::Team))
}

/// Same as `GET /api/v1` (clients call it with a trailing slash).
#[utoipa::path(get, path = "/api/v1/", tag = "defaults",
    responses((status = 200, body = DefaultSettings), (status = 401, body = ErrorBody)))]
pub async fn get_defaults_slash(
    state: State<ApiState>,
    team: Team,
) -> ApiResult<Json<DefaultSettings>> {
    get_defaults(state, team).await
}

/// Update the default settings; only the fields given change.
#[utoipa::path(patch, path = "/api/v1", tag = "defaults", request_body = DefaultSettings,
    responses((status = 200, body = DefaultSettings), (status = 422, body = ErrorBody)))]
pub async fn patch_defaults(
    State(state): State<ApiState>,
    team: Team,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<DefaultSettings>> {
    let next = state
        .db
        .update_default_settings(&team.id, |current, roles| {
            let mut errors = FieldErrors::new();
            let changes = settings::validate(&body, Target::Team, current, &mut errors);
            let mut next = current.clone();
            next.extend(changes);
            check_roles(&next, roles, &body, false, &mut errors);
            settings::check_e2ee(&next, &mut errors);
            if errors.is_empty() {
                Ok(next)
            } else {
                Err(ApiError::fields(errors))
            }
        })
        .await?;
    view(next)
}

/// Same as `PATCH /api/v1`.
#[utoipa::path(patch, path = "/api/v1/", tag = "defaults", request_body = DefaultSettings,
    responses((status = 200, body = DefaultSettings), (status = 422, body = ErrorBody)))]
pub async fn patch_defaults_slash(
    state: State<ApiState>,
    team: Team,
    body: JsonObject,
) -> ApiResult<Json<DefaultSettings>> {
    patch_defaults(state, team, body).await
}

/// Cross-field rules for `roles` and `default_role` on the merged settings
/// `next`. With `strict` (rooms), a `default_role` in the request requires
/// `roles` in the same request, as the seed says.
pub(crate) fn check_roles(
    next: &Map<String, Value>,
    team_roles: &[String],
    body: &Map<String, Value>,
    strict: bool,
    errors: &mut FieldErrors,
) {
    if errors.contains_key("roles") || errors.contains_key("default_role") {
        return;
    }
    let roles: Vec<&str> = next
        .get("roles")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for r in &roles {
        if !team_roles.iter().any(|t| t == r) {
            errors.entry("roles".into()).or_default().push(format!(
                "unknown role '{r}' (create it with POST /api/v1/roles first)"
            ));
        }
    }
    let default_role = next
        .get("default_role")
        .and_then(Value::as_str)
        .unwrap_or("");
    if strict && body.contains_key("default_role") && !body.contains_key("roles") {
        errors
            .entry("default_role".into())
            .or_default()
            .push("requires `roles` in the same request, and must be one of them".into());
    } else if !roles.contains(&default_role) {
        let field = if body.contains_key("default_role") {
            "default_role"
        } else {
            "roles"
        };
        errors.entry(field.into()).or_default().push(format!(
            "default_role '{default_role}' must be one of the roles ({})",
            roles.join(", ")
        ));
    }
}
