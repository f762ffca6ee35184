//! `convene copy-store`: copies the embedded SQLite database, row for row,
//! into an empty PostgreSQL database (the move from one node to several,
//! docs/deployment.md "From SQLite to PostgreSQL").
//!
//! Generic over the schema, so a new migration needs nothing here: the
//! tables and column types are read from PostgreSQL's catalogue (both
//! schemas are the same table for table and column for column, which
//! `postgres::postgres_schema_matches_sqlite` checks), parents are copied
//! before the tables that reference them, every value is decoded by the
//! type of its PostgreSQL column, and PostgreSQL's `rowid` column (SQLite's
//! implicit one, which the store orders by) gets SQLite's rowid. Everything
//! is one transaction: a failure leaves the target as empty as it was.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::{PgPool, Postgres, QueryBuilder, Row as _, SqlitePool};

use super::{Db, Pool, StoreError};

/// Rows read from SQLite (and written to PostgreSQL) at a time.
const PAGE: i64 = 500;
/// PostgreSQL's limit on bind parameters in one statement is 65,535.
const MAX_PARAMS: usize = 60_000;

/// What was copied: rows per table, in copy order.
#[derive(Debug, Default)]
pub struct CopyReport {
    pub tables: Vec<(String, u64)>,
}

impl CopyReport {
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }
}

/// Why a copy did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("the source must be the embedded SQLite database and the target PostgreSQL")]
    Backends,
    #[error(
        "the target database already holds data (table {table} has rows): copy into an empty database"
    )]
    TargetNotEmpty { table: String },
    #[error("table {table} is in the PostgreSQL schema but not in the SQLite database")]
    MissingTable { table: String },
    #[error("table {table}, column {column}: a {kind} column type the copy does not know")]
    UnknownType {
        table: String,
        column: String,
        kind: String,
    },
    #[error("table {table}, row {rowid}, column {column}: {message}")]
    Value {
        table: String,
        rowid: i64,
        column: String,
        message: String,
    },
    #[error(
        "table {table}: {copied} rows copied but the target counts {counted}; nothing was kept"
    )]
    Count {
        table: String,
        copied: u64,
        counted: i64,
    },
    #[error("copying table {table}: {source}")]
    Table {
        table: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
}

/// A PostgreSQL column and how its values are read from SQLite.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    kind: Kind,
    /// `GENERATED ALWAYS AS IDENTITY`: written with `OVERRIDING SYSTEM VALUE`.
    always_identity: bool,
    /// Any identity column: its sequence is moved past the copied values.
    identity: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Int,
    Bool,
    Real,
    Text,
}

/// One value on its way from SQLite to PostgreSQL.
enum Value {
    Int(Option<i64>),
    Bool(Option<bool>),
    Real(Option<f64>),
    Text(Option<String>),
}

/// Copies every row of `from` (SQLite) into `to` (PostgreSQL, migrated and
/// empty), in one transaction, and checks the counts before committing.
pub async fn copy_sqlite_to_postgres(from: &Db, to: &Db) -> Result<CopyReport, CopyError> {
    let (Pool::Sqlite(src), Pool::Pg(dst)) = (&from.read, &to.write) else {
        return Err(CopyError::Backends);
    };
    let tables = tables_in_copy_order(dst).await?;
    let sqlite_tables: BTreeSet<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )
    .fetch_all(src)
    .await?
    .into_iter()
    .collect();
    let mut tx = dst.begin().await?;
    for table in &tables {
        if !sqlite_tables.contains(table) {
            return Err(CopyError::MissingTable {
                table: table.clone(),
            });
        }
        let any: bool =
            sqlx::query_scalar(&format!("SELECT EXISTS (SELECT 1 FROM {})", quote(table)))
                .fetch_one(&mut *tx)
                .await?;
        if any {
            return Err(CopyError::TargetNotEmpty {
                table: table.clone(),
            });
        }
    }
    let mut report = CopyReport::default();
    for table in &tables {
        let columns = columns_of(dst, table).await?;
        let copied = copy_table(src, &mut tx, table, &columns).await?;
        let counted: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", quote(table)))
            .fetch_one(&mut *tx)
            .await?;
        if counted != copied as i64 {
            return Err(CopyError::Count {
                table: table.clone(),
                copied,
                counted,
            });
        }
        for c in columns.iter().filter(|c| c.identity) {
            // The next generated value follows the largest copied one.
            sqlx::query(&format!(
                "SELECT setval(pg_get_serial_sequence('{t}', '{c}'), \
                 COALESCE((SELECT MAX({qc}) FROM {qt}), 0) + 1, false)",
                t = table.replace('\'', "''"),
                c = c.name.replace('\'', "''"),
                qc = quote(&c.name),
                qt = quote(table),
            ))
            .execute(&mut *tx)
            .await
            .map_err(|source| CopyError::Table {
                table: table.clone(),
                source,
            })?;
        }
        report.tables.push((table.clone(), copied));
    }
    tx.commit().await?;
    Ok(report)
}

