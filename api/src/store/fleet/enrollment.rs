//! The SQL of enrollment tokens after they are made: listing them (never
//! the token, which only its hash stands for) and revoking an unused one
//! (migrations/0025_fleet_enrollment_revocation.sql). Making and spending a
//! token is in `mod.rs`, beside the device it creates.

#[allow(unused_imports)]
use crate::store::{on_pool, on_tx};

use super::super::{Db, StoreError, now};

/// An enrollment token as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrollmentTokenRow {
    pub id: String,
    pub group_id: Option<String>,
    pub created_by: Option<String>,
    pub expires_at: String,
    pub used_at: Option<String>,
    pub device_id: Option<String>,
    pub revoked_at: Option<String>,
    pub revoked_by: Option<String>,
    pub created_at: String,
}

type Row = (
    String,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
);

const COLUMNS: &str =
    "id, group_id, created_by, expires_at, used_at, device_id, revoked_at, revoked_by, created_at";

fn row(r: Row) -> EnrollmentTokenRow {
    EnrollmentTokenRow {
        id: r.0,
        group_id: r.1,
        created_by: r.2,
        expires_at: r.3,
        used_at: r.4,
        device_id: r.5,
        revoked_at: r.6,
        revoked_by: r.7,
        created_at: r.8,
    }
}

/// What revoking found.
#[derive(Debug, Clone, PartialEq)]
pub enum Revoked {
    /// Revoked now, or earlier (revoking twice changes nothing).
    Done(EnrollmentTokenRow),
    /// It enrolled a device already: nothing to revoke.
    AlreadyUsed(EnrollmentTokenRow),
    NotFound,
}

impl Db {
    /// A page of enrollment tokens, newest first, and how many there are.
    pub async fn fleet_enrollment_tokens(
        &self,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<EnrollmentTokenRow>, i64), StoreError> {
        let rows: Vec<Row> = on_pool!(&self.read, |c| sqlx::query_as(&crate::store::numbered(
            &format!(
                "SELECT {COLUMNS} FROM fleet_enrollment_tokens
             ORDER BY created_at DESC, id LIMIT ? OFFSET ?"
            )
        ))
        .bind(limit)
        .bind(offset)
        .fetch_all(c)
        .await)?;
        let total: i64 = on_pool!(&self.read, |c| sqlx::query_scalar(
            "SELECT COUNT(*) FROM fleet_enrollment_tokens"
        )
        .fetch_one(c)
        .await)?;
        Ok((rows.into_iter().map(row).collect(), total))
    }

    /// Revokes the unused token `id` (in one statement, so a device
    /// enrolling at the same moment either gets it first or not at all).
    pub async fn revoke_fleet_enrollment_token(
        &self,
        id: &str,
        by: &str,
    ) -> Result<Revoked, StoreError> {
        let mut tx = self.write.begin().await?;
        on_tx!(tx, |c| sqlx::query(
            "UPDATE fleet_enrollment_tokens SET revoked_at = $1, revoked_by = $2
             WHERE id = $3 AND used_at IS NULL AND revoked_at IS NULL",
        )
        .bind(now())
        .bind(by)
        .bind(id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        let found: Option<Row> = on_tx!(tx, |c| sqlx::query_as(&crate::store::numbered(
            &format!("SELECT {COLUMNS} FROM fleet_enrollment_tokens WHERE id = ?")
        ))
        .bind(id)
        .fetch_optional(c)
        .await)?;
        tx.commit().await?;
        Ok(match found.map(row) {
            None => Revoked::NotFound,
            Some(r) if r.revoked_at.is_none() => Revoked::AlreadyUsed(r),
            Some(r) => Revoked::Done(r),
        })
    }
}
