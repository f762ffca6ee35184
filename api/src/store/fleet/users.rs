//! The SQL of fleet user management (migrations/0021_fleet_user_tokens.sql):
//! changing a role or password (which retires the user's tokens) and
//! deleting, never leaving the fleet without an admin (checked inside the
//! write's transaction).

use super::{FleetStoreError, FleetUserRecord};
use crate::fleet::domain::FleetRole;
use crate::store::Db;

const LAST_ADMIN: &str = "the fleet must keep at least one admin";

/// A validated change of a fleet user.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetUserPatch {
    pub role: Option<FleetRole>,
    /// The new password's argon2id hash.
    pub password_hash: Option<String>,
}

async fn other_admins(conn: &mut sqlx::SqliteConnection, id: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM fleet_users WHERE role = 'admin' AND id != ?")
        .bind(id)
        .fetch_one(conn)
        .await
}

/// The user's role, or `NotFound`.
async fn role_of(conn: &mut sqlx::SqliteConnection, id: &str) -> Result<String, FleetStoreError> {
    let current: Option<(String,)> = sqlx::query_as("SELECT role FROM fleet_users WHERE id = ?")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    current
        .map(|(r,)| r)
        .ok_or(FleetStoreError::NotFound("Fleet user"))
}

impl Db {
    /// Applies `patch`; every change increments the user's token version,
    /// retiring the tokens issued before it. `NotFound` for an unknown user,
    /// `LastAdmin` for the demotion of the only admin.
    pub async fn update_fleet_user(
        &self,
        id: &str,
        patch: &FleetUserPatch,
    ) -> Result<FleetUserRecord, FleetStoreError> {
        let mut tx = self.write.begin().await?;
        let role = role_of(&mut tx, id).await?;
        if role == "admin"
            && patch.role == Some(FleetRole::Viewer)
            && other_admins(&mut tx, id).await? == 0
        {
            return Err(FleetStoreError::LastAdmin(LAST_ADMIN));
        }
        sqlx::query(
            "UPDATE fleet_users SET role = COALESCE(?, role),
                 password_hash = COALESCE(?, password_hash),
                 token_version = token_version + 1, updated_at = ?
             WHERE id = ?",
        )
        .bind(patch.role.map(FleetRole::as_str))
        .bind(&patch.password_hash)
        .bind(crate::store::now())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.fleet_user_by_id(id)
            .await?
            .ok_or(FleetStoreError::NotFound("Fleet user"))
    }

    /// Deletes a user (its tokens stop working at once: each request looks
    /// the user up). `NotFound`, or `LastAdmin` for the only admin.
    pub async fn delete_fleet_user(&self, id: &str) -> Result<(), FleetStoreError> {
        let mut tx = self.write.begin().await?;
        let role = role_of(&mut tx, id).await?;
        if role == "admin" && other_admins(&mut tx, id).await? == 0 {
            return Err(FleetStoreError::LastAdmin(LAST_ADMIN));
        }
        sqlx::query("DELETE FROM fleet_users WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
