//! The phone bridge's rows (migration 0027): a room's dial-in extension and
//! PIN, written by `phone/connect`, removed by `phone/disconnect`, and looked
//! up by extension when a SIP call arrives. Plain SQL with `$n` placeholders
//! (SQLite and PostgreSQL alike).

use serde::Serialize;
use utoipa::ToSchema;

#[allow(unused_imports)]
use crate::store::{on_pool, on_tx};

use super::{Db, StoreError};

/// A room's dial-in: what callers dial and the PIN they enter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
pub struct PhoneBridge {
    pub room_id: String,
    #[serde(skip)]
    pub team_id: String,
    /// The extension (SIP user part) callers dial.
    pub extension: String,
    /// The PIN callers enter by DTMF, then `#`.
    pub pin: String,
    pub created_at: String,
}

/// Tries at a free extension before giving up (8 random digits: a clash
/// is rare even with many rooms).
const EXTENSION_TRIES: usize = 8;

impl Db {
    /// The room's dial-in, if it is connected.
    pub async fn phone_bridge(&self, room_id: &str) -> Result<Option<PhoneBridge>, StoreError> {
        Ok(on_pool!(&self.read, |c| sqlx::query_as(
            "SELECT room_id, team_id, extension, pin, created_at
             FROM phone_bridges WHERE room_id = $1",
        )
        .bind(room_id)
        .fetch_optional(c)
        .await)?)
    }

    /// The dial-in a caller reached by its extension.
    pub async fn phone_bridge_by_extension(
        &self,
        extension: &str,
    ) -> Result<Option<PhoneBridge>, StoreError> {
        Ok(on_pool!(&self.read, |c| sqlx::query_as(
            "SELECT room_id, team_id, extension, pin, created_at
             FROM phone_bridges WHERE extension = $1",
        )
        .bind(extension)
        .fetch_optional(c)
        .await)?)
    }

    /// Connects the room: keeps an existing dial-in as it is, or stores a
    /// new one with an extension from `new_extension` (called again on the
    /// rare clash with another room's) and `pin`.
    pub async fn phone_connect(
        &self,
        team_id: &str,
        room_id: &str,
        mut new_extension: impl FnMut() -> String,
        pin: &str,
    ) -> Result<PhoneBridge, StoreError> {
        for _ in 0..EXTENSION_TRIES {
            if let Some(existing) = self.phone_bridge(room_id).await? {
                return Ok(existing);
            }
            let extension = new_extension();
            // A clash on the room (connected meanwhile) or on the
            // extension (another room's) inserts nothing: the loop looks
            // again, then tries another extension.
            on_pool!(&self.write, |c| sqlx::query(
                "INSERT INTO phone_bridges (room_id, team_id, extension, pin, created_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(room_id)
            .bind(team_id)
            .bind(&extension)
            .bind(pin)
            .bind(super::now())
            .execute(c)
            .await
            .map(crate::store::Done::from))?;
        }
        self.phone_bridge(room_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("no free phone extension found".into()))
    }

    /// Disconnects the room; false when it was not connected.
    pub async fn phone_disconnect(&self, room_id: &str) -> Result<bool, StoreError> {
        let done = on_pool!(&self.write, |c| sqlx::query(
            "DELETE FROM phone_bridges WHERE room_id = $1"
        )
        .bind(room_id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        Ok(done.rows_affected() > 0)
    }
}
