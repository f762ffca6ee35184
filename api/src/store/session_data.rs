//! Deleting what a session left behind: the session deletes of the seed
//! that are not owned by one resource (resources, recordings, transcripts,
//! summaries), and anonymising participants.

#[allow(unused_imports)]
use crate::store::{on_pool, on_tx};

use super::{Db, StoreError};

/// Tables owned by later features; deleted from when they exist.
const LATER_TABLES: &[&str] = &["transcripts", "summaries"];

impl Db {
    async fn table_exists(&self, name: &str) -> Result<bool, StoreError> {
        let sql = if self.write.is_postgres() {
            "SELECT COUNT(*) FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_name = $1"
        } else {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1"
        };
        let n: i64 = on_pool!(&self.write, |c| sqlx::query_scalar(sql)
            .bind(name)
            .fetch_one(c)
            .await)?;
        Ok(n > 0)
    }

    /// Deletes the rows of `table` (one of the later features' tables) that
    /// belong to a session; 0 when the table does not exist yet.
    pub async fn delete_session_rows(
        &self,
        table: &str,
        session_id: &str,
    ) -> Result<u64, StoreError> {
        if !LATER_TABLES.contains(&table) || !self.table_exists(table).await? {
            return Ok(0);
        }
        Ok(
            on_pool!(&self.write, |c| sqlx::query(&crate::store::numbered(
                &format!("DELETE FROM {table} WHERE session_id = ?")
            ))
            .bind(session_id)
            .execute(c)
            .await
            .map(crate::store::Done::from))?
            .rows_affected(),
        )
    }

    /// Hard-deletes everything stored for a session (chat, Q&A, polls and
    /// their votes, quiz answers, and the later features' rows), in one
    /// transaction. With `delete_history`, the session's participants are
    /// anonymised too (name, external id, user agent, device id).
    pub async fn delete_session_resources(
        &self,
        session_id: &str,
        delete_history: bool,
    ) -> Result<(), StoreError> {
        let mut later = Vec::new();
        for t in LATER_TABLES {
            if self.table_exists(t).await? {
                later.push(*t);
            }
        }
        let mut tx = self.write.begin().await?;
        for sql in [
            "DELETE FROM chat_messages WHERE session_id = ?",
            "DELETE FROM questions WHERE session_id = ?",
            "DELETE FROM poll_votes WHERE session_id = ?",
            "DELETE FROM polls WHERE session_id = ?",
            "DELETE FROM quiz_answers WHERE session_id = ?",
            // A recording still running is kept (as the recording deletes do);
            // deleted recordings' files are swept by the caller.
            "DELETE FROM recordings WHERE session_id = ? AND status <> 'IN_PROGRESS'",
        ] {
            on_tx!(tx, |c| sqlx::query(&crate::store::numbered(sql))
                .bind(session_id)
                .execute(c)
                .await
                .map(crate::store::Done::from))?;
        }
        for t in later {
            on_tx!(tx, |c| sqlx::query(&crate::store::numbered(&format!(
                "DELETE FROM {t} WHERE session_id = ?"
            )))
            .bind(session_id)
            .execute(c)
            .await
            .map(crate::store::Done::from))?;
        }
        if delete_history {
            on_tx!(tx, |c| sqlx::query(
                "UPDATE participants SET name = 'Anonymous', external_id = NULL,
                        user_agent = NULL, device_id = NULL
                 WHERE session_id = $1",
            )
            .bind(session_id)
            .execute(c)
            .await
            .map(crate::store::Done::from))?;
        }
        tx.commit().await?;
        Ok(())
    }
}
