//! Transcripts: the recognised utterances of a room's sessions (migration
//! 0013), stored by the server's voice pipeline and read by the transcript
//! endpoints.

#[allow(unused_imports)]
use crate::store::{on_pool, on_tx};

use serde::Serialize;
use utoipa::ToSchema;

use super::{Db, StoreError};

/// One recognised utterance, as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
pub struct TranscriptSegment {
    pub participant_id: String,
    pub participant_name: String,
    pub transcript: String,
    pub start_time: String,
    pub end_time: String,
}

/// A segment to store.
#[derive(Debug, Clone)]
pub struct NewSegment<'a> {
    pub team_id: &'a str,
    pub room_id: &'a str,
    pub session_id: &'a str,
    pub participant_id: &'a str,
    pub participant_name: &'a str,
    pub transcript: &'a str,
    pub start_time: &'a str,
    pub end_time: &'a str,
}

/// Whose transcripts: a room's (every session) or one session's.
#[derive(Debug, Clone, Copy)]
pub enum TranscriptScope<'a> {
    Room(&'a str),
    Session(&'a str),
}

impl TranscriptScope<'_> {
    fn column_and_id(&self) -> (&'static str, &str) {
        match self {
            TranscriptScope::Room(id) => ("room_id", id),
            TranscriptScope::Session(id) => ("session_id", id),
        }
    }
}

impl Db {
    /// Stores one segment.
    pub async fn insert_transcript(&self, s: &NewSegment<'_>) -> Result<(), StoreError> {
        on_pool!(&self.write, |c| sqlx::query(
            "INSERT INTO transcripts (id, team_id, room_id, session_id, participant_id,
                participant_name, transcript, start_time, end_time, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(s.team_id)
        .bind(s.room_id)
        .bind(s.session_id)
        .bind(s.participant_id)
        .bind(s.participant_name)
        .bind(s.transcript)
        .bind(s.start_time)
        .bind(s.end_time)
        .bind(super::now())
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        Ok(())
    }

    /// Every segment of a room or a session, in spoken order.
    pub async fn transcripts(
        &self,
        scope: TranscriptScope<'_>,
    ) -> Result<Vec<TranscriptSegment>, StoreError> {
        let (column, id) = scope.column_and_id();
        Ok(on_pool!(&self.read, |c| sqlx::query_as(
            &crate::store::numbered(&format!(
                "SELECT participant_id, participant_name, transcript, start_time, end_time
             FROM transcripts WHERE {column} = ? ORDER BY start_time, seq"
            ))
        )
        .bind(id)
        .fetch_all(c)
        .await)?)
    }

    /// Deletes every segment of a room or a session; returns how many.
    pub async fn delete_transcripts(&self, scope: TranscriptScope<'_>) -> Result<u64, StoreError> {
        let (column, id) = scope.column_and_id();
        Ok(
            on_pool!(&self.write, |c| sqlx::query(&crate::store::numbered(
                &format!("DELETE FROM transcripts WHERE {column} = ?")
            ))
            .bind(id)
            .execute(c)
            .await
            .map(crate::store::Done::from))?
            .rows_affected(),
        )
    }
}
