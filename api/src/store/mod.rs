//! The store: opening the database (embedded SQLite, or PostgreSQL with
//! `--database-url`), migrations, and the SQL of each domain.
//!
//! On SQLite, writes go through a pool of exactly one connection, so writers
//! queue in the process instead of failing with `SQLITE_BUSY`; reads use a
//! separate pool. On PostgreSQL both handles are the same pool. One query
//! text runs on either backend through [`on_pool!`] / [`on_tx!`] (the query
//! expression is compiled once per driver); where the SQL differs a store
//! function writes it per backend ([`Pool::is_postgres`]). SQL lives in this
//! module's children and nowhere else.

pub mod activity;
pub mod bans;
pub mod breakouts;
pub mod chat;
pub mod copy;
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
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

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

/// Runs one query expression on whichever backend a [`Pool`] holds: `$c`
/// is the driver's pool (`&SqlitePool` or `&PgPool`) in `$body`, which is
/// compiled once for each driver (sqlx infers the database from the
/// executor). `.execute` results are unified with `.map(Done::from)`.
macro_rules! on_pool {
    ($pool:expr, |$c:ident| $body:expr) => {
        match $pool {
            $crate::store::Pool::Sqlite($c) => $body,
            $crate::store::Pool::Pg($c) => $body,
        }
    };
}
pub(crate) use on_pool;

/// As [`on_pool!`], inside a [`Tx`]: `$c` is the transaction's connection.
macro_rules! on_tx {
    ($tx:expr, |$c:ident| $body:expr) => {
        match $tx.as_tx_mut() {
            $crate::store::Tx::Sqlite(t) => {
                let $c = &mut **t;
                $body
            }
            $crate::store::Tx::Pg(t) => {
                let $c = &mut **t;
                $body
            }
        }
    };
}
pub(crate) use on_tx;

/// One backend's connection pool.
#[derive(Clone, Debug)]
pub enum Pool {
    Sqlite(SqlitePool),
    Pg(PgPool),
}

impl Pool {
    /// Starts a transaction on this pool.
    pub(crate) async fn begin(&self) -> Result<Tx<'static>, sqlx::Error> {
        Ok(match self {
            Pool::Sqlite(p) => Tx::Sqlite(p.begin().await?),
            Pool::Pg(p) => Tx::Pg(p.begin().await?),
        })
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Pool::Pg(_))
    }

    async fn close(&self) {
        match self {
            Pool::Sqlite(p) => p.close().await,
            Pool::Pg(p) => p.close().await,
        }
    }
}

/// A transaction on either backend.
pub enum Tx<'c> {
    Sqlite(sqlx::Transaction<'c, sqlx::Sqlite>),
    Pg(sqlx::Transaction<'c, sqlx::Postgres>),
}

impl Tx<'_> {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(t) => t.commit().await,
            Tx::Pg(t) => t.commit().await,
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Tx::Pg(_))
    }

    /// `" FOR UPDATE"` on PostgreSQL, nothing on SQLite: appended to the
    /// read of a read-modify-write, it keeps a concurrent writer out of the
    /// row until the transaction ends (SQLite's single writer already
    /// serialises the whole transaction).
    pub fn for_update(&self) -> &'static str {
        if self.is_postgres() {
            " FOR UPDATE"
        } else {
            ""
        }
    }

    /// The transaction itself, for [`on_tx!`] (which takes a `Tx` or a
    /// `&mut Tx` alike through auto-referencing).
    pub fn as_tx_mut(&mut self) -> &mut Self {
        self
    }
}

/// What an `.execute` did, on either backend.
#[derive(Debug, Clone, Copy)]
pub struct Done(u64);

impl Done {
    pub fn rows_affected(&self) -> u64 {
        self.0
    }
}

impl From<sqlx::sqlite::SqliteQueryResult> for Done {
    fn from(r: sqlx::sqlite::SqliteQueryResult) -> Self {
        Done(r.rows_affected())
    }
}

impl From<sqlx::postgres::PgQueryResult> for Done {
    fn from(r: sqlx::postgres::PgQueryResult) -> Self {
        Done(r.rows_affected())
    }
}

