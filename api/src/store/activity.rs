//! Read side of sessions and participants: lists, details and statistics
//! for the sessions, participants and live APIs. Everything is computed in
//! SQL; nothing loads a team's history into memory.

#[allow(unused_imports)]
use crate::store::{on_pool, on_tx};

use sqlx::FromRow;

use super::{Db, Page, StoreError};

/// A session row with its room and participant counts.
#[derive(Debug, Clone, FromRow)]
pub struct SessionRow {
    pub id: String,
    pub room_id: String,
    pub friendly_url: String,
    pub room_description: Option<String>,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub end_reason: Option<String>,
    pub participants_total: i64,
    pub participants_live: i64,
    pub packets_in: i64,
    pub bytes_in: i64,
    pub packets_out: i64,
    pub bytes_out: i64,
}

const SESSION_SELECT: &str =
    "SELECT s.id, s.room_id, r.friendly_url, r.description AS room_description,
        s.started_at, s.ended_at, s.end_reason,
        (SELECT COUNT(*) FROM participants p WHERE p.session_id = s.id) AS participants_total,
        (SELECT COUNT(*) FROM participants p WHERE p.session_id = s.id AND p.left_at IS NULL
            AND s.ended_at IS NULL) AS participants_live,
        s.packets_in, s.bytes_in, s.packets_out, s.bytes_out
    FROM sessions s JOIN rooms r ON r.id = s.room_id";

/// Filters of a session list.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub room_id: Option<String>,
    pub live: Option<bool>,
    /// Inclusive lower bound of `started_at` (RFC 3339).
    pub from: Option<String>,
    /// Exclusive upper bound of `started_at` (RFC 3339).
    pub until: Option<String>,
    /// Sessions a participant with this id or external id took part in.
    pub participant: Option<String>,
}

/// A participant row with its room.
#[derive(Debug, Clone, FromRow)]
pub struct ParticipantRow {
    pub id: String,
    pub room_id: String,
    pub friendly_url: String,
    pub session_id: String,
    pub name: String,
    pub external_id: Option<String>,
    pub role: String,
    pub client_kind: String,
    pub user_agent: Option<String>,
    pub device_id: Option<String>,
    pub joined_at: String,
    pub left_at: Option<String>,
    pub leave_reason: Option<String>,
    pub live: bool,
    pub hand_raised_at: Option<String>,
    pub breakout_id: Option<String>,
}

const PARTICIPANT_SELECT: &str = "SELECT p.id, p.room_id, r.friendly_url, p.session_id, p.name,
        p.external_id, p.role, p.client_kind, p.user_agent, p.device_id, p.joined_at, p.left_at,
        p.leave_reason, (p.left_at IS NULL AND s.ended_at IS NULL) AS live,
        CASE WHEN p.left_at IS NULL AND s.ended_at IS NULL THEN p.hand_raised_at END
            AS hand_raised_at, p.breakout_id
    FROM participants p JOIN sessions s ON s.id = p.session_id JOIN rooms r ON r.id = p.room_id";

/// Filters of a participant list.
#[derive(Debug, Clone, Default)]
pub struct ParticipantFilter {
    pub room_id: Option<String>,
    pub session_id: Option<String>,
    pub live: Option<bool>,
    pub from: Option<String>,
    pub until: Option<String>,
}

/// Statistics of one session, computed by SQL.
#[derive(Debug, Clone, FromRow)]
pub struct SessionStats {
    pub participants_total: i64,
    pub participants_unique: i64,
    pub peak_participants: i64,
    /// Sum of every participant's time in the session, in seconds.
    pub participation_seconds: f64,
    pub chat_messages: i64,
    pub questions: i64,
    pub polls: i64,
    pub poll_votes: i64,
}

