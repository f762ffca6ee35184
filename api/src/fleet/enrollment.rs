//! Enrollment tokens after they are made (docs/fleet.md, "Enrollment
//! tokens"): `GET /enrollment-tokens` lists them with their state (never the
//! token itself), `DELETE /enrollment-tokens/{id}` revokes an unused one
//! (admins: the role check is the middleware's).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;

use super::FleetState;
use super::auth::FleetUser;
use super::domain;
use super::error::{FleetError, FleetResult};
use super::extract::FleetQuery;
use crate::store::fleet::enrollment::{EnrollmentTokenRow, Revoked};

/// An enrollment token as listed: `status` is `active`, `used`, `revoked`
/// or `expired`.
#[derive(Debug, Serialize)]
pub struct EnrollmentTokenInfo {
    pub id: String,
    pub status: &'static str,
    pub group: Option<String>,
    pub created_by: Option<String>,
    pub created_at: String,
    pub expires_at: String,
    pub used_at: Option<String>,
    pub device_id: Option<String>,
    pub revoked_at: Option<String>,
    pub revoked_by: Option<String>,
}

/// The state of a token at `now` (RFC 3339 UTC strings compare in time order).
pub fn status_of(r: &EnrollmentTokenRow, now: &str) -> &'static str {
    if r.used_at.is_some() {
        "used"
    } else if r.revoked_at.is_some() {
        "revoked"
    } else if r.expires_at.as_str() <= now {
        "expired"
    } else {
        "active"
    }
}

fn info(r: EnrollmentTokenRow, now: &str) -> EnrollmentTokenInfo {
    EnrollmentTokenInfo {
        status: status_of(&r, now),
        id: r.id,
        group: r.group_id,
        created_by: r.created_by,
        created_at: r.created_at,
        expires_at: r.expires_at,
        used_at: r.used_at,
        device_id: r.device_id,
        revoked_at: r.revoked_at,
        revoked_by: r.revoked_by,
    }
}

#[derive(Debug, Serialize)]
pub struct EnrollmentTokenList {
    pub enrollment_tokens: Vec<EnrollmentTokenInfo>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

/// `GET /enrollment-tokens?limit=&offset=`: newest first.
pub async fn list(
    State(state): State<FleetState>,
    query: FleetQuery,
) -> FleetResult<Json<EnrollmentTokenList>> {
    let (limit, offset) = domain::page_query(|k| query.get(k))?;
    let (rows, total) = state.db.fleet_enrollment_tokens(limit, offset).await?;
    let now = crate::store::now();
    Ok(Json(EnrollmentTokenList {
        enrollment_tokens: rows.into_iter().map(|r| info(r, &now)).collect(),
        total,
        limit,
        offset,
    }))
}

/// `DELETE /enrollment-tokens/{id}`: 204 (also when it was revoked
/// before); 409 `CONFLICT` when it enrolled a device already; 404.
pub async fn revoke(
    State(state): State<FleetState>,
    user: FleetUser,
    Path(id): Path<String>,
) -> FleetResult<StatusCode> {
    match state
        .db
        .revoke_fleet_enrollment_token(&id, &user.id)
        .await?
    {
        Revoked::Done(_) => {
            tracing::info!(token = %id, by = %user.email, "enrollment token revoked");
            Ok(StatusCode::NO_CONTENT)
        }
        Revoked::AlreadyUsed(r) => Err(FleetError::Conflict(format!(
            "enrollment token {id} enrolled device {} already; delete or rotate the device instead",
            r.device_id.unwrap_or_default()
        ))),
        Revoked::NotFound => Err(FleetError::not_found("Enrollment token", &id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> EnrollmentTokenRow {
        EnrollmentTokenRow {
            id: "t".into(),
            group_id: None,
            created_by: None,
            expires_at: "2026-12-04T12:00:00Z".into(),
            used_at: None,
            device_id: None,
            revoked_at: None,
            revoked_by: None,
            created_at: "2026-12-04T11:00:00Z".into(),
        }
    }

    #[test]
    fn status_follows_use_then_revocation_then_time() {
        let now = "2026-12-04T11:30:00Z";
        assert_eq!(status_of(&row(), now), "active");
        assert_eq!(status_of(&row(), "2026-12-04T12:00:00Z"), "expired");
        let mut r = row();
        r.revoked_at = Some(now.into());
        assert_eq!(status_of(&r, now), "revoked");
        r.used_at = Some(now.into());
        assert_eq!(status_of(&r, now), "used");
    }
}
