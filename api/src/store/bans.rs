//! Removals by a moderator that outlast the room actor and restarts: a ban
//! keeps a token (by its SHA-256) and its external id out of the room until
//! the token expires.

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
        sqlx::query(
            "INSERT INTO room_bans (id, room_id, token_fingerprint, external_id, expires_at, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(room_id)
        .bind(&ban.token_fingerprint)
        .bind(&ban.external_id)
        .bind(expires_at)
        .bind(super::now())
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The room's bans that have not expired at `now` (RFC 3339 UTC).
    pub async fn room_bans(&self, room_id: &str, now: &str) -> Result<Vec<Ban>, StoreError> {
        let rows: Vec<(Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT token_fingerprint, external_id FROM room_bans \
             WHERE room_id = ? AND expires_at > ? ORDER BY created_at",
        )
        .bind(room_id)
        .bind(now)
        .fetch_all(&self.read)
        .await?;
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
        let r = sqlx::query("DELETE FROM room_bans WHERE expires_at <= ?")
            .bind(now)
            .execute(&self.write)
            .await?;
        Ok(r.rows_affected())
    }
}
