//! The SQL of fleet user management (migrations/0021_fleet_user_tokens.sql):
//! changing a role or password (which retires the user's tokens) and
//! deleting, never leaving the fleet without an admin (checked inside the
//! write's transaction).

#[allow(unused_imports)]
use crate::store::{on_pool, on_tx};

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

/// How many admins other than `id` there are; on PostgreSQL their rows are
/// locked until the transaction ends, so that two concurrent demotions or
/// deletions cannot each count the other and leave no admin.
async fn other_admins(tx: &mut crate::store::Tx<'_>, id: &str) -> Result<i64, sqlx::Error> {
    let ids: Vec<String> = if tx.is_postgres() {
        on_tx!(tx, |c| sqlx::query_scalar(
            "SELECT id FROM fleet_users WHERE role = 'admin' AND id != $1 FOR UPDATE"
        )
        .bind(id)
        .fetch_all(c)
        .await)?
    } else {
        on_tx!(tx, |c| sqlx::query_scalar(
            "SELECT id FROM fleet_users WHERE role = 'admin' AND id != $1"
        )
        .bind(id)
        .fetch_all(c)
        .await)?
    };
    Ok(ids.len() as i64)
}

/// The user's role, or `NotFound`.
async fn role_of(tx: &mut crate::store::Tx<'_>, id: &str) -> Result<String, FleetStoreError> {
    // FOR UPDATE on PostgreSQL: the row is locked until the write commits.
    let sql = if tx.is_postgres() {
        "SELECT role FROM fleet_users WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT role FROM fleet_users WHERE id = $1"
    };
    let current: Option<(String,)> =
        on_tx!(tx, |c| sqlx::query_as(sql).bind(id).fetch_optional(c).await)?;
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
        on_tx!(tx, |c| sqlx::query(
            "UPDATE fleet_users SET role = COALESCE($1, role),
                 password_hash = COALESCE($2, password_hash),
                 token_version = token_version + 1, updated_at = $3
             WHERE id = $4",
        )
        .bind(patch.role.map(FleetRole::as_str))
        .bind(&patch.password_hash)
        .bind(crate::store::now())
        .bind(id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
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
        on_tx!(tx, |c| sqlx::query("DELETE FROM fleet_users WHERE id = $1")
            .bind(id)
            .execute(c)
            .await
            .map(crate::store::Done::from))?;
        tx.commit().await?;
        Ok(())
    }
}
