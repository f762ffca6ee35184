//! Session summaries (migration 0023): the durable summary jobs written when
//! a session with transcripts ends, claimed one at a time by the summary
//! worker (crate::summary) and read by `GET /sessions/{session}/summary`.

#[allow(unused_imports)]
use crate::store::{on_pool, on_tx};

use serde::Serialize;

use super::{Db, StoreError};

/// A job queued or running.
pub const IN_PROGRESS: &str = "IN_PROGRESS";
/// The summary is there.
pub const READY: &str = "READY";
/// The job gave up; `failure_reason` says why.
pub const FAILED: &str = "FAILED";

/// A session's summary job as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct SummaryRow {
    pub id: String,
    pub team_id: String,
    pub room_id: String,
    pub session_id: String,
    pub status: String,
    pub summary: String,
    pub failure_reason: Option<String>,
    pub attempts: i64,
}

const COLUMNS: &str = "id, team_id, room_id, session_id, status, summary, failure_reason, attempts";

impl Db {
    /// Queues the summary job of a session that ended with transcripts;
    /// a session already having one keeps it. Returns the job id.
    pub async fn queue_summary(
        &self,
        team_id: &str,
        room_id: &str,
        session_id: &str,
    ) -> Result<String, StoreError> {
        let now = super::now();
        on_pool!(&self.write, |c| {
            sqlx::query(
            "INSERT INTO summaries (id, team_id, room_id, session_id, status, created_at, updated_at)
             VALUES ($1, $2, $3, $4, 'IN_PROGRESS', $5, $6)
             ON CONFLICT (session_id) DO NOTHING",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(team_id)
        .bind(room_id)
        .bind(session_id)
        .bind(&now)
        .bind(&now)
        .execute(c).await.map(crate::store::Done::from)
        })?;
        Ok(on_pool!(&self.write, |c| sqlx::query_scalar(
            "SELECT id FROM summaries WHERE session_id = $1"
        )
        .bind(session_id)
        .fetch_one(c)
        .await)?)
    }

    /// The summary job of a session, if it has one.
    pub async fn session_summary(
        &self,
        session_id: &str,
    ) -> Result<Option<SummaryRow>, StoreError> {
        Ok(on_pool!(&self.read, |c| sqlx::query_as(
            &crate::store::numbered(&format!(
                "SELECT {COLUMNS} FROM summaries WHERE session_id = ?"
            ))
        )
        .bind(session_id)
        .fetch_optional(c)
        .await)?)
    }

    /// Claims the oldest job still IN_PROGRESS (also one a crashed or
    /// restarted server left behind) and counts the attempt.
    pub async fn claim_summary_job(&self) -> Result<Option<SummaryRow>, StoreError> {
        let mut tx = self.write.begin().await?;
        let row: Option<SummaryRow> =
            on_tx!(tx, |c| sqlx::query_as(&crate::store::numbered(&format!(
                "SELECT {COLUMNS} FROM summaries WHERE status = 'IN_PROGRESS'
             ORDER BY created_at, id LIMIT 1"
            )))
            .fetch_optional(c)
            .await)?;
        let Some(mut row) = row else {
            return Ok(None);
        };
        on_tx!(tx, |c| sqlx::query(
            "UPDATE summaries SET attempts = attempts + 1, updated_at = $1 WHERE id = $2"
        )
        .bind(super::now())
        .bind(&row.id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        tx.commit().await?;
        row.attempts += 1;
        Ok(Some(row))
    }

    /// Ends a job: READY with its summary, or FAILED with the reason. A job
    /// deleted meanwhile stays deleted.
    pub async fn finish_summary(
        &self,
        job_id: &str,
        outcome: Result<&str, &str>,
    ) -> Result<(), StoreError> {
        let (status, summary, reason) = match outcome {
            Ok(text) => (READY, text, None),
            Err(reason) => (FAILED, "", Some(reason)),
        };
        on_pool!(&self.write, |c| sqlx::query(
            "UPDATE summaries SET status = $1, summary = $2, failure_reason = $3, updated_at = $4
             WHERE id = $5",
        )
        .bind(status)
        .bind(summary)
        .bind(reason)
        .bind(super::now())
        .bind(job_id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        Ok(())
    }

    /// Deletes the summaries of every session of a room; returns how many.
    pub async fn delete_room_summaries(&self, room_id: &str) -> Result<u64, StoreError> {
        Ok(on_pool!(&self.write, |c| sqlx::query(
            "DELETE FROM summaries WHERE room_id = $1"
        )
        .bind(room_id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?
        .rows_affected())
    }
}
