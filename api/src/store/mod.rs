//! The SQLite store: opening the database, migrations, and the SQL of each domain.
//!
//! Writes go through a pool of exactly one connection, so writers queue in the
//! process instead of failing with `SQLITE_BUSY`; reads use a separate pool.
//! SQL lives in this module's children and nowhere else.

pub mod activity;
pub mod bans;
pub mod chat;
pub mod fleet;
pub mod guest_links;
pub mod libraries;
pub mod phone;
pub mod polls;
pub mod postgres;
pub mod questions;
pub mod quizzes;
pub mod recordings;
pub mod restore;
pub mod roles;
pub mod room_scoped;
pub mod rooms;
pub mod session_data;
pub mod sessions;
pub mod statistics;
pub mod summaries;
pub mod teams;
pub mod transcripts;
pub mod webhooks;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A backup that could not be made (`Db::backup_into`).
    #[error("backup: {0}")]
    Backup(String),
    /// `--database-url` is not one the store can use.
    #[error("--database-url: {0}")]
    BadUrl(String),
    /// The database server could not be reached or refused the connection.
    #[error("{0}")]
    Connect(String),
}

/// Handle on the database: one writer connection and a small reader pool.
#[derive(Clone, Debug)]
pub struct Db {
    pub(crate) write: SqlitePool,
    pub(crate) read: SqlitePool,
}

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

impl Db {
    /// Opens (creating if needed) `<dir>/convene.db` in WAL mode with
    /// `synchronous=FULL` and foreign keys on, and runs the embedded migrations.
    pub async fn open(data_dir: &Path) -> Result<Db, StoreError> {
        let path = data_dir.join("convene.db");
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            // A connection that comes back still inside a transaction is
            // closed (SQLite rolls it back) instead of reused. sqlx rolls a
            // dropped transaction back, but when that ROLLBACK fails (the
            // disk was full: SQLite may have ended the transaction itself,
            // or not) it keeps counting the transaction as open, and every
            // later "transaction" on the connection would be a savepoint
            // inside one that never commits: acknowledged writes lost.
            .after_release(|conn, _| {
                Box::pin(async move {
                    use sqlx::Connection as _;
                    Ok(!conn.is_in_transaction())
                })
            })
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&write).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        Ok(Db { write, read })
    }

    /// A cheap liveness probe of both pools.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        sqlx::query("SELECT 1").execute(&self.write).await?;
        Ok(())
    }

    /// Times one trivial query on each pool (for metrics); a failing pool
    /// is left out.
    pub async fn probe_latency(&self) -> Vec<(&'static str, Duration)> {
        let mut out = Vec::with_capacity(2);
        for (name, pool) in [("read", &self.read), ("write", &self.write)] {
            let t = std::time::Instant::now();
            if sqlx::query("SELECT 1").execute(pool).await.is_ok() {
                out.push((name, t.elapsed()));
            }
        }
        out
    }

    /// Writes a consistent copy of the whole database to `target` while the
    /// server keeps running (SQLite's `VACUUM INTO` reads one snapshot):
    /// into `<target>.partial` first, synced, checked with `PRAGMA
    /// integrity_check`, then renamed, so that `target` is either a whole,
    /// checked copy or absent. An existing `target` is refused.
    pub async fn backup_into(&self, target: &Path) -> Result<(), StoreError> {
        if target.exists() {
            return Err(StoreError::Backup(format!(
                "{} exists; a backup never overwrites a file",
                target.display()
            )));
        }
        let partial = target.with_extension("partial");
        let _ = std::fs::remove_file(&partial);
        let name = partial
            .to_str()
            .ok_or_else(|| StoreError::Backup("the backup path is not UTF-8".into()))?;
        sqlx::query("VACUUM INTO ?1")
            .bind(name)
            .execute(&self.read)
            .await?;
        let checked = async {
            let options = SqliteConnectOptions::from_str("sqlite://")?
                .filename(&partial)
                .read_only(true);
            let mut conn = sqlx::ConnectOptions::connect(&options).await?;
            let verdict: String = sqlx::query_scalar("PRAGMA integrity_check")
                .fetch_one(&mut conn)
                .await?;
            sqlx::Connection::close(conn).await?;
            Ok::<_, StoreError>(verdict)
        }
        .await;
        let io = |e: std::io::Error| StoreError::Backup(format!("writing the backup: {e}"));
        match checked {
            Ok(v) if v == "ok" => {}
            Ok(v) => {
                let _ = std::fs::remove_file(&partial);
                return Err(StoreError::Backup(format!(
                    "the copy failed its check: {v}"
                )));
            }
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e);
            }
        }
        std::fs::File::open(&partial)
            .and_then(|f| f.sync_all())
            .map_err(io)?;
        std::fs::rename(&partial, target).map_err(io)?;
        if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)
                .and_then(|f| f.sync_all())
                .map_err(io)?;
        }
        Ok(())
    }

    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}

/// The one timestamp format stored: RFC 3339 UTC with microseconds (sorts as text).
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn now() -> String {
    timestamp(Utc::now())
}

/// Parses a stored timestamp.
pub fn parse_timestamp(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("timestamp {s:?}: {e}")))
}

/// True when the error is a UNIQUE constraint violation.
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// Sort direction of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

impl Order {
    pub fn sql(self) -> &'static str {
        match self {
            Order::Asc => "ASC",
            Order::Desc => "DESC",
        }
    }
    /// The comparison that selects rows after a cursor in this order.
    pub fn after_op(self) -> &'static str {
        match self {
            Order::Asc => ">",
            Order::Desc => "<",
        }
    }
}

/// A validated page request.
#[derive(Debug, Clone)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
    pub order: Order,
}

#[cfg(test)]
mod tests {
    use sqlx::Row as _;
    use sqlx::sqlite::SqlitePoolOptions;

    /// sqlx-sqlite binds numbered `$N` placeholders as PostgreSQL does (by
    /// number, reusable, in any order), so one query text can serve both
    /// backends (ARCHITECTURE.md, "Store backends").
    #[tokio::test]
    async fn sqlite_accepts_numbered_dollar_placeholders() {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT NOT NULL, b INTEGER NOT NULL)")
            .execute(&pool)
            .await
            .unwrap();
        // Bound out of textual order, and $1 used twice.
        sqlx::query("INSERT INTO t (a, b) VALUES ($2 || $1, $1)")
            .bind(7_i64)
            .bind("x")
            .execute(&pool)
            .await
            .unwrap();
        let row = sqlx::query("SELECT a, b FROM t WHERE b = $1 AND a = $2")
            .bind(7_i64)
            .bind("x7")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(row.get::<String, _>("a"), "x7");
        assert_eq!(row.get::<i64, _>("b"), 7);
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t WHERE b = $1")
            .bind(8_i64)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(n, 0);
    }
}