/// The target's tables (sqlx's bookkeeping aside), each after the tables
/// its foreign keys reference; ties by name.
async fn tables_in_copy_order(pg: &PgPool) -> Result<Vec<String>, CopyError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
           AND table_name <> '_sqlx_migrations' ORDER BY table_name",
    )
    .fetch_all(pg)
    .await?;
    let edges: Vec<(String, String)> = sqlx::query(
        "SELECT DISTINCT c.conrelid::regclass::text AS child, c.confrelid::regclass::text AS parent \
         FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace \
         WHERE c.contype = 'f' AND n.nspname = current_schema()",
    )
    .fetch_all(pg)
    .await?
    .iter()
    .map(|r| (r.get("child"), r.get("parent")))
    .collect();
    Ok(order(&names, &edges))
}

/// Kahn's algorithm over `(child, parent)` edges; a self-reference is no
/// constraint on table order (its rows go in rowid order, parents first).
/// Tables in a cycle (none today) go last, by name.
fn order(names: &[String], edges: &[(String, String)]) -> Vec<String> {
    let mut parents: BTreeMap<&str, BTreeSet<&str>> = names
        .iter()
        .map(|n| (n.as_str(), BTreeSet::new()))
        .collect();
    for (child, parent) in edges {
        if child != parent
            && let Some(p) = parents.get_mut(child.as_str())
        {
            p.insert(parent.as_str());
        }
    }
    let mut done: Vec<String> = Vec::with_capacity(names.len());
    loop {
        let ready: Vec<&str> = parents
            .iter()
            .filter(|(_, p)| p.is_empty())
            .map(|(n, _)| *n)
            .collect();
        if ready.is_empty() {
            break;
        }
        for n in ready {
            parents.remove(n);
            for p in parents.values_mut() {
                p.remove(n);
            }
            done.push(n.to_string());
        }
    }
    done.extend(parents.keys().map(|n| n.to_string()));
    done
}

