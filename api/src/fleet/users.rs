//! Fleet users over the API (`/users`, admins only): list, create (as the
//! CLI's `convene fleet user create` does), change a role or password
//! (which retires the user's access tokens), delete. The fleet always
//! keeps one admin: demoting or deleting the last one is 409.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

use super::FleetState;
use super::auth::{FleetUser, hash_password};
use super::domain::{self, FleetRole, no_unknown};
use super::error::{FleetError, FleetResult};
use super::extract::FleetJson;
use crate::domain::fields::{check, push};
use crate::domain::{FieldErrors, Invalid};
use crate::store::fleet::FleetUserRecord;
use crate::store::fleet::users::FleetUserPatch;

#[derive(Debug, Serialize)]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub role: &'static str,
    pub created_at: String,
}

impl From<FleetUserRecord> for UserView {
    fn from(u: FleetUserRecord) -> Self {
        UserView {
            id: u.id,
            email: u.email,
            role: u.role.as_str(),
            created_at: u.created_at,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct UserList {
    pub users: Vec<UserView>,
    pub total: usize,
}

/// Reading the user list is for admins too (it names every account).
fn admin_only(user: &FleetUser) -> FleetResult<()> {
    if user.role == FleetRole::Admin {
        Ok(())
    } else {
        Err(FleetError::Forbidden(
            "managing fleet users needs the admin role".into(),
        ))
    }
}

fn role(v: &Value, errors: &mut FieldErrors) -> Option<FleetRole> {
    match v.as_str().and_then(FleetRole::parse) {
        Some(r) => Some(r),
        None => {
            push(errors, "role", "must be `admin` or `viewer`");
            None
        }
    }
}

fn password(v: &Value, errors: &mut FieldErrors) -> Option<String> {
    match v.as_str() {
        Some(p) => match domain::password(p) {
            Ok(()) => Some(p.to_string()),
            Err(m) => {
                push(errors, "password", m);
                None
            }
        },
        None => {
            push(errors, "password", "must be a string");
            None
        }
    }
}

/// `POST /users`: `email`, `password`, `role` (default `viewer`).
pub fn new_user(body: &Map<String, Value>) -> Result<(String, String, FleetRole), Invalid> {
    let mut errors = FieldErrors::new();
    no_unknown(body, &["email", "password", "role"], &mut errors);
    let email = match body.get("email").and_then(Value::as_str) {
        Some(e) => match domain::email(e) {
            Ok(e) => Some(e),
            Err(m) => {
                push(&mut errors, "email", m);
                None
            }
        },
        None => {
            push(&mut errors, "email", "is required (a string)");
            None
        }
    };
    let pw = match body.get("password") {
        None | Some(Value::Null) => {
            push(&mut errors, "password", "is required");
            None
        }
        Some(v) => password(v, &mut errors),
    };
    let r = match body.get("role") {
        None | Some(Value::Null) => Some(FleetRole::Viewer),
        Some(v) => role(v, &mut errors),
    };
    check(errors)?;
    match (email, pw, r) {
        (Some(e), Some(p), Some(r)) => Ok((e, p, r)),
        _ => Err(Invalid::field("email", "is required")),
    }
}

/// `PATCH /users/{id}`: `role` and/or `password`.
pub fn user_patch(
    body: &Map<String, Value>,
) -> Result<(Option<FleetRole>, Option<String>), Invalid> {
    let mut errors = FieldErrors::new();
    no_unknown(body, &["role", "password"], &mut errors);
    let r = body.get("role").and_then(|v| role(v, &mut errors));
    let pw = body.get("password").and_then(|v| password(v, &mut errors));
    if body.get("role").is_none() && body.get("password").is_none() {
        push(&mut errors, "role", "give `role` and/or `password`");
    }
    check(errors)?;
    Ok((r, pw))
}

/// `GET /users`
pub async fn list(State(state): State<FleetState>, user: FleetUser) -> FleetResult<Json<UserList>> {
    admin_only(&user)?;
    let users: Vec<UserView> = state
        .db
        .fleet_users()
        .await?
        .into_iter()
        .map(UserView::from)
        .collect();
    Ok(Json(UserList {
        total: users.len(),
        users,
    }))
}

/// `POST /users`: 201; 409 when the email exists.
pub async fn create(
    State(state): State<FleetState>,
    user: FleetUser,
    FleetJson(body): FleetJson,
) -> FleetResult<Response> {
    admin_only(&user)?;
    let (email, password, role) = new_user(&body)?;
    let created = super::create_user(&state.db, &email, &password, role).await?;
    tracing::info!(user = %created.id, role = role.as_str(), by = %user.email, "fleet user created");
    Ok((StatusCode::CREATED, Json(UserView::from(created))).into_response())
}

/// `GET /users/{id}`
pub async fn get_one(
    State(state): State<FleetState>,
    user: FleetUser,
    Path(id): Path<String>,
) -> FleetResult<Json<UserView>> {
    admin_only(&user)?;
    let u = state
        .db
        .fleet_user_by_id(&id)
        .await?
        .ok_or_else(|| FleetError::not_found("Fleet user", &id))?;
    Ok(Json(u.into()))
}

/// `PATCH /users/{id}`: the user's earlier tokens stop working.
pub async fn update(
    State(state): State<FleetState>,
    user: FleetUser,
    Path(id): Path<String>,
    FleetJson(body): FleetJson,
) -> FleetResult<Json<UserView>> {
    admin_only(&user)?;
    let (role, password) = user_patch(&body)?;
    let password_hash = match password {
        Some(p) => {
            let _slot = state
                .password_checks
                .acquire()
                .await
                .map_err(FleetError::internal)?;
            Some(
                tokio::task::spawn_blocking(move || hash_password(&p))
                    .await
                    .map_err(FleetError::internal)??,
            )
        }
        None => None,
    };
    let patch = FleetUserPatch {
        role,
        password_hash,
    };
    let updated = state
        .db
        .update_fleet_user(&id, &patch)
        .await
        .map_err(|e| match e {
            crate::store::fleet::FleetStoreError::NotFound(_) => {
                FleetError::not_found("Fleet user", &id)
            }
            other => other.into(),
        })?;
    tracing::info!(user = %id, by = %user.email, "fleet user changed; earlier tokens retired");
    Ok(Json(updated.into()))
}

/// `POST /users/me/password`: `current_password`, `new_password`.
pub fn own_password_change(body: &Map<String, Value>) -> Result<(String, String), Invalid> {
    let mut errors = FieldErrors::new();
    no_unknown(body, &["current_password", "new_password"], &mut errors);
    let current = match body.get("current_password").and_then(Value::as_str) {
        Some(c) if !c.is_empty() => Some(c.to_string()),
        _ => {
            push(&mut errors, "current_password", "is required");
            None
        }
    };
    let new = match body.get("new_password") {
        Some(v) => password(v, &mut errors),
        None => {
            push(&mut errors, "new_password", "is required");
            None
        }
    };
    check(errors)?;
    match (current, new) {
        (Some(c), Some(n)) => Ok((c, n)),
        _ => Err(Invalid::field(
            "body",
            "current_password and new_password are required",
        )),
    }
}

/// `GET /users/me`: the signed-in user (any role).
pub async fn me(State(state): State<FleetState>, user: FleetUser) -> FleetResult<Json<UserView>> {
    let record = state
        .db
        .fleet_user_by_id(&user.id)
        .await?
        .ok_or_else(|| FleetError::not_found("Fleet user", &user.id))?;
    Ok(Json(record.into()))
}

/// `POST /users/me/password` (any role, viewers included): the current
/// password must be right (a wrong one is a 403 and counts as a failure of
/// the caller's address, like a bad sign-in); the new one follows the
/// password rules. Every token of the user is retired, this one too: the
/// client signs in again.
pub async fn change_own_password(
    State(state): State<FleetState>,
    super::extract::ClientIp(ip): super::extract::ClientIp,
    user: FleetUser,
    FleetJson(body): FleetJson,
) -> FleetResult<Json<Value>> {
    let (current, new) = own_password_change(&body)?;
    let record = state
        .db
        .fleet_user_by_id(&user.id)
        .await?
        .ok_or_else(|| FleetError::not_found("Fleet user", &user.id))?;
    let _slot = state
        .password_checks
        .acquire()
        .await
        .map_err(FleetError::internal)?;
    let hash = record.password_hash.clone();
    let (right, new_hash) = tokio::task::spawn_blocking(move || {
        if super::auth::verify_password(&hash, &current) {
            (true, Some(hash_password(&new)))
        } else {
            (false, None)
        }
    })
    .await
    .map_err(FleetError::internal)?;
    if !right {
        if let Some(ip) = ip {
            state.ip_limits.failed(ip, super::auth::unix_now());
        }
        return Err(FleetError::Forbidden(
            "current_password is not this user's password".into(),
        ));
    }
    let password_hash = new_hash.transpose()?;
    let updated = state
        .db
        .update_fleet_user(
            &user.id,
            &FleetUserPatch {
                role: None,
                password_hash,
            },
        )
        .await?;
    tracing::info!(user = %user.id, "fleet user changed their own password; earlier tokens retired");
    Ok(Json(serde_json::json!({
        "user": UserView::from(updated),
        "message": "password changed; every earlier token (this one too) no longer works: sign in again",
    })))
}

/// `DELETE /users/{id}`: 204.
pub async fn remove(
    State(state): State<FleetState>,
    user: FleetUser,
    Path(id): Path<String>,
) -> FleetResult<StatusCode> {
    admin_only(&user)?;
    state.db.delete_fleet_user(&id).await.map_err(|e| match e {
        crate::store::fleet::FleetStoreError::NotFound(_) => {
            FleetError::not_found("Fleet user", &id)
        }
        other => other.into(),
    })?;
    tracing::info!(user = %id, by = %user.email, "fleet user deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn bodies() {
        let (e, _, r) = new_user(&body(
            json!({"email": "a@example.com", "password": "correct horse battery"}),
        ))
        .unwrap();
        assert_eq!((e.as_str(), r), ("a@example.com", FleetRole::Viewer));
        let bad = new_user(&body(
            json!({"email": "nope", "password": "x", "role": "root"}),
        ))
        .unwrap_err()
        .0;
        assert!(
            bad.contains_key("email") && bad.contains_key("password") && bad.contains_key("role"),
            "{bad:?}"
        );
        assert!(user_patch(&body(json!({}))).is_err());
        assert!(user_patch(&body(json!({"role": "viewer", "extra": 1}))).is_err());
        assert_eq!(
            user_patch(&body(json!({"role": "admin"}))).unwrap(),
            (Some(FleetRole::Admin), None)
        );
    }
}
