//! Removals by a moderator that outlast the room actor and restarts: a ban
//! keeps a token (by its SHA-256) and its external id out of the room until
//! the token expires.

#[allow(unused_imports)]
use crate::store::{on_pool, on_tx};

use super::{Db, StoreError};

/// One active ban.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    pub token_fingerprint: Option<String>,
    pub external_id: Option<String>,
}

impl Db {
    /// Bans what identified a removed participant until `expires_at`
    /// (RFC 3339 UTC, as stored timestamps are).
    pub async fn add_room_ban(
        &self,
        room_id: &str,
        ban: &Ban,
        expires_at: &str,
    ) -> Result<(), StoreError> {
        on_pool!(&self.write, |c| {
            sqlx::query(
            "INSERT INTO room_bans (id, room_id, token_fingerprint, external_id, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(room_id)
        .bind(&ban.token_fingerprint)
        .bind(&ban.external_id)
        .bind(expires_at)
        .bind(super::now())
        .execute(c).await.map(crate::store::Done::from)
        })?;
        Ok(())
    }

    /// The room's bans that have not expired at `now` (RFC 3339 UTC).
    pub async fn room_bans(&self, room_id: &str, now: &str) -> Result<Vec<Ban>, StoreError> {
        let rows: Vec<(Option<String>, Option<String>)> =
            on_pool!(&self.read, |c| sqlx::query_as(
                "SELECT token_fingerprint, external_id FROM room_bans \
             WHERE room_id = $1 AND expires_at > $2 ORDER BY created_at",
            )
            .bind(room_id)
            .bind(now)
            .fetch_all(c)
            .await)?;
        Ok(rows
            .into_iter()
            .map(|(token_fingerprint, external_id)| Ban {
                token_fingerprint,
                external_id,
            })
            .collect())
    }

    /// Forgets bans that expired before `now`.
    pub async fn prune_room_bans(&self, now: &str) -> Result<u64, StoreError> {
        let r = on_pool!(&self.write, |c| sqlx::query(
            "DELETE FROM room_bans WHERE expires_at <= $1"
        )
        .bind(now)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        Ok(r.rows_affected())
    }
}