async fn columns_of(pg: &PgPool, table: &str) -> Result<Vec<Column>, CopyError> {
    let rows = sqlx::query(
        "SELECT column_name::text AS name, data_type::text AS kind, \
                is_identity = 'YES' AS identity, \
                COALESCE(identity_generation = 'ALWAYS', false) AS always \
         FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(pg)
    .await?;
    rows.iter()
        .map(|r| {
            let name: String = r.get("name");
            let kind: String = r.get("kind");
            let kind = match kind.as_str() {
                "bigint" | "integer" | "smallint" => Kind::Int,
                "boolean" => Kind::Bool,
                "double precision" | "real" => Kind::Real,
                "text" | "character varying" => Kind::Text,
                _ => {
                    return Err(CopyError::UnknownType {
                        table: table.to_string(),
                        column: name,
                        kind,
                    });
                }
            };
            Ok(Column {
                name,
                kind,
                identity: r.get("identity"),
                always_identity: r.get("always"),
            })
        })
        .collect()
}

/// Copies one table a page at a time, in SQLite's rowid order.
async fn copy_table(
    src: &SqlitePool,
    tx: &mut sqlx::Transaction<'static, Postgres>,
    table: &str,
    columns: &[Column],
) -> Result<u64, CopyError> {
    // SQLite's implicit rowid becomes PostgreSQL's spelled-out `rowid`.
    let select: Vec<String> = columns
        .iter()
        .map(|c| {
            if c.name == "rowid" {
                "rowid".to_string()
            } else {
                quote(&c.name)
            }
        })
        .collect();
    let sql = format!(
        "SELECT rowid AS \"__copy_rowid\", {} FROM {} WHERE rowid > ? ORDER BY rowid LIMIT ?",
        select.join(", "),
        quote(table)
    );
    let overriding = if columns.iter().any(|c| c.always_identity) {
        " OVERRIDING SYSTEM VALUE"
    } else {
        ""
    };
    let per_statement = (MAX_PARAMS / columns.len().max(1)).max(1);
    let mut after = i64::MIN;
    let mut copied = 0u64;
    loop {
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(PAGE)
            .fetch_all(src)
            .await
            .map_err(|source| CopyError::Table {
                table: table.to_string(),
                source,
            })?;
        let Some(last) = rows.last() else { break };
        after = last.get("__copy_rowid");
        let mut values = Vec::with_capacity(rows.len());
        for row in &rows {
            let rowid: i64 = row.get("__copy_rowid");
            let mut one = Vec::with_capacity(columns.len());
            for (i, c) in columns.iter().enumerate() {
                one.push(read(row, i + 1, c.kind).map_err(|e| CopyError::Value {
                    table: table.to_string(),
                    rowid,
                    column: c.name.clone(),
                    message: e.to_string(),
                })?);
            }
            values.push(one);
        }
        for chunk in values.chunks(per_statement) {
            let mut q: QueryBuilder<Postgres> = QueryBuilder::new(format!(
                "INSERT INTO {} ({}){overriding} ",
                quote(table),
                columns
                    .iter()
                    .map(|c| quote(&c.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            q.push_values(chunk, |mut b, row| {
                for v in row {
                    match v {
                        Value::Int(v) => b.push_bind(*v),
                        Value::Bool(v) => b.push_bind(*v),
                        Value::Real(v) => b.push_bind(*v),
                        Value::Text(v) => b.push_bind(v.clone()),
                    };
                }
            });
            q.build()
                .execute(&mut **tx)
                .await
                .map_err(|source| CopyError::Table {
                    table: table.to_string(),
                    source,
                })?;
        }
        copied += rows.len() as u64;
    }
    Ok(copied)
}

/// Reads column `i` of a SQLite row as the PostgreSQL column's type wants
/// it; SQLite keeps booleans as 0/1 integers.
fn read(row: &sqlx::sqlite::SqliteRow, i: usize, kind: Kind) -> Result<Value, sqlx::Error> {
    Ok(match kind {
        Kind::Int => Value::Int(row.try_get(i)?),
        Kind::Bool => Value::Bool(row.try_get::<Option<i64>, _>(i)?.map(|v| v != 0)),
        Kind::Real => Value::Real(row.try_get(i)?),
        Kind::Text => Value::Text(row.try_get(i)?),
    })
}

/// A double-quoted SQL identifier (names come from the databases'
/// catalogues, not from users; quoted all the same).
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::order;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parents_come_before_children_and_self_references_do_not_block() {
        let names = s(&["chat", "rooms", "sessions", "teams", "groups"]);
        let edges = vec![
            ("chat".to_string(), "sessions".to_string()),
            ("sessions".to_string(), "rooms".to_string()),
            ("rooms".to_string(), "teams".to_string()),
            ("groups".to_string(), "groups".to_string()),
        ];
        let got = order(&names, &edges);
        let at = |n: &str| got.iter().position(|x| x == n).unwrap();
        assert_eq!(got.len(), 5);
        assert!(at("teams") < at("rooms"));
        assert!(at("rooms") < at("sessions"));
        assert!(at("sessions") < at("chat"));
        assert!(got.contains(&"groups".to_string()));
    }

    #[test]
    fn a_cycle_still_lists_every_table() {
        let names = s(&["a", "b", "c"]);
        let edges = vec![
            ("a".to_string(), "b".to_string()),
            ("b".to_string(), "a".to_string()),
        ];
        let got = order(&names, &edges);
        assert_eq!(got, s(&["c", "a", "b"]));
    }
}
