//! PostgreSQL as the store's backend (issue 20): reading `--database-url`, connecting with clear errors, and the PostgreSQL migrations (`migrations/postgres`, numbered as the SQLite ones).

use std::str::FromStr;
use std::time::Duration;

use sqlx::Connection as _;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};

use super::StoreError;

/// The PostgreSQL schema: one file per SQLite migration, same numbers.
pub static PG_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// How long the first connection may take before the start gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections the PostgreSQL pool keeps at most.
const POOL_SIZE: u32 = 16;

/// Where the store lives, from `--database-url`.
#[derive(Debug, Clone)]
pub enum Backend {
    /// `<data-dir>/convene.db` (no URL given).
    Sqlite,
    /// A PostgreSQL database.
    Postgres(Box<PgConnectOptions>),
}

impl Backend {
    /// Reads `--database-url`: unset or empty means the embedded SQLite
    /// database; `postgres://` and `postgresql://` URLs name a PostgreSQL
    /// database; anything else is refused. Messages never repeat the URL
    /// (it may hold a password).
    pub fn from_url(url: Option<&str>) -> Result<Backend, StoreError> {
        let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
            return Ok(Backend::Sqlite);
        };
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("postgres" | "postgresql") => PgConnectOptions::from_str(url)
                .map(|o| Backend::Postgres(Box::new(o)))
                .map_err(|e| StoreError::BadUrl(format!("not a valid PostgreSQL URL: {e}"))),
            Some(other) => Err(StoreError::BadUrl(format!(
                "unsupported scheme `{other}`: use postgres://user:password@host:port/database, \
                 or leave it unset for the embedded SQLite database"
            ))),
            None => Err(StoreError::BadUrl(
                "no scheme: use postgres://user:password@host:port/database, \
                 or leave it unset for the embedded SQLite database"
                    .into(),
            )),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Backend::Postgres(_))
    }
}

/// Connects to PostgreSQL and brings its schema up to date. One direct
/// connection first, so that an unreachable server, refused credentials or
/// a missing database are reported as such (a pool would retry until its
/// timeout and then report only the timeout).
pub async fn open(options: &PgConnectOptions) -> Result<PgPool, StoreError> {
    let target = format!(
        "{}:{} (database `{}`, user `{}`)",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("<default>"),
        options.get_username()
    );
    let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(options))
        .await
        .map_err(|_| {
            StoreError::Connect(format!(
                "PostgreSQL at {target} did not answer within {} s",
                CONNECT_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| StoreError::Connect(describe(&e, &target)))?;
    check_encoding(&mut conn, &target).await?;
    conn.close().await?;
    let pool = PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options.clone())
        .await
        .map_err(|e| StoreError::Connect(describe(&e, &target)))?;
    PG_MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// The database must store UTF-8: names and messages come in every
/// language, and case-insensitive names use an ICU collation, which
/// PostgreSQL refuses in any other encoding. A database created on a host
/// whose locale is C (`SQL_ASCII`) would otherwise fail half-way through
/// the migrations with a message that does not say what to do.
async fn check_encoding(conn: &mut PgConnection, target: &str) -> Result<(), StoreError> {
    let encoding: String = sqlx::query_scalar(
        "SELECT pg_encoding_to_char(encoding)::text FROM pg_database WHERE datname = current_database()",
    )
    .fetch_one(&mut *conn)
    .await?;
    if encoding == "UTF8" {
        return Ok(());
    }
    Err(StoreError::Connect(format!(
        "the database on PostgreSQL at {target} uses the encoding {encoding}; Convene needs UTF8. \
         Create it with: CREATE DATABASE <name> OWNER <user> ENCODING 'UTF8' \
         LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' TEMPLATE template0"
    )))
}

/// A connection error in the operator's terms.
fn describe(err: &sqlx::Error, target: &str) -> String {
    match err {
        sqlx::Error::Io(e) => format!("cannot reach PostgreSQL at {target}: {e}"),
        sqlx::Error::Tls(e) => format!("TLS with PostgreSQL at {target} failed: {e}"),
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // invalid_password, invalid_authorization_specification
            Some("28P01" | "28000") => {
                format!(
                    "PostgreSQL at {target} refused the credentials: {}",
                    db.message()
                )
            }
            // invalid_catalog_name
            Some("3D000") => format!(
                "the database does not exist on PostgreSQL at {target} (create it first): {}",
                db.message()
            ),
            _ => format!("PostgreSQL at {target}: {}", db.message()),
        },
        other => format!("PostgreSQL at {target}: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_or_empty_url_is_sqlite() {
        assert!(matches!(Backend::from_url(None), Ok(Backend::Sqlite)));
        assert!(matches!(Backend::from_url(Some("  ")), Ok(Backend::Sqlite)));
    }

    #[test]
    fn postgres_urls_parse() {
        for url in [
            "postgres://u:p@db.example:5433/convene",
            "postgresql://u@localhost/convene?sslmode=disable",
        ] {
            let b = Backend::from_url(Some(url)).unwrap();
            assert!(b.is_postgres(), "{url}");
        }
    }

    #[test]
    fn other_schemes_are_refused_without_echoing_the_url() {
        for url in ["mysql://u:secret@h/db", "sqlite://x.db", "u:secret@host/db"] {
            let err = Backend::from_url(Some(url)).unwrap_err().to_string();
            assert!(err.contains("postgres://"), "{err}");
            assert!(!err.contains("secret"), "{err}");
        }
        let err = Backend::from_url(Some("mysql://h/db"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unsupported scheme `mysql`"), "{err}");
    }

    #[test]
    fn a_malformed_postgres_url_is_refused() {
        let err = Backend::from_url(Some("postgres://u:p@host:notaport/db"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a valid PostgreSQL URL"), "{err}");
    }

    #[test]
    fn both_migration_sets_have_the_same_numbers() {
        let sqlite: Vec<i64> = super::super::MIGRATOR.iter().map(|m| m.version).collect();
        let pg: Vec<i64> = PG_MIGRATOR.iter().map(|m| m.version).collect();
        assert!(!sqlite.is_empty());
        assert_eq!(sqlite, pg);
    }
}