impl Db {
    fn session_where(team_id: &str, f: &SessionFilter) -> (String, Vec<String>) {
        let mut sql = String::from(" WHERE s.team_id = ?");
        let mut args = vec![team_id.to_string()];
        if let Some(r) = &f.room_id {
            sql.push_str(" AND s.room_id = ?");
            args.push(r.clone());
        }
        match f.live {
            Some(true) => sql.push_str(" AND s.ended_at IS NULL"),
            Some(false) => sql.push_str(" AND s.ended_at IS NOT NULL"),
            None => {}
        }
        if let Some(t) = &f.from {
            sql.push_str(" AND s.started_at >= ?");
            args.push(t.clone());
        }
        if let Some(t) = &f.until {
            sql.push_str(" AND s.started_at < ?");
            args.push(t.clone());
        }
        if let Some(p) = &f.participant {
            sql.push_str(
                " AND EXISTS (SELECT 1 FROM participants pp WHERE pp.session_id = s.id
                   AND (pp.id = ? OR pp.external_id = ?))",
            );
            args.push(p.clone());
            args.push(p.clone());
        }
        (sql, args)
    }

    /// A page of the team's sessions, newest first by default.
    pub async fn list_sessions(
        &self,
        team_id: &str,
        filter: &SessionFilter,
        page: &Page,
    ) -> Result<(i64, Vec<SessionRow>), StoreError> {
        let (cond, args) = Self::session_where(team_id, filter);
        let count_sql = super::numbered(&format!("SELECT COUNT(*) FROM sessions s{cond}"));
        let total: i64 = on_pool!(&self.read, |c| {
            let mut count = sqlx::query_scalar(&count_sql);
            for a in &args {
                count = count.bind(a);
            }
            count.fetch_one(c).await
        })?;
        let sql = super::numbered(&format!(
            "{SESSION_SELECT}{cond} ORDER BY s.seq {} LIMIT ? OFFSET ?",
            page.order.sql()
        ));
        let rows = on_pool!(&self.read, |c| {
            let mut q = sqlx::query_as::<_, SessionRow>(&sql);
            for a in &args {
                q = q.bind(a);
            }
            q.bind(page.limit).bind(page.offset).fetch_all(c).await
        })?;
        Ok((total, rows))
    }

    /// One session of the team.
    pub async fn session(
        &self,
        team_id: &str,
        session_id: &str,
    ) -> Result<Option<SessionRow>, StoreError> {
        let sql = format!("{SESSION_SELECT} WHERE s.team_id = ? AND s.id = ?");
        Ok(on_pool!(&self.read, |c| sqlx::query_as::<_, SessionRow>(
            &crate::store::numbered(&sql)
        )
        .bind(team_id)
        .bind(session_id)
        .fetch_optional(c)
        .await)?)
    }

    /// The live session of a room, if any.
    pub async fn live_session_of_room(
        &self,
        team_id: &str,
        room_id: &str,
    ) -> Result<Option<SessionRow>, StoreError> {
        let sql = format!(
            "{SESSION_SELECT} WHERE s.team_id = ? AND s.room_id = ? AND s.ended_at IS NULL
             ORDER BY s.seq DESC LIMIT 1"
        );
        Ok(on_pool!(&self.read, |c| sqlx::query_as::<_, SessionRow>(
            &crate::store::numbered(&sql)
        )
        .bind(team_id)
        .bind(room_id)
        .fetch_optional(c)
        .await)?)
    }

    /// Every live session of the team (one per live room).
    pub async fn live_sessions(&self, team_id: &str) -> Result<Vec<SessionRow>, StoreError> {
        let sql = format!(
            "{SESSION_SELECT} WHERE s.team_id = ? AND s.ended_at IS NULL ORDER BY s.seq ASC"
        );
        Ok(on_pool!(&self.read, |c| sqlx::query_as::<_, SessionRow>(
            &crate::store::numbered(&sql)
        )
        .bind(team_id)
        .fetch_all(c)
        .await)?)
    }

    fn participant_where(team_id: &str, f: &ParticipantFilter) -> (String, Vec<String>) {
        let mut sql = String::from(" WHERE p.team_id = ?");
        let mut args = vec![team_id.to_string()];
        if let Some(r) = &f.room_id {
            sql.push_str(" AND p.room_id = ?");
            args.push(r.clone());
        }
        if let Some(s) = &f.session_id {
            sql.push_str(" AND p.session_id = ?");
            args.push(s.clone());
        }
        match f.live {
            Some(true) => sql.push_str(" AND p.left_at IS NULL AND s.ended_at IS NULL"),
            Some(false) => sql.push_str(" AND (p.left_at IS NOT NULL OR s.ended_at IS NOT NULL)"),
            None => {}
        }
        if let Some(t) = &f.from {
            sql.push_str(" AND p.joined_at >= ?");
            args.push(t.clone());
        }
        if let Some(t) = &f.until {
            sql.push_str(" AND p.joined_at < ?");
            args.push(t.clone());
        }
        (sql, args)
    }

    /// A page of the team's participants (one row per participation).
    pub async fn list_participants(
        &self,
        team_id: &str,
        filter: &ParticipantFilter,
        page: &Page,
    ) -> Result<(i64, Vec<ParticipantRow>), StoreError> {
        let (cond, args) = Self::participant_where(team_id, filter);
        let count_sql = super::numbered(&format!(
            "SELECT COUNT(*) FROM participants p JOIN sessions s ON s.id = p.session_id{cond}"
        ));
        let total: i64 = on_pool!(&self.read, |c| {
            let mut count = sqlx::query_scalar(&count_sql);
            for a in &args {
                count = count.bind(a);
            }
            count.fetch_one(c).await
        })?;
        let sql = super::numbered(&format!(
            "{PARTICIPANT_SELECT}{cond} ORDER BY p.seq {} LIMIT ? OFFSET ?",
            page.order.sql()
        ));
        let rows = on_pool!(&self.read, |c| {
            let mut q = sqlx::query_as::<_, ParticipantRow>(&sql);
            for a in &args {
                q = q.bind(a);
            }
            q.bind(page.limit).bind(page.offset).fetch_all(c).await
        })?;
        Ok((total, rows))
    }

    /// One participation by its id, or the latest one of an external id.
    pub async fn participant(
        &self,
        team_id: &str,
        key: &str,
    ) -> Result<Option<ParticipantRow>, StoreError> {
        let sql = format!(
            "{PARTICIPANT_SELECT} WHERE p.team_id = ? AND (p.id = ? OR p.external_id = ?)
             ORDER BY (p.id = ?) DESC, p.seq DESC LIMIT 1"
        );
        Ok(on_pool!(&self.read, |c| {
            sqlx::query_as::<_, ParticipantRow>(&crate::store::numbered(&sql))
                .bind(team_id)
                .bind(key)
                .bind(key)
                .bind(key)
                .fetch_optional(c)
                .await
        })?)
    }

    /// Statistics of one session.
    pub async fn session_stats(
        &self,
        session_id: &str,
        now: &str,
    ) -> Result<SessionStats, StoreError> {
        // Peak concurrency: at each join, how many were in (joined at or
        // before it and not yet left).
        let days = super::days_between(
            self.read.is_postgres(),
            "COALESCE(left_at, $2)",
            "joined_at",
        );
        let sql = format!(
            "SELECT
                (SELECT COUNT(*) FROM participants WHERE session_id = $1) AS participants_total,
                (SELECT COUNT(DISTINCT COALESCE(external_id, id)) FROM participants
                    WHERE session_id = $1) AS participants_unique,
                COALESCE((SELECT MAX((SELECT COUNT(*) FROM participants b
                    WHERE b.session_id = $1 AND b.joined_at <= a.joined_at
                      AND (b.left_at IS NULL OR b.left_at > a.joined_at)))
                    FROM participants a WHERE a.session_id = $1), 0) AS peak_participants,
                COALESCE((SELECT SUM({days}
                    * 86400.0) FROM participants WHERE session_id = $1), 0.0)
                    AS participation_seconds,
                (SELECT COUNT(*) FROM chat_messages WHERE session_id = $1) AS chat_messages,
                (SELECT COUNT(*) FROM questions WHERE session_id = $1) AS questions,
                (SELECT COUNT(*) FROM polls WHERE session_id = $1) AS polls,
                (SELECT COUNT(*) FROM poll_votes WHERE session_id = $1) AS poll_votes"
        );
        Ok(on_pool!(&self.read, |c| {
            sqlx::query_as::<_, SessionStats>(&sql)
                .bind(session_id)
                .bind(now)
                .fetch_one(c)
                .await
        })?)
    }
}