/// Handle on the database: on SQLite one writer connection and a small
/// reader pool; on PostgreSQL one pool behind both.
#[derive(Clone, Debug)]
pub struct Db {
    pub(crate) write: Pool,
    pub(crate) read: Pool,
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
        Ok(Db {
            write: Pool::Sqlite(write),
            read: Pool::Sqlite(read),
        })
    }

    /// The store on an open, migrated PostgreSQL pool
    /// ([`postgres::open`]).
    pub fn postgres(pool: PgPool) -> Db {
        Db {
            write: Pool::Pg(pool.clone()),
            read: Pool::Pg(pool),
        }
    }

    /// True when the store runs on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.write.is_postgres()
    }

    /// A cheap liveness probe of both pools.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_pool!(&self.read, |c| sqlx::query("SELECT 1")
            .execute(c)
            .await
            .map(Done::from))?;
        on_pool!(&self.write, |c| sqlx::query("SELECT 1")
            .execute(c)
            .await
            .map(Done::from))?;
        Ok(())
    }

    /// Times one trivial query on each pool (for metrics); a failing pool
    /// is left out.
    pub async fn probe_latency(&self) -> Vec<(&'static str, Duration)> {
        let mut out = Vec::with_capacity(2);
        for (name, pool) in [("read", &self.read), ("write", &self.write)] {
            let t = std::time::Instant::now();
            let ok = on_pool!(pool, |c| sqlx::query("SELECT 1").execute(c).await.is_ok());
            if ok {
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
        let Pool::Sqlite(read) = &self.read else {
            return Err(StoreError::Backup(
                "the store is on PostgreSQL: use pg_dump".into(),
            ));
        };
        sqlx::query("VACUUM INTO ?1")
            .bind(name)
            .execute(read)
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

/// A parameter value chosen at run time (a table's columns in
/// `room_scoped`, a filter's values), bound by [`bind_args`].
#[derive(Debug, Clone)]
pub enum Arg {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Bool(bool),
}

/// Binds `args` in order to a query of either backend.
pub(crate) fn bind_args<'q, DB>(
    mut q: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    args: &'q [Arg],
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for a in args {
        q = match a {
            Arg::Text(v) => q.bind(v.as_str()),
            Arg::OptText(v) => q.bind(v.as_deref()),
            Arg::Int(v) => q.bind(*v),
            Arg::OptInt(v) => q.bind(*v),
            Arg::Bool(v) => q.bind(*v),
        };
    }
    q
}

/// SQL for the days from timestamp `earlier` to `later` (RFC 3339 text
/// expressions) as a floating-point number: SQLite's `julianday`
/// difference, PostgreSQL's interval in seconds over 86 400.
pub(crate) fn days_between(pg: bool, later: &str, earlier: &str) -> String {
    if pg {
        format!(
            "(CAST(EXTRACT(EPOCH FROM (CAST({later} AS timestamptz) - CAST({earlier} AS timestamptz))) \
             AS DOUBLE PRECISION) / 86400.0)"
        )
    } else {
        format!("(julianday({later}) - julianday({earlier}))")
    }
}

/// A query text built at run time with `?` placeholders, numbered `$1`,
/// `$2`, … in order (outside quoted SQL strings), as both backends accept
/// (ARCHITECTURE.md, "Store backends"). Query texts written out whole use
/// `$N` directly.
pub fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0_u32;
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '\'' => {
                quoted = !quoted;
                out.push(ch);
            }
            '?' if !quoted => {
                out.push('$');
                // `?NNN` keeps its number, as SQLite reads it.
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                match digits.parse::<u32>() {
                    Ok(k) => {
                        n = n.max(k);
                        out.push_str(&digits);
                    }
                    Err(_) => {
                        n += 1;
                        out.push_str(&n.to_string());
                    }
                }
            }
            _ => out.push(ch),
        }
    }
    out
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

    #[test]
    fn numbered_placeholders_skip_quoted_text() {
        assert_eq!(
            super::numbered("SELECT a FROM t WHERE b = ? AND c = '?' AND d IN (?, ?)"),
            "SELECT a FROM t WHERE b = $1 AND c = '?' AND d IN ($2, $3)"
        );
        assert_eq!(super::numbered("SELECT 1"), "SELECT 1");
        assert_eq!(
            super::numbered("a = ?1 OR b = ?1 AND c = ?"),
            "a = $1 OR b = $1 AND c = $2"
        );
    }
}
