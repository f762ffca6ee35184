//! Breakout rooms of a room's live session (table `breakouts`, migration
//! 0026) and the breakout a participant was last in
//! (`participants.breakout_id`). Plain SQL with `$n` placeholders, the
//! same text on SQLite and PostgreSQL.

#[allow(unused_imports)]
use crate::store::{on_pool, on_tx};

use super::{Db, StoreError};

/// One breakout as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BreakoutRecord {
    pub id: String,
    pub room_id: String,
    pub session_id: String,
    pub position: i64,
    pub name: String,
    pub assignment: String,
    pub duration_minutes: Option<i64>,
    /// `created`, `open`, `closing` or `closed`.
    pub status: String,
    pub opened_at: Option<String>,
    pub closed_at: Option<String>,
    pub created_at: String,
}

/// How many participants of a session were (last) in one breakout.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct BreakoutParticipation {
    pub breakout_id: String,
    /// Null when the breakout's row is gone (replaced or deleted since).
    pub name: Option<String>,
    pub participants: i64,
}

const SELECT: &str = "SELECT id, room_id, session_id, position, name, assignment, \
     duration_minutes, status, opened_at, closed_at, created_at FROM breakouts";

impl Db {
    /// The room's breakouts in their order.
    pub async fn breakouts(&self, room_id: &str) -> Result<Vec<BreakoutRecord>, StoreError> {
        let sql = format!("{SELECT} WHERE room_id = $1 ORDER BY position");
        Ok(on_pool!(&self.read, |c| sqlx::query_as(&sql)
            .bind(room_id)
            .fetch_all(c)
            .await)?)
    }

