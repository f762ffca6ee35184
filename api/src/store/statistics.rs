//! Usage statistics computed by SQL (aggregates and GROUP BY), never by
//! loading rows into memory.

#[allow(unused_imports)]
use crate::store::{on_pool, on_tx};

use sqlx::FromRow;

use super::{Db, StoreError};

/// How rows are grouped into periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    Day,
    Week,
    Month,
}

impl Grouping {
    pub fn parse(s: &str) -> Option<Grouping> {
        match s.to_ascii_lowercase().as_str() {
            "day" | "daily" => Some(Grouping::Day),
            "week" | "weekly" => Some(Grouping::Week),
            "month" | "monthly" => Some(Grouping::Month),
            _ => None,
        }
    }

    /// SQL expression of the period label of a timestamp column.
    /// On PostgreSQL the week is computed as SQLite's `%W` does: the
    /// week of the year (00-53) whose weeks start on Monday, the days
    /// before the first Monday being week 00.
    fn sql(self, col: &str, pg: bool) -> String {
        match self {
            Grouping::Day => format!("substr({col}, 1, 10)"),
            Grouping::Week if pg => {
                let t = format!("(CAST({col} AS timestamptz) AT TIME ZONE 'UTC')");
                format!(
                    "(substr({col}, 1, 4) || '-W' || lpad(CAST((CAST(EXTRACT(DOY FROM {t}) AS INTEGER) + 7 \
                     - CAST(EXTRACT(ISODOW FROM {t}) AS INTEGER)) / 7 AS TEXT), 2, '0'))"
                )
            }
            Grouping::Week => format!("strftime('%Y-W%W', {col})"),
            Grouping::Month => format!("substr({col}, 1, 7)"),
        }
    }
}

/// The scope of a statistics query.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub team_id: String,
    pub room_id: Option<String>,
    /// A participant id or external id.
    pub participant: Option<String>,
    /// Inclusive lower bound (RFC 3339).
    pub from: Option<String>,
    /// Exclusive upper bound (RFC 3339).
    pub until: Option<String>,
    /// "Now", for durations of live sessions.
    pub now: String,
}

#[derive(Debug, Clone, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct SessionTotals {
    pub sessions: i64,
    pub live_sessions: i64,
    pub rooms_used: i64,
    /// Sum of session durations.
    pub session_minutes: f64,
    pub average_session_minutes: f64,
    pub longest_session_minutes: f64,
}

#[derive(Debug, Clone, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct ParticipantTotals {
    /// Participations (one person joining one session).
    pub participants: i64,
    /// Distinct people (by external id, else by participation).
    pub unique_participants: i64,
    pub participation_minutes: f64,
    pub average_participation_minutes: f64,
    pub browsers: i64,
    pub appliances: i64,
}

#[derive(Debug, Clone, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct Period {
    /// `2026-03-02` (day), `2026-W09` (week, Monday first) or `2026-03` (month).
    pub period: String,
    pub sessions: i64,
    pub session_minutes: f64,
    pub participants: i64,
    pub unique_participants: i64,
    pub participation_minutes: f64,
}

#[derive(Debug, Clone, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct RoomTotals {
    /// Rooms that exist now.
    pub rooms: i64,
    /// Rooms created in the range.
    pub rooms_created: i64,
    /// Rooms with at least one session in the range.
    pub active_rooms: i64,
}

