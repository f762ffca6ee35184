//! Sessions and participants as the media plane records them.

use super::{Db, StoreError, now};

/// A participant admitted into a session.
#[derive(Debug, Clone)]
pub struct NewParticipant<'a> {
    pub id: &'a str,
    pub team_id: &'a str,
    pub room_id: &'a str,
    pub session_id: &'a str,
    pub name: &'a str,
    pub external_id: Option<&'a str>,
    pub role: &'a str,
    pub client_kind: &'a str,
    pub user_agent: Option<&'a str>,
    pub device_id: Option<&'a str>,
}

/// Media counted through the SFU during a session.
#[derive(Debug, Default, Clone, Copy)]
pub struct SessionMedia {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
}

impl Db {
    /// Opens a new session for the room and returns its id.
    pub async fn start_session(&self, team_id: &str, room_id: &str) -> Result<String, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query("INSERT INTO sessions (id, team_id, room_id, started_at) VALUES (?, ?, ?, ?)")
            .bind(&id)
            .bind(team_id)
            .bind(room_id)
            .bind(now())
            .execute(&self.write)
            .await?;
        Ok(id)
    }

    /// Ends a session, marking anyone still in it as left.
    pub async fn end_session(&self, session_id: &str, reason: &str) -> Result<(), StoreError> {
        self.end_session_with(session_id, reason, &SessionMedia::default())
            .await
    }

    /// Ends a session with the media counted during it.
    pub async fn end_session_with(
        &self,
        session_id: &str,
        reason: &str,
        media: &SessionMedia,
    ) -> Result<(), StoreError> {
        let ts = now();
        let mut tx = self.write.begin().await?;
        sqlx::query(
            "UPDATE participants SET left_at = ?, leave_reason = 'session_ended'
             WHERE session_id = ? AND left_at IS NULL",
        )
        .bind(&ts)
        .bind(session_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE sessions SET ended_at = ?, end_reason = ?, packets_in = ?, bytes_in = ?,
                    packets_out = ?, bytes_out = ?
             WHERE id = ? AND ended_at IS NULL",
        )
        .bind(&ts)
        .bind(reason)
        .bind(media.packets_in as i64)
        .bind(media.bytes_in as i64)
        .bind(media.packets_out as i64)
        .bind(media.bytes_out as i64)
        .bind(session_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn add_participant(&self, p: &NewParticipant<'_>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO participants (id, team_id, room_id, session_id, name, external_id, role,
                                       client_kind, user_agent, device_id, joined_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(p.id)
        .bind(p.team_id)
        .bind(p.room_id)
        .bind(p.session_id)
        .bind(p.name)
        .bind(p.external_id)
        .bind(p.role)
        .bind(p.client_kind)
        .bind(p.user_agent)
        .bind(p.device_id)
        .bind(now())
        .execute(&self.write)
        .await?;
        Ok(())
    }

    pub async fn participant_left(&self, id: &str, reason: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE participants SET left_at = ?, leave_reason = ? WHERE id = ? AND left_at IS NULL",
        )
        .bind(now())
        .bind(reason)
        .bind(id)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Ends sessions a previous run left open (a crash or kill -9): they end
    /// at the last moment anything happened in them.
    pub async fn close_stale_sessions(&self) -> Result<u64, StoreError> {
        let mut tx = self.write.begin().await?;
        sqlx::query(
            "UPDATE participants SET left_at = COALESCE(
                 (SELECT MAX(p2.joined_at) FROM participants p2 WHERE p2.session_id = participants.session_id),
                 joined_at), leave_reason = 'server_restart'
             WHERE left_at IS NULL",
        )
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query(
            "UPDATE sessions SET ended_at = COALESCE(
                 (SELECT MAX(COALESCE(p.left_at, p.joined_at)) FROM participants p WHERE p.session_id = sessions.id),
                 started_at), end_reason = 'server_restart'
             WHERE ended_at IS NULL",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Participants currently in a live session of the room (by room id).
    pub async fn live_count_room(&self, room_id: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM participants p JOIN sessions s ON s.id = p.session_id
             WHERE p.room_id = ? AND p.left_at IS NULL AND s.ended_at IS NULL",
        )
        .bind(room_id)
        .fetch_one(&self.read)
        .await?)
    }

    /// Participants currently in any live session of the team.
    pub async fn live_count_team(&self, team_id: &str) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM participants p JOIN sessions s ON s.id = p.session_id
             WHERE p.team_id = ? AND p.left_at IS NULL AND s.ended_at IS NULL",
        )
        .bind(team_id)
        .fetch_one(&self.read)
        .await?)
    }
}