    /// Replaces the room's breakouts with new ones for `session_id`, in one
    /// transaction. `None` (nothing written) when the room still has
    /// breakouts of a live session that are not closed.
    pub async fn create_breakouts(
        &self,
        room_id: &str,
        session_id: &str,
        names: &[String],
        assignment: &str,
        duration_minutes: Option<i64>,
    ) -> Result<Option<Vec<BreakoutRecord>>, StoreError> {
        let mut tx = self.write.begin().await?;
        lock_room(&mut tx, room_id).await?;
        let busy: i64 = on_tx!(tx, |c| sqlx::query_scalar(
            "SELECT COUNT(*) FROM breakouts b JOIN sessions s ON s.id = b.session_id \
             WHERE b.room_id = $1 AND b.status <> 'closed' AND s.ended_at IS NULL",
        )
        .bind(room_id)
        .fetch_one(c)
        .await)?;
        if busy > 0 {
            return Ok(None);
        }
        on_tx!(tx, |c| sqlx::query(
            "DELETE FROM breakouts WHERE room_id = $1"
        )
        .bind(room_id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        let now = super::now();
        for (i, name) in names.iter().enumerate() {
            on_tx!(tx, |c| sqlx::query(
                "INSERT INTO breakouts (id, room_id, session_id, position, name, assignment, \
                 duration_minutes, status, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'created', $8)",
            )
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(room_id)
            .bind(session_id)
            .bind(i as i64 + 1)
            .bind(name)
            .bind(assignment)
            .bind(duration_minutes)
            .bind(&now)
            .execute(c)
            .await
            .map(crate::store::Done::from))?;
        }
        let sql = format!("{SELECT} WHERE room_id = $1 ORDER BY position");
        let rows = on_tx!(tx, |c| sqlx::query_as(&sql)
            .bind(room_id)
            .fetch_all(c)
            .await)?;
        tx.commit().await?;
        Ok(Some(rows))
    }

    /// Moves the room's breakouts from status `from` to `to`, stamping
    /// `opened_at` (open) or `closed_at` (closed); how many moved.
    pub async fn set_breakouts_status(
        &self,
        room_id: &str,
        from: &[&str],
        to: &str,
    ) -> Result<u64, StoreError> {
        let now = super::now();
        let mut moved = 0;
        for f in from {
            let r = on_pool!(&self.write, |c| sqlx::query(
                "UPDATE breakouts SET status = $1, \
                 opened_at = CASE WHEN $1 = 'open' THEN $2 ELSE opened_at END, \
                 closed_at = CASE WHEN $1 = 'closed' THEN $2 ELSE closed_at END \
                 WHERE room_id = $3 AND status = $4",
            )
            .bind(to)
            .bind(&now)
            .bind(room_id)
            .bind(f)
            .execute(c)
            .await
            .map(crate::store::Done::from))?;
            moved += r.rows_affected();
        }
        Ok(moved)
    }

    /// Deletes the room's breakouts if none of a live session is open or
    /// closing (a restart closes those of the sessions it ends:
    /// `close_stale_sessions`); `None` (nothing deleted) otherwise, else how
    /// many went.
    pub async fn delete_breakouts(&self, room_id: &str) -> Result<Option<u64>, StoreError> {
        let mut tx = self.write.begin().await?;
        lock_room(&mut tx, room_id).await?;
        let busy: i64 = on_tx!(tx, |c| sqlx::query_scalar(
            "SELECT COUNT(*) FROM breakouts b JOIN sessions s ON s.id = b.session_id \
             WHERE b.room_id = $1 AND b.status IN ('open', 'closing') AND s.ended_at IS NULL",
        )
        .bind(room_id)
        .fetch_one(c)
        .await)?;
        if busy > 0 {
            return Ok(None);
        }
        let r = on_tx!(tx, |c| sqlx::query(
            "DELETE FROM breakouts WHERE room_id = $1"
        )
        .bind(room_id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        tx.commit().await?;
        Ok(Some(r.rows_affected()))
    }

    /// Per breakout: how many participants of the session were last in it.
    pub async fn breakout_participation(
        &self,
        session_id: &str,
    ) -> Result<Vec<BreakoutParticipation>, StoreError> {
        Ok(on_pool!(&self.read, |c| sqlx::query_as(
            "SELECT p.breakout_id AS breakout_id, MAX(b.name) AS name, COUNT(*) AS participants \
             FROM participants p LEFT JOIN breakouts b ON b.id = p.breakout_id \
             WHERE p.session_id = $1 AND p.breakout_id IS NOT NULL \
             GROUP BY p.breakout_id ORDER BY MIN(b.position), p.breakout_id",
        )
        .bind(session_id)
        .fetch_all(c)
        .await)?)
    }

    /// Records that a participant is in breakout `breakout_id` (kept after
    /// it returns to the main room: the breakout it was in).
    pub async fn set_participant_breakout(
        &self,
        participant_id: &str,
        breakout_id: &str,
    ) -> Result<(), StoreError> {
        on_pool!(&self.write, |c| sqlx::query(
            "UPDATE participants SET breakout_id = $1 WHERE id = $2"
        )
        .bind(breakout_id)
        .bind(participant_id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
        Ok(())
    }
}

/// On PostgreSQL, locks the room's row until the transaction ends, so that
/// two concurrent check-then-writes of its breakouts run one after the
/// other (SQLite's single writer already serialises them).
async fn lock_room(tx: &mut crate::store::Tx<'_>, room_id: &str) -> Result<(), StoreError> {
    if tx.is_postgres() {
        on_tx!(tx, |c| sqlx::query(
            "SELECT id FROM rooms WHERE id = $1 FOR UPDATE"
        )
        .bind(room_id)
        .execute(c)
        .await
        .map(crate::store::Done::from))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn create_refuses_while_a_live_set_is_not_closed() {
        let (_dir, db, _team, room, session) = crate::store::chat::tests::fixture().await;
        let names = vec!["A".to_string(), "B".to_string()];
        let made = db
            .create_breakouts(&room, &session, &names, "manual", Some(5))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(made.len(), 2);
        assert_eq!(made[1].name, "B");
        assert_eq!(made[0].status, "created");
        assert!(
            db.create_breakouts(&room, &session, &names, "manual", None)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            db.set_breakouts_status(&room, &["created"], "open")
                .await
                .unwrap(),
            2
        );
        assert!(db.breakouts(&room).await.unwrap()[0].opened_at.is_some());
        assert_eq!(db.delete_breakouts(&room).await.unwrap(), None);
        db.set_breakouts_status(&room, &["open", "closing"], "closed")
            .await
            .unwrap();
        let again = db
            .create_breakouts(&room, &session, &names[..1], "random", None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(db.delete_breakouts(&room).await.unwrap(), Some(1));
        assert!(db.breakouts(&room).await.unwrap().is_empty());
    }
}
