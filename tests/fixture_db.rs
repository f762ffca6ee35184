//! The server's own database, for the fixture rows a test writes straight
//! into it: the SQLite file in its data dir, or its PostgreSQL database
//! (`CONVENE_TEST_DB=postgres`). Query texts use `$N` placeholders, which
//! both accept; parameters are text or NULL.

use sqlx::Row as _;

/// A connection pool on a test server's database.
pub enum FixtureDb {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

/// A text parameter (or NULL) of a fixture query.
pub trait Text {
    fn text(&self) -> Option<String>;
}

impl Text for str {
    fn text(&self) -> Option<String> {
        Some(self.to_string())
    }
}

impl Text for String {
    fn text(&self) -> Option<String> {
        Some(self.clone())
    }
}

impl<T: Text + ?Sized> Text for &T {
    fn text(&self) -> Option<String> {
        (**self).text()
    }
}

impl<T: Text> Text for Option<T> {
    fn text(&self) -> Option<String> {
        self.as_ref().and_then(Text::text)
    }
}

impl FixtureDb {
    /// Opens the database of the server whose data dir and URL are given.
    pub async fn open(data_dir: &std::path::Path, url: Option<&str>) -> FixtureDb {
        match url {
            Some(url) => FixtureDb::Pg(sqlx::PgPool::connect(url).await.unwrap()),
            None => FixtureDb::Sqlite(
                sqlx::SqlitePool::connect(&format!(
                    "sqlite://{}",
                    data_dir.join("convene.db").display()
                ))
                .await
                .unwrap(),
            ),
        }
    }

    /// Runs a statement; the number of rows it changed.
    pub async fn execute(&self, sql: &str, args: &[&dyn Text]) -> u64 {
        let args: Vec<Option<String>> = args.iter().map(|a| a.text()).collect();
        match self {
            FixtureDb::Sqlite(p) => {
                let mut q = sqlx::query(sql);
                for a in &args {
                    q = q.bind(a);
                }
                q.execute(p).await.unwrap().rows_affected()
            }
            FixtureDb::Pg(p) => {
                let mut q = sqlx::query(sql);
                for a in &args {
                    q = q.bind(a);
                }
                q.execute(p).await.unwrap().rows_affected()
            }
        }
    }

    /// The first column of the one row `sql` returns, as an integer.
    pub async fn int(&self, sql: &str, args: &[&dyn Text]) -> i64 {
        let args: Vec<Option<String>> = args.iter().map(|a| a.text()).collect();
        match self {
            FixtureDb::Sqlite(p) => {
                let mut q = sqlx::query(sql);
                for a in &args {
                    q = q.bind(a);
                }
                q.fetch_one(p).await.unwrap().get::<i64, _>(0)
            }
            FixtureDb::Pg(p) => {
                let mut q = sqlx::query(sql);
                for a in &args {
                    q = q.bind(a);
                }
                q.fetch_one(p).await.unwrap().get::<i64, _>(0)
            }
        }
    }

    /// The first column of the one row `sql` returns, as text.
    pub async fn text(&self, sql: &str, args: &[&dyn Text]) -> String {
        let args: Vec<Option<String>> = args.iter().map(|a| a.text()).collect();
        match self {
            FixtureDb::Sqlite(p) => {
                let mut q = sqlx::query(sql);
                for a in &args {
                    q = q.bind(a);
                }
                q.fetch_one(p).await.unwrap().get::<String, _>(0)
            }
            FixtureDb::Pg(p) => {
                let mut q = sqlx::query(sql);
                for a in &args {
                    q = q.bind(a);
                }
                q.fetch_one(p).await.unwrap().get::<String, _>(0)
            }
        }
    }

    pub async fn close(self) {
        match self {
            FixtureDb::Sqlite(p) => p.close().await,
            FixtureDb::Pg(p) => p.close().await,
        }
    }
}