#[derive(Debug, Clone, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct LiveTotals {
    pub live_rooms: i64,
    pub live_participants: i64,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl Db {
    /// WHERE clause over `sessions s` for a scope (binds in order).
    fn session_scope(scope: &Scope) -> (String, Vec<String>) {
        let mut w = String::from("s.team_id = ?");
        let mut args = vec![scope.team_id.clone()];
        if let Some(r) = &scope.room_id {
            w.push_str(" AND s.room_id = ?");
            args.push(r.clone());
        }
        if let Some(p) = &scope.participant {
            w.push_str(
                " AND EXISTS (SELECT 1 FROM participants pp WHERE pp.session_id = s.id
                   AND (pp.id = ? OR pp.external_id = ?))",
            );
            args.push(p.clone());
            args.push(p.clone());
        }
        if let Some(f) = &scope.from {
            w.push_str(" AND s.started_at >= ?");
            args.push(f.clone());
        }
        if let Some(u) = &scope.until {
            w.push_str(" AND s.started_at < ?");
            args.push(u.clone());
        }
        (w, args)
    }

    /// WHERE clause over `participants p` for a scope.
    fn participant_scope(scope: &Scope) -> (String, Vec<String>) {
        let mut w = String::from("p.team_id = ?");
        let mut args = vec![scope.team_id.clone()];
        if let Some(r) = &scope.room_id {
            w.push_str(" AND p.room_id = ?");
            args.push(r.clone());
        }
        if let Some(pk) = &scope.participant {
            w.push_str(" AND (p.id = ? OR p.external_id = ?)");
            args.push(pk.clone());
            args.push(pk.clone());
        }
        if let Some(f) = &scope.from {
            w.push_str(" AND p.joined_at >= ?");
            args.push(f.clone());
        }
        if let Some(u) = &scope.until {
            w.push_str(" AND p.joined_at < ?");
            args.push(u.clone());
        }
        (w, args)
    }

    pub async fn session_totals(&self, scope: &Scope) -> Result<SessionTotals, StoreError> {
        let (w, args) = Self::session_scope(scope);
        let sql = format!(
            "SELECT COUNT(*) AS sessions,
                    COALESCE(SUM(CASE WHEN s.ended_at IS NULL THEN 1 ELSE 0 END), 0) AS live_sessions,
                    COUNT(DISTINCT s.room_id) AS rooms_used,
                    COALESCE(SUM(d), 0.0) AS session_minutes,
                    COALESCE(AVG(d), 0.0) AS average_session_minutes,
                    COALESCE(MAX(d), 0.0) AS longest_session_minutes
             FROM (SELECT s.*, {days} * 1440.0 AS d FROM sessions s WHERE {w}) s",
            days = super::days_between(
                self.read.is_postgres(),
                "COALESCE(s.ended_at, ?)",
                "s.started_at"
            )
        );
        let mut t = on_pool!(&self.read, |c| {
            let sql_n = crate::store::numbered(&sql);
            let mut q = sqlx::query_as::<_, SessionTotals>(&sql_n).bind(&scope.now);
            for a in &args {
                q = q.bind(a);
            }
            q.fetch_one(c).await
        })?;
        t.session_minutes = round2(t.session_minutes);
        t.average_session_minutes = round2(t.average_session_minutes);
        t.longest_session_minutes = round2(t.longest_session_minutes);
        Ok(t)
    }

    pub async fn participant_totals(&self, scope: &Scope) -> Result<ParticipantTotals, StoreError> {
        let (w, args) = Self::participant_scope(scope);
        let sql = format!(
            "SELECT COUNT(*) AS participants,
                    COUNT(DISTINCT COALESCE(p.external_id, p.id)) AS unique_participants,
                    COALESCE(SUM(d), 0.0) AS participation_minutes,
                    COALESCE(AVG(d), 0.0) AS average_participation_minutes,
                    COALESCE(SUM(CASE WHEN p.client_kind = 'browser' THEN 1 ELSE 0 END), 0) AS browsers,
                    COALESCE(SUM(CASE WHEN p.client_kind = 'appliance' THEN 1 ELSE 0 END), 0) AS appliances
             FROM (SELECT p.*, {days} * 1440.0 AS d FROM participants p WHERE {w}) p",
            days = super::days_between(
                self.read.is_postgres(),
                "COALESCE(p.left_at, ?)",
                "p.joined_at"
            )
        );
        let mut t = on_pool!(&self.read, |c| {
            let sql_n = crate::store::numbered(&sql);
            let mut q = sqlx::query_as::<_, ParticipantTotals>(&sql_n).bind(&scope.now);
            for a in &args {
                q = q.bind(a);
            }
            q.fetch_one(c).await
        })?;
        t.participation_minutes = round2(t.participation_minutes);
        t.average_participation_minutes = round2(t.average_participation_minutes);
        Ok(t)
    }

    /// Sessions and participations per period (periods with any activity).
    pub async fn periods(&self, scope: &Scope, g: Grouping) -> Result<Vec<Period>, StoreError> {
        let (sw, sargs) = Self::session_scope(scope);
        let (pw, pargs) = Self::participant_scope(scope);
        let pg = self.read.is_postgres();
        let sp = g.sql("s.started_at", pg);
        let pp = g.sql("p.joined_at", pg);
        let sd = super::days_between(pg, "COALESCE(s.ended_at, ?)", "s.started_at");
        let pd = super::days_between(pg, "COALESCE(p.left_at, ?)", "p.joined_at");
        let sql = format!(
            "WITH sp AS (
                SELECT {sp} AS period, COUNT(*) AS sessions,
                       SUM({sd} * 1440.0)
                           AS session_minutes
                FROM sessions s WHERE {sw} GROUP BY 1),
             pp AS (
                SELECT {pp} AS period, COUNT(*) AS participants,
                       COUNT(DISTINCT COALESCE(p.external_id, p.id)) AS unique_participants,
                       SUM({pd} * 1440.0)
                           AS participation_minutes
                FROM participants p WHERE {pw} GROUP BY 1),
             periods AS (SELECT period FROM sp UNION SELECT period FROM pp)
             SELECT periods.period AS period,
                    COALESCE(sp.sessions, 0) AS sessions,
                    COALESCE(sp.session_minutes, 0.0) AS session_minutes,
                    COALESCE(pp.participants, 0) AS participants,
                    COALESCE(pp.unique_participants, 0) AS unique_participants,
                    COALESCE(pp.participation_minutes, 0.0) AS participation_minutes
             FROM periods LEFT JOIN sp ON sp.period = periods.period
                          LEFT JOIN pp ON pp.period = periods.period
             ORDER BY periods.period"
        );
        // Parameters in order of appearance: now, the session scope, now,
        // the participant scope.
        let mut rows = on_pool!(&self.read, |c| {
            let sql_n = crate::store::numbered(&sql);
            let mut q = sqlx::query_as::<_, Period>(&sql_n).bind(&scope.now);
            for a in &sargs {
                q = q.bind(a);
            }
            q = q.bind(&scope.now);
            for a in &pargs {
                q = q.bind(a);
            }
            q.fetch_all(c).await
        })?;
        for r in &mut rows {
            r.session_minutes = round2(r.session_minutes);
            r.participation_minutes = round2(r.participation_minutes);
        }
        Ok(rows)
    }

    pub async fn room_totals(&self, scope: &Scope) -> Result<RoomTotals, StoreError> {
        let mut created = String::from("team_id = ?1");
        let mut active = String::from("s.team_id = ?1");
        let mut args = vec![scope.team_id.clone()];
        if let Some(f) = &scope.from {
            args.push(f.clone());
            created.push_str(&format!(" AND created_at >= ?{}", args.len()));
            active.push_str(&format!(" AND s.started_at >= ?{}", args.len()));
        }
        if let Some(u) = &scope.until {
            args.push(u.clone());
            created.push_str(&format!(" AND created_at < ?{}", args.len()));
            active.push_str(&format!(" AND s.started_at < ?{}", args.len()));
        }
        let sql = format!(
            "SELECT (SELECT COUNT(*) FROM rooms WHERE team_id = ?1) AS rooms,
                    (SELECT COUNT(*) FROM rooms WHERE {created}) AS rooms_created,
                    (SELECT COUNT(DISTINCT s.room_id) FROM sessions s WHERE {active}) AS active_rooms"
        );
        Ok(on_pool!(&self.read, |c| {
            let sql_n = crate::store::numbered(&sql);
            let mut q = sqlx::query_as::<_, RoomTotals>(&sql_n);
            for a in &args {
                q = q.bind(a);
            }
            q.fetch_one(c).await
        })?)
    }

    /// What is live right now (optionally in one room).
    pub async fn live_totals(
        &self,
        team_id: &str,
        room_id: Option<&str>,
    ) -> Result<LiveTotals, StoreError> {
        Ok(on_pool!(&self.read, |c| sqlx::query_as::<_, LiveTotals>(
            "SELECT (SELECT COUNT(*) FROM sessions s WHERE s.team_id = $1 AND s.ended_at IS NULL
                        AND ($2 IS NULL OR s.room_id = $2)) AS live_rooms,
                    (SELECT COUNT(*) FROM participants p JOIN sessions s ON s.id = p.session_id
                      WHERE p.team_id = $1 AND p.left_at IS NULL AND s.ended_at IS NULL
                        AND ($2 IS NULL OR p.room_id = $2)) AS live_participants",
        )
        .bind(team_id)
        .bind(room_id)
        .fetch_one(c)
        .await)?)
    }

    /// Recordings in the scope.
    pub async fn recording_count(&self, scope: &Scope) -> Result<i64, StoreError> {
        let mut sql = String::from("SELECT COUNT(*) FROM recordings WHERE team_id = ?");
        let mut args = vec![scope.team_id.clone()];
        if let Some(r) = &scope.room_id {
            sql.push_str(" AND room_id = ?");
            args.push(r.clone());
        }
        if let Some(f) = &scope.from {
            sql.push_str(" AND created_at >= ?");
            args.push(f.clone());
        }
        if let Some(u) = &scope.until {
            sql.push_str(" AND created_at < ?");
            args.push(u.clone());
        }
        Ok(on_pool!(&self.read, |c| {
            let sql_n = crate::store::numbered(&sql);
            let mut q = sqlx::query_scalar::<_, i64>(&sql_n);
            for a in &args {
                q = q.bind(a);
            }
            q.fetch_one(c).await
        })?)
    }
}
